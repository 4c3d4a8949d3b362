"""The customer's whole history, as the customer page and ``GET /api/v1/customers/{id}`` show it:
their record, figures, orders of every channel, returns, refunds, exchanges, notes, open tasks,
and one timeline merging all of it, newest first.

What the reader sees follows their reach (``orders.queries.reach``): a store associate sees the
customers of orders at their locations, and of those customers only those orders (and their
returns, refunds, tasks and notes), the figures computed on them. A customer none of whose
orders they can see is a 404 to them, as another company's is to everyone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal
from core.clock import now
from core.ids import uuid7
from core.locale import format_money
from core.problems import invalid, not_found
from customers import service as customers
from orders import history
from support.models import CustomerNote, Return, ReturnLine
from tenants.service import Actor, audit

NOTE_MAX = 2000  # customer_notes.body
TIMELINE_SHOWN = 100
# Who may write a note on a customer: whoever takes orders, and a store associate on a customer
# of their locations. Everyone signed in may read the page (as they may read orders).
NOTE_ROLES = ("owner", "admin", "customer_service", "store_associate")
RETURN_STEPS = (("created_at", "return.opened", "opened"), ("received_at", "return.received", "received"),
                ("inspected_at", "return.inspected", "inspected"), ("refunded_at", "return.refunded", "refunded"),
                ("closed_at", "return.closed", "closed"), ("cancelled_at", "return.cancelled", "cancelled"))


@dataclass(frozen=True)
class ReturnItem:
    id: uuid.UUID
    number: str
    status: str
    method: str
    order_id: uuid.UUID
    order_number: str
    lines: int
    units: int
    refunded_minor: int
    currency: str | None
    expected_location_code: str
    received_location_code: str | None
    opened_by: str
    received_by: str | None
    created_at: datetime
    received_at: datetime | None
    inspected_at: datetime | None
    refunded_at: datetime | None
    closed_at: datetime | None
    cancelled_at: datetime | None


@dataclass(frozen=True)
class NoteItem:
    id: uuid.UUID
    about: str  # customer | order
    body: str
    author: str
    created_at: datetime
    order_id: uuid.UUID | None = None
    order_number: str | None = None


@dataclass(frozen=True)
class Entry:
    """One line of the customer's timeline."""

    at: datetime
    kind: str  # order.placed, order.<status>, refund, return.<step>, note.customer, note.order, task.opened ...
    title: str
    text: str
    actor: str
    order_id: uuid.UUID | None
    order_number: str | None


@dataclass(frozen=True)
class CustomerView:
    record: customers.CustomerRecord
    figures: history.Figures
    orders: list[history.OrderItem]
    returns: list[ReturnItem]
    refunds: list[history.RefundItem]
    exchanges: list[history.ExchangeItem]
    notes: list[NoteItem]
    open_tasks: list[history.TaskItem]
    timeline: list[Entry]
    locations: frozenset[str] | None  # a store associate's: what the view is limited to
    currency: str


async def visible_customer(session: AsyncSession, principal: Principal,
                           customer_id: uuid.UUID) -> customers.CustomerRecord:
    """The customer, if the principal may see them; else 404 (see the module's docstring)."""
    record = await customers.get_customer(session, principal.tenant_id, customer_id)
    limited = principal.locations is not None or principal.channel is not None
    if limited and not await session.scalar(select(exists(history.order_ids(principal, customer_id)))):
        raise not_found("Customer")
    return record


async def view(session: AsyncSession, principal: Principal, customer_id: uuid.UUID, *,
               timeline_limit: int = TIMELINE_SHOWN) -> CustomerView:
    record = await visible_customer(session, principal, customer_id)
    figures = await history.figures(session, principal, customer_id,
                                    exchange_credits=await _exchange_credits(session, principal, customer_id))
    orders = await history.orders(session, principal, customer_id, limit=max(history.ORDERS_SHOWN, timeline_limit))
    returns = await _returns(session, principal, customer_id)
    refunds = await history.refunds(session, principal, customer_id)
    exchanges = await history.exchanges(session, principal, customer_id)
    notes = await _notes(session, principal, customer_id)
    tasks = await history.open_tasks(session, principal, customer_id)
    events = [e for e in await history.events(session, principal, customer_id) if e.kind != history.NOTE_KIND]
    timeline = _timeline(principal, orders, returns, refunds, notes, events, exchanges)[:timeline_limit]
    return CustomerView(record=record, figures=figures, orders=orders[:history.ORDERS_SHOWN], returns=returns,
                        refunds=refunds, exchanges=exchanges, notes=notes, open_tasks=tasks, timeline=timeline,
                        locations=principal.locations, currency=principal.currency)


