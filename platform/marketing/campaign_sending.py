"""Sending a campaign: idempotent per recipient, paced, and driven from the database.

When a campaign's time has passed, the first run turns it to ``sending`` and lists its recipients
once (the segment's reachable members: email consent given, never unsubscribed), in the same
transaction, so a crash lists nobody and the next run lists them all. Each run then sends what
the pace allows: recipients are taken ``FOR UPDATE SKIP LOCKED``, checked again against the
customer's consent (one who opted out or unsubscribed since is skipped, with the reason), and
each mail is queued (``core.mail.queue_mail``: a mail log row and an outbox message) in the
same transaction that marks its recipient sent. A worker killed mid-batch rolls its batch
back, mails included, so nobody is mailed twice; a lost message only delays, since the
scheduler's sweep finds every campaign due or sending from the database alone. The pace holds
across runs: a run sends ``pace_per_minute`` less what went out in the last minute.

The lead registers: ``from marketing import campaign_sending`` in ``oms/actors.py`` (its actors
and the sweep ``due_campaigns``, which ``core.scheduler.fan_out`` registers at import).
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from functools import lru_cache

import structlog
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape
from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import bulk, clock
from core.broker import actor
from core.db import get_database
from core.mail import queue_mail
from core.problems import ProblemError
from core.scheduler import fan_out
from core.settings import WEB_DIR
from core.sweeper import companies_where
from customers import segments as customer_segments
from customers import service as customers
from marketing import segments
from marketing.models import Campaign, CampaignRecipient
from marketing.unsubscribe import link_for
from orders.mail_texts import fill
from tenants.service import BRAND_COLOUR, CompanyProfile, company_profile, timezone_of

log = structlog.get_logger(__name__)

LIST_PAGE = 1000  # members listed per statement when a campaign starts
BATCH = 500  # recipients per transaction
PACE_WINDOW = timedelta(minutes=1)
SWEEP_EVERY = timedelta(seconds=30)
DEFAULT_COLOUR = "#1d4ed8"
MORE, PACED, DONE = "more", "paced", "done"


# --- the mail -----------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(loader=FileSystemLoader(WEB_DIR / "templates" / "marketing" / "campaigns"),
                       autoescape=select_autoescape(enabled_extensions=("html",), default=False),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def render_mail(*, subject: str, body: str, coupon_code: str | None, customer_name: str,
                company: CompanyProfile, unsubscribe_url: str) -> tuple[str, str, str]:
    """(subject, text, html) of a campaign mail to one customer. The marketer's text may say
    ``{name}``, ``{coupon_code}`` and ``{company}``; without ``{name}`` it opens with a greeting,
    and without ``{coupon_code}`` a campaign's code is shown after it."""
    values = {"name": customer_name, "coupon_code": coupon_code or "", "company": company.name}
    text = fill(body, values).strip()
    context = {
        "subject": " ".join(fill(subject, values).split()),
        "greeting": None if "{name}" in body else (f"Hello {customer_name}," if customer_name else "Hello,"),
        "text": text,
        "paragraphs": [Markup("<br>").join(escape(line) for line in paragraph.split("\n"))
                       for paragraph in re.split(r"\n\s*\n", text) if paragraph.strip()],
        "coupon_code": coupon_code if coupon_code and "{coupon_code}" not in body else None,
        "company": company.name,
        "colour": company.brand_colour if BRAND_COLOUR.fullmatch(company.brand_colour or "") else DEFAULT_COLOUR,
        "lang": company.language,
        "unsubscribe_url": unsubscribe_url,
    }
    env = _environment()
    return (context["subject"], env.get_template("mail.txt").render(context),  # type: ignore[return-value]
            env.get_template("mail.html").render(context))


# --- starting: the send list, once -------------------------------------------------------------


async def _list_recipients(session: AsyncSession, tenant_id: uuid.UUID, campaign: Campaign) -> int:
    """Insert the segment's reachable members as pending recipients, a page at a time by id."""
    try:
        condition = (await segments.get_segment(session, tenant_id, campaign.segment_id)).condition
    except ProblemError:  # gone since it was scheduled: nobody to mail
        return 0
    timezone = await timezone_of(session, tenant_id)
    listed, after = 0, None
    while True:
        members = await customer_segments.members(session, tenant_id, condition, timezone=timezone, reachable=True,
                                                  after=after, limit=LIST_PAGE)
        rows = [{"tenant_id": tenant_id, "campaign_id": campaign.id, "customer_id": m.id, "email": m.email,
                 "status": "pending"} for m in members if m.email]
        listed += len(await bulk.insert_rows(session, CampaignRecipient, rows, on_conflict="ON CONFLICT DO NOTHING",
                                             returning="customer_id"))
        if len(members) < LIST_PAGE:
            return listed
        after = members[-1].id


async def start_if_due(tenant_id: uuid.UUID, campaign_id: uuid.UUID) -> bool:
    """Turn a scheduled campaign whose time has passed to ``sending``, its recipients listed in
    the same transaction. True when the campaign is sending (now or already)."""
    async with get_database().transaction(tenant_id=tenant_id) as session:
        campaign = await session.scalar(select(Campaign).where(
            Campaign.tenant_id == tenant_id, Campaign.id == campaign_id).with_for_update())
        if campaign is None or campaign.status not in ("scheduled", "sending"):
            return False
        if campaign.status == "sending":
            return True
        now = clock.now()
        if campaign.scheduled_at is None or campaign.scheduled_at > now:
            return False
        campaign.recipients_count = await _list_recipients(session, tenant_id, campaign)
        campaign.status = "sending"
        campaign.started_at = now
        campaign.updated_at = now
        return True


