"""Settings → Orders and ``/api/v1/settings/orders``: the company's pickup window."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, get, post, put
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal, admins_only
from core.deps import DEPS
from core.pages import NOTICES, client_ip, form_errors, page, redirect
from core.problems import ProblemError
from tenants import service as tenants

NOTICES.update({"order_settings_saved": "Order settings saved."})


class OrderSettings(msgspec.Struct, forbid_unknown_fields=True):
    pickup_window_days: int


class OrderSettingsApiController(Controller):
    path = "/api/v1/settings/orders"
    tags = ["Account"]
    guards = [admins_only]
    dependencies = DEPS

    @get("/", summary="The company's order settings (the pickup window)")
    async def get_settings(self, db: AsyncSession, principal: Principal) -> OrderSettings:
        return OrderSettings(pickup_window_days=(await tenants.get_tenant(db, principal)).pickup_window_days)

    @put("/", summary="Change the company's order settings")
    async def put_settings(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                           data: OrderSettings) -> OrderSettings:
        tenant = await tenants.set_pickup_window(db, principal, data.pickup_window_days, ip=client_ip(request))
        return OrderSettings(pickup_window_days=tenant.pickup_window_days)


class OrderSettingsPagesController(Controller):
    path = "/app/settings/orders"
    include_in_schema = False
    guards = [admins_only]
    dependencies = DEPS

    @get("/")
    async def settings_page(self, request: Request[Any, Any, Any], db: AsyncSession,
                            principal: Principal) -> Template:
        tenant = await tenants.get_tenant(db, principal)
        return page(request, "settings/orders.html", values={"pickup_window_days": tenant.pickup_window_days})

    @post("/")
    async def save(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                   ) -> Template | Redirect:
        form = await request.form()
        raw = str(form.get("pickup_window_days") or "").strip()
        try:
            days = int(raw) if raw.isascii() and raw.isdigit() else -1
            await tenants.set_pickup_window(db, principal, days, ip=client_ip(request))
        except ProblemError as problem:
            await db.rollback()
            return page(request, "settings/orders.html", status_code=422, errors=form_errors(problem),
                        values={"pickup_window_days": raw})
        return redirect("/app/settings/orders", done="order_settings_saved")


route_handlers = [OrderSettingsApiController, OrderSettingsPagesController]
