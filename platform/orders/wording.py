"""What the console says about an order, from one place: the payment sentence (true in every
state the order and its payment can be in), why an order waits, and its timeline in words.

Statuses and event kinds stay machine words for the API and webhooks; these functions turn them
into what a shop employee reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from babel import Locale

from core.locale import format_money
from orders.models import Order
from orders.payments import Figures

# --- payments ------------------------------------------------------------------------------------


def payment_sentence(order: Order, figures: Figures, *, locale: Locale | str | None = None,
                     refunds_waiting: int = 0, refunds_failed: int = 0) -> str:
    """One sentence on the order's payment, consistent with its status: a cancelled order never
    reads "authorised", an order without payment never reads "refunded"."""
    def money(minor: int) -> str:
        return format_money(minor, order.currency, locale)

    status = order.payment_status
    to_capture = max(0, min(figures.authorized, figures.total_now) - figures.captured)
    if figures.captured == 0:
        if order.status == "cancelled":
            if figures.authorized:
                return (f"Nothing was charged: the order was cancelled before its payment of "
                        f"{money(figures.authorized)} was captured, so there is nothing to refund.")
            return "No payment was taken, so there is nothing to refund."
        if status == "capture_pending":
            return f"Capturing {money(to_capture)} with Stripe now."
        if status == "capture_failed":
            return (f"Capturing {money(to_capture)} failed: it is tried again automatically, and customer service "
                    f"is following up.")
        if figures.authorized:
            if to_capture == 0:
                return f"{money(figures.authorized)} authorised; nothing is left to capture."
            return (f"{money(figures.authorized)} authorised by the customer; {money(to_capture)} will be captured "
                    f"when the goods leave.")
        if figures.total_now > 0:
            return f"No payment is recorded for this order: the customer owes {money(figures.total_now)}."
        return "No payment is recorded for this order, and nothing is owed."
    if figures.refunded == 0:
        words = f"{money(figures.captured)} captured."
    elif figures.refunded >= figures.captured:
        words = f"{money(figures.captured)} captured and refunded in full."
    else:
        words = (f"{money(figures.captured)} captured, {money(figures.refunded)} refunded: the customer has paid "
                 f"{money(figures.paid)}.")
    # Once captured, paying less than the order comes to is a refund of kept units (goodwill,
    # an adjustment): never something the customer owes.
    if figures.balance < 0:
        words += f" {money(-figures.balance)} is still to be refunded."
    elif to_capture and status == "capture_failed":
        words += f" Capturing {money(to_capture)} more failed: customer service is following up."
    elif to_capture and status in ("authorized", "capture_pending"):
        words += f" {money(to_capture)} more will be captured when the rest leaves."
    if refunds_waiting:
        words += f" {money(refunds_waiting)} of the refunds is still on its way through Stripe."
    if refunds_failed:
        words += (f" Stripe refused {money(refunds_failed)} of the refunds: customer service refunds the customer "
                  f"another way.")
    return words


def balance_label(order: Order, figures: Figures) -> str:
    """The name of the last row of the order's money table (its amount: the balance, unsigned)."""
    if figures.balance < 0:
        return "To refund"
    if figures.balance == 0:
        return "Nothing owed"
    if order.payment_status in ("authorized", "capture_pending", "capture_failed") \
            and figures.authorized - figures.captured >= figures.balance:
        return "To capture"
    if figures.captured:
        return "Refunded on kept units"
    return "Owed by the customer"


# --- why an order waits ------------------------------------------------------------------------


def missing_units(shortfall: Mapping[str, int], *, most: int = 3) -> str:
    """"485 units of BAG-01 missing", several SKUs joined, the largest first."""
    ordered = sorted(((units, sku) for sku, units in shortfall.items() if units > 0), key=lambda x: (-x[0], x[1]))
    parts = [f"{units} unit{'s' if units != 1 else ''} of {sku}" for units, sku in ordered[:most]]
    if len(ordered) > most:
        rest = len(ordered) - most
        parts.append(f"{rest} more SKU{'s' if rest != 1 else ''}")
    if not parts:
        return ""
    joined = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{joined} missing"


