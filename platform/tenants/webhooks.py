"""The company's webhook endpoints and the deliveries made to them (delivery itself is the
kernel's: ``core.webhooks``)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import webhooks
from core.auth import Principal
from core.ids import uuid7
from core.models import WebhookDelivery, WebhookEndpoint
from core.problems import invalid, not_found
from tenants.schemas import EndpointIn
from tenants.service import Actor, audit


async def add_endpoint(session: AsyncSession, principal: Principal, data: EndpointIn) -> WebhookEndpoint:
    errors: dict[str, str] = {}
    if problem := await webhooks.check_url(data.url.strip()):
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


async def endpoint(session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    endpoint = await session.scalar(select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == principal.tenant_id,
                                                                  WebhookEndpoint.id == endpoint_id))
    if endpoint is None:
        raise not_found("Webhook endpoint")
    return endpoint


async def deliveries(session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID | None = None,
                      limit: int = 50) -> list[WebhookDelivery]:
    stmt = select(WebhookDelivery).where(WebhookDelivery.tenant_id == principal.tenant_id)
    if endpoint_id is not None:
        stmt = stmt.where(WebhookDelivery.endpoint_id == endpoint_id)
    return list(await session.scalars(stmt.order_by(WebhookDelivery.created_at.desc()).limit(limit)))




async def endpoints(session: AsyncSession, principal: Principal) -> list[WebhookEndpoint]:
    return list(await session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == principal.tenant_id)
                                      .order_by(WebhookEndpoint.created_at)))
