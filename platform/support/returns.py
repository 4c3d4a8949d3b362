"""Returns (RMA): requested → received → inspected → refunded → closed, or cancelled before
they are received.

- Opened by an agent, or by the API (a web shop's self-service returns page), for units the
  customer has had (shipped to them or collected) and not already in another return, within the
  company's return window (roles the policy names may override it), never for a category the
  policy says can't be returned, with a reason code of the company's list.
- Received at any active location that accepts returns (not only the one expected), by its
  store associates or by the office; the units count as returned on the order, and a "return to
  inspect" task waits at that location. What each line is worth is fixed then: its share of the
  line's net, less the restocking fee.
- Inspected line by line: resellable units go back on hand at the receiving location, damaged
  ones are received and written off, each through a ledger movement.
- Refunded on the order's refund ledger (source "return") when received or when inspected, as
  the policy says, with the order's shipping fee too when the policy refunds it and nothing of
  the order is left with the customer; closed once the refund is paid (at once for an external
  payment; for Stripe when it has taken it, see ``close_paid``).

Every step locks the order row first, then the return: two agents acting at once on one return,
or two returns of one order, are counted one after the other.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVarTuple

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock, webhooks
from core.auth import Principal
from core.ids import uuid7
from core.locale import format_money as money
from core.problems import ProblemError, invalid, not_found
from inventory import ledger
from inventory import locations as inventory_locations
from inventory.ledger import Line
from orders import aftersales, exchanges, service_tasks
from support import policy as policies
from support.models import Return, ReturnLine
from support.return_schemas import LATER_NOTE_MAX, OPENING_NOTE_MAX, InspectIn, ReturnIn, ReturnLineOut, ReturnOut
from tenants import service as tenants

AGENTS = ("owner", "admin", "customer_service")
RECEIVERS = (*AGENTS, "store_associate")
OPEN = ("requested",)
REASON_LABELS = {
    "changed_mind": "Changed their mind", "too_small": "Too small", "too_large": "Too large",
    "damaged": "Arrived damaged", "defective": "Defective", "wrong_item": "Wrong item sent",
    "not_as_described": "Not as described", "arrived_late": "Arrived too late",
}
STATUS_LABELS = {"requested": "Requested", "received": "Received", "inspected": "Inspected",
                 "refunded": "Refunded", "closed": "Closed", "cancelled": "Cancelled"}


def reason_label(code: str) -> str:
    return REASON_LABELS.get(code) or code.replace("_", " ").capitalize()


@dataclass(frozen=True)
class Returned:
    row: Return
    lines: list[ReturnLine]


# --- opening ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    """A return as asked for, checked, before anything is written."""

    sale: aftersales.AfterSale
    policy: policies.Policy
    units: dict[uuid.UUID, tuple[int, str]]  # order line id → (units, reason code)
    location: str
    overridden: bool

    @property
    def unit_count(self) -> int:
        return sum(units for units, _ in self.units.values())


@dataclass(frozen=True)
class Preview:
    """What opening the return would do: what it should refund (restocking fee kept) once
    received, and where its units go back."""

    plan: Plan
    lines: list[tuple[aftersales.LineFacts, int, str, int]]  # line, units, reason, refund
    refund_minor: int
    fee_minor: int


async def plan(session: AsyncSession, principal: Principal, data: ReturnIn) -> Plan:
    """Check a return asked for (the order row locked), or refuse (422, every problem named)."""
    sale = await aftersales.lock(session, principal, data.order_id)
    order = sale.order
    policy = await policies.current(session, principal.tenant_id)
    errors: dict[str, str] = {}
    in_returns = await _units_in_returns(session, principal.tenant_id, order.id)
    wanted: dict[uuid.UUID, tuple[int, str]] = {}
    if not data.lines:
        errors["lines"] = "Name at least one line and how many of its units come back."
    for i, part in enumerate(data.lines):
        line = sale.line(line_no=part.line_no, order_line_id=part.order_line_id)
        if part.line_no is None and part.order_line_id is None:
            errors[f"lines[{i}].line_no"] = "Name the line by its number (line_no) or its id (order_line_id)."
            continue
        if line is None or (part.order_line_id is not None and part.order_line_id != line.order_line_id):
            errors[f"lines[{i}].line_no"] = f"Order {order.number} has no such line."
            continue
        if line.order_line_id in wanted:
            errors[f"lines[{i}].line_no"] = f"Line {line.line_no} is named twice: give it one quantity."
            continue
        if line.category and line.category in policy.non_returnable_categories:
            errors[f"lines[{i}].line_no"] = (f"{line.name or line.sku} can't be returned: the company's policy "
                                             f"excludes the category {line.category!r}.")
        left = line.received - in_returns.get(line.order_line_id, 0)
        if part.quantity <= 0:
            errors[f"lines[{i}].quantity"] = "Enter a quantity of at least 1."
        elif part.quantity > left:
            errors[f"lines[{i}].quantity"] = _too_many(line, left, in_returns.get(line.order_line_id, 0))
        if part.reason_code not in policy.reason_codes:
            errors[f"lines[{i}].reason_code"] = (f"Choose a reason among: "
                                                 f"{', '.join(reason_label(c) for c in policy.reason_codes)}.")
        wanted[line.order_line_id] = (part.quantity, part.reason_code)
    overridden = False
    if sale.handed_over_at is None:
        if "lines" not in errors and not any(k.endswith(".quantity") for k in errors):
            errors["lines"] = f"Nothing of order {order.number} has reached the customer yet: nothing to return."
    elif clock.now() > sale.handed_over_at + timedelta(days=policy.window_days):
        ended = (sale.handed_over_at + timedelta(days=policy.window_days)).date().isoformat()
        if not policy.may_override_window(principal.role):
            errors["override_window"] = (f"The return window of {policy.window_days} days ended on {ended}, and "
                                         f"only {_roles(policy.override_roles)} may accept a return after it.")
        elif not data.override_window:
            errors["override_window"] = (f"The return window of {policy.window_days} days ended on {ended}: "
                                         "tick “Accept after the window” to take it back anyway.")
        else:
            overridden = True
    if len(data.note.strip()) > OPENING_NOTE_MAX:
        errors["note"] = f"Keep the note under {OPENING_NOTE_MAX} characters."
    location = await _expected_location(session, principal, data.location, errors)
    if errors:
        raise invalid(errors, detail=next(iter(errors.values())))
    assert location is not None
    return Plan(sale, policy, wanted, location, overridden)


async def preview(session: AsyncSession, principal: Principal, data: ReturnIn) -> Preview:
    checked = await plan(session, principal, data)
    values = await aftersales.unit_values(session, checked.sale.order,
                                          {line_id: units for line_id, (units, _) in checked.units.items()})
    lines = []
    fee_total = 0
    for line_id, (units, reason) in checked.units.items():
        facts = checked.sale.line(order_line_id=line_id)
        assert facts is not None
        fee = checked.policy.restocking_fee(values.get(line_id, 0))
        fee_total += fee
        lines.append((facts, units, reason, values.get(line_id, 0) - fee))
    return Preview(checked, lines, sum(refund for *_, refund in lines), fee_total)


async def open_return(session: AsyncSession, principal: Principal, data: ReturnIn, *, via: str = "console"
                      ) -> Returned:
    """Open a return, or refuse (422, every problem named, nothing written)."""
    checked = await plan(session, principal, data)
    sale, location, overridden = checked.sale, checked.location, checked.overridden
    order = sale.order
    now = clock.now()
    count = int(await session.scalar(select(func.count()).select_from(Return).where(
        Return.tenant_id == principal.tenant_id, Return.order_id == order.id)) or 0)
    number = f"{order.number}-R{count + 1}"
    row = Return(tenant_id=principal.tenant_id, id=uuid7(), number=number, order_id=order.id,
                 order_number=order.number, customer_id=order.customer_id, status="requested", method=data.method,
                 expected_location_code=location, note=data.note.strip(), window_overridden=overridden,
                 opened_via=via, opened_by=principal.label, refunded_minor=0, restocking_fee_minor=0,
                 label_reference=f"RL-{number}" if data.method == "post" else None, created_at=now, updated_at=now)
    session.add(row)
    lines = [ReturnLine(tenant_id=principal.tenant_id, id=uuid7(), return_id=row.id, order_line_id=line_id,
                        line_no=facts.line_no, sku=facts.sku, product_id=facts.product_id, name=facts.name,
                        quantity=quantity, reason_code=reason, refund_minor=0)
             for line_id, (quantity, reason) in checked.units.items()
             for facts in [sale.line(order_line_id=line_id)] if facts is not None]
    session.add_all(lines)
    units = checked.unit_count
    aftersales.record(session, order, "return.requested", actor=principal.label,
                      reason=f"Return {number} opened: {units} unit{'s' if units != 1 else ''}, "
                             f"{'in store' if data.method == 'in_store' else 'by post'}, expected at {location}"
                             + (" (after the window)" if overridden else "") + (f": {row.note}" if row.note else ""),
                      return_id=str(row.id), return_number=number)
    await session.flush()
    _announce(session, row, lines, "return.requested")
    await _audit(session, principal, "return.opened", row, method=row.method, expected_at=location,
                 window_overridden=overridden, lines=[f"line {line.line_no}: {line.quantity} ({line.reason_code})"
                                                      for line in lines])
    return Returned(row, lines)


def _too_many(line: aftersales.LineFacts, left: int, in_returns: int) -> str:
    if line.received == 0:
        return f"Line {line.line_no} has not reached the customer yet: nothing of it can come back."
    if left <= 0:
        return f"Every unit of line {line.line_no} the customer had is already in a return."
    return (f"At most {left} unit{'s' if left != 1 else ''} of line {line.line_no} can come back: "
            f"{line.received} reached the customer" + (f", {in_returns} already in returns." if in_returns else "."))


def _roles(roles: Sequence[str]) -> str:
    names = [role.replace("_", " ") + "s" for role in roles]
    return ", ".join(names) if names else "nobody"


async def _expected_location(session: AsyncSession, principal: Principal, code: str,
                             errors: dict[str, str]) -> str | None:
    code = code.strip()
    if code:
        found = (await inventory_locations.by_codes(session, principal.tenant_id, [code])).get(code)
        if found is None:
            errors["location"] = f"No location has the code {code!r}."
        elif found.status != "active" or not found.accepts_returns:
            errors["location"] = f"{found.name} does not take returns: choose a location that accepts them."
        else:
            return code
        return None
    for location in await inventory_locations.active(session, principal.tenant_id):
        if location.accepts_returns:
            return location.code
    errors["location"] = ("No location accepts returns yet: tick “Accepts returns” on a warehouse or store "
                          "under Locations.")
    return None


async def _units_in_returns(session: AsyncSession, tenant_id: uuid.UUID, order_id: uuid.UUID) -> dict[uuid.UUID, int]:
    """Units of each order line in the order's returns that were not cancelled."""
    rows = await session.execute(
        select(ReturnLine.order_line_id, func.sum(ReturnLine.quantity))
        .join(Return, (Return.tenant_id == ReturnLine.tenant_id) & (Return.id == ReturnLine.return_id))
        .where(Return.tenant_id == tenant_id, Return.order_id == order_id, Return.status != "cancelled")
        .group_by(ReturnLine.order_line_id))
    return {line_id: int(units) for line_id, units in rows}


