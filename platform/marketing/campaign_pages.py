"""Campaigns in the console (``/app/marketing/campaigns``) and the JSON API (``/api/v1/campaigns``).

The form takes the send time as a date and a time in the company's zone; the segment select shows
the segment's live count (htmx). A campaign's page shows its counts, its recipients (paged, by
status), the orders attributed to it and a preview of its mail.
"""

from __future__ import annotations

import uuid
from datetime import date, time
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.params import Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal
from core.deps import DEPS
from core.forms import decode_json, parse_int
from core.idempotency import idempotent_create
from core.pages import NOTICES, client_ip, form_data, form_errors, page
from core.params import PageSize, id_cursor
from core.problems import ProblemError
from customers import segments as customer_segments
from marketing import campaigns, segments
from marketing.campaign_sending import render_mail
from marketing.campaigns import CampaignIn, CampaignOut, RecipientOut, ScheduleIn
from marketing.guards import MARKETERS, manage_marketing, see_marketing
from marketing.models import Campaign
from rules import schedule
from tenants.service import company_profile

NOTICES.update({
    "campaign_saved": "Campaign saved as a draft.",
    "campaign_scheduled": "Campaign scheduled: it goes out at its time, with no further action.",
    "campaign_cancelled": "Campaign cancelled: nothing more is sent.",
})

BASE = "/app/marketing/campaigns"
FORM_FIELDS = ("name", "segment_id", "subject", "body", "coupon_code")
STATUSES = ("pending", "sent", "skipped")
SAMPLE_NAME = "Camille Martin"
StatusParam = Annotated[str | None, Parameter(pattern="^(pending|sent|skipped)$")]
CampaignStatusParam = Annotated[str | None, Parameter(pattern="^(draft|scheduled|sending|sent|cancelled)$")]


# --- the form -----------------------------------------------------------------------------------


