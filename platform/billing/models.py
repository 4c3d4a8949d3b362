"""Billing's tables.

Global (no tenant, no row-level security), as the platform's own: ``plans`` (versioned price
lists), ``invoice_counters`` (one numbering series per issuing entity, series and year) and
``stripe_events`` (the webhook events received, by id).

Per company (tenant_id, forced row-level security): the billing account (plan, billing details,
card on file), its periods, and its invoices and credit notes with their lines. An issued
document is immutable: a trigger of the migration refuses any change to what it says, and any
deletion; only its collection (status, attempts, payment) moves.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKeyConstraint, Index, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, TenantScoped, utcnow
from core.ids import uuid7

INVOICE_STATUSES = ("open", "paid", "credited")
# A credit note: "applied" (issued while its invoice was unpaid: it lowers what the invoice
# collects), "issued" (a refund through Stripe is owed) or "refunded".
CREDIT_NOTE_STATUSES = ("applied", "issued", "refunded")


class Plan(Base):
    """One version of a plan's price list. A price change is a new version with its
    ``effective_from``; each company's period keeps the version in force when it began.

    ``dimensions``: per metered dimension ("orders", "locations"),
    ``{"included": units, "tiers": [{"up_to": units or null, "unit_minor": price}, ...]}``: the
    first ``included`` units are in the base fee, the next ones up to each tier's ``up_to``
    (counted from the first unit) cost that tier's unit price, graduated."""

    __tablename__ = "plans"
    __table_args__ = (
        UniqueConstraint("code", "version"),
        CheckConstraint("base_fee_minor >= 0", name="base_fee_not_negative"),
        CheckConstraint("trial_days BETWEEN 0 AND 365", name="trial_days_range"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    code: Mapped[str] = mapped_column(String(40))
    version: Mapped[int]
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(500), default="")
    currency: Mapped[str] = mapped_column(String(3))
    base_fee_minor: Mapped[int] = mapped_column(BigInteger)
    trial_days: Mapped[int] = mapped_column(default=14)
    dimensions: Mapped[dict[str, Any]] = mapped_column(JSONB)
    effective_from: Mapped[datetime]
    retired_at: Mapped[datetime | None]  # no new subscription from then; companies on it move at their next period
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)  # what a new sign-up starts on
    position: Mapped[int] = mapped_column(default=0)  # order on the pricing page


class InvoiceCounter(Base):
    """The last number given in a series: locked (SELECT … FOR UPDATE) by the transaction that
    finalises a document, so that numbers run on with no gap and no duplicate."""

    __tablename__ = "invoice_counters"

    issuer: Mapped[str] = mapped_column(String(64), primary_key=True)
    series: Mapped[str] = mapped_column(String(8), primary_key=True)  # INV | CN
    year: Mapped[int] = mapped_column(primary_key=True)
    last_number: Mapped[int] = mapped_column(default=0)


class StripeEvent(Base):
    """A Stripe webhook event, kept by its id: a replay of it changes nothing."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    # The company it concerned, when known: a plain reference, not a tenant-owned row (the log is global).
    company_id: Mapped[uuid.UUID | None]
    outcome: Mapped[str] = mapped_column(String(200), default="")
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class BillingAccount(TenantScoped, Base):
    """A company as the platform's customer: its plan, billing details and card on file."""

    __tablename__ = "billing_accounts"
    __table_args__ = (UniqueConstraint("tenant_id"),)

    plan_code: Mapped[str] = mapped_column(String(40))
    next_plan_code: Mapped[str | None] = mapped_column(String(40))  # from the next period
    trial_ends_at: Mapped[datetime | None]
    legal_name: Mapped[str] = mapped_column(String(200), default="")
    address_line1: Mapped[str] = mapped_column(String(200), default="")
    address_line2: Mapped[str] = mapped_column(String(200), default="")
    postcode: Mapped[str] = mapped_column(String(20), default="")
    city: Mapped[str] = mapped_column(String(100), default="")
    country: Mapped[str] = mapped_column(String(2))
    billing_email: Mapped[str] = mapped_column(String(320), default="")
    vat_number: Mapped[str | None] = mapped_column(String(20))  # compact, with its country prefix
    # How the VAT number was checked: "format" (python-stdnum: format and checksum), "vies_valid",
    # "vies_invalid" or "not_checked" (the online check was asked for and could not be made).
    vat_check: Mapped[str | None] = mapped_column(String(20))
    vat_checked_at: Mapped[datetime | None]
    vat_consultation: Mapped[str | None] = mapped_column(String(100))  # VIES' consultation number
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255))
    payment_method_id: Mapped[str | None] = mapped_column(String(255))
    card_brand: Mapped[str | None] = mapped_column(String(20))
    card_last4: Mapped[str | None] = mapped_column(String(4))
    card_expires: Mapped[str | None] = mapped_column(String(7))  # MM/YYYY
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class BillingPeriod(TenantScoped, Base):
    """A stretch of time billed by one invoice (a calendar month in the company's time zone, the
    trial excepted, which is billed nothing). ``plans``: the plan versions in force over it, in
    order, ``[{"plan_id", "code", "version", "from"}]``: more than one when the owner changed
    plan at once, each base fee then prorated over its share of the period."""

    __tablename__ = "billing_periods"
    __table_args__ = (
        UniqueConstraint("tenant_id", "starts_at"),
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        CheckConstraint("status IN ('open', 'closed')", name="status_known"),
        Index("ix_billing_periods_open", "tenant_id", "ends_at", postgresql_where=text("status = 'open'")),
    )

    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(10), default="open")
    trial: Mapped[bool] = mapped_column(Boolean, default=False)
    plans: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    # At close: the usage counted from the usage rows and re-counted from the source tables.
    usage: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    invoice_id: Mapped[uuid.UUID | None]
    closed_at: Mapped[datetime | None]


