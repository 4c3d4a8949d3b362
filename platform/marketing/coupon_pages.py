"""Coupons in the console and the API: single codes and batches, a batch's codes page by page
with their CSV export, a code's redemptions, and turning codes off."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Stream, Template
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from core.auth import Principal
from core.deps import DEPS
from core.forms import parse_int
from core.idempotency import idempotent_create
from core.limits import INT32_MAX
from core.pages import NOTICES, form_data, form_errors, page, redirect
from core.problems import ProblemError, invalid
from customers.service import records as customer_records
from marketing import coupons
from marketing.guards import MARKETERS, manage_marketing, see_marketing
from marketing.models import Coupon, CouponBatch, Redemption
from rules import schedule
from rules.api import aware

NOTICES.update({
    "coupon_created": "Code created.",
    "batch_created": "Batch created: its codes are ready to export.",
    "coupon_disabled": "Code turned off: orders can no longer use it.",
    "batch_disabled": "Every code of the batch is turned off.",
})

COUPONS = "/app/marketing/coupons"
PAGE = 100


def _local_day_end(typed: str, timezone: str) -> datetime | None:
    """A "valid until" date as the instant it ends: midnight after it, in the company's time zone."""
    day = date.fromisoformat(typed)
    return schedule.local_to_utc(day + timedelta(days=1), time(0, 0), timezone)


def _form_values(data: dict[str, str], principal: Principal, errors: dict[str, str], *,
                 batch: bool) -> dict[str, Any]:
    """The create forms' fields, read as typed; what can't be read goes to ``errors`` by field."""
    values: dict[str, Any] = {"promotion_id": data.get("promotion_id", "").strip()[:40]}
    uses = data.get("max_uses", "").strip()
    values["max_uses"] = None
    if uses:
        values["max_uses"] = parse_int(uses, lo=1, hi=INT32_MAX)
        if values["max_uses"] is None:
            errors["max_uses"] = "The uses per code are a whole number from 1, or empty for no limit."
    until = data.get("valid_until", "").strip()
    values["expires_at"] = None
    if until:
        try:
            values["expires_at"] = _local_day_end(until, principal.timezone)
        except (ValueError, OverflowError, schedule.LocalTimeError):  # 9999-12-31 has no day after
            errors["expires_at"] = "Give the last day the code is valid, such as 2026-12-31, or leave it empty."
    if batch:
        values["count"] = parse_int(data.get("count", ""), lo=1, hi=coupons.BATCH_MAX)
        if values["count"] is None:
            errors["count"] = f"How many codes: a whole number from 1 to {coupons.BATCH_MAX:,}."
        values["prefix"] = data.get("prefix", "")
        values["name"] = data.get("name", "")
    else:
        values["code"] = data.get("code", "") or None
    return values


async def _coupons_page(request: Request[Any, Any, Any], db: AsyncSession, principal: Principal, *,
                        errors: dict[str, str] | None = None, values: dict[str, str] | None = None,
                        form: str = "", status_code: int = 200) -> Template:
    return page(request, "marketing/coupons/index.html", status_code=status_code,
                promotions=await coupons.promotions_named(db, principal),
                batches=await coupons.list_batches(db, principal.tenant_id),
                singles=await coupons.single_codes(db, principal.tenant_id), status=coupons.status,
                can_manage=principal.role in MARKETERS, errors=errors or {}, values=values or {}, form=form,
                batch_max=coupons.BATCH_MAX, prefix_max=coupons.PREFIX_MAX, code_max=coupons.CODE_MAX)


def _export_name(batch: CouponBatch) -> str:
    slug = "".join(c if c.isascii() and c.isalnum() else "-" for c in batch.name.lower())[:40].strip("-") or "codes"
    return f"coupons-{slug}-{batch.id.hex[:8]}.csv"


def _export(tenant_id: uuid.UUID, batch: CouponBatch) -> Stream:
    return Stream(coupons.export_csv(tenant_id, batch.id), media_type="text/csv; charset=utf-8",
                  headers={"Content-Disposition": f'attachment; filename="{_export_name(batch)}"'})


