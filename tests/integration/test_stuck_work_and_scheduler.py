"""Work that fails for good lands in the console; exactly one scheduler is active."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from sqlalchemy import select

from factories import create_tenant, login, post_form
from workers import eventually, running_worker


async def always_fails(tenant_id: str, note: str) -> None:
    raise RuntimeError(f"carrier API unreachable ({note})")


async def test_failed_work_shows_in_stuck_work_with_retry_and_discard(client) -> None:
    import dramatiq

    from core.broker import actor
    from core.db import get_database
    from core.models import FailedJob, OutboxMessage
    from core.outbox import enqueue, relay_all

    try:
        failing = dramatiq.get_broker().get_actor("test.always_fails")
    except dramatiq.errors.ActorNotFound:
        failing = actor("test.always_fails", queue="test", max_retries=1, min_backoff_ms=10,
                        max_backoff_ms=20)(always_fails)
    dramatiq.get_broker().flush_all()  # earlier tests' relayed messages are not this test's business
    tenant = await create_tenant()
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        enqueue(session, failing, tenant_id=tenant.tenant_id, note="first")
        enqueue(session, failing, tenant_id=tenant.tenant_id, note="second")
    await relay_all(get_database(), dramatiq.get_broker())

    async def recorded() -> bool:
        async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
            return len(list(await session.scalars(select(FailedJob)))) == 2

    async with running_worker():
        await eventually(recorded, timeout=20, what="both failures recorded")

    await login(client, tenant.email)
    page = await client.get("/app/settings/stuck-work")
    assert page.text.count("test.always_fails") == 2
    assert "carrier API unreachable" in page.text
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        jobs = {job.kwargs["note"]: job for job in await session.scalars(select(FailedJob))}
        assert jobs["first"].retries == 2  # the first try and one retry
    retried = await post_form(client, f"/app/settings/stuck-work/{jobs['first'].id}/retry")
    assert retried.status_code == 303
    discarded = await post_form(client, f"/app/settings/stuck-work/{jobs['second'].id}/discard")
    assert discarded.status_code == 303
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        statuses = {job.kwargs["note"]: job.status for job in await session.scalars(select(FailedJob))}
        outbox = [m.kwargs for m in await session.scalars(select(OutboxMessage).where(
            OutboxMessage.actor_name == "test.always_fails"))]
    assert statuses == {"first": "retried", "second": "discarded"}
    assert sum(1 for kwargs in outbox if kwargs.get("note") == "first") == 2
    # a second click changes nothing more
    await post_form(client, f"/app/settings/stuck-work/{jobs['first'].id}/retry")
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        again = list(await session.scalars(
            select(OutboxMessage).where(OutboxMessage.actor_name == "test.always_fails")))
    assert len(again) == 3


async def test_only_one_scheduler_is_active_and_a_standby_takes_over(settings) -> None:
    from core.db import Database
    from core.scheduler import PeriodicJob, run_scheduler

    ran: list[str] = []

    def job(name: str) -> list[PeriodicJob]:
        async def tick() -> None:
            ran.append(name)
        return [PeriodicJob(name=f"tick-{name}", every=timedelta(milliseconds=50), run=tick)]

    first_db, second_db = Database(settings.app_url, pool_size=2), Database(settings.app_url, pool_size=2)
    stop_first, stop_second = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(run_scheduler(first_db, stop_first, tick=0.05, jobs=job("first")))
    await asyncio.sleep(0.3)
    second = asyncio.create_task(run_scheduler(second_db, stop_second, tick=0.05, standby_poll=0.1,
                                               jobs=job("second")))
    await asyncio.sleep(0.5)
    assert "first" in ran and "second" not in ran
    stop_first.set()
    await first
    await eventually(lambda: _ran(ran, "second"), timeout=5, what="the standby to take over")
    stop_second.set()
    await second
    await first_db.dispose()
    await second_db.dispose()
    assert uuid.uuid4()


async def _ran(ran: list[str], name: str) -> bool:
    return name in ran
