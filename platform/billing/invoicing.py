"""Periods closed into invoices, the estimate of the open one, and credit notes.

Closing a period (the scheduler at its end, or the operator's "close now") locks the period's
row, so two closers issue one invoice. The usage billed is what the usage rows count; a re-count
from the orders' own tables is stored beside it, and a disagreement is logged loudly. The invoice
(lines per plan segment, then per dimension: the included units and each tier reached), its VAT
and its number are written in the same transaction, and nothing may edit it afterwards: a
correction is a credit note, numbered in its own series.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from billing import accounts, collection, config, dunning, numbering, plans, vat
from billing.models import BillingAccount, BillingPeriod, Invoice, InvoiceLine, Plan
from billing.periods import day_start, month_length, next_month_start, share
from core import clock, metering
from core.locale import format_money
from core.metering import Usage
from core.problems import invalid, not_found
from orders.usage import recount
from tenants.service import Actor, audit, owner_emails, timezone_of

log = structlog.get_logger(__name__)

BILLING = Actor("Platform billing")  # who closes periods, on the audit log
PAGE_SIZE, MAX_PAGE_SIZE = 50, 200  # invoices listed at a time
CREDIT_REASON_MAX = 250  # the line "Credit on INV-…: <reason>" fits its 300 characters
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
               "November", "December")


@dataclass
class EstimateLine:
    description: str
    quantity: int
    unit_minor: int
    amount_minor: int
    dimension: str = "base"  # base | orders | locations


@dataclass
class Estimate:
    period: BillingPeriod
    plan_name: str
    trial: bool
    lines: list[EstimateLine]
    subtotal_minor: int
    vat_rate_bp: int
    vat_minor: int
    total_minor: int
    currency: str
    usage: Usage
    vat_treatment: str
    vat_mentions: list[str]
    next_tier: dict[str, tuple[int, int] | None] = field(default_factory=dict)  # per dimension


# --- periods ----------------------------------------------------------------------------------


async def current_period(session: AsyncSession, tenant_id: uuid.UUID) -> BillingPeriod:
    """The company's open period (its account and first period opened now if it has none)."""
    period = await accounts.open_period(session, tenant_id)
    if period is None:
        account = await accounts.account_of(session, tenant_id)
        period = await accounts.open_period(session, tenant_id)
        if period is None:  # every period closed and none opened after: one from now on
            period = await _open_next(session, tenant_id, account, clock.now(), await timezone_of(session, tenant_id))
    return period


async def _open_next(session: AsyncSession, tenant_id: uuid.UUID, account: BillingAccount, start: datetime,
                     timezone: str) -> BillingPeriod:
    """The period after one that ends at ``start``: until the next local month start, on the plan
    planned for it (or the current one), at the version in force at its start. A plan retired by
    then moves the company to the default plan."""
    code = account.next_plan_code or account.plan_code
    plan = await plans.plan_version(session, code, start)
    if plan is None or plans.is_retired(plan, start):
        plan = await plans.default_plan(session, start)
        log.info("billing.moved_to_default_plan", tenant_id=str(tenant_id), plan=code, to=plan.code)
    account.plan_code, account.next_plan_code = plan.code, None
    period = BillingPeriod(tenant_id=tenant_id, starts_at=start, ends_at=next_month_start(start, timezone),
                           trial=False, plans=[plans.segment(plan, start)])
    session.add(period)
    await session.flush()
    return period


# --- pricing ----------------------------------------------------------------------------------


@dataclass
class Priced:
    lines: list[EstimateLine]
    plan: Plan  # the plan in force at the period's end: it prices the usage
    plan_name: str  # every plan of the period, "Starter, then Growth"

    @property
    def subtotal_minor(self) -> int:
        return sum(line.amount_minor for line in self.lines)


def _day(at: datetime, zone: ZoneInfo) -> str:
    local = at.astimezone(zone)
    return f"{local.day} {MONTHS[local.month - 1]} {local.year}"


