"""``POST /webhooks/stripe``: the platform's Stripe account tells what happened to its payments.

The signature is checked first (a bad or missing one: 400, nothing written). Each event is kept by
its id in ``stripe_events`` in the same transaction as its effect, inserted with ON CONFLICT DO
NOTHING: a replay finds the row and changes nothing. The company an event concerns is named by
the ``tenant_id`` the platform put in the metadata of what it created (PaymentIntents,
SetupIntents, refunds); its effect runs in that company's scope. A PaymentIntent's event changes
an invoice only once checked against it (the company's customer, the invoice's number, an amount
within its total). Types not consumed are acknowledged and logged, as "ignored".
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import stripe
import structlog
from litestar import Request, Response, post
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from billing import accounts, collection, config
from billing.models import BillingAccount, Invoice, StripeEvent
from core.db import get_database, set_scope
from core.problems import ProblemError, problem_response
from tenants.service import Actor

log = structlog.get_logger(__name__)

Handler = Callable[[AsyncSession, uuid.UUID, dict[str, Any]], Awaitable[str]]


def _tenant(metadata: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str((metadata or {}).get("tenant_id")))
    except ValueError:
        return None


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


async def _intents_invoice(session: AsyncSession, tenant_id: uuid.UUID,
                           intent: dict[str, Any]) -> tuple[Invoice | None, str]:
    """The invoice a PaymentIntent event is about, locked, once the intent is checked to be the
    platform's charge of it: the company's own customer, the invoice's number, and no more than
    the invoice's total (the metadata alone is not trusted). Else why not."""
    metadata = intent.get("metadata") or {}
    invoice_id = _uuid(metadata.get("invoice_id"))
    invoice = await collection.locked_invoice(session, tenant_id, invoice_id) if invoice_id else None
    if invoice is None or invoice.kind != "invoice":
        return None, "no such invoice"
    customer = await session.scalar(select(BillingAccount.stripe_customer_id).where(
        BillingAccount.tenant_id == tenant_id))
    amount = int(intent.get("amount") or 0)
    if (not customer or intent.get("customer") != customer or str(metadata.get("number")) != invoice.number
            or not 0 < amount <= invoice.total_minor):
        log.warning("billing.stripe_intent_not_this_invoice", invoice=invoice.number, intent=intent.get("id"))
        return None, "ignored: not this invoice"
    return invoice, ""


async def _payment_succeeded(session: AsyncSession, tenant_id: uuid.UUID, intent: dict[str, Any]) -> str:
    invoice, why_not = await _intents_invoice(session, tenant_id, intent)
    if invoice is None:
        return why_not
    outcome = collection.outcome_of({**intent, "status": "succeeded"})
    if invoice.status == "paid":
        await collection.record_paid(session, tenant_id, invoice, payment_intent_id=outcome.intent_id,
                                     received_minor=outcome.received_minor, how="card (Stripe notification)")
        return f"invoice {invoice.number} already paid"
    if invoice.status not in ("open", "credited"):
        return f"invoice {invoice.number} is {invoice.status}"
    due = collection.due_minor(invoice)
    if outcome.received_minor < due or str(intent.get("currency", "")).upper() != invoice.currency.upper():
        log.warning("billing.stripe_amount_mismatch", invoice=invoice.number, received=outcome.received_minor,
                    due=due)
        return f"amount {outcome.received_minor} does not match invoice {invoice.number}"
    await collection.record_paid(session, tenant_id, invoice, payment_intent_id=outcome.intent_id,
                                 received_minor=outcome.received_minor, how="card (Stripe notification)")
    return f"invoice {invoice.number} paid"


async def _payment_failed(session: AsyncSession, tenant_id: uuid.UUID, intent: dict[str, Any]) -> str:
    invoice, why_not = await _intents_invoice(session, tenant_id, intent)
    if invoice is None:
        return why_not
    attempt = str((intent.get("metadata") or {}).get("attempt", ""))
    if (invoice.status not in ("open", "credited") or (attempt.isdigit() and int(attempt) != invoice.attempts)
            or invoice.payment_intent_id not in (None, intent.get("id"))):
        return f"invoice {invoice.number}: attempt already recorded"
    error = (intent.get("last_payment_error") or {}).get("message") or "the payment failed"
    await collection.record_failed(session, tenant_id, invoice, str(error))
    return f"invoice {invoice.number}: failure recorded"


async def _refund(session: AsyncSession, tenant_id: uuid.UUID, refund: dict[str, Any]) -> str:
    note_id = _uuid((refund.get("metadata") or {}).get("credit_note_id"))
    note = await collection.locked_invoice(session, tenant_id, note_id) if note_id else None
    if note is None or note.kind != "credit_note":
        return "no such credit note"
    if refund.get("status") in ("failed", "canceled"):
        if note.status == "issued":
            note.last_error = f"Stripe: the refund {refund.get('status')}"
        return f"credit note {note.number}: refund {refund.get('status')}"
    if note.status != "issued":
        return f"credit note {note.number} already {note.status}"
    amount = refund.get("amount")
    await collection.refunded(session, tenant_id, note, str(refund.get("id")),
                              amount_minor=int(amount) if isinstance(amount, int) else None)
    return f"credit note {note.number} refunded"


