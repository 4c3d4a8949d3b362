"""Principal loaders the auth middleware calls: session cookie and API key."""

from __future__ import annotations

import hashlib
import time
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


# API calls come in bursts from the same key: its principal is kept for a few seconds instead of
# costing a transaction per request. Revoking a key forgets it here at once; another web
# process may accept it for at most KEY_CACHE_SECONDS more.
KEY_CACHE_SECONDS = 5.0
KEY_CACHE_SIZE = 10_000
_keys: dict[str, tuple[float, Principal]] = {}


async def principal_from_api_key(token: str) -> Principal | None:
    digest = hashlib.sha256(token.encode()).hexdigest()
    cached = _keys.get(digest)
    now = time.monotonic()
    if cached is not None and cached[0] > now:
        return cached[1]
    async with get_database().transaction() as session:
        principal = await service.principal_for_api_key(session, token)
    if principal is None:
        _keys.pop(digest, None)
        return None
    if len(_keys) >= KEY_CACHE_SIZE:
        _keys.clear()
    _keys[digest] = (now + KEY_CACHE_SECONDS, principal)
    return principal


def forget_api_keys(tenant_id: uuid.UUID) -> None:
    """A key of this company was revoked: load its keys afresh."""
    for digest, (_, principal) in list(_keys.items()):
        if principal.tenant_id == tenant_id:
            _keys.pop(digest, None)
