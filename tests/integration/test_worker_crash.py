"""A worker killed in the middle of routing: its transaction dies with it, the broker hands the
message to another worker, and every order ends up routed once: one fulfilment, one reservation."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from sqlalchemy import text

from factories import bearer, create_tenant
from inventory_factories import API, one_warehouse_shop
from processes import start_oms, stop_process

ORDERS = 5
CRASH_ENV = {"BROKER_HEARTBEAT_TIMEOUT_MS": "1500", "BROKER_MAINTENANCE_CHANCE": "1000000"}


async def _wait(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_a_worker_killed_mid_routing_routes_each_order_once(client, owner_engine, tmp_path: Path) -> None:
    tenant = await create_tenant()
    key = bearer(tenant.api_key)
    await one_warehouse_shop(client, tenant.api_key, location="WH-CRASH", sku="CRASH-1", quantity=100)

    async with owner_engine.connect() as blocker:
        # Hold the stock row: the first worker will block inside its routing transaction.
        await blocker.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant.tenant_id)})
        await blocker.execute(text("SELECT 1 FROM inventory_levels WHERE tenant_id = :t FOR UPDATE"),
                              {"t": tenant.tenant_id})
        ids = []
        for n in range(ORDERS):
            created = await client.post(f"{API}/orders", headers=key, json={
                "channel": "api", "external_number": f"CRASH-{n}", "currency": "EUR",
                "lines": [{"sku": "CRASH-1", "quantity": 2, "unit_price_minor": 1999}],
                "customer": {"email": "crash@example.test"},
                "delivery": {"mode": "ship", "address": {"country": "FR", "latitude": 48.85, "longitude": 2.35}},
                "total_minor": 3998})
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
        env = dict(os.environ, **CRASH_ENV)
        first, first_log = start_oms(["worker", "--threads", "2"], env, tmp_path / "first-worker.log")

        async def worker_waits_on_the_row() -> bool:
            async with owner_engine.connect() as conn:
                waiting = (await conn.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query ILIKE '%inventory_levels%'"))).scalar()
            return bool(waiting)

        try:
            await _wait(worker_waits_on_the_row, 30, "the worker to block inside a routing transaction")
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(10)
        finally:
            stop_process(first)
            first_log.close()
        await blocker.rollback()

    second, second_log = start_oms(["worker", "--threads", "2"], dict(os.environ, **CRASH_ENV),
                                   tmp_path / "second-worker.log")
    try:
        async def all_routed() -> bool:
            statuses = [(await client.get(f"{API}/orders/{i}", headers=key)).json()["status"] for i in ids]
            return all(s == "routed" for s in statuses)

        await _wait(all_routed, 60, "the second worker to route every order")
    finally:
        stop_process(second)
        second_log.close()

    for order_id in ids:
        order = (await client.get(f"{API}/orders/{order_id}", headers=key)).json()
        assert len(order["fulfilments"]) == 1, order
        assert [e["kind"] for e in order["events"]].count("order.routed") == 1
        assert order["lines"][0]["allocated"] == 2
    [stock] = (await client.get(f"{API}/inventory", headers=key, params={"sku": "CRASH-1"})).json()
    [level] = stock["levels"]
    assert level["reserved"] == 2 * ORDERS, level
    async with owner_engine.connect() as conn:
        await conn.execute(text("SELECT set_config('app.tenant_id', :t, false)"), {"t": str(tenant.tenant_id)})
        reservations = (await conn.execute(text(
            "SELECT count(*) FROM inventory_movements WHERE tenant_id = :t AND reason = 'reservation'"),
            {"t": tenant.tenant_id})).scalar()
    assert reservations == ORDERS
