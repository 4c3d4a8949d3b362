"""Campaigns: an email to a segment at a date and time in the company's time zone.

A campaign is written as a draft (edited freely), scheduled (its segment must exist and its time
be in the future), then sent by ``marketing.campaign_sending`` once its time has passed; it may be
cancelled until it has finished. What it achieved is measured here: recipients, sent, skipped, and
the orders attributed to it, either through its coupon code (a redemption of that code after the
campaign started) or placed by a recipient within ``attribution_days`` after they were sent the
mail; an order both ways counts once, and a cancelled order adds no revenue.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import msgspec
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from core.auth import Principal
from core.forms import convert
from core.ids import uuid7
from core.limits import Count
from core.problems import ProblemError, invalid, not_found
from marketing import segments
from marketing.models import Campaign, CampaignRecipient, Coupon, Redemption
from orders import history
from rules.api import aware
from tenants.service import Actor, audit

NAME_MAX = 200
SUBJECT_MAX = 300
BODY_MAX = 20_000
CODE_MAX = 40
PACE_MAX = 100_000
ATTRIBUTION_DAYS_MAX = 365
RECIPIENTS_PAGE = 50
EDITABLE = ("draft",)
CANCELLABLE = ("draft", "scheduled", "sending")
STATUS_LABELS = {"draft": "Draft", "scheduled": "Scheduled", "sending": "Sending", "sent": "Sent",
                 "cancelled": "Cancelled"}
CANCELLED_REASON = "campaign cancelled"
HORIZON = timedelta(days=3 * 366)  # how far ahead a campaign may be scheduled
FAR = "Choose a date within the next three years."


class CampaignIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=NAME_MAX)]
    segment_id: uuid.UUID
    subject: Annotated[str, msgspec.Meta(min_length=1, max_length=SUBJECT_MAX)]
    body: Annotated[str, msgspec.Meta(min_length=1, max_length=BODY_MAX)]
    coupon_code: Annotated[str, msgspec.Meta(max_length=CODE_MAX)] | None = None
    # When to send it; a time without offset is in the company's time zone. A draft may leave it out.
    scheduled_at: datetime | None = None
    pace_per_minute: Annotated[int, msgspec.Meta(ge=1, le=PACE_MAX)] = 600
    attribution_days: Annotated[int, msgspec.Meta(ge=0, le=ATTRIBUTION_DAYS_MAX)] = 7


class ScheduleIn(msgspec.Struct, forbid_unknown_fields=True):
    scheduled_at: datetime | None = None  # default: the time the campaign already has


class AttributionOut(msgspec.Struct):
    orders: Count
    revenue_minor: dict[str, int]  # per currency, orders not cancelled
    by_coupon: Count
    by_recipient: Count
    attribution_days: Count


class CampaignOut(msgspec.Struct):
    id: uuid.UUID
    name: str
    status: str
    segment_id: uuid.UUID
    segment_name: str | None
    subject: str
    body: str
    coupon_code: str | None
    scheduled_at: datetime | None
    scheduled_at_local: str | None
    pace_per_minute: int
    attribution_days: int
    recipients: Count
    sent: Count
    skipped: Count
    pending: Count
    started_at: datetime | None
    finished_at: datetime | None
    created_at: datetime
    created_by: str
    attribution: AttributionOut | None = None


class RecipientOut(msgspec.Struct):
    customer_id: uuid.UUID
    email: str
    status: str
    reason: str | None
    sent_at: datetime | None


@dataclass(frozen=True)
class Attribution:
    orders: int = 0
    revenue_minor: dict[str, int] = field(default_factory=dict)
    by_coupon: int = 0
    by_recipient: int = 0


# --- reading ------------------------------------------------------------------------------------


async def list_campaigns(session: AsyncSession, principal: Principal, *, status: str | None = None,
                         limit: int = 200) -> list[Campaign]:
    """The company's campaigns, newest first."""
    query = select(Campaign).where(Campaign.tenant_id == principal.tenant_id)
    if status:
        query = query.where(Campaign.status == status)
    return list(await session.scalars(query.order_by(Campaign.created_at.desc(), Campaign.id.desc()).limit(limit)))


