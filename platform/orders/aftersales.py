"""What customer service does to an order after its goods reached the customer, as the
support domain asks for it: which units came into the customer's hands and when, marking
units as returned, refunding a return on the order's refund ledger, and writing each step on
the order's timeline. The order row is locked by ``lock`` for the whole transaction, so
concurrent returns and refunds of one order are counted one after the other."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal
from core.problems import not_found
from orders import customer_stats, lifecycle, payments, promotion_hook, queries
from orders.models import Fulfilment, FulfilmentLine, Order, OrderLine, Refund

# A ship fulfilment is in the customer's hands once shipped (its delivery may never be reported);
# a pickup or a transfer to a pickup store once collected.
_HANDED_OVER_SHIP = ("shipped", "delivered")


@dataclass(frozen=True)
class LineFacts:
    order_line_id: uuid.UUID
    line_no: int
    sku: str
    product_id: uuid.UUID | None
    name: str
    category: str | None
    quantity: int
    received: int  # units the customer has had: shipped to them or collected
    returned: int  # units marked returned (received back) so far
    unit_price_minor: int


@dataclass(frozen=True)
class AfterSale:
    order: Order
    lines: list[LineFacts]
    handed_over_at: datetime | None  # the last delivery (or shipment, when no delivery is known) or collection

    def line(self, *, line_no: int | None = None, order_line_id: uuid.UUID | None = None) -> LineFacts | None:
        for line in self.lines:
            if (line_no is not None and line.line_no == line_no) or \
                    (order_line_id is not None and line.order_line_id == order_line_id):
                return line
        return None


async def lock(session: AsyncSession, principal: Principal, order_id: uuid.UUID, *, within_reach: bool = True,
               for_update: bool = True) -> AfterSale:
    """The order with its row locked and what its customer received. ``within_reach``: only an
    order the principal may see (else 404); a store associate receiving a return at their store
    may receive an order another location sent, so receiving does not ask for it. Without
    ``for_update``, to show it only."""
    conditions = queries.reach(principal) if within_reach else []
    query = select(Order).where(Order.tenant_id == principal.tenant_id, Order.id == order_id, *conditions)
    order: Order | None = await session.scalar(query.with_for_update() if for_update else query)
    if order is None:
        raise not_found("Order")
    return await _facts(session, order)


async def _facts(session: AsyncSession, order: Order) -> AfterSale:
    order_lines = list(await session.scalars(select(OrderLine).where(
        OrderLine.tenant_id == order.tenant_id, OrderLine.order_id == order.id).order_by(OrderLine.line_no)))
    received: dict[uuid.UUID, int] = {}
    handed_over_at: datetime | None = None
    rows = await session.execute(
        select(Fulfilment.kind, Fulfilment.status, Fulfilment.shipped_at, Fulfilment.delivered_at,
               Fulfilment.updated_at, FulfilmentLine.order_line_id, FulfilmentLine.quantity)
        .join(FulfilmentLine, (FulfilmentLine.tenant_id == Fulfilment.tenant_id)
              & (FulfilmentLine.fulfilment_id == Fulfilment.id))
        .where(Fulfilment.tenant_id == order.tenant_id, Fulfilment.order_id == order.id))
    for kind, status, shipped_at, delivered_at, updated_at, line_id, quantity in rows:
        if kind == "ship" and status in _HANDED_OVER_SHIP:
            at = delivered_at or shipped_at
        elif status == "collected":
            at = updated_at  # collection ends the fulfilment: nothing changes it after
        else:
            continue
        received[line_id] = received.get(line_id, 0) + quantity
        if at is not None and (handed_over_at is None or at > handed_over_at):
            handed_over_at = at
    return AfterSale(order, [
        LineFacts(order_line_id=line.id, line_no=line.line_no, sku=line.sku, product_id=line.product_id,
                  name=line.name, category=line.category, quantity=line.quantity,
                  received=received.get(line.id, 0), returned=line.qty_returned,
                  unit_price_minor=line.unit_price_minor) for line in order_lines], handed_over_at)


async def unit_values(session: AsyncSession, order: Order, units: Mapping[uuid.UUID, int]) -> dict[uuid.UUID, int]:
    """What ``units`` more returned units of each line are worth to the customer (their share of
    the line's net, after its cancelled and already returned units), before they are marked."""
    values: dict[uuid.UUID, int] = {}
    for line in await session.scalars(select(OrderLine).where(
            OrderLine.tenant_id == order.tenant_id, OrderLine.id.in_(list(units)))):
        gone = line.qty_cancelled + line.qty_returned
        values[line.id] = payments.value_of(line, min(line.quantity, gone + units[line.id])) - \
            payments.value_of(line, gone)
    return values


async def mark_returned(session: AsyncSession, order: Order, units: Mapping[uuid.UUID, int]) -> None:
    """Count ``units`` of each line as back from the customer: the order's figures take them off,
    so does the customer's lifetime value, and the order's promotions get their share back."""
    lines = list(await session.scalars(select(OrderLine).where(
        OrderLine.tenant_id == order.tenant_id, OrderLine.order_id == order.id).with_for_update()))
    for line in lines:
        line.qty_returned += units.get(line.id, 0)
    counted = {line.line_no: units[line.id] for line in lines if units.get(line.id)}
    await customer_stats.units_gone(session, order, counted, lines, wholly_cancelled=False)
    if (promotions := promotion_hook.hook()) is not None:
        await promotions.give_back(session, order.tenant_id, order.id, units=counted, whole=all(
            line.qty_returned + line.qty_cancelled >= line.quantity for line in lines))


async def nothing_kept(session: AsyncSession, order: Order) -> bool:
    """Whether every unit of the order came back or was cancelled (its shipping is then refundable)."""
    lines = await session.scalars(select(OrderLine).where(OrderLine.tenant_id == order.tenant_id,
                                                          OrderLine.order_id == order.id))
    return all(line.qty_returned + line.qty_cancelled >= line.quantity for line in lines)


async def visible(session: AsyncSession, principal: Principal, order_id: uuid.UUID) -> Order:
    """The order, if the principal may see it (else 404)."""
    return await queries.get_order(session, principal, order_id)


def channel_order_ids(principal: Principal) -> Select[uuid.UUID]:
    """The ids of the orders of an order-intake key's channel, as a subquery."""
    return select(Order.id).where(Order.tenant_id == principal.tenant_id, Order.channel == principal.channel)


async def refundable_shipping(session: AsyncSession, order: Order) -> int:
    return (await payments.refundable(session, order)).shipping


async def refund(session: AsyncSession, order: Order, lines: Mapping[uuid.UUID, int], shipping: int, *,
                 actor: str, reason: str, source: str = "return") -> tuple[uuid.UUID | None, int, str | None]:
    """Give back ``lines`` (order line id → amount) and ``shipping`` on the order's refund ledger,
    cut to what is left to refund. Returns the refund's id, the amount refunded and its status
    (None, 0, None when nothing was left to give back)."""
    amount = sum(lines.values()) + shipping
    if amount <= 0:
        return None, 0, None
    row = await payments.record_refund(session, order, amount, actor=actor, reason=reason, source=source,
                                       lines=lines, shipping=shipping)
    if row is None:
        return None, 0, None
    return row.id, row.amount_minor, row.status


async def refund_status(session: AsyncSession, order: Order, refund_id: uuid.UUID) -> str | None:
    found: str | None = await session.scalar(select(Refund.status).where(
        Refund.tenant_id == order.tenant_id, Refund.id == refund_id))
    return found


def record(session: AsyncSession, order: Order, kind: str, *, actor: str, reason: str, **data: Any) -> None:
    """An after-sale step on the order's timeline."""
    lifecycle.record(session, order, kind, actor=actor, reason=reason[:1000], **data)
