"""Billing's routes (the pricing page, the console's Billing page, the API) as the assembly
registers them, and what every console page shows of billing: the banner of the company's standing."""

from __future__ import annotations

from typing import Any

from billing import api, dunning, pages

route_handlers: list[Any] = [*pages.route_handlers, *api.route_handlers]


def template_globals() -> dict[str, Any]:
    """For the console's layout: the banner's sentence for ``principal.standing`` (None: no banner)."""
    return {"billing_standing_text": dunning.standing_text}
