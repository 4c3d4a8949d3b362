"""What a location does with its fulfilment: accept, pick, pack, then ship (with its carrier and
tracking number) or make ready for pickup and hand over; or reject it, which releases its stock
and routes those lines again without that location. A shipped parcel is delivered by hand, by the
API, or by its carrier's tracking events."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from core.auth import Principal
from core.outbox import enqueue
from core.problems import ProblemError, invalid, not_found
from inventory import locations as inventory_locations
from inventory.ledger import Line, consume, release
from orders import allocation, carriers, lifecycle, notifications, payments, service_tasks
from orders.models import Fulfilment, FulfilmentLine, Order, OrderEvent, OrderLine
from tenants.service import pickup_window_of

ACTIONS = {"accept": "accepted", "pick": "picking", "pack": "packed", "ship": "shipped",
           "ready": "ready_for_pickup", "collect": "collected", "deliver": "delivered", "reject": "rejected"}
# What a carrier's tracking events may say.
TRACKING_STATES = {"delivered": "delivered", "in_transit": "in transit", "exception": "delivery problem"}
# A carrier's clock may run a little ahead of ours; further ahead is a mistake.
CLOCK_SKEW = timedelta(minutes=10)
# One tracking number names one parcel, seldom a handful (several fulfilments packed together).
SAME_NUMBER_MAX = 20


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


async def line_names(session: AsyncSession, tenant_id: uuid.UUID, lines: list[FulfilmentLine]) -> dict[uuid.UUID, str]:
    """The product name each fulfilment line's order line was placed with, by order line id."""
    ids = list({line.order_line_id for line in lines})
    if not ids:
        return {}
    rows = await session.execute(select(OrderLine.id, OrderLine.name).where(OrderLine.tenant_id == tenant_id,
                                                                            OrderLine.id.in_(ids)))
    return {row.id: row.name for row in rows}


def tracking_of(fulfilment: Fulfilment) -> dict[str, str]:
    """The fulfilment's carrier, tracking number and link, as far as they are known (for the
    timeline and webhooks)."""
    known = {"carrier": fulfilment.carrier, "tracking_number": fulfilment.tracking_number,
             "tracking_url": fulfilment.tracking_url}
    return {k: v for k, v in known.items() if v}


async def act(session: AsyncSession, principal: Principal, fulfilment_id: uuid.UUID, action: str, *,
              reason: str = "", tracking_number: str | None = None, carrier: str | None = None,
              tracking_url: str | None = None, carrier_required: bool = False,
              delivered_at: datetime | None = None) -> tuple[Order, Fulfilment]:
    """Move a fulfilment on. Shipping takes the carrier and tracking number (``carrier_required``:
    a parcel to a customer must name its carrier, as the console asks); delivering again what
    is delivered changes nothing."""
    if action not in ACTIONS:
        raise not_found("Action")
    order, fulfilment = await locked(session, principal.tenant_id, fulfilment_id)
    target = ACTIONS[action]
    if not _may_act(principal, fulfilment, target):
        raise not_found("Fulfilment")
    if target == "delivered":
        await deliver(session, principal, order, fulfilment, at=delivered_at)
        return order, fulfilment
    _check_kind(fulfilment, target)
    shipment = carriers.tracking(carrier, tracking_number, tracking_url,
                                 carrier_required=carrier_required and fulfilment.kind == "ship") \
        if target == "shipped" else None
    if (target == "collected" or (target == "shipped" and fulfilment.kind == "ship")) \
            and await service_tasks.on_payment_hold(session, order):
        raise ProblemError(409, "Payment on hold",
                           f"Order {order.number}'s payment could not be captured: its goods wait until the capture "
                           "succeeds or customer service resolves the task.")
    if target == "rejected" and not reason.strip():
        raise ProblemError(422, "Say why", "A rejection needs a reason (item missing, damaged...).")
    if shipment is not None:
        # Before the move, which announces the fulfilment (with its tracking) to webhooks.
        fulfilment.carrier, fulfilment.tracking_number, fulfilment.tracking_url = \
            shipment.carrier, shipment.number, shipment.url
        fulfilment.shipped_at = clock.now()
    lifecycle.move_fulfilment(session, order, fulfilment, target, actor=principal.label, reason=reason or None,
                              **(tracking_of(fulfilment) if shipment is not None else {}))
    lines = await lines_of(session, fulfilment)
    reference = f"order {order.number}"
    if target == "shipped" or (target == "collected" and fulfilment.kind == "pickup"):
        await consume(session, order.tenant_id, [Line(line.product_id, fulfilment.location_id, line.quantity)
                                                 for line in lines], reference=reference, actor=principal.label,
                      reason="shipped" if target == "shipped" else "collected")
        await _mark_shipped(session, lines)
        await payments.capture_on_shipment(session, order, actor=principal.label)
        if target == "shipped" and fulfilment.kind in ("ship", "transfer"):
            # A transfer is the customer's parcel on its way to their pickup store: they are told,
            # with its tracking and the store it goes to.
            await notifications.tell_customer(session, order, "shipped", fulfilment=fulfilment)
    elif target == "ready_for_pickup":
        store_code = order.pickup_location_code or fulfilment.ship_to_store or fulfilment.location_code
        store = (await inventory_locations.by_codes(session, order.tenant_id, [store_code])).get(store_code)
        fulfilment.pickup_expires_at = inventory_locations.pickup_deadline(
            store, clock.now() + await pickup_window_of(session, order.tenant_id), principal.timezone)
        await notifications.tell_customer(session, order, "ready_for_pickup", fulfilment=fulfilment)
    elif target == "rejected":
        await _give_back(session, order, fulfilment, lines, actor=principal.label, reason="rejected")
        order.excluded_locations = sorted({*(order.excluded_locations or ()), fulfilment.location_code})
        lifecycle.move_order(session, order, "received", actor=principal.label,
                             reason=f"{fulfilment.location_code} rejected its part: {reason.strip()}; routing again "
                                    f"without it")
        if fulfilment.kind == "pickup":  # the pickup store can't hand over from its own shelf
            await service_tasks.open_task(
                session, order, "stock_missing_at_pickup",
                f"{fulfilment.location_code} could not hand over {fulfilment.number}: {reason.strip()}. The order is "
                f"routed again without it (the routing rule's fallback); tell the customer if their pickup changes.",
                actor=principal.label)
        from orders.tasks import route_order

        enqueue(session, route_order, tenant_id=order.tenant_id, order_id=str(order.id))
    await session.flush()
    if target != "rejected":
        await allocation.settle(session, order, actor=principal.label)
    return order, fulfilment


