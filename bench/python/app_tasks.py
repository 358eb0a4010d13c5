"""FastAPI + fastapi-tasks: the same endpoints as the Rust servers."""

import asyncio
import logging

from fastapi import FastAPI
from fastapi_tasks import Tasks, add_tasks

logging.basicConfig(filename="/tmp/errands-bench-python.log", level=logging.INFO)
log = logging.getLogger("bench")

app = FastAPI()
add_tasks(app)
state = {"scheduled": 0, "finished": 0, "counter": 0}


async def bump() -> None:
    state["counter"] += 1
    state["finished"] += 1


async def bump_io() -> None:
    await asyncio.sleep(0.005)
    await bump()


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
