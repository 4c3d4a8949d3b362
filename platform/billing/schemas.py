"""API input and output types for billing. Types are checked by the decoder; values (a known
country, a valid VAT number, a plan on offer, an amount left to credit) by ``billing.accounts``
and ``billing.invoicing``, which name every problem at once."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec

from billing.models import BillingAccount, BillingPeriod, Invoice, InvoiceLine, Plan

Short = Annotated[str, msgspec.Meta(max_length=40)]


# --- plans ----------------------------------------------------------------------------------


class TierOut(msgspec.Struct):
    up_to: int | None  # the last unit this price applies to, counted from the first; None: no limit
    unit_minor: int


class DimensionOut(msgspec.Struct):
    included: int
    tiers: list[TierOut]


class PlanOut(msgspec.Struct):
    code: str
    version: int
    name: str
    description: str
    currency: str
    base_fee_minor: int
    trial_days: int
    dimensions: dict[str, DimensionOut]


def plan_out(plan: Plan) -> PlanOut:
    dimensions = {name: DimensionOut(int(spec.get("included") or 0),
                                     [TierOut(tier.get("up_to"), int(tier["unit_minor"]))
                                      for tier in spec.get("tiers") or []])
                  for name, spec in plan.dimensions.items()}
    return PlanOut(plan.code, plan.version, plan.name, plan.description, plan.currency, plan.base_fee_minor,
                   plan.trial_days, dimensions)


class PlanChangeIn(msgspec.Struct, forbid_unknown_fields=True):
    plan: Short
    when: Short = "next_period"  # next_period | now (checked by the service, with its words)


# --- the account ------------------------------------------------------------------------------


class BillingDetailsIn(msgspec.Struct, forbid_unknown_fields=True):
    """Lengths here are the decoder's guard; the service's limits (and words) are the columns'."""

    legal_name: Annotated[str, msgspec.Meta(max_length=1000)]
    country: Annotated[str, msgspec.Meta(max_length=100)]
    address_line1: Annotated[str, msgspec.Meta(max_length=1000)] = ""
    address_line2: Annotated[str, msgspec.Meta(max_length=1000)] = ""
    postcode: Annotated[str, msgspec.Meta(max_length=1000)] = ""
    city: Annotated[str, msgspec.Meta(max_length=1000)] = ""
    billing_email: Annotated[str, msgspec.Meta(max_length=1000)] = ""
    vat_number: Annotated[str, msgspec.Meta(max_length=100)] = ""


class AccountOut(msgspec.Struct):
    plan_code: str
    next_plan_code: str | None
    trial_ends_at: datetime | None
    legal_name: str
    address_line1: str
    address_line2: str
    postcode: str
    city: str
    country: str
    billing_email: str
    vat_number: str | None
    vat_check: str | None
    vat_checked_at: datetime | None
    vat_consultation: str | None
    card_brand: str | None
    card_last4: str | None
    card_expires: str | None


def account_out(account: BillingAccount) -> AccountOut:
    return AccountOut(
        plan_code=account.plan_code, next_plan_code=account.next_plan_code, trial_ends_at=account.trial_ends_at,
        legal_name=account.legal_name, address_line1=account.address_line1, address_line2=account.address_line2,
        postcode=account.postcode, city=account.city, country=account.country, billing_email=account.billing_email,
        vat_number=account.vat_number, vat_check=account.vat_check, vat_checked_at=account.vat_checked_at,
        vat_consultation=account.vat_consultation, card_brand=account.card_brand, card_last4=account.card_last4,
        card_expires=account.card_expires)


# --- periods and estimates --------------------------------------------------------------------


class PlanSegmentOut(msgspec.Struct):
    code: str
    version: int
    since: datetime  # the plan applies from


class PeriodOut(msgspec.Struct):
    id: uuid.UUID
    starts_at: datetime
    ends_at: datetime
    status: str
    trial: bool
    plans: list[PlanSegmentOut]
    usage: dict[str, Any] | None = None  # at close: {"metered", "recounted", "agree"}
    invoice_id: uuid.UUID | None = None


def period_out(period: BillingPeriod) -> PeriodOut:
    return PeriodOut(period.id, period.starts_at, period.ends_at, period.status, period.trial,
                     [PlanSegmentOut(str(p["code"]), int(p["version"]), datetime.fromisoformat(str(p["from"])))
                      for p in period.plans], period.usage, period.invoice_id)


class UsageOut(msgspec.Struct):
    orders: int
    locations: int
    location_days: int


