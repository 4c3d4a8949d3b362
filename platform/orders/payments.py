"""Payments through one interface: capture when goods leave, refund when they won't.

Two adapters. "external": the channel took the payment (a marketplace, a till); the OMS
records what was captured and refunded and the channel moves the money. "stripe": the
company's own Stripe account (its secret key under Settings → Payments); the OMS captures the
authorised PaymentIntent at the first shipment and refunds on cancellation, through actors so
that no request waits on Stripe, with retries and backoff. A capture that fails is on the
order's timeline and the order is flagged for customer service ("payment_status":
"capture_failed") until a retry succeeds.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import stripe
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock, webhooks
from core.auth import Principal
from core.broker import actor
from core.db import get_database
from core.ids import uuid7
from core.locale import format_money as money
from core.outbox import enqueue
from core.problems import invalid
from core.redrive import pending_work
from core.settings import get_settings
from orders import lifecycle, service_tasks
from orders.models import Order, OrderLine, PaymentAccount, Refund, RefundLine
from tenants.service import Actor, audit

ACTOR = "payments"


class PaymentFailed(Exception):
    """The provider refused for now: Dramatiq tries again with backoff."""


def net_of(line: OrderLine) -> int:
    """What the customer pays for the whole line: its price less its own discount and its share
    of the order's."""
    return line.unit_price_minor * line.quantity - line.discount_minor - line.order_discount_minor


def value_of(line: OrderLine, units: int) -> int:
    """What the first ``units`` units of the line cost the customer: the line's net shared per
    unit, rounded down and counted cumulatively, so that all its units cost exactly its net."""
    return net_of(line) * units // line.quantity


def cancelled_value(line: OrderLine, units: int) -> int:
    """What cancelling ``units`` more units of the line gives back (call before counting them as
    cancelled): its value with them minus its value without."""
    return value_of(line, line.qty_cancelled + units) - value_of(line, line.qty_cancelled)


@dataclass(frozen=True)
class Figures:
    """An order's money as placed and as it stands now, its cancelled and returned units taken
    off at what they were worth (their line nets, as refunds count them), and what moved."""

    lines_original: int  # the lines after their own discounts
    lines_now: int
    discount_original: int  # the order-level discount
    discount_now: int  # its share on the units kept
    shipping_original: int
    shipping_now: int  # waived when every unit is cancelled (the cancellation refunds it)
    total_original: int
    total_now: int
    authorized: int
    captured: int
    refunded: int

    @property
    def paid(self) -> int:
        return self.captured - self.refunded

    @property
    def balance(self) -> int:
        """What the customer still owes (above 0) or is owed back (below 0)."""
        return self.total_now - self.paid


def figures(order: Order, lines: Iterable[OrderLine]) -> Figures:
    lines_now = kept_net = 0
    every_unit_cancelled = True
    for line in lines:
        gross = line.unit_price_minor * line.quantity - line.discount_minor
        gone = min(line.quantity, line.qty_cancelled + line.qty_returned)
        lines_now += gross - gross * gone // line.quantity
        kept_net += net_of(line) - value_of(line, gone)
        every_unit_cancelled = every_unit_cancelled and line.qty_cancelled >= line.quantity
    shipping_now = 0 if every_unit_cancelled else order.shipping_fee_minor
    return Figures(
        lines_original=order.subtotal_minor, lines_now=lines_now, discount_original=order.discount_minor,
        discount_now=lines_now - kept_net, shipping_original=order.shipping_fee_minor, shipping_now=shipping_now,
        total_original=order.total_minor, total_now=kept_net + shipping_now, authorized=order.authorized_minor,
        captured=order.captured_minor, refunded=order.refunded_minor)


async def refunds_by_status(session: AsyncSession, order: Order) -> dict[str, int]:
    """What the order's refunds add up to per status (pending, sent, failed, abandoned)."""
    rows = await session.execute(select(Refund.status, func.sum(Refund.amount_minor)).where(
        Refund.tenant_id == order.tenant_id, Refund.order_id == order.id).group_by(Refund.status))
    return {status: int(total or 0) for status, total in rows}


async def payable(session: AsyncSession, order: Order) -> int:
    """What the order should cost in the end: its total less what its cancelled units were worth."""
    lines = await session.scalars(select(OrderLine).where(OrderLine.tenant_id == order.tenant_id,
                                                          OrderLine.order_id == order.id))
    return order.total_minor - sum(value_of(line, line.qty_cancelled) for line in lines)


