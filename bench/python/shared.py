"""What both FastAPI apps share: the counters and the task bodies."""

import asyncio
import logging

logging.basicConfig(filename="/tmp/errands-bench-python.log", level=logging.INFO)
log = logging.getLogger("bench")

state = {"scheduled": 0, "finished": 0, "counter": 0}


async def bump() -> None:
    state["counter"] += 1
    state["finished"] += 1


async def bump_io() -> None:
    await asyncio.sleep(0.005)
    await bump()