def _base_line(plan: Plan, start: datetime, end: datetime, timezone: str) -> EstimateLine:
    """A plan's base fee over [start, end): the whole fee for a whole month, else its share."""
    month = month_length(start, timezone)
    amount = share(plan.base_fee_minor, end - start, month)
    zone = ZoneInfo(timezone)
    if end - start == month:
        local = start.astimezone(zone)
        description = f"{plan.name} plan, {MONTH_NAMES[local.month - 1]} {local.year}"
    else:
        last_day = _day(end - timedelta(microseconds=1), zone)
        description = f"{plan.name} plan, {_day(start, zone)} to {last_day} (prorated)"
    return EstimateLine(description, 1, amount, amount)


async def _segments(session: AsyncSession, period: BillingPeriod) -> list[tuple[Plan, datetime, datetime]]:
    """(plan, from, to) of each plan in force over the period, in order, empty stretches left out."""
    marks: list[tuple[Plan, datetime]] = []
    for entry in period.plans:
        plan = await plans.plan_by_id(session, uuid.UUID(str(entry["plan_id"])))
        if plan is None:
            raise LookupError(f"period {period.id} names an unknown plan {entry['plan_id']}")
        marks.append((plan, max(datetime.fromisoformat(str(entry["from"])), period.starts_at)))
    found = []
    for index, (plan, start) in enumerate(marks):
        end = min(marks[index + 1][1] if index + 1 < len(marks) else period.ends_at, period.ends_at)
        if end > start:
            found.append((plan, start, end))
    if not found:
        raise LookupError(f"period {period.id} has no plan in force")
    return found


def _usage_lines(plan: Plan, usage: Usage) -> list[EstimateLine]:
    lines = []
    quantities = {"orders": usage.orders, "locations": usage.locations}
    for dimension, label in plans.DIMENSIONS.items():
        spec = plan.dimensions.get(dimension)
        if not spec:
            continue
        for charge in plans.charges(spec, quantities[dimension]):
            what = (f"included in the plan (up to {spec['included']})" if charge.label == "included"
                    else charge.label)
            lines.append(EstimateLine(f"{label}, {what}", charge.quantity, charge.unit_minor, charge.amount_minor,
                                      dimension))
    return lines


async def _price(session: AsyncSession, period: BillingPeriod, usage: Usage, timezone: str) -> Priced:
    segments = await _segments(session, period)
    lines = [_base_line(plan, start, end, timezone) for plan, start, end in segments]
    last = segments[-1][0]
    names = [plan.name for plan, _, _ in segments]
    plan_name = ", then ".join(name for index, name in enumerate(names) if index == 0 or names[index - 1] != name)
    return Priced(lines + _usage_lines(last, usage), last, plan_name)


def _next_tiers(plan: Plan, usage: Usage) -> dict[str, tuple[int, int] | None]:
    quantities = {"orders": usage.orders, "locations": usage.locations}
    return {dimension: plans.until_next_tier(plan.dimensions[dimension], quantities[dimension])
            if plan.dimensions.get(dimension) else None for dimension in plans.DIMENSIONS}


async def estimate(session: AsyncSession, tenant_id: uuid.UUID) -> Estimate:
    """The open period's invoice as it stands: its base fees, and the usage so far priced as if
    the period closed now. A trial bills nothing."""
    period = await current_period(session, tenant_id)
    account = await accounts.account_of(session, tenant_id)
    timezone = await timezone_of(session, tenant_id)
    usage = await metering.usage_between(session, tenant_id, period.starts_at, period.ends_at)
    priced = await _price(session, period, usage, timezone)
    lines = [] if period.trial else priced.lines
    subtotal = sum(line.amount_minor for line in lines)
    decision = vat.decide(config.issuer(), account.country, accounts.checked_vat_number(account))
    vat_minor = vat.vat_of(subtotal, decision.rate_bp)
    return Estimate(period=period, plan_name=priced.plan_name, trial=period.trial, lines=lines,
                    subtotal_minor=subtotal, vat_rate_bp=decision.rate_bp, vat_minor=vat_minor,
                    total_minor=subtotal + vat_minor, currency=priced.plan.currency, usage=usage,
                    vat_treatment=decision.treatment, vat_mentions=list(decision.mentions),
                    next_tier=_next_tiers(priced.plan, usage))


