"""Customer service's routes, API and console, as the assembly registers them."""

from __future__ import annotations

from typing import Any

from support import customer_http, goodwill_http, policy_http, returns_http, search_http, tasks_http

route_handlers: list[Any] = [*returns_http.route_handlers, *customer_http.route_handlers,
                             *tasks_http.route_handlers, *goodwill_http.route_handlers,
                             *policy_http.route_handlers, *search_http.route_handlers]
