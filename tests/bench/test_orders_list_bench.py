"""The orders list at a million orders for one company: first page, a page far down (keyset),
filtered by status and by channel and day, and a search by customer email, through the API.

Printed as `bench NAME: VALUE UNIT`; `make bench` runs it. Nothing here asserts a speed.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from sqlalchemy import text

from factories import bearer, create_tenant

ORDERS = int(os.environ.get("BENCH_LIST_ORDERS", "1000000"))

FILL = text("""
    INSERT INTO orders (tenant_id, id, number, channel, external_number, status, currency, subtotal_minor,
                        discount_minor, shipping_fee_minor, total_minor, delivery_mode, ship_country,
                        customer_email, customer_tags, payment_status, authorized_minor, captured_minor,
                        refunded_minor, excluded_locations, created_by, placed_at, created_at, updated_at)
    SELECT :t, gen_random_uuid(), 'O-' || lpad(n::text, 10, '0'),
           (ARRAY['web', 'store', 'marketplace', 'api'])[1 + n % 4], 'X' || n,
           (ARRAY['routed', 'shipped', 'delivered', 'cancelled', 'on_hold'])[1 + n % 5], 'EUR', 1999, 0, 0, 1999,
           'ship', 'FR', 'customer' || (n % 200000) || '@example.test', '{}', 'none', 0, 0, 0, '{}', 'bench',
           now() - make_interval(mins => n), now(), now()
    FROM generate_series(1, :n) AS n
""")


async def test_orders_list_at_a_million(client, owner_engine) -> None:
    tenant = await create_tenant()
    started = time.perf_counter()
    async with owner_engine.begin() as conn:
        await conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant.tenant_id)})
        await conn.execute(FILL, {"t": tenant.tenant_id, "n": ORDERS})
    async with owner_engine.begin() as conn:  # committed: statistics gathered in a rolled-back block vanish
        await conn.execute(text("ANALYZE orders"))
    print(f"\nbench orders_list_fill_s: {time.perf_counter() - started:.1f} s for {ORDERS} orders")

    key = bearer(tenant.api_key)

    async def median_ms(params: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        timings, body = [], {}
        for _ in range(7):
            began = time.perf_counter()
            response = await client.get("/api/v1/orders", headers=key, params=params)
            timings.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, response.text
            body = response.json()
        return statistics.median(timings), body

    first_ms, first = await median_ms({"limit": 50})
    assert len(first["orders"]) == 50
    cursor = first["next_cursor"]
    for _ in range(20):  # walk down 1,000 orders, then time the next page
        cursor = (await client.get("/api/v1/orders", headers=key, params={"limit": 50, "after": cursor})).json()[
            "next_cursor"]
    deep_ms, deep = await median_ms({"limit": 50, "after": cursor})
    assert len(deep["orders"]) == 50
    status_ms, by_status = await median_ms({"limit": 50, "status": "on_hold"})
    assert {o["status"] for o in by_status["orders"]} == {"on_hold"}
    channel_ms, _ = await median_ms({"limit": 50, "channel": "marketplace", "day_from": "2026-01-01"})
    email_ms, by_email = await median_ms({"q": "customer4242@example.test"})
    assert by_email["orders"] and all(o["customer_email"] == "customer4242@example.test" for o in by_email["orders"])
    print(f"bench orders_list_first_page_ms: {first_ms:.1f} ms")
    print(f"bench orders_list_deep_page_ms: {deep_ms:.1f} ms")
    print(f"bench orders_list_status_filter_ms: {status_ms:.1f} ms")
    print(f"bench orders_list_channel_day_filter_ms: {channel_ms:.1f} ms")
    print(f"bench orders_list_email_search_ms: {email_ms:.1f} ms")
