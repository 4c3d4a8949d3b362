"""Plain keyword-only factories and helpers for the tests."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from httpx import AsyncClient

PASSWORD = "plenty of entropy here"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class TenantSetup:
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    name: str
    email: str
    password: str
    api_key: str


async def create_tenant(*, name: str | None = None, email: str | None = None, password: str = PASSWORD,
                        timezone: str = "Europe/Paris", currency: str = "EUR", country: str = "FR") -> TenantSetup:
    """A tenant with its owner and one API key, through the same service `oms tenants create` uses."""
    from core.db import get_database
    from tenants.service import create_tenant_with_owner

    name = name or unique("Company")
    email = email or f"{unique('owner')}@example.test"
    async with get_database().transaction() as session:
        tenant, user, key = await create_tenant_with_owner(
            session, name=name, email=email, password=password, owner_name="Olive Owner",
            country=country, currency=currency, timezone=timezone,
        )
    return TenantSetup(tenant.id, user.id, name, email, password, key)


def csrf_headers(client: AsyncClient) -> dict[str, str]:
    token = client.cookies.get("__Host-oms_csrf") or client.cookies.get("oms_csrf")
    assert token, "GET a page first: the CSRF cookie is set on safe requests"
    return {"x-csrftoken": token}


async def post_form(client: AsyncClient, url: str, data: dict[str, str] | None = None,
                    **kwargs: Any) -> Any:
    if not (client.cookies.get("__Host-oms_csrf") or client.cookies.get("oms_csrf")):
        await client.get("/login")
    kwargs.setdefault("follow_redirects", False)
    return await client.post(url, data=data or {}, headers=csrf_headers(client), **kwargs)


async def login(client: AsyncClient, email: str, password: str = PASSWORD) -> Any:
    await client.get("/login")
    response = await post_form(client, "/login", {"email": email, "password": password})
    assert response.status_code in (302, 303), response.text
    return response


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def links_in(text: str) -> list[str]:
    return re.findall(r"https?://[^\s\"<>]+", text)


_ran: set[uuid.UUID] = set()


async def run_outbox_inline(tenant_id: uuid.UUID) -> list[tuple[str, dict[str, Any]]]:
    """Run the tenant's outbox messages here, after a JSON round trip, the way a worker
    receives them (whether or not the web process already relayed them to Redis: actors
    are idempotent). Returns what ran."""
    import json

    from sqlalchemy import select

    from core.broker import COROUTINES
    from core.db import get_database
    from core.models import OutboxMessage

    async with get_database().transaction(tenant_id=tenant_id) as session:
        rows = list(await session.scalars(
            select(OutboxMessage).where(OutboxMessage.tenant_id == tenant_id).order_by(OutboxMessage.id)
        ))
    ran: list[tuple[str, dict[str, Any]]] = []
    for row in rows:
        if row.id in _ran:
            continue
        _ran.add(row.id)
        kwargs = json.loads(json.dumps(row.kwargs))
        await COROUTINES[row.actor_name](**kwargs)
        ran.append((row.actor_name, kwargs))
    return ran


async def mail_to(tenant_id: uuid.UUID, address: str) -> list[Any]:
    """Messages in the tenant's outgoing-mail log to ``address``, newest first."""
    from sqlalchemy import select

    from core.db import get_database
    from core.models import MailMessage

    async with get_database().transaction(tenant_id=tenant_id) as session:
        return list(await session.scalars(
            select(MailMessage).where(MailMessage.tenant_id == tenant_id, MailMessage.to_address == address)
            .order_by(MailMessage.created_at.desc(), MailMessage.id.desc())  # ids (uuid7) break ties of a set clock
        ))
