"""Counting a segment at 100,000 customers: one company with 100,000 customers (and another beside
it with 10,000), their figures as their orders would have made them (15 % never ordered; the others
1 to ~10 orders over two years, the recent ones more often; web, store and marketplace in
realistic shares, the store shoppers' stores, the categories they bought, consent), made set-based
with generate_series. A segment reads only the customers table (its columns are kept by orders at
capture, cancellation and return), so no orders are made: they would cost minutes and change nothing.

Times ``customers.segments.count`` as the app role under row-level security, each run in its own
transaction as a page's request would: the issue's segment ("ordered in store in the last 90 days,
never online") and a three-condition one. Prints `bench segment_count_ms: N ms` (the issue's
segment, median of the runs) and the others' figures. Nothing here asserts a speed;
``BENCH_SEGMENT_CUSTOMERS`` makes it smaller.
"""

from __future__ import annotations

import statistics
import time
import uuid
from datetime import datetime
from os import environ
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, text
from sqlalchemy.dialects import postgresql

from factories import create_tenant

CUSTOMERS = int(environ.get("BENCH_SEGMENT_CUSTOMERS", "100000"))
RUNS = 15
TZ = "Europe/Paris"

# r[1..8]: independent draws per customer. Channels: web 70 %, store 45 %, marketplace 15 % of
# buyers (at least one of them); a store shopper shopped in one or two of 20 stores.
FILL = """
    INSERT INTO customers (tenant_id, id, email, name, phone, tags, created_at, updated_at, orders_count,
                           lifetime_value_minor, first_order_at, last_order_at, channels, stores, categories,
                           email_consent, sms_consent, consent_updated_at, unsubscribed_at)
    SELECT :t, gen_random_uuid(), :prefix || n || '@example.test', 'Customer ' || n, '',
           CASE WHEN r[7] < 0.05 THEN ARRAY['vip']::varchar[] ELSE '{}' END, now(), now(),
           orders, orders * (2500 + floor(r[2] * 9000))::bigint,
           CASE WHEN orders > 0 THEN last_at - make_interval(days => floor(r[3] * orders * 90)::int) END,
           last_at,
           CASE WHEN orders = 0 THEN '{}'::varchar[] ELSE array_remove(ARRAY[
               CASE WHEN web OR NOT (store OR market) THEN 'web' END, CASE WHEN store THEN 'store' END,
               CASE WHEN market THEN 'marketplace' END], NULL) END,
           CASE WHEN store THEN array_remove(ARRAY['S-' || lpad((1 + floor(r[4] * 20))::int::text, 2, '0'),
                                             CASE WHEN r[5] < 0.2 THEN 'S-01' END], NULL)::varchar[]
                ELSE '{}' END,
           CASE WHEN orders = 0 THEN '{}'::varchar[] ELSE array_remove(ARRAY[
               CASE WHEN r[6] < 0.5 THEN 'shoes' END, CASE WHEN r[6] BETWEEN 0.3 AND 0.7 THEN 'bags' END,
               CASE WHEN r[6] > 0.6 THEN 'hats' END, CASE WHEN r[8] < 0.25 THEN 'coats' END,
               CASE WHEN r[8] > 0.9 THEN 'toys' END], NULL)::varchar[] END,
           r[7] < 0.55, r[8] < 0.3, now(), CASE WHEN r[5] > 0.97 THEN now() END
    FROM (SELECT n, r, orders, orders > 0 AND r[5] < 0.7 AS web, orders > 0 AND r[6] < 0.45 AS store,
                 orders > 0 AND r[8] < 0.15 AS market,
                 CASE WHEN orders > 0 THEN now() - make_interval(secs => (r[1] ^ 2) * 730 * 86400) END AS last_at
          FROM (SELECT n, r, CASE WHEN r[1] < 0.15 THEN 0 ELSE 1 + floor(-ln(1 - r[2]) * 1.6)::int END AS orders
                FROM (SELECT n, ARRAY[random(), random(), random(), random(), random(), random(), random(),
                                      random()] AS r
                      FROM generate_series(1, CAST(:count AS integer)) AS n) AS drawn) AS counted) AS c
"""

