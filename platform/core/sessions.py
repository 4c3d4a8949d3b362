"""Server-side sessions for the console.

The browser holds only a random token in a cookie: ``__Host-oms_session`` (Secure, no
Domain, Path=/) when the request came over https, ``oms_session`` on plain http where a
Secure cookie would not be sent back. Both are HttpOnly and SameSite=Lax. The session
itself lives in Redis under the token's hash, with an idle timeout; signing in always
issues a new token (no session fixation), and a user's sessions can all be revoked.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie

from core.redis import get_redis, key
from core.security import new_secret, sha256_hex

if TYPE_CHECKING:
    from core.auth import Principal

SECURE_COOKIE = "__Host-oms_session"
PLAIN_COOKIE = "oms_session"
IDLE_SECONDS = 7 * 24 * 3600
ABSOLUTE_SECONDS = 30 * 24 * 3600


@dataclass
class SessionData:
    user_id: str
    tenant_id: str
    created_at: float


def is_secure(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    return connection.url.scheme == "https"


def cookie_name(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    return SECURE_COOKIE if is_secure(connection) else PLAIN_COOKIE


def session_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    return connection.cookies.get(cookie_name(connection))


async def load_session(token: str) -> SessionData | None:
    raw = await get_redis().get(key("session", sha256_hex(token)))
    if raw is None:
        return None
    data = SessionData(**json.loads(raw))
    if time.time() - data.created_at > ABSOLUTE_SECONDS:
        await destroy_session(token)
        return None
    return data


async def touch_session(token: str) -> None:
    await get_redis().expire(key("session", sha256_hex(token)), IDLE_SECONDS)


async def create_session(user_id: uuid.UUID, tenant_id: uuid.UUID) -> str:
    token = new_secret()
    digest = sha256_hex(token)
    data = SessionData(user_id=str(user_id), tenant_id=str(tenant_id), created_at=time.time())
    redis = get_redis()
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(key("session", digest), json.dumps(asdict(data)), ex=IDLE_SECONDS)
        pipe.sadd(key("user_sessions", str(user_id)), digest)
        pipe.expire(key("user_sessions", str(user_id)), ABSOLUTE_SECONDS)
        await pipe.execute()
    return token


async def switch_tenant(token: str, tenant_id: uuid.UUID) -> None:
    data = await load_session(token)
    if data is None:
        return
    data.tenant_id = str(tenant_id)
    # xx: only if it still exists, so a session revoked meanwhile stays revoked.
    await get_redis().set(key("session", sha256_hex(token)), json.dumps(asdict(data)), ex=IDLE_SECONDS, xx=True)


async def destroy_session(token: str) -> None:
    await get_redis().delete(key("session", sha256_hex(token)))


async def destroy_user_sessions(user_id: uuid.UUID) -> None:
    redis = get_redis()
    members = await redis.smembers(key("user_sessions", str(user_id)))
    if members:
        await redis.delete(*[key("session", str(digest)) for digest in members])
    await redis.delete(key("user_sessions", str(user_id)))


def session_cookie(connection: ASGIConnection[Any, Any, Any, Any], token: str | None) -> Cookie:
    """The cookie that sets (or, with ``token=None``, clears) the session."""
    secure = is_secure(connection)
    return Cookie(
        key=cookie_name(connection),
        value=token or "",
        path="/",
        httponly=True,
        secure=secure,
        samesite="lax",
        max_age=IDLE_SECONDS if token else 0,
    )


HAND_OVER_SECONDS = 300


def _once_key(principal: Principal, what: str) -> str:
    # The session, and the company and user it is for: a user of two companies who switches
    # between preview and apply can't carry one company's file into the other.
    assert principal.session_token
    return key("once", what, sha256_hex(f"{principal.session_token}|{principal.tenant_id}|{principal.user_id}"))


async def hand_over_once(principal: Principal, what: str, value: dict[str, str]) -> None:
    """Keep a secret for the next page this session opens in this company, and only that one."""
    if principal.session_token:
        await get_redis().set(_once_key(principal, what), json.dumps(value), ex=HAND_OVER_SECONDS)


async def take_once(principal: Principal, what: str) -> dict[str, str] | None:
    if not principal.session_token:
        return None
    raw = await get_redis().getdel(_once_key(principal, what))
    return json.loads(raw) if raw else None