async def known(session: AsyncSession, principal: Principal, return_id: uuid.UUID) -> None:
    """404 unless the company has this return (before a request's body is read)."""
    if await session.scalar(select(Return.id).where(Return.tenant_id == principal.tenant_id,
                                                    Return.id == return_id)) is None:
        raise not_found("Return")


# --- the steps after -------------------------------------------------------------------------------

async def _locked(session: AsyncSession, principal: Principal, return_id: uuid.UUID, *, within_reach: bool
                  ) -> tuple[aftersales.AfterSale, Return, list[ReturnLine]]:
    """The return's order (row locked first, as every writer of the order does), then the return."""
    found = await session.scalar(select(Return.order_id).where(Return.tenant_id == principal.tenant_id,
                                                               Return.id == return_id))
    if found is None:
        raise not_found("Return")
    try:
        sale = await aftersales.lock(session, principal, found, within_reach=within_reach)
    except ProblemError as exc:
        if exc.status == 404:
            raise not_found("Return") from None
        raise
    row = await session.scalar(select(Return).where(Return.tenant_id == principal.tenant_id,
                                                    Return.id == return_id).with_for_update())
    assert row is not None
    lines = list(await session.scalars(select(ReturnLine).where(
        ReturnLine.tenant_id == principal.tenant_id, ReturnLine.return_id == row.id).order_by(ReturnLine.line_no)))
    return sale, row, lines


