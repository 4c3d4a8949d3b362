"""Segments in SQL (customers.segments) say exactly what the pure evaluator (rules.segments)
says: random customers, with dates on both sides of local midnights around a daylight-saving
change and customers who never ordered, then random condition trees, each counted and listed
in SQL and evaluated in Python over ``facts_of``. Another company's customers, made to match
everything, are never counted. As the app role, under row-level security."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert

from factories import create_tenant

TZ = "America/New_York"
ZONE = ZoneInfo(TZ)
# 00:30 on Tuesday 10 March 2026 in New York (EDT since Sunday 8 March, 02:00): today is the 10th
# there, still the 10th in UTC, and "the last 2 days" begin at midnight EST on the 8th.
NOW = datetime(2026, 3, 10, 4, 30, tzinfo=UTC)
TODAY = NOW.astimezone(ZONE).date()

CHANNELS = ["web", "store", "marketplace", "api", "phone"]
STORES = ["PAR-1", "LYO-2", "NYC-10"]
CATEGORIES = ["shoes", "hats", "bags"]
TAGS = ["vip", "b2b", "new"]
LONG_TAG = "vip" + "x" * 60  # longer than the column (50): must not match a truncated tag


def local_instant(days_ago: int, rng: random.Random) -> datetime:
    """A moment ``days_ago`` local days before today: just after or before a local midnight, or any time."""
    day = TODAY - timedelta(days=days_ago)
    shape = rng.randrange(4)
    if shape == 0:
        return datetime.combine(day, time(), ZONE).astimezone(UTC)
    if shape == 1:
        return datetime.combine(day + timedelta(days=1), time(), ZONE).astimezone(UTC) - timedelta(microseconds=1)
    if shape == 2:
        return datetime.combine(day, time(), ZONE).astimezone(UTC) + timedelta(seconds=1)
    return datetime.combine(day, time(rng.randrange(24), rng.randrange(60)), ZONE).astimezone(UTC)


def subset(rng: random.Random, pool: list[str]) -> list[str]:
    return [value for value in pool if rng.random() < 0.35]


def random_customer(rng: random.Random, tenant_id: uuid.UUID, n: int) -> dict[str, Any]:
    ordered = rng.random() < 0.8
    last = local_instant(rng.choice([0, 1, 2, 3, 6, 7, 8, 29, 30, 31, 89, 90, 91, rng.randrange(400)]), rng)
    first = last - timedelta(days=rng.randrange(0, 700), seconds=rng.randrange(86_400))
    return {
        "tenant_id": tenant_id, "id": uuid.uuid4(), "email": f"c{n}@example.test", "name": f"Customer {n}",
        "phone": "", "tags": subset(rng, TAGS), "created_at": NOW, "updated_at": NOW,
        "orders_count": rng.randrange(1, 9) if ordered else 0,
        "lifetime_value_minor": rng.choice([0, 4_999, 5_000, 5_001, 25_000, rng.randrange(100_000)]) if ordered else 0,
        "first_order_at": first if ordered else None, "last_order_at": last if ordered else None,
        "channels": subset(rng, CHANNELS) if ordered else [], "stores": subset(rng, STORES) if ordered else [],
        "categories": subset(rng, CATEGORIES) if ordered else [],
        "email_consent": rng.random() < 0.5, "sms_consent": rng.random() < 0.3,
        "unsubscribed_at": NOW - timedelta(days=3) if rng.random() < 0.1 else None,
    }


def the_value(rng: random.Random, field: Any, op: str) -> Any:
    from rules.fields import OPERATORS, RELATIVE_DAYS

    if op in RELATIVE_DAYS:
        return rng.choice([0, 1, 2, 3, 7, 30, 90, 36_500])
    arity = OPERATORS[op][1]

    def one() -> Any:
        if field.type == "integer":
            return rng.randrange(0, 10)
        if field.type == "money":
            return rng.choice([0, 4_999, 5_000, 25_000, rng.randrange(100_000)])
        if field.type == "date":
            if rng.random() < 0.05:
                return rng.choice(["0001-01-01", "9999-12-31"])
            days_ago = rng.choice([-1, 0, 1, 2, 3, 7, 8, 30, 31, 90, rng.randrange(500)])
            return (TODAY - timedelta(days=days_ago)).isoformat()
        if field.type == "choice":
            return rng.choice(["yes", "no"])
        pool = {"customer.channels": CHANNELS, "customer.stores": [*STORES, "ROM-1"],
                "customer.categories": [*CATEGORIES, "toys"], "customer.tags": [*TAGS, LONG_TAG]}[field.key]
        return rng.choice(pool)

    if arity == "one":
        return one()
    if arity == "range":
        low, high = one(), one()
        return [min(low, high), max(low, high)]
    return [one() for _ in range(rng.randrange(1, 4))]


def random_condition(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    from rules.fields import fields_for

    if depth < 3 and rng.random() < (0.6 if depth == 0 else 0.3):
        kind = rng.choice(["all", "any", "not"])
        if kind == "not":
            return {"not": random_condition(rng, depth + 1)}
        return {kind: [random_condition(rng, depth + 1) for _ in range(rng.randrange(1, 4))]}
    field = rng.choice(list(fields_for("segments").values()))
    op = rng.choice(field.operators)
    return {"field": field.key, "op": op, "value": the_value(rng, field, op)}


async def add_customers(tenant_id: uuid.UUID, rows: list[dict[str, Any]]) -> None:
    from core.db import get_database
    from customers.models import Customer

    async with get_database().transaction(tenant_id=tenant_id) as session:
        await session.execute(insert(Customer), rows)


async def test_sql_and_the_pure_evaluator_agree_on_random_segments() -> None:
    from core import clock
    from core.db import get_database
    from customers import segments
    from rules.segments import compile_segment, validate_segment

    a, b = await create_tenant(timezone=TZ), await create_tenant(timezone=TZ)
    rng = random.Random(1905)
    mine = [random_customer(rng, a.tenant_id, n) for n in range(400)]
    # The other company's customers match every segment there could be, and more of them.
    theirs = [{**random_customer(rng, b.tenant_id, n), "channels": CHANNELS, "stores": STORES, "tags": TAGS,
               "categories": CATEGORIES} for n in range(150)]
    await add_customers(a.tenant_id, mine)
    await add_customers(b.tenant_id, theirs)
    mine_ids = {row["id"] for row in mine}

    database = get_database()
    with clock.frozen_at(NOW):
        async with database.transaction(tenant_id=a.tenant_id) as session:
            facts = await segments.facts_of(session, a.tenant_id, [*mine_ids, theirs[0]["id"]], timezone=TZ)
            assert set(facts) == mine_ids  # not the other company's
            assert await segments.count(session, a.tenant_id, None, timezone=TZ) == len(mine)

            unreachable = {row["id"] for row in mine if not row["email_consent"] or row["unsubscribed_at"]}
            checked = 0
            for _ in range(250):
                condition = random_condition(rng)
                assert validate_segment(condition) == [], (condition, validate_segment(condition))
                test = compile_segment(condition)
                expected = {cid for cid, f in facts.items() if test(f, TODAY)}
                assert await segments.count(session, a.tenant_id, condition, timezone=TZ) == len(expected), condition
                listed: list[uuid.UUID] = []
                after = None
                while page := await segments.members(session, a.tenant_id, condition, timezone=TZ, after=after,
                                                     limit=97):
                    listed += [m.id for m in page]
                    after = page[-1].id
                assert listed == sorted(expected), condition  # by id, each once
                reachable = await segments.members(session, a.tenant_id, condition, timezone=TZ, reachable=True)
                assert {m.id for m in reachable} == expected - unreachable, condition
                checked += bool(expected) and len(expected) < len(mine)
            assert checked > 60  # most trees split the customers (not all in, not all out)


async def test_local_midnights_across_a_clock_change() -> None:
    """"Ordered in the last 2 days" at 00:30 on 10 March in New York: from midnight EST on
    8 March (05:00 UTC), the night the clocks went forward; "on 9 March" is 23 local hours long."""
    from core import clock
    from core.db import get_database
    from customers import segments

    a = await create_tenant(timezone=TZ)
    instants = {"just_in": datetime(2026, 3, 8, 5, 0, tzinfo=UTC),
                "just_out": datetime(2026, 3, 8, 4, 59, 59, 999_999, tzinfo=UTC),
                "never": None, "today": datetime(2026, 3, 10, 4, 0, tzinfo=UTC),
                "ninth_last_moment": datetime(2026, 3, 10, 3, 59, 59, tzinfo=UTC)}
    rng = random.Random(3)
    rows = []
    for n, (name, at) in enumerate(instants.items()):
        rows.append({**random_customer(rng, a.tenant_id, n), "name": name, "last_order_at": at, "first_order_at": at})
    await add_customers(a.tenant_id, rows)

    async def names(condition: dict[str, Any]) -> set[str]:
        with clock.frozen_at(NOW):
            async with get_database().transaction(tenant_id=a.tenant_id) as session:
                found = await segments.members(session, a.tenant_id, condition, timezone=TZ)
                preview = await segments.preview(session, a.tenant_id, condition, timezone=TZ, limit=2)
        assert [m.name for m in preview] == [m.name for m in sorted(
            found, key=lambda m: (m.last_order_at is None, -(m.last_order_at or NOW).timestamp()))][:2]
        return {m.name for m in found}

    last = "customer.last_order_date"
    assert await names({"field": last, "op": "in_last_days", "value": 2}) == {"just_in", "today",
                                                                             "ninth_last_moment"}
    assert await names({"field": last, "op": "not_in_last_days", "value": 2}) == {"just_out", "never"}
    assert await names({"field": last, "op": "in_last_days", "value": 0}) == {"today"}
    assert await names({"field": last, "op": "eq", "value": "2026-03-09"}) == {"ninth_last_moment"}
    assert await names({"not": {"field": last, "op": "before", "value": "2026-03-08"}}) == {
        "just_in", "today", "ninth_last_moment", "never"}
    assert await names({"field": last, "op": "between", "value": ["2026-03-07", "2026-03-08"]}) == {
        "just_in", "just_out"}


async def test_facts_of_reads_local_dates_and_lists() -> None:
    from core.db import get_database
    from customers import segments

    a = await create_tenant(timezone=TZ)
    row = {**random_customer(random.Random(5), a.tenant_id, 1), "orders_count": 3, "lifetime_value_minor": 12_345,
           "last_order_at": datetime(2026, 3, 10, 3, 0, tzinfo=UTC),
           "first_order_at": datetime(2025, 1, 1, 12, tzinfo=UTC),
           "channels": ["store"], "stores": ["PAR-1"], "categories": [], "tags": ["vip"], "email_consent": True,
           "sms_consent": False}
    await add_customers(a.tenant_id, [row])
    async with get_database().transaction(tenant_id=a.tenant_id) as session:
        found = await segments.facts_of(session, a.tenant_id, [row["id"], uuid.uuid4()], timezone=TZ)
        assert await segments.facts_of(session, a.tenant_id, [], timezone=TZ) == {}
    facts = found[row["id"]]
    assert (facts.orders_count, facts.lifetime_value_minor) == (3, 12_345)
    assert facts.last_order_date == date(2026, 3, 9)  # 23:00 on the 9th in New York
    assert facts.first_order_date == date(2025, 1, 1)
    assert (facts.channels, facts.stores, facts.categories, facts.tags) == (
        frozenset({"store"}), frozenset({"PAR-1"}), frozenset(), frozenset({"vip"}))
    assert (facts.email_consent, facts.sms_consent, facts.id) == (True, False, str(row["id"]))