class CouponPagesController(Controller):
    path = COUPONS
    include_in_schema = False
    guards = [see_marketing]
    dependencies = DEPS

    @get("/")
    async def index(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal) -> Template:
        return await _coupons_page(request, db, principal, values={"count": "100", "max_uses": "1"})

    @post("/codes", guards=[manage_marketing])
    async def create_code(self, request: Request[Any, Any, Any], db: AsyncSession,
                          principal: Principal) -> Template | Redirect:
        data = await form_data(request)
        errors: dict[str, str] = {}
        values = _form_values(data, principal, errors, batch=False)
        try:
            if errors:  # with what the service finds wrong in the rest: every problem at once
                raise invalid({**await coupons.coupon_problems(db, principal, **values), **errors})
            coupon = await coupons.create_coupon(db, principal, **values)
        except ProblemError as problem:
            if problem.status != 422:
                raise
            await db.rollback()
            return await _coupons_page(request, db, principal, errors={**form_errors(problem), **errors},
                                       values=data, form="code", status_code=422)
        return redirect(f"{COUPONS}/codes/{coupon.id}", done="coupon_created")

    @post("/batches", guards=[manage_marketing])
    async def create_batch(self, request: Request[Any, Any, Any], db: AsyncSession,
                           principal: Principal) -> Template | Redirect:
        data = await form_data(request)
        errors: dict[str, str] = {}
        values = _form_values(data, principal, errors, batch=True)
        try:
            if errors:  # with what the service finds wrong in the rest: every problem at once
                raise invalid({**await coupons.batch_problems(db, principal, **values), **errors})
            batch = await coupons.create_batch(db, principal, **values)
        except ProblemError as problem:
            if problem.status != 422:
                raise
            await db.rollback()
            return await _coupons_page(request, db, principal, errors={**form_errors(problem), **errors},
                                       values=data, form="batch", status_code=422)
        return redirect(f"{COUPONS}/batches/{batch.id}", done="batch_created")

    @get("/batches/{batch_id:uuid}")
    async def batch_page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                         batch_id: uuid.UUID, after: str = "") -> Template:
        summary = await coupons.batch_summary(db, principal.tenant_id, batch_id)
        codes = await coupons.batch_codes(db, principal.tenant_id, batch_id, after=after[:coupons.CODE_MAX],
                                          limit=PAGE + 1)
        promotions = await coupons.promotions_named(db, principal)
        return page(request, "marketing/coupons/batch.html", summary=summary, batch=summary.batch,
                    codes=codes[:PAGE], next_after=codes[PAGE - 1].code if len(codes) > PAGE else None,
                    after=after, promotion_name=promotions.get(summary.batch.promotion_id),
                    status=coupons.status, now=clock.now(), can_manage=principal.role in MARKETERS)

    @get("/batches/{batch_id:uuid}/codes.csv")
    async def batch_csv(self, db: AsyncSession, principal: Principal, batch_id: uuid.UUID) -> Stream:
        return _export(principal.tenant_id, await coupons.get_batch(db, principal.tenant_id, batch_id))

    @post("/batches/{batch_id:uuid}/disable", guards=[manage_marketing])
    async def disable_batch(self, db: AsyncSession, principal: Principal, batch_id: uuid.UUID) -> Redirect:
        await coupons.disable_batch(db, principal, batch_id)
        return redirect(f"{COUPONS}/batches/{batch_id}", done="batch_disabled")

    @get("/codes/{coupon_id:uuid}")
    async def code_page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                        coupon_id: uuid.UUID) -> Template:
        coupon = await coupons.get_coupon(db, principal.tenant_id, coupon_id)
        batch = await coupons.get_batch(db, principal.tenant_id, coupon.batch_id) if coupon.batch_id else None
        promotions = await coupons.promotions_named(db, principal)
        used = await coupons.redemptions(db, principal.tenant_id, coupon)
        return page(request, "marketing/coupons/code.html", coupon=coupon, batch=batch,
                    promotion_name=promotions.get(coupon.promotion_id), state=coupons.status(coupon),
                    redemptions=used, customers=await customer_records(
                        db, principal.tenant_id, {r.customer_id for r in used if r.customer_id}),
                    can_manage=principal.role in MARKETERS)

    @post("/codes/{coupon_id:uuid}/disable", guards=[manage_marketing])
    async def disable_code(self, db: AsyncSession, principal: Principal, coupon_id: uuid.UUID) -> Redirect:
        await coupons.disable_coupon(db, principal, await coupons.get_coupon(db, principal.tenant_id, coupon_id))
        return redirect(f"{COUPONS}/codes/{coupon_id}", done="coupon_disabled")


