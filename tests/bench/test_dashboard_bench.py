"""The console's home at a million orders for one company over two years: the first build of the
day rows (``orders.figures.refresh``), then the home page (today, and this month) as its owner
sees it, through the app, 30 times each.

Printed as `bench NAME: VALUE UNIT`; `make bench` runs it. Nothing here asserts a speed.
"""

from __future__ import annotations

import os
import statistics
import time

from sqlalchemy import text

from factories import bearer, create_tenant, login
from inventory_factories import API

ORDERS = int(os.environ.get("BENCH_DASHBOARD_ORDERS", "1000000"))
STEP_S = 63  # a million orders, one every 63 s: two years back from now
RUNS = 30
LOCATIONS = [("WH-1", "warehouse"), ("WH-2", "warehouse"), ("ST-1", "store"), ("ST-2", "store"), ("ST-3", "store")]

FILL = [
    # Orders: most delivered, some cancelled, a few on hold or backordered; a routing rule each.
    """
    INSERT INTO orders (tenant_id, id, number, channel, status, currency, subtotal_minor, discount_minor,
                        shipping_fee_minor, total_minor, delivery_mode, ship_country, customer_tags, payment_status,
                        authorized_minor, captured_minor, refunded_minor, excluded_locations, created_by, routing,
                        placed_at, created_at, updated_at)
    SELECT :t, gen_random_uuid(), 'O-' || lpad(n::text, 10, '0'),
           (ARRAY['web', 'store', 'marketplace', 'api', 'phone'])[1 + n % 5],
           CASE WHEN n % 997 = 0 THEN 'on_hold' WHEN n % 991 = 0 THEN 'backordered' WHEN n % 50 = 0 THEN 'cancelled'
                WHEN n < 3000 THEN 'routed' ELSE 'delivered' END,
           'EUR', 4999, 100 * (n % 3), 0, 4999 - 100 * (n % 3), 'ship', 'FR', '{}', 'captured', 0, 0, 0, '{}', 'bench',
           jsonb_build_object('rule', 'Rule ' || (n % 4), 'outcome', 'fulfil'),
           now() - make_interval(secs => n * :step), now(), now()
    FROM generate_series(1, :n) AS n
    """,
    # One line each, a second one for a tenth of them; a few units returned.
    """
    INSERT INTO order_lines (tenant_id, id, order_id, line_no, sku, name, quantity, unit_price_minor, discount_minor,
                             order_discount_minor, qty_allocated, qty_shipped, qty_cancelled, qty_returned)
    SELECT o.tenant_id, gen_random_uuid(), o.id, k, 'SKU-' || k, 'Thing', k, 2000, 0, 0, k, k, 0,
           CASE WHEN o.number LIKE '%7' AND k = 1 THEN 1 ELSE 0 END
    FROM orders o, generate_series(1, 2) k WHERE o.tenant_id = :t AND (k = 1 OR o.number LIKE '%3')
    """,
    # One fulfilment each at one of the locations (a second for a twentieth: split), shipped after
    # minutes to days, the recent ones still open; a few rejected at stores.
    """
    INSERT INTO fulfilments (tenant_id, id, order_id, number, location_id, location_code, kind, status, shipped_at,
                             created_at, updated_at)
    SELECT o.tenant_id, gen_random_uuid(), o.id, o.number || '-' || k, gen_random_uuid(),
           (ARRAY['WH-1', 'WH-2', 'ST-1', 'ST-2', 'ST-3'])[1 + (abs(hashtext(o.number)) + k) % 5], 'ship',
           CASE WHEN o.status = 'routed' THEN 'created' WHEN o.number LIKE '%11' THEN 'rejected' ELSE 'shipped' END,
           CASE WHEN o.status IN ('routed') OR o.number LIKE '%11' THEN NULL
                ELSE o.placed_at + make_interval(mins => 5 + abs(hashtext(o.number)) % 3000) END,
           o.placed_at + interval '1 minute', now()
    FROM orders o, generate_series(1, 2) k WHERE o.tenant_id = :t AND (k = 1 OR o.number LIKE '%20')
    """,
    # The timeline of the last month's orders (older ones' changes are long folded into day rows):
    # placed, and where each stands.
    """
    INSERT INTO order_events (tenant_id, id, order_id, kind, from_status, to_status, actor, data, created_at)
    SELECT o.tenant_id, gen_random_uuid(), o.id, 'order.' || s, NULL, s, 'bench', '{}',
           o.placed_at + make_interval(mins => i::int)
    FROM orders o, unnest(ARRAY['received', o.status]) WITH ORDINALITY AS e(s, i)
    WHERE o.tenant_id = :t AND o.placed_at > now() - interval '31 days'
    """,
    # Refunds of returns and goodwill on a few.
    """
    INSERT INTO refunds (tenant_id, id, order_id, amount_minor, currency, provider, source, reason, status, created_by,
                         created_at)
    SELECT o.tenant_id, gen_random_uuid(), o.id, 500, 'EUR', 'external',
           (ARRAY['return', 'goodwill'])[1 + abs(hashtext(o.number)) % 2], '', 'sent', 'bench', o.placed_at
    FROM orders o WHERE o.tenant_id = :t AND o.number LIKE '%19'
    """,
]


async def test_dashboard_at_a_million_orders(client, owner_engine) -> None:
    from core.db import get_database
    from orders import figures

    tenant = await create_tenant(timezone="Europe/Paris")
    tid = tenant.tenant_id
    for code, kind in LOCATIONS:
        made = await client.post(f"{API}/locations", headers=bearer(tenant.api_key), json={
            "code": code, "name": f"Bench {code}", "kind": kind, "country": "FR", "timezone": "Europe/Paris",
            "latitude": 48.85, "longitude": 2.35, "ships_to_customers": True})
        assert made.status_code == 201, made.text
    started = time.perf_counter()
    for statement in FILL:
        async with owner_engine.begin() as conn:
            await conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tid)})
            await conn.execute(text(statement), {"t": tid, "n": ORDERS, "step": STEP_S})
    async with owner_engine.begin() as conn:  # committed: statistics gathered in a rolled-back block vanish
        for table in ("orders", "order_lines", "fulfilments", "order_events", "refunds"):
            await conn.execute(text(f"ANALYZE {table}"))
    print(f"\nbench dashboard_fill_s: {time.perf_counter() - started:.1f} s for {ORDERS} orders")

    began = time.perf_counter()
    async with get_database().transaction(tenant_id=tid) as session:
        days = await figures.refresh(session, tid, "Europe/Paris")
    print(f"bench dashboard_rollup_build_s: {time.perf_counter() - began:.1f} s ({days} days)")
    async with owner_engine.begin() as conn:
        for table in ("order_days", "location_days", "rollup_marks"):
            await conn.execute(text(f"ANALYZE {table}"))

    await login(client, tenant.email)

    async def timed(params: dict[str, str]) -> tuple[float, float]:
        timings = []
        for _ in range(RUNS):
            t0 = time.perf_counter()
            response = await client.get("/app", params=params)
            timings.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, response.text[:500]
            assert 'data-kpi="orders"' in response.text
        return statistics.quantiles(timings, n=20)[18], statistics.median(timings)

    await client.get("/app")  # warm: templates compiled, connections open
    p95, median = await timed({})
    print(f"bench dashboard_ms: p95 {p95:.1f} ms (median {median:.1f})")
    p95, median = await timed({"period": "month"})
    print(f"bench dashboard_month_ms: p95 {p95:.1f} ms (median {median:.1f})")
