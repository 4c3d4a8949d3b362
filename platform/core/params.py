"""Path and query parameters with the bounds of ``core.limits``, for controllers."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar.params import Parameter

from core.limits import INT32_MAX
from core.problems import ProblemError

NumberParam = Annotated[int, Parameter(ge=1, le=INT32_MAX)]
OptionalNumberParam = Annotated[int | None, Parameter(ge=1, le=INT32_MAX)]
PageSize = Annotated[int, Parameter(ge=1, le=1000)]


def id_cursor(after: str | None) -> uuid.UUID | None:
    """The ``after`` of a page listed by time-ordered ids (UUIDv7): the last id of the page before."""
    if not after:
        return None
    try:
        return uuid.UUID(after)
    except ValueError:
        raise ProblemError(422, "Invalid cursor", "Pass the next_cursor of the previous page as after.") from None