async def _exchange_credits(session: AsyncSession, principal: Principal, customer_id: uuid.UUID
                            ) -> dict[uuid.UUID, int]:
    """Replacement order id → what the goods returned from the original paid of it."""
    rows = await session.execute(
        select(Return.exchange_order_id, func.sum(Return.exchange_credit_minor))
        .where(Return.tenant_id == principal.tenant_id, Return.customer_id == customer_id,
               Return.exchange_order_id.is_not(None), Return.status != "cancelled")
        .group_by(Return.exchange_order_id))
    return {order_id: int(credit or 0) for order_id, credit in rows if order_id is not None and credit}


async def _returns(session: AsyncSession, principal: Principal, customer_id: uuid.UUID) -> list[ReturnItem]:
    """The customer's returns, newest first (ix_returns_customer), with their lines and units counted."""
    lines = (select(func.count()).where(ReturnLine.tenant_id == Return.tenant_id, ReturnLine.return_id == Return.id)
             .scalar_subquery())
    units = (select(func.coalesce(func.sum(ReturnLine.quantity), 0))
             .where(ReturnLine.tenant_id == Return.tenant_id, ReturnLine.return_id == Return.id).scalar_subquery())
    stmt = select(Return, lines, units).where(Return.tenant_id == principal.tenant_id,
                                               Return.customer_id == customer_id)
    if principal.locations is not None or principal.channel is not None:
        stmt = stmt.where(Return.order_id.in_(history.order_ids(principal, customer_id)))
    rows = (await session.execute(stmt.order_by(Return.created_at.desc()).limit(history.ENTRIES))).all()
    currencies = await history.currencies(session, principal, {r.order_id for r, _, _ in rows})
    return [ReturnItem(id=r.id, number=r.number, status=r.status, method=r.method, order_id=r.order_id,
                       order_number=r.order_number, lines=int(n), units=int(u), refunded_minor=r.refunded_minor,
                       currency=currencies.get(r.order_id), expected_location_code=r.expected_location_code,
                       received_location_code=r.received_location_code, opened_by=r.opened_by,
                       received_by=r.received_by, created_at=r.created_at, received_at=r.received_at,
                       inspected_at=r.inspected_at, refunded_at=r.refunded_at, closed_at=r.closed_at,
                       cancelled_at=r.cancelled_at) for r, n, u in rows]


async def _notes(session: AsyncSession, principal: Principal, customer_id: uuid.UUID) -> list[NoteItem]:
    """Notes about the customer and on their orders, newest first. An order's note may be both a
    row here and an entry on the order's timeline: it is shown once."""
    stmt = select(CustomerNote).where(CustomerNote.tenant_id == principal.tenant_id,
                                      CustomerNote.customer_id == customer_id)
    if principal.locations is not None or principal.channel is not None:
        stmt = stmt.where(or_(CustomerNote.order_id.is_(None),
                              CustomerNote.order_id.in_(history.order_ids(principal, customer_id))))
    rows = list(await session.scalars(stmt.order_by(CustomerNote.created_at.desc()).limit(history.ENTRIES)))
    numbers: dict[uuid.UUID, str] = {}
    notes = [NoteItem(id=n.id, about="order" if n.order_id else "customer", body=n.body, author=n.author,
                      created_at=n.created_at, order_id=n.order_id) for n in rows]
    known_ids = {str(n.id) for n in rows}
    known_texts = {(n.order_id, n.body.strip()) for n in rows if n.order_id}
    for event in await history.order_notes(session, principal, customer_id):
        numbers[event.order_id] = event.order_number
        if str(event.data.get("note_id", "")) in known_ids or (event.order_id, event.text.strip()) in known_texts:
            continue
        notes.append(NoteItem(id=event.id, about="order", body=event.text, author=event.actor,
                              created_at=event.created_at, order_id=event.order_id, order_number=event.order_number))
    missing = {n.order_id for n in notes if n.order_id and n.order_id not in numbers}
    if missing:
        numbers |= {o.id: o.number for o in await history.orders(session, principal, customer_id,
                                                                  limit=history.ENTRIES) if o.id in missing}
    notes = [n if n.order_number or not n.order_id else
             NoteItem(n.id, n.about, n.body, n.author, n.created_at, n.order_id, numbers.get(n.order_id))
             for n in notes]
    return sorted(notes, key=lambda n: n.created_at, reverse=True)[:history.ENTRIES]


