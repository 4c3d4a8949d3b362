"""Goodwill refunds with guardrails: each role may give so much per refund and so much per agent
in a calendar month (the company's time zone), as Settings → Returns says. Within the limit the
refund is made at once (``orders.refunds.goodwill``); above it nothing is refunded: a request
waits, with a "goodwill_approval" task on the order, for someone whose own limit covers it (per
refund, and their own month) to approve it (the refund is then made in the approver's name,
both names on it) or decline it with a note. The asker never approves their own request.

Locks, always in this order: the order row (``orders.refunds.locked``), then the request row,
then the agent's month (a transaction-scoped advisory lock per company and agent), so that two
managers approving at once make one refund, and two refunds by one agent at once both count
against their month."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import msgspec
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock, idempotency
from core.auth import Principal
from core.ids import uuid7
from core.locale import format_money
from core.problems import ProblemError, invalid, not_found
from orders import lifecycle, queries, refunds, service_tasks
from orders.guards import TAKERS
from orders.schemas import RefundIn, RefundLineIn, RefundOut
from support import policy as policies
from support.goodwill_schemas import GoodwillRequestOut, GoodwillWaitingOut
from support.models import GoodwillRequest
from tenants.service import Actor, audit

TASK = "goodwill_approval"
NOTE_MISSING = "Say why the refund is declined: the asker reads it on the order's timeline."


def month_start(timezone: str, now: datetime | None = None) -> datetime:
    """The first instant of the current calendar month in the company's time zone."""
    local = (now or clock.now()).astimezone(ZoneInfo(timezone or "UTC"))
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


async def _lock_agent_month(session: AsyncSession, principal: Principal) -> None:
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('support.goodwill'), hashtext(:who))"),
                          {"who": f"{principal.tenant_id}:{principal.label}"})


def _role_name(role: str) -> str:
    return policies.ROLE_NAMES.get(role, role).lower()


async def above_limit(session: AsyncSession, principal: Principal, policy: policies.Policy, amount: int,
                      currency: str, *, given: int | None = None) -> str | None:
    """Why ``principal`` may not give ``amount`` of goodwill alone (their role's limit per refund,
    or per month with what they gave this month), in words; None when their limit covers it."""
    limit = policy.goodwill_limit(principal.role)
    role = _role_name(principal.role)

    def money(minor: int) -> str:
        return format_money(minor, currency, principal.locale)

    if limit.per_refund is not None and amount > limit.per_refund:
        return f"{money(amount)} is above the {role} limit of {money(limit.per_refund)} a refund"
    if limit.per_month is not None:
        if given is None:
            given = await refunds.goodwill_given(session, principal.tenant_id, principal.label,
                                                 month_start(principal.timezone))
        if given + amount > limit.per_month:
            return (f"with {money(given)} given this month, {money(amount)} more is above the {role} limit of "
                    f"{money(limit.per_month)} a month")
    return None


@dataclass(frozen=True)
class Outcome:
    """What a goodwill refund asked for became: made at once, or waiting for approval."""

    refund: RefundOut | None
    request: GoodwillRequest | None
    currency: str
    why: str = ""  # why it waits

    def answer(self) -> idempotency.WithStatus:
        """The API's answer: 201 and the refund, or 202 and the request waiting."""
        if self.refund is not None:
            return idempotency.WithStatus(self.refund, 201)
        assert self.request is not None
        return idempotency.WithStatus(waiting_out(self.request, self.currency, self.why), 202)


