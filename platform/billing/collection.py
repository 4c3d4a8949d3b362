"""Collecting the platform's invoices through its own Stripe account.

Each company is a Stripe customer (metadata ``tenant_id``) with one card on file, saved with a
SetupIntent for use off-session. Each invoice is charged by a PaymentIntent created and confirmed
off-session, keyed for idempotency by the invoice number on the first attempt and
``{number}-retry-{n}`` on retry ``n``: an attempt whose answer was lost is asked again under the
same key and gets Stripe's first answer, never a second charge. The attempt's number also travels
in the PaymentIntent's metadata, so that the webhook and the actor record a failure once between
them. A PaymentIntent still under way ("processing") is remembered on the invoice, and the sweep
asks Stripe for its outcome instead of charging again.

Credit notes and payments cross: a credit note issued while its invoice is unpaid is "applied" (the
invoice collects less); one issued on an invoice paid by Stripe is "issued" and refunds its
PaymentIntent (keyed by the credit note's number). A payment that took more than is now due (a
credit note applied while it was under way) turns the newest applied credit notes into refunds of
that excess.

Stripe is never called with a row locked: the actors read what they need, commit, call Stripe,
then lock the row again and record the answer only if nothing else recorded it meanwhile; the
card-on-file functions call Stripe first and lock the account only to write.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import stripe
import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing import accounts, config, dunning
from billing.models import BillingAccount, Invoice
from core import clock
from core.auth import Principal
from core.broker import actor
from core.db import get_database
from core.outbox import enqueue
from core.problems import ProblemError, invalid
from core.settings import get_settings
from tenants.service import Actor, audit, tenant_profile

log = structlog.get_logger(__name__)

ACTOR = "billing"
UNDER_WAY = ("processing", "requires_action")  # a PaymentIntent whose outcome is still to come
NEEDS_AUTHENTICATION = "the bank asks the card holder to authenticate this payment"
REPEATED_REQUEST = "Stripe would not repeat an earlier payment request for this invoice"


def configured() -> bool:
    """Whether the platform collects through Stripe (without a key, invoices are local only)."""
    return config.stripe_secret_key() is not None


async def schedule(session: AsyncSession, invoice: Invoice) -> None:
    """Collect the invoice after the caller's commit."""
    enqueue(session, collect_invoice, tenant_id=invoice.tenant_id, invoice_id=str(invoice.id))


async def schedule_refund(session: AsyncSession, credit_note: Invoice) -> None:
    """Refund the credit note through Stripe after the caller's commit."""
    enqueue(session, refund_credit_note, tenant_id=credit_note.tenant_id, credit_note_id=str(credit_note.id))


def _stripe(function: Any, *args: Any, **kwargs: Any) -> Any:
    """One call to Stripe with the platform's key, at the platform's base URL (a local fake in
    development and tests). Blocking: run it in a thread."""
    base = get_settings().stripe_api_base
    if base:
        stripe.api_base = base
    return function(*args, api_key=config.stripe_secret_key(), **kwargs)