class NextTierOut(msgspec.Struct):
    units: int  # how many more units cost the current unit price
    unit_minor: int  # the unit price after them


class EstimateLineOut(msgspec.Struct):
    description: str
    dimension: str
    quantity: int
    unit_minor: int
    amount_minor: int


class EstimateOut(msgspec.Struct):
    period: PeriodOut
    plan_name: str
    trial: bool
    lines: list[EstimateLineOut]
    subtotal_minor: int
    vat_rate_bp: int
    vat_minor: int
    total_minor: int
    currency: str
    usage: UsageOut
    vat_treatment: str
    vat_mentions: list[str]
    next_tier: dict[str, NextTierOut | None]


def estimate_out(estimate: Any) -> EstimateOut:
    """From ``billing.invoicing.Estimate`` (typed loosely: invoicing imports nothing from here)."""
    return EstimateOut(
        period=period_out(estimate.period), plan_name=estimate.plan_name, trial=estimate.trial,
        lines=[EstimateLineOut(line.description, line.dimension, line.quantity, line.unit_minor, line.amount_minor)
               for line in estimate.lines],
        subtotal_minor=estimate.subtotal_minor, vat_rate_bp=estimate.vat_rate_bp, vat_minor=estimate.vat_minor,
        total_minor=estimate.total_minor, currency=estimate.currency,
        usage=UsageOut(estimate.usage.orders, estimate.usage.locations, estimate.usage.location_days),
        vat_treatment=estimate.vat_treatment, vat_mentions=list(estimate.vat_mentions),
        next_tier={name: NextTierOut(*found) if found else None for name, found in estimate.next_tier.items()})


# --- invoices and credit notes -----------------------------------------------------------------


class InvoiceLineOut(msgspec.Struct):
    position: int
    description: str
    dimension: str
    quantity: int
    unit_price_minor: int
    amount_minor: int


class InvoiceOut(msgspec.Struct):
    id: uuid.UUID
    kind: str  # invoice | credit_note
    number: str
    issued_at: datetime
    status: str
    currency: str
    subtotal_minor: int
    vat_rate_bp: int
    vat_minor: int
    total_minor: int
    credited_minor: int
    vat_treatment: str
    vat_mentions: list[str]
    local_only: bool  # no Stripe account on the platform: not collected
    plan: str
    period_start: datetime | None
    period_end: datetime | None
    credited_invoice_id: uuid.UUID | None  # a credit note's invoice
    reason: str
    paid_at: datetime | None
    issuer: dict[str, Any]
    customer: dict[str, Any]
    lines: list[InvoiceLineOut] = []


def invoice_out(invoice: Invoice, lines: list[InvoiceLine] | None = None) -> InvoiceOut:
    return InvoiceOut(
        id=invoice.id, kind=invoice.kind, number=invoice.number, issued_at=invoice.issued_at, status=invoice.status,
        currency=invoice.currency, subtotal_minor=invoice.subtotal_minor, vat_rate_bp=invoice.vat_rate_bp,
        vat_minor=invoice.vat_minor, total_minor=invoice.total_minor, credited_minor=invoice.credited_minor,
        vat_treatment=invoice.vat_treatment, vat_mentions=list(invoice.vat_mentions), local_only=invoice.local_only,
        plan=invoice.plan, period_start=invoice.period_start, period_end=invoice.period_end,
        credited_invoice_id=invoice.credited_invoice_id, reason=invoice.reason, paid_at=invoice.paid_at,
        issuer=dict(invoice.issuer), customer=dict(invoice.customer),
        lines=[InvoiceLineOut(line.position, line.description, line.dimension, line.quantity, line.unit_price_minor,
                              line.amount_minor) for line in lines or []])


# --- the billing API's overview ------------------------------------------------------------------


class CardOut(msgspec.Struct):
    brand: str | None
    last4: str
    expires: str | None  # MM/YYYY


class BillingOut(msgspec.Struct):
    """``GET /api/v1/billing``: where the company stands with the platform's invoices."""

    plan: PlanOut | None
    next_plan_code: str | None  # from the next period
    standing: str  # good | payment_failed | past_due | restricted | intake_refused
    collected: bool  # false: the platform has no Stripe account, invoices are local only
    period: PeriodOut
    usage: UsageOut
    estimate: EstimateOut
    card: CardOut | None
    details: AccountOut


class InvoiceListOut(msgspec.Struct):
    invoices: list[InvoiceOut]  # newest first, credit notes too
    next_cursor: str | None = None  # older ones follow: pass it as ``cursor``
