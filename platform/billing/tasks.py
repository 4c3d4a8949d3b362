"""Billing's background work, found from the database's state by the scheduler: periods to close,
invoices whose collection attempt is due or whose payment is under way, credit notes whose refund
was not made, and unpaid accounts whose next dunning step may be due. Each sweep asks which
companies have such rows (see ``core.sweeper``) and sends an actor per company; a lost message is
found again by the next sweep."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import ColumnElement, and_, or_, select

from billing import collection, dunning, invoicing
from billing.models import BillingPeriod, Invoice
from core import clock
from core.broker import actor
from core.db import get_database
from core.scheduler import fan_out
from core.sweeper import companies_where

MAX_PERIODS_AT_ONCE = 24  # a scheduler stopped for two years catches up in one run
# A period is closed this long after its end, so that a routing that began before the end (and
# meters its order then) has committed before the period's usage is counted.
CLOSE_AFTER = timedelta(minutes=1)
# A credit note's refund is sent at its issue; one still not made this long after is sent again.
REFUND_AGAIN_AFTER = timedelta(minutes=5)


def _collection_due() -> ColumnElement[bool]:
    """An invoice whose collection attempt is due, or whose PaymentIntent under way is to be asked
    about (``collection.in_flight``)."""
    return and_(Invoice.kind == "invoice", Invoice.local_only.is_(False), or_(
        and_(Invoice.status == "open", Invoice.next_attempt_at <= clock.now()),
        and_(Invoice.status.in_(("open", "credited")), Invoice.payment_intent_id.is_not(None))))


def _refund_due() -> ColumnElement[bool]:
    """A credit note owed a refund that neither happened nor was refused by Stripe."""
    return and_(Invoice.kind == "credit_note", Invoice.status == "issued", Invoice.last_error.is_(None),
                Invoice.updated_at <= clock.now() - REFUND_AGAIN_AFTER)


@actor("billing.close_period", queue="billing", time_limit_ms=300_000)
async def close_period_actor(tenant_id: str) -> None:
    """Close each of the company's periods that has ended, oldest first, a transaction each
    (closing opens the next one, which may have ended too)."""
    tenant = uuid.UUID(tenant_id)
    for _ in range(MAX_PERIODS_AT_ONCE):
        async with get_database().transaction(tenant_id=tenant) as session:
            due = await session.scalar(select(BillingPeriod.id).where(
                BillingPeriod.tenant_id == tenant, BillingPeriod.status == "open",
                BillingPeriod.ends_at <= clock.now() - CLOSE_AFTER).order_by(BillingPeriod.ends_at).limit(1))
            if due is None:
                return
            await invoicing.close_period(session, tenant, period_id=due)


@actor("billing.collect_due", queue="billing", time_limit_ms=300_000)
async def collect_due(tenant_id: str) -> None:
    """Collect each of the company's invoices whose attempt is due, and settle each payment under way."""
    tenant = uuid.UUID(tenant_id)
    async with get_database().transaction(tenant_id=tenant) as session:
        due = list(await session.scalars(select(Invoice.id).where(
            Invoice.tenant_id == tenant, _collection_due()).order_by(Invoice.issued_at)))
    for invoice_id in due:
        await collection.collect(tenant_id, str(invoice_id))


@actor("billing.refund_due", queue="billing", time_limit_ms=300_000)
async def refund_due(tenant_id: str) -> None:
    """Send again each of the company's credit note refunds not made (a lost message, a crash)."""
    tenant = uuid.UUID(tenant_id)
    async with get_database().transaction(tenant_id=tenant) as session:
        due = list(await session.scalars(select(Invoice.id).where(
            Invoice.tenant_id == tenant, _refund_due()).order_by(Invoice.issued_at)))
    for note_id in due:
        await collection.refund(tenant_id, str(note_id))


@actor("billing.dunning", queue="billing")
async def dunning_actor(tenant_id: str) -> None:
    """Apply the company's dunning steps now due."""
    tenant = uuid.UUID(tenant_id)
    async with get_database().transaction(tenant_id=tenant) as session:
        await dunning.advance(session, tenant)


async def periods_due() -> list[uuid.UUID]:
    return await companies_where(get_database(), BillingPeriod.__table__, BillingPeriod.status == "open",
                                 BillingPeriod.ends_at <= clock.now() - CLOSE_AFTER)


async def collections_due() -> list[uuid.UUID]:
    return await companies_where(get_database(), Invoice.__table__, _collection_due())


async def refunds_due() -> list[uuid.UUID]:
    if not collection.configured():
        return []
    return await companies_where(get_database(), Invoice.__table__, _refund_due())


async def dunning_due() -> list[uuid.UUID]:
    return await companies_where(get_database(), Invoice.__table__, Invoice.status == "open",
                                 Invoice.first_failed_at.is_not(None))


# The scheduler's sweeps: each company with such work gets its actor's message, the others nothing.
close_periods_everywhere = fan_out("billing.close_periods", timedelta(seconds=60), periods_due, close_period_actor)
collect_everywhere = fan_out("billing.collect", timedelta(seconds=60), collections_due, collect_due)
refund_everywhere = fan_out("billing.refunds", timedelta(seconds=60), refunds_due, refund_due)
dunning_everywhere = fan_out("billing.dunning", timedelta(minutes=10), dunning_due, dunning_actor)