async def receive(session: AsyncSession, principal: Principal, return_id: uuid.UUID, location_code: str) -> Returned:
    """The parcel or the customer is at ``location_code``: the units are back."""
    sale, row, lines = await _locked(session, principal, return_id, within_reach=principal.locations is None)
    if row.status != "requested":
        raise ProblemError(409, "Already received" if row.status != "cancelled" else "Cancelled",
                           f"Return {row.number} was received at {row.received_location_code} by {row.received_by}."
                           if row.received_at else f"Return {row.number} was cancelled: it can't be received.")
    code = location_code.strip()
    location = (await inventory_locations.by_codes(session, principal.tenant_id, [code])).get(code) if code else None
    if location is None:
        raise invalid({"location": f"No location has the code {code!r}." if code else "Say where it is received."})
    if not principal.works_at(code):
        raise ProblemError(403, "Not your location",
                           f"You work at {', '.join(sorted(principal.locations or ()))}: a return can be received "
                           f"only where you are.")
    if location.status != "active" or not location.accepts_returns:
        raise invalid({"location": f"{location.name} does not take returns."})
    policy = await policies.current(session, principal.tenant_id)
    order = sale.order
    units = {line.order_line_id: line.quantity for line in lines}
    values = await aftersales.unit_values(session, order, units)
    fee_total = 0
    credit_left = row.exchange_credit_minor  # an exchange's replacement is paid with it, never refunded
    for line in lines:
        value = values.get(line.order_line_id, 0)
        fee = 0 if row.exchange_order_id else policy.restocking_fee(value)
        used = min(value - fee, credit_left)
        credit_left -= used
        line.refund_minor = value - fee - used
        fee_total += fee
    await aftersales.mark_returned(session, order, units)
    now = clock.now()
    row.status, row.received_location_code, row.received_by, row.received_at = "received", code, principal.label, now
    row.restocking_fee_minor, row.updated_at = fee_total, now
    unit_count = sum(units.values())
    aftersales.record(session, order, "return.received", actor=principal.label,
                      reason=f"Return {row.number} received at {location.name}: {unit_count} "
                             f"unit{'s' if unit_count != 1 else ''}"
                             + ("" if code == row.expected_location_code else
                                f" (expected at {row.expected_location_code})"),
                      return_id=str(row.id), return_number=row.number, location=code)
    await service_tasks.open_task(session, order, "return_to_inspect",
                                  f"Return {row.number}: {unit_count} unit{'s' if unit_count != 1 else ''} "
                                  f"received at {location.name} to inspect", actor=principal.label,
                                  subject=str(row.id))
    _announce(session, row, lines, "return.received")
    await _audit(session, principal, "return.received", row, location=code, before="requested", after="received")
    if row.exchange_order_id is not None:
        await exchanges.release(session, principal.tenant_id, row.exchange_order_id, actor=principal.label,
                                reason=f"return {row.number} received: the replacement goes out")
        await service_tasks.close_if_open(session, order, "return_overdue", f"received at {location.name}",
                                          actor=principal.label, subject=str(row.id))
    if policy.refund_on == "received":
        await _refund(session, principal, sale, row, lines, policy)
    return Returned(row, lines)


