"""Pickups nobody collected: after the pickup window the units go back on the shelf, the
customer's money back, and the customer is told."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from core.locale import format_money
from inventory import locations
from inventory.ledger import Line, adjust, release
from orders import allocation, customer_stats, lifecycle, notifications, payments, promotion_hook, service_tasks
from orders.fulfilment import lines_of
from orders.models import Fulfilment, Order, OrderLine

ACTOR = "pickup expiry"


async def due(session: AsyncSession, tenant_id: uuid.UUID, limit: int = 200) -> list[uuid.UUID]:
    return list(await session.scalars(select(Fulfilment.id).where(
        Fulfilment.tenant_id == tenant_id, Fulfilment.status == "ready_for_pickup",
        Fulfilment.pickup_expires_at < clock.now()).order_by(Fulfilment.pickup_expires_at).limit(limit)))


async def expire(session: AsyncSession, tenant_id: uuid.UUID, fulfilment_id: uuid.UUID) -> bool:
    """Expire one uncollected pickup; False when it was collected (or expired) meanwhile."""
    fulfilment = await session.scalar(select(Fulfilment).where(Fulfilment.tenant_id == tenant_id,
                                                               Fulfilment.id == fulfilment_id))
    if fulfilment is None:
        return False
    order = await session.scalar(select(Order).where(Order.tenant_id == tenant_id, Order.id == fulfilment.order_id)
                                 .with_for_update())
    assert order is not None
    await session.refresh(fulfilment, with_for_update=True)
    if fulfilment.status != "ready_for_pickup" or fulfilment.pickup_expires_at is None \
            or fulfilment.pickup_expires_at >= clock.now():
        return False
    lifecycle.move_fulfilment(session, order, fulfilment, "expired", actor=ACTOR,
                              reason=f"not collected by {fulfilment.pickup_expires_at:%Y-%m-%d %H:%M} UTC")
    lines = await lines_of(session, fulfilment)
    reference = f"order {order.number}"
    if fulfilment.kind == "pickup":  # still reserved on the store's shelf
        await release(session, tenant_id, [Line(line.product_id, fulfilment.location_id, line.quantity)
                                           for line in lines], reference=reference, actor=ACTOR, reason="expired")
    else:  # a transfer: the units left the warehouse and now sit at the pickup store
        code = fulfilment.ship_to_store or ""
        store = (await locations.by_codes(session, tenant_id, [code])).get(code)
        if store is not None:
            for line in lines:
                await adjust(session, tenant_id, Line(line.product_id, store.id, line.quantity), reason="restock",
                             actor=ACTOR, reference=reference)
    by_id = {line.order_line_id: line.quantity for line in lines}
    value = 0
    by_line: dict[uuid.UUID, int] = {}
    expired = list(await session.scalars(select(OrderLine).where(OrderLine.tenant_id == tenant_id,
                                                                 OrderLine.id.in_(list(by_id)))))
    for order_line in expired:
        quantity = by_id[order_line.id]
        if fulfilment.kind != "pickup":
            order_line.qty_shipped -= quantity
        order_line.qty_allocated -= quantity
        by_line[order_line.id] = payments.cancelled_value(order_line, quantity)
        value += by_line[order_line.id]
        order_line.qty_cancelled += quantity
    await session.flush()
    order_lines = list(await session.scalars(select(OrderLine).where(OrderLine.tenant_id == tenant_id,
                                                                     OrderLine.order_id == order.id)))
    everything = all(line.qty_cancelled >= line.quantity for line in order_lines)
    counted = {line.line_no: by_id[line.id] for line in expired}
    await customer_stats.units_gone(session, order, counted, expired, wholly_cancelled=everything)
    if (promotions := promotion_hook.hook()) is not None:  # the use comes back when nothing is kept
        await promotions.give_back(session, order.tenant_id, order.id, units=counted,
                                   whole=all(line.qty_cancelled + line.qty_returned >= line.quantity
                                             for line in order_lines))
    refunded = await payments.refund(session, order, order.captured_minor if everything else value, actor=ACTOR,
                                     reason="pickup not collected", source="cancellation", lines=by_line,
                                     shipping=order.shipping_fee_minor if everything else 0)
    # Customer service follows up (the customer may still want the goods, or call about the refund).
    await service_tasks.open_task(
        session, order, "pickup_expired",
        f"{fulfilment.number} was not collected at {fulfilment.ship_to_store or fulfilment.location_code} in time: "
        f"its units are back on the shelf, " + (f"{format_money(refunded, order.currency)} refunded" if refunded
                                                else "nothing to refund") +
        (" and the order is cancelled." if everything else "; the rest of the order goes on."),
        actor=ACTOR, subject=str(fulfilment.id))
    if everything:
        lifecycle.move_order(session, order, "cancelled", actor=ACTOR, reason="pickup not collected in time")
        await notifications.tell_customer(session, order, "pickup_expired")
    else:
        await allocation.settle(session, order, actor=ACTOR)
    return True
