"""FastAPI + fastapi-tasks: the same endpoints as the Rust servers."""

from fastapi import FastAPI
from fastapi_tasks import Tasks, add_tasks

from shared import bump, bump_io, log, state

app = FastAPI()
add_tasks(app)


async def failing() -> None:
    state["counter"] += 1
    raise RuntimeError("the task failed on purpose")


async def on_error(task, error: Exception) -> None:
    log.error("task %s failed: %s", task.config.name, error)
    state["finished"] += 1


@app.get("/plain")
async def plain() -> str:
    return "ok"


@app.post("/task")
async def task(tasks: Tasks) -> str:
    state["scheduled"] += 1
    tasks.after_response.schedule(bump)
    return "ok"


@app.post("/task-io")
async def task_io(tasks: Tasks) -> str:
    state["scheduled"] += 1
    tasks.after_response.schedule(bump_io)
    return "ok"


@app.post("/fail")
async def fail(tasks: Tasks) -> str:
    state["scheduled"] += 1
    tasks.after_response.task(name="failing", on_error=on_error).schedule(failing)
    return "ok"


@app.get("/stats")
async def stats() -> dict:
    return dict(state)
