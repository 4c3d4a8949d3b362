"""What customer service changes on an order, and what it writes about it: the pickup store and the
delivery address until the goods leave, a customer mail sent again, and notes.

Each change that does something is shown before it is made (``*_effect``, which writes nothing)
and made with the order row locked (``change_*``), checked again under the lock; the console
makes a confirmed change once under the token of its review step (``once``). Every change goes on
the order's timeline with who, why, and the before and after; the pickup store, the address and
a resend also go in the company's audit log (Settings → Audit log).

**When the goods have left** (``has_left``): a fulfilment is shipped, delivered or collected, or
shipped at some point (a transfer that reached its pickup store, or expired there). Until then a
fulfilment is ``created``, ``accepted``, ``picking``, ``packed`` or, for a pickup at the store
itself, ``ready_for_pickup``: its stock is still reserved where it is.

- **Pickup store** (click & collect and ship-to-store orders): the order's fulfilments that still
  hold stock are cancelled and their reservations released (the inventory ledger's ``release``),
  their lines un-allocated, and the order goes back to ``received`` with the new store, for
  routing to pick again (``orders.route`` through the outbox; a lost message is found again by
  the re-drive sweep, which looks for orders ``received`` too long). The customer is told.
- **Delivery address** (home delivery): the fulfilments stay where routing put them; their
  packing slips show the new address. Coordinates stay when the town is the same, else they are
  the ones given (API) or none: capture does not geocode, so neither does this.
- **Resend**: a copy of a mail the order's customer was sent (the mail log), to the same address,
  marked in its meta (``resend_of``).
- **Notes**: timeline events of kind ``note.added``: ``reason`` (and ``data["body"]``) holds the
  text, ``actor`` the author, ``created_at`` the time.

Who may do what: the routes' guards say the roles; this module adds that a store associate changes
the pickup store only of an order collected at one of their stores (their location's business:
the customer at their counter, their shelf's stock). Address changes and resends stay with owners,
admins and customer service (``orders.guards.TAKERS``); notes are for them and for store
associates, on the orders they see.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
import pycountry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from core import idempotency, webhooks
from core.auth import Principal
from core.mail import queue_mail
from core.models import MailMessage
from core.outbox import enqueue
from core.problems import ProblemError, invalid, not_found
from inventory import locations as inventory_locations
from inventory.ledger import Line, release
from inventory.schemas import LocationOut
from orders import lifecycle, notifications, queries, service_tasks
from orders.guards import TAKERS
from orders.mail_texts import KINDS as MAIL_KINDS
from orders.models import Fulfilment, FulfilmentLine, Order, OrderEvent, OrderLine
from tenants.service import Actor, audit

REASON_MAX = 500
NOTE_MAX = 1000
MAILS_SHOWN = 50
# States in which the goods are gone, or were never to go: nothing left to change.
LEFT = frozenset({"shipped", "delivered", "collected"})
CLOSED_ORDER = frozenset({"cancelled", "closed"})
REASON_MISSING = "Say why (the customer asked by phone, say): it goes on the order's timeline."
NOTE_MISSING = "Write the note."
PICKUP_MODES = ("pickup", "ship_to_store")


def has_left(fulfilment: Fulfilment) -> bool:
    """Whether the fulfilment's goods left their location (or reached the customer)."""
    return fulfilment.status in LEFT or fulfilment.shipped_at is not None


def _reason_problem(reason: str) -> str | None:
    if not reason.strip():
        return REASON_MISSING
    if len(reason.strip()) > REASON_MAX:
        return f"Say why in at most {REASON_MAX} characters; this has {len(reason.strip())}."
    return None


def _may_change_pickup(principal: Principal, order: Order) -> bool:
    if principal.role in TAKERS:
        return True
    return principal.role == "store_associate" and order.pickup_location_code is not None \
        and principal.works_at(order.pickup_location_code)


def _not_allowed(what: str) -> ProblemError:
    return ProblemError(403, "Not allowed", what)


