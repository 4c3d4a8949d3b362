"""Path and query parameters with the bounds of ``core.limits``, for controllers."""

from __future__ import annotations

from typing import Annotated

from litestar.params import Parameter

from core.limits import INT32_MAX

NumberParam = Annotated[int, Parameter(ge=1, le=INT32_MAX)]
OptionalNumberParam = Annotated[int | None, Parameter(ge=1, le=INT32_MAX)]
PageSize = Annotated[int, Parameter(ge=1, le=1000)]
