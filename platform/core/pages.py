"""Helpers for server-rendered pages."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from litestar import Request
from litestar.datastructures import Cookie
from litestar.response import Redirect, Template

from core.auth import principal_of
from core.problems import ProblemError

# Messages shown after a redirect, by code (``?done=<code>``): never text from the URL itself.
NOTICES: dict[str, str] = {}


def page(request: Request[Any, Any, Any], name: str, *, status_code: int = 200, **context: Any) -> Template:
    context.setdefault("principal", principal_of(request))
    context.setdefault("errors", {})
    context.setdefault("values", {})
    context.setdefault("path", request.url.path)
    context.setdefault("notice", NOTICES.get(request.query_params.get("done", "")))
    return Template(name, context=context, status_code=status_code)


def form_errors(problem: ProblemError) -> dict[str, str]:
    errors = {e.field: e.message for e in problem.errors}
    if not errors:
        errors["__all__"] = problem.detail
    return errors


async def form_data(request: Request[Any, Any, Any]) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str) and k != "_csrf_token"}


def client_ip(request: Request[Any, Any, Any]) -> str | None:
    """The caller's address when it is one (test clients and some proxies give names)."""
    host = request.client.host if request.client else None
    try:
        return str(ipaddress.ip_address(host)) if host else None
    except ValueError:
        return None


def safe_next(target: str | None, default: str = "/app") -> str:
    """Only local paths: an open redirect would make the login page a phishing tool."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def redirect(url: str, *, cookies: list[Cookie] | None = None, done: str | None = None) -> Redirect:
    if done:
        assert done in NOTICES, done
        url += ("&" if "?" in url else "?") + "done=" + done
    return Redirect(url, cookies=cookies or [], status_code=303)