# --- closing ----------------------------------------------------------------------------------


async def _customer(session: AsyncSession, tenant_id: uuid.UUID, account: BillingAccount) -> dict[str, Any]:
    """The billing details as the invoice prints them (a copy: later edits don't change it)."""
    email = account.billing_email or next(iter(await owner_emails(session, tenant_id)), "")
    return {"name": account.legal_name, "address_line1": account.address_line1,
            "address_line2": account.address_line2, "postcode": account.postcode, "city": account.city,
            "country": account.country, "country_name": vat.country_name(account.country), "email": email,
            "vat_number": accounts.checked_vat_number(account), "vat_check": account.vat_check,
            "vat_checked_at": account.vat_checked_at.isoformat() if account.vat_checked_at else None,
            "vat_consultation": account.vat_consultation}


async def _issue(session: AsyncSession, tenant_id: uuid.UUID, period: BillingPeriod, account: BillingAccount,
                 usage: Usage, timezone: str) -> Invoice:
    priced = await _price(session, period, usage, timezone)
    issuer = config.issuer()
    decision = vat.decide(issuer, account.country, accounts.checked_vat_number(account))
    subtotal = priced.subtotal_minor
    vat_minor = vat.vat_of(subtotal, decision.rate_bp)
    total = subtotal + vat_minor
    customer = await _customer(session, tenant_id, account)
    local_only = total > 0 and config.stripe_secret_key() is None
    # Last, as it locks the series until this transaction ends.
    number, year, sequence, issued_at = await numbering.take_number(session, "INV")
    invoice = Invoice(
        tenant_id=tenant_id, kind="invoice", number=number, series="INV", year=year,
        sequence=sequence, issued_at=issued_at, period_id=period.id, period_start=period.starts_at,
        period_end=period.ends_at, issuer=issuer.to_dict(), customer=customer, plan=priced.plan_name,
        currency=priced.plan.currency, subtotal_minor=subtotal, vat_rate_bp=decision.rate_bp, vat_minor=vat_minor,
        total_minor=total, vat_treatment=decision.treatment, vat_mentions=list(decision.mentions),
        status="paid" if total == 0 else "open", paid_at=issued_at if total == 0 else None, local_only=local_only,
        next_attempt_at=issued_at if total > 0 and not local_only else None, credited_minor=0, attempts=0)
    session.add(invoice)
    await session.flush()
    session.add_all([InvoiceLine(tenant_id=tenant_id, invoice_id=invoice.id, position=position,
                                 description=line.description[:300], dimension=line.dimension,
                                 quantity=line.quantity, unit_price_minor=line.unit_minor,
                                 amount_minor=line.amount_minor)
                     for position, line in enumerate(priced.lines, start=1)])
    await session.flush()
    return invoice


