"""Inventory benchmarks: reservations under contention and a 100,000-row snapshot.

Printed as `bench NAME: VALUE UNIT`; `make bench` runs them. Nothing here asserts a speed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

from sqlalchemy import func, insert, select, text

from factories import create_tenant

ROOT = Path(__file__).resolve().parents[2]


async def _setup(tenant_id: uuid.UUID, *, skus: int, locations: int, on_hand: int) -> tuple[list, list]:
    from core.db import get_database, utcnow
    from core.ids import uuid7
    from inventory.models import InventoryLevel, Location, Product

    now = utcnow()
    products = [{"tenant_id": tenant_id, "id": uuid7(), "sku": f"SKU-{i:06d}", "name": f"Product {i}",
                 "price_minor": 1000, "currency": "EUR", "attributes": {}, "status": "active", "created_at": now,
                 "updated_at": now} for i in range(skus)]
    places = [{"tenant_id": tenant_id, "id": uuid7(), "code": f"LOC-{i}", "name": f"Location {i}",
               "kind": "warehouse", "country": "FR", "timezone": "Europe/Paris", "opening_hours": {}, "tags": [],
               "status": "active", "priority": 100, "created_at": now, "updated_at": now,
               "address_line1": "", "city": "", "postcode": "", "ships_to_customers": True,
               "click_and_collect": False, "ship_from_store": False, "receives_transfers": False,
               "accepts_returns": False} for i in range(locations)]
    async with get_database().transaction(tenant_id=tenant_id) as session:
        for start in range(0, len(products), 5000):
            await session.execute(insert(Product), products[start:start + 5000])
        await session.execute(insert(Location), places)
        if on_hand:
            levels = [{"tenant_id": tenant_id, "id": uuid7(), "product_id": p["id"], "location_id": loc["id"],
                       "on_hand": on_hand, "reserved": 0, "safety_stock": 0, "updated_at": now}
                      for p in products for loc in places]
            for start in range(0, len(levels), 5000):
                await session.execute(insert(InventoryLevel), levels[start:start + 5000])
    return products, places


WORKER = textwrap.dedent("""
    import asyncio, json, random, sys, time, uuid
    from core.db import get_database
    from inventory.ledger import InsufficientStock, Line, reserve

    async def main(tenant, products, location, attempts, seed):
        rng = random.Random(seed)
        db = get_database()
        won = lost = 0
        started = time.perf_counter()
        for n in range(attempts):
            line = Line(uuid.UUID(rng.choice(products)), uuid.UUID(location), 1)
            try:
                async with db.transaction(tenant_id=uuid.UUID(tenant)) as session:
                    await reserve(session, uuid.UUID(tenant), [line], reference=f"bench-{seed}-{n}", actor="bench")
                won += 1
            except InsufficientStock:
                lost += 1
        print(json.dumps({"won": won, "lost": lost, "seconds": time.perf_counter() - started}))

    args = json.loads(sys.argv[1])
    asyncio.run(main(**args))
""")


async def test_bench_reservations_under_contention() -> None:
    """8 worker processes fight over 100 SKUs with 20 units each at one location."""
    import json

    from core.db import get_database
    from inventory.models import InventoryLevel

    tenant = await create_tenant()
    products, places = await _setup(tenant.tenant_id, skus=100, locations=1, on_hand=20)
    product_ids = [str(p["id"]) for p in products]
    attempts = 400
    env = dict(os.environ, PYTHONPATH=str(ROOT / "platform"))
    started = time.perf_counter()
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, json.dumps({
            "tenant": str(tenant.tenant_id), "products": product_ids, "location": str(places[0]["id"]),
            "attempts": attempts, "seed": seed})], stdout=subprocess.PIPE, env=env, cwd=ROOT)
        for seed in range(8)
    ]
    results = [json.loads(p.communicate(timeout=600)[0].decode().strip().splitlines()[-1]) for p in procs]
    elapsed = time.perf_counter() - started
    won = sum(r["won"] for r in results)
    busiest = max(r["seconds"] for r in results)
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        reserved = await session.scalar(select(func.sum(InventoryLevel.reserved)))
        oversold = await session.scalar(select(func.coalesce(func.sum(
            func.greatest(InventoryLevel.reserved - InventoryLevel.on_hand + InventoryLevel.safety_stock, 0)), 0)))
        negative = await session.scalar(select(func.count()).where(
            InventoryLevel.on_hand - InventoryLevel.reserved - InventoryLevel.safety_stock < 0))
    assert reserved == won
    print(f"\nbench reservations_per_s: {8 * attempts / busiest:.0f} attempts/s ({won} won of {8 * attempts}; "
          f"wall {elapsed:.1f} s incl. process start)")
    print(f"bench reservation_oversold: {oversold} units")
    print(f"bench reservation_skus_below_zero: {negative} levels")


async def test_bench_snapshot_100k_rows() -> None:
    """A 100,000-row snapshot (10,000 SKUs x 10 locations) applied by the feed actor's code."""
    from core.auth import Principal
    from core.db import get_database
    from inventory import feeds

    tenant = await create_tenant()
    products, places = await _setup(tenant.tenant_id, skus=10_000, locations=10, on_hand=0)
    lines = ["sku,location,quantity"] + [f"{p['sku']},{loc['code']},{(i * 7 + j) % 50}"
                                         for i, p in enumerate(products) for j, loc in enumerate(places)]
    payload = ("\n".join(lines) + "\n").encode()
    principal = Principal(tenant_id=tenant.tenant_id, role="owner", label="bench", tenant_name="bench",
                          timezone="UTC", currency="EUR")
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        feed, _ = await feeds.accept_feed(session, principal, external_id="bench-100k", kind="snapshot",
                                          content_format="csv", payload=payload, source="api")
    started = time.perf_counter()
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        done = await feeds.apply(session, tenant.tenant_id, feed.id)
    elapsed = time.perf_counter() - started
    assert done is not None and done.status == "applied", done.errors if done else None
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        total = await session.scalar(text("SELECT sum(on_hand) FROM inventory_levels WHERE tenant_id = :t"),
                                     {"t": tenant.tenant_id})
    expected = sum((i * 7 + j) % 50 for i in range(10_000) for j in range(10))
    assert total == expected
    print(f"\nbench snapshot_100k_s: {elapsed:.2f} s ({100_000 / elapsed:.0f} rows/s, {done.rows_changed} changed)")


async def test_bench_availability_call(app) -> None:
    """What a product page pays: availability of 10 SKUs across 20 locations, through the API."""
    import httpx

    from factories import bearer

    tenant = await create_tenant()
    products, _ = await _setup(tenant.tenant_id, skus=10, locations=20, on_hand=5)
    query = "&".join(f"sku={p['sku']}" for p in products) + "&lat=48.85&lon=2.35"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://bench.local") as client:
        for _ in range(10):
            response = await client.get(f"/api/v1/availability?{query}", headers=bearer(tenant.api_key))
            assert response.status_code == 200
        timings = []
        for _ in range(200):
            started = time.perf_counter()
            await client.get(f"/api/v1/availability?{query}", headers=bearer(tenant.api_key))
            timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    print(f"\nbench availability_p50_ms: {timings[100]:.1f} ms")
    print(f"bench availability_p95_ms: {timings[190]:.1f} ms")
