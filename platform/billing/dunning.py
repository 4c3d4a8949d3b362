"""What happens when an invoice stays unpaid, step by step, from the database's state alone.

The first failed payment puts the company in ``payment_failed`` (a banner and a mail); the card
is tried again 3, 5 and 7 days after that first failure. Seven days after it, with the last retry
failed too, the account is ``past_due`` (a banner, nothing else changes); after 14 days it is
``restricted`` (settings, rules, catalog, locations and stock are read-only; orders keep
flowing); after 14 days plus ``config.intake_refused_after_days()`` new orders are refused
(``intake_refused``). Each step is applied once, in order, audited and mailed, whenever
``advance`` runs: right after a failure, and from the scheduler, so a lost message delays a step
by minutes and skips none. Paying the last failed invoice lifts every step at once.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import Select, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from billing import config, mails
from billing.models import Invoice
from core import clock
from tenants.auth import forget_api_keys
from tenants.service import Actor, audit, billing_standing, set_billing_standing

RETRY_AFTER_DAYS = (3, 5, 7)  # after the first failure
PAST_DUE_AFTER = timedelta(days=7)
RESTRICTED_AFTER = timedelta(days=14)
# A retry that is due is given this long to run before a step it could still prevent is applied:
# a payment a minute late must not put a company past due and reinstate it a minute later.
RETRY_GRACE = timedelta(hours=1)

STEPS = ("good", "payment_failed", "past_due", "restricted", "intake_refused")
SYSTEM = Actor("billing")


def intake_refused_after() -> timedelta:
    return RESTRICTED_AFTER + timedelta(days=config.intake_refused_after_days())


def step_dates(first_failed_at: datetime) -> dict[str, datetime]:
    """When each step applies to an invoice that first failed then (if it stays unpaid)."""
    return {"past_due": first_failed_at + PAST_DUE_AFTER, "restricted": first_failed_at + RESTRICTED_AFTER,
            "intake_refused": first_failed_at + intake_refused_after()}


def next_retry(first_failed_at: datetime, now: datetime) -> datetime | None:
    """The first scheduled retry still ahead, or None when they are all past: a payment tried by
    hand in between (a new card) uses none of them up."""
    for days in RETRY_AFTER_DAYS:
        at = first_failed_at + timedelta(days=days)
        if at > now:
            return at
    return None


async def _lock(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    """One dunning change at a time per company (the scheduler's and a payment's), for the rest of
    the transaction. Keyed by a hash of the whole company id: a uuid7 begins with its time, so
    companies created close together share their first bytes."""
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('billing.dunning'), hashtext(:tenant))"),
                          {"tenant": str(tenant_id)})


def _failed_unpaid(tenant_id: uuid.UUID) -> Select[Invoice]:
    return select(Invoice).where(Invoice.tenant_id == tenant_id, Invoice.kind == "invoice",
                                 Invoice.status == "open", Invoice.local_only.is_(False),
                                 Invoice.first_failed_at.is_not(None))


async def _move(session: AsyncSession, tenant_id: uuid.UUID, standing: str, *, actor: Actor,
                invoice: Invoice | None) -> None:
    await set_billing_standing(session, tenant_id, standing)
    details = {"invoice": invoice.number} if invoice is not None else {}
    action = "billing.reinstated" if standing == "good" else f"billing.{standing}"
    await audit(session, tenant_id, actor, action, target=invoice.number if invoice else None, **details)
    await mails.send_step(session, tenant_id, standing, invoice)
    forget_api_keys(tenant_id)  # this process's API keys see the new standing at once


async def record_failure(session: AsyncSession, tenant_id: uuid.UUID, invoice: Invoice, error: str) -> None:
    """A collection attempt failed (the caller holds the invoice row's lock): count it, schedule the
    next retry, and on the company's first failure tell the owners."""
    now = clock.now()
    invoice.attempts += 1
    invoice.last_error = error[:500]
    if invoice.first_failed_at is None:
        invoice.first_failed_at = now
    invoice.next_attempt_at = next_retry(invoice.first_failed_at, now)
    await _lock(session, tenant_id)
    await audit(session, tenant_id, SYSTEM, "billing.payment_attempt_failed", target=invoice.number,
                attempt=invoice.attempts, error=error[:200])
    if await billing_standing(session, tenant_id) == "good":
        await _move(session, tenant_id, "payment_failed", actor=SYSTEM, invoice=invoice)


def due_standing(first_failed_at: datetime, next_attempt_at: datetime | None, now: datetime) -> str:
    """The standing an invoice unpaid since ``first_failed_at`` calls for now. A step waits while
    a retry that could still pay is due within ``RETRY_GRACE``."""
    age = now - first_failed_at
    retry_pending = next_attempt_at is not None and next_attempt_at > now - RETRY_GRACE
    if age >= intake_refused_after() and not retry_pending:
        return "intake_refused"
    if age >= RESTRICTED_AFTER and not retry_pending:
        return "restricted"
    if age >= PAST_DUE_AFTER and not retry_pending:
        return "past_due"
    return "payment_failed"


async def advance(session: AsyncSession, tenant_id: uuid.UUID) -> str:
    """Apply every step now due, from the oldest failed unpaid invoice, in order and each once;
    returns the company's standing."""
    await _lock(session, tenant_id)
    oldest = await session.scalar(_failed_unpaid(tenant_id).order_by(Invoice.first_failed_at, Invoice.id).limit(1))
    current = await billing_standing(session, tenant_id)
    if oldest is None or oldest.first_failed_at is None:
        await reinstate_if_clear(session, tenant_id, actor_label=SYSTEM.label)
        return await billing_standing(session, tenant_id)
    target = due_standing(oldest.first_failed_at, oldest.next_attempt_at, clock.now())
    for standing in STEPS[STEPS.index(current) + 1:STEPS.index(target) + 1]:
        await _move(session, tenant_id, standing, actor=SYSTEM, invoice=oldest)
    return await billing_standing(session, tenant_id)


async def reinstate_if_clear(session: AsyncSession, tenant_id: uuid.UUID, *, actor_label: str) -> bool:
    """Back to good standing at once when no failed invoice is left unpaid; True when it moved."""
    await _lock(session, tenant_id)
    if await session.scalar(_failed_unpaid(tenant_id).limit(1)) is not None:
        return False
    if await billing_standing(session, tenant_id) == "good":
        return False
    await _move(session, tenant_id, "good", actor=Actor(actor_label), invoice=None)
    return True


BANNERS = {
    "payment_failed": "A payment failed. We will try your card again; add or replace it here to pay now.",
    "past_due": "Your account is past due: pay the open invoice to avoid restrictions on settings, rules "
                "and catalog. Orders are not affected.",
    "restricted": "Your account is restricted: settings, rules, catalog, locations and stock are read-only "
                  "until the open invoice is paid. Orders from your shoppers keep flowing.",
    "intake_refused": "New orders are refused until the open invoice is paid. Orders already taken are "
                      "still fulfilled, returned and refunded.",
}


def standing_text(standing: str) -> str | None:
    """The console banner's sentence for a standing (None: nothing to say)."""
    return BANNERS.get(standing)
