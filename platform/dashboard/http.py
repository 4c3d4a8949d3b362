"""The console's home: the getting-started checklist until every step is done; for a store
associate, their location's fulfilment queue, which is their work."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal, signed_in
from core.deps import DEPS
from core.pages import page
from dashboard.checklist import checklist


class HomeController(Controller):
    path = "/app"
    include_in_schema = False
    guards = [signed_in]
    dependencies = DEPS

    @get("/")
    async def home(self, request: Request[Any, Any, Any], db: AsyncSession,
                   principal: Principal) -> Template | Redirect:
        if principal.role == "store_associate":
            return Redirect("/app/fulfilments", status_code=303)
        steps = await checklist(db, principal)
        return page(request, "console/home.html", steps=steps, done=sum(s.done for s in steps))


route_handlers = [HomeController]
