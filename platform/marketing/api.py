"""Marketing in the JSON API: pricing a cart, the promotions rule set (draft, validation, versions),
the marketing settings, and redemptions."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post, put
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from core.auth import FOR_ORDER_KEYS, Principal, admins_only, requires, signed_in
from core.deps import DEPS
from core.idempotency import idempotent_create
from core.pages import client_ip
from core.params import NumberParam, PageSize
from core.problems import invalid, not_found
from marketing import pricing, promotions, settings
from marketing.guards import MARKETERS, manage_marketing, see_customer_marketing, see_marketing
from marketing.models import Redemption
from marketing.schemas import (
    AppliedOut,
    CartIn,
    CouponOut,
    MarketingSettingsIn,
    MarketingSettingsOut,
    PricedLineOut,
    PricingOut,
    RedemptionOut,
    VerdictOut,
)
from rules import promotions as pure
from rules import schedule
from rules.api import aware, version_out
from rules.schemas import DraftIn, PublishIn
from rules.service import problems_error

# Shops price carts with their order-intake key; marketers and customer service try them.
price_carts = requires(*MARKETERS, "customer_service", "read_only")
PLACED_YEARS = (1900, 2999)  # a cart priced as if placed then (times far out overflow time zone arithmetic)


def quote_out(quote: pricing.Quote) -> PricingOut:
    result, request = quote.pricing, quote.request
    lines = []
    for i, line in enumerate(request.lines):
        amount = line.unit_price_minor * line.quantity - line.discount_minor
        lines.append(PricedLineOut(line_no=line.line_no, sku=line.sku, quantity=line.quantity,
                                   unit_price_minor=line.unit_price_minor, amount_minor=amount,
                                   discount_minor=result.line_discounts[i],
                                   line_discount_minor=result.line_class_discounts[i],
                                   net_minor=amount - result.line_discounts[i]))
    subtotal = sum(line.amount_minor for line in lines)
    coupons = []
    for state in result.coupons:
        if state.problem is not None:
            message = pure.coupon_message(state)
        elif state.promotion_id not in quote.promotion_ids:
            message = f"Code {state.code} is valid, but its promotion is not in force"
        else:
            message = f"Code {state.code} is valid"
        coupons.append(CouponOut(code=state.code, status=state.problem or "valid", promotion_id=state.promotion_id,
                                 message=message))
    return PricingOut(
        currency=request.currency, version=quote.version, placed_at=quote.at, lines=lines, subtotal_minor=subtotal,
        order_discount_minor=result.order_discount_minor, shipping_fee_minor=request.shipping_fee_minor,
        shipping_discount_minor=result.shipping_discount_minor, total_discount_minor=result.total_discount_minor,
        total_minor=subtotal - sum(result.line_discounts) + request.shipping_fee_minor
        - result.shipping_discount_minor,
        applied=[AppliedOut(promotion_id=a.promotion_id, name=a.name, klass=a.klass, amount_minor=a.amount_minor,
                            line_amounts=list(a.line_amounts), shipping_minor=a.shipping_minor,
                            coupon_code=a.coupon_code) for a in result.applied],
        trace=[VerdictOut(promotion_id=v.promotion_id, name=v.name, applied=v.applied, reason=v.reason,
                          message=v.message, details=list(v.details)) for v in result.trace],
        coupons=coupons)


def redemption_out(row: Redemption) -> RedemptionOut:
    return RedemptionOut(
        id=row.id, order_id=row.order_id, order_number=row.order_number, customer_id=row.customer_id,
        promotion_id=row.promotion_id, promotion_name=row.promotion_name, promotion_class=row.promotion_class,
        rule_version=row.rule_version, coupon_code=row.coupon_code, amount_minor=row.amount_minor,
        currency=row.currency, shipping_minor=row.shipping_minor, given_back_minor=row.given_back_minor,
        use_given_back=row.use_given_back,
        lines=[{"line_no": entry["line_no"], "amount_minor": entry["amount_minor"]} for entry in row.lines or []],
        created_at=row.created_at)


def settings_out(found: settings.Settings) -> MarketingSettingsOut:
    return MarketingSettingsOut(capture_mode=found.capture_mode, refuse_invalid_coupons=found.refuse_invalid_coupons,
                                updated_at=found.updated_at, updated_by=found.updated_by)


def _problems(found: list[Any]) -> list[dict[str, str]]:
    return [{"path": p.path, "message": p.message} for p in found]


def _version_out(version: Any, versions: list[Any], timezone: str, *, document: bool = False) -> dict[str, Any]:
    data = version_out(version, versions, timezone, document=document)
    data.pop("rules", None)
    data["promotions"] = len(version.document.get("promotions", []))
    return data


class PricingApiController(Controller):
    path = "/api/v1"
    tags = ["Marketing"]
    guards = [signed_in]
    dependencies = DEPS

    @post("/pricing", summary="Price a cart: discounts per line, order and shipping, with the reasons",
          description="Prices a cart with the promotions in force (at placed_at, default now) and consumes "
                      "nothing: no coupon is used up. Every promotion is in the trace, applied or why not; every "
                      "code in coupons with its status. An unknown SKU is a problem (422), by line.",
          guards=[price_carts], status_code=200, opt=FOR_ORDER_KEYS)
    async def price(self, db: AsyncSession, principal: Principal, data: CartIn) -> PricingOut:
        if data.placed_at is not None and not PLACED_YEARS[0] <= data.placed_at.year <= PLACED_YEARS[1]:
            message = f"Give placed_at between the years {PLACED_YEARS[0]} and {PLACED_YEARS[1]}."
            raise invalid({"placed_at": message}, detail=message)
        at = aware(data.placed_at, principal.timezone, "placed_at")
        return quote_out(await pricing.quote(db, principal, data, at=at))

    @get("/redemptions", summary="Promotions applied to orders, newest first",
         guards=[see_customer_marketing])
    async def list_redemptions(
        self, db: AsyncSession, principal: Principal, order_id: uuid.UUID | None = None,
        customer_id: uuid.UUID | None = None, coupon: Annotated[str | None, Parameter(max_length=40)] = None,
        promotion_id: Annotated[str | None, Parameter(max_length=64)] = None, limit: PageSize = 100,
    ) -> list[RedemptionOut]:
        rows = await pricing.redemptions_of(db, principal.tenant_id, order_id=order_id, customer_id=customer_id,
                                            coupon_code=coupon or None, promotion_id=promotion_id or None,
                                            limit=limit)
        return [redemption_out(row) for row in rows]


class MarketingSettingsApiController(Controller):
    path = "/api/v1/settings/marketing"
    tags = ["Marketing"]
    guards = [signed_in]
    dependencies = DEPS

    @get("/", summary="How order capture treats promotions, and coupons that can't be used",
         guards=[see_marketing])
    async def get_settings(self, db: AsyncSession, principal: Principal) -> MarketingSettingsOut:
        return settings_out(await settings.get_settings(db, principal.tenant_id))

    @put("/", summary="Change the marketing settings", guards=[admins_only])
    async def put_settings(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                           data: MarketingSettingsIn) -> MarketingSettingsOut:
        return settings_out(await settings.save_settings(
            db, principal, capture_mode=data.capture_mode, refuse_invalid_coupons=data.refuse_invalid_coupons,
            ip=client_ip(request)))


class PromotionRulesApiController(Controller):
    """The promotions rule set, as ``rules.api`` serves routing's: checked against the company's
    segments and catalog."""

    path = "/api/v1/rule-sets/promotions"
    tags = ["Marketing"]
    guards = [see_marketing]
    dependencies = DEPS

    @get("/", summary="The promotions rule set: versions, the one in force, upcoming changes")
    async def overview(self, db: AsyncSession, principal: Principal) -> dict[str, Any]:
        rule_set, all_versions, in_force = await promotions.overview(db, principal)
        return {
            "id": rule_set.id, "kind": rule_set.kind, "timezone": principal.timezone,
            "draft_revision": rule_set.draft_revision, "draft_updated_at": rule_set.draft_updated_at,
            "in_force": in_force.number if in_force else None,
            "upcoming": [{"from": p.start, "until": p.end, "version": p.version.number if p.version else None}
                         for p in schedule.upcoming(all_versions, clock.now())],
            "versions": [_version_out(v, all_versions, principal.timezone) for v in all_versions],
        }

    @get("/draft", summary="The draft, with its problems if any")
    async def get_draft(self, db: AsyncSession, principal: Principal) -> dict[str, Any]:
        rule_set = await promotions.rule_set(db, principal)
        return {"revision": rule_set.draft_revision, "document": rule_set.draft,
                "updated_at": rule_set.draft_updated_at, "updated_by": rule_set.draft_updated_by,
                "problems": _problems(await promotions.problems(db, principal.tenant_id, rule_set.draft))}

    @put("/draft", summary="Replace the draft (refused, unchanged, when invalid)", guards=[manage_marketing])
    async def put_draft(self, db: AsyncSession, principal: Principal, data: DraftIn) -> dict[str, Any]:
        found = await promotions.problems(db, principal.tenant_id, data.document)
        if found:
            raise problems_error(found)
        rule_set = await promotions.save_draft(db, principal, data.document, revision=data.revision)
        return {"revision": rule_set.draft_revision, "document": rule_set.draft, "problems": []}

    @post("/validate", summary="Check a document without saving it", status_code=200)
    async def validate(self, db: AsyncSession, principal: Principal, data: dict[str, Any]) -> dict[str, Any]:
        found = await promotions.problems(db, principal.tenant_id, data.get("document", data))
        return {"valid": not found, "problems": _problems(found)}

    @get("/versions", summary="Published versions, newest first")
    async def list_versions(self, db: AsyncSession, principal: Principal) -> list[dict[str, Any]]:
        _, all_versions, _ = await promotions.overview(db, principal)
        return [_version_out(v, all_versions, principal.timezone) for v in all_versions]

    @get("/versions/{number:int}", summary="A published version with its document")
    async def get_version(self, db: AsyncSession, principal: Principal, number: NumberParam) -> dict[str, Any]:
        _, all_versions, _ = await promotions.overview(db, principal)
        found = next((v for v in all_versions if v.number == number), None)
        if found is None:
            raise not_found(f"Version {number}")
        return _version_out(found, all_versions, principal.timezone, document=True)

    @post("/versions", summary="Publish the draft, or republish a version, now or from a date",
          guards=[manage_marketing], status_code=201)
    async def publish(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                      data: PublishIn) -> Response[Any]:
        async def create() -> dict[str, Any]:
            published = await promotions.publish(
                db, principal, source=data.source_version,
                effective_from=aware(data.effective_from, principal.timezone, "effective_from"),
                effective_to=aware(data.effective_to, principal.timezone, "effective_to"),
                note=data.note, ip=client_ip(request))
            _, all_versions, _ = await promotions.overview(db, principal)
            return _version_out(published, all_versions, principal.timezone)
        return await idempotent_create(request, db, principal, create)

    @post("/versions/{number:int}/withdraw", summary="Withdraw a scheduled version", guards=[manage_marketing],
          status_code=200)
    async def withdraw(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                       number: NumberParam) -> dict[str, Any]:
        withdrawn = await promotions.withdraw(db, principal, number, ip=client_ip(request))
        _, all_versions, _ = await promotions.overview(db, principal)
        return _version_out(withdrawn, all_versions, principal.timezone)


route_handlers = [PricingApiController, MarketingSettingsApiController, PromotionRulesApiController]
