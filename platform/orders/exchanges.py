"""An exchange's replacement: a new order for the same customer, delivered the same way as the
original, linked to it (``exchange_for``), paid by the value of the goods coming back (and, when
it costs more, by what the customer pays on top), and routed like any order: at once, or held
until the return arrives (``release``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal
from core.outbox import enqueue
from core.problems import invalid
from inventory import catalog
from orders import capture, lifecycle, service_tasks
from orders.models import Order
from orders.schemas import AddressIn, CustomerIn, DeliveryIn, OrderIn, OrderLineIn, PaymentIn

WAITING = "Exchange: waiting for the return of the goods it replaces"


@dataclass(frozen=True)
class Replacement:
    sku: str
    name: str
    quantity: int
    unit_price_minor: int


async def priced(session: AsyncSession, principal: Principal, wanted: Sequence[tuple[str, int]]
                 ) -> tuple[list[Replacement], dict[str, str]]:
    """The replacement lines at today's catalog prices, or the problems (by ``replacement[i]``)."""
    products = await catalog.products_by_sku(session, principal.tenant_id, {sku for sku, _ in wanted})
    lines: list[Replacement] = []
    errors: dict[str, str] = {}
    if not wanted:
        errors["replacement"] = "Name the product the customer gets instead, and how many."
    for i, (sku, quantity) in enumerate(wanted):
        product = products.get(sku)
        if product is None:
            errors[f"replacement[{i}].sku"] = f"No product has the SKU {sku!r}."
        elif product.status != "active":
            errors[f"replacement[{i}].sku"] = f"{product.name} is not for sale any more."
        elif product.currency != principal.currency:
            errors[f"replacement[{i}].sku"] = f"{product.name} is priced in {product.currency}."
        if quantity <= 0:
            errors[f"replacement[{i}].quantity"] = "Enter a quantity of at least 1."
        if product is not None and f"replacement[{i}].sku" not in errors and quantity > 0:
            lines.append(Replacement(sku, product.name, quantity, product.price_minor))
    return lines, errors


async def place(session: AsyncSession, principal: Principal, original: Order, lines: Sequence[Replacement], *,
                credit: int, paid_on_top: int, reference: str, ship_now: bool) -> Order:
    """Capture the replacement order (the original's row is locked by the caller). ``credit``:
    what the returned goods pay of it; ``paid_on_top``: what the customer pays for the rest."""
    total = sum(line.unit_price_minor * line.quantity for line in lines)
    address = AddressIn(country=original.ship_country or "FR", name=original.ship_name or "",
                        line1=original.ship_line1 or "", city=original.ship_city or "",
                        postcode=original.ship_postcode or "", latitude=original.ship_latitude,
                        longitude=original.ship_longitude) if original.delivery_mode == "ship" else None
    delivery = DeliveryIn(mode=original.delivery_mode, address=address, pickup_location=original.pickup_location_code)
    data = OrderIn(
        channel=original.channel, currency=original.currency, total_minor=total,
        lines=[OrderLineIn(sku=line.sku, quantity=line.quantity, unit_price_minor=line.unit_price_minor)
               for line in lines],
        customer=CustomerIn(email=original.customer_email or "", name=original.customer_name or "",
                            phone=original.customer_phone or ""),
        delivery=delivery, external_number=reference[:100], language=original.language,
        payment=PaymentIn(authorized_minor=credit + paid_on_top, provider="external", method="exchange",
                          reference=reference[:200]) if credit + paid_on_top else None)
    found = await capture.lookups(session, principal, [data])
    errors = capture.problems(principal, data, found)
    if errors:
        raise invalid({f"replacement.{field}": message for field, message in errors.items()},
                      detail=next(iter(errors.values())))
    made = await capture.capture(session, principal, data, promotions=False)
    order = await session.scalar(select(Order).where(Order.tenant_id == principal.tenant_id,
                                                     Order.id == made.order.id).with_for_update())
    assert order is not None
    order.exchange_for = original.id
    if not ship_now:
        # Routing is queued with the capture: held first, it is left alone until released.
        lifecycle.move_order(session, order, "on_hold", actor=principal.label, reason=WAITING)
        order.hold_reason = WAITING
    lifecycle.record(session, original, "exchange.placed", actor=principal.label,
                     reason=f"Replacement order {order.number} placed"
                            + (", shipped at once" if ship_now else ", shipped when the return arrives"),
                     exchange_order_id=str(order.id), exchange_order_number=order.number)
    return order


async def release(session: AsyncSession, tenant_id: uuid.UUID, order_id: uuid.UUID, *, actor: str,
                  reason: str) -> None:
    """The goods came back: the replacement held for them goes to routing."""
    from orders.tasks import route_order

    order = await session.scalar(select(Order).where(Order.tenant_id == tenant_id, Order.id == order_id)
                                 .with_for_update())
    if order is None or order.status != "on_hold" or order.hold_reason != WAITING:
        return
    order.hold_reason = None
    lifecycle.move_order(session, order, "received", actor=actor, reason=reason)
    enqueue(session, route_order, tenant_id=tenant_id, order_id=str(order.id))


async def overdue(session: AsyncSession, original: Order, detail: str, *, subject: str, actor: str) -> None:
    """The goods of an exchange shipped at once did not come back in time: a task for customer service."""
    await service_tasks.open_task(session, original, "return_overdue", detail, actor=actor, subject=subject)
