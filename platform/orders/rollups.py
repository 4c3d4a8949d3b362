"""The dashboard's day figures kept as rows, and the one definition they are computed with.

A day's figures are those of the orders PLACED that local day (the company's time zone): "of
the orders placed in the period, how many were cancelled, refunded, split...". ``order_days``
holds them per channel and routing rule, ``location_days`` per fulfilling location. Both are
rebuilt from the orders by ``refresh``, for each day having an order with a timeline entry
since the last refresh: the timeline records every change that moves a figure. Today's figures
are read live with the same statements (``orders.figures.days``), so the rows only have to be
right for past days, which change rarely.
"""

from __future__ import annotations

import math
import time
import uuid
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ARRAY, Date, String, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from core.outbox import enqueue

# Upper bounds, in minutes from an order's placing to its fulfilment's shipping (or readiness for
# pickup), of the buckets of ``location_days.done_hist``; the last one takes everything longer.
BUCKETS: tuple[float, ...] = (
    5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 300, 360, 480, 600, 720, 960, 1200, 1440, 1800, 2160,
    2880, 3600, 4320, 5760, 7200, 8640, 10080, 14400, 20160, 43200, math.inf,
)

# A timeline entry is written a little before its transaction commits: changes are looked for
# from this long before the last refresh began.
COMMIT_MARGIN = timedelta(minutes=5)

# The local days asked for, with the UTC instants they begin and end (DST-safe: 23 or 25 hours), or
# ``until`` when it comes first (a day so far, compared with today so far).
_DAYS = """
    days AS (SELECT d AS day, d::timestamp AT TIME ZONE :tz AS lo,
                    least((d + 1)::timestamp AT TIME ZONE :tz, coalesce(CAST(:until AS timestamptz), 'infinity')) AS hi
             FROM unnest(CAST(:days AS date[])) AS d)"""
# Day by day, so that each day reads its range of the orders' (tenant_id, placed_at) index (OFFSET 0
# keeps the planner from flattening the join into a scan of all the company's orders).
_PLACED = """days CROSS JOIN LATERAL (
    SELECT o.* FROM orders o WHERE o.tenant_id = :t AND o.placed_at >= days.lo AND o.placed_at < days.hi OFFSET 0) o"""

ORDER_DAY_COLUMNS = (
    "day", "channel", "rule", "orders", "units", "gross_minor", "discount_minor", "cancelled_orders",
    "cancelled_minor", "refunds_minor", "cancellation_refunds_minor", "goodwill_minor", "returned_units",
    "split_orders", "backordered_orders", "held_orders",
)
# One row per local day, channel and routing rule of the orders placed those days.
ORDER_DAYS = f"""
WITH {_DAYS}
SELECT days.day, o.channel, left(coalesce(o.routing ->> 'rule', ''), 200) AS rule,
       count(*)::int AS orders,
       sum(l.units)::bigint AS units,
       sum(o.total_minor)::bigint AS gross_minor,
       sum(o.discount_minor)::bigint AS discount_minor,
       (count(*) FILTER (WHERE o.status = 'cancelled'))::int AS cancelled_orders,
       sum(CASE WHEN o.status = 'cancelled' THEN o.total_minor ELSE l.cancelled_minor END)::bigint
           AS cancelled_minor,
       sum(r.refunds_minor)::bigint AS refunds_minor,
       sum(r.cancellation_refunds_minor)::bigint AS cancellation_refunds_minor,
       sum(r.goodwill_minor)::bigint AS goodwill_minor,
       sum(l.returned_units)::bigint AS returned_units,
       (count(*) FILTER (WHERE f.live >= 2))::int AS split_orders,
       (count(*) FILTER (WHERE e.backordered))::int AS backordered_orders,
       (count(*) FILTER (WHERE e.held))::int AS held_orders
FROM {_PLACED}
CROSS JOIN LATERAL (
    SELECT coalesce(sum(l.quantity), 0) AS units, coalesce(sum(l.qty_returned), 0) AS returned_units,
           coalesce(sum(floor((l.unit_price_minor * l.quantity - l.discount_minor - l.order_discount_minor)::numeric
                              * l.qty_cancelled / l.quantity)), 0) AS cancelled_minor
    FROM order_lines l WHERE l.tenant_id = :t AND l.order_id = o.id) l
CROSS JOIN LATERAL (
    SELECT coalesce(sum(r.amount_minor) FILTER (WHERE r.source <> 'goodwill'), 0) AS refunds_minor,
           coalesce(sum(r.amount_minor) FILTER (WHERE r.source = 'cancellation'), 0) AS cancellation_refunds_minor,
           coalesce(sum(r.amount_minor) FILTER (WHERE r.source = 'goodwill'), 0) AS goodwill_minor
    FROM refunds r WHERE r.tenant_id = :t AND r.order_id = o.id AND r.status NOT IN ('failed', 'abandoned')) r
CROSS JOIN LATERAL (
    SELECT count(*) AS live FROM fulfilments f
    WHERE f.tenant_id = :t AND f.order_id = o.id AND f.status NOT IN ('rejected', 'cancelled')) f
CROSS JOIN LATERAL (
    SELECT bool_or(e.to_status = 'backordered') AS backordered, bool_or(e.to_status = 'on_hold') AS held
    FROM order_events e WHERE e.tenant_id = :t AND e.order_id = o.id AND e.to_status IN ('backordered', 'on_hold')) e
GROUP BY days.day, o.channel, 3
"""

