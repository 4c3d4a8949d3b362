"""Kernel benchmarks: figures, not pass/fail. Run with `make bench`; each prints
`bench NAME: VALUE UNIT`."""

from __future__ import annotations

import asyncio
import time

import httpx
from sqlalchemy.dialects.postgresql import insert

from factories import bearer, create_tenant


async def test_bench_api_key_requests(app) -> None:
    """An authenticated tenant-scoped API read: key lookup under RLS plus one scoped query."""
    tenant = await create_tenant()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://bench.local") as client:
        headers = bearer(tenant.api_key)
        for _ in range(20):
            assert (await client.get("/api/v1/me", headers=headers)).status_code == 200
        count = 500
        started = time.perf_counter()
        for _ in range(count):
            await client.get("/api/v1/me", headers=headers)
        sequential = count / (time.perf_counter() - started)

        async def burst(n: int) -> None:
            for _ in range(n):
                await client.get("/api/v1/me", headers=headers)

        started = time.perf_counter()
        await asyncio.gather(*[burst(count // 8) for _ in range(8)])
        concurrent = count / (time.perf_counter() - started)
    print(f"\nbench api_me_sequential_per_s: {sequential:.0f} req/s")
    print(f"bench api_me_concurrency8_per_s: {concurrent:.0f} req/s")


async def test_bench_outbox_relay(app) -> None:
    """How fast committed work reaches Redis: rows relayed per second, in batches."""
    from core.broker import broker
    from core.db import get_database
    from core.ids import uuid7
    from core.models import OutboxMessage
    from core.outbox import relay_all

    tenant = await create_tenant()
    count = 5000
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        await session.execute(insert(OutboxMessage), [
            {"tenant_id": tenant.tenant_id, "id": uuid7(), "actor_name": "bench.noop",
             "queue_name": "bench", "kwargs": {"tenant_id": str(tenant.tenant_id)}, "attempts": 0}
            for _ in range(count)
        ])
    started = time.perf_counter()
    sent = await relay_all(get_database(), broker)
    elapsed = time.perf_counter() - started
    assert sent >= count
    print(f"\nbench outbox_relay_per_s: {sent / elapsed:.0f} msg/s")
    broker.flush("bench")
