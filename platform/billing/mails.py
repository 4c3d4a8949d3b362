"""The mails billing sends a company's owners (and its billing address): each dunning step and
the reinstatement, as plain text with a simple HTML alternative."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from html import escape
from zoneinfo import ZoneInfo

from babel.dates import format_date
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.models import BillingAccount, Invoice
from core.locale import format_money
from core.mail import queue_mail
from core.settings import get_settings
from tenants.service import owner_emails, tenant_profile

KIND = "billing"
LOCALE = "en"  # the texts are English: dates and amounts read the same way


@dataclass(frozen=True)
class Text:
    subject: str
    paragraphs: list[str]

    def plain(self, link: str) -> str:
        return "Hello,\n\n" + "\n\n".join(self.paragraphs) + f"\n\nYour billing page: {link}\n"

    def html(self, link: str) -> str:
        paragraphs = "".join(f"<p>{escape(p)}</p>" for p in ["Hello,", *self.paragraphs])
        return (f"<!doctype html><html><body>{paragraphs}"
                f'<p><a href="{escape(link)}">Open your billing page</a></p></body></html>')


def amount_due(invoice: Invoice) -> int:
    """What the mails ask for: the invoice's total less its credit notes."""
    return invoice.total_minor - invoice.credited_minor


def _date(at: datetime, timezone: str) -> str:
    return str(format_date(at.astimezone(ZoneInfo(timezone)).date(), format="long", locale=LOCALE))


def step_text(standing: str, company: str, timezone: str, invoice: Invoice | None) -> Text:
    """The mail for a standing just reached (``good``: the reinstatement)."""
    from billing.dunning import next_retry, step_dates

    if standing == "good" or invoice is None:
        return Text(f"{company}: your account is in good standing again", [
            "Thank you: every invoice is paid and every restriction on your account is lifted.",
        ])
    amount = format_money(amount_due(invoice), invoice.currency, LOCALE)
    what = f"invoice {invoice.number} ({amount} due)"
    unpaid = f"Invoice {invoice.number} is still unpaid ({amount} due)"
    first_failed = invoice.first_failed_at or invoice.issued_at
    dates = step_dates(first_failed)
    if standing == "payment_failed":
        retry = next_retry(first_failed, first_failed)
        reason = f": {invoice.last_error.rstrip('.')}" if invoice.last_error else ""
        return Text(f"{company}: the payment of invoice {invoice.number} failed", [
            f"We could not collect the payment of {what}{reason}.",
            (f"We will try your card again from {_date(retry, timezone)}. " if retry else "")
            + "You can add or replace your card on your billing page: the invoice is then paid at once.",
            f"Nothing else changes for now. If it stays unpaid, your account will be past due from "
            f"{_date(dates['past_due'], timezone)}.",
        ])
    if standing == "past_due":
        return Text(f"{company}: your account is past due", [
            f"{unpaid}, so your account is past due.",
            f"Nothing changes yet. From {_date(dates['restricted'], timezone)}, settings, rules, catalog, "
            "locations and stock will be read-only until it is paid. Orders from your shoppers are never "
            "stopped by this.",
        ])
    if standing == "restricted":
        return Text(f"{company}: your account is restricted", [
            f"{unpaid}, so settings, rules, catalog, locations and stock are now "
            "read-only (the API answers 402 Payment Required to those changes).",
            "Orders from your shoppers keep flowing: capture, routing, fulfilment, returns and refunds go on.",
            f"If it stays unpaid, new orders will be refused from {_date(dates['intake_refused'], timezone)}. "
            "Paying lifts every restriction at once.",
        ])
    return Text(f"{company}: new orders are refused", [
        f"{unpaid}, so new orders are now refused (the API answers 402 Payment "
        "Required, and the console takes no manual order).",
        "Orders already taken are still fulfilled, returned and refunded. Paying lifts every restriction at once.",
    ])


async def recipients(session: AsyncSession, tenant_id: uuid.UUID) -> list[str]:
    """The owners, and the billing address when it is another one."""
    addresses = await owner_emails(session, tenant_id)
    billing_email = await session.scalar(select(BillingAccount.billing_email).where(
        BillingAccount.tenant_id == tenant_id))
    if billing_email:
        addresses.append(billing_email)
    unique: dict[str, str] = {}
    for address in addresses:
        unique.setdefault(address.strip().lower(), address.strip())
    return list(unique.values())


async def send_step(session: AsyncSession, tenant_id: uuid.UUID, standing: str, invoice: Invoice | None) -> None:
    tenant = await tenant_profile(session, tenant_id)
    company = tenant.name if tenant is not None else "Your company"
    timezone = tenant.timezone if tenant is not None else "UTC"
    text = step_text(standing, company, timezone, invoice)
    link = f"{get_settings().public_url.rstrip('/')}/app/billing"
    for address in await recipients(session, tenant_id):
        await queue_mail(session, tenant_id=tenant_id, to=address, subject=text.subject, body=text.plain(link),
                         body_html=text.html(link), kind=KIND, meta={"standing": standing})
