"""Error pages as people see them: a signed-in visitor who meets a missing page (or any refusal)
under ``/app`` keeps the console's navigation instead of the public site's header."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import structlog
from litestar import Request
from litestar.background_tasks import BackgroundTask, BackgroundTasks
from litestar.datastructures import Cookie
from litestar.enums import MediaType
from litestar.response import Template
from litestar.response.base import ASGIResponse
from litestar.types import Receive, Scope, Send, TypeEncodersMap
from litestar.utils.scope.state import ScopeState

from core.auth import AuthMiddleware, Principal, principal_of
from core.sessions import session_token

log = structlog.get_logger(__name__)


def _in_console(request: Request[Any, Any, Any]) -> bool:
    path = request.url.path
    return path == "/app" or path.startswith("/app/")


async def _visitor(request: Request[Any, Any, Any]) -> Principal | None:
    """Who is signed in. A path that no route matches is answered before any middleware ran: the
    session is then looked up here, with the loader the auth middleware was given, and the form
    token is read from its cookie (the console's log-out form needs it)."""
    if (principal := principal_of(request)) is not None or "principal" in request.scope.get("state", {}):
        return principal
    token = session_token(request)
    auth = next((m for m in request.app.middleware if isinstance(m, AuthMiddleware)), None)
    if not token or auth is None:
        return None
    principal = await auth.session_loader(token)
    state = ScopeState.from_scope(request.scope)
    csrf = request.app.csrf_config
    cookie = request.cookies.get(csrf.cookie_name) if csrf is not None else None
    if principal is not None and cookie and not isinstance(state.csrf_token, str):
        state.csrf_token = cookie
    return principal


class _Deferred(ASGIResponse):
    """An ASGI response decided when it is sent: the visitor is looked up asynchronously first."""

    def __init__(self, page: ErrorPage, request: Request[Any, Any, Any], options: dict[str, Any]) -> None:
        self.page, self.request, self.options = page, request, options

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        page, request = self.page, self.request
        response: ASGIResponse | None = None
        try:
            # Only the console's pages need the visitor: a missing static file or public page
            # costs no session lookup (nor extends the session).
            principal = await _visitor(request) if _in_console(request) else None
            page.context["principal"] = principal
            if principal is not None:
                page.context.update(console=True, path=request.url.path)
                response = page.rendered(request, self.options)
        except Exception:  # an error page must not fail itself: the plain one then
            log.exception("error_page.console_layout_failed", status=page.status_code)
            page.context.update(console=False, principal=None)
        if response is None:
            response = page.rendered(request, self.options)
        await response(scope, receive, send)


class ErrorPage(Template):
    """``error.html`` in the console's layout for a signed-in visitor under ``/app``, else the
    public one."""

    def __init__(self, *, title: str, detail: str, status_code: int, back: bool = False) -> None:
        super().__init__("error.html", context={"status": status_code, "title": title, "detail": detail,
                                                "console": False, "back": back},
                         status_code=status_code, media_type=MediaType.HTML)

    def rendered(self, request: Request[Any, Any, Any], options: dict[str, Any]) -> ASGIResponse:
        return super().to_asgi_response(None, request, **options)

    def to_asgi_response(
        self,
        app: Any,
        request: Request[Any, Any, Any],
        *,
        background: BackgroundTask | BackgroundTasks | None = None,
        cookies: Iterable[Cookie] | None = None,
        encoded_headers: Iterable[tuple[bytes, bytes]] | None = None,
        headers: dict[str, str] | None = None,
        is_head_response: bool = False,
        media_type: MediaType | str | None = None,
        status_code: int | None = None,
        type_encoders: TypeEncodersMap | None = None,
    ) -> ASGIResponse:
        options = {"background": background, "cookies": cookies, "encoded_headers": encoded_headers,
                   "headers": headers, "is_head_response": is_head_response, "media_type": media_type,
                   "status_code": status_code, "type_encoders": type_encoders}
        return _Deferred(self, request, options)