async def capture_on_shipment(session: AsyncSession, order: Order, *, actor: str) -> None:
    """Capture what is authorised and not captured yet, at the order's first shipment or handover."""
    if order.payment_status not in ("authorized", "capture_failed"):
        return
    amount = min(order.authorized_minor, await payable(session, order)) - order.captured_minor
    if amount <= 0:
        return
    if order.payment_provider == "external":
        _captured(session, order, amount, actor=actor, how="recorded as captured by the channel")
        return
    order.payment_status = "capture_pending"
    lifecycle.record(session, order, "payment.capture_requested", actor=actor, amount_minor=amount,
                     reason=f"capturing {money(amount, order.currency)} with Stripe")
    enqueue(session, capture_with_stripe, tenant_id=order.tenant_id, order_id=str(order.id))


def _captured(session: AsyncSession, order: Order, amount: int, *, actor: str, how: str) -> None:
    order.captured_minor += amount
    order.payment_status = "captured"
    lifecycle.record(session, order, "payment.captured", actor=actor, amount_minor=amount,
                     reason=f"{money(amount, order.currency)} {how}")


UNSETTLED = ("failed", "abandoned")  # refunds that gave nothing back on the ledger's lines


@dataclass(frozen=True)
class Refundable:
    """What an order can still give back, as its refund ledger stands (read with the order locked)."""

    total: int  # captured less refunded
    lines: dict[uuid.UUID, int]  # per order line: its net less what its refunds gave back
    shipping: int  # the shipping fee less what refunds gave back on it


async def refundable(session: AsyncSession, order: Order, order_lines: Iterable[OrderLine] | None = None
                     ) -> Refundable:
    if order_lines is None:
        order_lines = await session.scalars(select(OrderLine).where(OrderLine.tenant_id == order.tenant_id,
                                                                    OrderLine.order_id == order.id))
    given: dict[uuid.UUID, int] = dict((await session.execute(
        select(RefundLine.order_line_id, func.sum(RefundLine.amount_minor))
        .join(Refund, (Refund.tenant_id == RefundLine.tenant_id) & (Refund.id == RefundLine.refund_id))
        .where(Refund.tenant_id == order.tenant_id, Refund.order_id == order.id, Refund.status.not_in(UNSETTLED))
        .group_by(RefundLine.order_line_id))).all())
    shipping_given = await session.scalar(select(func.coalesce(func.sum(Refund.shipping_minor), 0)).where(
        Refund.tenant_id == order.tenant_id, Refund.order_id == order.id, Refund.status.not_in(UNSETTLED)))
    return Refundable(total=order.captured_minor - order.refunded_minor,
                      lines={line.id: net_of(line) - int(given.get(line.id) or 0) for line in order_lines},
                      shipping=order.shipping_fee_minor - int(shipping_given or 0))


async def refund(session: AsyncSession, order: Order, amount: int, *, actor: str, reason: str,
                 source: str = "cancellation", lines: Mapping[uuid.UUID, int] | None = None,
                 shipping: int = 0) -> int:
    """Give back up to ``amount`` of what was captured (see ``record_refund``); returns what was refunded."""
    row = await record_refund(session, order, amount, actor=actor, reason=reason, source=source, lines=lines,
                              shipping=shipping)
    return row.amount_minor if row is not None else 0


