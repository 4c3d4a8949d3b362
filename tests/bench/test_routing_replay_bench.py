"""Replay benchmark: the tenant's last 10,000 orders (5 lines each) routed by the draft and by the
version in force, against 50 locations, with the stock each order met rebuilt from the ledger.

Printed as `bench NAME: VALUE UNIT`; `make bench` runs it. Nothing here asserts a speed.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from datetime import timedelta

from sqlalchemy import insert

from factories import create_tenant

ORDERS = 10_000
LOCATIONS = 50
SKUS = 500


async def _network(tenant_id: uuid.UUID, rng: random.Random) -> dict[str, str]:
    from core.db import get_database, utcnow
    from core.ids import uuid7
    from inventory.models import InventoryLevel, InventoryMovement, Location, Product

    now = utcnow()
    products = [{"tenant_id": tenant_id, "id": uuid7(), "sku": f"SKU-{i:04d}", "name": f"Product {i}",
                 "category": rng.choice(["summer", "winter", "shoes", "home"]), "price_minor": rng.randint(500, 9000),
                 "currency": "EUR", "attributes": {}, "status": "active", "created_at": now, "updated_at": now}
                for i in range(SKUS)]
    places = [{"tenant_id": tenant_id, "id": uuid7(), "code": f"LOC-{i:02d}", "name": f"Location {i}",
               "kind": "warehouse" if i < 5 else "store", "country": "FR", "timezone": "Europe/Paris",
               "latitude": 43.0 + rng.random() * 7, "longitude": -1.0 + rng.random() * 8, "opening_hours": {},
               "tags": [], "status": "active", "priority": rng.randint(1, 100), "created_at": now, "updated_at": now,
               "address_line1": "", "city": "", "postcode": "", "ships_to_customers": i < 5,
               "click_and_collect": i >= 5, "ship_from_store": i >= 5, "receives_transfers": i >= 5,
               "accepts_returns": False, "daily_capacity": None if i < 5 else 300} for i in range(LOCATIONS)]
    levels, movements = [], []
    for product in products:
        for place in rng.sample(places, 20):
            quantity = rng.randint(0, 30)
            levels.append({"tenant_id": tenant_id, "id": uuid7(), "product_id": product["id"],
                           "location_id": place["id"], "on_hand": quantity, "reserved": 0, "safety_stock": 0,
                           "updated_at": now})
            movements.append({"tenant_id": tenant_id, "id": uuid7(), "product_id": product["id"],
                              "location_id": place["id"], "on_hand_delta": quantity, "reserved_delta": 0,
                              "safety_stock_delta": 0, "reason": "feed", "actor": "bench",
                              "created_at": now - timedelta(days=40)})
    async with get_database().transaction(tenant_id=tenant_id) as session:
        await session.execute(insert(Product), products)
        await session.execute(insert(Location), places)
        for start in range(0, len(levels), 5000):
            await session.execute(insert(InventoryLevel), levels[start:start + 5000])
            await session.execute(insert(InventoryMovement), movements[start:start + 5000])
    return {p["sku"]: p["category"] for p in products}


async def _orders(tenant_id: uuid.UUID, categories: dict[str, str], rng: random.Random) -> None:
    from core.db import get_database, utcnow
    from core.ids import uuid7
    from orders.models import Order, OrderLine

    now = utcnow()
    orders, lines = [], []
    for n in range(ORDERS):
        order_id = uuid7()
        picked = rng.sample(sorted(categories), 5)
        orders.append({"tenant_id": tenant_id, "id": order_id, "number": f"B-{n:06d}", "channel": "web",
                       "status": "accepted", "currency": "EUR", "total_minor": rng.randint(1000, 40000),
                       "delivery_mode": "ship", "ship_country": "FR", "ship_postcode": "75001",
                       "ship_latitude": 43.0 + rng.random() * 7, "ship_longitude": -1.0 + rng.random() * 8,
                       "customer_email": f"c{rng.randint(0, 3000)}@example.test", "customer_tags": [],
                       "placed_at": now - timedelta(minutes=4 * (ORDERS - n)), "created_at": now})
        lines += [{"tenant_id": tenant_id, "id": uuid7(), "order_id": order_id, "line_no": i + 1, "sku": sku,
                   "category": categories[sku], "quantity": rng.randint(1, 3), "unit_price_minor": 1000}
                  for i, sku in enumerate(picked)]
    async with get_database().transaction(tenant_id=tenant_id) as session:
        for start in range(0, ORDERS, 2000):
            await session.execute(insert(Order), orders[start:start + 2000])
        for start in range(0, len(lines), 5000):
            await session.execute(insert(OrderLine), lines[start:start + 5000])


def _document() -> dict:
    from rules.routing import new_rule

    summer = new_rule("summer", "Summer from stores")
    summer["when"] = {"all": [{"field": "line.category", "op": "in", "value": ["summer"]}]}
    summer["then"]["location_types"] = ["store", "warehouse"]
    big = new_rule("big", "Big orders from warehouses")
    big["when"] = {"all": [{"field": "order.total", "op": "gte", "value": 30000}]}
    big["then"]["location_types"] = ["warehouse"]
    rest = new_rule("rest", "Everything else")
    rest["then"]["sorts"] = [{"by": "distance", "band": 100}, {"by": "stock", "band": 0}]
    return {"rules": [summer, big, rest], "otherwise": "hold"}


async def test_replay_10k_orders() -> None:
    from core.auth import Principal
    from core.db import get_database
    from orders import simulation
    from rules import service

    tenant = await create_tenant()
    rng = random.Random(20261125)
    categories = await _network(tenant.tenant_id, rng)
    await _orders(tenant.tenant_id, categories, rng)
    principal = Principal(tenant_id=tenant.tenant_id, role="owner", label="bench", tenant_name=tenant.name,
                          timezone="Europe/Paris", currency="EUR")
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        await service.save_draft(session, principal, _document())
        await service.publish(session, principal)
        later = _document()
        later["rules"] = later["rules"][1:]
        await service.save_draft(session, principal, later)

    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        started = time.perf_counter()
        result = await simulation.replay(session, principal, days=30, limit=ORDERS, with_traces=20)
        elapsed = time.perf_counter() - started
    if os.environ.get("BENCH_PROFILE"):
        import cProfile
        import pstats

        import anyio

        async def inline(function, *args):  # profile the routing too, not only the database reads
            return function(*args)

        profile = cProfile.Profile()
        async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
            original, anyio.to_thread.run_sync = anyio.to_thread.run_sync, inline
            profile.enable()
            try:
                await simulation.replay(session, principal, days=30, limit=ORDERS, with_traces=20)
            finally:
                profile.disable()
                anyio.to_thread.run_sync = original
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    assert result["orders"] == ORDERS
    print(f"\nbench routing_replay_10k_s: {elapsed:.2f} s")
    print(f"bench routing_replay_orders_per_s: {ORDERS / elapsed:.0f} orders/s")
    print(f"bench routing_replay_changed: {result['changed']} orders")