# --- the API --------------------------------------------------------------------------------------

PromotionId = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
Uses = Annotated[int, msgspec.Meta(ge=1, le=INT32_MAX)]


class CouponIn(msgspec.Struct, forbid_unknown_fields=True):
    promotion_id: PromotionId
    code: Annotated[str, msgspec.Meta(max_length=coupons.CODE_MAX)] | None = None  # none: one is made up
    max_uses: Uses | None = None  # none: as many as the promotion allows
    starts_at: datetime | None = None  # a time without offset is in the company's time zone
    expires_at: datetime | None = None


class BatchIn(msgspec.Struct, forbid_unknown_fields=True):
    promotion_id: PromotionId
    count: Annotated[int, msgspec.Meta(ge=1, le=coupons.BATCH_MAX)]
    prefix: Annotated[str, msgspec.Meta(max_length=coupons.PREFIX_MAX)] = ""
    max_uses: Uses | None = None  # per code; none: as many as the promotion allows
    expires_at: datetime | None = None
    name: Annotated[str, msgspec.Meta(max_length=coupons.NAME_MAX)] = ""


def coupon_out(coupon: Coupon) -> dict[str, Any]:
    return {"id": coupon.id, "code": coupon.code, "promotion_id": coupon.promotion_id, "batch_id": coupon.batch_id,
            "max_uses": coupon.max_uses, "uses": coupon.uses, "starts_at": coupon.starts_at,
            "expires_at": coupon.expires_at, "disabled_at": coupon.disabled_at, "status": coupons.status(coupon),
            "created_at": coupon.created_at, "created_by": coupon.created_by}


def batch_out(summary: coupons.BatchSummary) -> dict[str, Any]:
    batch = summary.batch
    return {"id": batch.id, "name": batch.name, "promotion_id": batch.promotion_id, "prefix": batch.prefix,
            "size": batch.size, "max_uses": batch.max_uses, "expires_at": batch.expires_at,
            "codes": summary.codes, "uses": summary.uses, "disabled": summary.disabled,
            "created_at": batch.created_at, "created_by": batch.created_by,
            "export": f"/api/v1/coupon-batches/{batch.id}/codes.csv"}


def redemption_out(redemption: Redemption) -> dict[str, Any]:
    return {"id": redemption.id, "order_id": redemption.order_id, "order_number": redemption.order_number,
            "customer_id": redemption.customer_id, "promotion_id": redemption.promotion_id,
            "promotion_name": redemption.promotion_name, "amount_minor": redemption.amount_minor,
            "currency": redemption.currency, "given_back_minor": redemption.given_back_minor,
            "use_given_back": redemption.use_given_back, "created_at": redemption.created_at}


CodesLimit = Annotated[int, Parameter(ge=1, le=1000)]