async def record_refund(session: AsyncSession, order: Order, amount: int, *, actor: str, reason: str,
                        source: str = "cancellation", lines: Mapping[uuid.UUID, int] | None = None,
                        shipping: int = 0, exact: bool = False) -> Refund | None:
    """Give back ``amount`` of what was captured, on the order's refund ledger, ``lines`` (order
    line id → amount) and ``shipping`` being the parts of it given back on those. The caller holds
    the order row lock (SELECT … FOR UPDATE), so that concurrent refunds are counted one after
    the other: the order never refunds more than it captured, nor a line more than its net.

    ``exact`` (a refund someone asked for): anything beyond what is left is refused with a 422
    naming every problem, before anything is written. Otherwise (a cancellation's refund) the
    amount is cut to what is left and its parts to what each line and the shipping has left.
    Returns the refund written, or None when there was nothing to give back."""
    lines = dict(lines or {})
    left = await refundable(session, order)
    if exact:
        errors = refund_problems(order, amount, lines, shipping, left)
        if errors:
            raise invalid(errors, detail=next(iter(errors.values())))
    else:
        amount = min(amount, left.total)
        if amount <= 0:
            return None
        budget = amount
        for line_id, part in list(lines.items()):
            lines[line_id] = max(0, min(part, left.lines.get(line_id, 0), budget))
            budget -= lines[line_id]
        shipping = max(0, min(shipping, left.shipping, budget))
    order.refunded_minor += amount
    order.payment_status = "refunded" if order.refunded_minor >= order.captured_minor else "partially_refunded"
    through_stripe = order.payment_provider == "stripe"
    now = clock.now()
    row = Refund(tenant_id=order.tenant_id, id=uuid7(), order_id=order.id, amount_minor=amount,
                 currency=order.currency, provider=order.payment_provider or "external", reason=reason[:500],
                 status="pending" if through_stripe else "sent", created_by=actor, created_at=now,
                 sent_at=None if through_stripe else now, source=source, shipping_minor=shipping)
    session.add(row)
    session.add_all([RefundLine(tenant_id=order.tenant_id, id=uuid7(), refund_id=row.id, order_line_id=line_id,
                                amount_minor=part) for line_id, part in lines.items() if part > 0])
    lifecycle.record(session, order, "payment.refunded", actor=actor, amount_minor=amount, refund_id=str(row.id),
                     source=source, reason=f"{money(amount, order.currency)} refunded: {reason}")
    webhooks.emit(session, order.tenant_id, "refund.created", {
        "order_id": str(order.id), "number": order.number, "refund_id": str(row.id), "source": source,
        "amount_minor": amount, "currency": order.currency, "status": row.status, "reason": row.reason})
    if through_stripe:
        _send_refund(session, row)
    return row


def refund_problems(order: Order, amount: int, lines: Mapping[uuid.UUID, int], shipping: int, left: Refundable,
                    positions: Mapping[uuid.UUID, int] | None = None) -> dict[str, str]:
    """Every reason to refuse a refund someone asked for, by field, in plain words (``positions``:
    each line's place in the request, when not the order of ``lines``)."""
    errors: dict[str, str] = {}
    cur = order.currency
    if amount <= 0:
        errors["amount_minor"] = "Enter an amount above zero."
    elif amount > left.total:
        errors["amount_minor"] = (
            f"Only {money(max(left.total, 0), cur)} can still be refunded: {money(order.captured_minor, cur)} "
            f"captured, {money(order.refunded_minor, cur)} refunded already." if order.captured_minor else
            "Nothing was captured on this order yet, so there is nothing to refund.")
    for n, (line_id, part) in enumerate(lines.items()):
        i = positions.get(line_id, n) if positions else n
        if part <= 0:
            errors[f"lines[{i}].amount_minor"] = "Enter an amount above zero for the line."
        elif part > left.lines.get(line_id, 0):
            errors[f"lines[{i}].amount_minor"] = (
                f"This line can get back at most {money(max(left.lines.get(line_id, 0), 0), cur)} more "
                "(what the customer paid for it, less its earlier refunds).")
    if shipping < 0:
        errors["shipping_minor"] = "Enter an amount of zero or more for shipping."
    elif shipping > left.shipping:
        errors["shipping_minor"] = (f"Shipping can get back at most {money(max(left.shipping, 0), cur)} more "
                                    "(the shipping fee, less its earlier refunds).")
    if not errors and sum(lines.values()) + shipping > amount:
        errors["amount_minor"] = "The amounts of the lines and shipping add up to more than the refund."
    return errors


def _send_refund(session: AsyncSession, row: Refund) -> None:
    enqueue(session, refund_with_stripe, tenant_id=row.tenant_id, order_id=str(row.order_id),
            amount_minor=row.amount_minor, refund_id=str(row.id))


# --- Stripe ------------------------------------------------------------------------------------------

async def stripe_key(session: AsyncSession, tenant_id: uuid.UUID) -> str | None:
    account = await session.scalar(select(PaymentAccount).where(PaymentAccount.tenant_id == tenant_id,
                                                                PaymentAccount.provider == "stripe"))
    return account.secret_key if account else None


def _call(function: Any, *args: Any, **kwargs: Any) -> Any:
    """One Stripe call with the platform's base URL (a local fake in development and tests)."""
    base = get_settings().stripe_api_base
    if base:
        stripe.api_base = base
    return function(*args, **kwargs)


