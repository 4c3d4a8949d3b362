"""The scheduler process: periodic jobs, exactly one instance active.

A scheduler holds a PostgreSQL advisory lock on its own connection for as long as it
runs; a second one waits on standby and takes over when the first dies (the lock goes with
its connection). Jobs are coroutines registered with ``@periodic``; they should be short
and hand real work to actors.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db import Database

log = structlog.get_logger(__name__)

LOCK_KEY = 7_200_417_001  # any constant shared by every scheduler of this database


@dataclass
class PeriodicJob:
    name: str
    every: timedelta
    run: Callable[[], Awaitable[object]]
    next_at: float = field(default=0.0)


PERIODIC_JOBS: list[PeriodicJob] = []


Job = Callable[[], Awaitable[object]]


def periodic(name: str, every: timedelta) -> Callable[[Job], Job]:
    def register(fn: Job) -> Job:
        PERIODIC_JOBS.append(PeriodicJob(name=name, every=every, run=fn))
        return fn

    return register


class CompanyActor(Protocol):
    def send(self, *, tenant_id: str) -> Any: ...


def fan_out(name: str, every: timedelta, companies: Callable[[], Awaitable[list[uuid.UUID]]],
            actor: CompanyActor) -> Job:
    """A periodic job that sends ``actor`` one message per company ``companies()`` finds with work
    due (see ``core.sweeper``), and none for the others."""

    async def sweep() -> None:
        for tenant_id in await companies():
            actor.send(tenant_id=str(tenant_id))

    sweep.__name__ = name.replace(".", "_")
    return periodic(name, every)(sweep)


async def try_lock(conn: AsyncConnection) -> bool:
    got = await conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY})
    await conn.commit()
    return bool(got)


async def run_scheduler(db: Database, stop: asyncio.Event, *, tick: float = 0.5, standby_poll: float = 5,
                        jobs: list[PeriodicJob] | None = None) -> None:
    jobs = PERIODIC_JOBS if jobs is None else jobs
    async with db.engine.connect() as lock_conn:
        while not await try_lock(lock_conn):
            log.info("scheduler.standby")
            try:
                await asyncio.wait_for(stop.wait(), timeout=standby_poll)
                return
            except TimeoutError:
                continue
        log.info("scheduler.active", jobs=[job.name for job in jobs])
        try:
            await _run_jobs(jobs, stop, tick)
        finally:
            # The lock belongs to the session: release it before the connection goes back to the pool.
            await lock_conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
            await lock_conn.commit()


async def _run_jobs(jobs: list[PeriodicJob], stop: asyncio.Event, tick: float) -> None:
    while not stop.is_set():
        now = time.monotonic()
        for job in jobs:
            if now < job.next_at:
                continue
            job.next_at = now + job.every.total_seconds()
            try:
                await job.run()
            except Exception:
                log.exception("scheduler.job_failed", job=job.name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=tick)
