"""Payments through one interface: capture when goods leave, refund when they won't.

"external": the channel took the payment (a marketplace, a till); the OMS records what was
captured and refunded and the channel moves the money. Stripe (the retailer's own account)
is the second adapter; until it is configured for a company, its orders wait in
"capture_pending" with the reason on the timeline.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.templating import money
from orders import lifecycle
from orders.models import Order, OrderLine


async def capture_on_shipment(session: AsyncSession, order: Order, *, actor: str) -> None:
    """Capture what is authorised and not captured yet, at the order's first shipment or handover."""
    if order.payment_status not in ("authorized", "capture_pending"):
        return
    lines = await session.scalars(select(OrderLine).where(OrderLine.tenant_id == order.tenant_id,
                                                          OrderLine.order_id == order.id))
    cancelled = sum(value_of(line, line.qty_cancelled) for line in lines)  # never charged for
    amount = min(order.authorized_minor, order.total_minor - cancelled) - order.captured_minor
    if amount <= 0:
        return
    if order.payment_provider == "external":
        order.captured_minor += amount
        order.payment_status = "captured"
        lifecycle.record(session, order, "payment.captured", actor=actor, amount_minor=amount,
                         reason=f"{money(amount, order.currency)} recorded as captured by the channel")
        return
    order.payment_status = "capture_pending"
    lifecycle.record(session, order, "payment.capture_pending", actor=actor, amount_minor=amount,
                     reason="Stripe capture is not configured for this company yet")


def value_of(line: OrderLine, quantity: int) -> int:
    """What ``quantity`` units of the line cost the customer, its discount shared per unit."""
    return line.unit_price_minor * quantity - (line.discount_minor * quantity) // line.quantity


async def refund(session: AsyncSession, order: Order, amount: int, *, actor: str, reason: str) -> int:
    """Give back up to ``amount`` of what was captured; returns what was refunded."""
    amount = min(amount, order.captured_minor - order.refunded_minor)
    if amount <= 0:
        return 0
    order.refunded_minor += amount
    order.payment_status = "refunded" if order.refunded_minor >= order.captured_minor else "partially_refunded"
    lifecycle.record(session, order, "payment.refunded", actor=actor, amount_minor=amount,
                     reason=f"{money(amount, order.currency)} refunded: {reason}")
    return amount