LOCATION_DAY_COLUMNS = ("day", "location_code", "fulfilments", "rejected", "done", "done_hist")
# Lower bounds of the buckets: width_bucket numbers them from 1.
_LOWER_BOUNDS = ", ".join(str(float(bound)) for bound in (0, *BUCKETS[:-1]))
_HISTOGRAM = ", ".join(f"count(*) FILTER (WHERE b.bucket = {n})" for n in range(1, len(BUCKETS) + 1))
# One row per local day of the orders placed those days and location of their fulfilments; done
# is shipped for a parcel, ready for pickup for a pickup or a transfer to a pickup store.
LOCATION_DAYS = f"""
WITH {_DAYS}
SELECT days.day, f.location_code,
       count(*)::int AS fulfilments,
       (count(*) FILTER (WHERE f.status = 'rejected'))::int AS rejected,
       count(x.done_at)::int AS done,
       ARRAY[{_HISTOGRAM}]::int[] AS done_hist
FROM {_PLACED}
JOIN fulfilments f ON f.tenant_id = :t AND f.order_id = o.id
CROSS JOIN LATERAL (SELECT CASE WHEN f.kind = 'ship' THEN f.shipped_at ELSE f.ready_at END AS done_at) x
CROSS JOIN LATERAL (
    SELECT CASE WHEN x.done_at IS NOT NULL
                THEN width_bucket(greatest(extract(epoch FROM x.done_at - o.placed_at)::float8 / 60, 0),
                                  ARRAY[{_LOWER_BOUNDS}]::float8[]) END AS bucket) b
WHERE CAST(:codes AS text[]) IS NULL OR f.location_code = ANY(CAST(:codes AS text[]))
GROUP BY days.day, f.location_code
"""

_DAYS_PARAM = bindparam("days", type_=ARRAY(Date()))
_CODES_PARAM = bindparam("codes", type_=ARRAY(String()))


def order_days_statement() -> Any:
    return text(ORDER_DAYS).bindparams(_DAYS_PARAM)


def location_days_statement() -> Any:
    return text(LOCATION_DAYS).bindparams(_DAYS_PARAM, _CODES_PARAM)


async def compute_order_days(session: AsyncSession, tenant_id: uuid.UUID, tz: str,
                             days: list[date], until: datetime | None = None) -> list[tuple[Any, ...]]:
    """The ``order_days`` rows of these local days, computed from the orders (not stored): their
    values in the order of ``ORDER_DAY_COLUMNS``."""
    if not days:
        return []
    result = await session.execute(order_days_statement(), {"t": tenant_id, "tz": tz, "days": days, "until": until})
    return [tuple(row) for row in result]


async def compute_location_days(session: AsyncSession, tenant_id: uuid.UUID, tz: str, days: list[date],
                                codes: frozenset[str] | None = None,
                                until: datetime | None = None) -> list[tuple[Any, ...]]:
    """The ``location_days`` rows of these local days (of ``codes`` only, when given), computed:
    their values in the order of ``LOCATION_DAY_COLUMNS``."""
    if not days:
        return []
    result = await session.execute(location_days_statement(), {
        "t": tenant_id, "tz": tz, "days": days, "codes": sorted(codes) if codes is not None else None,
        "until": until})
    return [tuple(row) for row in result]


_STORE_ORDER_DAYS = text(f"""
INSERT INTO order_days (tenant_id, id, {", ".join(ORDER_DAY_COLUMNS)}, refreshed_at)
SELECT CAST(:t AS uuid), gen_random_uuid(), computed.*, CAST(:now AS timestamptz) FROM ({ORDER_DAYS}) AS computed
""").bindparams(_DAYS_PARAM)
_STORE_LOCATION_DAYS = text(f"""
INSERT INTO location_days (tenant_id, id, {", ".join(LOCATION_DAY_COLUMNS)}, refreshed_at)
SELECT CAST(:t AS uuid), gen_random_uuid(), computed.*, CAST(:now AS timestamptz) FROM ({LOCATION_DAYS}) AS computed
""").bindparams(_DAYS_PARAM, _CODES_PARAM)