async def _order(session: AsyncSession, principal: Principal, order_id: uuid.UUID, *, lock: bool) -> Order:
    """The order within the person's reach (else 404), its row locked for a change."""
    order = await queries.get_order(session, principal, order_id)
    if lock:
        await session.refresh(order, with_for_update=True)
    return order


async def _fulfilments(session: AsyncSession, order: Order) -> list[Fulfilment]:
    return list(await session.scalars(select(Fulfilment).where(
        Fulfilment.tenant_id == order.tenant_id, Fulfilment.order_id == order.id).order_by(Fulfilment.created_at)))


def _left_problem(order: Order, fulfilments: list[Fulfilment], what: str) -> ProblemError | None:
    """Why ``what`` can't be changed any more (409), or None."""
    if order.status in CLOSED_ORDER:
        return ProblemError(409, "Too late", f"Order {order.number} is {order.status}: its {what} can't change.")
    gone = [f for f in fulfilments if has_left(f)]
    if gone:
        parts = ", ".join(f"{f.number} is {f.status.replace('_', ' ')}" for f in gone[:3])
        return ProblemError(409, "Goods already left",
                            f"The goods of order {order.number} have already left ({parts}): its {what} can't "
                            f"change any more.")
    return None


# --- what the order page offers -------------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    """Which of these actions the person may take on the order now, and the stores to choose from."""

    pickup: bool = False
    pickup_stores: list[LocationOut] = field(default_factory=list)
    address: bool = False
    resend: bool = False
    note: bool = False


def stores_for(order: Order, locations: list[LocationOut]) -> list[LocationOut]:
    """The stores the order could be collected at instead: active, doing click & collect (and
    receiving transfers, for ship-to-store), not the one it has."""
    return [loc for loc in locations if loc.status == "active" and loc.click_and_collect
            and (order.delivery_mode != "ship_to_store" or loc.receives_transfers)
            and loc.code != order.pickup_location_code]


async def offer(session: AsyncSession, principal: Principal, order: Order,
                fulfilments: list[Fulfilment]) -> Offer:
    """What the order page shows in its Actions: each action only when it may be taken now."""
    open_order = order.status not in CLOSED_ORDER
    before_leaving = open_order and not any(has_left(f) for f in fulfilments)
    pickup = before_leaving and order.delivery_mode in PICKUP_MODES and _may_change_pickup(principal, order)
    stores = stores_for(order, await inventory_locations.active(session, order.tenant_id)) if pickup else []
    return Offer(pickup=pickup and bool(stores), pickup_stores=stores,
                 address=before_leaving and order.delivery_mode == "ship" and principal.role in TAKERS,
                 resend=principal.role in TAKERS and bool(order.customer_email),
                 note=principal.role in TAKERS or principal.role == "store_associate")


# --- the pickup store ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Released:
    """A fulfilment the change cancels, and the units whose reservation goes back to available."""

    id: uuid.UUID
    number: str
    location: str
    kind: str
    status: str  # before the change
    units: list[tuple[str, int]]  # (sku, units)


@dataclass(frozen=True)
class PickupChange:
    order: Order
    before: str
    after: LocationOut
    released: list[Released]
    reason: str


