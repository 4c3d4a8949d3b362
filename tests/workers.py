"""A real Dramatiq worker in the test process, on the real Redis broker."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import dramatiq


@contextlib.asynccontextmanager
async def running_worker(threads: int = 2) -> AsyncIterator[dramatiq.Worker]:
    from core.broker import broker

    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=100)
    worker.start()
    try:
        yield worker
    finally:
        await asyncio.to_thread(worker.stop, 10_000)
        # A stopped worker leaves its middleware on the broker; the next worker in this
        # process would otherwise share its queue bookkeeping with a dead one.
        broker.middleware[:] = [m for m in broker.middleware if getattr(m, "worker", None) is not worker]


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float = 15, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