async def inspect(session: AsyncSession, principal: Principal, return_id: uuid.UUID, data: InspectIn) -> Returned:
    """Say of each line whether it can be sold again: resellable units go back on hand where the
    return was received, damaged ones are written off; then refund, when the policy waits for it."""
    sale, row, lines = await _locked(session, principal, return_id, within_reach=principal.locations is None)
    if row.status != "received":
        raise ProblemError(409, "Not waiting for inspection",
                           f"Return {row.number} is {STATUS_LABELS[row.status].lower()}: "
                           + ("receive it first." if row.status == "requested" else "it was inspected already."))
    assert row.received_location_code is not None
    if not principal.works_at(row.received_location_code):
        raise ProblemError(403, "Not your location",
                           f"Return {row.number} was received at {row.received_location_code}: it is inspected there.")
    by_id = {line.id: line for line in lines}
    by_no = {line.line_no: line for line in lines}
    decided: dict[uuid.UUID, tuple[str, bool]] = {}
    errors: dict[str, str] = {}
    for i, part in enumerate(data.lines):
        line = by_id.get(part.return_line_id) if part.return_line_id else \
            by_no.get(part.line_no) if part.line_no is not None else None
        if line is None:
            errors[f"lines[{i}].line_no"] = f"Return {row.number} has no such line."
        elif line.id in decided:
            errors[f"lines[{i}].line_no"] = f"Line {line.line_no} is named twice."
        else:
            decided[line.id] = (part.condition, part.refund)
    if len(data.note.strip()) > LATER_NOTE_MAX:
        errors["note"] = f"Keep the note under {LATER_NOTE_MAX} characters."
    missing = [line.line_no for line in lines if line.id not in decided]
    if missing and not errors:
        errors["lines"] = "Say the condition of every line: " + ", ".join(f"line {n}" for n in missing) + " left."
    if errors:
        raise invalid(errors, detail=next(iter(errors.values())))
    location = (await inventory_locations.by_codes(session, principal.tenant_id,
                                                   [row.received_location_code]))[row.received_location_code]
    reference = f"return {row.number}"
    resellable = damaged = 0
    for line in lines:
        condition, refund = decided[line.id]
        line.condition = condition
        if not refund:
            line.refund_minor = 0
        if line.product_id is None:
            continue
        back = Line(line.product_id, location.id, line.quantity)
        await ledger.adjust(session, principal.tenant_id, back, reason="return", actor=principal.label,
                            reference=reference)
        if condition == "damaged":
            await ledger.adjust(session, principal.tenant_id, Line(line.product_id, location.id, -line.quantity),
                                reason="return_written_off", actor=principal.label, reference=reference)
            damaged += line.quantity
        else:
            resellable += line.quantity
    now = clock.now()
    row.status, row.inspected_by, row.inspected_at, row.updated_at = "inspected", principal.label, now, now
    if data.note.strip():
        row.note = (row.note + "\n" if row.note else "") + data.note.strip()
    aftersales.record(session, sale.order, "return.inspected", actor=principal.label,
                      reason=f"Return {row.number} inspected: {resellable} back on hand at {location.name}, "
                             f"{damaged} written off" + (f": {data.note.strip()}" if data.note.strip() else ""),
                      return_id=str(row.id), return_number=row.number)
    await service_tasks.close_if_open(session, sale.order, "return_to_inspect", "inspected",
                                      actor=principal.label, subject=str(row.id))
    _announce(session, row, lines, "return.inspected")
    await _audit(session, principal, "return.inspected", row, resellable=resellable, damaged=damaged,
                 lines=[f"line {line.line_no}: {line.condition}" + ("" if line.refund_minor or not line.quantity
                                                                   else ", no refund") for line in lines])
    policy = await policies.current(session, principal.tenant_id)
    if row.refund_id is None:
        await _refund(session, principal, sale, row, lines, policy)
    else:
        await _settle(session, sale, row, lines)
    return Returned(row, lines)


