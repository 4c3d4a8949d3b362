"""How billing reads to people: the words of an invoice's status, a plan's tiers as rows, and an
invoice or credit note as printed. The printable page, the PDF and the API's summaries all take
their text from here, so they say the same thing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from sqlalchemy.ext.asyncio import AsyncSession

from billing import config, invoicing
from billing.models import Invoice, InvoiceLine
from core.locale import format_money
from core.validation import countries

NOT_COLLECTED = "Not collected: no Stripe account is configured for the platform."
LATE_PENALTY = "Late payment: penalties at three times the legal interest rate."
RECOVERY_INDEMNITY_MINOR = 4000  # EUR, Code de commerce L441-10 (D441-5)
DIMENSION_WORDS = {"orders": ("order", "orders"), "locations": ("location", "locations")}


def status_of(invoice: Invoice) -> tuple[str, str]:
    """The status as a badge shows it (words, and the badge's tone): paid, open, payment failed,
    local only or credited for an invoice; deducted (from an unpaid invoice), refund pending or
    refunded for a credit note."""
    if invoice.kind == "credit_note":
        return {"refunded": ("refunded", "ok"), "applied": ("deducted from the invoice", "info")}.get(
            invoice.status, ("refund pending", "warn"))
    if invoice.status == "paid":
        return "paid", "ok"
    if invoice.status == "credited":
        return "credited", "info"
    if invoice.local_only:
        return "local only", "warn"
    if invoice.first_failed_at is not None:
        return "payment failed", "danger"
    return "open", "info"


def unit_words(dimension: str, quantity: int) -> str:
    one, many = DIMENSION_WORDS.get(dimension, (dimension, dimension))
    return one if quantity == 1 else many


@dataclass(frozen=True)
class TierRow:
    units: str  # "First 500", "501 to 5,000", "Above 5,000"
    unit_minor: int | None  # None: included in the base fee


def tier_rows(spec: dict[str, Any], dimension: str) -> list[TierRow]:
    """A dimension's graduated prices as the pricing page lists them (``up_to`` counts from the
    first unit)."""
    included = int(spec.get("included") or 0)
    rows = [TierRow(f"First {included:,} {unit_words(dimension, included)}", None)] if included else []
    start = included + 1
    for tier in spec.get("tiers") or []:
        up_to = tier.get("up_to")
        if up_to is not None and up_to < start:
            continue
        if up_to is None:
            words = f"Above {start - 1:,}" if start > 1 else f"Every {unit_words(dimension, 1)}"
        else:
            words = f"{start:,} to {up_to:,}"
        rows.append(TierRow(words, int(tier["unit_minor"])))
        if up_to is None:
            break
        start = up_to + 1
    return rows


@lru_cache(maxsize=1)
def _country_names() -> dict[str, str]:
    return dict(countries())


def country_name(code: str | None) -> str:
    return _country_names().get((code or "").upper(), code or "")


def day(at: datetime, timezone: str) -> str:
    local = at.astimezone(ZoneInfo(timezone))
    return f"{local.day} {local:%B %Y}"


def period_words(start: datetime | None, end: datetime | None, timezone: str) -> str:
    """A period's days in the company's time zone, its last day included (the end is exclusive)."""
    if start is None or end is None:
        return ""
    return f"{day(start, timezone)} to {day(end - timedelta(microseconds=1), timezone)}"


def percent(rate_bp: int) -> str:
    whole, hundredths = divmod(rate_bp, 100)
    return f"{whole} %" if not hundredths else f"{whole}.{hundredths:02d}".rstrip("0") + " %"


@dataclass
class PrintedLine:
    description: str
    quantity: str
    unit_price: str
    amount: str


@dataclass
class InvoiceDocument:
    """An invoice or credit note, every text as printed."""

    invoice: Invoice
    title: str  # Invoice | Credit note
    number: str
    issued_on: str  # in the issuer's time zone
    period: str  # in the company's time zone
    plan: str
    issuer_lines: list[str]
    customer_lines: list[str]
    lines: list[PrintedLine]
    subtotal: str
    vat_label: str
    vat: str
    total: str
    status: str
    status_tone: str
    mentions: list[str]
    notes: list[str] = field(default_factory=list)
    terms: list[str] = field(default_factory=list)  # payment terms, due date, what paying late costs
    credits_number: str | None = None  # a credit note's invoice

    @property
    def file_name(self) -> str:
        return self.number


def _address(lines: str | None) -> list[str]:
    return [line.strip() for line in (lines or "").splitlines() if line.strip()]


def payment_terms(invoice: Invoice, issued_on: str, locale: Locale | str | None) -> list[str]:
    """How and when an invoice is paid, and (its issuer French) what paying late costs: penalties at
    three times the legal interest rate, and for a business customer (one with a VAT number) the
    fixed recovery indemnity. A credit note has none."""
    if invoice.kind != "invoice":
        return []
    if invoice.total_minor == 0:
        how = "nothing to pay"
    else:
        how = "due on receipt" if invoice.local_only else "paid by card on issue"
    terms = [f"Payment terms: {how}.", f"Due date: {issued_on}."]
    if str((invoice.issuer or {}).get("country") or "") == "FR":
        terms.append(LATE_PENALTY)
        if (invoice.customer or {}).get("vat_number"):
            indemnity = format_money(RECOVERY_INDEMNITY_MINOR, "EUR", locale)
            terms.append(f"Fixed indemnity for recovery costs, owed by a business customer paying late: "
                         f"{indemnity} (Code de commerce, article L441-10).")
    return terms


def invoice_document(invoice: Invoice, lines: list[InvoiceLine], *, timezone: str,
                     locale: Locale | str | None, credits_number: str | None = None) -> InvoiceDocument:
    """``invoice`` as printed: issued on the issuer's calendar day, its period in the company's
    time zone (``timezone``), amounts in the company's locale."""
    issuer, customer = invoice.issuer or {}, invoice.customer or {}
    issuer_zone = str(issuer.get("timezone") or config.issuer().timezone)

    def money(minor: int) -> str:
        return format_money(minor, invoice.currency, locale)

    issuer_lines = [str(issuer.get("name") or ""), *_address(issuer.get("address")),
                    country_name(issuer.get("country"))]
    if issuer.get("vat_number"):
        issuer_lines.append(f"VAT number: {issuer['vat_number']}")
    if issuer.get("legal"):
        issuer_lines.append(str(issuer["legal"]))
    town = " ".join(str(part) for part in (customer.get("postcode"), customer.get("city")) if part)
    customer_lines = [str(value) for value in (customer.get("name"), customer.get("address_line1"),
                                               customer.get("address_line2"), town,
                                               customer.get("country_name") or country_name(customer.get("country")))
                      if value]
    if customer.get("vat_number") and invoice.vat_treatment == "reverse_charge":
        customer_lines.append(f"VAT number: {customer['vat_number']}")
    status, tone = status_of(invoice)
    notes: list[str] = []
    if invoice.kind == "credit_note":
        notes.append(f"Credits invoice {credits_number}." if credits_number else "A credit note.")
        if invoice.reason:
            notes.append(f"Reason: {invoice.reason}")
    if invoice.local_only:
        notes.append(NOT_COLLECTED)
    issued_on = day(invoice.issued_at, issuer_zone)
    printed = [PrintedLine(line.description, f"{line.quantity:,}", money(line.unit_price_minor),
                           money(line.amount_minor)) for line in sorted(lines, key=lambda line: line.position)]
    return InvoiceDocument(
        invoice=invoice, title="Credit note" if invoice.kind == "credit_note" else "Invoice", number=invoice.number,
        issued_on=issued_on,
        period=period_words(invoice.period_start, invoice.period_end, timezone), plan=invoice.plan,
        issuer_lines=[line for line in issuer_lines if line], customer_lines=customer_lines, lines=printed,
        subtotal=money(invoice.subtotal_minor), vat_label=f"VAT {percent(invoice.vat_rate_bp)}",
        vat=money(invoice.vat_minor), total=money(invoice.total_minor), status=status, status_tone=tone,
        mentions=list(invoice.vat_mentions or []), notes=notes, credits_number=credits_number,
        terms=payment_terms(invoice, issued_on, locale))


async def load_document(session: AsyncSession, tenant_id: uuid.UUID, invoice_id: uuid.UUID, *, timezone: str,
                        locale: Locale | str | None) -> InvoiceDocument:
    """The company's invoice or credit note as printed (404 when it is not the company's)."""
    invoice, lines = await invoicing.invoice_with_lines(session, tenant_id, invoice_id)
    credits_number = None
    if invoice.credited_invoice_id is not None:
        credited, _ = await invoicing.invoice_with_lines(session, tenant_id, invoice.credited_invoice_id)
        credits_number = credited.number
    return invoice_document(invoice, lines, timezone=timezone, locale=locale, credits_number=credits_number)