# --- sending: a paced batch at a time -----------------------------------------------------------


def _why_not(record: customers.CustomerRecord | None) -> str | None:
    """Why a listed recipient must not be mailed now, or None."""
    if record is None:
        return "customer no longer exists"
    if record.unsubscribed_at is not None:
        return "unsubscribed"
    if not record.email_consent:
        return "no email consent"
    if not record.email or "@" not in record.email:
        return "no email address"
    return None


async def send_batch(tenant_id: uuid.UUID, campaign_id: uuid.UUID) -> str:
    """Send one batch of a sending campaign within its pace: ``more`` when it sent some, ``paced``
    when the pace allows none now, ``done`` when nothing is left (the campaign is then ``sent``)
    or it is not sending, or another run holds it."""
    async with get_database().transaction(tenant_id=tenant_id) as session:
        campaign = await session.scalar(select(Campaign).where(
            Campaign.tenant_id == tenant_id, Campaign.id == campaign_id, Campaign.status == "sending")
            .with_for_update(skip_locked=True))
        if campaign is None:
            return DONE
        now = clock.now()
        mine = (CampaignRecipient.tenant_id == tenant_id, CampaignRecipient.campaign_id == campaign_id)
        recent = await session.scalar(select(func.count()).where(
            *mine, CampaignRecipient.status == "sent", CampaignRecipient.sent_at > now - PACE_WINDOW)) or 0
        room = min(campaign.pace_per_minute - recent, BATCH)
        if room <= 0:
            return PACED
        batch = list(await session.scalars(select(CampaignRecipient).where(*mine, CampaignRecipient.status == "pending")
                                           .order_by(CampaignRecipient.customer_id).limit(room)
                                           .with_for_update(skip_locked=True)))
        if not batch:
            if not await session.scalar(select(func.count()).where(*mine, CampaignRecipient.status == "pending")):
                campaign.status = "sent"
                campaign.finished_at = now
                campaign.updated_at = now
            return DONE
        company = await company_profile(session, tenant_id)
        sent = skipped = 0
        found = await customers.records(session, tenant_id, [r.customer_id for r in batch])
        for recipient in batch:
            record = found.get(recipient.customer_id)
            reason = _why_not(record)
            if reason is not None or record is None:
                recipient.status, recipient.reason = "skipped", reason
                skipped += 1
                continue
            unsubscribe_url = link_for(tenant_id, record.id)
            subject, text, html = render_mail(subject=campaign.subject, body=campaign.body,
                                              coupon_code=campaign.coupon_code, customer_name=record.name,
                                              company=company, unsubscribe_url=unsubscribe_url)
            message = await queue_mail(session, tenant_id=tenant_id, to=record.email, subject=subject, body=text,
                                       body_html=html, kind="campaign", sender_name=company.name,
                                       meta={"campaign_id": str(campaign_id), "customer_id": str(record.id),
                                             "language": company.language, "list_unsubscribe": unsubscribe_url})
            recipient.status, recipient.mail_id, recipient.sent_at = "sent", message.id, now
            sent += 1
        campaign.sent_count += sent
        campaign.skipped_count += skipped
        campaign.updated_at = now
        return MORE


async def run(tenant_id: uuid.UUID, campaign_id: uuid.UUID) -> str:
    """Start the campaign if due, then send batches until the pace or the list is exhausted."""
    if not await start_if_due(tenant_id, campaign_id):
        return DONE
    while (outcome := await send_batch(tenant_id, campaign_id)) == MORE:
        pass
    return outcome


def _due() -> ColumnElement[bool]:
    """A campaign whose time has passed, or one sending."""
    return and_(Campaign.status.in_(("scheduled", "sending")),
                or_(Campaign.status == "sending", Campaign.scheduled_at <= clock.now()))


@actor("marketing.send_campaign", queue="marketing", time_limit_ms=600_000)
async def send_campaign(tenant_id: str, campaign_id: str) -> None:
    """Do what is due of one campaign now (nothing when it is not due, sent or cancelled)."""
    await run(uuid.UUID(tenant_id), uuid.UUID(campaign_id))


@actor("marketing.send_due_campaigns", queue="marketing", time_limit_ms=600_000)
async def send_due_campaigns(tenant_id: str) -> None:
    """Do what is due of each of the company's campaigns: those whose time has passed, and those sending."""
    tenant = uuid.UUID(tenant_id)
    async with get_database().transaction(tenant_id=tenant) as session:
        due = list(await session.scalars(select(Campaign.id).where(Campaign.tenant_id == tenant, _due())
                                         .order_by(Campaign.scheduled_at, Campaign.id)))
    failed: list[Exception] = []
    for campaign_id in due:  # one campaign that fails holds none of the others back
        try:
            await run(tenant, campaign_id)
        except Exception as error:
            log.exception("campaign.failed", tenant_id=tenant_id, campaign_id=str(campaign_id))
            failed.append(error)
    if failed:
        raise failed[0]  # retried, and in stuck work if it keeps failing


async def companies_with_campaigns_due() -> list[uuid.UUID]:
    return await companies_where(get_database(), Campaign.__table__, _due())


# The scheduler's sweep: each company with a campaign due or sending gets a message, the others none.
due_campaigns = fan_out("marketing.campaigns", SWEEP_EVERY, companies_with_campaigns_due, send_due_campaigns)