async def give(session: AsyncSession, principal: Principal, order_id: uuid.UUID, data: RefundIn, *,
               ip: str | None = None) -> Outcome:
    """A goodwill refund asked for by ``principal``: refused (422, every problem at once) when the
    order can't give it back; made when their limit covers it; else stored as a request waiting for
    approval, with a task on the order. Nothing is refunded above the limit."""
    checked = await refunds.check_goodwill(session, principal, order_id, data)  # the order locked
    order: Any = checked.order
    policy = await policies.current(session, principal.tenant_id)
    await _lock_agent_month(session, principal)
    why = await above_limit(session, principal, policy, data.amount_minor, order.currency)
    actor = Actor.of(principal, ip)
    if why is None:
        made = await refunds.goodwill(session, principal, order_id, data)
        await audit(session, principal.tenant_id, actor, "goodwill.refunded", target=f"order {order.number}",
                    amount_minor=made.amount_minor, refund_id=str(made.id), reason=made.reason)
        return Outcome(made, None, order.currency)
    reason = data.reason.strip()
    request = GoodwillRequest(tenant_id=principal.tenant_id, id=uuid7(), order_id=order.id,
                              amount_minor=data.amount_minor, shipping_minor=data.shipping_minor,
                              lines=checked.lines, reason=reason, status="waiting", requested_by=principal.label,
                              requested_role=principal.role, created_at=clock.now())
    session.add(request)
    amount = format_money(data.amount_minor, order.currency)
    lifecycle.record(session, order, "goodwill.requested", actor=principal.label, request_id=str(request.id),
                     amount_minor=data.amount_minor,
                     reason=f"{amount} of goodwill waits for approval ({why}): {reason}"[:1000])
    await service_tasks.open_task(
        session, order, TASK, actor=principal.label, subject=str(request.id),
        detail=f"{principal.label} asks to refund {amount} as goodwill: {reason}. Above their limit ({why}): "
               "someone whose limit covers it approves or declines it on the order's page.")
    await audit(session, principal.tenant_id, actor, "goodwill.requested", target=f"order {order.number}",
                amount_minor=data.amount_minor, request_id=str(request.id), reason=reason)
    await session.flush()
    return Outcome(None, request, order.currency, why)


async def give_once(session: AsyncSession, principal: Principal, order_id: uuid.UUID, data: RefundIn, *,
                    token: str, ip: str | None = None) -> Literal["refunded", "waiting"]:
    """The console's confirmed goodwill refund, made (or asked for) once under the token its
    review step gave: a double click or a resent form makes no second refund nor request."""
    if not token:
        outcome = await give(session, principal, order_id, data, ip=ip)
        return "refunded" if outcome.refund is not None else "waiting"
    digest = hashlib.sha256(msgspec.json.encode([str(order_id), data])).hexdigest()
    claim = idempotency.Keyed(f"console-refund:{token}", digest, "POST", f"/app/orders/{order_id}/refund")
    earlier = (await idempotency.claim_many(session, principal.tenant_id, [claim]))[claim.key]
    if isinstance(earlier, ProblemError):
        raise earlier
    if earlier is not None:
        return "waiting" if earlier.status_code == 202 else "refunded"
    outcome = await give(session, principal, order_id, data, ip=ip)
    answer = outcome.answer()
    stored = idempotency.Answer(answer.status_code, msgspec.json.encode(
        {"id": str(outcome.refund.id if outcome.refund else outcome.request.id if outcome.request else "")}))
    await idempotency.settle_many(session, principal.tenant_id, {claim.key: stored}, [])
    return "refunded" if outcome.refund is not None else "waiting"


async def _decided(session: AsyncSession, principal: Principal, request_id: uuid.UUID
                   ) -> tuple[GoodwillRequest, Any]:
    """The request and its order, both rows locked (the order first), while it still waits."""
    request = await session.scalar(select(GoodwillRequest).where(
        GoodwillRequest.tenant_id == principal.tenant_id, GoodwillRequest.id == request_id))
    if request is None:
        raise not_found("Goodwill request")
    order = await refunds.locked(session, principal, request.order_id)
    await session.refresh(request, with_for_update=True)
    if request.status != "waiting":
        said = f": {request.decision_note}" if request.decision_note else ""
        raise ProblemError(409, f"Already {request.status}",
                           f"This goodwill refund was already {request.status} by {request.decided_by}{said}.")
    return request, order


def _no_role(principal: Principal) -> ProblemError | None:
    if principal.role not in TAKERS:
        return ProblemError(403, "Forbidden", "Your role may not decide on goodwill refunds.")
    return None


