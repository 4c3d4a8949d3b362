"""The platform operator's billing work across companies, for `oms billing`: close a company's
period now (saying what it found), list invoices, export a month's documents as CSV, issue a
credit note.

Invoices are behind row-level security like every company's rows: the operator connects as the
app role and works in each company's scope in turn (``db.transaction(tenant_id=...)``)."""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import IO
from zoneinfo import ZoneInfo

from sqlalchemy import select

from billing import accounts, config, display, invoicing
from billing.models import BillingPeriod, Invoice
from core.db import Database
from core.money import major
from core.problems import ProblemError
from tenants.service import Actor

OPERATOR = Actor("platform operator")
STATUSES = ("open", "paid", "credited", "applied", "issued", "refunded")
EXPORT_COLUMNS = ("number", "kind", "company", "issued_at", "period", "subtotal", "vat_rate", "vat", "total",
                  "currency", "vat_treatment", "customer_vat_number", "status")


@dataclass(frozen=True)
class Company:
    id: uuid.UUID
    name: str
    timezone: str = "UTC"  # the company's periods are its calendar months


@dataclass(frozen=True)
class Closing:
    """What `oms billing close` did: ``outcome`` is one of OUTCOMES."""

    outcome: str
    invoice: Invoice | None = None

    def words(self) -> str:
        if self.outcome == "invoice_issued" and self.invoice is not None:
            return self.invoice.number
        if self.outcome == "closed_already":
            return (f"closed already: {self.invoice.number}" if self.invoice is not None
                    else "closed already: a trial, no invoice")
        return OUTCOMES[self.outcome]


OUTCOMES = {
    "no_open_period": "no open period: the company has nothing to close",
    "closed_already": "closed already",
    "nothing_yet": "nothing to close yet: the period started today (a period ends at a midnight of the "
                   "company's calendar)",
    "trial_closed": "trial closed, no invoice",
    "invoice_issued": "invoice issued",
}


async def close_now(db: Database, tenant_id: uuid.UUID) -> Closing:
    """The company's open period closed at the start of its current day (or at its end, if due).
    The period is locked first, so a close by the scheduler meanwhile reads as "closed already"."""
    async with db.transaction(tenant_id=tenant_id) as session:
        found = await accounts.open_period(session, tenant_id)
        if found is None:
            return Closing("no_open_period")
        period = await session.scalar(
            select(BillingPeriod).where(BillingPeriod.tenant_id == tenant_id, BillingPeriod.id == found.id)
            .with_for_update().execution_options(populate_existing=True))
        assert period is not None  # periods are never deleted
        if period.status == "closed":
            invoice = await session.get(Invoice, (tenant_id, period.invoice_id)) if period.invoice_id else None
            return Closing("closed_already", invoice)
        invoice = await invoicing.close_period(session, tenant_id, period_id=period.id, now_if_early=True)
        if period.status == "open":
            return Closing("nothing_yet")
        return Closing("trial_closed") if invoice is None else Closing("invoice_issued", invoice)


async def invoices_across(db: Database, companies: Iterable[Company], *, status: str | None = None,
                          start: datetime | None = None, end: datetime | None = None
                          ) -> list[tuple[Company, Invoice]]:
    """Each company's invoices and credit notes (``status``, issued in ``[start, end)`` when given),
    in the order they were issued."""
    found: list[tuple[Company, Invoice]] = []
    for company in companies:
        query = select(Invoice).where(Invoice.tenant_id == company.id)
        if status is not None:
            query = query.where(Invoice.status == status)
        if start is not None:
            query = query.where(Invoice.issued_at >= start)
        if end is not None:
            query = query.where(Invoice.issued_at < end)
        async with db.transaction(tenant_id=company.id) as session:
            found.extend((company, invoice) for invoice in await session.scalars(query))
    found.sort(key=lambda item: (item[1].issued_at, item[1].kind != "invoice", item[1].sequence))
    return found


def month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    """A month of the issuer's calendar, as UTC instants ``[start, end)``."""
    zone = ZoneInfo(config.issuer().timezone)
    start = datetime(year, month, 1, tzinfo=zone)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(ZoneInfo("UTC")), end.astimezone(ZoneInfo("UTC"))


def write_export(rows: list[tuple[Company, Invoice]], out: IO[str]) -> None:
    """The documents as CSV: amounts in major units ("49.90"), times in the issuer's time zone."""
    zone = ZoneInfo(config.issuer().timezone)
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    for company, doc in rows:
        writer.writerow([
            doc.number, doc.kind, company.name, doc.issued_at.astimezone(zone).isoformat(timespec="seconds"),
            display.period_words(doc.period_start, doc.period_end, company.timezone),
            major(doc.subtotal_minor, doc.currency), display.percent(doc.vat_rate_bp).replace(" ", ""),
            major(doc.vat_minor, doc.currency), major(doc.total_minor, doc.currency), doc.currency,
            doc.vat_treatment, (doc.customer or {}).get("vat_number") or "", display.status_of(doc)[0]])


async def credit(db: Database, companies: Iterable[Company], number: str, amount_minor: int, reason: str
                 ) -> tuple[Company, Invoice]:
    """A credit note on the invoice numbered ``number``, whichever company's it is."""
    for company in companies:
        async with db.transaction(tenant_id=company.id) as session:
            invoice_id = await session.scalar(select(Invoice.id).where(
                Invoice.tenant_id == company.id, Invoice.number == number, Invoice.kind == "invoice"))
            if invoice_id is not None:
                note = await invoicing.issue_credit_note(session, company.id, invoice_id, amount_minor, reason,
                                                         actor=OPERATOR)
                return company, note
    raise ProblemError(404, "Not found", f"No invoice is numbered {number}.")