class CouponApiController(Controller):
    path = "/api/v1"
    tags = ["Marketing: coupons"]
    guards = [see_marketing]
    dependencies = DEPS

    @post("/coupons", summary="Create a code for a promotion (the one given, or one made up)",
          guards=[manage_marketing], status_code=201)
    async def create_coupon(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                            data: CouponIn) -> Response[Any]:
        async def create() -> dict[str, Any]:
            return coupon_out(await coupons.create_coupon(
                db, principal, promotion_id=data.promotion_id, code=data.code, max_uses=data.max_uses,
                starts_at=aware(data.starts_at, principal.timezone, "starts_at"),
                expires_at=aware(data.expires_at, principal.timezone, "expires_at")))
        return await idempotent_create(request, db, principal, create)

    @get("/coupons/{code:str}", summary="A code (in any case), with the orders that used it")
    async def get_coupon(self, db: AsyncSession, principal: Principal, code: str) -> dict[str, Any]:
        coupon = await coupons.coupon_by_code(db, principal.tenant_id, code)
        return {**coupon_out(coupon), "redemptions": [
            redemption_out(r) for r in await coupons.redemptions(db, principal.tenant_id, coupon)]}

    @post("/coupons/{code:str}/disable", summary="Turn a code off", guards=[manage_marketing], status_code=200)
    async def disable_coupon(self, db: AsyncSession, principal: Principal, code: str) -> dict[str, Any]:
        coupon = await coupons.coupon_by_code(db, principal.tenant_id, code)
        return coupon_out(await coupons.disable_coupon(db, principal, coupon))

    @get("/coupon-batches", summary="Batches of codes, newest first")
    async def list_batches(self, db: AsyncSession, principal: Principal) -> list[dict[str, Any]]:
        return [batch_out(s) for s in await coupons.list_batches(db, principal.tenant_id)]

    @post("/coupon-batches", summary="Create a batch of unique codes for a promotion (1 to 100,000)",
          guards=[manage_marketing], status_code=201)
    async def create_batch(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                           data: BatchIn) -> Response[Any]:
        async def create() -> dict[str, Any]:
            batch = await coupons.create_batch(
                db, principal, promotion_id=data.promotion_id, count=data.count, prefix=data.prefix,
                max_uses=data.max_uses, expires_at=aware(data.expires_at, principal.timezone, "expires_at"),
                name=data.name)
            return batch_out(await coupons.batch_summary(db, principal.tenant_id, batch.id))
        return await idempotent_create(request, db, principal, create)

    @get("/coupon-batches/{batch_id:uuid}", summary="A batch with its figures")
    async def get_batch(self, db: AsyncSession, principal: Principal, batch_id: uuid.UUID) -> dict[str, Any]:
        return batch_out(await coupons.batch_summary(db, principal.tenant_id, batch_id))

    @get("/coupon-batches/{batch_id:uuid}/codes", summary="A batch's codes in code order; page on with after")
    async def batch_codes(self, db: AsyncSession, principal: Principal, batch_id: uuid.UUID, after: str = "",
                          limit: CodesLimit = 100) -> dict[str, Any]:
        await coupons.get_batch(db, principal.tenant_id, batch_id)
        found = await coupons.batch_codes(db, principal.tenant_id, batch_id, after=after[:coupons.CODE_MAX],
                                          limit=limit)
        return {"codes": [coupon_out(c) for c in found],
                "next_after": found[-1].code if len(found) == limit else None}

    @get("/coupon-batches/{batch_id:uuid}/codes.csv", summary="A batch's codes as CSV: code,promotion,max_uses,"
                                                               "uses,expires_at")
    async def batch_csv(self, db: AsyncSession, principal: Principal, batch_id: uuid.UUID) -> Stream:
        return _export(principal.tenant_id, await coupons.get_batch(db, principal.tenant_id, batch_id))

    @post("/coupon-batches/{batch_id:uuid}/disable", summary="Turn off every code of a batch",
          guards=[manage_marketing], status_code=200)
    async def disable_batch(self, db: AsyncSession, principal: Principal, batch_id: uuid.UUID) -> dict[str, Any]:
        disabled = await coupons.disable_batch(db, principal, batch_id)
        return {**batch_out(await coupons.batch_summary(db, principal.tenant_id, batch_id)),
                "disabled_now": disabled}


route_handlers = [CouponPagesController, CouponApiController]