async def deliver(session: AsyncSession, principal: Principal, order: Order, fulfilment: Fulfilment, *,
                  at: datetime | None = None, reason: str | None = None, tell: bool = True) -> bool:
    """Record that a shipped parcel reached its customer (the order is delivered once all its
    parcels are). Delivered already: nothing changes, and False. ``tell``: mail the customer
    (once per order when one carrier event delivers several of its parcels)."""
    if fulfilment.status == "delivered":
        return False
    _check_kind(fulfilment, "delivered")
    fulfilment.delivered_at = _when(principal, fulfilment, at)
    lifecycle.move_fulfilment(session, order, fulfilment, "delivered", actor=principal.label, reason=reason,
                              **tracking_of(fulfilment))
    await session.flush()
    await allocation.settle(session, order, actor=principal.label)
    await service_tasks.close_if_open(session, order, "delivery_exception",
                                      f"{fulfilment.number} was delivered", actor=principal.label)
    if tell:
        await notifications.tell_customer(session, order, "delivered", fulfilment=fulfilment)
    return True


def _when(principal: Principal, fulfilment: Fulfilment, at: datetime | None) -> datetime:
    """When a delivery happened: now unless told; a time without offset is the company's;
    never before the parcel left nor in the future."""
    now = clock.now()
    if at is None:
        return now
    if at.tzinfo is None:
        at = at.replace(tzinfo=ZoneInfo(principal.timezone))
    if at > now + CLOCK_SKEW:
        raise invalid({"delivered_at": "The delivery time is in the future: give the time the parcel arrived."})
    at = min(at, now)
    return max(at, fulfilment.shipped_at) if fulfilment.shipped_at else at


@dataclass
class TrackingOutcome:
    fulfilments: list[Fulfilment]
    changed: bool


