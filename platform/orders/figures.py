"""The figures of the console's home: days of orders and of fulfilments (rows kept by
``orders.rollups`` for past days, computed live for today with the same statements), orders
per hour of a day, and what waits right now (holds, backorders, pickups, late fulfilments).

Each read touches a bounded number of rows whatever the company's history: a month is a few
hundred day rows; today and the hours of a day come from the orders placed that day
(``ix_orders_placed``); what waits now from partial indexes of what is open.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ARRAY, Integer, String, bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from core.problems import invalid
from orders.models import LocationDay, Order, OrderDay
from orders.rollups import (
    BUCKETS,
    LOCATION_DAY_COLUMNS,
    ORDER_DAY_COLUMNS,
    compute_location_days,
    compute_order_days,
    ensure_started,
    refresh,
)

__all__ = [
    "BUCKETS", "DayRow", "HourPoint", "LateFulfilment", "LocationDayRow", "NowCounts", "WaitingOrder", "days",
    "ensure_started", "hourly", "late_fulfilments", "local_today", "location_days", "merge", "now_counts",
    "percentile", "refresh", "waiting_orders",
]

DEFAULT_PROMISE_HOURS = 24
OPEN = ("created", "accepted", "picking", "packed")  # as ``ix_fulfilments_open`` says
WAITING = ("on_hold", "backordered")


@dataclass(frozen=True)
class DayRow:
    """One local day's orders of one channel decided by one routing rule ('' for none)."""

    day: date
    channel: str
    rule: str
    orders: int
    units: int
    gross_minor: int
    discount_minor: int
    cancelled_orders: int
    cancelled_minor: int
    refunds_minor: int
    cancellation_refunds_minor: int
    goodwill_minor: int
    returned_units: int
    split_orders: int
    backordered_orders: int
    held_orders: int


@dataclass(frozen=True)
class LocationDayRow:
    """The fulfilments at one location of the orders placed one local day."""

    day: date
    location_code: str
    fulfilments: int
    rejected: int
    done: int
    done_hist: tuple[int, ...]  # counts per bucket of ``BUCKETS``


@dataclass(frozen=True)
class HourPoint:
    hour: int  # local hour 0..23
    orders: int
    gross_minor: int


@dataclass(frozen=True)
class NowCounts:
    backordered: int
    on_hold: int
    pickups_waiting: int
    pickups_expiring: int  # within 24 hours
    open_fulfilments: int
    late_fulfilments: int


@dataclass(frozen=True)
class LateFulfilment:
    fulfilment_id: uuid.UUID
    order_id: uuid.UUID
    order_number: str
    number: str
    location_code: str
    status: str
    created_at: datetime
    due_at: datetime


@dataclass(frozen=True)
class WaitingOrder:
    """An order on hold or backordered, and why."""

    order_id: uuid.UUID
    number: str
    status: str
    reason: str | None
    placed_at: datetime
    total_minor: int
    currency: str


def local_today(tz: str, now: datetime | None = None) -> date:
    """The company's day at ``now`` (at this moment when not given)."""
    return (now or clock.now()).astimezone(ZoneInfo(tz)).date()


def _location_row(values: Sequence[Any]) -> LocationDayRow:
    """A row of ``LOCATION_DAY_COLUMNS``, in their order."""
    day, code, fulfilments, rejected, done, hist = values
    return LocationDayRow(day, code, fulfilments, rejected, done, tuple(hist))


def _split(tz: str, first: date, last: date, until: datetime | None = None) -> tuple[date | None, list[date]]:
    """The last past day to read from the rows (None: none), and the days to compute live:
    today, when asked for (no order is placed later), or the day of ``until``, cut there."""
    today = local_today(tz) if until is None else until.astimezone(ZoneInfo(tz)).date()
    stored_to = min(last, today - timedelta(days=1)) if first < today else None
    return stored_to, [today] if first <= today <= last else []


async def days(session: AsyncSession, tenant_id: uuid.UUID, tz: str, first: date, last: date, *,
               locations: frozenset[str] | None = None, until: datetime | None = None) -> list[DayRow]:
    """The order figures of the local days ``first``..``last`` per channel and rule, by day; with
    ``until``, of the orders placed before it only (a past period compared with one still running).
    They are the company's: with ``locations`` (a store associate), none (use ``location_days``)."""
    if locations is not None or first > last:
        return []
    stored_to, live = _split(tz, first, last, until)
    rows: list[DayRow] = []
    if stored_to is not None:
        columns = [getattr(OrderDay, name) for name in ORDER_DAY_COLUMNS]
        result = await session.execute(select(*columns).where(
            OrderDay.tenant_id == tenant_id, OrderDay.day >= first, OrderDay.day <= stored_to,
        ).order_by(OrderDay.day, OrderDay.channel, OrderDay.rule))
        rows += [DayRow(*row) for row in result]
    computed = await compute_order_days(session, tenant_id, tz, live, until)
    rows += sorted((DayRow(*values) for values in computed), key=lambda r: (r.day, r.channel, r.rule))
    return rows


