"""A customer's orders as customer service reads them: the orders of every channel, newest first,
the figures they add up to, the stores the customer uses, the refunds, exchanges, open tasks and
timeline entries of those orders.

Everything is within the reader's reach (``orders.queries.reach``): a store associate sees the
orders at their locations only, and the figures are computed on those.

Lifetime value, net of refunds, per order (in minor units of its currency):
- money was captured: what was captured less what was refunded (the refund ledger's sum, every
  source: cancellation, return, exchange difference, goodwill, shipping);
- nothing captured yet and the order still stands: its total less what its cancelled units were
  worth (``orders.payments.payable``): what it will cost when it ships;
- nothing captured and cancelled: nothing;
- the replacement of an exchange is paid first by the value of the goods returned from the original
  (their "credit", kept on the original, never refunded): once captured, it counts what was captured
  less its refunds less that credit (what the customer paid on top); before, nothing. It is not
  counted as an order of its own. (Returns are customer service's: the caller passes the credits.)
The average basket is the lifetime value over the orders that count and were not cancelled.
Orders of another currency than the company's are added up on their own, never converted.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, literal, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal
from core.db import driver
from inventory import locations as inventory_locations
from orders import queries, service_tasks, wording
from orders.models import Fulfilment, Order, OrderEvent, OrderLine, Refund, ServiceTask

ORDERS_SHOWN = 50
ENTRIES = 100  # refunds, events, notes: the newest this many

NOTE_KIND = "note.added"
# Order timeline entries worth showing on the customer's history. The placing of an order is told
# from the order itself ("order.received" also marks routing again), refunds from the ledger.
EVENT_KINDS = (
    "order.on_hold", "order.backordered", "order.cancelled", "order.lines_cancelled", "order.shipped",
    "order.partially_shipped", "order.ready_for_pickup", "order.collected", "order.delivered",
    "fulfilment.expired", "payment.capture_failed", "payment.refund_failed", "task.opened", "task.resolved",
    NOTE_KIND,
)
EVENT_PREFIXES = ("exchange.", "goodwill.", "address.", "pickup.", "notification.")


@dataclass(frozen=True)
class StoreUse:
    code: str
    name: str
    orders: int  # the customer's orders it served (picked up there, or sent or handed over from it)


@dataclass(frozen=True)
class CurrencyFigures:
    currency: str
    orders: int  # placed in this currency, replacements of exchanges aside
    cancelled: int
    lifetime_value_minor: int
    refunded_minor: int
    average_basket_minor: int | None  # None: no order that was not cancelled


@dataclass(frozen=True)
class Figures:
    """The company's currency's figures, and those of orders in other currencies beside them."""

    main: CurrencyFigures
    others: list[CurrencyFigures]
    orders_total: int  # every order the reader can see, replacements included
    first_order_at: datetime | None
    last_order_at: datetime | None
    stores: list[StoreUse] = field(default_factory=list)


@dataclass(frozen=True)
class OrderItem:
    id: uuid.UUID
    number: str
    channel: str
    external_number: str | None
    status: str
    placed_at: datetime
    currency: str
    total_minor: int
    captured_minor: int
    refunded_minor: int
    delivery_mode: str
    pickup_location_code: str | None
    exchange_for: uuid.UUID | None


@dataclass(frozen=True)
class RefundItem:
    id: uuid.UUID
    order_id: uuid.UUID
    order_number: str
    source: str
    amount_minor: int
    currency: str
    status: str
    reason: str
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class ExchangeItem:
    original_id: uuid.UUID | None  # None: the original is out of the reader's reach
    original_number: str | None
    replacement_id: uuid.UUID
    replacement_number: str
    replacement_status: str
    placed_at: datetime
    currency: str
    total_minor: int


@dataclass(frozen=True)
class TaskItem:
    id: uuid.UUID
    order_id: uuid.UUID
    order_number: str
    kind: str
    title: str
    detail: str
    occurrences: int
    assigned_to: str | None
    opened_at: datetime


@dataclass(frozen=True)
class EventItem:
    id: uuid.UUID
    order_id: uuid.UUID
    order_number: str
    kind: str
    title: str
    actor: str
    text: str  # the reason, or a note's words
    data: dict[str, Any]
    created_at: datetime


def _mine(principal: Principal, customer_id: uuid.UUID) -> list[ColumnElement[bool]]:
    return [Order.tenant_id == principal.tenant_id, Order.customer_id == customer_id, *queries.reach(principal)]


def order_ids(principal: Principal, customer_id: uuid.UUID) -> Select[uuid.UUID]:
    """The ids of the customer's orders within the principal's reach, as a subquery for other
    domains' rows that name orders (returns, notes)."""
    return select(Order.id).where(*_mine(principal, customer_id))