def _from_form(form: dict[str, str], timezone: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The form's values as a campaign's raw fields, and the problems found reading them."""
    errors: dict[str, str] = {}
    raw: dict[str, Any] = {name: form.get(name, "") for name in FORM_FIELDS}
    if not raw["segment_id"].strip():
        errors["segment_id"] = "Choose the segment to send it to."
    pace = parse_int(form.get("pace_per_minute") or "600", lo=1, hi=campaigns.PACE_MAX)
    if pace is None:
        errors["pace_per_minute"] = f"Enter a whole number of mails a minute, from 1 to {campaigns.PACE_MAX:,}."
    raw["pace_per_minute"] = pace
    days = parse_int(form.get("attribution_days") or "7", lo=0, hi=campaigns.ATTRIBUTION_DAYS_MAX)
    if days is None:
        errors["attribution_days"] = f"Enter a whole number of days, from 0 to {campaigns.ATTRIBUTION_DAYS_MAX}."
    raw["attribution_days"] = days
    day, at = form.get("date", "").strip(), form.get("time", "").strip()
    raw["scheduled_at"] = None
    if day or at:
        try:
            raw["scheduled_at"] = schedule.local_to_utc(date.fromisoformat(day), time.fromisoformat(at or "09:00")
                                                        .replace(second=0, microsecond=0), timezone)
        except schedule.LocalTimeError as error:
            errors["scheduled_at"] = str(error)
        except (ValueError, OverflowError):
            errors["scheduled_at"] = "Give a date (YYYY-MM-DD) and a time (HH:MM)."
    return raw, errors


def _form_values(campaign: Campaign, timezone: str) -> dict[str, Any]:
    local = campaign.scheduled_at.astimezone(ZoneInfo(timezone)) if campaign.scheduled_at else None
    return {"name": campaign.name, "segment_id": str(campaign.segment_id), "subject": campaign.subject,
            "body": campaign.body, "coupon_code": campaign.coupon_code or "",
            "pace_per_minute": str(campaign.pace_per_minute), "attribution_days": str(campaign.attribution_days),
            "date": local.date().isoformat() if local else "", "time": local.strftime("%H:%M") if local else ""}


async def _form(request: Request[Any, Any, Any], db: AsyncSession, principal: Principal, campaign: Campaign | None,
                *, values: dict[str, Any], errors: dict[str, str] | None = None, status_code: int = 200) -> Template:
    return page(request, "marketing/campaigns/form.html", status_code=status_code, campaign=campaign,
                values=values, errors=errors or {}, segments=await segments.names(db, principal.tenant_id),
                limits={"pace": campaigns.PACE_MAX, "days": campaigns.ATTRIBUTION_DAYS_MAX,
                        "name": campaigns.NAME_MAX, "subject": campaigns.SUBJECT_MAX, "body": campaigns.BODY_MAX,
                        "code": campaigns.CODE_MAX})


async def segment_counts(db: AsyncSession, principal: Principal, segment_id: uuid.UUID) -> tuple[int, int] | None:
    """(members, members with email consent) of a segment today; None when it is not one of the
    company's segments."""
    try:
        segment = await segments.get_segment(db, principal.tenant_id, segment_id)
    except ProblemError:
        return None
    consent = {"field": "customer.email_consent", "op": "eq", "value": "yes"}
    reachable = {"all": [segment.condition, consent]} if segment.condition else consent
    return (await customer_segments.count(db, principal.tenant_id, segment.condition, timezone=principal.timezone),
            await customer_segments.count(db, principal.tenant_id, reachable, timezone=principal.timezone))


# --- the campaign's page ------------------------------------------------------------------------


async def _campaign_page(request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                         campaign: Campaign, *, status: str | None = None, after: uuid.UUID | None = None,
                         errors: dict[str, str] | None = None, status_code: int = 200) -> Template:
    names = await segments.names(db, principal.tenant_id)
    shown = await campaigns.recipients(db, principal, campaign, status=status, after=after)
    subject, text, _ = render_mail(subject=campaign.subject, body=campaign.body, coupon_code=campaign.coupon_code,
                                   customer_name=SAMPLE_NAME, company=await company_profile(db, principal.tenant_id),
                                   unsubscribe_url="https://…/unsubscribe/…")
    return page(request, "marketing/campaigns/campaign.html", status_code=status_code, campaign=campaign,
                state=campaigns.describe(campaign), segment_name=names.get(str(campaign.segment_id)),
                attribution=await campaigns.attribution(db, principal.tenant_id, campaign),
                recipients=shown, status=status or "", statuses=STATUSES,
                next_after=shown[-1].customer_id if len(shown) == campaigns.RECIPIENTS_PAGE else None,
                preview_subject=subject, preview_text=text, can_manage=principal.role in MARKETERS,
                errors=errors or {})


class CampaignPagesController(Controller):
    path = BASE
    include_in_schema = False
    guards = [see_marketing]
    dependencies = DEPS

    @get("/")
    async def index(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal) -> Template:
        found = await campaigns.list_campaigns(db, principal)
        return page(request, "marketing/campaigns/list.html", campaigns=found,
                    states={c.id: campaigns.describe(c) for c in found},
                    segment_names=await segments.names(db, principal.tenant_id),
                    can_manage=principal.role in MARKETERS)

    @get("/new", guards=[manage_marketing])
    async def new(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal) -> Template:
        return await _form(request, db, principal, None, values={"pace_per_minute": "600", "attribution_days": "7",
                                                                 "time": "09:00"})

    @post("/new", guards=[manage_marketing])
    async def create(self, request: Request[Any, Any, Any], db: AsyncSession,
                     principal: Principal) -> Template | Redirect:
        form = await form_data(request)
        raw, errors = _from_form(form, principal.timezone)
        try:
            campaign = await campaigns.create_campaign(db, principal, raw, errors=errors, strict=False,
                                                       ip=client_ip(request))
        except ProblemError as problem:
            if problem.status != 422:
                raise
            await db.rollback()
            return await _form(request, db, principal, None, values=form, errors=form_errors(problem), status_code=422)
        return Redirect(f"{BASE}/{campaign.id}?done=campaign_saved", status_code=303)

    @get("/segment-count")
    async def segment_count(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                            segment_id: str = "") -> Template:
        """The chosen segment's live count, for the form (htmx)."""
        parsed = campaigns.as_id(segment_id) if segment_id else None
        counts = await segment_counts(db, principal, parsed) if parsed else None
        return page(request, "marketing/campaigns/_segment_count.html", counts=counts, chosen=bool(segment_id))

    @get("/{campaign_id:uuid}")
    async def show(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                   campaign_id: uuid.UUID, status: StatusParam = None, after: str | None = None) -> Template:
        campaign = await campaigns.get_campaign(db, principal, campaign_id)
        return await _campaign_page(request, db, principal, campaign, status=status, after=id_cursor(after))

    @get("/{campaign_id:uuid}/edit", guards=[manage_marketing])
    async def edit(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                   campaign_id: uuid.UUID) -> Template | Redirect:
        campaign = await campaigns.get_campaign(db, principal, campaign_id)
        if campaign.status not in campaigns.EDITABLE:
            return Redirect(f"{BASE}/{campaign.id}", status_code=303)
        return await _form(request, db, principal, campaign, values=_form_values(campaign, principal.timezone))

    @post("/{campaign_id:uuid}/edit", guards=[manage_marketing])
    async def update(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                     campaign_id: uuid.UUID) -> Template | Redirect:
        campaign = await campaigns.get_campaign(db, principal, campaign_id)  # another company's: 404 first
        form = await form_data(request)
        raw, errors = _from_form(form, principal.timezone)
        try:
            await campaigns.update_campaign(db, principal, campaign_id, raw, errors=errors, strict=False,
                                            ip=client_ip(request))
        except ProblemError as problem:
            if problem.status != 422:
                raise
            await db.rollback()
            return await _form(request, db, principal, campaign, values=form, errors=form_errors(problem),
                               status_code=422)
        return Redirect(f"{BASE}/{campaign_id}?done=campaign_saved", status_code=303)

    @post("/{campaign_id:uuid}/schedule", guards=[manage_marketing])
    async def schedule(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                       campaign_id: uuid.UUID) -> Template | Redirect:
        try:
            await campaigns.schedule_campaign(db, principal, campaign_id, ip=client_ip(request))
        except ProblemError as problem:
            if problem.status not in (409, 422):
                raise
            await db.rollback()
            campaign = await campaigns.get_campaign(db, principal, campaign_id)
            return await _campaign_page(request, db, principal, campaign, errors=form_errors(problem),
                                        status_code=problem.status)
        return Redirect(f"{BASE}/{campaign_id}?done=campaign_scheduled", status_code=303)

    @post("/{campaign_id:uuid}/cancel", guards=[manage_marketing])
    async def cancel(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                     campaign_id: uuid.UUID) -> Template | Redirect:
        try:
            await campaigns.cancel_campaign(db, principal, campaign_id, ip=client_ip(request))
        except ProblemError as problem:
            if problem.status != 409:
                raise
            await db.rollback()
            campaign = await campaigns.get_campaign(db, principal, campaign_id)
            return await _campaign_page(request, db, principal, campaign, errors=form_errors(problem),
                                        status_code=409)
        return Redirect(f"{BASE}/{campaign_id}?done=campaign_cancelled", status_code=303)


# --- the JSON API -------------------------------------------------------------------------------


async def _out(db: AsyncSession, principal: Principal, campaign: Campaign, *, measured: bool = False) -> CampaignOut:
    names = await segments.names(db, principal.tenant_id)
    return campaigns.to_out(campaign, principal, segment_name=names.get(str(campaign.segment_id)),
                            attribution=await campaigns.attribution(db, principal.tenant_id, campaign)
                            if measured else None)


class CampaignsApiController(Controller):
    path = "/api/v1/campaigns"
    tags = ["Marketing"]
    guards = [see_marketing]
    dependencies = DEPS

    @get("/", summary="The company's campaigns, newest first")
    async def list_campaigns(self, db: AsyncSession, principal: Principal,
                             status: CampaignStatusParam = None) -> list[CampaignOut]:
        names = await segments.names(db, principal.tenant_id)
        return [campaigns.to_out(c, principal, segment_name=names.get(str(c.segment_id)))
                for c in await campaigns.list_campaigns(db, principal, status=status)]

    @post("/", summary="Create a campaign (a draft): an email to a segment", guards=[manage_marketing],
          status_code=201,
          description="The subject and body may say {name}, {coupon_code} and {company}. scheduled_at without an "
                      "offset is in the company's time zone; schedule the campaign to send it then.")
    async def create(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                     data: CampaignIn) -> Response[CampaignOut]:
        async def create() -> CampaignOut:
            campaign = await campaigns.create_campaign(db, principal, msgspec.structs.asdict(data),
                                                       ip=client_ip(request))
            return await _out(db, principal, campaign)

        return await idempotent_create(request, db, principal, create)

    @get("/{campaign_id:uuid}", summary="A campaign with its counts and the orders attributed to it")
    async def get_campaign(self, db: AsyncSession, principal: Principal, campaign_id: uuid.UUID) -> CampaignOut:
        return await _out(db, principal, await campaigns.get_campaign(db, principal, campaign_id), measured=True)

    @put("/{campaign_id:uuid}", summary="Change a draft campaign", guards=[manage_marketing])
    async def update(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                     campaign_id: uuid.UUID) -> CampaignOut:
        await campaigns.get_campaign(db, principal, campaign_id)  # another company's: 404 before the body's 422
        data = decode_json(await request.body(), CampaignIn)
        campaign = await campaigns.update_campaign(db, principal, campaign_id, msgspec.structs.asdict(data),
                                                   ip=client_ip(request))
        return await _out(db, principal, campaign)

    @post("/{campaign_id:uuid}/schedule", summary="Schedule a draft campaign", guards=[manage_marketing],
          status_code=200, description='Body (optional): {"scheduled_at": ...}; without one, the time the draft has.')
    async def schedule(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                       campaign_id: uuid.UUID) -> CampaignOut:
        await campaigns.get_campaign(db, principal, campaign_id)
        body = await request.body()
        data = decode_json(body, ScheduleIn) if body.strip() else ScheduleIn()
        campaign = await campaigns.schedule_campaign(db, principal, campaign_id, at=data.scheduled_at,
                                                     ip=client_ip(request))
        return await _out(db, principal, campaign)

    @post("/{campaign_id:uuid}/cancel", summary="Cancel a campaign before it has finished", guards=[manage_marketing],
          status_code=200)
    async def cancel(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                     campaign_id: uuid.UUID) -> CampaignOut:
        campaign = await campaigns.cancel_campaign(db, principal, campaign_id, ip=client_ip(request))
        return await _out(db, principal, campaign)

    @get("/{campaign_id:uuid}/recipients", summary="A campaign's recipients by customer id; page on with after")
    async def recipients(self, db: AsyncSession, principal: Principal, campaign_id: uuid.UUID,
                         status: StatusParam = None, after: str | None = None,
                         limit: PageSize = campaigns.RECIPIENTS_PAGE) -> list[RecipientOut]:
        campaign = await campaigns.get_campaign(db, principal, campaign_id)
        return [RecipientOut(customer_id=r.customer_id, email=r.email, status=r.status, reason=r.reason,
                             sent_at=r.sent_at)
                for r in await campaigns.recipients(db, principal, campaign, status=status, after=id_cursor(after),
                                                    limit=limit)]


route_handlers: list[Any] = [CampaignPagesController, CampaignsApiController]