async def location_days(session: AsyncSession, tenant_id: uuid.UUID, tz: str, first: date, last: date, *,
                        locations: frozenset[str] | None = None,
                        until: datetime | None = None) -> list[LocationDayRow]:
    """The fulfilment figures of the local days ``first``..``last`` per location (of
    ``locations`` only, when given), by day; with ``until``, of the orders placed before it."""
    if first > last or (locations is not None and not locations):
        return []
    stored_to, live = _split(tz, first, last, until)
    rows: list[LocationDayRow] = []
    if stored_to is not None:
        columns = [getattr(LocationDay, name) for name in LOCATION_DAY_COLUMNS]
        stmt = select(*columns).where(LocationDay.tenant_id == tenant_id, LocationDay.day >= first,
                                      LocationDay.day <= stored_to)
        if locations is not None:
            stmt = stmt.where(LocationDay.location_code.in_(sorted(locations)))
        result = await session.execute(stmt.order_by(LocationDay.day, LocationDay.location_code))
        rows += [_location_row(row) for row in result]
    computed = await compute_location_days(session, tenant_id, tz, live, locations, until)
    rows += sorted((_location_row(values) for values in computed), key=lambda r: (r.day, r.location_code))
    return rows


def day_bounds(tz: str, day: date) -> tuple[datetime, datetime]:
    """The instants (UTC) a local day begins and ends: 23 or 25 hours apart on a change of clocks."""
    zone = ZoneInfo(tz)
    return (datetime.combine(day, time(), zone).astimezone(UTC),
            datetime.combine(day + timedelta(days=1), time(), zone).astimezone(UTC))


_HOURLY = text("""
SELECT extract(hour FROM placed_at AT TIME ZONE :tz)::int AS hour, count(*)::int AS orders,
       sum(total_minor)::bigint AS gross_minor
FROM orders WHERE tenant_id = :t AND placed_at >= :lo AND placed_at < :hi
GROUP BY 1
""")


async def hourly(session: AsyncSession, tenant_id: uuid.UUID, tz: str, day: date) -> list[HourPoint]:
    """The orders placed each local hour of ``day``: 24 points (the hour clocks go back counts
    both of its passes; the hour they skip has nothing)."""
    lo, hi = day_bounds(tz, day)
    found = {row.hour: row for row in await session.execute(_HOURLY, {"t": tenant_id, "tz": tz, "lo": lo, "hi": hi})}
    return [HourPoint(hour, found[hour].orders if hour in found else 0,
                      found[hour].gross_minor if hour in found else 0) for hour in range(24)]


_CODES = bindparam("codes", type_=ARRAY(String()))
_PROMISE_CODES = bindparam("promise_codes", type_=ARRAY(String()))
_PROMISE_HOURS = bindparam("promise_hours", type_=ARRAY(Integer()))
# A fulfilment's promise: its location's hours, 24 for a location the company doesn't list.
_PROMISES = """
    LEFT JOIN unnest(CAST(:promise_codes AS text[]), CAST(:promise_hours AS int[])) AS p(code, hours)
           ON p.code = f.location_code"""
_DUE = "f.created_at + make_interval(hours => coalesce(p.hours, 24))"
_HERE = "(CAST(:codes AS text[]) IS NULL OR f.location_code = ANY(CAST(:codes AS text[])))"
# A pickup waits at its store: a transfer's is where it was sent.
_WAITS_HERE = ("(CAST(:codes AS text[]) IS NULL OR CASE WHEN f.kind = 'transfer' THEN f.ship_to_store "
               "ELSE f.location_code END = ANY(CAST(:codes AS text[])))")
_OPEN = "f.status IN ('created', 'accepted', 'picking', 'packed')"

_NOW_COUNTS = text(f"""
SELECT
    (SELECT count(*) FROM orders WHERE tenant_id = :t AND status = 'backordered' AND :orders_too)::int
        AS backordered,
    (SELECT count(*) FROM orders WHERE tenant_id = :t AND status = 'on_hold' AND :orders_too)::int AS on_hold,
    pickups.waiting, pickups.expiring, opened.open_fulfilments, opened.late_fulfilments
FROM (SELECT count(*)::int AS waiting, (count(*) FILTER (WHERE f.pickup_expires_at < :soon))::int AS expiring
      FROM fulfilments f WHERE f.tenant_id = :t AND f.status = 'ready_for_pickup' AND {_WAITS_HERE}) AS pickups,
     (SELECT count(*)::int AS open_fulfilments, (count(*) FILTER (WHERE {_DUE} < :now))::int AS late_fulfilments
      FROM fulfilments f {_PROMISES}
      WHERE f.tenant_id = :t AND {_OPEN} AND {_HERE}) AS opened
""").bindparams(_CODES, _PROMISE_CODES, _PROMISE_HOURS)