async def approve(session: AsyncSession, principal: Principal, request_id: uuid.UUID, *,
                  ip: str | None = None) -> tuple[GoodwillRequest, RefundOut, str]:
    """Approve a waiting request: the refund is made in the approver's name, with both names and
    the reason on it. Refused: by its asker (403), above the approver's own limit (403), when the
    order no longer has that much to refund (422, the request still waits), when already decided
    (409). Returns the request, the refund and the order's currency."""
    request, order = await _decided(session, principal, request_id)
    if (refused := _no_role(principal)) is not None:
        raise refused
    if request.requested_by == principal.label:
        raise ProblemError(403, "Not yours to approve",
                           "You asked for this refund: someone else whose limit covers it must approve it.")
    policy = await policies.current(session, principal.tenant_id)
    await _lock_agent_month(session, principal)
    why = await above_limit(session, principal, policy, request.amount_minor, order.currency)
    if why is not None:
        raise ProblemError(403, "Above your limit",
                           f"You can't approve this refund: {why}. Someone whose limit covers it must approve it.")
    names = f" (requested by {request.requested_by}, approved by {principal.label})"
    data = RefundIn(amount_minor=request.amount_minor, reason=(request.reason[:max(0, 500 - len(names))] + names)[:500],
                    shipping_minor=request.shipping_minor,
                    lines=[RefundLineIn(line_no=part["line_no"], amount_minor=part["amount_minor"])
                           for part in request.lines] or None)
    try:
        made = await refunds.goodwill(session, principal, order.id, data)
    except ProblemError as problem:
        if problem.status != 422:
            raise
        raise ProblemError(422, "Can't refund that much now",
                           f"Order {order.number} can't give this refund back any more: {problem.detail} "
                           "The request still waits: decline it, or approve it once the order allows it.",
                           errors=problem.errors) from None
    now = clock.now()
    request.status, request.decided_by, request.decided_at, request.refund_id = (
        "approved", principal.label, now, made.id)
    amount = format_money(request.amount_minor, order.currency)
    lifecycle.record(session, order, "goodwill.approved", actor=principal.label, request_id=str(request.id),
                     refund_id=str(made.id), amount_minor=request.amount_minor, requested_by=request.requested_by,
                     reason=f"{amount} of goodwill asked by {request.requested_by} approved by {principal.label}: "
                            f"{request.reason}"[:1000])
    await service_tasks.close_if_open(session, order, TASK, f"approved by {principal.label}: {amount} refunded",
                                      actor=principal.label, subject=str(request.id))
    await audit(session, principal.tenant_id, Actor.of(principal, ip), "goodwill.approved",
                target=f"order {order.number}", amount_minor=request.amount_minor, request_id=str(request.id),
                refund_id=str(made.id), requested_by=request.requested_by, reason=request.reason)
    await session.flush()
    return request, made, order.currency


async def decline(session: AsyncSession, principal: Principal, request_id: uuid.UUID, note: str, *,
                  ip: str | None = None) -> tuple[GoodwillRequest, str]:
    """Decline a waiting request with a note (nothing is refunded). Its asker may withdraw it;
    anyone else needs a limit per refund that covers it. Returns the request and the currency."""
    note = note.strip()
    if not note or len(note) > 1000:
        raise invalid({"note": NOTE_MISSING if not note else "Keep the note under 1,000 characters."})
    request, order = await _decided(session, principal, request_id)
    if (refused := _no_role(principal)) is not None:
        raise refused
    if request.requested_by != principal.label:
        limit = (await policies.current(session, principal.tenant_id)).goodwill_limit(principal.role)
        if limit.per_refund is not None and request.amount_minor > limit.per_refund:
            raise ProblemError(403, "Above your limit",
                               f"You can't decide on this refund: "
                               f"{format_money(request.amount_minor, order.currency, principal.locale)} is above "
                               f"the {_role_name(principal.role)} limit of "
                               f"{format_money(limit.per_refund, order.currency, principal.locale)} a refund.")
    request.status, request.decided_by, request.decided_at, request.decision_note = (
        "declined", principal.label, clock.now(), note)
    amount = format_money(request.amount_minor, order.currency)
    withdrawn = request.requested_by == principal.label
    lifecycle.record(session, order, "goodwill.declined", actor=principal.label, request_id=str(request.id),
                     amount_minor=request.amount_minor, requested_by=request.requested_by,
                     reason=(f"{amount} of goodwill {'withdrawn' if withdrawn else 'declined'}, asked by "
                             f"{request.requested_by}: {note}")[:1000])
    await service_tasks.close_if_open(session, order, TASK,
                                      f"{'withdrawn' if withdrawn else 'declined'} by {principal.label}: {note}",
                                      actor=principal.label, subject=str(request.id))
    await audit(session, principal.tenant_id, Actor.of(principal, ip), "goodwill.declined",
                target=f"order {order.number}", amount_minor=request.amount_minor, request_id=str(request.id),
                requested_by=request.requested_by, note=note)
    await session.flush()
    return request, order.currency


