"""Usage metering: one row per metered fact, written in the transaction of the work it meters.

A fact has a key unique per company and dimension ("the order O was routed", "the location WH1
was active on 2026-12-06"), and is inserted with ``ON CONFLICT DO NOTHING``: a retried actor, a
replayed request or a second routing of the same order counts nothing more. Billing reads the
counts per period; a period's usage is what these rows say, and a re-count from the source
tables (``orders.usage``) must agree with them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import driver
from core.ids import uuid7
from core.models import UsageEvent

ORDERS = "orders"  # an order routed (its first routing), keyed by the order's id
LOCATION_DAYS = "location_days"  # a location that was sent work on a day of the company's calendar


@dataclass(frozen=True)
class Fact:
    dimension: str
    subject: str
    key: str
    at: datetime


def order_routed(order_id: uuid.UUID, at: datetime) -> Fact:
    return Fact(ORDERS, str(order_id), str(order_id), at)


def location_active(location_code: str, day: str, at: datetime) -> Fact:
    """``day``: the date in the company's time zone, ISO (2026-12-06)."""
    return Fact(LOCATION_DAYS, location_code, f"{location_code}:{day}", at)


_RECORD = """
    INSERT INTO usage_events (tenant_id, id, dimension, subject, fact_key, occurred_at)
    SELECT $1, v.id, v.dimension, v.subject, v.fact_key, v.occurred_at
    FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
        AS v(id, dimension, subject, fact_key, occurred_at)
    ON CONFLICT (tenant_id, dimension, fact_key) DO NOTHING
"""


async def record(session: AsyncSession, tenant_id: uuid.UUID, facts: Iterable[Fact]) -> None:
    """Count ``facts`` once each, with the session's transaction (one statement)."""
    unique = {(fact.dimension, fact.key): fact for fact in facts}
    if not unique:
        return
    rows = list(unique.values())
    connection = await driver(session)
    await connection.execute(_RECORD, tenant_id, [uuid7() for _ in rows], [f.dimension for f in rows],
                             [f.subject for f in rows], [f.key for f in rows], [f.at for f in rows])


@dataclass(frozen=True)
class Usage:
    orders: int  # orders routed
    locations: int  # distinct locations active on at least one day
    location_days: int

    def to_dict(self) -> dict[str, int]:
        return {"orders": self.orders, "locations": self.locations, "location_days": self.location_days}


async def usage_between(session: AsyncSession, tenant_id: uuid.UUID, start: datetime, end: datetime) -> Usage:
    """What the usage rows count in ``[start, end)``."""
    in_range = (UsageEvent.tenant_id == tenant_id, UsageEvent.occurred_at >= start, UsageEvent.occurred_at < end)
    orders = await session.scalar(select(func.count()).where(UsageEvent.dimension == ORDERS, *in_range))
    row = (await session.execute(select(func.count(func.distinct(UsageEvent.subject)), func.count()).where(
        UsageEvent.dimension == LOCATION_DAYS, *in_range))).one()
    return Usage(orders=int(orders or 0), locations=int(row[0] or 0), location_days=int(row[1] or 0))
