"""Errors as ``application/problem+json`` for the API and as pages for the console."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

log = structlog.get_logger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"


@dataclass
class FieldError:
    field: str
    message: str


@dataclass
class ProblemError(Exception):
    """A refusal with a reason: the request changed nothing."""

    status: int
    title: str
    detail: str = ""
    errors: list[FieldError] = field(default_factory=list)
    type: str = "about:blank"
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.title}: {self.detail}"


def invalid(errors: dict[str, str], detail: str = "Some fields are not valid.") -> ProblemError:
    return ProblemError(
        status=422,
        title="Invalid request",
        detail=detail,
        errors=[FieldError(name, message) for name, message in errors.items()],
    )


def not_found(what: str = "Resource") -> ProblemError:
    return ProblemError(status=404, title="Not found", detail=f"{what} not found.")


def _is_api(request: Request[Any, Any, Any]) -> bool:
    return request.url.path.startswith("/api/")


def problem_response(problem: ProblemError) -> Response[Any]:
    body: dict[str, Any] = {
        "type": problem.type,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
    }
    if problem.errors:
        body["errors"] = [{"field": e.field, "message": e.message} for e in problem.errors]
    return Response(body, status_code=problem.status, media_type=PROBLEM_MEDIA_TYPE, headers=problem.headers)


def _from_validation(exc: ValidationException) -> ProblemError:
    errors: list[FieldError] = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            errors.append(FieldError(str(item.get("key") or item.get("source") or "body"), str(item.get("message"))))
    return ProblemError(status=422, title="Invalid request", detail=exc.detail or "Validation failed.",
                        errors=errors)


_FRIENDLY = {
    "CSRF token verification failed": (
        "The security check failed: this form was missing its security token, or the token did not "
        "match your browser's. Reload the page and try again."
    ),
}


def _error_page(request: Request[Any, Any, Any], status: int, title: str, detail: str) -> Response[Any]:
    return Template(
        "error.html",
        context={"status": status, "title": title, "detail": detail},
        status_code=status,
        media_type=MediaType.HTML,
    )


def handle_problem(request: Request[Any, Any, Any], exc: ProblemError) -> Response[Any]:
    if _is_api(request) or "application/json" in request.headers.get("accept", ""):
        return problem_response(exc)
    detail = exc.detail
    if exc.errors:
        detail += " " + " ".join(f"{e.field}: {e.message}" for e in exc.errors)
    response = _error_page(request, exc.status, exc.title, detail)
    response.headers.update(exc.headers)
    return response


def handle_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if isinstance(exc, ValidationException):
        return handle_problem(request, _from_validation(exc))
    detail = _FRIENDLY.get(str(exc.detail), str(exc.detail))
    if isinstance(exc, NotAuthorizedException):
        if _is_api(request):
            return problem_response(ProblemError(
                401, "Unauthorized", detail or "Send a valid API key as 'Authorization: Bearer <key>'.",
                headers={"WWW-Authenticate": 'Bearer realm="oms"'},
            ))
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        if request.headers.get("hx-request"):
            return Response("", status_code=401, headers={"HX-Redirect": "/login"})
        return Redirect(f"/login?next={target}" if request.method == "GET" else "/login")
    if isinstance(exc, PermissionDeniedException) and exc.detail == "Forbidden":
        detail = "Your role does not allow this. Ask an owner or admin of your company."
    title = {404: "Not found", 403: "Forbidden", 405: "Method not allowed", 429: "Too many requests"}.get(
        exc.status_code, "Request refused"
    )
    problem = ProblemError(exc.status_code, title, detail, headers=dict(exc.headers or {}))
    return handle_problem(request, problem)


def _refused_value(exc: BaseException) -> BaseException | None:
    """A value from the request that the database refused (a number out of a column's range, a
    character text can't hold) or that the driver could not encode, wherever it sits in the
    exception's chain. Other data errors (a value too long for its column) are our own mistakes."""
    import asyncpg

    refusals = (asyncpg.NumericValueOutOfRangeError, asyncpg.CharacterNotInRepertoireError,
                asyncpg.UntranslatableCharacterError, UnicodeEncodeError)
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        # The driver's own refusal to encode an argument is the DataError class itself.
        if isinstance(seen, refusals) or type(seen) is asyncpg.DataError:
            return seen
        seen = getattr(seen, "orig", None) or seen.__cause__
    return None


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    from core.logging import loggable_path

    refused = _refused_value(exc)
    if refused is not None:
        # A value no validation caught and the database refused: the request's transaction is
        # rolled back, so the answer is the caller's error, not ours (logged, to add the check).
        log.warning("request.value_refused", path=loggable_path(request.url.path), error=str(refused)[:300])
        return handle_problem(request, ProblemError(
            422, "Invalid request", "A value in the request can't be stored: a number too large, or text with "
            "characters that aren't allowed. Nothing was changed."))
    log.exception("request.unhandled", path=loggable_path(request.url.path))
    return handle_problem(
        request,
        ProblemError(HTTP_500_INTERNAL_SERVER_ERROR, "Internal error",
                     "Something went wrong on our side; nothing was changed. Try again."),
    )


exception_handlers: dict[type[Exception] | int, Any] = {
    ProblemError: handle_problem,
    HTTPException: handle_http,
    Exception: handle_unexpected,
}
