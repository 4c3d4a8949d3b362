"""The marketing console's home (promotions in force and scheduled, coupons, segments, campaigns)
and its settings (how order capture treats promotions)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from core.auth import Principal
from core.deps import DEPS
from core.pages import NOTICES, client_ip, form_data, form_errors, page, redirect
from core.problems import ProblemError
from marketing import campaigns, coupons, promotions, segments, settings
from marketing.guards import MARKETERS, manage_marketing, see_marketing
from marketing.models import CAPTURE_MODES
from rules import schedule

NOTICES.update({"marketing_settings_saved": "Marketing settings saved: they apply to the next orders captured."})

# What each capture mode does, in the words the settings page shows under its choice.
MODE_HELP = {
    "apply": "Order capture applies the promotions in force to each order, on top of the discounts the channel "
             "sent, records each promotion used with the order, and counts it against its limits and budget.",
    "check": "The channels apply promotions themselves (pricing their carts through the API). Order capture "
             "keeps each order's figures as sent, records the promotions it was entitled to, and refuses an order "
             "whose discounts are more than the promotions in force allow, saying why.",
    "off": "Promotions are not applied at capture: orders keep the figures the channel sent, and codes are not "
           "checked. Promotions can still be priced through the API.",
}


def _promotion_names(version: Any) -> list[str]:
    """The promotions of a version that are switched on, by name."""
    found = version.document.get("promotions", []) if version is not None else []
    return [str(p.get("name") or p.get("id")) for p in found if isinstance(p, dict) and p.get("enabled", True)]


class MarketingPagesController(Controller):
    path = "/app/marketing"
    include_in_schema = False
    guards = [see_marketing]
    dependencies = DEPS

    @get("/")
    async def home(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal) -> Template:
        rule_set, versions, in_force = await promotions.overview(db, principal)
        now = clock.now()
        scheduled = sorted((v for v in versions if schedule.status(v, versions, now) == "scheduled"),
                           key=lambda v: v.effective_from)
        return page(request, "marketing/home.html", in_force=in_force, in_force_names=_promotion_names(in_force),
                    scheduled=[(v, _promotion_names(v)) for v in scheduled],
                    draft_count=len(rule_set.draft.get("promotions", [])),
                    coupon_totals=await coupons.totals(db, principal.tenant_id),
                    segments=await segments.list_segments(db, principal.tenant_id),
                    campaigns=await campaigns.list_campaigns(db, principal, limit=5),
                    settings=await settings.get_settings(db, principal.tenant_id),
                    mode_labels=settings.MODE_LABELS, can_manage=principal.role in MARKETERS)

    @get("/settings")
    async def settings_page(self, request: Request[Any, Any, Any], db: AsyncSession,
                            principal: Principal) -> Template:
        current = await settings.get_settings(db, principal.tenant_id)
        return self._settings(request, principal, current,
                              {"capture_mode": current.capture_mode,
                               "refuse_invalid_coupons": "1" if current.refuse_invalid_coupons else ""})

    @post("/settings", guards=[manage_marketing])
    async def save(self, request: Request[Any, Any, Any], db: AsyncSession,
                   principal: Principal) -> Template | Redirect:
        data = await form_data(request)
        try:
            await settings.save_settings(db, principal, capture_mode=data.get("capture_mode", ""),
                                         refuse_invalid_coupons=bool(data.get("refuse_invalid_coupons")),
                                         ip=client_ip(request))
        except ProblemError as problem:
            if problem.status != 422:
                raise
            await db.rollback()
            current = await settings.get_settings(db, principal.tenant_id)
            return self._settings(request, principal, current, data, errors=form_errors(problem), status_code=422)
        return redirect("/app/marketing/settings", done="marketing_settings_saved")

    def _settings(self, request: Request[Any, Any, Any], principal: Principal, current: settings.Settings,
                  values: dict[str, str], *, errors: dict[str, str] | None = None, status_code: int = 200) -> Template:
        return page(request, "marketing/settings.html", status_code=status_code, current=current, values=values,
                    errors=errors or {}, modes=[(m, settings.MODE_LABELS[m], MODE_HELP[m]) for m in CAPTURE_MODES],
                    can_manage=principal.role in MARKETERS)


route_handlers = [MarketingPagesController]