async def orders(session: AsyncSession, principal: Principal, customer_id: uuid.UUID, *,
                 limit: int = ORDERS_SHOWN) -> list[OrderItem]:
    """The customer's newest orders of every channel (ix_orders_customer_placed)."""
    rows = await session.scalars(select(Order).where(*_mine(principal, customer_id))
                                 .order_by(Order.placed_at.desc(), Order.id.desc()).limit(limit))
    return [OrderItem(id=o.id, number=o.number, channel=o.channel, external_number=o.external_number, status=o.status,
                      placed_at=o.placed_at, currency=o.currency, total_minor=o.total_minor,
                      captured_minor=o.captured_minor, refunded_minor=o.refunded_minor,
                      delivery_mode=o.delivery_mode, pickup_location_code=o.pickup_location_code,
                      exchange_for=o.exchange_for) for o in rows]


def _value() -> ColumnElement[int]:
    """One order's lifetime value, net of refunds (see the module's docstring)."""
    cancelled_worth = (select(func.coalesce(func.sum(
        (OrderLine.unit_price_minor * OrderLine.quantity - OrderLine.discount_minor - OrderLine.order_discount_minor)
        * OrderLine.qty_cancelled // OrderLine.quantity), 0))
        .where(OrderLine.tenant_id == Order.tenant_id, OrderLine.order_id == Order.id)
        .scalar_subquery())
    return case(
        (Order.captured_minor > 0, Order.captured_minor - Order.refunded_minor),
        (or_(Order.status == "cancelled", Order.exchange_for.is_not(None)), literal(0)),
        else_=Order.total_minor - cancelled_worth)


async def figures(session: AsyncSession, principal: Principal, customer_id: uuid.UUID, *,
                  exchange_credits: Mapping[uuid.UUID, int] | None = None) -> Figures:
    """Orders count, lifetime value net of refunds, average basket, first and last order, per
    currency (the company's first), and the stores the customer uses: one aggregate over the
    customer's orders, one over their pickups and fulfilments. ``exchange_credits``: replacement
    order id → what the returned goods paid of it."""
    own = Order.exchange_for.is_(None)
    rows = (await session.execute(
        select(Order.currency, func.count().filter(own), func.count().filter(and_(own, Order.status == "cancelled")),
               func.coalesce(func.sum(_value()), 0), func.coalesce(func.sum(Order.refunded_minor), 0),
               func.count(), func.min(Order.placed_at).filter(own), func.max(Order.placed_at).filter(own))
        .where(*_mine(principal, customer_id)).group_by(Order.currency))).all()
    credited: Counter[str] = Counter()
    if exchange_credits:
        for order_id, currency in (await session.execute(select(Order.id, Order.currency).where(
                *_mine(principal, customer_id), Order.id.in_(list(exchange_credits)),
                Order.exchange_for.is_not(None), Order.captured_minor > 0))).all():
            credited[currency] += exchange_credits[order_id]
    per_currency: dict[str, CurrencyFigures] = {}
    total, first, last = 0, None, None
    for currency, count, cancelled, gross, refunded, every, earliest, latest in rows:
        value = int(gross) - credited[currency]
        kept = int(count) - int(cancelled)
        per_currency[currency] = CurrencyFigures(
            currency=currency, orders=int(count), cancelled=int(cancelled), lifetime_value_minor=int(value),
            refunded_minor=int(refunded), average_basket_minor=(int(value) * 2 + kept) // (2 * kept) if kept else None)
        total += int(every)
        first = earliest if first is None or (earliest is not None and earliest < first) else first
        last = latest if last is None or (latest is not None and latest > last) else last
    main = per_currency.pop(principal.currency, None) or CurrencyFigures(principal.currency, 0, 0, 0, 0, None)
    others = sorted(per_currency.values(), key=lambda f: (-f.orders, f.currency))
    return Figures(main=main, others=others, orders_total=total, first_order_at=first, last_order_at=last,
                   stores=await stores(session, principal, customer_id) if total else [])


async def stores(session: AsyncSession, principal: Principal, customer_id: uuid.UUID) -> list[StoreUse]:
    """The stores the customer uses, most used first: where they pick orders up, and the stores
    that sent or handed over their goods (warehouses are not stores)."""
    mine = order_ids(principal, customer_id).subquery()
    pickups = select(Order.pickup_location_code.label("code"), Order.id.label("order_id")).where(
        *_mine(principal, customer_id), Order.pickup_location_code.is_not(None))
    sent = select(Fulfilment.location_code.label("code"), Fulfilment.order_id.label("order_id")).where(
        Fulfilment.tenant_id == principal.tenant_id, Fulfilment.order_id.in_(select(mine.c.id)),
        Fulfilment.kind.in_(("ship", "pickup")), Fulfilment.status.not_in(("rejected", "cancelled")))
    both = union_all(pickups, sent).subquery()
    counted = Counter({code: int(n) for code, n in (await session.execute(
        select(both.c.code, func.count(func.distinct(both.c.order_id))).group_by(both.c.code))).all()})
    pickup_codes = {code for (code,) in (await session.execute(pickups.with_only_columns(
        Order.pickup_location_code).distinct())).all()}
    places = await inventory_locations.by_codes(session, principal.tenant_id, list(counted))
    used = [StoreUse(code=code, name=places[code].name if code in places else code, orders=n)
            for code, n in counted.items()
            if code in pickup_codes or (code in places and places[code].kind == "store")]
    return sorted(used, key=lambda s: (-s.orders, s.code))


async def refunds(session: AsyncSession, principal: Principal, customer_id: uuid.UUID, *,
                  limit: int = ENTRIES) -> list[RefundItem]:
    """The refunds of the customer's orders, every source, newest first (ix_refunds_order)."""
    rows = await session.execute(
        select(Refund, Order.number).join(Order, and_(Order.tenant_id == Refund.tenant_id, Order.id == Refund.order_id))
        .where(Refund.tenant_id == principal.tenant_id, *_mine(principal, customer_id))
        .order_by(Refund.created_at.desc(), Refund.id.desc()).limit(limit))
    return [RefundItem(id=r.id, order_id=r.order_id, order_number=number, source=r.source, amount_minor=r.amount_minor,
                       currency=r.currency, status=r.status, reason=r.reason, created_by=r.created_by,
                       created_at=r.created_at) for r, number in rows]


async def exchanges(session: AsyncSession, principal: Principal, customer_id: uuid.UUID, *,
                    limit: int = ENTRIES) -> list[ExchangeItem]:
    """The customer's exchanges, newest first: each replacement order with the order it replaces
    goods of (ix_orders_exchange_for)."""
    replacements = list(await session.scalars(
        select(Order).where(*_mine(principal, customer_id), Order.exchange_for.is_not(None))
        .order_by(Order.placed_at.desc()).limit(limit)))
    originals: dict[uuid.UUID, str] = {}
    wanted = {o.exchange_for for o in replacements if o.exchange_for is not None}
    if wanted:
        originals = dict((await session.execute(select(Order.id, Order.number).where(
            Order.tenant_id == principal.tenant_id, Order.id.in_(wanted), *queries.reach(principal)))).all())
    return [ExchangeItem(original_id=o.exchange_for if o.exchange_for in originals else None,
                         original_number=originals.get(o.exchange_for) if o.exchange_for else None,
                         replacement_id=o.id, replacement_number=o.number, replacement_status=o.status,
                         placed_at=o.placed_at, currency=o.currency, total_minor=o.total_minor)
            for o in replacements]


async def open_tasks(session: AsyncSession, principal: Principal, customer_id: uuid.UUID) -> list[TaskItem]:
    """The open customer-service tasks of the customer's orders, oldest first."""
    rows = await session.execute(
        select(ServiceTask, Order.number)
        .join(Order, and_(Order.tenant_id == ServiceTask.tenant_id, Order.id == ServiceTask.order_id))
        .where(ServiceTask.tenant_id == principal.tenant_id, ServiceTask.status == "open",
               *_mine(principal, customer_id))
        .order_by(ServiceTask.id).limit(ENTRIES))
    return [TaskItem(id=t.id, order_id=t.order_id, order_number=number, kind=t.kind,
                     title=service_tasks.KINDS.get(t.kind, t.kind.replace("_", " ")), detail=t.detail,
                     occurrences=t.occurrences, assigned_to=t.assigned_to, opened_at=t.opened_at)
            for t, number in rows]


def event_text(kind: str, reason: str | None, data: dict[str, Any] | None) -> str:
    """What an entry says: its reason, or for a note whatever field holds its words."""
    if reason:
        return reason
    data = data or {}
    for key in ("note", "body", "text", "message"):
        if isinstance(data.get(key), str) and data[key]:
            return str(data[key])
    return ""


async def events(session: AsyncSession, principal: Principal, customer_id: uuid.UUID, *,
                 kinds: Collection[str] = EVENT_KINDS, prefixes: Collection[str] = EVENT_PREFIXES,
                 limit: int = ENTRIES) -> list[EventItem]:
    """The newest timeline entries of the customer's orders of these kinds (or kinds starting
    with one of ``prefixes``), newest first."""
    wanted = [OrderEvent.kind.in_(list(kinds)), *(OrderEvent.kind.startswith(p) for p in prefixes)]
    rows = await session.execute(
        select(OrderEvent, Order.number)
        .join(Order, and_(Order.tenant_id == OrderEvent.tenant_id, Order.id == OrderEvent.order_id))
        .where(OrderEvent.tenant_id == principal.tenant_id, *_mine(principal, customer_id), or_(*wanted))
        .order_by(OrderEvent.created_at.desc(), OrderEvent.id.desc()).limit(limit))
    return [EventItem(id=e.id, order_id=e.order_id, order_number=number, kind=e.kind,
                      title="Note on the order" if e.kind == NOTE_KIND else wording.event_title(e), actor=e.actor,
                      text=event_text(e.kind, e.reason, e.data), data=dict(e.data or {}), created_at=e.created_at)
            for e, number in rows]


async def order_notes(session: AsyncSession, principal: Principal, customer_id: uuid.UUID, *,
                      limit: int = ENTRIES) -> list[EventItem]:
    """The notes agents wrote on the customer's orders (timeline entries ``note.added``), newest first."""
    return await events(session, principal, customer_id, kinds=(NOTE_KIND,), prefixes=(), limit=limit)


async def currencies(session: AsyncSession, principal: Principal, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The currency of each of these orders (within reach), for amounts other domains keep without one."""
    if not ids:
        return {}
    return dict((await session.execute(select(Order.id, Order.currency).where(
        Order.tenant_id == principal.tenant_id, Order.id.in_(list(ids)), *queries.reach(principal)))).all())


# --- orders as marketing attributes them --------------------------------------------------------


@dataclass(frozen=True)
class PlacedOrder:
    id: uuid.UUID
    number: str
    customer_id: uuid.UUID | None
    placed_at: datetime
    currency: str
    total_minor: int
    status: str


_PLACED_COLUMNS = "o.id, o.number, o.customer_id, o.placed_at, o.currency, o.total_minor, o.status"


async def orders_by_ids(session: AsyncSession, tenant_id: uuid.UUID, ids: Collection[uuid.UUID]) -> list[PlacedOrder]:
    """These orders of the company, with their totals (the others are left out)."""
    if not ids:
        return []
    rows = await (await driver(session)).fetch(
        f"SELECT {_PLACED_COLUMNS} FROM orders o WHERE o.tenant_id = $1 AND o.id = ANY($2::uuid[])",
        tenant_id, list(ids))
    return [PlacedOrder(*row) for row in rows]


async def orders_within(session: AsyncSession, tenant_id: uuid.UUID,
                        windows: Sequence[tuple[uuid.UUID, datetime, datetime]]) -> list[PlacedOrder]:
    """The orders each customer placed within their own window (customer id, from, until: from
    included, until not), replacements of exchanges aside: one statement over the windows as
    arrays, each read on ix_orders_customer_placed."""
    if not windows:
        return []
    customers, since, until = (list(column) for column in zip(*windows, strict=True))
    rows = await (await driver(session)).fetch(
        f"SELECT {_PLACED_COLUMNS} FROM unnest($2::uuid[], $3::timestamptz[], $4::timestamptz[]) AS w(c, s, u) "
        "JOIN orders o ON o.tenant_id = $1 AND o.customer_id = w.c AND o.placed_at >= w.s AND o.placed_at < w.u "
        "WHERE o.exchange_for IS NULL", tenant_id, customers, since, until)
    return [PlacedOrder(*row) for row in rows]