async def get_campaign(session: AsyncSession, principal: Principal, campaign_id: uuid.UUID, *,
                       lock: bool = False) -> Campaign:
    """The company's campaign; another company's, or none, is a 404."""
    query = select(Campaign).where(Campaign.tenant_id == principal.tenant_id, Campaign.id == campaign_id)
    found = await session.scalar(query.with_for_update() if lock else query)
    if found is None:
        raise not_found("Campaign")
    return found


async def recipients(session: AsyncSession, principal: Principal, campaign: Campaign, *, status: str | None = None,
                     after: uuid.UUID | None = None, limit: int = RECIPIENTS_PAGE) -> list[CampaignRecipient]:
    """A page of the campaign's recipients, by customer id."""
    query = select(CampaignRecipient).where(CampaignRecipient.tenant_id == principal.tenant_id,
                                            CampaignRecipient.campaign_id == campaign.id)
    if status:
        query = query.where(CampaignRecipient.status == status)
    if after is not None:
        query = query.where(CampaignRecipient.customer_id > after)
    return list(await session.scalars(query.order_by(CampaignRecipient.customer_id).limit(limit)))


def pending_of(campaign: Campaign) -> int:
    return max(0, campaign.recipients_count - campaign.sent_count - campaign.skipped_count)


def local(at: datetime | None, timezone: str) -> str | None:
    return at.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M") if at is not None else None


def to_out(campaign: Campaign, principal: Principal, *, segment_name: str | None = None,
           attribution: Attribution | None = None) -> CampaignOut:
    return CampaignOut(
        id=campaign.id, name=campaign.name, status=campaign.status, segment_id=campaign.segment_id,
        segment_name=segment_name, subject=campaign.subject, body=campaign.body, coupon_code=campaign.coupon_code,
        scheduled_at=campaign.scheduled_at, scheduled_at_local=local(campaign.scheduled_at, principal.timezone),
        pace_per_minute=campaign.pace_per_minute, attribution_days=campaign.attribution_days,
        recipients=campaign.recipients_count, sent=campaign.sent_count, skipped=campaign.skipped_count,
        pending=pending_of(campaign), started_at=campaign.started_at, finished_at=campaign.finished_at,
        created_at=campaign.created_at, created_by=campaign.created_by,
        attribution=None if attribution is None else AttributionOut(
            orders=attribution.orders, revenue_minor=attribution.revenue_minor, by_coupon=attribution.by_coupon,
            by_recipient=attribution.by_recipient, attribution_days=campaign.attribution_days))


# --- writing ------------------------------------------------------------------------------------


def normal_code(code: str | None) -> str | None:
    code = (code or "").strip().upper()
    return code or None


async def reference_problems(session: AsyncSession, tenant_id: uuid.UUID, *, segment_id: uuid.UUID | None,
                             coupon_code: str | None, scheduled_at: datetime | None) -> dict[str, str]:
    """What the campaign names that is not there: its segment (not archived), its coupon code;
    and a time that has passed."""
    errors: dict[str, str] = {}
    if segment_id is not None and str(segment_id) not in await segments.names(session, tenant_id):
        errors["segment_id"] = "Choose one of your segments (this one does not exist or was archived)."
    code = normal_code(coupon_code)
    if code is not None and await session.scalar(select(Coupon.id).where(
            Coupon.tenant_id == tenant_id, Coupon.code == code)) is None:
        errors["coupon_code"] = (f"There is no coupon {code}: create it under Marketing → Coupons first, "
                                 "or leave this empty.")
    if scheduled_at is not None and scheduled_at <= clock.now():
        errors["scheduled_at"] = "Choose a date and time in the future."
    elif scheduled_at is not None and scheduled_at > clock.now() + HORIZON:
        errors["scheduled_at"] = FAR
    return errors


def as_id(value: Any) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        return None