ISSUE_SEGMENT = {"all": [
    {"field": "customer.channels", "op": "has", "value": "store"},
    {"field": "customer.last_order_date", "op": "in_last_days", "value": 90},
    {"field": "customer.channels", "op": "has_none", "value": ["web"]},
]}
THREE_CONDITIONS = {"all": [
    {"field": "customer.email_consent", "op": "eq", "value": "yes"},
    {"field": "customer.lifetime_value", "op": "gte", "value": 20_000},
    {"any": [{"field": "customer.categories", "op": "has_any", "value": ["shoes", "coats"]},
             {"field": "customer.orders_count", "op": "gte", "value": 5}]},
]}
LAPSED = {"all": [{"field": "customer.orders_count", "op": "gte", "value": 2},
                  {"field": "customer.last_order_date", "op": "not_in_last_days", "value": 365}]}


async def test_segment_count_at_100k_customers(owner_engine: Any) -> None:
    from core.db import get_database
    from customers import segments
    from customers.models import Customer
    from rules.segments import validate_segment

    started = time.perf_counter()
    a, b = await create_tenant(timezone=TZ), await create_tenant(timezone=TZ)
    async with owner_engine.connect() as conn:
        await conn.execute(text("SELECT setseed(0.19)"))
        for tenant_id, count, prefix in ((a.tenant_id, CUSTOMERS, "a"), (b.tenant_id, CUSTOMERS // 10, "b")):
            await conn.execute(text(FILL), {"t": tenant_id, "count": count, "prefix": prefix})
        await conn.commit()
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text("VACUUM ANALYZE customers"))
    print(f"\nbench segment_fill_s: {time.perf_counter() - started:.1f} s for {CUSTOMERS + CUSTOMERS // 10} customers")

    database = get_database()

    async def timed(condition: dict[str, Any]) -> tuple[float, int]:
        began = time.perf_counter()
        async with database.transaction(tenant_id=a.tenant_id) as session:
            found = await segments.count(session, a.tenant_id, condition, timezone=TZ)
        return (time.perf_counter() - began) * 1000, found

    async def median_ms(condition: dict[str, Any]) -> tuple[float, int]:
        assert validate_segment(condition) == []
        for _ in range(3):  # the pool's connections, the table in the buffer cache
            await timed(condition)
        runs = [await timed(condition) for _ in range(RUNS)]
        assert len({found for _, found in runs}) == 1
        return statistics.median(ms for ms, _ in runs), runs[0][1]

    results = {name: await median_ms(condition) for name, condition in
               (("issue", ISSUE_SEGMENT), ("three", THREE_CONDITIONS), ("lapsed", LAPSED), ("everyone", None))}
    async with database.transaction(tenant_id=a.tenant_id) as session:
        today = datetime.now(ZoneInfo(TZ)).date()
        query = select(func.count()).select_from(Customer).where(
            Customer.tenant_id == a.tenant_id, segments.segment_clause(ISSUE_SEGMENT, today=today, timezone=TZ))
        sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
        plan = "\n".join(row[0] for row in await session.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql)))
        page_began = time.perf_counter()
        page = await segments.members(session, a.tenant_id, ISSUE_SEGMENT, timezone=TZ, limit=1000)
        page_ms = (time.perf_counter() - page_began) * 1000
    print(f"bench segment_plan (the issue's segment):\n{plan}")
    issue_ms, issue_count = results["issue"]
    print(f"bench segment_count_ms: {issue_ms:.1f} ms (the issue's segment, {issue_count} of {CUSTOMERS} customers, "
          f"median of {RUNS})")
    for name in ("three", "lapsed", "everyone"):
        ms, found = results[name]
        print(f"bench segment_count_{name}_ms: {ms:.1f} ms ({found} customers)")
    print(f"bench segment_members_page_ms: {page_ms:.1f} ms (first 1,000 members of the issue's segment)")
    assert results["everyone"][1] == CUSTOMERS  # the other company's customers are not counted
    assert 0 < issue_count < CUSTOMERS and len(page) == min(1000, issue_count)
    assert all(isinstance(m.id, uuid.UUID) for m in page)