async def _locked(session: AsyncSession, tenant: uuid.UUID, order_id: str) -> Order | None:
    found: Order | None = await session.scalar(select(Order).where(
        Order.tenant_id == tenant, Order.id == uuid.UUID(order_id)).with_for_update())
    return found


def attempt_key(kind: str, item: str, attempt: int) -> str:
    """The idempotency key of a Stripe request. Stripe answers a key with its first answer for
    24 hours, refusals and its own errors included, so a retry after Stripe answered goes under a
    new key (the attempt's number), and only after asking Stripe whether the earlier attempt
    took effect after all (``_captured_at_stripe``, ``_refund_at_stripe``); after no answer at all
    (the network), the same key again, which is safe whether or not the request reached Stripe.
    A success is recorded and never retried."""
    return f"{kind}-{item}" if attempt == 0 else f"{kind}-{item}-{attempt}"


def _answered(exc: stripe.StripeError) -> bool:
    """Whether Stripe answered (and will answer the same key the same way) rather than the
    request being lost on the way."""
    return not isinstance(exc, stripe.APIConnectionError)


def _refusal(exc: stripe.StripeError) -> bool:
    """A refusal that asking again won't change: the request itself is wrong for Stripe (the
    intent can't be captured, the charge is already refunded). A key Stripe refuses is not one:
    the company can paste the right one, and the next attempt uses it."""
    return isinstance(exc, stripe.InvalidRequestError)


def _captured_at_stripe(key: str, reference: str) -> int | None:
    """What Stripe holds as captured on the PaymentIntent, if it was captured."""
    intent = _call(stripe.PaymentIntent.retrieve, reference, api_key=key).to_dict()
    return int(intent.get("amount_received") or 0) if intent.get("status") == "succeeded" else None


def _refund_at_stripe(key: str, reference: str, refund_id: str) -> bool:
    """Whether Stripe already holds this refund (each carries its row's id in its metadata)."""
    listed = _call(stripe.Refund.list, payment_intent=reference, limit=100, api_key=key).to_dict()
    return any((item.get("metadata") or {}).get("oms_refund_id") == refund_id
               for item in listed.get("data") or [])


def _capture(key: str, reference: str, order_id: str, amount: int, attempt: int, before: int) -> int:
    """Capture ``amount`` at Stripe, or find an earlier attempt's capture; returns what is newly
    captured (``before`` is what the order had captured already)."""
    if attempt > 0:
        already = _captured_at_stripe(key, reference)
        if already is not None:
            return max(already - before, 0)
    try:
        _call(stripe.PaymentIntent.capture, reference, amount_to_capture=amount, api_key=key,
              idempotency_key=attempt_key("capture", order_id, attempt))
    except stripe.InvalidRequestError:
        already = _captured_at_stripe(key, reference)  # "unexpected state": captured meanwhile?
        if already is not None:
            return max(already - before, 0)
        raise
    return amount


def _send(key: str, reference: str, refund_id: str, amount: int, attempt: int) -> None:
    if attempt > 0 and _refund_at_stripe(key, reference, refund_id):
        return
    _call(stripe.Refund.create, payment_intent=reference, amount=amount, metadata={"oms_refund_id": refund_id},
          api_key=key, idempotency_key=attempt_key("refund", refund_id, attempt))


@actor("payments.capture_stripe", queue="payments", max_retries=6, min_backoff_ms=10_000,
       max_backoff_ms=3_600_000)
