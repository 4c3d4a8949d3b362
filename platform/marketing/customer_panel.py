"""The marketing side of the customer's page (shared with customer service), loaded into it by htmx:
consent per channel with a form to change it on the customer's request, when they unsubscribed,
the coupons they used, and the segments they are in today (each segment's condition judged by
the pure evaluator on the customer's facts, as promotions judge it)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal, requires
from core.deps import DEPS
from core.pages import NOTICES, client_ip, form_data, page
from core.problems import ProblemError, invalid
from customers import service as customers
from marketing import pricing, segments
from marketing.guards import MARKETERS, see_customer_marketing
from marketing.models import Redemption, Segment
from tenants.service import Actor, audit

NOTICES.update({"consent_saved": "Consent saved."})

CONSENT_ROLES = (*MARKETERS, "customer_service")  # who may change it, on the customer's request
change_consent = requires(*CONSENT_ROLES)
COUPONS_SHOWN = 50
CHANNELS = (("email", "Email"), ("sms", "Text messages (SMS)"))
ANSWERS = {"yes": True, "no": False}


@dataclass(frozen=True)
class Panel:
    customer: customers.CustomerRecord
    coupons: list[Redemption]
    segments: list[Segment]
    can_change: bool


async def panel(session: AsyncSession, principal: Principal, customer_id: uuid.UUID) -> Panel:
    record = await customers.get_customer(session, principal.tenant_id, customer_id)  # another company's: 404
    used = await pricing.redemptions_of(session, principal.tenant_id, customer_id=customer_id, limit=COUPONS_SHOWN)
    return Panel(customer=record, coupons=[r for r in used if r.coupon_code],
                 segments=await segments.segments_of(session, principal.tenant_id, customer_id,
                                                     timezone=principal.timezone, currency=principal.currency),
                 can_change=principal.role in CONSENT_ROLES)


async def change(session: AsyncSession, principal: Principal, customer_id: uuid.UUID, values: dict[str, str], *,
                 ip: str | None = None) -> None:
    """Set the consent per channel from the form ("yes" or "no" each), audited with what it was."""
    record = await customers.get_customer(session, principal.tenant_id, customer_id)
    errors = {f"{channel}_consent": f"Choose yes or no for {label.lower()}." for channel, label in CHANNELS
              if values.get(f"{channel}_consent") not in ANSWERS}
    if errors:
        raise invalid(errors, detail="Consent was not changed: choose yes or no for each channel.")
    email, sms = ANSWERS[values["email_consent"]], ANSWERS[values["sms_consent"]]
    if (email, sms) == (record.email_consent, record.sms_consent):
        return
    await customers.set_consent(session, principal.tenant_id, customer_id, email=email, sms=sms)
    await audit(session, principal.tenant_id, Actor.of(principal, ip), "customer.consent_changed",
                target=str(customer_id), email=[record.email_consent, email], sms=[record.sms_consent, sms])


def _is_htmx(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("HX-Request") == "true"


class CustomerMarketingController(Controller):
    path = "/app/customers"
    include_in_schema = False
    guards = [see_customer_marketing]
    dependencies = DEPS

    @get("/{customer_id:uuid}/marketing")
    async def show(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                   customer_id: uuid.UUID) -> Template:
        """The panel; without htmx (the page's noscript link) inside the console's layout."""
        return page(request, "marketing/_customer_panel.html", panel=await panel(db, principal, customer_id),
                    channels=CHANNELS, partial=_is_htmx(request))

    @post("/{customer_id:uuid}/marketing/consent", guards=[change_consent])
    async def consent(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                      customer_id: uuid.UUID) -> Template | Redirect:
        values = await form_data(request)
        try:
            await change(db, principal, customer_id, values, ip=client_ip(request))
        except ProblemError as problem:
            if problem.status != 422:
                raise
            await db.rollback()
            # htmx swaps 2xx answers only: the panel comes back with the problems beside the fields.
            return page(request, "marketing/_customer_panel.html", status_code=200 if _is_htmx(request) else 422,
                        panel=await panel(db, principal, customer_id), channels=CHANNELS,
                        partial=_is_htmx(request), errors={e.field: e.message for e in problem.errors})
        if _is_htmx(request):
            return page(request, "marketing/_customer_panel.html", panel=await panel(db, principal, customer_id),
                        channels=CHANNELS, partial=True, saved=True)
        # The notice at the top, the page scrolled to the panel (a fragment goes after the query).
        return Redirect(f"/app/customers/{customer_id}?done=consent_saved#marketing", status_code=303)


route_handlers: list[Any] = [CustomerMarketingController]
