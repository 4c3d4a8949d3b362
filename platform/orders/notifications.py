"""What the customer hears about their order, through the platform's one mail interface."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from core.locale import format_money as money
from core.mail import queue_mail
from orders.models import Order

SUBJECTS = {
    "confirmation": "We have your order {number}",
    "shipped": "Your order {number} is on its way",
    "ready_for_pickup": "Your order {number} is ready for pickup",
    "cancelled": "Your order {number} was cancelled",
    "pickup_expired": "Your order {number} was not collected",
}


def _body(order: Order, kind: str, detail: str) -> str:
    name = order.customer_name or "there"
    lines = {
        "confirmation": f"Thank you for your order {order.number} of {money(order.total_minor, order.currency)}. "
                        "We'll write again when it leaves us.",
        "shipped": f"Order {order.number} has shipped.",
        "ready_for_pickup": f"Order {order.number} is waiting for you at {order.pickup_location_code}.",
        "cancelled": f"Order {order.number} was cancelled.",
        "pickup_expired": f"Order {order.number} was not collected in time from {order.pickup_location_code}, so "
                          "we cancelled it.",
    }[kind]
    return f"Hello {name},\n\n{lines}{' ' + detail if detail else ''}\n"


async def tell_customer(session: AsyncSession, order: Order, kind: str, detail: str = "") -> None:
    if not order.customer_email or "@" not in order.customer_email:
        return
    await queue_mail(session, tenant_id=order.tenant_id, to=order.customer_email, kind=f"order.{kind}",
                     subject=SUBJECTS[kind].format(number=order.number), body=_body(order, kind, detail))
