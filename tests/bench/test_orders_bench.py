"""Orders benchmark on the real stack: `oms web`, `oms worker` and `oms scheduler` as processes, the
test run's PostgreSQL and Redis, and clients posting orders over HTTP, each under an
Idempotency-Key as channels send them.

Prints captured and routed orders per second, capture latency, the processes used, and, checked
from the database at the end: orders lost (accepted but not stored or never routed), duplicated
(a channel order number stored twice, or a line allocated beyond its quantity) and oversold
(stock reserved or shipped beyond what was there), and the CPU each process spent per order.
The processes log at WARNING (``BENCH_LOG_LEVEL=INFO`` for the production default, which writes
a line per request and per mail). Nothing here asserts a speed.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from factories import create_tenant
from http_load import Connection
from processes import cpu_seconds, start_oms, stop_process, wait_healthy

ORDERS = int(os.environ.get("BENCH_ORDERS", "3000"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "24"))
WORKER_THREADS = 8
WORKER_PROCESSES = int(os.environ.get("BENCH_WORKER_PROCESSES", "1"))
WEB_PROCESSES = int(os.environ.get("BENCH_WEB_PROCESSES", "1"))
LOCATIONS = 10
SKUS = 40
STOCK_PER_LEVEL = 60  # less than the demand for the hot SKUs: some orders must wait, none oversell
ROUTE_TIMEOUT_S = 300


async def _network(client: httpx.AsyncClient) -> list[str]:
    from rules.routing import new_rule

    for i in range(LOCATIONS):
        body = {"code": f"LOC-{i}", "name": f"Location {i}", "kind": "warehouse" if i < 3 else "store",
                "country": "FR", "timezone": "Europe/Paris", "latitude": 43.5 + i * 0.6, "longitude": 1.0 + i * 0.5,
                "ships_to_customers": i < 3, "ship_from_store": i >= 3}
        assert (await client.post("/api/v1/locations", json=body)).status_code == 201
    skus = [f"BENCH-{i:03d}" for i in range(SKUS)]
    for sku in skus:
        assert (await client.post("/api/v1/products", json={"sku": sku, "name": sku, "price_minor": 1500,
                                                            "category": "bench"})).status_code == 201
    rows = [{"sku": sku, "location": f"LOC-{i}", "quantity": STOCK_PER_LEVEL} for sku in skus for i in range(LOCATIONS)]
    feed = await client.post("/api/v1/inventory/feeds", json={"feed_id": "bench-stock", "kind": "snapshot",
                                                                "rows": rows})
    assert feed.status_code == 202, feed.text
    for _ in range(300):
        if (await client.get(f"/api/v1/inventory/feeds/{feed.json()['id']}")).json()["status"] == "applied":
            break
        await asyncio.sleep(0.2)
    rule = new_rule("all", "Nearest with stock")
    rule["then"]["fallback"] = ["split", "backorder"]
    document = {"rules": [rule], "otherwise": "hold"}
    assert (await client.put("/api/v1/rule-sets/routing/draft", json={"document": document})).status_code == 200
    assert (await client.post("/api/v1/rule-sets/routing/versions", json={})).status_code == 201
    return skus


def _order(n: int, skus: list[str]) -> dict[str, Any]:
    lines = [{"sku": skus[(n * 7 + k * 13) % len(skus)], "quantity": 1 + (n + k) % 2, "unit_price_minor": 1500}
             for k in range(3)]
    merged: dict[str, dict[str, Any]] = {}
    for line in lines:
        merged.setdefault(line["sku"], {**line, "quantity": 0})["quantity"] += line["quantity"]
    lines = list(merged.values())
    total = sum(line["quantity"] * 1500 for line in lines)
    return {"channel": "web", "external_number": f"B-{n:06d}", "currency": "EUR", "lines": lines,
            "customer": {"email": f"c{n % 500}@example.test"},
            "delivery": {"mode": "ship", "address": {"country": "FR", "latitude": 43.0 + (n % 70) / 10,
                                                     "longitude": 1.0 + (n % 50) / 10}},
            "total_minor": total}


async def _capture(base: str, api_key: str, skus: list[str],
                   make_order: Any = _order) -> tuple[dict[str, str], list[float], float]:
    accepted: dict[str, str] = {}
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(ORDERS):
        queue.put_nowait(n)

    async def client_loop() -> None:
        connection = Connection(base, {"Authorization": f"Bearer {api_key}"})
        try:
            while not queue.empty():
                n = queue.get_nowait()
                body = make_order(n, skus)
                started = time.perf_counter()
                # As a channel sends them: each order under an Idempotency-Key of its own.
                key = {"Idempotency-Key": f"bench-{body['external_number']}"}
                status, answer = await connection.request("POST", "/api/v1/orders", body, key)
                latencies.append(time.perf_counter() - started)
                assert status == 201, answer
                accepted[body["external_number"]] = answer["id"]
                # A channel sending the same order again must not make a second one: with the same
                # key (its answer replayed), or without one (found by the channel's order number).
                if n % 50 == 0:
                    status, again = await connection.request("POST", "/api/v1/orders", body, key)
                    assert status == 201 and connection.headers.get("idempotent-replayed") == "true", again
                    assert again["id"] == answer["id"]
                if n % 50 == 25:
                    status, again = await connection.request("POST", "/api/v1/orders", body)
                    assert status == 200 and again["id"] == answer["id"], again
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(CONCURRENCY)))
    return accepted, latencies, time.perf_counter() - started


async def _checks(owner_engine: Any, tenant_id: uuid.UUID, accepted: dict[str, str]) -> dict[str, int]:
    async with owner_engine.connect() as conn:
        await conn.execute(text("SELECT set_config('app.tenant_id', :t, false)"), {"t": str(tenant_id)})
        stored = {row[0]: str(row[1]) for row in await conn.execute(text(
            "SELECT external_number, id FROM orders WHERE tenant_id = :t"), {"t": tenant_id})}
        unrouted = (await conn.execute(text(
            "SELECT count(*) FROM orders WHERE tenant_id = :t AND status = 'received'"), {"t": tenant_id})).scalar()
        duplicated_numbers = (await conn.execute(text(
            "SELECT count(*) FROM (SELECT 1 FROM orders WHERE tenant_id = :t GROUP BY channel, external_number "
            "HAVING count(*) > 1) d"), {"t": tenant_id})).scalar()
        over_allocated = (await conn.execute(text("""
            SELECT count(*) FROM order_lines l
            WHERE l.tenant_id = :t AND l.qty_allocated <> (
                SELECT coalesce(sum(fl.quantity), 0) FROM fulfilment_lines fl
                JOIN fulfilments f ON f.tenant_id = fl.tenant_id AND f.id = fl.fulfilment_id
                WHERE fl.tenant_id = l.tenant_id AND fl.order_line_id = l.id
                  AND f.status NOT IN ('rejected', 'cancelled', 'expired'))"""), {"t": tenant_id})).scalar()
        reserved_mismatch = (await conn.execute(text("""
            SELECT count(*) FROM inventory_levels lv
            WHERE lv.tenant_id = :t AND (lv.reserved > lv.on_hand OR lv.reserved <> (
                SELECT coalesce(sum(fl.quantity), 0) FROM fulfilment_lines fl
                JOIN fulfilments f ON f.tenant_id = fl.tenant_id AND f.id = fl.fulfilment_id
                WHERE fl.tenant_id = lv.tenant_id AND fl.product_id = lv.product_id
                  AND f.location_id = lv.location_id AND f.status IN ('created', 'accepted', 'picking', 'packed')))
            """), {"t": tenant_id})).scalar()
    lost = sum(1 for number, order_id in accepted.items() if stored.get(number) != order_id) + int(unrouted or 0)
    return {"lost": lost, "duplicated": int(duplicated_numbers or 0) + int(over_allocated or 0),
            "oversold": int(reserved_mismatch or 0)}


def _cpu(processes: list[tuple[Any, Any]]) -> dict[str, float]:
    web, worker, scheduler = (process.pid for process, _ in processes)
    return {"web": cpu_seconds(session=web), "worker": cpu_seconds(session=worker),
            "scheduler": cpu_seconds(session=scheduler), "postgres": cpu_seconds(command="postgres"),
            "redis": cpu_seconds(command="redis-server"), "client": sum(os.times()[:2])}


async def test_orders_end_to_end(owner_engine: Any, tmp_path: Path) -> None:
    from core import redrive
    from core.embedded import free_port
    from oms import actors  # noqa: F401  (the kinds of pending work)

    tenant = await create_tenant()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, PUBLIC_URL=base, LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
               DB_POOL_SIZE="20")
    processes = [start_oms(["web", "--port", str(port), "--workers", str(WEB_PROCESSES)], env, tmp_path / "web.log"),
                 start_oms(["worker", "--processes", str(WORKER_PROCESSES), "--threads", str(WORKER_THREADS)], env,
                           tmp_path / "worker.log"),
                 start_oms(["scheduler"], env, tmp_path / "scheduler.log")]
    try:
        wait_healthy(f"{base}/healthz", processes[0][0], tmp_path / "web.log")
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {tenant.api_key}"},
                                     timeout=60) as client:
            skus = await _network(client)
        cpu_before = _cpu(processes)
        # Captures go through a lean client: httpx would spend as much CPU per request as the server.
        accepted, latencies, capture_s = await _capture(base, tenant.api_key, skus)
        deadline = time.monotonic() + ROUTE_TIMEOUT_S
        async with owner_engine.connect() as conn:
            while time.monotonic() < deadline:
                await conn.execute(text("SELECT set_config('app.tenant_id', :t, false)"),
                                   {"t": str(tenant.tenant_id)})
                waiting = (await conn.execute(text("SELECT count(*) FROM orders WHERE tenant_id = :t AND "
                                                   "status = 'received'"), {"t": tenant.tenant_id})).scalar()
                if not waiting:
                    break
                await asyncio.sleep(0.5)
            cpu_used = {name: spent - cpu_before[name] for name, spent in _cpu(processes).items()}
            span = (await conn.execute(text(
                "SELECT extract(epoch FROM max(e.created_at) - min(o.created_at)) FROM orders o "
                "JOIN order_events e ON e.tenant_id = o.tenant_id AND e.order_id = o.id "
                "WHERE o.tenant_id = :t AND e.kind IN ('order.routed', 'order.backordered', 'order.on_hold')"),
                {"t": tenant.tenant_id})).scalar()
            outcomes = dict((await conn.execute(text(
                "SELECT status, count(*) FROM orders WHERE tenant_id = :t GROUP BY status"),
                {"t": tenant.tenant_id})).all())
            # The longest an order waited for its routing: the margin below the re-drive threshold.
            longest_wait = (await conn.execute(text(
                "SELECT extract(epoch FROM max(e.created_at - o.created_at)) FROM orders o "
                "JOIN order_events e ON e.tenant_id = o.tenant_id AND e.order_id = o.id "
                "WHERE o.tenant_id = :t AND e.kind = 'order.routed'"), {"t": tenant.tenant_id})).scalar()
            # Let the scheduler sweep once more after the last order, then count what it re-drove.
            await asyncio.sleep(redrive.SWEEP_EVERY.total_seconds() + 1)
            redriven = (await conn.execute(text("SELECT count(*) FROM redrives WHERE tenant_id = :t"),
                                           {"t": tenant.tenant_id})).scalar()
        checks = await _checks(owner_engine, tenant.tenant_id, accepted)
    finally:
        for process, log_file in processes:
            stop_process(process)
            log_file.close()
    latencies.sort()
    print(f"\nbench orders_processes: {1 + WEB_PROCESSES + WORKER_PROCESSES} processes (web {WEB_PROCESSES}, "
          f"worker {WORKER_PROCESSES} x "
          f"{WORKER_THREADS} threads, scheduler 1) "
          f"+ PostgreSQL + Redis; {CONCURRENCY} concurrent clients; outcomes {outcomes}")
    print(f"bench orders_captured_per_s: {len(accepted) / capture_s:.0f} orders/s")
    print(f"bench orders_routed_per_s: {len(accepted) / float(span or 1):.0f} orders/s")
    print(f"bench capture_p50_ms: {statistics.median(latencies) * 1000:.1f} ms")
    print(f"bench capture_p99_ms: {latencies[int(len(latencies) * 0.99) - 1] * 1000:.1f} ms")
    print(f"bench orders_lost: {checks['lost']} orders")
    print(f"bench orders_duplicated: {checks['duplicated']} orders")
    print(f"bench orders_oversold: {checks['oversold']} levels")
    print(f"bench orders_redriven: {redriven} items (re-driven after "
          f"{redrive.PENDING_WORK['orders.routing'].threshold.total_seconds():.0f} s)")
    print(f"bench orders_longest_routing_wait_s: {float(longest_wait or 0):.2f} s")
    # Where the CPU went, from capture to the last routing decision (postgres and redis-server: all
    # processes of that name on this machine).
    for name, spent in cpu_used.items():
        print(f"bench orders_cpu_{name}_ms: {spent / len(accepted) * 1000:.2f} ms/order")