async def capture_with_stripe(tenant_id: str, order_id: str) -> None:
    """Capture the order's PaymentIntent once: a captured order is left alone, and a retry finds
    Stripe's own record of an earlier capture (see ``attempt_key``). Units cancelled while the
    capture was on its way are refunded as soon as it is recorded."""
    tenant = uuid.UUID(tenant_id)
    async with get_database().transaction(tenant_id=tenant) as session:
        order = await _locked(session, tenant, order_id)
        if order is None or order.payment_status not in ("capture_pending", "capture_failed"):
            return
        amount = min(order.authorized_minor, await payable(session, order)) - order.captured_minor
        if amount <= 0:  # everything left was cancelled: nothing to ask Stripe for
            order.payment_status = "captured" if order.captured_minor else "none"
            lifecycle.record(session, order, "payment.nothing_to_capture", actor=ACTOR,
                             reason="nothing left to capture: the order's remaining units were cancelled")
            await service_tasks.close_if_open(session, order, "payment_capture_failed", "nothing left to capture",
                                              actor=ACTOR)
            return
        key, reference, attempt = await stripe_key(session, tenant), order.payment_reference, order.capture_attempts
        before = order.captured_minor
    error: str | None = None
    retry, answered, taken = True, False, 0
    if not key:
        error, retry = "no Stripe account is set up under Settings → Payments", False
    elif not reference:
        error, retry = "the order has no Stripe PaymentIntent to capture", False
    else:
        try:
            taken = await asyncio.to_thread(_capture, key, reference, order_id, amount, attempt, before)
        except stripe.StripeError as exc:
            error, answered = f"Stripe: {exc.user_message or exc}", _answered(exc)
            if _refusal(exc):
                error, retry = f"Stripe refused the capture: {exc.user_message or exc}", False
    async with get_database().transaction(tenant_id=tenant) as session:
        order = await _locked(session, tenant, order_id)
        if order is None or order.payment_status not in ("capture_pending", "capture_failed"):
            return
        if error is None:
            _captured(session, order, taken, actor=ACTOR, how=f"captured with Stripe ({reference})")
            await service_tasks.close_if_open(session, order, "payment_capture_failed",
                                              "captured on a later attempt", actor=ACTOR)
            excess = order.captured_minor - order.refunded_minor - await payable(session, order)
            if excess > 0:
                await refund(session, order, excess, actor=ACTOR,
                             reason="units cancelled while the capture was on its way")
            return
        if answered and order.capture_attempts == attempt:
            order.capture_attempts += 1
        order.payment_status = "capture_failed"
        lifecycle.record(session, order, "payment.capture_failed", actor=ACTOR, amount_minor=amount,
                         reason=f"{error}: customer service to follow up"
                                + (" (trying again later)" if retry else ""))
        await service_tasks.open_task(
            session, order, "payment_capture_failed", actor=ACTOR,
            detail=f"Capturing {money(amount, order.currency)} failed: {error}. "
                   + ("Stripe is asked again with growing delays. " if retry else "It won't be retried. ")
                   + "The rest of the order waits until it is captured or this task is resolved.")
    if retry:
        raise PaymentFailed(error)


@actor("payments.refund_stripe", queue="payments", max_retries=6, min_backoff_ms=10_000,
       max_backoff_ms=3_600_000)
async def refund_with_stripe(tenant_id: str, order_id: str, amount_minor: int, refund_id: str) -> None:
    """Send one recorded refund to Stripe, once: a sent refund is left alone, and a retry finds
    Stripe's own record of an earlier attempt (see ``attempt_key``). A refund Stripe refuses for
    good is marked failed and handed to customer service, who refund the customer another way."""
    tenant = uuid.UUID(tenant_id)
    async with get_database().transaction(tenant_id=tenant) as session:
        row = await _refund(session, tenant, refund_id)
        if row is None or row.status != "pending":
            return
        order = await session.scalar(select(Order).where(Order.tenant_id == tenant, Order.id == row.order_id))
        if order is None:
            return
        key, reference, attempt, amount_minor = (await stripe_key(session, tenant), order.payment_reference,
                                                 row.attempts, row.amount_minor)
    try:
        if not key:
            raise stripe.APIError("no Stripe account is set up under Settings → Payments")
        if not reference:
            raise stripe.InvalidRequestError("the order has no Stripe PaymentIntent to refund", None)  # type: ignore[no-untyped-call]
        await asyncio.to_thread(_send, key, reference, refund_id, amount_minor, attempt)
    except stripe.StripeError as exc:
        await _refund_failed(tenant, order_id, refund_id, amount_minor, attempt, exc)
        if not _refusal(exc):
            raise PaymentFailed(str(exc)) from exc
        return
    async with get_database().transaction(tenant_id=tenant) as session:
        order = await _locked(session, tenant, order_id)
        row = await _refund(session, tenant, refund_id, lock=True)
        if order is None or row is None or row.status == "sent":
            return
        abandoned = row.status != "pending"
        row.status, row.sent_at = "sent", clock.now()
        lifecycle.record(session, order, "payment.refund_sent", actor=ACTOR, amount_minor=amount_minor,
                         refund_id=refund_id, reason=f"{money(amount_minor, order.currency)} refunded with Stripe")
        if abandoned:  # customer service gave up on it while Stripe was taking it
            await service_tasks.open_task(
                session, order, "refund_failed", actor=ACTOR,
                detail=f"Stripe took the refund of {money(amount_minor, order.currency)} after its task was "
                       "resolved: check the customer wasn't refunded twice.")
            return
        await service_tasks.close_if_open(session, order, "refund_failed", "refund sent on a later attempt",
                                          actor=ACTOR)


