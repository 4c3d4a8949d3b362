"""The company, its team, invitations, audit log and webhook endpoints in the JSON API."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, Response, delete, get, post
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import FOR_EVERY_KEY, Principal, admins_only, signed_in
from core.deps import DEPS
from core.idempotency import idempotent_create
from core.models import WebhookDelivery, WebhookEndpoint
from core.pages import client_ip
from tenants import service
from tenants import webhooks as webhook_endpoints
from tenants.directory import Directory
from tenants.schemas import AuditEventOut, EndpointIn, InvitationCreate, InvitationOut, MemberOut, TenantOut, WhoAmI


class TenantApiController(Controller):
    """The tenant, its team and its audit log, for API keys."""

    path = "/api/v1"
    tags = ["Account"]
    guards = [signed_in]
    dependencies = DEPS

    @get("/me", summary="The tenant and role this key acts for", opt=FOR_EVERY_KEY)
    async def me(self, db: AsyncSession, principal: Principal) -> WhoAmI:
        tenant = await service.get_tenant(db, principal)
        return WhoAmI(
            tenant=TenantOut(id=tenant.id, name=tenant.name, country=tenant.country, currency=tenant.currency,
                             timezone=tenant.timezone),
            role=principal.role,
            authenticated_as=principal.label,
        )

    @get("/members", summary="Members of the tenant", guards=[admins_only])
    async def members(self, db: AsyncSession, principal: Principal) -> list[MemberOut]:
        return [
            MemberOut(id=m.id, user_id=u.id, email=u.email, name=u.name, role=m.role, joined_at=m.created_at,
                      locations=list(m.locations or []))
            for m, u in await service.list_members(db, principal)
        ]

    @get("/invitations", summary="Pending invitations", guards=[admins_only])
    async def invitations(self, db: AsyncSession, principal: Principal) -> list[InvitationOut]:
        return [_invitation_out(i) for i in await service.list_invitations(db, principal)]

    @post("/invitations", summary="Invite a teammate by email", guards=[admins_only], status_code=201)
    async def create_invitation(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                                directory: Directory, data: InvitationCreate) -> Response[InvitationOut]:
        async def create() -> InvitationOut:
            known = [code for code, _ in await directory.locations(db, principal.tenant_id)]
            invitation, _ = await service.invite(db, principal, email=data.email, role=data.role,
                                                 locations=data.locations, known_locations=known,
                                                 ip=client_ip(request))
            return _invitation_out(invitation)

        return await idempotent_create(request, db, principal, create)

    @delete("/invitations/{invitation_id:uuid}", summary="Withdraw an invitation", guards=[admins_only],
            status_code=204)
    async def delete_invitation(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                                invitation_id: uuid.UUID) -> None:
        await service.revoke_invitation(db, principal, invitation_id, ip=client_ip(request))

    @get("/audit-events", summary="Security-relevant actions, newest first", guards=[admins_only])
    async def audit_events(self, db: AsyncSession, principal: Principal) -> list[AuditEventOut]:
        return [
            AuditEventOut(id=e.id, action=e.action, actor=e.actor_label, target=e.target,
                          ip=str(e.ip) if e.ip else None, created_at=e.created_at, details=e.details)
            for e in await service.audit_events(db, principal)
        ]


def _invitation_out(invitation: Any) -> InvitationOut:
    return InvitationOut(id=invitation.id, email=invitation.email, role=invitation.role,
                         locations=list(invitation.locations or []),
                         created_at=invitation.created_at, expires_at=invitation.expires_at)


def _endpoint_out(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {"id": endpoint.id, "url": endpoint.url, "description": endpoint.description, "events": endpoint.events,
            "secret": endpoint.secret, "active": endpoint.active, "created_at": endpoint.created_at}


def _delivery_out(d: WebhookDelivery) -> dict[str, Any]:
    return {"id": d.id, "event_id": d.event_id, "event_type": d.event_type, "status": d.status,
            "attempts": d.attempts, "last_status_code": d.last_status_code, "last_error": d.last_error,
            "created_at": d.created_at, "last_attempt_at": d.last_attempt_at, "delivered_at": d.delivered_at}


class WebhooksApiController(Controller):
    path = "/api/v1/webhook-endpoints"
    tags = ["Webhooks"]
    guards = [admins_only]
    dependencies = DEPS

    @get("/", summary="Webhook endpoints")
    async def list_endpoints(self, db: AsyncSession, principal: Principal) -> list[dict[str, Any]]:
        return [_endpoint_out(e) for e in await webhook_endpoints.endpoints(db, principal)]

    @post("/", summary="Add an endpoint; its signing secret is in the answer", status_code=201)
    async def create_endpoint(self, db: AsyncSession, principal: Principal, data: EndpointIn) -> dict[str, Any]:
        return _endpoint_out(await webhook_endpoints.add_endpoint(db, principal, data))

    @get("/{endpoint_id:uuid}/deliveries", summary="Recent deliveries to an endpoint, with their attempts")
    async def deliveries(self, db: AsyncSession, principal: Principal, endpoint_id: uuid.UUID,
                         ) -> list[dict[str, Any]]:
        await webhook_endpoints.endpoint(db, principal, endpoint_id)
        return [_delivery_out(d) for d in await webhook_endpoints.deliveries(db, principal, endpoint_id)]

    @post("/{endpoint_id:uuid}/disable", summary="Stop sending to an endpoint", status_code=200)
    async def disable(self, db: AsyncSession, principal: Principal, endpoint_id: uuid.UUID) -> dict[str, Any]:
        endpoint = await webhook_endpoints.endpoint(db, principal, endpoint_id)
        endpoint.active = False
        return _endpoint_out(endpoint)


route_handlers = [TenantApiController, WebhooksApiController]