async def _refund(session: AsyncSession, principal: Principal, sale: aftersales.AfterSale, row: Return,
                  lines: list[ReturnLine], policy: policies.Policy) -> None:
    order = sale.order
    parts = {line.order_line_id: line.refund_minor for line in lines if line.refund_minor > 0}
    shipping = 0
    exchange = row.exchange_order_id is not None
    if policy.refund_return_shipping and not exchange and await aftersales.nothing_kept(session, order):
        shipping = await aftersales.refundable_shipping(session, order)
    refund_id, amount, status = await aftersales.refund(
        session, order, parts, shipping, actor=principal.label, source="exchange" if exchange else "return",
        reason=f"{'exchange difference, ' if exchange else ''}return {row.number}")
    now = clock.now()
    row.refund_id, row.refunded_minor, row.updated_at = refund_id, amount, now
    if refund_id is not None:
        row.refunded_at = now
        aftersales.record(session, order, "return.refunded", actor=principal.label,
                          reason=f"Return {row.number}: {money(amount, order.currency)} refunded"
                                 + (f" ({money(row.restocking_fee_minor, order.currency)} restocking fee kept)"
                                    if row.restocking_fee_minor else ""),
                          return_id=str(row.id), return_number=row.number, refund_id=str(refund_id))
        _announce(session, row, lines, "return.refunded")
    if row.status == "inspected":
        await _settle(session, sale, row, lines, refund_status=status)