async def _charge_refunded(session: AsyncSession, tenant_id: uuid.UUID, charge: dict[str, Any]) -> str:
    refunds = (charge.get("refunds") or {}).get("data") or []
    outcomes = [await _refund(session, tenant_id, refund) for refund in refunds
                if _tenant(refund.get("metadata")) == tenant_id]
    return "; ".join(outcomes)[:200] or "no credit note named"


async def _setup_succeeded(session: AsyncSession, tenant_id: uuid.UUID, intent: dict[str, Any]) -> str:
    """Store the card a SetupIntent confirmed, when the company has none: read, ask Stripe for the
    card, then lock the account and check again before writing."""
    account = await session.scalar(select(BillingAccount).where(BillingAccount.tenant_id == tenant_id))
    if account is None or not account.stripe_customer_id or intent.get("customer") != account.stripe_customer_id:
        return "not this company's customer"
    if account.payment_method_id:
        return "a card is on file already"
    method_id = intent.get("payment_method")
    if isinstance(method_id, dict):
        method_id = method_id.get("id")
    if not method_id:
        return "no payment method"
    method = await collection.stripe_call(stripe.PaymentMethod.retrieve, str(method_id))
    account = await accounts.account_of(session, tenant_id, lock=True)
    if intent.get("customer") != account.stripe_customer_id:
        return "not this company's customer"
    if account.payment_method_id:
        return "a card is on file already"
    await collection.store_card(session, account, method, Actor("billing (Stripe notification)"))
    await collection.retry_now(session, tenant_id)
    return "card stored"


HANDLERS: dict[str, Handler] = {
    "payment_intent.succeeded": _payment_succeeded,
    "payment_intent.payment_failed": _payment_failed,
    "charge.refunded": _charge_refunded,
    "refund.created": _refund,
    "refund.updated": _refund,
    "charge.refund.updated": _refund,
    "setup_intent.succeeded": _setup_succeeded,
}


def _subject_tenant(event_type: str, subject: dict[str, Any]) -> uuid.UUID | None:
    if event_type == "charge.refunded":
        for refund in (subject.get("refunds") or {}).get("data") or []:
            if (tenant := _tenant(refund.get("metadata"))) is not None:
                return tenant
    return _tenant(subject.get("metadata"))


async def receive(event: dict[str, Any]) -> dict[str, Any]:
    """Apply a verified event once; what to answer Stripe."""
    event_id, event_type = str(event.get("id") or ""), str(event.get("type") or "")
    subject: dict[str, Any] = (event.get("data") or {}).get("object") or {}
    tenant_id = _subject_tenant(event_type, subject)
    async with get_database().transaction() as session:
        inserted = await session.scalar(
            insert(StripeEvent).values(id=event_id[:255], type=event_type[:100], company_id=tenant_id, outcome="")
            .on_conflict_do_nothing(index_elements=["id"]).returning(StripeEvent.id))
        if inserted is None:
            log.info("billing.stripe_event_duplicate", event_id=event_id, type=event_type)
            return {"received": True, "duplicate": True}
        handler = HANDLERS.get(event_type)
        if handler is None:
            outcome = "ignored"
        elif tenant_id is None:
            outcome = "ignored: no company named in its metadata"
        else:
            await set_scope(session, tenant_id=tenant_id)
            outcome = await handler(session, tenant_id, subject)
        await session.execute(update(StripeEvent).where(StripeEvent.id == event_id[:255])
                              .values(outcome=outcome[:200]))
    log.info("billing.stripe_event", event_id=event_id, type=event_type, tenant_id=str(tenant_id or ""),
             outcome=outcome)
    return {"received": True, "outcome": outcome}


def _bad(detail: str) -> Response[Any]:
    return problem_response(ProblemError(status=400, title="Bad request", detail=detail))


@post("/webhooks/stripe", include_in_schema=False, status_code=200)
async def stripe_webhook(request: Request[Any, Any, Any]) -> Response[Any]:
    secret = config.stripe_webhook_secret()
    if not secret:
        return _bad("webhooks are not configured")
    payload = await request.body()
    header = request.headers.get("stripe-signature", "")
    if not header:
        return _bad("the Stripe-Signature header is missing")
    try:
        event = stripe.Webhook.construct_event(payload.decode("utf-8"), header, secret)
    except (ValueError, UnicodeDecodeError):
        return _bad("the body is not a Stripe event")
    except stripe.SignatureVerificationError:
        log.warning("billing.stripe_bad_signature")
        return _bad("the signature does not match")
    return Response(await receive(event.to_dict()))


route_handlers: list[Any] = [stripe_webhook]
