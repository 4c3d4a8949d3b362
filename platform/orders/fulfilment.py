"""What a location does with its fulfilment: accept, pick, pack, then ship or make ready for
pickup and hand over; or reject it, which releases its stock and routes those lines again
without that location."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from core.auth import Principal
from core.outbox import enqueue
from core.problems import ProblemError, not_found
from inventory.ledger import Line, consume, release
from orders import allocation, lifecycle, notifications, payments, service_tasks
from orders.models import Fulfilment, FulfilmentLine, Order, OrderLine
from tenants.service import pickup_window_of

ACTIONS = {"accept": "accepted", "pick": "picking", "pack": "packed", "ship": "shipped",
           "ready": "ready_for_pickup", "collect": "collected", "deliver": "delivered", "reject": "rejected"}


async def locked(session: AsyncSession, tenant_id: uuid.UUID, fulfilment_id: uuid.UUID,
                 ) -> tuple[Order, Fulfilment]:
    """The fulfilment and its order, the order row locked first (the order's lock orders all
    changes to it: routing, cancellation, and its fulfilments)."""
    fulfilment = await session.scalar(select(Fulfilment).where(Fulfilment.tenant_id == tenant_id,
                                                               Fulfilment.id == fulfilment_id))
    if fulfilment is None:
        raise not_found("Fulfilment")
    order = await session.scalar(select(Order).where(Order.tenant_id == tenant_id, Order.id == fulfilment.order_id)
                                 .with_for_update())
    assert order is not None
    await session.refresh(fulfilment, with_for_update=True)
    return order, fulfilment


async def lines_of(session: AsyncSession, fulfilment: Fulfilment) -> list[FulfilmentLine]:
    return list(await session.scalars(select(FulfilmentLine).where(
        FulfilmentLine.tenant_id == fulfilment.tenant_id, FulfilmentLine.fulfilment_id == fulfilment.id,
        FulfilmentLine.quantity > 0)))


async def act(session: AsyncSession, principal: Principal, fulfilment_id: uuid.UUID, action: str, *,
              reason: str = "", tracking_number: str | None = None) -> tuple[Order, Fulfilment]:
    if action not in ACTIONS:
        raise not_found("Action")
    order, fulfilment = await locked(session, principal.tenant_id, fulfilment_id)
    target = ACTIONS[action]
    if not _may_act(principal, fulfilment, target):
        raise not_found("Fulfilment")
    _check_kind(fulfilment, target)
    if (target == "collected" or (target == "shipped" and fulfilment.kind == "ship")) \
            and await service_tasks.on_payment_hold(session, order):
        raise ProblemError(409, "Payment on hold",
                           f"Order {order.number}'s payment could not be captured: its goods wait until the capture "
                           "succeeds or customer service resolves the task.")
    if target == "rejected" and not reason.strip():
        raise ProblemError(422, "Say why", "A rejection needs a reason (item missing, damaged...).")
    lifecycle.move_fulfilment(session, order, fulfilment, target, actor=principal.label, reason=reason or None,
                              **({"tracking_number": tracking_number} if tracking_number else {}))
    lines = await lines_of(session, fulfilment)
    reference = f"order {order.number}"
    if target == "shipped" or (target == "collected" and fulfilment.kind == "pickup"):
        await consume(session, order.tenant_id, [Line(line.product_id, fulfilment.location_id, line.quantity)
                                                 for line in lines], reference=reference, actor=principal.label,
                      reason="shipped" if target == "shipped" else "collected")
        await _mark_shipped(session, lines)
        if tracking_number:
            fulfilment.tracking_number = tracking_number
        await payments.capture_on_shipment(session, order, actor=principal.label)
        if target == "shipped" and fulfilment.kind == "ship":
            await notifications.tell_customer(session, order, "shipped",
                                              f"Tracking number: {tracking_number}." if tracking_number else "")
    elif target == "ready_for_pickup":
        fulfilment.pickup_expires_at = clock.now() + await pickup_window_of(session, order.tenant_id)
        await notifications.tell_customer(session, order, "ready_for_pickup",
                                          f"Please collect it by {fulfilment.pickup_expires_at:%d %B}.")
    elif target == "rejected":
        await _give_back(session, order, fulfilment, lines, actor=principal.label, reason="rejected")
        order.excluded_locations = sorted({*(order.excluded_locations or ()), fulfilment.location_code})
        lifecycle.move_order(session, order, "received", actor=principal.label,
                             reason=f"{fulfilment.location_code} rejected its part: {reason.strip()}; routing again "
                                    f"without it")
        from orders.tasks import route_order

        enqueue(session, route_order, tenant_id=order.tenant_id, order_id=str(order.id))
    await session.flush()
    if target != "rejected":
        await allocation.settle(session, order, actor=principal.label)
    return order, fulfilment


def _may_act(principal: Principal, fulfilment: Fulfilment, target: str) -> bool:
    """A store associate acts at their own locations only: on what leaves them, and on a
    transfer arriving there for a customer to collect."""
    if principal.works_at(fulfilment.location_code):
        return True
    return fulfilment.kind == "transfer" and fulfilment.ship_to_store is not None \
        and principal.works_at(fulfilment.ship_to_store) and target in ("ready_for_pickup", "collected")


def _check_kind(fulfilment: Fulfilment, target: str) -> None:
    if target == "ready_for_pickup" and fulfilment.kind == "ship":
        raise ProblemError(409, "Not a pickup", f"{fulfilment.number} ships to the customer: ship it instead.")
    if target == "shipped" and fulfilment.kind == "pickup":
        raise ProblemError(409, "A pickup", f"{fulfilment.number} is collected in store: mark it ready instead.")
    if target == "ready_for_pickup" and fulfilment.kind == "transfer" and fulfilment.status != "shipped":
        raise ProblemError(409, "Not arrived", f"{fulfilment.number} must be shipped to the store first.")
    if target == "delivered" and fulfilment.kind != "ship":
        raise ProblemError(409, "Not a delivery", f"{fulfilment.number} goes to a pickup store.")


async def _mark_shipped(session: AsyncSession, lines: list[FulfilmentLine]) -> None:
    by_id = {line.order_line_id: line.quantity for line in lines}
    for order_line in await session.scalars(select(OrderLine).where(OrderLine.id.in_(list(by_id)))):
        order_line.qty_shipped += by_id[order_line.id]


async def _give_back(session: AsyncSession, order: Order, fulfilment: Fulfilment, lines: list[FulfilmentLine],
                     *, actor: str, reason: str) -> None:
    """Release the fulfilment's reserved stock and un-allocate its lines."""
    if lines:
        await release(session, order.tenant_id, [Line(line.product_id, fulfilment.location_id, line.quantity)
                                                 for line in lines],
                      reference=f"order {order.number}", actor=actor, reason=reason)
    by_id = {line.order_line_id: line.quantity for line in lines}
    if by_id:
        for order_line in await session.scalars(select(OrderLine).where(OrderLine.tenant_id == order.tenant_id,
                                                                        OrderLine.id.in_(list(by_id)))):
            order_line.qty_allocated -= by_id[order_line.id]