async def of_order(session: AsyncSession, principal: Principal, order_id: uuid.UUID
                   ) -> tuple[Any, list[GoodwillRequest]]:
    """The order (within the principal's reach, else 404) and its goodwill requests, newest first."""
    order = await queries.get_order(session, principal, order_id)
    rows = list(await session.scalars(select(GoodwillRequest).where(
        GoodwillRequest.tenant_id == principal.tenant_id, GoodwillRequest.order_id == order.id)
        .order_by(GoodwillRequest.created_at.desc(), GoodwillRequest.id.desc())))
    return order, rows


async def one(session: AsyncSession, principal: Principal, request_id: uuid.UUID) -> tuple[GoodwillRequest, str]:
    """A request (404 for another company's, or an order out of reach) and its order's currency."""
    request = await session.scalar(select(GoodwillRequest).where(
        GoodwillRequest.tenant_id == principal.tenant_id, GoodwillRequest.id == request_id))
    if request is None:
        raise not_found("Goodwill request")
    try:
        order = await queries.get_order(session, principal, request.order_id)
    except ProblemError:
        raise not_found("Goodwill request") from None
    return request, order.currency


@dataclass(frozen=True)
class Shown:
    """A request as the order page shows it, with what the viewer may do with it."""

    request: GoodwillRequest
    may_approve: bool
    may_decline: bool
    why_not: str  # why the viewer may not approve it, in words


async def shown(session: AsyncSession, principal: Principal, order: Any) -> list[Shown]:
    """The order's goodwill requests for its page: waiting ones first, with Approve and Decline for
    those who may."""
    rows = list(await session.scalars(select(GoodwillRequest).where(
        GoodwillRequest.tenant_id == principal.tenant_id, GoodwillRequest.order_id == order.id)
        .order_by(GoodwillRequest.created_at.desc())))
    if not rows:
        return []
    policy = await policies.current(session, principal.tenant_id)
    limit = policy.goodwill_limit(principal.role)
    given = await refunds.goodwill_given(session, principal.tenant_id, principal.label,
                                         month_start(principal.timezone))
    out = []
    for row in sorted(rows, key=lambda r: r.status != "waiting"):
        if row.status != "waiting":
            out.append(Shown(row, False, False, ""))
            continue
        if principal.role not in TAKERS:
            out.append(Shown(row, False, False, "Your role may not decide on goodwill refunds."))
            continue
        own = row.requested_by == principal.label
        why = await above_limit(session, principal, policy, row.amount_minor, order.currency, given=given)
        covers = limit.per_refund is None or row.amount_minor <= limit.per_refund
        out.append(Shown(row, not own and why is None, own or covers,
                         "You asked for it: someone else approves it." if own else
                         f"Above your limit: {why}." if why else ""))
    return out


def request_out(row: GoodwillRequest, currency: str) -> GoodwillRequestOut:
    return GoodwillRequestOut(id=row.id, order_id=row.order_id, status=row.status, amount_minor=row.amount_minor,
                              currency=currency, shipping_minor=row.shipping_minor, lines=list(row.lines),
                              reason=row.reason, requested_by=row.requested_by, requested_role=row.requested_role,
                              created_at=row.created_at, decided_by=row.decided_by, decision_note=row.decision_note,
                              decided_at=row.decided_at, refund_id=row.refund_id)


def waiting_out(row: GoodwillRequest, currency: str, why: str) -> GoodwillWaitingOut:
    return GoodwillWaitingOut(
        status="waiting_approval", request_id=row.id, order_id=row.order_id, amount_minor=row.amount_minor,
        currency=currency, reason=row.reason, requested_by=row.requested_by,
        detail=f"Nothing was refunded: {why}. The refund waits for approval by someone whose limit covers it.")