class Invoice(TenantScoped, Base):
    """An invoice or a credit note, numbered and issued at once, and never edited afterwards."""

    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("tenant_id", "number"),
        UniqueConstraint("tenant_id", "period_id", "kind"),
        CheckConstraint("kind IN ('invoice', 'credit_note')", name="kind_known"),
        CheckConstraint("status IN ('open', 'paid', 'credited', 'applied', 'issued', 'refunded')", name="status_known"),
        CheckConstraint("total_minor = subtotal_minor + vat_minor", name="total_adds_up"),
        CheckConstraint("subtotal_minor >= 0 AND vat_minor >= 0", name="amounts_not_negative"),
        CheckConstraint("credited_minor BETWEEN 0 AND total_minor", name="credited_within_total"),
        Index("ix_invoices_issued", "tenant_id", "issued_at"),
        Index("ix_invoices_collect", "tenant_id", "next_attempt_at",
              postgresql_where=text("status = 'open' AND next_attempt_at IS NOT NULL")),
    )

    kind: Mapped[str] = mapped_column(String(12), default="invoice")
    number: Mapped[str] = mapped_column(String(32))
    series: Mapped[str] = mapped_column(String(8))
    year: Mapped[int]
    sequence: Mapped[int]
    issued_at: Mapped[datetime]
    period_id: Mapped[uuid.UUID | None]
    period_start: Mapped[datetime | None]
    period_end: Mapped[datetime | None]
    credited_invoice_id: Mapped[uuid.UUID | None]  # a credit note's invoice
    reason: Mapped[str] = mapped_column(String(500), default="")  # a credit note's
    issuer: Mapped[dict[str, Any]] = mapped_column(JSONB)  # name, address, country, VAT number as issued
    customer: Mapped[dict[str, Any]] = mapped_column(JSONB)  # the billing details as issued
    plan: Mapped[str] = mapped_column(String(200), default="")
    currency: Mapped[str] = mapped_column(String(3))
    subtotal_minor: Mapped[int] = mapped_column(BigInteger)
    vat_rate_bp: Mapped[int]  # hundredths of a percent: 2000 is 20 %
    vat_minor: Mapped[int] = mapped_column(BigInteger)
    total_minor: Mapped[int] = mapped_column(BigInteger)
    vat_treatment: Mapped[str] = mapped_column(String(20))  # domestic | eu_consumer | reverse_charge | outside_eu
    vat_mentions: Mapped[list[str]] = mapped_column(JSONB, default=list)
    # Collection (all that may change after issue).
    status: Mapped[str] = mapped_column(String(12), default="open")
    local_only: Mapped[bool] = mapped_column(Boolean, default=False)  # no Stripe on the platform: not collected
    # An invoice: its credit notes, together. A credit note: the part of it that lowered what its
    # invoice collected (the rest, total_minor - credited_minor, is refunded through Stripe).
    credited_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    attempts: Mapped[int] = mapped_column(default=0)
    first_failed_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    payment_intent_id: Mapped[str | None] = mapped_column(String(255))
    stripe_refund_id: Mapped[str | None] = mapped_column(String(255))  # a credit note's
    paid_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class InvoiceLine(TenantScoped, Base):
    __tablename__ = "invoice_lines"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "invoice_id"], ["invoices.tenant_id", "invoices.id"], ondelete="RESTRICT"),
        UniqueConstraint("tenant_id", "invoice_id", "position"),
    )

    invoice_id: Mapped[uuid.UUID]
    position: Mapped[int]
    description: Mapped[str] = mapped_column(String(300))
    dimension: Mapped[str] = mapped_column(String(20))  # base | orders | locations | credit
    quantity: Mapped[int] = mapped_column(BigInteger)
    unit_price_minor: Mapped[int] = mapped_column(BigInteger)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
