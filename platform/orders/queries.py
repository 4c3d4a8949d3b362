"""Reading orders: the list (keyset-paged, newest first, so page 1,000 costs what page 1 does)
and one order with its lines, fulfilments and timeline."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, and_, exists, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal
from core.problems import invalid, not_found
from orders import lifecycle
from orders.models import Fulfilment, FulfilmentLine, Order, OrderEvent, OrderLine


@dataclass
class OrderFilters:
    status: str = ""
    channel: str = ""
    location: str = ""
    delivery_mode: str = ""
    day_from: date | None = None  # in the company's time zone, inclusive
    day_to: date | None = None
    q: str = ""  # an order number (ours or the channel's) or a customer's email
    payment_status: str = ""  # capture_failed: the payments customer service must follow up


def encode_cursor(order: Order) -> str:
    raw = f"{order.placed_at.isoformat()}|{order.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        placed, order_id = raw.split("|")
        return datetime.fromisoformat(placed), uuid.UUID(order_id)
    except (ValueError, UnicodeDecodeError):
        raise invalid({"after": "This page link is not valid: start again from the first page."}) from None


def reach(principal: Principal) -> list[ColumnElement[bool]]:
    """Conditions on ``Order`` for the orders the principal may see: a store associate's, those
    with work, a pickup or a transfer arriving at their locations; an order-intake key's, its
    channel's; everyone else's, all."""
    conditions: list[ColumnElement[bool]] = []
    if principal.locations is not None:
        codes = sorted(principal.locations)
        conditions.append(or_(Order.pickup_location_code.in_(codes), exists().where(
            Fulfilment.tenant_id == Order.tenant_id, Fulfilment.order_id == Order.id,
            or_(Fulfilment.location_code.in_(codes), Fulfilment.ship_to_store.in_(codes)))))
    if principal.channel is not None:
        conditions.append(Order.channel == principal.channel)
    return conditions


def _in_reach(principal: Principal, stmt: Select[Order]) -> Select[Order]:
    return stmt.where(*reach(principal))


def _filtered(principal: Principal, filters: OrderFilters) -> Select[Order]:
    stmt = _in_reach(principal, select(Order).where(Order.tenant_id == principal.tenant_id))
    if filters.status:
        stmt = stmt.where(Order.status == filters.status)
    if filters.channel:
        stmt = stmt.where(Order.channel == filters.channel)
    if filters.delivery_mode:
        stmt = stmt.where(Order.delivery_mode == filters.delivery_mode)
    if filters.payment_status:
        stmt = stmt.where(Order.payment_status == filters.payment_status)
    if filters.location:
        stmt = stmt.where(exists().where(Fulfilment.tenant_id == Order.tenant_id, Fulfilment.order_id == Order.id,
                                         Fulfilment.location_code == filters.location))
    zone = ZoneInfo(principal.timezone)
    if filters.day_from:
        stmt = stmt.where(Order.placed_at >= datetime.combine(filters.day_from, time(), zone))
    if filters.day_to:
        stmt = stmt.where(Order.placed_at < datetime.combine(filters.day_to + timedelta(days=1), time(), zone))
    q = filters.q.strip()
    if q:
        stmt = stmt.where(or_(Order.number == q.upper(), Order.external_number == q, Order.customer_email == q.lower()))
    return stmt


async def list_orders(session: AsyncSession, principal: Principal, filters: OrderFilters, *,
                      after: str | None = None, limit: int = 50) -> tuple[list[Order], str | None]:
    """A page of orders, newest first, and the cursor of the next page (None on the last)."""
    stmt = _filtered(principal, filters)
    if after:
        placed, order_id = decode_cursor(after)
        stmt = stmt.where(tuple_(Order.placed_at, Order.id) < tuple_(placed, order_id))
    rows = list(await session.scalars(stmt.order_by(Order.placed_at.desc(), Order.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1]) if more and rows else None


@dataclass
class OrderDetail:
    order: Order
    lines: list[OrderLine]
    fulfilments: list[tuple[Fulfilment, list[FulfilmentLine]]]
    events: list[OrderEvent]


async def get_order(session: AsyncSession, principal: Principal, order_id: uuid.UUID) -> Order:
    order = await session.scalar(_in_reach(principal, select(Order).where(Order.tenant_id == principal.tenant_id,
                                                                          Order.id == order_id)))
    if order is None:
        raise not_found("Order")
    return order


async def order_detail(session: AsyncSession, principal: Principal, order_id: uuid.UUID) -> OrderDetail:
    order = await get_order(session, principal, order_id)
    lines = list(await session.scalars(select(OrderLine).where(
        OrderLine.tenant_id == order.tenant_id, OrderLine.order_id == order.id).order_by(OrderLine.line_no)))
    fulfilments = list(await session.scalars(select(Fulfilment).where(
        Fulfilment.tenant_id == order.tenant_id, Fulfilment.order_id == order.id).order_by(Fulfilment.created_at)))
    by_fulfilment: dict[uuid.UUID, list[FulfilmentLine]] = {f.id: [] for f in fulfilments}
    if fulfilments:
        for line in await session.scalars(select(FulfilmentLine).where(
                FulfilmentLine.tenant_id == order.tenant_id, FulfilmentLine.fulfilment_id.in_(list(by_fulfilment)))):
            by_fulfilment[line.fulfilment_id].append(line)
    events = list(await session.scalars(select(OrderEvent).where(
        OrderEvent.tenant_id == order.tenant_id, OrderEvent.order_id == order.id).order_by(OrderEvent.id)))
    return OrderDetail(order, lines, [(f, by_fulfilment[f.id]) for f in fulfilments], events)


OPEN = ("created", "accepted", "picking", "packed", "ready_for_pickup")
# After it leaves the warehouse, a transfer is the pickup store's to receive and hand over.
ARRIVING = ("shipped", "ready_for_pickup")


async def queue(session: AsyncSession, principal: Principal, location: str, *, open_only: bool = True,
                ) -> list[tuple[Fulfilment, Order, list[FulfilmentLine]]]:
    """A location's fulfilments, oldest first: what the store or warehouse has to do, with the
    transfers on their way to (or waiting at) the store for a customer to collect."""
    if not principal.works_at(location):
        raise not_found("Location")
    here = Fulfilment.location_code == location
    arriving = and_(Fulfilment.ship_to_store == location, Fulfilment.kind == "transfer")
    stmt = (select(Fulfilment, Order)
            .join(Order, and_(Order.tenant_id == Fulfilment.tenant_id, Order.id == Fulfilment.order_id))
            .where(Fulfilment.tenant_id == principal.tenant_id))
    if open_only:
        stmt = stmt.where(or_(and_(here, Fulfilment.status.in_(OPEN)), and_(arriving, Fulfilment.status.in_(ARRIVING))))
    else:
        stmt = stmt.where(or_(here, arriving))
    rows = (await session.execute(stmt.order_by(Fulfilment.created_at).limit(200))).all()
    ids = [f.id for f, _ in rows]
    lines: dict[uuid.UUID, list[FulfilmentLine]] = {i: [] for i in ids}
    if ids:
        for line in await session.scalars(select(FulfilmentLine).where(
                FulfilmentLine.tenant_id == principal.tenant_id, FulfilmentLine.fulfilment_id.in_(ids),
                FulfilmentLine.quantity > 0)):
            lines[line.fulfilment_id].append(line)
    return [(f, o, lines[f.id]) for f, o in rows]


def filters_of(status: str, channel: str, location: str, delivery_mode: str, day_from: str, day_to: str,
             q: str, payment_status: str = "") -> OrderFilters:
    errors: dict[str, str] = {}
    days: list[date | None] = []
    for name, value in (("from", day_from), ("to", day_to)):
        try:
            days.append(date.fromisoformat(value) if value else None)
        except ValueError:
            errors[name] = f"{value!r} is not a date (YYYY-MM-DD)."
            days.append(None)
    if status and status not in lifecycle.ORDER_STATES:
        errors["status"] = f"Unknown status {status!r}."
    if errors:
        raise invalid(errors)
    return OrderFilters(status=status, channel=channel, location=location, delivery_mode=delivery_mode,
                                day_from=days[0], day_to=days[1], q=q, payment_status=payment_status)


async def has_orders(session: AsyncSession, tenant_id: uuid.UUID) -> bool:
    return bool(await session.scalar(select(exists().where(Order.tenant_id == tenant_id))))
