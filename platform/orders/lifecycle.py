"""The order and fulfilment state machines: one table of allowed moves each, and every move
written to the order's timeline with who made it and why."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core import bulk, clock, webhooks
from core.ids import uuid7
from core.problems import ProblemError
from orders.models import Fulfilment, Order, OrderEvent

ORDER_MOVES: dict[str, frozenset[str]] = {
    "received": frozenset({"routed", "on_hold", "backordered", "cancelled"}),
    "on_hold": frozenset({"received", "routed", "backordered", "cancelled"}),
    "backordered": frozenset({"received", "routed", "on_hold", "cancelled"}),
    "routed": frozenset({"received", "on_hold", "backordered", "partially_shipped", "shipped", "ready_for_pickup",
                         "cancelled"}),
    "partially_shipped": frozenset({"received", "on_hold", "backordered", "shipped", "ready_for_pickup",
                                    "delivered"}),
    "shipped": frozenset({"delivered", "closed"}),
    "ready_for_pickup": frozenset({"collected", "routed", "received", "on_hold", "cancelled"}),
    "collected": frozenset({"closed"}),
    "delivered": frozenset({"closed"}),
    "cancelled": frozenset(),
    "closed": frozenset(),
}
ORDER_STATES = tuple(ORDER_MOVES)

FULFILMENT_MOVES: dict[str, frozenset[str]] = {
    "created": frozenset({"accepted", "rejected", "cancelled"}),
    "accepted": frozenset({"picking", "rejected", "cancelled"}),
    "picking": frozenset({"packed", "rejected", "cancelled"}),
    "packed": frozenset({"shipped", "ready_for_pickup", "rejected", "cancelled"}),
    "shipped": frozenset({"delivered", "ready_for_pickup"}),  # a transfer arrives at its pickup store
    "ready_for_pickup": frozenset({"collected", "expired", "cancelled"}),
    "collected": frozenset(),
    "delivered": frozenset(),
    "rejected": frozenset(),
    "expired": frozenset(),
    "cancelled": frozenset(),
}
FULFILMENT_STATES = tuple(FULFILMENT_MOVES)
# Stock still held for the fulfilment (reserved), and the states where nothing can change any more.
HOLDING = frozenset({"created", "accepted", "picking", "packed", "ready_for_pickup"})
DONE = frozenset({"shipped", "delivered", "collected", "rejected", "expired", "cancelled"})


class IllegalMove(ProblemError):
    pass


def record(session: AsyncSession, order: Order, kind: str, *, actor: str, reason: str | None = None,
           fulfilment: Fulfilment | None = None, from_status: str | None = None, to_status: str | None = None,
           **data: Any) -> OrderEvent:
    """Write an entry on the order's timeline (deferred: one INSERT for all of a transaction's)."""
    row = {"tenant_id": order.tenant_id, "id": uuid7(), "order_id": order.id,
           "fulfilment_id": fulfilment.id if fulfilment else None, "kind": kind, "from_status": from_status,
           "to_status": to_status, "actor": actor, "reason": reason, "data": data}
    bulk.defer(session, OrderEvent, row)
    return bulk.detached(OrderEvent, row)


def move_order(session: AsyncSession, order: Order, to: str, *, actor: str, reason: str | None = None,
               **data: Any) -> None:
    """Move the order to ``to``; a move the table does not allow is refused with the current state."""
    if to == order.status:
        return
    if to not in ORDER_MOVES[order.status]:
        raise IllegalMove(409, "Not allowed now", f"Order {order.number} is {order.status.replace('_', ' ')}: "
                                                  f"it can't become {to.replace('_', ' ')}.")
    record(session, order, "order." + to, actor=actor, reason=reason, from_status=order.status, to_status=to, **data)
    order.status = to
    # Why it waits, shown where it is listed: on hold for customer service, or for stock.
    order.hold_reason = reason[:500] if reason and to in ("on_hold", "backordered") else None
    announce(session, order, "order." + to, reason=reason)


def move_fulfilment(session: AsyncSession, order: Order, fulfilment: Fulfilment, to: str, *, actor: str,
                    reason: str | None = None, **data: Any) -> None:
    if to not in FULFILMENT_MOVES[fulfilment.status]:
        raise IllegalMove(409, "Not allowed now",
                          f"Fulfilment {fulfilment.number} is {fulfilment.status.replace('_', ' ')}: "
                          f"it can't become {to.replace('_', ' ')}.")
    record(session, order, "fulfilment." + to, actor=actor, reason=reason, fulfilment=fulfilment,
           from_status=fulfilment.status, to_status=to, location=fulfilment.location_code, **data)
    fulfilment.status = to
    if to == "ready_for_pickup" and fulfilment.ready_at is None:
        fulfilment.ready_at = clock.now()  # done, for the fulfilment-time figures: the first time only
    if reason:
        fulfilment.reason = reason
    announce(session, order, "fulfilment." + to, fulfilment=fulfilment, reason=reason)


def announce(session: AsyncSession, order: Order, event_type: str, *, fulfilment: Fulfilment | None = None,
             reason: str | None = None) -> None:
    """The company's webhooks hear of the events they subscribe to."""
    if event_type not in webhooks.EVENTS:
        return
    data: dict[str, Any] = {"order_id": str(order.id), "number": order.number, "channel": order.channel,
                            "external_number": order.external_number, "status": order.status, "reason": reason}
    if fulfilment is not None:
        data["fulfilment"] = {"id": str(fulfilment.id), "number": fulfilment.number,
                              "location": fulfilment.location_code, "status": fulfilment.status,
                              "kind": fulfilment.kind, "carrier": fulfilment.carrier,
                              "tracking_number": fulfilment.tracking_number,
                              "tracking_url": fulfilment.tracking_url,
                              "shipped_at": fulfilment.shipped_at.isoformat() if fulfilment.shipped_at else None,
                              "delivered_at": fulfilment.delivered_at.isoformat() if fulfilment.delivered_at
                              else None}
    webhooks.emit(session, order.tenant_id, event_type, data)