_ADD_MARK = text("INSERT INTO rollup_marks (tenant_id, id, timezone) VALUES (:t, gen_random_uuid(), :tz) "
                 "ON CONFLICT (tenant_id) DO NOTHING")
# One refresh of a company at a time; another finds the row locked and leaves (the next sweep
# comes): a first build at a million orders takes a minute, and waiting would hold a worker thread.
_MARK = text("SELECT refreshed_at, timezone FROM rollup_marks WHERE tenant_id = :t FOR UPDATE SKIP LOCKED")
_CHANGED_DAYS = text("""
SELECT DISTINCT (o.placed_at AT TIME ZONE :tz)::date
FROM order_events e JOIN orders o ON o.tenant_id = e.tenant_id AND o.id = e.order_id
WHERE e.tenant_id = :t AND e.created_at > :since
""")
_PLACED_SPAN = text("SELECT min(placed_at), max(placed_at) FROM orders WHERE tenant_id = :t")


async def refresh(session: AsyncSession, tenant_id: uuid.UUID, tz: str) -> int:
    """Recompute the company's day rows of every local day having an order with a timeline entry
    since the last refresh began (all of them the first time, or when the time zone changed);
    returns how many days were recomputed. Two refreshes of a company take turns (the mark's row
    lock: a second one returns 0 at once), and each is a recomputation: running one twice changes
    nothing."""
    await session.execute(_ADD_MARK, {"t": tenant_id, "tz": tz})
    mark = (await session.execute(_MARK, {"t": tenant_id})).one_or_none()
    if mark is None:  # another refresh of the company is running
        return 0
    started = clock.now()
    params = {"t": tenant_id, "tz": tz}
    if mark.refreshed_at is None or mark.timezone != tz:
        await session.execute(text("DELETE FROM order_days WHERE tenant_id = :t"), params)
        await session.execute(text("DELETE FROM location_days WHERE tenant_id = :t"), params)
        first, last = (await session.execute(_PLACED_SPAN, params)).one()
        days = _every_day(first, last, ZoneInfo(tz))
    else:
        days = sorted(await session.scalars(_CHANGED_DAYS, {**params, "since": mark.refreshed_at - COMMIT_MARGIN}))
        if days:
            delete = "DELETE FROM {} WHERE tenant_id = :t AND day = ANY(:days)"
            for table in ("order_days", "location_days"):
                await session.execute(text(delete.format(table)).bindparams(_DAYS_PARAM), {**params, "days": days})
    if days:
        values = {**params, "days": days, "now": started, "until": None}
        await session.execute(_STORE_ORDER_DAYS, values)
        await session.execute(_STORE_LOCATION_DAYS, {**values, "codes": None})
    await session.execute(text("UPDATE rollup_marks SET refreshed_at = :now, timezone = :tz WHERE tenant_id = :t"),
                          {**params, "now": started})
    return len(days)


def _every_day(first: datetime | None, last: datetime | None, zone: ZoneInfo) -> list[date]:
    """Every local day from the first order's to the last one's, with a day more each side (the
    database's time-zone rules and Python's may differ by a release)."""
    if first is None or last is None:
        return []
    day, end = first.astimezone(zone).date() - timedelta(days=1), last.astimezone(zone).date() + timedelta(days=1)
    days = []
    while day <= end:
        days.append(day)
        day += timedelta(days=1)
    return days


# A first refresh asked for, per company, by this process: asked again after a while, in case the
# message was lost (the broker is transport, not truth), until the mark shows it ran.
ASK_AGAIN_AFTER = 120.0
_asked: dict[uuid.UUID, float] = {}


async def ensure_started(session: AsyncSession, tenant_id: uuid.UUID, tz: str) -> bool:
    """True when the company's day rows have been built, in its time zone ``tz``; else ask for a
    refresh (an outbox message of the current transaction) and return False: the figures of past
    days are being prepared. (A company that changed its zone and places no order is rebuilt too.)"""
    from orders.tasks import refresh_figures

    ready = await session.scalar(text("SELECT refreshed_at IS NOT NULL AND timezone = :tz FROM rollup_marks "
                                      "WHERE tenant_id = :t"), {"t": tenant_id, "tz": tz})
    if ready:
        _asked.pop(tenant_id, None)
        return True
    now = time.monotonic()
    if _asked.get(tenant_id, -math.inf) + ASK_AGAIN_AFTER < now:
        _asked[tenant_id] = now
        enqueue(session, refresh_figures, tenant_id=tenant_id)
    return False