async def pickup_effect(session: AsyncSession, principal: Principal, order_id: uuid.UUID, location_code: str,
                        reason: str, *, lock: bool = False) -> PickupChange:
    """What changing the pickup store to ``location_code`` would do, or why it can't be done
    (403, 404, 409, or 422 with every problem of the request at once). Writes nothing."""
    order = await _order(session, principal, order_id, lock=lock)
    if not _may_change_pickup(principal, order):
        raise _not_allowed("A store associate changes the pickup store only of orders collected at their store.")
    if order.delivery_mode not in PICKUP_MODES:
        raise ProblemError(409, "Home delivery", f"Order {order.number} is delivered to an address, not collected "
                                                 f"in store: change its delivery address instead.")
    fulfilments = await _fulfilments(session, order)
    if problem := _left_problem(order, fulfilments, "pickup store"):
        raise problem
    errors: dict[str, str] = {}
    code = location_code.strip()
    store = (await inventory_locations.by_codes(session, order.tenant_id, [code])).get(code) if code else None
    if not code:
        errors["location_code"] = "Choose the store the customer will collect from."
    elif store is None:
        errors["location_code"] = f"Unknown store {code[:64]!r}."
    elif code == order.pickup_location_code:
        errors["location_code"] = f"{code} is already the pickup store: choose another."
    elif store.status != "active":
        errors["location_code"] = f"{code} is paused: it takes no pickups now."
    elif not store.click_and_collect:
        errors["location_code"] = f"{code} does not offer pickup (click & collect)."
    elif order.delivery_mode == "ship_to_store" and not store.receives_transfers:
        errors["location_code"] = f"{code} does not receive ship-to-store parcels."
    if why := _reason_problem(reason):
        errors["reason"] = why
    if errors:
        raise invalid(errors, detail=next(iter(errors.values())))
    assert store is not None
    holding = [f for f in fulfilments if f.status in lifecycle.HOLDING]
    units: dict[uuid.UUID, list[tuple[str, int]]] = {f.id: [] for f in holding}
    if holding:
        for line in await session.scalars(select(FulfilmentLine).where(
                FulfilmentLine.tenant_id == order.tenant_id,
                FulfilmentLine.fulfilment_id.in_([f.id for f in holding]), FulfilmentLine.quantity > 0)
                .order_by(FulfilmentLine.sku)):
            units[line.fulfilment_id].append((line.sku, line.quantity))
    released = [Released(f.id, f.number, f.location_code, f.kind, f.status, units[f.id]) for f in holding]
    return PickupChange(order, order.pickup_location_code or "", store, released, reason.strip())


async def change_pickup_store(session: AsyncSession, principal: Principal, order_id: uuid.UUID,
                              location_code: str, reason: str, *, ip: str | None = None) -> PickupChange:
    """Change the pickup store, or refuse with nothing changed (see ``pickup_effect``)."""
    change = await pickup_effect(session, principal, order_id, location_code, reason, lock=True)
    order, actor = change.order, principal.label
    new = change.after.code
    if change.released:
        by_id = {f.id: f for f in await _fulfilments(session, order)}
        lines = list(await session.scalars(select(FulfilmentLine).where(
            FulfilmentLine.tenant_id == order.tenant_id,
            FulfilmentLine.fulfilment_id.in_([r.id for r in change.released]), FulfilmentLine.quantity > 0)))
        unallocated: dict[uuid.UUID, int] = {}
        for done in change.released:
            fulfilment = by_id[done.id]
            held = [line for line in lines if line.fulfilment_id == fulfilment.id]
            if held:
                await release(session, order.tenant_id, [Line(line.product_id, fulfilment.location_id, line.quantity)
                                                         for line in held],
                              reference=f"order {order.number}", actor=actor, reason="release")
            for line in held:
                unallocated[line.order_line_id] = unallocated.get(line.order_line_id, 0) + line.quantity
            lifecycle.move_fulfilment(session, order, fulfilment, "cancelled", actor=actor,
                                      reason=f"pickup store changed to {new}")
        if unallocated:
            for order_line in await session.scalars(select(OrderLine).where(
                    OrderLine.tenant_id == order.tenant_id, OrderLine.id.in_(list(unallocated)))):
                order_line.qty_allocated -= unallocated[order_line.id]
    was_on_hold = order.status == "on_hold"
    order.pickup_location_code = new
    lifecycle.record(session, order, "order.pickup_store_changed", actor=actor, reason=change.reason,
                     before=change.before, after=new, released=[r.number for r in change.released],
                     location=new)  # the new store's live pages hear of it (the row isn't written yet)
    lifecycle.move_order(session, order, "received", actor=actor,
                         reason=f"pickup store changed from {change.before} to {new}: routing again",
                         cause="pickup_store_changed")
    # What customer service was asked to decide is decided: the customer collects elsewhere.
    for kind in ("order_on_hold",) * was_on_hold + ("stock_missing_at_pickup",):
        await service_tasks.close_if_open(session, order, kind, f"pickup store changed to {new} by {actor}",
                                          actor=actor)
    from orders.tasks import route_order

    enqueue(session, route_order, tenant_id=order.tenant_id, order_id=str(order.id))
    _announce(session, order, "pickup_store", change.before, new, change.reason)
    await notifications.tell_customer(session, order, "pickup_store_changed")
    await audit(session, order.tenant_id, Actor.of(principal, ip), "order.pickup_store_changed",
                target=f"order {order.number}", before=change.before, after=new, reason=change.reason)
    await session.flush()
    return change


