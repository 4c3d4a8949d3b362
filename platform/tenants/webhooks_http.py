"""Webhook endpoints and their deliveries: Settings → Webhooks, and the same in the API."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import webhooks
from core.auth import Principal, admins_only
from core.deps import DEPS
from core.ids import uuid7
from core.models import WebhookDelivery, WebhookEndpoint
from core.pages import NOTICES, form_errors, page, redirect
from core.problems import ProblemError, invalid, not_found
from tenants.service import Actor, audit

NOTICES.update({"endpoint_added": "Endpoint added: events are sent to it from now on.",
                "endpoint_disabled": "Endpoint disabled: nothing more is sent to it."})


class EndpointIn(msgspec.Struct, forbid_unknown_fields=True):
    url: Annotated[str, msgspec.Meta(min_length=8, max_length=2000)]
    description: Annotated[str, msgspec.Meta(max_length=200)] = ""
    events: list[str] = []  # empty: every event


def _endpoint_out(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {"id": endpoint.id, "url": endpoint.url, "description": endpoint.description, "events": endpoint.events,
            "secret": endpoint.secret, "active": endpoint.active, "created_at": endpoint.created_at}


def _delivery_out(d: WebhookDelivery) -> dict[str, Any]:
    return {"id": d.id, "event_id": d.event_id, "event_type": d.event_type, "status": d.status,
            "attempts": d.attempts, "last_status_code": d.last_status_code, "last_error": d.last_error,
            "created_at": d.created_at, "last_attempt_at": d.last_attempt_at, "delivered_at": d.delivered_at}


async def add_endpoint(session: AsyncSession, principal: Principal, data: EndpointIn) -> WebhookEndpoint:
    errors: dict[str, str] = {}
    if problem := webhooks.check_url(data.url.strip()):
        errors["url"] = problem
    unknown = [e for e in data.events if e not in webhooks.EVENTS]
    if unknown:
        errors["events"] = f"Unknown events {unknown}: choose among {', '.join(webhooks.EVENTS)}."
    if errors:
        raise invalid(errors, detail=next(iter(errors.values())))
    endpoint = WebhookEndpoint(tenant_id=principal.tenant_id, id=uuid7(), url=data.url.strip(),
                               description=data.description.strip(), events=list(dict.fromkeys(data.events)),
                               secret=webhooks.new_secret(), active=True)
    session.add(endpoint)
    await audit(session, principal.tenant_id, Actor.of(principal), "webhook.endpoint_added", target=endpoint.url)
    await session.flush()
    return endpoint


async def _endpoint(session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    endpoint = await session.scalar(select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == principal.tenant_id,
                                                                  WebhookEndpoint.id == endpoint_id))
    if endpoint is None:
        raise not_found("Webhook endpoint")
    return endpoint


async def _deliveries(session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID | None = None,
                      limit: int = 50) -> list[WebhookDelivery]:
    stmt = select(WebhookDelivery).where(WebhookDelivery.tenant_id == principal.tenant_id)
    if endpoint_id is not None:
        stmt = stmt.where(WebhookDelivery.endpoint_id == endpoint_id)
    return list(await session.scalars(stmt.order_by(WebhookDelivery.created_at.desc()).limit(limit)))


class WebhooksApiController(Controller):
    path = "/api/v1/webhook-endpoints"
    tags = ["Webhooks"]
    guards = [admins_only]
    dependencies = DEPS

    @get("/", summary="Webhook endpoints")
    async def list_endpoints(self, db: AsyncSession, principal: Principal) -> list[dict[str, Any]]:
        rows = await db.scalars(select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == principal.tenant_id)
                                .order_by(WebhookEndpoint.created_at))
        return [_endpoint_out(e) for e in rows]

    @post("/", summary="Add an endpoint; its signing secret is in the answer", status_code=201)
    async def create_endpoint(self, db: AsyncSession, principal: Principal, data: EndpointIn) -> dict[str, Any]:
        return _endpoint_out(await add_endpoint(db, principal, data))

    @get("/{endpoint_id:uuid}/deliveries", summary="Recent deliveries to an endpoint, with their attempts")
    async def deliveries(self, db: AsyncSession, principal: Principal, endpoint_id: uuid.UUID,
                         ) -> list[dict[str, Any]]:
        await _endpoint(db, principal, endpoint_id)
        return [_delivery_out(d) for d in await _deliveries(db, principal, endpoint_id)]

    @post("/{endpoint_id:uuid}/disable", summary="Stop sending to an endpoint", status_code=200)
    async def disable(self, db: AsyncSession, principal: Principal, endpoint_id: uuid.UUID) -> dict[str, Any]:
        endpoint = await _endpoint(db, principal, endpoint_id)
        endpoint.active = False
        return _endpoint_out(endpoint)


class WebhooksPagesController(Controller):
    path = "/app/settings/webhooks"
    include_in_schema = False
    guards = [admins_only]
    dependencies = DEPS

    async def _page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                    **context: Any) -> Template:
        endpoints = list(await db.scalars(select(WebhookEndpoint).where(
            WebhookEndpoint.tenant_id == principal.tenant_id).order_by(WebhookEndpoint.created_at)))
        return page(request, "settings/webhooks.html", endpoints=endpoints, events=webhooks.EVENTS,
                    deliveries=await _deliveries(db, principal), urls={e.id: e.url for e in endpoints}, **context)

    @get("/")
    async def webhooks_page(self, request: Request[Any, Any, Any], db: AsyncSession,
                            principal: Principal) -> Template:
        return await self._page(request, db, principal)

    @post("/")
    async def add(self, request: Request[Any, Any, Any], db: AsyncSession,
                  principal: Principal) -> Template | Redirect:
        form = await request.form()
        data = EndpointIn(url=str(form.get("url") or ""), description=str(form.get("description") or ""),
                          events=[e for e in form.getall("events", []) if isinstance(e, str)])
        try:
            await add_endpoint(db, principal, data)
        except ProblemError as problem:
            if problem.status != 422:
                raise
            await db.rollback()
            return await self._page(request, db, principal, errors=form_errors(problem),
                                    values={"url": data.url, "description": data.description})
        return redirect("/app/settings/webhooks", done="endpoint_added")

    @post("/{endpoint_id:uuid}/disable")
    async def disable(self, db: AsyncSession, principal: Principal, endpoint_id: uuid.UUID) -> Redirect:
        endpoint = await _endpoint(db, principal, endpoint_id)
        endpoint.active = False
        return redirect("/app/settings/webhooks", done="endpoint_disabled")


route_handlers = [WebhooksApiController, WebhooksPagesController]