async def tracking_event(session: AsyncSession, principal: Principal, *, carrier: str, tracking_number: str,
                         status: str, occurred_at: datetime | None = None, detail: str = "") -> TrackingOutcome:
    """A carrier's news of a parcel, as its tracking webhook relays it: ``delivered`` delivers
    the fulfilment, ``in_transit`` and ``exception`` go on the order's timeline (a problem also
    opens a customer-service task). The same news twice changes nothing."""
    errors: dict[str, str] = {}
    code = carrier.strip().lower()
    if code not in carriers.carriers():
        errors["carrier"] = f"Unknown carrier {carrier[:40]!r}: use a carrier code of the list, or 'other'."
    number = carriers.normalised(code, tracking_number)
    if number is None:
        errors["tracking_number"] = "Give the parcel's tracking number."
    elif problem := carriers.check_number(number):
        errors["tracking_number"] = problem
    if status not in TRACKING_STATES:
        errors["status"] = f"Use one of: {', '.join(TRACKING_STATES)}."
    if occurred_at is not None:
        if occurred_at.tzinfo is None:
            occurred_at = occurred_at.replace(tzinfo=ZoneInfo(principal.timezone))
        if occurred_at > clock.now() + CLOCK_SKEW:
            errors["occurred_at"] = "This time is in the future."
    if errors:
        raise invalid(errors, detail=next(iter(errors.values())))
    # Numbers of listed carriers are stored in capitals; one shipped without a carrier is stored as
    # typed, so the carrier's own spelling may differ in case.
    assert number is not None
    typed = {number, number.upper(), number.lower(), tracking_number.strip()}
    ids = list(await session.scalars(select(Fulfilment.id).where(
        Fulfilment.tenant_id == principal.tenant_id, Fulfilment.tracking_number.in_(typed),
        or_(Fulfilment.carrier == code, Fulfilment.carrier.is_(None)))
        .order_by(Fulfilment.created_at).limit(SAME_NUMBER_MAX)))
    found: list[Fulfilment] = []
    changed = False
    told: set[uuid.UUID] = set()
    for fulfilment_id in ids:
        order, fulfilment = await locked(session, principal.tenant_id, fulfilment_id)
        if not _may_act(principal, fulfilment, "delivered"):
            continue
        found.append(fulfilment)
        moved = await _on_tracking(session, principal, order, fulfilment, status, occurred_at, detail.strip(),
                                   tell=order.id not in told)
        if moved and status == "delivered":
            told.add(order.id)
        changed |= moved
    if not found:
        raise not_found(f"A parcel of {carriers.name_of(code)} with tracking number {number}")
    return TrackingOutcome(found, changed)


async def _on_tracking(session: AsyncSession, principal: Principal, order: Order, fulfilment: Fulfilment,
                       status: str, occurred_at: datetime | None, detail: str, *, tell: bool = True) -> bool:
    carrier = carriers.name_of(fulfilment.carrier) or "The carrier"
    if status == "delivered" and fulfilment.kind == "ship":
        if fulfilment.status != "shipped":
            return False  # delivered already (or a number reused before shipping: nothing to deliver)
        return await deliver(session, principal, order, fulfilment, at=occurred_at,
                             reason=f"{carrier} reported it delivered", tell=tell)
    if fulfilment.status == "delivered" or (status == "in_transit" and fulfilment.status != "shipped"):
        return False  # news older than what is known
    when = occurred_at.isoformat() if occurred_at else None
    for event in await session.scalars(select(OrderEvent).where(
            OrderEvent.tenant_id == order.tenant_id, OrderEvent.order_id == order.id,
            OrderEvent.fulfilment_id == fulfilment.id, OrderEvent.kind == "fulfilment.tracking")):
        data = event.data or {}
        if (data.get("status"), data.get("occurred_at"), data.get("detail") or "") == (status, when, detail):
            return False
    if status == "delivered":
        reason = f"{carrier}: delivered to store {fulfilment.ship_to_store}, for the store to receive"
    else:
        reason = f"{carrier}: {TRACKING_STATES[status]}" + (f": {detail}" if detail else "")
    lifecycle.record(session, order, "fulfilment.tracking", actor=principal.label, reason=reason[:1000],
                     fulfilment=fulfilment, status=status, occurred_at=when, detail=detail,
                     **tracking_of(fulfilment))
    if status == "exception":
        await service_tasks.open_task(
            session, order, "delivery_exception",
            f"{carrier} reported a problem with parcel {fulfilment.tracking_number} ({fulfilment.number})"
            + (f": {detail}" if detail else "") + ". Contact the customer or the carrier.",
            actor=principal.label)
    return True


def _arriving_at_own_store(principal: Principal, fulfilment: Fulfilment) -> bool:
    return fulfilment.kind == "transfer" and fulfilment.ship_to_store is not None \
        and principal.works_at(fulfilment.ship_to_store)


def may_see(principal: Principal, fulfilment: Fulfilment) -> bool:
    """A store associate sees their own locations' fulfilments: what leaves them, and a
    transfer arriving there for a customer to collect."""
    return principal.works_at(fulfilment.location_code) or _arriving_at_own_store(principal, fulfilment)


def _may_act(principal: Principal, fulfilment: Fulfilment, target: str) -> bool:
    """A store associate acts at their own locations only: on what leaves them, and on a
    transfer arriving there for a customer to collect."""
    if principal.works_at(fulfilment.location_code):
        return True
    return _arriving_at_own_store(principal, fulfilment) and target in ("ready_for_pickup", "collected")


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
    tenant_ids = {line.tenant_id for line in lines}
    for order_line in await session.scalars(select(OrderLine).where(OrderLine.tenant_id.in_(tenant_ids),
                                                                    OrderLine.id.in_(list(by_id)))):
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