async def _refund_failed(tenant: uuid.UUID, order_id: str, refund_id: str, amount_minor: int, attempt: int,
                         exc: stripe.StripeError) -> None:
    """Record a failed attempt, unless the refund was settled meanwhile: on the order's timeline,
    and as a customer-service task."""
    final = _refusal(exc)
    async with get_database().transaction(tenant_id=tenant) as session:
        order = await _locked(session, tenant, order_id)
        row = await _refund(session, tenant, refund_id, lock=True)
        if order is None or row is None or row.status != "pending":
            return
        if _answered(exc) and row.attempts == attempt:
            row.attempts += 1
        if final:
            row.status = "failed"
        why = exc.user_message or str(exc)
        lifecycle.record(session, order, "payment.refund_failed", actor=ACTOR, amount_minor=amount_minor,
                         refund_id=refund_id, reason=f"Stripe: {why}: customer service to follow up")
        await service_tasks.open_task(
            session, order, "refund_failed", actor=ACTOR,
            detail=f"Refunding {money(amount_minor, order.currency)} failed: {why}. "
                   + ("Stripe refused it for good: refund the customer another way." if final else
                      "Stripe is asked again with growing delays; refund the customer another way if it "
                      "keeps failing, and resolve this task to stop the retries."))


async def _refund(session: AsyncSession, tenant: uuid.UUID, refund_id: str, *, lock: bool = False) -> Refund | None:
    statement = select(Refund).where(Refund.tenant_id == tenant, Refund.id == uuid.UUID(refund_id))
    found: Refund | None = await session.scalar(statement.with_for_update() if lock else statement)
    return found


@pending_work("payments.capture", "Stripe captures waiting", table=Order.__table__,
              pending=Order.payment_status == "capture_pending", since=Order.updated_at,
              threshold=timedelta(minutes=5))
async def _capture_again(session: AsyncSession, tenant_id: uuid.UUID, order_ids: list[uuid.UUID]) -> None:
    for order_id in order_ids:
        enqueue(session, capture_with_stripe, tenant_id=tenant_id, order_id=str(order_id))


@pending_work("payments.refund", "Stripe refunds waiting", table=Refund.__table__,
              pending=Refund.status == "pending", since=Refund.created_at, threshold=timedelta(minutes=5))
async def _refund_again(session: AsyncSession, tenant_id: uuid.UUID, refund_ids: list[uuid.UUID]) -> None:
    for row in await session.scalars(select(Refund).where(Refund.tenant_id == tenant_id, Refund.id.in_(refund_ids))):
        _send_refund(session, row)


def masked(key: str) -> str:
    return f"{key[:8]}…{key[-4:]}"


async def save_stripe(session: AsyncSession, principal: Principal, key: str) -> PaymentAccount:
    key = key.strip()
    if not key.startswith(("sk_", "rk_")) or not 12 <= len(key) <= 300:  # 300: its column
        raise invalid({"secret_key": "Paste a Stripe secret or restricted key (it starts with sk_ or rk_)."})
    account = await session.scalar(select(PaymentAccount).where(PaymentAccount.tenant_id == principal.tenant_id,
                                                                PaymentAccount.provider == "stripe"))
    if account is None:
        account = PaymentAccount(tenant_id=principal.tenant_id, id=uuid7(), provider="stripe", secret_key=key)
        session.add(account)
    account.secret_key = key
    account.updated_by = principal.label
    await audit(session, principal.tenant_id, Actor.of(principal), "payments.stripe_key_set", target=masked(key))
    await session.flush()
    return account


async def stripe_account(session: AsyncSession, principal: Principal) -> PaymentAccount | None:
    found: PaymentAccount | None = await session.scalar(select(PaymentAccount).where(
        PaymentAccount.tenant_id == principal.tenant_id, PaymentAccount.provider == "stripe"))
    return found