async def stripe_call(function: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(_stripe, function, *args, **kwargs)


def attempt_key(number: str, attempt: int) -> str:
    return number if attempt == 0 else f"{number}-retry-{attempt}"


# --- the account's customer and card -------------------------------------------------------------

def _refused(exc: stripe.StripeError, field: str = "number") -> ProblemError:
    """Stripe's refusal of a card, or its absence, in plain words."""
    words = exc.user_message or str(exc)
    if isinstance(exc, stripe.CardError):
        return invalid({field: f"The card was refused: {words}"}, detail="The card was refused.")
    if isinstance(exc, stripe.InvalidRequestError):
        if getattr(exc, "code", None) == "invalid_expiry_year":
            return invalid({"exp_year": "Stripe does not accept this expiry year."})
        return invalid({field: f"Stripe did not accept this card: {words}"})
    return ProblemError(status=503, title="Stripe is unavailable",
                        detail="Stripe could not be reached, so no card was saved. Try again in a minute.")


async def _customer_id(session: AsyncSession, account: BillingAccount) -> str:
    """The company's Stripe customer, made the first time (nothing is written here: see
    ``_locked_with_customer``). Its idempotency key makes two concurrent first times one customer."""
    if account.stripe_customer_id:
        return account.stripe_customer_id
    tenant = await tenant_profile(session, account.tenant_id)
    name = account.legal_name or (tenant.name if tenant is not None else "")
    try:
        customer = await stripe_call(stripe.Customer.create, name=name or None, email=account.billing_email or None,
                                     metadata={"tenant_id": str(account.tenant_id)},
                                     idempotency_key=f"customer-{account.tenant_id}")
    except stripe.StripeError as exc:
        raise _refused(exc) from exc
    return str(customer.id)


async def _locked_with_customer(session: AsyncSession, tenant_id: uuid.UUID, customer_id: str) -> BillingAccount:
    """The account, locked to write, with the Stripe customer the calls just used: the first one
    recorded stays, and one that differs (made concurrently) asks to try again."""
    account = await accounts.account_of(session, tenant_id, lock=True)
    if account.stripe_customer_id is None:
        account.stripe_customer_id = customer_id
    elif account.stripe_customer_id != customer_id:
        raise ProblemError(status=409, title="Conflict",
                           detail="The card was being set up twice at the same time: try again.")
    return account


async def store_card(session: AsyncSession, account: BillingAccount, method: Any, actor: Actor) -> None:
    card = method.card
    account.payment_method_id = str(method.id)
    account.card_brand = str(card.brand)[:20]
    account.card_last4 = str(card.last4)[:4]
    account.card_expires = f"{int(card.exp_month):02d}/{int(card.exp_year)}"
    await audit(session, account.tenant_id, actor, "billing.card_saved",
                target=f"{account.card_brand} ending {account.card_last4}", expires=account.card_expires)


def _digits(value: str) -> bool:
    """Only the digits 0 to 9 (``str.isdigit`` also takes "²" and other scripts' digits)."""
    return value.isascii() and value.isdigit()


def _card_problems(number: str, exp_month: int, exp_year: int, cvc: str) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not _digits(number) or len(number) != 16:
        errors["number"] = "Enter the card's 16 digits."
    elif sum(int(d) if i % 2 == 0 else sum(divmod(int(d) * 2, 10)) for i, d in enumerate(reversed(number))) % 10:
        errors["number"] = "This card number is not valid: check its digits."
    if not 1 <= exp_month <= 12:
        errors["exp_month"] = "Enter the expiry month, from 1 to 12."
    now = clock.now()
    if not now.year <= exp_year <= now.year + 30:
        errors["exp_year"] = f"Enter the expiry year, from {now.year}."
    elif "exp_month" not in errors and (exp_year, exp_month) < (now.year, now.month):
        errors["exp_month"] = "This card has expired."
    if not _digits(cvc) or len(cvc) != 3:
        errors["cvc"] = "Enter the 3 digits on the back of the card."
    return errors


async def save_test_card(session: AsyncSession, principal: Principal, *, number: str, exp_month: int,
                         exp_year: int, cvc: str, ip: str | None = None) -> BillingAccount:
    """Save a test card typed into our own form, only against a fake Stripe: a PaymentMethod made
    there, attached to the company's customer and confirmed by a SetupIntent for off-session use.
    Invoices whose payment failed are then tried again at once."""
    if not config.test_cards_allowed():
        raise ProblemError(status=404, title="Not found",
                           detail="Cards are entered in Stripe's own form: this one serves tests only.")
    _admins(principal)
    number, cvc = "".join(number.split()), cvc.strip()
    exp_year = exp_year + 2000 if 0 <= exp_year < 100 else exp_year
    errors = _card_problems(number, exp_month, exp_year, cvc)
    if errors:
        raise invalid(errors, detail=next(iter(errors.values())))
    customer = await _customer_id(session, await accounts.account_of(session, principal.tenant_id))
    try:
        method = await stripe_call(stripe.PaymentMethod.create, type="card", card={
            "number": number, "exp_month": exp_month, "exp_year": exp_year, "cvc": cvc})
        await stripe_call(stripe.PaymentMethod.attach, method.id, customer=customer)
        intent = await stripe_call(stripe.SetupIntent.create, customer=customer, usage="off_session",
                                   payment_method_types=["card"], metadata={"tenant_id": str(principal.tenant_id)})
        intent = await stripe_call(stripe.SetupIntent.confirm, intent.id, payment_method=method.id)
    except stripe.StripeError as exc:
        raise _refused(exc) from exc
    if intent.status != "succeeded":
        raise invalid({"number": "The bank asks the card holder to confirm this card: use another card."})
    account = await _locked_with_customer(session, principal.tenant_id, customer)
    await store_card(session, account, method, Actor.of(principal, ip))
    await retry_now(session, principal.tenant_id)
    return account


def _admins(principal: Principal) -> None:
    if not principal.is_admin:
        raise ProblemError(status=403, title="Forbidden", detail="Only owners and admins manage billing.")


async def setup_intent_secret(session: AsyncSession, principal: Principal) -> str:
    """A SetupIntent's client secret for Stripe Elements, on the company's customer."""
    _admins(principal)
    customer = await _customer_id(session, await accounts.account_of(session, principal.tenant_id))
    try:
        intent = await stripe_call(stripe.SetupIntent.create, customer=customer, usage="off_session",
                                   payment_method_types=["card"], metadata={"tenant_id": str(principal.tenant_id)})
    except stripe.StripeError as exc:
        raise _refused(exc, "card") from exc
    await _locked_with_customer(session, principal.tenant_id, customer)
    return str(intent.client_secret)


async def finish_setup(session: AsyncSession, principal: Principal, setup_intent_id: str, *,
                       ip: str | None = None) -> BillingAccount:
    """Store the card a SetupIntent confirmed in the browser, once it is checked to be the
    company's own and to have succeeded; failed invoices are then tried again at once."""
    _admins(principal)
    if not setup_intent_id.startswith("seti_") or len(setup_intent_id) > 255:
        raise invalid({"setup_intent": "This is not a card setup from this page."})
    try:
        intent = await stripe_call(stripe.SetupIntent.retrieve, setup_intent_id)
    except stripe.StripeError as exc:
        if isinstance(exc, stripe.InvalidRequestError):
            raise invalid({"setup_intent": "Stripe does not know this card setup."}) from exc
        raise _refused(exc, "card") from exc
    _check_customer(await accounts.account_of(session, principal.tenant_id), intent)
    if intent.status != "succeeded" or not intent.payment_method:
        raise invalid({"card": "The card was not confirmed: try again, or use another card."})
    method_id = intent.payment_method if isinstance(intent.payment_method, str) else intent.payment_method.id
    try:
        method = await stripe_call(stripe.PaymentMethod.retrieve, method_id)
    except stripe.StripeError as exc:
        raise _refused(exc, "card") from exc
    account = await accounts.account_of(session, principal.tenant_id, lock=True)
    _check_customer(account, intent)  # again, under the lock: it may have changed meanwhile
    await store_card(session, account, method, Actor.of(principal, ip))
    await retry_now(session, principal.tenant_id)
    return account


def _check_customer(account: BillingAccount, intent: Any) -> None:
    if not account.stripe_customer_id or intent.customer != account.stripe_customer_id:
        raise invalid({"setup_intent": "This card setup is not this company's."})


async def retry_now(session: AsyncSession, tenant_id: uuid.UUID) -> int:
    """Try every open invoice whose payment failed again now (a new card); returns how many."""
    invoices = list(await session.scalars(select(Invoice).where(
        Invoice.tenant_id == tenant_id, Invoice.kind == "invoice", Invoice.status == "open",
        Invoice.local_only.is_(False), Invoice.first_failed_at.is_not(None),
        Invoice.payment_intent_id.is_(None)).with_for_update()))
    now = clock.now()
    for invoice in invoices:
        invoice.next_attempt_at = now
        await schedule(session, invoice)
    return len(invoices)


# --- what a payment's outcome changes --------------------------------------------------------------

def due_minor(invoice: Invoice) -> int:
    """What the invoice still asks for: its total less its credit notes."""
    return invoice.total_minor - invoice.credited_minor


def refund_minor(note: Invoice) -> int:
    """What a credit note refunds through Stripe: the part of it not applied to its invoice."""
    return note.total_minor - note.credited_minor


def in_flight(invoice: Invoice) -> bool:
    """A PaymentIntent of the invoice's is under way (its outcome not recorded yet)."""
    return (invoice.kind == "invoice" and invoice.status in ("open", "credited")
            and invoice.payment_intent_id is not None)


async def record_paid(session: AsyncSession, tenant_id: uuid.UUID, invoice: Invoice, *, payment_intent_id: str,
                      received_minor: int, how: str) -> bool:
    """Record a PaymentIntent that succeeded (the caller holds the invoice's row lock), once; also
    when credit notes meanwhile credited the invoice in full. What it took beyond what is due now
    is refunded. Every restriction goes when no failed invoice is left unpaid. True if recorded."""
    recorded = invoice.status != "paid"
    if not recorded:
        if invoice.payment_intent_id != payment_intent_id:
            log.error("billing.paid_twice", invoice=invoice.number, recorded=invoice.payment_intent_id,
                      other=payment_intent_id, amount=received_minor)
    else:
        excess = received_minor - due_minor(invoice)
        invoice.status, invoice.paid_at, invoice.next_attempt_at = "paid", clock.now(), None
        invoice.payment_intent_id = payment_intent_id
        await audit(session, tenant_id, Actor(ACTOR), "billing.invoice_paid", target=invoice.number, how=how,
                    total_minor=invoice.total_minor, received_minor=received_minor, currency=invoice.currency)
        if excess > 0:
            await _refund_excess(session, tenant_id, invoice, excess)
    await dunning.reinstate_if_clear(session, tenant_id, actor_label=ACTOR)
    return recorded


async def _refund_excess(session: AsyncSession, tenant_id: uuid.UUID, invoice: Invoice, excess: int) -> None:
    """Turn the invoice's newest applied credit notes into refunds, up to ``excess`` exactly (the
    last one partly, its applied part recorded in its ``credited_minor``)."""
    notes = await session.scalars(select(Invoice).where(
        Invoice.tenant_id == tenant_id, Invoice.kind == "credit_note", Invoice.credited_invoice_id == invoice.id,
        Invoice.status == "applied").order_by(Invoice.issued_at.desc(), Invoice.sequence.desc()).with_for_update())
    left = excess
    for note in notes:
        if left <= 0:
            break
        amount = min(note.credited_minor, left)
        note.status, note.credited_minor = "issued", note.credited_minor - amount
        left -= amount
        await audit(session, tenant_id, Actor(ACTOR), "billing.credit_note_to_refund", target=note.number,
                    invoice=invoice.number, amount_minor=amount, currency=note.currency)
        await schedule_refund(session, note)
    if left > 0:
        log.error("billing.payment_exceeds_total", invoice=invoice.number, excess=excess, unexplained=left)


async def record_failed(session: AsyncSession, tenant_id: uuid.UUID, invoice: Invoice, error: str) -> None:
    """Record a PaymentIntent that failed (the caller holds the invoice's row lock): a failed
    attempt for the dunning, unless credit notes meanwhile left nothing to pay."""
    invoice.payment_intent_id = None
    if invoice.status == "open":
        await dunning.record_failure(session, tenant_id, invoice, error)
        await dunning.advance(session, tenant_id)


@dataclass(frozen=True)
class Outcome:
    """A PaymentIntent's answer, as recorded."""

    intent_id: str
    status: str
    received_minor: int
    error: str


def outcome_of(intent: dict[str, Any], *, error: str | None = None) -> Outcome:
    amount = int(intent.get("amount_received") or intent.get("amount") or 0)
    words = (intent.get("last_payment_error") or {}).get("message")
    if intent.get("status") == "canceled":
        words = words or "the payment was canceled"
    return Outcome(str(intent.get("id")), str(intent.get("status")), amount,
                   str(error or words or "the payment failed"))


async def record_outcome(session: AsyncSession, tenant_id: uuid.UUID, invoice: Invoice, outcome: Outcome) -> None:
    """Record a PaymentIntent's answer on its invoice (the caller holds the row lock and has
    checked the answer is the invoice's latest): paid, still under way, or failed."""
    if outcome.status == "succeeded":
        await record_paid(session, tenant_id, invoice, payment_intent_id=outcome.intent_id,
                          received_minor=outcome.received_minor, how="card")
    elif invoice.status not in ("open", "credited"):
        return
    elif outcome.status in UNDER_WAY:
        invoice.payment_intent_id, invoice.next_attempt_at = outcome.intent_id, None
    else:
        await record_failed(session, tenant_id, invoice, outcome.error)


# --- collecting ------------------------------------------------------------------------------------

async def locked_invoice(session: AsyncSession, tenant_id: uuid.UUID, invoice_id: uuid.UUID) -> Invoice | None:
    found: Invoice | None = await session.scalar(select(Invoice).where(
        Invoice.tenant_id == tenant_id, Invoice.id == invoice_id).with_for_update()
        .execution_options(populate_existing=True))
    return found


def collectable(invoice: Invoice, now: datetime) -> bool:
    """Open, collected through Stripe, with something to pay, no payment under way, and its
    attempt due (the first one is due as soon as the invoice is issued)."""
    if (invoice.kind != "invoice" or invoice.status != "open" or invoice.local_only or due_minor(invoice) <= 0
            or invoice.payment_intent_id is not None):
        return False
    if invoice.next_attempt_at is None:
        return invoice.attempts == 0 and invoice.first_failed_at is None
    return invoice.next_attempt_at <= now


@dataclass(frozen=True)
class _Attempt:
    tenant_id: str
    invoice_id: str
    number: str
    attempt: int
    amount: int
    currency: str
    customer: str
    payment_method: str


def _charge(attempt: _Attempt) -> Any:
    return _stripe(stripe.PaymentIntent.create, amount=attempt.amount, currency=attempt.currency.lower(),
                   customer=attempt.customer, payment_method=attempt.payment_method, off_session=True, confirm=True,
                   metadata={"tenant_id": attempt.tenant_id, "invoice_id": attempt.invoice_id,
                             "number": attempt.number, "attempt": str(attempt.attempt)},
                   idempotency_key=attempt_key(attempt.number, attempt.attempt))


@actor("billing.collect_invoice", queue="billing", max_retries=6, min_backoff_ms=30_000, max_backoff_ms=3_600_000)
async def collect_invoice(tenant_id: str, invoice_id: str) -> None:
    await collect(tenant_id, invoice_id)


async def collect(tenant_id: str, invoice_id: str) -> None:
    """Charge what the invoice still asks for to the card on file, if its attempt is due; or, when
    a payment is under way, ask Stripe how it ended. A refusal is a failed attempt (dunning takes
    over); Stripe out of reach raises, so the message is retried."""
    tenant, invoice_uuid = uuid.UUID(tenant_id), uuid.UUID(invoice_id)
    if not configured():
        return
    async with get_database().transaction(tenant_id=tenant) as session:
        attempt = await _next_step(session, tenant, invoice_uuid)
    if isinstance(attempt, str):
        await _settle(tenant, invoice_uuid, attempt)
    elif attempt is not None:
        await _attempt(tenant, invoice_uuid, attempt)


async def _next_step(session: AsyncSession, tenant: uuid.UUID, invoice_id: uuid.UUID) -> _Attempt | str | None:
    """What collecting the invoice calls for now: the PaymentIntent under way to ask about (its
    id), a charge to attempt, or nothing (a missing card is recorded as a failed attempt here)."""
    invoice = await locked_invoice(session, tenant, invoice_id)
    if invoice is None:
        return None
    if in_flight(invoice):
        return str(invoice.payment_intent_id)
    if not collectable(invoice, clock.now()):
        return None
    account = await accounts.account_of(session, tenant)
    if not account.stripe_customer_id or not account.payment_method_id:
        await dunning.record_failure(session, tenant, invoice, "no card on file")
        await dunning.advance(session, tenant)
        return None
    return _Attempt(str(tenant), str(invoice_id), invoice.number, invoice.attempts, due_minor(invoice),
                    invoice.currency, account.stripe_customer_id, account.payment_method_id)


async def _attempt(tenant: uuid.UUID, invoice_id: uuid.UUID, attempt: _Attempt) -> None:
    outcome: Outcome | None = None
    error = "the payment failed"
    try:
        outcome = outcome_of((await asyncio.to_thread(_charge, attempt)).to_dict())
    except stripe.IdempotencyError:
        error = REPEATED_REQUEST
    except (stripe.CardError, stripe.InvalidRequestError) as exc:
        error = exc.user_message or str(exc)
    async with get_database().transaction(tenant_id=tenant) as session:
        invoice = await locked_invoice(session, tenant, invoice_id)
        if invoice is None:
            return
        if outcome is not None and outcome.status == "succeeded":
            await record_outcome(session, tenant, invoice, outcome)  # whatever happened meanwhile
        elif (invoice.status not in ("open", "credited") or invoice.attempts != attempt.attempt
              or invoice.payment_intent_id is not None):
            return  # paid or failed meanwhile (the webhook, another delivery): recorded once
        elif outcome is not None:
            await record_outcome(session, tenant, invoice, outcome)
        else:
            await record_failed(session, tenant, invoice, error)


async def _settle(tenant: uuid.UUID, invoice_id: uuid.UUID, intent_id: str) -> None:
    """Record how a PaymentIntent under way ended. One waiting for the card holder to
    authenticate is cancelled: nobody is there off-session, and the dunning's retries follow."""
    error: str | None = None
    try:
        found = (await stripe_call(stripe.PaymentIntent.retrieve, intent_id)).to_dict()
        if found.get("status") == "requires_action":
            try:
                found = (await stripe_call(stripe.PaymentIntent.cancel, intent_id)).to_dict()
                error = NEEDS_AUTHENTICATION
            except stripe.InvalidRequestError:  # it moved on meanwhile
                found = (await stripe_call(stripe.PaymentIntent.retrieve, intent_id)).to_dict()
    except stripe.InvalidRequestError as exc:  # Stripe does not know it: nothing was charged
        found, error = {"id": intent_id, "status": "unknown"}, f"Stripe does not know the payment: {exc}"
    async with get_database().transaction(tenant_id=tenant) as session:
        invoice = await locked_invoice(session, tenant, invoice_id)
        if invoice is None or not in_flight(invoice) or invoice.payment_intent_id != intent_id:
            return  # recorded meanwhile (the webhook)
        await record_outcome(session, tenant, invoice, outcome_of(found, error=error))


# --- refunds -----------------------------------------------------------------------------------------

@actor("billing.refund_credit_note", queue="billing", max_retries=6, min_backoff_ms=30_000,
       max_backoff_ms=3_600_000)
async def refund_credit_note(tenant_id: str, credit_note_id: str) -> None:
    await refund(tenant_id, credit_note_id)


@dataclass(frozen=True)
class _Refund:
    number: str
    wanted: int
    already: int  # refunded on the same payment by the invoice's other credit notes
    payment_intent_id: str


async def _refund_to_make(session: AsyncSession, tenant: uuid.UUID, note_id: uuid.UUID) -> _Refund | None:
    note = await locked_invoice(session, tenant, note_id)
    if note is None or note.kind != "credit_note" or note.status != "issued" or note.credited_invoice_id is None:
        return None
    invoice = await session.scalar(select(Invoice).where(Invoice.tenant_id == tenant,
                                                         Invoice.id == note.credited_invoice_id))
    if invoice is None or invoice.status != "paid" or not invoice.payment_intent_id:
        note.last_error = "There is no card payment to refund on its invoice: refund it by other means."
        return None
    others = await session.scalars(select(Invoice).where(
        Invoice.tenant_id == tenant, Invoice.kind == "credit_note", Invoice.credited_invoice_id == invoice.id,
        Invoice.status == "refunded"))
    return _Refund(note.number, refund_minor(note), sum(refund_minor(other) for other in others),
                   invoice.payment_intent_id)


async def refund(tenant_id: str, credit_note_id: str) -> None:
    """Refund a credit note's refundable part on its invoice's PaymentIntent, once (keyed by its
    number), never more than the payment took less what is refunded on it already."""
    tenant, note_id = uuid.UUID(tenant_id), uuid.UUID(credit_note_id)
    if not configured():
        return
    async with get_database().transaction(tenant_id=tenant) as session:
        planned = await _refund_to_make(session, tenant, note_id)
    if planned is None:
        return
    made: Any = None
    amount, error = 0, "Nothing is left to refund on the payment."
    try:
        payment = outcome_of((await stripe_call(stripe.PaymentIntent.retrieve, planned.payment_intent_id)).to_dict())
        received = payment.received_minor if payment.status == "succeeded" else 0
        amount = min(planned.wanted, received - planned.already)
        if amount > 0:
            made = await stripe_call(stripe.Refund.create, payment_intent=planned.payment_intent_id, amount=amount,
                                     metadata={"tenant_id": tenant_id, "credit_note_id": credit_note_id,
                                               "number": planned.number},
                                     idempotency_key=planned.number)
    except (stripe.InvalidRequestError, stripe.IdempotencyError) as exc:  # refused: trying again changes nothing
        error = f"Stripe refused the refund: {exc.user_message or exc}"
    async with get_database().transaction(tenant_id=tenant) as session:
        note = await locked_invoice(session, tenant, note_id)
        if note is None or note.status != "issued":
            return
        if made is not None:
            await refunded(session, tenant, note, str(made.id), amount_minor=amount)
            return
        note.last_error = error[:500]
        await audit(session, tenant, Actor(ACTOR), "billing.refund_failed", target=note.number, error=error)


async def refunded(session: AsyncSession, tenant_id: uuid.UUID, note: Invoice, refund_id: str, *,
                   amount_minor: int | None = None) -> None:
    """Record a credit note refunded through Stripe (the caller holds its row lock); once only.
    A refund of less than its refundable part leaves the rest recorded as applied."""
    if note.status != "issued":
        return
    if amount_minor is not None and 0 < amount_minor < refund_minor(note):
        note.credited_minor = note.total_minor - amount_minor
    note.status, note.stripe_refund_id, note.last_error = "refunded", refund_id, None
    await audit(session, tenant_id, Actor(ACTOR), "billing.credit_note_refunded", target=note.number,
                refund=refund_id, refund_minor=refund_minor(note), total_minor=note.total_minor,
                currency=note.currency)
