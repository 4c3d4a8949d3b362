"""Settings → Payments: the company's own Stripe account, and the same in the API."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post, put
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal, admins_only
from core.deps import DEPS
from core.ids import uuid7
from core.pages import NOTICES, form_errors, page, redirect
from core.problems import ProblemError, invalid
from orders.models import PaymentAccount
from tenants.service import Actor, audit

NOTICES.update({"stripe_saved": "Stripe account saved: Stripe orders are captured at shipment."})


class StripeAccountIn(msgspec.Struct, forbid_unknown_fields=True):
    secret_key: Annotated[str, msgspec.Meta(max_length=300)]


def masked(key: str) -> str:
    return f"{key[:8]}…{key[-4:]}"


async def save_stripe(session: AsyncSession, principal: Principal, key: str) -> PaymentAccount:
    key = key.strip()
    if not key.startswith(("sk_", "rk_")) or len(key) < 12:
        raise invalid({"secret_key": "Paste a Stripe secret or restricted key (it starts with sk_ or rk_)."})
    account = await session.scalar(select(PaymentAccount).where(PaymentAccount.tenant_id == principal.tenant_id,
                                                                PaymentAccount.provider == "stripe"))
    if account is None:
        account = PaymentAccount(tenant_id=principal.tenant_id, id=uuid7(), provider="stripe", secret_key=key)
        session.add(account)
    account.secret_key = key
    account.updated_by = principal.label
    await audit(session, principal.tenant_id, Actor.of(principal), "payments.stripe_key_set", target=masked(key))
    await session.flush()
    return account


async def _account(session: AsyncSession, principal: Principal) -> PaymentAccount | None:
    found: PaymentAccount | None = await session.scalar(select(PaymentAccount).where(
        PaymentAccount.tenant_id == principal.tenant_id, PaymentAccount.provider == "stripe"))
    return found


class PaymentsApiController(Controller):
    path = "/api/v1/payment-accounts"
    tags = ["Payments"]
    guards = [admins_only]
    dependencies = DEPS

    @get("/stripe", summary="The company's Stripe account (the key masked)")
    async def get_stripe(self, db: AsyncSession, principal: Principal) -> dict[str, Any]:
        account = await _account(db, principal)
        return {"configured": account is not None, "secret_key": masked(account.secret_key) if account else None}

    @put("/stripe", summary="Set the company's Stripe secret key")
    async def put_stripe(self, db: AsyncSession, principal: Principal, data: StripeAccountIn) -> dict[str, Any]:
        account = await save_stripe(db, principal, data.secret_key)
        return {"configured": True, "secret_key": masked(account.secret_key)}


class PaymentsPagesController(Controller):
    path = "/app/settings/payments"
    include_in_schema = False
    guards = [admins_only]
    dependencies = DEPS

    @get("/")
    async def payments_page(self, request: Request[Any, Any, Any], db: AsyncSession,
                            principal: Principal) -> Template:
        account = await _account(db, principal)
        return page(request, "settings/payments.html", key=masked(account.secret_key) if account else None)

    @post("/")
    async def save(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                   ) -> Template | Redirect:
        form = await request.form()
        try:
            await save_stripe(db, principal, str(form.get("secret_key") or ""))
        except ProblemError as problem:
            await db.rollback()
            account = await _account(db, principal)
            return page(request, "settings/payments.html", status_code=422, errors=form_errors(problem),
                        key=masked(account.secret_key) if account else None)
        return redirect("/app/settings/payments", done="stripe_saved")


route_handlers = [PaymentsApiController, PaymentsPagesController]
