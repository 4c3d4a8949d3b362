"""Customer service's routes, API and console, as the assembly registers them."""

from __future__ import annotations

from typing import Any

route_handlers: list[Any] = []