async def _settle(session: AsyncSession, sale: aftersales.AfterSale, row: Return, lines: list[ReturnLine], *,
                  refund_status: str | None = None) -> None:
    """After inspection: refunded once a refund is recorded, closed once it is paid (or when
    there was nothing to refund)."""
    if row.refund_id is not None:
        row.status = "refunded"
        status = refund_status or await aftersales.refund_status(session, sale.order, row.refund_id)
        if status != "sent":
            return
    _close(session, sale, row, lines)


def _close(session: AsyncSession, sale: aftersales.AfterSale, row: Return, lines: list[ReturnLine]) -> None:
    now = clock.now()
    row.status, row.closed_at, row.updated_at = "closed", now, now
    aftersales.record(session, sale.order, "return.closed", actor="system",
                      reason=f"Return {row.number} closed", return_id=str(row.id), return_number=row.number)
    _announce(session, row, lines, "return.closed")


async def close_paid(session: AsyncSession, principal: Principal, return_id: uuid.UUID) -> Returned:
    """Close a refunded return whose refund has been paid since (Stripe took it)."""
    sale, row, lines = await _locked(session, principal, return_id, within_reach=False)
    if row.status == "refunded":
        await _settle(session, sale, row, lines)
    return Returned(row, lines)


async def refunded(session: AsyncSession, tenant_id: uuid.UUID, limit: int = 500) -> list[uuid.UUID]:
    """The company's returns waiting for their refund to be paid (see ``support.tasks``)."""
    return list(await session.scalars(select(Return.id).where(
        Return.tenant_id == tenant_id, Return.status == "refunded").order_by(Return.id).limit(limit)))


async def overdue(session: AsyncSession, tenant_id: uuid.UUID, limit: int = 500) -> list[uuid.UUID]:
    """Returns of exchanges shipped at once whose goods did not come back in time."""
    return list(await session.scalars(select(Return.id).where(
        Return.tenant_id == tenant_id, Return.status == "requested", Return.expected_by < clock.now())
        .order_by(Return.expected_by).limit(limit)))


async def flag_overdue(session: AsyncSession, tenant_id: uuid.UUID, return_id: uuid.UUID) -> None:
    """A task for customer service, once: the return no longer waits on a date."""
    principal = system(tenant_id)
    sale, row, _ = await _locked(session, principal, return_id, within_reach=False)
    if row.status != "requested" or row.expected_by is None or row.expected_by >= clock.now():
        return
    await exchanges.overdue(session, sale.order,
                            f"Return {row.number}: the replacement was shipped at once and the goods were "
                            f"expected back by {row.expected_by.date().isoformat()}", subject=str(row.id),
                            actor="system")
    row.expected_by = None
    row.updated_at = clock.now()


def system(tenant_id: uuid.UUID) -> Principal:
    """The platform itself, acting for the company (closing returns whose refund was paid)."""
    return Principal(tenant_id=tenant_id, role="owner", label="system", tenant_name="", timezone="UTC",
                     currency="EUR")


async def cancel(session: AsyncSession, principal: Principal, return_id: uuid.UUID, reason: str) -> Returned:
    sale, row, lines = await _locked(session, principal, return_id, within_reach=True)
    if not reason.strip():
        raise invalid({"reason": "Say why the return is cancelled."})
    if len(reason.strip()) > LATER_NOTE_MAX:
        raise invalid({"reason": f"Keep the reason under {LATER_NOTE_MAX} characters."})
    if row.status != "requested":
        raise ProblemError(409, "Already received" if row.status != "cancelled" else "Already cancelled",
                           f"Return {row.number} is {STATUS_LABELS[row.status].lower()}: only a return not yet "
                           "received can be cancelled.")
    now = clock.now()
    row.status, row.cancelled_at, row.updated_at = "cancelled", now, now
    row.note = (row.note + "\n" if row.note else "") + f"Cancelled: {reason.strip()}"
    aftersales.record(session, sale.order, "return.cancelled", actor=principal.label,
                      reason=f"Return {row.number} cancelled: {reason.strip()}", return_id=str(row.id),
                      return_number=row.number)
    _announce(session, row, lines, "return.cancelled")
    await _audit(session, principal, "return.cancelled", row, reason=reason.strip(), before="requested",
                 after="cancelled")
    return Returned(row, lines)