def _timeline(principal: Principal, orders: list[history.OrderItem], returns: list[ReturnItem],
              refunds: list[history.RefundItem], notes: list[NoteItem], events: list[history.EventItem],
              exchanges: list[history.ExchangeItem]) -> list[Entry]:
    def money(minor: int, currency: str | None) -> str:
        return format_money(minor, currency or principal.currency, principal.locale)

    replaced = {x.replacement_id: x.original_number for x in exchanges}
    entries: list[Entry] = []
    for o in orders:
        title = (f"Replacement order {o.number} placed" + (f" (exchange for {replaced[o.id]})"
                                                            if replaced.get(o.id) else "")
                 if o.exchange_for else f"Order {o.number} placed")
        via = o.channel + (f" order {o.external_number}" if o.external_number else "")
        where = f"pickup at {o.pickup_location_code}" if o.pickup_location_code else "home delivery"
        text = f"{money(o.total_minor, o.currency)} · {via} · {where}"
        entries.append(Entry(o.placed_at, "order.placed", title, text, "", o.id, o.number))
    # A whole cancellation writes its units' cancellation too: said once, as the order's.
    whole = {(e.order_id, e.created_at.replace(microsecond=0)) for e in events if e.kind == "order.cancelled"}
    for e in events:
        if e.kind == "order.lines_cancelled" and (e.order_id, e.created_at.replace(microsecond=0)) in whole:
            continue
        entries.append(Entry(e.created_at, e.kind, f"{e.title} · {e.order_number}", e.text, e.actor, e.order_id,
                             e.order_number))
    for r in refunds:
        status = "" if r.status == "sent" else f" ({r.status})"
        entries.append(Entry(r.created_at, "refund", f"Refund of {money(r.amount_minor, r.currency)}{status} · "
                                                     f"{r.order_number}",
                             f"{r.source.capitalize()}: {r.reason}" if r.reason else r.source.capitalize(),
                             r.created_by, r.order_id, r.order_number))
    for ret in returns:
        for attribute, kind, step in RETURN_STEPS:
            at = getattr(ret, attribute)
            if at is None:
                continue
            text = f"{ret.units} unit{'s' if ret.units != 1 else ''} of order {ret.order_number}"
            actor = ""
            if kind == "return.opened":
                text += f", {'by post' if ret.method == 'post' else 'in store'} to {ret.expected_location_code}"
                actor = ret.opened_by
            elif kind == "return.received":
                text += f", at {ret.received_location_code}" if ret.received_location_code else ""
                actor = ret.received_by or ""
            elif kind == "return.refunded" and ret.refunded_minor:
                text = f"{money(ret.refunded_minor, ret.currency)} refunded for {text}"
            entries.append(Entry(at, kind, f"Return {ret.number} {step}", text, actor, ret.order_id, ret.order_number))
    for n in notes:
        entries.append(Entry(n.created_at, "note.order" if n.about == "order" else "note.customer",
                             f"Note on order {n.order_number}" if n.about == "order" and n.order_number else "Note",
                             n.body, n.author, n.order_id, n.order_number))
    return sorted(entries, key=lambda e: e.at, reverse=True)


async def add_note(session: AsyncSession, principal: Principal, customer_id: uuid.UUID, body: str, *,
                   ip: str | None = None) -> CustomerNote:
    """A note about the customer, on their history and in the audit log; an empty note or one too
    long is refused (422) and nothing is written."""
    record = await visible_customer(session, principal, customer_id)
    text = body.strip()
    if not text:
        raise invalid({"body": "Write the note: what should the next person helping this customer know?"})
    if len(text) > NOTE_MAX:
        raise invalid({"body": f"Keep the note under {NOTE_MAX:,} characters (it has {len(text):,})."})
    note = CustomerNote(tenant_id=principal.tenant_id, id=uuid7(), customer_id=record.id, order_id=None, body=text,
                        author=principal.label, created_at=now())
    session.add(note)
    await audit(session, principal.tenant_id, Actor.of(principal, ip), "customer.note_added", target=record.email,
                note_id=str(note.id), excerpt=text[:200])
    await session.flush()
    return note


def to_local(at: datetime, principal: Principal) -> datetime:
    """A time in the company's time zone (the API gives times with the company's offset)."""
    return at.astimezone(ZoneInfo(principal.timezone))