async def close_period(session: AsyncSession, tenant_id: uuid.UUID, *, period_id: uuid.UUID | None = None,
                       now_if_early: bool = False) -> Invoice | None:
    """Close the company's period that is due (or ``period_id``), issue its invoice (a trial has
    none) and open the next period. With ``now_if_early``, an open period not yet due ends at the
    start of the company's current day (its base fee prorated; a period that began today can't close
    early: None, and it stays open). A period closed already returns its invoice: closing is
    idempotent."""
    query = select(BillingPeriod).where(BillingPeriod.tenant_id == tenant_id)
    query = (query.where(BillingPeriod.id == period_id) if period_id is not None
             else query.where(BillingPeriod.status == "open").order_by(BillingPeriod.starts_at).limit(1))
    period = await session.scalar(query.with_for_update().execution_options(populate_existing=True))
    if period is None:
        return None
    if period.status == "closed":
        return await session.get(Invoice, (tenant_id, period.invoice_id)) if period.invoice_id else None
    now = clock.now()
    timezone = await timezone_of(session, tenant_id)
    if period.ends_at > now:
        today = day_start(now, timezone)  # a local midnight: no day's usage is split
        if not now_if_early or today <= period.starts_at:
            return None
        period.ends_at = today
    account = await accounts.account_of(session, tenant_id, lock=True)
    usage = await _usage(session, tenant_id, period)
    invoice = None if period.trial else await _issue(session, tenant_id, period, account, usage, timezone)
    if period.trial and account.trial_ends_at and account.trial_ends_at > period.ends_at:
        account.trial_ends_at = period.ends_at  # the trial closed early by the operator
    period.status, period.closed_at = "closed", now
    period.invoice_id = invoice.id if invoice else None
    await _open_next(session, tenant_id, account, period.ends_at, timezone)
    if invoice is None:
        return None
    await audit(session, tenant_id, BILLING, "billing.invoice_issued", target=invoice.number,
                total_minor=invoice.total_minor, currency=invoice.currency,
                total=format_money(invoice.total_minor, invoice.currency))
    if invoice.status == "open" and not invoice.local_only:
        await collection.schedule(session, invoice)
    return invoice


async def _usage(session: AsyncSession, tenant_id: uuid.UUID, period: BillingPeriod) -> Usage:
    """The usage rows' count for the period, stored with the re-count from the source tables."""
    metered = await metering.usage_between(session, tenant_id, period.starts_at, period.ends_at)
    recounted = await recount(session, tenant_id, period.starts_at, period.ends_at)
    agree = metered.to_dict() == recounted.to_dict()
    if not agree:
        log.error("billing.usage_disagrees", tenant_id=str(tenant_id), period_id=str(period.id),
                  metered=metered.to_dict(), recounted=recounted.to_dict())
    period.usage = {"metered": metered.to_dict(), "recounted": recounted.to_dict(), "agree": agree}
    return metered


# --- credit notes ---------------------------------------------------------------------------


def _net_of(amount_minor: int, rate_bp: int) -> int:
    """The part of an amount including VAT that is before VAT, rounded half up."""
    denominator = 10_000 + rate_bp
    return (2 * amount_minor * 10_000 + denominator) // (2 * denominator)