async def read(session: AsyncSession, principal: Principal, raw: Mapping[str, Any], *,
               errors: Mapping[str, str] | None = None, strict: bool = True) -> tuple[CampaignIn, datetime | None]:
    """``raw`` (an API body, or a form's values with ``strict=False``) as a campaign and the instant
    it names, or ``invalid`` with every problem at once: types and lengths, blank texts, what it
    names that does not exist. ``errors``: what the caller already found (a date that isn't one)."""
    found = dict(errors or {})
    data: CampaignIn | None = None
    try:
        data = convert(raw, CampaignIn, strict=strict, errors=found)
    except ProblemError as problem:
        found.update({e.field: e.message for e in problem.errors})
    for name in ("name", "subject", "body"):
        if name not in found and isinstance(raw.get(name), str) and not raw[name].strip():
            found[name] = "This can't be empty."
    scheduled_at = None
    if "scheduled_at" not in found:  # well formed: checked even when other fields are not
        try:
            given = data.scheduled_at if data is not None else \
                msgspec.convert(raw.get("scheduled_at"), datetime | None, strict=strict)
            scheduled_at = aware(given, principal.timezone, "scheduled_at")
        except ProblemError as problem:
            found.update({e.field: e.message for e in problem.errors})
        except msgspec.ValidationError:
            pass  # said by convert already
    code = raw.get("coupon_code")
    found.update({name: message for name, message in (await reference_problems(
        session, principal.tenant_id, segment_id=None if "segment_id" in found else as_id(raw.get("segment_id")),
        coupon_code=code if isinstance(code, str) and "coupon_code" not in found else None,
        scheduled_at=scheduled_at)).items() if name not in found})
    if found or data is None:
        raise invalid(found, detail="The campaign was not saved: correct the fields named.")
    return data, scheduled_at


def _apply(campaign: Campaign, data: CampaignIn, scheduled_at: datetime | None) -> None:
    campaign.name = data.name.strip()
    campaign.segment_id = data.segment_id
    campaign.subject = " ".join(data.subject.split())
    campaign.body = data.body.strip()
    campaign.coupon_code = normal_code(data.coupon_code)
    campaign.scheduled_at = scheduled_at
    campaign.pace_per_minute = data.pace_per_minute
    campaign.attribution_days = data.attribution_days
    campaign.updated_at = clock.now()


async def create_campaign(session: AsyncSession, principal: Principal, raw: Mapping[str, Any], *,
                          errors: Mapping[str, str] | None = None, strict: bool = True,
                          ip: str | None = None) -> Campaign:
    """A new draft from ``raw`` (see ``read``)."""
    data, scheduled_at = await read(session, principal, raw, errors=errors, strict=strict)
    campaign = Campaign(tenant_id=principal.tenant_id, id=uuid7(), status="draft", created_at=clock.now(),
                        created_by=principal.label, recipients_count=0, sent_count=0, skipped_count=0)
    _apply(campaign, data, scheduled_at)
    session.add(campaign)
    await session.flush()
    await audit(session, principal.tenant_id, Actor.of(principal, ip), "campaign.created", target=str(campaign.id),
                name=campaign.name)
    return campaign


def _not_now(campaign: Campaign, doing: str) -> ProblemError:
    return ProblemError(409, "Not possible now",
                        f"This campaign is {STATUS_LABELS.get(campaign.status, campaign.status).lower()}: "
                        f"it can't be {doing}.")


async def update_campaign(session: AsyncSession, principal: Principal, campaign_id: uuid.UUID,
                          raw: Mapping[str, Any], *, errors: Mapping[str, str] | None = None, strict: bool = True,
                          ip: str | None = None) -> Campaign:
    """Change a draft (once scheduled, a campaign is only cancelled)."""
    campaign = await get_campaign(session, principal, campaign_id, lock=True)
    if campaign.status not in EDITABLE:
        raise _not_now(campaign, "changed (only a draft can be)")
    data, scheduled_at = await read(session, principal, raw, errors=errors, strict=strict)
    _apply(campaign, data, scheduled_at)
    await audit(session, principal.tenant_id, Actor.of(principal, ip), "campaign.updated", target=str(campaign.id),
                name=campaign.name)
    return campaign