# --- the timeline ------------------------------------------------------------------------------

class Event(Protocol):
    kind: str
    from_status: str | None
    to_status: str | None
    data: dict[str, Any]


_TITLES = {
    "order.received": "Order received",
    "order.routed": "Routed",
    "order.on_hold": "Put on hold",
    "order.backordered": "Backordered: waiting for stock",
    "order.cancelled": "Order cancelled",
    "order.partially_shipped": "Partly shipped",
    "order.shipped": "Shipped",
    "order.delivered": "Delivered",
    "order.ready_for_pickup": "Ready for pickup",
    "order.collected": "Collected",
    "order.closed": "Closed",
    "order.lines_cancelled": "Units cancelled",
    "fulfilment.created": "Fulfilment created",
    "fulfilment.accepted": "Fulfilment accepted",
    "fulfilment.picking": "Picking started",
    "fulfilment.packed": "Packed",
    "fulfilment.shipped": "Fulfilment shipped",
    "fulfilment.delivered": "Fulfilment delivered",
    "fulfilment.ready_for_pickup": "Ready for pickup at the store",
    "fulfilment.collected": "Fulfilment collected by the customer",
    "fulfilment.rejected": "Fulfilment rejected",
    "fulfilment.expired": "Pickup expired",
    "fulfilment.cancelled": "Fulfilment cancelled",
    "fulfilment.tracking": "Tracking update",
    "payment.capture_requested": "Payment capture requested",
    "payment.captured": "Payment captured",
    "payment.capture_failed": "Payment capture failed",
    "payment.nothing_to_capture": "Nothing to capture",
    "payment.refunded": "Refund recorded",
    "payment.refund_sent": "Refund sent",
    "payment.refund_failed": "Refund failed",
    "payment.refund_abandoned": "Refund settled another way",
    "task.opened": "Task opened for customer service",
    "task.resolved": "Task resolved",
    "order.pickup_store_changed": "Pickup store changed",  # orders.amendments
    "order.address_changed": "Delivery address changed",
    "mail.resent": "Mail sent again",
    "note.added": "Note",
    "task.assigned": "Task assigned",
    "task.commented": "Comment on a task",
}
# The only moves back to "received": a person releasing a waiting order, and a location
# rejecting its part (the order is routed again without it).
_RELEASED_FROM = frozenset({"on_hold", "backordered"})


def event_title(event: Event) -> str:
    """What happened, in a few words."""
    if event.kind == "order.received" and event.from_status is not None:
        if (event.data or {}).get("cause") == "pickup_store_changed":
            return "Routing again for the new pickup store"
        if event.from_status in _RELEASED_FROM:
            return "Released: routing again"
        return "Routing again after a rejection"
    title = _TITLES.get(event.kind)
    if title is None:
        return event.kind.replace("_", " ").replace(".", " ").capitalize()
    location = (event.data or {}).get("location")
    if event.kind.startswith("fulfilment.") and location:
        title += f" at {location}"
    if event.kind == "order.lines_cancelled":
        units = (event.data or {}).get("lines") or {}
        if units:
            title += ": " + ", ".join(f"{count} of line {no}" for no, count in units.items())
    return title + _before_after(event)


def _one_line(value: Any) -> str:
    if isinstance(value, dict):  # an address
        town = " ".join(str(value.get(k) or "") for k in ("postcode", "city")).strip()
        return ", ".join(p for p in (value.get("name"), value.get("line1"), town, value.get("country")) if p) or "none"
    return str(value or "none")


def _before_after(event: Event) -> str:
    """What an agent's change changed (orders.amendments): "from A to B", or the mail sent again."""
    data = event.data or {}
    if event.kind in ("order.pickup_store_changed", "order.address_changed") and "after" in data:
        return f" from {_one_line(data.get('before'))} to {_one_line(data.get('after'))}"
    if event.kind == "mail.resent" and data.get("subject"):
        return f": “{data['subject']}” to {data.get('to') or 'the customer'}"
    return ""
