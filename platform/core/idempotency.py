"""``Idempotency-Key`` on every API create.

The first request with a key stores its response in the same transaction as the work; a
retry with the same key and body gets that response again (``Idempotent-Replayed: true``),
and the same key with another body is refused. Two concurrent requests with one key
serialise on the unique index: the second waits for the first to commit, then replays.
A refused request (4xx, 5xx) rolls back, stores nothing and may be retried.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from litestar import Request, Response
from litestar.serialization import encode_json
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal
from core.models import IdempotencyRecord
from core.problems import ProblemError

HEADER = "idempotency-key"
MAX_KEY_LENGTH = 255


def _request_hash(method: str, path: str, body: bytes) -> str:
    try:
        canonical = json.dumps(json.loads(body or b"null"), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + canonical).hexdigest()


@dataclass(frozen=True)
class WithStatus:
    """What ``create`` returns when the status is not always the same (200 for a resend that
    found the existing resource, 201 for a new one)."""

    body: Any
    status_code: int


async def idempotent_create(
    request: Request[Any, Any, Any],
    session: AsyncSession,
    principal: Principal,
    create: Callable[[], Awaitable[Any]],
    *,
    status_code: int = 201,
) -> Response[Any]:
    key = request.headers.get(HEADER)
    if key is None:
        result = await create()
        if isinstance(result, WithStatus):
            status_code, result = result.status_code, result.body
        return Response(encode_json(result), status_code=status_code, media_type="application/json")
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ProblemError(400, "Invalid Idempotency-Key",
                           f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters.")
    digest = _request_hash(request.method, request.url.path, await request.body())
    inserted = await session.scalar(
        insert(IdempotencyRecord)
        .values(
            tenant_id=principal.tenant_id, key=key, method=request.method, path=request.url.path,
            request_hash=digest, status_code=0, response_body=b"", media_type="",
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "key"])
        .returning(IdempotencyRecord.id)
    )
    if inserted is None:
        record = await session.scalar(
            select(IdempotencyRecord).where(
                IdempotencyRecord.tenant_id == principal.tenant_id, IdempotencyRecord.key == key
            )
        )
        if record is None or record.status_code == 0:
            raise ProblemError(409, "Request in progress",
                               "A request with this Idempotency-Key is still being processed; retry shortly.")
        if record.request_hash != digest:
            raise ProblemError(
                422, "Idempotency-Key reused",
                "This Idempotency-Key was already used for a different request (another path or body). "
                "Use a new key for a new request.",
            )
        return Response(record.response_body, status_code=record.status_code, media_type=record.media_type,
                        headers={"Idempotent-Replayed": "true"})
    result = await create()
    if isinstance(result, WithStatus):
        status_code, result = result.status_code, result.body
    body = encode_json(result)
    await session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.tenant_id == principal.tenant_id, IdempotencyRecord.id == inserted)
        .values(status_code=status_code, response_body=body, media_type="application/json")
    )
    return Response(body, status_code=status_code, media_type="application/json")