async def schedule_campaign(session: AsyncSession, principal: Principal, campaign_id: uuid.UUID, *,
                            at: datetime | None = None, ip: str | None = None) -> Campaign:
    """Make a draft go out at ``at`` (or the time it has): the scheduler's sweep sends it then."""
    campaign = await get_campaign(session, principal, campaign_id, lock=True)
    if campaign.status not in EDITABLE:
        raise _not_now(campaign, "scheduled (it is not a draft)")
    when = aware(at, principal.timezone, "scheduled_at") or campaign.scheduled_at
    errors: dict[str, str] = {}
    if when is None:
        errors["scheduled_at"] = "Choose the date and time to send it."
    elif when <= clock.now():
        errors["scheduled_at"] = "Choose a date and time in the future."
    elif when > clock.now() + HORIZON:
        errors["scheduled_at"] = FAR
    if str(campaign.segment_id) not in await segments.names(session, principal.tenant_id):
        errors["segment_id"] = "Its segment no longer exists (it was archived): choose another one first."
    if errors:
        raise invalid(errors, detail="The campaign was not scheduled: " + " ".join(errors.values()))
    assert when is not None
    campaign.scheduled_at = when
    campaign.status = "scheduled"
    campaign.updated_at = clock.now()
    await audit(session, principal.tenant_id, Actor.of(principal, ip), "campaign.scheduled", target=str(campaign.id),
                name=campaign.name, scheduled_at=when.isoformat())
    return campaign


async def cancel_campaign(session: AsyncSession, principal: Principal, campaign_id: uuid.UUID, *,
                          ip: str | None = None) -> Campaign:
    """Stop a campaign before it has finished: the recipients not mailed yet are skipped. The
    campaign's row lock waits for a batch being sent, so nothing goes out after this commits."""
    campaign = await get_campaign(session, principal, campaign_id, lock=True)
    if campaign.status not in CANCELLABLE:
        raise _not_now(campaign, "cancelled")
    now = clock.now()
    if campaign.status == "sending":
        result = await session.execute(update(CampaignRecipient).where(
            CampaignRecipient.tenant_id == principal.tenant_id, CampaignRecipient.campaign_id == campaign.id,
            CampaignRecipient.status == "pending").values(status="skipped", reason=CANCELLED_REASON))
        campaign.skipped_count += int(result.rowcount or 0)  # type: ignore[attr-defined]
        campaign.finished_at = now
    campaign.status = "cancelled"
    campaign.updated_at = now
    await audit(session, principal.tenant_id, Actor.of(principal, ip), "campaign.cancelled", target=str(campaign.id),
                name=campaign.name)
    return campaign


# --- what it achieved ---------------------------------------------------------------------------


async def attribution(session: AsyncSession, tenant_id: uuid.UUID, campaign: Campaign) -> Attribution:
    """The orders attributed to the campaign (see the module's docstring): the redemptions of its
    code since it started, and each mailed recipient's orders within the attribution window."""
    if campaign.started_at is None:
        return Attribution()
    coupon_orders: set[uuid.UUID] = set()
    if campaign.coupon_code:
        coupon_ids = select(Coupon.id).where(Coupon.tenant_id == tenant_id, Coupon.code == campaign.coupon_code)
        coupon_orders = set(await session.scalars(select(Redemption.order_id).where(
            Redemption.tenant_id == tenant_id, Redemption.coupon_id.in_(coupon_ids),
            Redemption.created_at >= campaign.started_at).distinct()))
    window = timedelta(days=campaign.attribution_days)
    mailed = (await session.execute(select(CampaignRecipient.customer_id, CampaignRecipient.sent_at).where(
        CampaignRecipient.tenant_id == tenant_id, CampaignRecipient.campaign_id == campaign.id,
        CampaignRecipient.status == "sent", CampaignRecipient.sent_at.is_not(None)))).all()
    windows = [(customer, sent_at, sent_at + window) for customer, sent_at in mailed if sent_at is not None]
    by_recipient = {o.id: o for o in await history.orders_within(session, tenant_id, windows)} if window else {}
    orders = dict(by_recipient)
    orders.update({o.id: o for o in await history.orders_by_ids(session, tenant_id, coupon_orders - set(orders))})
    revenue: Counter[str] = Counter()
    for order in orders.values():
        if order.status != "cancelled":
            revenue[order.currency] += order.total_minor
    return Attribution(orders=len(orders), revenue_minor=dict(revenue),
                       by_coupon=len(coupon_orders & set(orders)), by_recipient=len(by_recipient))


def describe(campaign: Campaign) -> dict[str, Any]:
    """A few words on where the campaign stands, for the pages."""
    return {"label": STATUS_LABELS.get(campaign.status, campaign.status), "pending": pending_of(campaign),
            "editable": campaign.status in EDITABLE, "cancellable": campaign.status in CANCELLABLE}
