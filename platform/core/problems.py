"""Errors as ``application/problem+json`` for the API and as pages for the console."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any

import structlog
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    SerializationException,
    ValidationException,
)
from litestar.response import Redirect
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


def _parameter(request: Request[Any, Any, Any], name: str) -> Any:
    """The route handler's parsed parameter ``name`` (``data`` is the body), or None."""
    try:
        return request.route_handler.parsed_fn_signature.parameters.get(name)
    except Exception:  # no route: a 404 or 405 before any handler
        return None


def _annotation(request: Request[Any, Any, Any], name: str) -> Any:
    """The route handler's annotation of a parameter, or None."""
    parameter = _parameter(request, name)
    return None if parameter is None else parameter.annotation


def _parameter_type(request: Request[Any, Any, Any], name: str) -> Any:
    """A query or path parameter's type with its declared bounds, to word its problem."""
    import msgspec

    parameter = _parameter(request, name)
    if parameter is None:
        return None
    bound = parameter.kwarg_definition
    limits = {key: getattr(bound, key, None) for key in ("ge", "gt", "le", "lt", "min_length", "max_length")}
    limits = {key: value for key, value in limits.items() if value is not None}
    if not limits:
        return parameter.annotation
    try:
        return Annotated[parameter.annotation, msgspec.Meta(**limits)]
    except (TypeError, ValueError):
        return parameter.annotation


def _body_problems(request: Request[Any, Any, Any]) -> dict[str, str] | None:
    """Every problem of the JSON body the handler was given, in plain words; None when the body
    was not read as JSON (nothing to check again) or has no declared type."""
    from litestar.types import Empty
    from litestar.utils.scope.state import ScopeState

    from core.forms import problems

    annotation = _annotation(request, "data")
    body = ScopeState.from_scope(request.scope).json
    if annotation is None or body is Empty:
        return None
    try:
        # Litestar converts bodies leniently ("5" for 5): the same leniency, so the same verdict.
        return problems(body, annotation, strict=False) or None
    except Exception:  # a type the collector can't walk: the decoder's own word
        log.warning("problems.body_not_walked", path=request.url.path, exc_info=True)
        return None


BODY = "body"


def _from_validation(request: Request[Any, Any, Any], exc: ValidationException) -> ProblemError:
    """Litestar's refusal of a request's body or parameters, with every problem in plain words."""
    from core.forms import translate

    errors: dict[str, str] = {}
    body: dict[str, str] | None = None  # every problem of the body, once it was checked again
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if not isinstance(item, dict):
            continue
        key, source, message = str(item.get("key") or ""), item.get("source"), str(item.get("message"))
        if source == "body" or not key:
            if body is None:
                body = _body_problems(request) or {}
                if not body and key == "data" and _annotation(request, "data") is not None:
                    body = {BODY: "Send the request's data as a JSON object in its body."}  # none was sent
                errors.update(body)
            if body:
                continue  # the body's problems are all told already, in the collector's words
            if source == "body":
                field, words = translate(message, _annotation(request, "data"), key)
                errors.setdefault(field, words)
                continue
        name = key or BODY
        _, words = translate(message, _parameter_type(request, name) if key else None, required=True)
        errors.setdefault(name, words)
    count = len(errors)
    detail = ("One field is not valid." if count == 1 else f"{count} fields are not valid.") if errors \
        else "The request is not valid."
    return ProblemError(status=422, title="Invalid request", detail=detail,
                        errors=[FieldError(field, message) for field, message in errors.items()])


_FRIENDLY = {
    "CSRF token verification failed": (
        "The security check failed: this form was missing its security token, or the token did not "
        "match your browser's. Reload the page and try again."
    ),
}


def _error_page(request: Request[Any, Any, Any], status: int, title: str, detail: str,
                back: bool = False) -> Response[Any]:
    from core.error_pages import ErrorPage  # in the console's layout for a signed-in visitor under /app

    return ErrorPage(title=title, detail=detail, status_code=status, back=back)


def handle_problem(request: Request[Any, Any, Any], exc: ProblemError) -> Response[Any]:
    if _is_api(request) or "application/json" in request.headers.get("accept", ""):
        return problem_response(exc)
    detail = exc.detail
    said = [f"{e.field}: {e.message}" for e in exc.errors if e.message not in detail]
    if said:
        detail += " " + " ".join(said)
    # A form refused before its page could show it again (a NUL character, a number no column
    # holds): the way back keeps what was typed, to correct it.
    back = request.method == "POST" and 400 <= exc.status < 500
    response = _error_page(request, exc.status, exc.title, detail, back)
    response.headers.update(exc.headers)
    return response


def _json_words(error: str) -> str:
    """msgspec's word on a body that isn't JSON, for the person who sent it."""
    if "truncated" in error:
        return "The body is not complete JSON: it ends too early."
    if found := re.search(r"\(byte (\d+)\)", error):
        return (f"The body is not valid JSON: something unexpected at character {int(found[1]) + 1}. "
                "Check the quotes, commas and brackets around it.")
    return "The body is not valid JSON."


def handle_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if isinstance(exc, ValidationException):
        return handle_problem(request, _from_validation(request, exc))
    if isinstance(exc.__cause__, SerializationException):
        return handle_problem(request, ProblemError(400, "Invalid JSON", _json_words(str(exc.__cause__))))
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