_LATE = text(f"""
SELECT late.fulfilment_id, late.order_id, o.number AS order_number, late.number, late.location_code, late.status,
       late.created_at, late.due_at
FROM (SELECT f.id AS fulfilment_id, f.order_id, f.number, f.location_code, f.status, f.created_at, {_DUE} AS due_at
      FROM fulfilments f {_PROMISES}
      WHERE f.tenant_id = :t AND {_OPEN} AND {_HERE} AND f.created_at < :earliest AND {_DUE} < :now
      ORDER BY due_at, f.id
      LIMIT :limit) AS late
JOIN orders o ON o.tenant_id = :t AND o.id = late.order_id
ORDER BY late.due_at, late.fulfilment_id
""").bindparams(_CODES, _PROMISE_CODES, _PROMISE_HOURS)


def _promise_params(promises: dict[str, int], locations: frozenset[str] | None) -> dict[str, Any]:
    codes = sorted(promises)
    return {"promise_codes": codes, "promise_hours": [promises[code] for code in codes],
            "codes": sorted(locations) if locations is not None else None}


async def now_counts(session: AsyncSession, tenant_id: uuid.UUID, promises: dict[str, int], *,
                     locations: frozenset[str] | None = None) -> NowCounts:
    """What waits right now. ``promises`` is {location code: hours} (24 for one not listed): an
    open fulfilment older than its location's promise is late. With ``locations`` (a store
    associate), only theirs: pickups waiting at them, fulfilments they send; orders on hold or
    backordered are customer service's, so 0 there."""
    now = clock.now()
    row = (await session.execute(_NOW_COUNTS, {
        "t": tenant_id, "now": now, "soon": now + timedelta(hours=24), "orders_too": locations is None,
        **_promise_params(promises, locations)})).one()
    return NowCounts(backordered=row.backordered, on_hold=row.on_hold, pickups_waiting=row.waiting,
                     pickups_expiring=row.expiring, open_fulfilments=row.open_fulfilments,
                     late_fulfilments=row.late_fulfilments)


async def late_fulfilments(session: AsyncSession, tenant_id: uuid.UUID, promises: dict[str, int], *,
                           locations: frozenset[str] | None = None, limit: int = 20) -> list[LateFulfilment]:
    """Open fulfilments past their location's promise, the longest overdue first."""
    now = clock.now()
    shortest = min([*promises.values(), DEFAULT_PROMISE_HOURS])
    result = await session.execute(_LATE, {
        "t": tenant_id, "now": now, "earliest": now - timedelta(hours=shortest), "limit": limit,
        **_promise_params(promises, locations)})
    return [LateFulfilment(**row._mapping) for row in result]


async def waiting_orders(session: AsyncSession, tenant_id: uuid.UUID, status: str, *,
                         limit: int = 20) -> list[WaitingOrder]:
    """Orders on hold (``on_hold``) or backordered (``backordered``), the longest waiting first."""
    if status not in WAITING:
        raise invalid({"status": f"{status!r} is not a waiting status: on_hold or backordered."})
    result = await session.execute(
        select(Order.id.label("order_id"), Order.number, Order.status, Order.hold_reason.label("reason"),
               Order.placed_at, Order.total_minor, Order.currency)
        .where(Order.tenant_id == tenant_id, Order.status == status)
        .order_by(Order.placed_at, Order.id).limit(limit))
    return [WaitingOrder(**row._mapping) for row in result]


def merge(hists: Iterable[Sequence[int]]) -> tuple[int, ...]:
    """Histograms of ``BUCKETS`` added up, bucket by bucket."""
    total = [0] * len(BUCKETS)
    for hist in hists:
        for i, count in enumerate(hist):
            if i < len(total):
                total[i] += count
            else:
                total.append(count)
    return tuple(total)


def percentile(hist: Sequence[int], q: float) -> float | None:
    """The ``q`` (0..1) quantile in minutes of a histogram of ``BUCKETS``, interpolated inside its
    bucket (the open-ended last bucket gives its lower bound); None when it counts nothing."""
    if not 0 <= q <= 1:
        raise ValueError(f"a quantile is between 0 and 1, not {q}")
    total = sum(hist)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(hist):
        if count <= 0:
            continue
        if seen + count >= rank:
            lower = float(BUCKETS[i - 1]) if i > 0 else 0.0
            upper = float(BUCKETS[i]) if i < len(BUCKETS) else math.inf
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * max(rank - seen, 0) / count
        seen += count
    return None  # pragma: no cover (the loop reaches the total)
