"""FastAPI BackgroundTasks: the same endpoints as the Rust servers."""

from fastapi import BackgroundTasks, FastAPI

from shared import bump, bump_io, log, state

app = FastAPI()


async def failing() -> None:
    # BackgroundTasks has no error handler: catching and logging is the usual pattern.
    try:
        state["counter"] += 1
        raise RuntimeError("the task failed on purpose")
    except RuntimeError as error:
        log.error("task failed: %s", error)
        state["finished"] += 1


@app.get("/plain")
async def plain() -> str:
    return "ok"


@app.post("/task")
async def task(background: BackgroundTasks) -> str:
    state["scheduled"] += 1
    background.add_task(bump)
    return "ok"


@app.post("/task-io")
async def task_io(background: BackgroundTasks) -> str:
    state["scheduled"] += 1
    background.add_task(bump_io)
    return "ok"


@app.post("/fail")
async def fail(background: BackgroundTasks) -> str:
    state["scheduled"] += 1
    background.add_task(failing)
    return "ok"


@app.get("/stats")
async def stats() -> dict:
    return dict(state)