# --- the delivery address -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    name: str = ""
    line1: str = ""
    postcode: str = ""
    city: str = ""
    country: str = ""

    @classmethod
    def of(cls, order: Order) -> Address:
        return cls(order.ship_name or "", order.ship_line1 or "", order.ship_postcode or "", order.ship_city or "",
                   order.ship_country or "")

    def one_line(self) -> str:
        town = " ".join(p for p in (self.postcode, self.city) if p)
        return ", ".join(p for p in (self.name, self.line1, town, self.country) if p) or "none"

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "line1": self.line1, "postcode": self.postcode, "city": self.city,
                "country": self.country}


ADDRESS_LIMITS = {"name": 200, "line1": 200, "postcode": 20, "city": 100}
ADDRESS_LABELS = {"line1": "the street", "postcode": "the postcode", "city": "the city"}


@dataclass(frozen=True)
class AddressChange:
    order: Order
    before: Address
    after: Address
    kept: list[Fulfilment]  # where routing put the goods: they stay there
    reason: str
    coordinates: tuple[float, float] | None  # of the new address, as far as they are known


def address_problems(values: dict[str, str]) -> tuple[Address, dict[str, str]]:
    """The address typed (trimmed, the country in capitals) and its problems by field, checked as
    the console's order form checks a home delivery's: street, postcode, city and a known
    two-letter country; the name is optional (the customer's is used)."""
    errors: dict[str, str] = {}
    clean = {name: " ".join((values.get(name) or "").split()) for name in (*ADDRESS_LIMITS, "country")}
    for name, limit in ADDRESS_LIMITS.items():
        if name in ADDRESS_LABELS and not clean[name]:
            errors[name] = f"Home delivery needs {ADDRESS_LABELS[name]}."
        elif len(clean[name]) > limit:
            errors[name] = f"At most {limit} characters; this has {len(clean[name])}."
    country = clean["country"].upper()
    if not country:
        errors["country"] = "Give the country as two letters, such as FR."
    elif len(country) != 2 or not country.isalpha() or pycountry.countries.get(alpha_2=country) is None:
        errors["country"] = f"Unknown country {country[:20]!r}: use a two-letter ISO code such as FR."
    return Address(clean["name"], clean["line1"], clean["postcode"], clean["city"], country), errors


async def address_effect(session: AsyncSession, principal: Principal, order_id: uuid.UUID, values: dict[str, str],
                         reason: str, *, coordinates: tuple[float, float] | None = None,
                         lock: bool = False) -> AddressChange:
    """What changing the delivery address to ``values`` would do, or why it can't be done. Writes
    nothing."""
    order = await _order(session, principal, order_id, lock=lock)
    if principal.role not in TAKERS:
        raise _not_allowed("Only customer service and admins change a delivery address.")
    if order.delivery_mode != "ship":
        raise ProblemError(409, "Collected in store", f"Order {order.number} is collected in store: change its "
                                                      f"pickup store instead.")
    fulfilments = await _fulfilments(session, order)
    if problem := _left_problem(order, fulfilments, "delivery address"):
        raise problem
    after, errors = address_problems(values)
    before = Address.of(order)
    if not errors and after == before:
        errors["line1"] = "This is already the delivery address: change what differs."
    if why := _reason_problem(reason):
        errors["reason"] = why
    if errors:
        raise invalid(errors, detail=next(iter(errors.values())))
    same_town = (after.country, after.postcode, after.city) == (before.country, before.postcode, before.city)
    if coordinates is None and same_town and order.ship_latitude is not None and order.ship_longitude is not None:
        coordinates = (order.ship_latitude, order.ship_longitude)
    kept = [f for f in fulfilments if f.status not in ("rejected", "cancelled", "expired")]
    return AddressChange(order, before, after, kept, reason.strip(), coordinates)


