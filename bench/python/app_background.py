"""FastAPI BackgroundTasks: the same endpoints as the Rust servers."""

import asyncio
import logging

from fastapi import BackgroundTasks, FastAPI

logging.basicConfig(filename="/tmp/errands-bench-python.log", level=logging.INFO)
log = logging.getLogger("bench")

app = FastAPI()
state = {"scheduled": 0, "finished": 0, "counter": 0}


async def bump() -> None:
    state["counter"] += 1
    state["finished"] += 1


async def bump_io() -> None:
    await asyncio.sleep(0.005)
    await bump()


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
