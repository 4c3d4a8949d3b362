"""The public pricing page, and the console's Billing page for owners and admins: the plan, the
period's usage live, the estimated invoice, past invoices and credit notes (printable and PDF), the
card on file, billing details with the VAT number checked as typed, and a change of plan."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.di import Provide
from litestar.response import Redirect, ServerSentEvent, Template
from sqlalchemy.ext.asyncio import AsyncSession

from billing import accounts, collection, config, display, invoicing, plans
from billing.models import BillingAccount
from billing.pdf import pdf_response
from core import clock, live
from core.auth import Principal, admins_only
from core.deps import DEPS, provide_db
from core.forms import parse_int
from core.locale import format_money
from core.pages import NOTICES, client_ip, form_data, form_errors, page, redirect
from core.problems import ProblemError
from core.validation import countries

NOTICES.update({
    "billing_details_saved": "Billing details saved: the next invoice is made out to them.",
    "billing_details_saved_unchecked": "Billing details saved: the next invoice is made out to them. VIES, the "
                                       "EU's register, could not be reached: the VAT number is checked by its "
                                       "format only.",
    "plan_next": "Plan change saved: the new plan applies from the next period.",
    "plan_now": "Plan changed: the rest of this period is billed on the new plan, prorated.",
    "card_saved": "Card saved: open invoices are collected with it.",
})

DETAIL_FIELDS = ("legal_name", "address_line1", "address_line2", "postcode", "city", "country", "billing_email",
                 "vat_number")
CARD_FIELDS = ("number", "exp_month", "exp_year", "cvc")
PLAN_FIELDS = ("plan", "when")
WHEN = {"next_period": "From the next period", "now": "Now, prorated"}
DIMENSION_TITLES = {"orders": ("Orders processed", "Orders a month"),
                    "locations": ("Active locations", "Locations active in the month")}
NO_STRIPE = "Invoices are issued here and not collected: no Stripe account is configured for the platform."
INVOICES_PER_PAGE = 20


def _collecting() -> None:
    """Cards are taken only when the platform collects through Stripe."""
    if not collection.configured():
        raise ProblemError(404, "Not found", "No Stripe account is configured for the platform: invoices are not "
                                             "collected, and no card is taken.")


# --- the public pricing page --------------------------------------------------------------------


@dataclass
class DimensionCard:
    title: str
    unit: str
    one: str
    rows: list[display.TierRow]


@dataclass
class PlanCard:
    code: str
    name: str
    description: str
    currency: str
    base_fee_minor: int
    trial_days: int
    featured: bool
    dimensions: list[DimensionCard]
    included: str  # "500 orders and 2 locations included"


def plan_cards(offered: list[Any]) -> list[PlanCard]:
    cards = []
    for i, plan in enumerate(offered):
        dimensions, included = [], []
        for name, spec in (plan.dimensions or {}).items():
            if units := int(spec.get("included") or 0):
                included.append(f"{units:,} {display.unit_words(name, units)}")
            title, unit = DIMENSION_TITLES.get(name, (name.capitalize(), name.capitalize()))
            dimensions.append(DimensionCard(title, unit, display.unit_words(name, 1), display.tier_rows(spec, name)))
        cards.append(PlanCard(plan.code, plan.name, plan.description, plan.currency, plan.base_fee_minor,
                              plan.trial_days, len(offered) >= 3 and i == len(offered) // 2, dimensions,
                              f"{' and '.join(included)} included" if included else ""))
    return cards


class PricingController(Controller):
    include_in_schema = False
    dependencies = {"db": Provide(provide_db)}

    @get("/pricing")
    async def pricing(self, request: Request[Any, Any, Any], db: AsyncSession) -> Template:
        return page(request, "public/pricing.html", plans=plan_cards(await plans.plans_on_offer(db)))


# --- the console's Billing page -----------------------------------------------------------------


@dataclass
class UsageRow:
    label: str
    count: int
    next_tier: str


@dataclass
class DocumentRow:
    invoice: Any
    period: str
    status: str
    tone: str


def usage_rows(estimate: invoicing.Estimate, principal: Principal) -> list[UsageRow]:
    rows = []
    for dimension, label, count in (("orders", "Orders routed", estimate.usage.orders),
                                    ("locations", "Active locations", estimate.usage.locations)):
        step = estimate.next_tier.get(dimension)
        if step is None:
            words = "No further tier: the unit price stays as it is."
        else:
            units, unit_minor = step
            words = (f"{units:,} more {display.unit_words(dimension, units)} until the next tier "
                     f"(then {format_money(unit_minor, estimate.currency, principal.locale)} each)")
        rows.append(UsageRow(label, count, words))
    return rows


def _details_values(account: BillingAccount) -> dict[str, str]:
    return {name: str(getattr(account, name) or "") for name in DETAIL_FIELDS}


def _split(errors: dict[str, str], fields: tuple[str, ...], form: str) -> dict[str, str]:
    """The problems a form shows beside its fields; the others above it, under ``<form>__all__``."""
    shown = {name: message for name, message in errors.items() if name in fields}
    rest = [message for name, message in errors.items() if name not in fields]
    if rest:
        shown[f"{form}__all__"] = " ".join(rest)
    return shown


async def billing_page(request: Request[Any, Any, Any], db: AsyncSession, principal: Principal, *,
                       errors: dict[str, str] | None = None, values: dict[str, Any] | None = None,
                       status_code: int = 200, before: uuid.UUID | None = None) -> Template:
    account = await accounts.account_of(db, principal.tenant_id)
    estimate = await invoicing.estimate(db, principal.tenant_id)
    period = estimate.period
    trial_days_left = None
    if period.trial:
        # Whole days: the trial runs to the midnight after its last day, so the day of sign-up is extra.
        left = period.ends_at - clock.now()
        trial_days_left = max(1, left // timedelta(days=1)) if left > timedelta(0) else 0
    listed = await invoicing.invoices_of(db, principal.tenant_id, limit=INVOICES_PER_PAGE, before=before)
    documents = [DocumentRow(doc, display.period_words(doc.period_start, doc.period_end, principal.timezone),
                             *display.status_of(doc))
                 for doc in listed.invoices]
    return page(
        request, "billing/page.html", status_code=status_code, account=account, estimate=estimate,
        period_words=display.period_words(period.starts_at, period.ends_at, principal.timezone),
        trial_days_left=trial_days_left, usage=usage_rows(estimate, principal), documents=documents,
        older_than=listed.next_cursor, paged=before is not None,
        offered=plan_cards(await plans.plans_on_offer(db)), when_choices=WHEN, countries=countries(),
        values={**_details_values(account), "when": "next_period", **(values or {})}, errors=errors or {},
        collected=config.stripe_secret_key() is not None, no_stripe=NO_STRIPE,
        publishable_key=config.stripe_publishable_key(), test_cards=config.test_cards_allowed(),
        percent=display.percent)


class BillingPagesController(Controller):
    path = "/app/billing"
    include_in_schema = False
    guards = [admins_only]
    dependencies = DEPS

    @get("/")
    async def overview(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                       before: uuid.UUID | None = None) -> Template:
        """``before``: the invoice the list continues after (the "Older invoices" link)."""
        return await billing_page(request, db, principal, before=before)

    @get("/usage")
    async def usage(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal) -> Template:
        """The usage partial the page fetches again when usage is recorded."""
        estimate = await invoicing.estimate(db, principal.tenant_id)
        return page(request, "billing/_usage.html", estimate=estimate, usage=usage_rows(estimate, principal))

    @get("/usage/live")
    async def usage_live(self, principal: Principal) -> ServerSentEvent:
        """The usage panel's server-sent events: a ``changed`` event when usage is recorded."""
        return live.stream(principal, live.Interest(tenant_id=principal.tenant_id, kinds=frozenset({"usage"})))

    @post("/vat-check")
    async def vat_check(self, request: Request[Any, Any, Any]) -> Template:
        """What the VAT number as typed would do, said beside the field."""
        data = await form_data(request)
        number, country = data.get("vat_number", "").strip()[:40], data.get("country", "").strip()[:2]
        ok, message = accounts.vat_check_message(country, number) if number else (True, "")
        return page(request, "billing/_vat_check.html", ok=ok, message=message)

    @post("/details")
    async def save_details(self, request: Request[Any, Any, Any], db: AsyncSession,
                           principal: Principal) -> Template | Redirect:
        data = await form_data(request)
        values = {name: data.get(name, "") for name in DETAIL_FIELDS}
        try:
            saved = await accounts.update_details(db, principal, accounts.BillingDetails(**values),
                                                  ip=client_ip(request))
        except ProblemError as problem:
            await db.rollback()
            return await billing_page(request, db, principal, values=values, status_code=problem.status,
                                      errors=_split(form_errors(problem), DETAIL_FIELDS, "details"))
        done = "billing_details_saved_unchecked" if saved.vat_check == "not_checked" else "billing_details_saved"
        return redirect("/app/billing", done=done)

    @post("/plan")
    async def change_plan(self, request: Request[Any, Any, Any], db: AsyncSession,
                          principal: Principal) -> Template | Redirect:
        data = await form_data(request)
        code, when = data.get("plan", ""), data.get("when", "")
        try:
            await accounts.change_plan(db, principal, code, when, ip=client_ip(request))
        except ProblemError as problem:
            await db.rollback()
            return await billing_page(request, db, principal, values={"plan": code, "when": when},
                                      status_code=problem.status,
                                      errors=_split(form_errors(problem), PLAN_FIELDS, "plan"))
        return redirect("/app/billing", done="plan_now" if when == "now" else "plan_next")

    @post("/card")
    async def save_card(self, request: Request[Any, Any, Any], db: AsyncSession,
                        principal: Principal) -> Template | Redirect:
        """A card typed into our own form: only against a fake Stripe (see ``config.test_cards_allowed``)."""
        _collecting()
        data = await form_data(request)
        values = {name: data.get(name, "").strip() for name in CARD_FIELDS}
        errors: dict[str, str] = {}
        status = 422
        month = parse_int(values["exp_month"], lo=1, hi=12)
        year = parse_int(values["exp_year"], lo=2000, hi=2100)
        if month is None:
            errors["exp_month"] = "Give the month of the card's expiry, from 1 to 12."
        if year is None:
            errors["exp_year"] = "Give the year of the card's expiry with four digits, such as 2030."
        if not errors and month is not None and year is not None:
            try:
                await collection.save_test_card(db, principal, number=values["number"], exp_month=month,
                                                exp_year=year, cvc=values["cvc"], ip=client_ip(request))
                return redirect("/app/billing", done="card_saved")
            except ProblemError as problem:
                await db.rollback()
                errors, status = form_errors(problem), problem.status
        values.pop("number")
        values.pop("cvc")
        return await billing_page(request, db, principal, values=values, status_code=status,
                                  errors=_split(errors, CARD_FIELDS, "card"))

    @post("/card/intent")
    async def card_intent(self, db: AsyncSession, principal: Principal) -> Response[dict[str, str]]:
        """A SetupIntent's client secret for Stripe Elements, asked for when the owner opens the card form."""
        _collecting()
        return Response({"client_secret": await collection.setup_intent_secret(db, principal)}, status_code=200)

    @post("/card/setup")
    async def card_setup(self, request: Request[Any, Any, Any], db: AsyncSession,
                         principal: Principal) -> Template | Redirect:
        _collecting()
        data = await form_data(request)
        try:
            await collection.finish_setup(db, principal, data.get("setup_intent", "").strip()[:255],
                                          ip=client_ip(request))
        except ProblemError as problem:
            await db.rollback()
            return await billing_page(request, db, principal, status_code=problem.status,
                                      errors=_split(form_errors(problem), (), "card"))
        return redirect("/app/billing", done="card_saved")

    @get("/invoices/{invoice_id:uuid}")
    async def invoice(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                      invoice_id: uuid.UUID) -> Template:
        doc = await display.load_document(db, principal.tenant_id, invoice_id, timezone=principal.timezone,
                                          locale=principal.locale)
        return page(request, "billing/invoice.html", doc=doc)

    @get("/invoices/{invoice_id:uuid}/pdf")
    async def invoice_pdf(self, db: AsyncSession, principal: Principal, invoice_id: uuid.UUID) -> Response[bytes]:
        doc = await display.load_document(db, principal.tenant_id, invoice_id, timezone=principal.timezone,
                                          locale=principal.locale)
        return await pdf_response(doc)


route_handlers: list[Any] = [PricingController, BillingPagesController]
