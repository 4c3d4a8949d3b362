"""Refunds racing on one order: eight concurrent goodwill refunds of 60 % of the captured amount on
each of 100 orders, through the API, each request on its own client and database session.

Prints `bench refund_ledger_race_ok: N orders over captured` (N must be 0: the order row lock and
the database's check keep every order's refunds within what it captured), the refunds that went
through (one per order) and the time taken. Nothing here asserts a speed.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Any

from sqlalchemy import text

from factories import bearer, create_tenant

ORDERS = int(os.environ.get("BENCH_REFUND_ORDERS", "100"))
RACERS = 8
CAPTURED = 10_000

ORDER = text("""
    INSERT INTO orders (tenant_id, id, number, channel, status, currency, subtotal_minor, discount_minor,
                        shipping_fee_minor, total_minor, delivery_mode, ship_country, customer_tags, payment_provider,
                        payment_status, authorized_minor, captured_minor, refunded_minor, excluded_locations,
                        created_by, placed_at, created_at, updated_at)
    VALUES (:t, :id, :number, 'web', 'shipped', 'EUR', :c, 0, 0, :c, 'ship', 'FR', '{}', 'external', 'captured', :c,
            :c, 0, '{}', 'bench', now(), now(), now())
""")
LINE = text("""
    INSERT INTO order_lines (tenant_id, id, order_id, line_no, sku, name, quantity, unit_price_minor, discount_minor,
                             order_discount_minor, qty_allocated, qty_shipped, qty_cancelled, qty_returned)
    VALUES (:t, :id, :order_id, 1, 'BENCH-REFUND', 'Bench item', 1, :c, 0, 0, 1, 1, 0, 0)
""")
OVER = text("""
    SELECT count(*) FROM orders o
    WHERE o.tenant_id = :t AND (o.refunded_minor > o.captured_minor OR o.captured_minor < (
        SELECT coalesce(sum(r.amount_minor), 0) FROM refunds r WHERE r.tenant_id = o.tenant_id AND r.order_id = o.id))
""")


async def test_refund_ledger_race(make_client, owner_engine: Any) -> None:
    tenant = await create_tenant()
    ids = [uuid.uuid4() for _ in range(ORDERS)]
    async with owner_engine.connect() as conn, conn.begin():
        await conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant.tenant_id)})
        await conn.execute(ORDER, [{"t": tenant.tenant_id, "id": i, "number": f"R-{n:05d}", "c": CAPTURED}
                                   for n, i in enumerate(ids)])
        await conn.execute(LINE, [{"t": tenant.tenant_id, "id": uuid.uuid4(), "order_id": i, "c": CAPTURED}
                                  for i in ids])
    clients = [await make_client() for _ in range(RACERS)]
    amount = CAPTURED * 60 // 100
    started = time.perf_counter()
    codes: list[int] = []
    for order_id in ids:
        answers = await asyncio.gather(*(c.post(f"/api/v1/orders/{order_id}/refunds", headers=bearer(tenant.api_key),
                                                json={"amount_minor": amount, "reason": f"racer {n}"})
                                         for n, c in enumerate(clients)))
        codes += [a.status_code for a in answers]
    elapsed = time.perf_counter() - started
    async with owner_engine.connect() as conn, conn.begin():
        await conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant.tenant_id)})
        over = (await conn.execute(OVER, {"t": tenant.tenant_id})).scalar_one()
    print(f"\nbench refund_ledger_race_ok: {over} orders over captured")
    print(f"bench refund_ledger_race_refunds: {codes.count(201)} refunds made for {ORDERS} orders "
          f"({codes.count(422)} refused, {len(codes) - codes.count(201) - codes.count(422)} other)")
    print(f"bench refund_ledger_race_s: {elapsed:.1f} s for {ORDERS * RACERS} requests")
    assert over == 0