async def issue_credit_note(session: AsyncSession, tenant_id: uuid.UUID, invoice_id: uuid.UUID, amount_minor: int,
                            reason: str, *, actor: Actor) -> Invoice:
    """A credit note of ``amount_minor`` (VAT included, at the invoice's rate) on an invoice, up
    to what is left of it to credit. On an unpaid invoice it is "applied": the invoice collects
    that much less (a payment under way that takes more refunds the difference, see
    ``collection.record_paid``). On a paid invoice it is "issued", and refunded through Stripe."""
    invoice = await session.scalar(
        select(Invoice).where(Invoice.tenant_id == tenant_id, Invoice.id == invoice_id, Invoice.kind == "invoice")
        .with_for_update().execution_options(populate_existing=True))
    if invoice is None:
        raise not_found("Invoice")
    left = invoice.total_minor - invoice.credited_minor
    reason = (reason or "").strip()
    errors: dict[str, str] = {}
    if left <= 0:
        errors["amount_minor"] = f"{invoice.number} is credited in full already."
    elif amount_minor <= 0:
        errors["amount_minor"] = "Enter an amount above zero."
    elif amount_minor > left:
        errors["amount_minor"] = (f"At most {format_money(left, invoice.currency)} is left to credit on "
                                  f"{invoice.number} (VAT included).")
    if not reason:
        errors["reason"] = "Say why the credit note is issued: the reason is printed on it."
    elif len(reason) > CREDIT_REASON_MAX:
        errors["reason"] = f"Use at most {CREDIT_REASON_MAX} characters for the reason."
    if errors:
        raise invalid(errors)
    subtotal = _net_of(amount_minor, invoice.vat_rate_bp)
    paid = invoice.status == "paid"
    number, year, sequence, issued_at = await numbering.take_number(session, "CN")
    note = Invoice(
        tenant_id=tenant_id, kind="credit_note", number=number, series="CN", year=year,
        sequence=sequence, issued_at=issued_at, period_id=None, period_start=invoice.period_start,
        period_end=invoice.period_end, credited_invoice_id=invoice.id, reason=reason, issuer=invoice.issuer,
        customer=invoice.customer, plan=invoice.plan, currency=invoice.currency, subtotal_minor=subtotal,
        vat_rate_bp=invoice.vat_rate_bp, vat_minor=amount_minor - subtotal, total_minor=amount_minor,
        vat_treatment=invoice.vat_treatment, vat_mentions=list(invoice.vat_mentions),
        status="issued" if paid else "applied", local_only=invoice.local_only,
        credited_minor=0 if paid else amount_minor, attempts=0)
    session.add(note)
    await session.flush()
    session.add(InvoiceLine(tenant_id=tenant_id, invoice_id=note.id, position=1, dimension="credit",
                            description=f"Credit on {invoice.number}: {reason}", quantity=1,
                            unit_price_minor=subtotal, amount_minor=subtotal))
    invoice.credited_minor += amount_minor
    if invoice.credited_minor == invoice.total_minor and invoice.status == "open":
        invoice.status, invoice.next_attempt_at = "credited", None
    await session.flush()
    if invoice.status == "credited":  # nothing left to pay on it: the dunning it caused ends
        await dunning.reinstate_if_clear(session, tenant_id, actor_label=actor.label)
    await audit(session, tenant_id, actor, "billing.credit_note_issued", target=number, invoice=invoice.number,
                amount_minor=amount_minor, reason=reason)
    if paid and invoice.payment_intent_id:
        await collection.schedule_refund(session, note)
    return note


# --- reading ----------------------------------------------------------------------------------


@dataclass
class InvoicePage:
    invoices: list[Invoice]
    next_cursor: uuid.UUID | None  # the last one's id when older ones follow: ``before`` of the next page


async def invoices_of(session: AsyncSession, tenant_id: uuid.UUID, *, limit: int = PAGE_SIZE,
                      before: uuid.UUID | None = None) -> InvoicePage:
    """The company's invoices and credit notes, newest first, ``limit`` (at most 200) at a time:
    those issued before the one ``before`` names (by issue time, then id)."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    query = select(Invoice).where(Invoice.tenant_id == tenant_id)
    if before is not None:
        mark = (await session.execute(select(Invoice.issued_at, Invoice.id).where(
            Invoice.tenant_id == tenant_id, Invoice.id == before))).one_or_none()
        if mark is None:
            raise invalid({"cursor": "Unknown cursor: give the next_cursor of the page before, or none."})
        query = query.where(tuple_(Invoice.issued_at, Invoice.id) < tuple_(mark.issued_at, mark.id))
    found = list(await session.scalars(query.order_by(Invoice.issued_at.desc(), Invoice.id.desc()).limit(limit + 1)))
    return InvoicePage(found[:limit], found[limit - 1].id if len(found) > limit else None)


async def invoice_with_lines(session: AsyncSession, tenant_id: uuid.UUID, invoice_id: uuid.UUID
                             ) -> tuple[Invoice, list[InvoiceLine]]:
    invoice = await session.scalar(select(Invoice).where(Invoice.tenant_id == tenant_id, Invoice.id == invoice_id))
    if invoice is None:
        raise not_found("Invoice")
    lines = await session.scalars(select(InvoiceLine).where(InvoiceLine.tenant_id == tenant_id,
                                                            InvoiceLine.invoice_id == invoice.id)
                                  .order_by(InvoiceLine.position))
    return invoice, list(lines)