async def change_address(session: AsyncSession, principal: Principal, order_id: uuid.UUID, values: dict[str, str],
                         reason: str, *, coordinates: tuple[float, float] | None = None,
                         ip: str | None = None) -> AddressChange:
    """Change the delivery address, or refuse with nothing changed (see ``address_effect``)."""
    change = await address_effect(session, principal, order_id, values, reason, coordinates=coordinates, lock=True)
    order, after = change.order, change.after
    order.ship_name, order.ship_line1, order.ship_postcode, order.ship_city, order.ship_country = (
        after.name or None, after.line1, after.postcode, after.city, after.country)
    order.ship_latitude, order.ship_longitude = change.coordinates or (None, None)
    lifecycle.record(session, order, "order.address_changed", actor=principal.label, reason=change.reason,
                     before=change.before.as_dict(), after=after.as_dict())
    _announce(session, order, "delivery_address", change.before.as_dict(), after.as_dict(), change.reason)
    await notifications.tell_customer(session, order, "address_changed")
    await audit(session, order.tenant_id, Actor.of(principal, ip), "order.address_changed",
                target=f"order {order.number}", before=change.before.one_line(), after=after.one_line(),
                reason=change.reason)
    await session.flush()
    return change


def _announce(session: AsyncSession, order: Order, change: str, before: Any, after: Any, reason: str) -> None:
    """``order.updated`` for the company's webhooks: what changed, from what to what."""
    webhooks.emit(session, order.tenant_id, "order.updated", {
        "order_id": str(order.id), "number": order.number, "channel": order.channel,
        "external_number": order.external_number, "status": order.status, "reason": reason,
        "change": change, "before": before, "after": after})


# --- customer mails sent again ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SentMail:
    id: uuid.UUID
    kind: str  # as the mail log says it: order.shipped
    label: str  # in words: Shipped
    subject: str
    to_address: str
    status: str
    created_at: datetime
    sent_at: datetime | None
    resend_of: str | None


def _sent(mail: MailMessage) -> SentMail:
    known = MAIL_KINDS.get(mail.kind.removeprefix("order."))
    meta = mail.meta or {}
    return SentMail(mail.id, mail.kind, known.label if known else mail.kind.replace(".", " ").replace("_", " "),
                    mail.subject, mail.to_address, mail.status, mail.created_at, mail.sent_at,
                    meta.get("resend_of"))


def _of_order(order: Order) -> list[Any]:
    # Read on the mail log's index by order, (tenant_id, meta->>'order_id').
    return [MailMessage.tenant_id == order.tenant_id, MailMessage.meta["order_id"].astext == str(order.id),
            MailMessage.kind.not_like("test.%")]


async def mails_of(session: AsyncSession, principal: Principal, order_id: uuid.UUID) -> tuple[Order, list[SentMail]]:
    """The mails the order's customer was sent about it, newest first (the last ``MAILS_SHOWN``)."""
    order = await queries.get_order(session, principal, order_id)
    rows = await session.scalars(select(MailMessage).options(defer(MailMessage.body_text),
                                                             defer(MailMessage.body_html))
                                 .where(*_of_order(order)).order_by(MailMessage.created_at.desc())
                                 .limit(MAILS_SHOWN))
    return order, [_sent(row) for row in rows]


@dataclass(frozen=True)
class Resend:
    order: Order
    mail: SentMail
    reason: str


async def _mail(session: AsyncSession, order: Order, mail_id: uuid.UUID) -> MailMessage:
    found = await session.scalar(select(MailMessage).where(MailMessage.id == mail_id, *_of_order(order)))
    if found is None:
        raise not_found("Mail")
    return found


