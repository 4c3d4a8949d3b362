"""Input the database can't store is refused where requests come in, once for every route.

PostgreSQL refuses NUL characters in text, and a string with a lone surrogate can't even be
encoded for it; JSON nested a few thousand levels deep exhausts the decoder's recursion. Rather
than check route by route, this middleware looks at every request before its handler: the path,
the query string, and JSON and form bodies. A request that holds any of them is answered
422 (problem+json for the API, the error page in the console) naming the field, and reaches
no handler, so nothing changes.

Multipart uploads pass through: the files go through ``inventory.catalog.decode_upload``, which
refuses NUL bytes with the row number. Whatever else the database refuses as a value (a number
out of a column's range) is answered 422 by the error handler (``core.problems``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

import msgspec
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from core.limits import JSON_DEPTH_MAX
from core.problems import FieldError, ProblemError

BUFFER_MAX = 64 * 1024 * 1024  # larger bodies are beyond every route's limit, which refuses them
WALK_MAX = 1024 * 1024  # bodies up to this are walked for the field at fault; larger ones checked whole

Message = dict[str, Any]


def _refuse(where: str, what: str) -> ProblemError:
    return ProblemError(422, "Invalid request", f"{where} {what}.", errors=[FieldError(where, what)])


NUL = "contains a NUL character (\\u0000), which can't be stored"
SURROGATE = "contains an unpaired surrogate, which is not text"
DEEP = f"is nested more than {JSON_DEPTH_MAX} levels deep"


def check_text(where: str, value: str) -> None:
    if "\x00" in value:
        raise _refuse(where, NUL)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _refuse(where, SURROGATE) from None


def check_json(body: bytes, what: str = "body") -> None:
    """Refuse a JSON document holding NUL characters, unpaired surrogates or deep nesting (a
    request's body, or an uploaded file). A document that isn't JSON is left for its reader to
    refuse in its own words."""
    try:
        document = msgspec.json.decode(body)
    except RecursionError:
        raise _refuse(what, DEEP) from None
    except msgspec.DecodeError:
        return
    if len(body) > WALK_MAX:
        # Too large to walk here (a feed of a million rows): the escapes are enough to know.
        if b"\\u0000" in body:
            raise _refuse(what, NUL)
        return
    stack: list[tuple[str, Any, int]] = [("", document, 1)]
    while stack:
        path, value, depth = stack.pop()
        if isinstance(value, str):
            check_text(path or what, value)
        elif isinstance(value, dict | list):
            if depth > JSON_DEPTH_MAX:
                raise _refuse(path or what, DEEP)
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                where = f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))
                if isinstance(key, str):
                    check_text(where, key)
                stack.append((where, item, depth + 1))


def check_query(raw: bytes, what: str = "query") -> None:
    """A query string or form body: percent-decoded, in UTF-8, with no NUL in names or values."""
    if b"%" not in raw and b"\x00" not in raw and raw.isascii():
        return
    try:
        pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise _refuse(what, "is not UTF-8 text") from None
    for name, value in pairs:
        check_text(what, name)
        check_text(name, value)


def check_path(scope: Message) -> None:
    raw = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
    try:
        unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise _refuse("path", "is not UTF-8 text") from None
    check_text("path", scope["path"])


class InputGuard(ASGIMiddleware):
    """See the module's docstring."""

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if scope["type"] != ScopeType.HTTP:
            await next_app(scope, receive, send)
            return
        check_path(dict(scope))
        check_query(scope.get("query_string", b""))
        kind = _body_kind(dict(scope))
        if kind is None:
            await next_app(scope, receive, send)
            return
        messages, body = await _buffer(receive)
        if body is not None:
            if kind == "json":
                check_json(body)
            else:
                check_query(body, "form")
        await next_app(scope, _replay(messages, receive), send)


def _body_kind(scope: Message) -> str | None:
    if scope.get("method") not in ("POST", "PUT", "PATCH", "DELETE"):
        return None
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            if media == b"application/json" or media.endswith(b"+json"):
                return "json"
            if media == b"application/x-www-form-urlencoded":
                return "form"
            return None
    return None


async def _buffer(receive: Receive) -> tuple[list[Message], bytes | None]:
    """The body's messages as received, and the whole body (None when it is larger than
    BUFFER_MAX: the rest is read by the handler, and the route's limit refuses it)."""
    messages: list[Message] = []
    size = 0
    while True:
        message: Message = dict(await receive())
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        size += len(message.get("body", b""))
        if size > BUFFER_MAX:
            return messages, None
        if not message.get("more_body", False):
            return messages, b"".join(m.get("body", b"") for m in messages)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Any:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
