"""Input the database can't store is refused where requests come in, once for every route.

PostgreSQL refuses NUL characters in text, and a string with a lone surrogate can't even be
encoded for it; JSON nested a few thousand levels deep exhausts the decoder's recursion. Rather
than check route by route, this middleware looks at every request before its handler: the path,
the query string, and the body unless it is a multipart upload. A form body is read as a form;
any other body (whatever its ``Content-Type`` says: a JSON route decodes it anyway) that is JSON
is checked as JSON. A request that holds any of them is answered 422 (problem+json for the API,
the error page in the console) naming the field, and reaches no handler, so nothing changes.

What it reads is bounded before it is read: a body announced larger than ``INSPECT_MAX`` is left
to the route's own size limit, a form larger than ``FORM_MAX`` is refused (no form of ours comes
near), and only a JSON body up to ``WALK_MAX`` is decoded; larger ones are scanned for nesting
and NUL escapes without building anything.

Multipart uploads pass through: their files go through ``inventory.catalog.decode_upload``, which
applies the same JSON check and refuses NUL bytes with the line. Whatever else the database
refuses as a value (a number out of a column's range, a NUL in a multipart text field) is
answered 422 by the error handler (``core.problems``).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

import msgspec
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from core.limits import JSON_DEPTH_MAX
from core.problems import FieldError, ProblemError

INSPECT_MAX = 10 * 1024 * 1024  # the app's own body limit; routes allowing more take files, not JSON
FORM_MAX = 2 * 1024 * 1024
WALK_MAX = 1024 * 1024  # JSON decoded and walked for the field at fault; larger is scanned

Message = dict[str, Any]

NUL = "contains a NUL character (\\u0000), which can't be stored"
SURROGATE = "contains an unpaired surrogate, which is not text"
DEEP = f"is nested more than {JSON_DEPTH_MAX} levels deep"
HUGE = "is a number too large to be stored"


class _OutOfRange(str):
    """A JSON number no 64-bit column can hold (twenty digits, 1e999), kept as its text so the
    walk can name the field it is in."""


def _integer(text: str) -> int | _OutOfRange:
    return _OutOfRange(text) if len(text.lstrip("-")) > 19 or abs(int(text)) > 2**63 - 1 else int(text)


def _real(text: str) -> float | _OutOfRange:
    value = float(text)
    return _OutOfRange(text) if value in (float("inf"), float("-inf")) else value


def _with_huge_numbers(body: bytes) -> Any:
    """The document msgspec refused for a number out of range, read again with such numbers
    marked; None when it can't be read that way either."""
    try:
        return json.loads(body, parse_int=_integer, parse_float=_real, parse_constant=_OutOfRange)
    except (ValueError, RecursionError):
        return None

# A JSON string (its escapes included), or a bracket outside strings.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
# \u0000 written as an escape, not preceded by an escaped backslash.
_NUL_ESCAPE = re.compile(rb'(?:^|[^\\])(?:\\\\)*\\u0000')


def _refuse(where: str, what: str, status: int = 422) -> ProblemError:
    return ProblemError(status, "Invalid request", f"{where} {what}.", errors=[FieldError(where, what)])


def check_text(where: str, value: str) -> None:
    if "\x00" in value:
        raise _refuse(where, NUL)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _refuse(where, SURROGATE) from None


def _too_deep(body: bytes) -> bool:
    """Nesting past the bound, found without decoding: brackets counted outside strings."""
    depth = 0
    for token in _TOKENS.finditer(body):
        char = token.group()[:1]
        if char in b"[{":
            depth += 1
            if depth > JSON_DEPTH_MAX:
                return True
        elif char in b"]}":
            depth -= 1
    return False


def check_json(body: bytes, what: str = "body") -> None:
    """Refuse a JSON document holding NUL characters, unpaired surrogates or deep nesting (a
    request's body, or an uploaded file). A document that isn't JSON is left for its reader to
    refuse in its own words."""
    if len(body) > WALK_MAX:
        if _too_deep(body):
            raise _refuse(what, DEEP)
        if _NUL_ESCAPE.search(body):
            raise _refuse(what, NUL)
        return
    try:
        document = msgspec.json.decode(body)
    except RecursionError:
        raise _refuse(what, DEEP) from None
    except msgspec.ValidationError:  # a number out of range: found below, by its field
        document = _with_huge_numbers(body)
        if document is None:
            return
    except msgspec.DecodeError:
        return
    stack: list[tuple[str, Any, int]] = [("", document, 1)]
    while stack:
        path, value, depth = stack.pop()
        if isinstance(value, _OutOfRange):
            raise _refuse(path or what, HUGE)
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
        kind, announced = _body_of(dict(scope))
        if kind is None or (announced is not None and announced > INSPECT_MAX):
            await next_app(scope, receive, send)
            return
        if kind == "form" and announced is not None and announced > FORM_MAX:
            raise _refuse("form", f"is larger than {FORM_MAX // 1024 // 1024} MB", 413)
        messages, body = await _buffer(receive, FORM_MAX if kind == "form" else INSPECT_MAX)
        if body is None and kind == "form":
            raise _refuse("form", f"is larger than {FORM_MAX // 1024 // 1024} MB", 413)
        if body is not None:
            if kind == "form":
                check_query(body, "form")
            else:
                check_json(body)
        await next_app(scope, _replay(messages, receive), send)


def _body_of(scope: Message) -> tuple[str | None, int | None]:
    """How to read the request's body ("form", "json" or None for not at all) and its announced
    length."""
    if scope.get("method") in ("GET", "HEAD", "OPTIONS"):
        return None, None
    media, announced = b"", None
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
        elif name == b"content-length":
            announced = int(value) if value.strip().isdigit() else None
    if media == b"application/x-www-form-urlencoded":
        return "form", announced
    if media.startswith(b"multipart/"):
        return None, announced
    return "json", announced


async def _buffer(receive: Receive, limit: int) -> tuple[list[Message], bytes | None]:
    """The body's messages as received, and the whole body (None when it is larger than
    ``limit``: the rest is read by the handler, and the route's limit refuses it)."""
    messages: list[Message] = []
    size = 0
    while True:
        message: Message = dict(await receive())
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        size += len(message.get("body", b""))
        if size > limit:
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