# --- reading ---------------------------------------------------------------------------------------

async def get(session: AsyncSession, principal: Principal, return_id: uuid.UUID) -> Returned:
    row = await session.scalar(select(Return).where(Return.tenant_id == principal.tenant_id, Return.id == return_id))
    if row is None or not await _visible(session, principal, row):
        raise not_found("Return")
    lines = list(await session.scalars(select(ReturnLine).where(
        ReturnLine.tenant_id == principal.tenant_id, ReturnLine.return_id == row.id).order_by(ReturnLine.line_no)))
    return Returned(row, lines)


async def _visible(session: AsyncSession, principal: Principal, row: Return) -> bool:
    """A store associate sees the returns expected or received at their locations, and those of
    orders they can see; an order-intake key those of its channel's orders; others, all."""
    if principal.locations is not None and (principal.works_at(row.expected_location_code) or (
            row.received_location_code is not None and principal.works_at(row.received_location_code))):
        return True
    try:
        await aftersales.visible(session, principal, row.order_id)
    except ProblemError:
        return False
    return True


@dataclass(frozen=True)
class Panel:
    """An order's returns, and what can still come back (for the form that opens one)."""

    sale: aftersales.AfterSale
    policy: policies.Policy
    items: list[Returned]
    returnable: dict[uuid.UUID, int]  # per order line: units the customer has that are in no return
    window_ends: datetime | None

    @property
    def window_over(self) -> bool:
        return self.window_ends is not None and clock.now() > self.window_ends

    @property
    def anything_returnable(self) -> bool:
        return any(units > 0 for units in self.returnable.values())


async def panel(session: AsyncSession, principal: Principal, order_id: uuid.UUID) -> Panel:
    sale = await aftersales.lock(session, principal, order_id, for_update=False)
    policy = await policies.current(session, principal.tenant_id)
    in_returns = await _units_in_returns(session, principal.tenant_id, order_id)
    window_ends = sale.handed_over_at + timedelta(days=policy.window_days) if sale.handed_over_at else None
    return Panel(sale, policy, await for_order(session, principal, order_id),
                 {line.order_line_id: max(0, line.received - in_returns.get(line.order_line_id, 0))
                  for line in sale.lines if not (line.category and line.category in policy.non_returnable_categories)},
                 window_ends)


async def for_order(session: AsyncSession, principal: Principal, order_id: uuid.UUID) -> list[Returned]:
    rows = list(await session.scalars(select(Return).where(
        Return.tenant_id == principal.tenant_id, Return.order_id == order_id).order_by(Return.created_at)))
    return await _with_lines(session, principal, rows)


async def listing(session: AsyncSession, principal: Principal, *, status: str = "", location: str = "",
                  after: uuid.UUID | None = None, limit: int = 50) -> tuple[list[Returned], str | None]:
    """Returns, newest first: a store associate's, those expected or received at their locations."""
    if status and status not in STATUS_LABELS:
        raise invalid({"status": f"Unknown status {status!r}: {', '.join(STATUS_LABELS)}."})
    query = select(Return).where(Return.tenant_id == principal.tenant_id)
    if status:
        query = query.where(Return.status == status)
    if location:
        query = query.where((Return.expected_location_code == location) | (Return.received_location_code == location))
    query = _within_reach(query, principal)
    if after is not None:
        query = query.where(Return.id < after)
    limit = max(1, min(limit, 200))
    rows = list(await session.scalars(query.order_by(Return.id.desc()).limit(limit)))
    return await _with_lines(session, principal, rows), (str(rows[-1].id) if len(rows) == limit else None)


_Row = TypeVarTuple("_Row")


