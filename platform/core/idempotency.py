"""``Idempotency-Key`` on every API create.

The first request with a key stores its response in the same transaction as the work; a
retry with the same key and body gets that response again (``Idempotent-Replayed: true``),
and the same key with another body is refused. Two concurrent requests with one key
serialise on the unique index: the second waits for the first to commit, then replays.
A refused request (4xx, 5xx) rolls back, stores nothing and may be retried.

``claim_many`` and ``settle_many`` do this for many keys in two statements (the grouped order
captures); ``idempotent_create`` is the same for one request.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from litestar import Request, Response
from litestar.serialization import encode_json
from sqlalchemy import ARRAY, String, any_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import bulk
from core.auth import Principal
from core.db import Prepared, driver
from core.ids import uuid7
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


@dataclass(frozen=True)
class Keyed:
    """A request's Idempotency-Key and the hash of what it asks."""

    key: str
    digest: str
    method: str
    path: str


def keyed(request: Request[Any, Any, Any], body: bytes) -> Keyed | None:
    """The request's key, checked; None without one."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ProblemError(400, "Invalid Idempotency-Key",
                           f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters.")
    path = request.url.path
    return Keyed(key, _request_hash(request.method, path, body), request.method, path)


@dataclass(frozen=True)
class Answer:
    """A response as the API sends it, and as an idempotency record replays it."""

    status_code: int
    body: bytes
    replayed: bool = False


_RECORDS = Prepared(select(IdempotencyRecord.key, IdempotencyRecord.request_hash, IdempotencyRecord.status_code,
                           IdempotencyRecord.response_body).where(
    IdempotencyRecord.tenant_id == bindparam("tenant"),
    IdempotencyRecord.key == any_(bindparam("keys", type_=ARRAY(String)))))
_STORE = """
    UPDATE idempotency_records r SET status_code = v.status_code, response_body = v.body,
                                     media_type = 'application/json'
    FROM unnest($2::text[], $3::int[], $4::bytea[]) AS v(key, status_code, body)
    WHERE r.tenant_id = $1 AND r.key = v.key
"""
_FORGET = "DELETE FROM idempotency_records WHERE tenant_id = $1 AND key = ANY($2::text[])"


async def claim_many(session: AsyncSession, tenant_id: uuid.UUID,
                     claims: list[Keyed]) -> dict[str, Answer | ProblemError | None]:
    """Claim distinct keys in one statement. Per key: None, it is ours to do; or the answer a
    request with it already got (a replay), or why it can't be replayed. A key another
    transaction is claiming is waited for, as one request at a time would."""
    if not claims:
        return {}
    claimed = {row["key"] for row in await bulk.insert_rows(session, IdempotencyRecord, [
        {"tenant_id": tenant_id, "id": uuid7(), "key": c.key, "method": c.method, "path": c.path,
         "request_hash": c.digest, "status_code": 0, "response_body": b"", "media_type": ""}
        for c in sorted(claims, key=lambda c: c.key)],  # in key order: two batches never wait in a cycle
        on_conflict="ON CONFLICT (tenant_id, key) DO NOTHING", returning="key")}
    outcomes: dict[str, Answer | ProblemError | None] = {key: None for key in claimed}
    others = [c for c in claims if c.key not in claimed]
    if others:
        stored = {row["key"]: row for row in await _RECORDS.fetch(session, tenant=tenant_id,
                                                                  keys=[c.key for c in others])}
        for claim in others:
            record = stored.get(claim.key)
            outcomes[claim.key] = _replay(None if record is None else (record["request_hash"], record["status_code"],
                                                                       record["response_body"]), claim.digest)
    return outcomes


def _replay(record: tuple[str, int, bytes] | None, digest: str) -> Answer | ProblemError:
    if record is None or record[1] == 0:
        return ProblemError(409, "Request in progress",
                            "A request with this Idempotency-Key is still being processed; retry shortly.")
    if record[0] != digest:
        return ProblemError(422, "Idempotency-Key reused",
                            "This Idempotency-Key was already used for a different request (another path or "
                            "body). Use a new key for a new request.")
    return Answer(record[1], record[2], replayed=True)


async def settle_many(session: AsyncSession, tenant_id: uuid.UUID, answered: dict[str, Answer],
                      refused: list[str]) -> None:
    """Store the answers of claimed keys; forget the keys of refused requests, which may be
    sent again (a refused request stores nothing)."""
    connection = await driver(session)
    if answered:
        await connection.execute(_STORE, tenant_id, list(answered), [a.status_code for a in answered.values()],
                                 [a.body for a in answered.values()])
    if refused:
        await connection.execute(_FORGET, tenant_id, refused)


async def idempotent_create(
    request: Request[Any, Any, Any],
    session: AsyncSession,
    principal: Principal,
    create: Callable[[], Awaitable[Any]],
    *,
    status_code: int = 201,
) -> Response[Any]:
    """Run ``create`` once per Idempotency-Key (with none, every time): its key claimed, then
    its answer stored, in the caller's transaction."""
    claim = keyed(request, await request.body())
    if claim is not None:
        earlier = (await claim_many(session, principal.tenant_id, [claim]))[claim.key]
        if isinstance(earlier, ProblemError):
            raise earlier
        if earlier is not None:
            return Response(earlier.body, status_code=earlier.status_code, media_type="application/json",
                            headers={"Idempotent-Replayed": "true"})
    result = await create()
    if isinstance(result, WithStatus):
        status_code, result = result.status_code, result.body
    body = encode_json(result)
    if claim is not None:
        await settle_many(session, principal.tenant_id, {claim.key: Answer(status_code, body)}, [])
    return Response(body, status_code=status_code, media_type="application/json")
