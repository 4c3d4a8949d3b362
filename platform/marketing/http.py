"""Marketing's routes, gathered for the assembly: each console and API module adds its own."""

from __future__ import annotations

from typing import Any

from marketing import (
    api,
    campaign_pages,
    coupon_pages,
    customer_panel,
    pages,
    promotion_pages,
    segment_pages,
    unsubscribe,
)

route_handlers: list[Any] = [
    *api.route_handlers,
    *pages.route_handlers,
    *segment_pages.route_handlers,
    *coupon_pages.route_handlers,
    *campaign_pages.route_handlers,
    *customer_panel.route_handlers,
    *unsubscribe.route_handlers,
    *promotion_pages.route_handlers,
]
