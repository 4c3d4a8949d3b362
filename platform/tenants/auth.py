"""Principal loaders the auth middleware calls: session cookie and API key."""

from __future__ import annotations

import uuid

from core.auth import Principal
from core.db import get_database
from core.sessions import load_session, touch_session
from tenants import service


async def principal_from_session(token: str) -> Principal | None:
    data = await load_session(token)
    if data is None:
        return None
    async with get_database().transaction() as session:
        principal = await service.principal_for_session(
            session, uuid.UUID(data.user_id), uuid.UUID(data.tenant_id)
        )
    if principal is None:
        return None
    await touch_session(token)
    return Principal(**{**principal.__dict__, "session_token": token})


async def principal_from_api_key(token: str) -> Principal | None:
    async with get_database().transaction() as session:
        return await service.principal_for_api_key(session, token)