def _within_reach(query: Select[*_Row], principal: Principal) -> Select[*_Row]:
    """A store associate's returns are those expected or received at their locations; an
    order-intake key's those it opened for its channel's orders."""
    if principal.locations is not None:
        codes = sorted(principal.locations)
        query = query.where(Return.expected_location_code.in_(codes) | Return.received_location_code.in_(codes))
    if principal.channel is not None:
        query = query.where(Return.opened_via == "api", Return.order_id.in_(aftersales.channel_order_ids(principal)))
    return query


@dataclass(frozen=True)
class DayReturn:
    """A return opened in a day, as the customer service home lists it."""

    id: uuid.UUID
    number: str
    order_id: uuid.UUID
    order_number: str
    status: str
    method: str
    expected_location: str
    created_at: datetime


async def of_day(session: AsyncSession, principal: Principal, first: datetime, last: datetime, *,
                 limit: int = 50) -> tuple[list[DayReturn], int]:
    """The returns opened in [first, last) (the caller's local day as UTC instants) within the
    principal's reach, newest first, at most ``limit``; and how many there are."""
    limit = max(0, limit)
    query = _within_reach(select(
        Return.id, Return.number, Return.order_id, Return.order_number, Return.status, Return.method,
        Return.expected_location_code, Return.created_at, func.count().over(),
    ).where(Return.tenant_id == principal.tenant_id, Return.created_at >= first, Return.created_at < last), principal)
    found = list(await session.execute(
        query.order_by(Return.created_at.desc(), Return.id.desc()).limit(max(1, limit))))
    total = int(found[0][-1]) if found else 0
    return [DayReturn(*row[:-1]) for row in found[:limit]], total


async def _with_lines(session: AsyncSession, principal: Principal, rows: list[Return]) -> list[Returned]:
    if not rows:
        return []
    lines: dict[uuid.UUID, list[ReturnLine]] = {row.id: [] for row in rows}
    for line in await session.scalars(select(ReturnLine).where(
            ReturnLine.tenant_id == principal.tenant_id, ReturnLine.return_id.in_(list(lines)))
            .order_by(ReturnLine.line_no)):
        lines[line.return_id].append(line)
    return [Returned(row, lines[row.id]) for row in rows]


def out(found: Returned) -> ReturnOut:
    row = found.row
    return ReturnOut(
        id=row.id, number=row.number, order_id=row.order_id, order_number=row.order_number,
        customer_id=row.customer_id, status=row.status, method=row.method,
        expected_location=row.expected_location_code, received_location=row.received_location_code,
        label_reference=row.label_reference, note=row.note, window_overridden=row.window_overridden,
        refund_id=row.refund_id, refunded_minor=row.refunded_minor, restocking_fee_minor=row.restocking_fee_minor,
        lines=[ReturnLineOut(id=line.id, order_line_id=line.order_line_id, line_no=line.line_no, sku=line.sku,
                             name=line.name, quantity=line.quantity, reason_code=line.reason_code,
                             condition=line.condition, refund_minor=line.refund_minor) for line in found.lines],
        opened_by=row.opened_by, opened_via=row.opened_via, received_by=row.received_by,
        inspected_by=row.inspected_by, created_at=row.created_at, received_at=row.received_at,
        inspected_at=row.inspected_at, refunded_at=row.refunded_at, closed_at=row.closed_at,
        cancelled_at=row.cancelled_at, exchange_order_id=row.exchange_order_id)


async def _audit(session: AsyncSession, principal: Principal, action: str, row: Return, **details: object) -> None:
    """A person's step on a return, in Settings → Audit log (the platform's own are on the timeline)."""
    if principal.label != "system":
        await tenants.audit(session, principal.tenant_id, tenants.Actor.of(principal), action,
                            target=f"return {row.number}", order=row.order_number, status=row.status, **details)


def _announce(session: AsyncSession, row: Return, lines: list[ReturnLine], event: str) -> None:
    webhooks.emit(session, row.tenant_id, event, {
        "return_id": str(row.id), "number": row.number, "order_id": str(row.order_id),
        "order_number": row.order_number, "status": row.status, "method": row.method,
        "expected_location": row.expected_location_code, "received_location": row.received_location_code,
        "refunded_minor": row.refunded_minor, "restocking_fee_minor": row.restocking_fee_minor,
        "lines": [{"line_no": line.line_no, "sku": line.sku, "quantity": line.quantity,
                   "reason_code": line.reason_code, "condition": line.condition} for line in lines]})