async def resend_effect(session: AsyncSession, principal: Principal, order_id: uuid.UUID, mail_id: uuid.UUID,
                        reason: str, *, lock: bool = False) -> Resend:
    """What sending the mail again would do, or why it can't be sent. Writes nothing."""
    order = await _order(session, principal, order_id, lock=lock)
    if principal.role not in TAKERS:
        raise _not_allowed("Only customer service and admins send a customer's mails again.")
    mail = await _mail(session, order, mail_id)
    if mail.status == "queued":
        raise ProblemError(409, "Still being sent", "This mail is still on its way: wait for it to be sent (or to "
                                                    "fail) before sending it again.")
    if problem := _reason_problem(reason):
        raise invalid({"reason": problem}, detail=problem)
    return Resend(order, _sent(mail), reason.strip())


async def resend(session: AsyncSession, principal: Principal, order_id: uuid.UUID, mail_id: uuid.UUID,
                 reason: str, *, ip: str | None = None) -> SentMail:
    """Send a copy of the mail to the address it went to, marked as a resend; returns the copy."""
    done = await resend_effect(session, principal, order_id, mail_id, reason, lock=True)
    original = await _mail(session, done.order, mail_id)
    meta = {**(original.meta or {}), "resend_of": str(original.id), "resent_by": principal.label,
            "reason": done.reason}
    copy = await queue_mail(session, tenant_id=original.tenant_id, to=original.to_address, subject=original.subject,
                            body=original.body_text, body_html=original.body_html, kind=original.kind,
                            sent_by=principal.user_id, meta=meta)
    lifecycle.record(session, done.order, "mail.resent", actor=principal.label, reason=done.reason,
                     mail_id=str(original.id), resend_id=str(copy.id), mail_kind=original.kind,
                     subject=original.subject, to=original.to_address)
    await audit(session, done.order.tenant_id, Actor.of(principal, ip), "order.mail_resent",
                target=f"order {done.order.number}", mail=original.subject, to=original.to_address,
                reason=done.reason)
    await session.flush()
    return _sent(await _mail(session, done.order, copy.id))


# --- notes ---------------------------------------------------------------------------------------------------


def note_problem(body: str) -> str | None:
    text = body.strip()
    if not text:
        return NOTE_MISSING
    if len(text) > NOTE_MAX:
        return f"Keep the note to {NOTE_MAX} characters; it has {len(text)}."
    return None


async def add_note(session: AsyncSession, principal: Principal, order_id: uuid.UUID, body: str) -> OrderEvent:
    """A note on the order's timeline, by the person, now."""
    order = await queries.get_order(session, principal, order_id)
    if principal.role not in TAKERS and principal.role != "store_associate":
        raise _not_allowed("Only customer service, admins and store associates add notes to orders.")
    if problem := note_problem(body):
        raise invalid({"body": problem}, detail=problem)
    text = body.strip().replace("\r\n", "\n")
    event = lifecycle.record(session, order, "note.added", actor=principal.label, reason=text, body=text)
    stored: OrderEvent | None = await session.scalar(select(OrderEvent).where(
        OrderEvent.tenant_id == order.tenant_id, OrderEvent.id == event.id))
    assert stored is not None
    return stored


# --- a confirmed console action, once ---------------------------------------------------------------------


async def once(session: AsyncSession, principal: Principal, order_id: uuid.UUID, action: str, token: str,
               asked: list[str], do: Callable[[], Awaitable[Any]]) -> bool:
    """Do a console action confirmed under its review step's ``token`` once: the same token again
    (a double click, the form sent again) does nothing and answers False; the same token for
    something else is refused. Without a token (a form from before the review step), it is done."""
    if not token:
        await do()
        return True
    digest = hashlib.sha256(msgspec.json.encode([str(order_id), action, *asked])).hexdigest()
    claim = idempotency.Keyed(f"console-{action}:{token[:64]}", digest, "POST", f"/app/orders/{order_id}/{action}")
    earlier = (await idempotency.claim_many(session, principal.tenant_id, [claim]))[claim.key]
    if isinstance(earlier, ProblemError):
        raise earlier
    if earlier is not None:
        return False
    await do()
    await idempotency.settle_many(session, principal.tenant_id,
                                  {claim.key: idempotency.Answer(200, b"{}")}, [])
    return True
