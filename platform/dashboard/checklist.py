"""The getting-started checklist on the empty console.

Each step links to the page that does it and ticks itself from the data. Steps whose
domain has not shipped yet are listed, marked as coming, with no link.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal
from inventory import setup as inventory_setup
from orders import queries as order_queries
from rules import service as rules
from tenants import service as tenants


@dataclass
class Step:
    key: str
    title: str
    text: str
    href: str | None
    done: bool
    available: bool = True


async def setup_counts(session: AsyncSession, principal: Principal) -> dict[str, int]:
    counts = await inventory_setup.setup_counts(session, principal.tenant_id)
    counts["routing"] = int(await rules.has_published(session, principal.tenant_id))
    counts["orders"] = int(await order_queries.has_orders(session, principal.tenant_id))
    counts.update(await tenants.setup_counts(session, principal.tenant_id))
    return counts


async def checklist(session: AsyncSession, principal: Principal) -> list[Step]:
    # Settings pages are for owners and admins: others see the step, not a link to a 403.
    settings = principal.is_admin
    manage = principal.role in ("owner", "admin", "merchandiser")
    counts = await setup_counts(session, principal)
    return [
        Step("location", "Add a location", "Your warehouses and stores, with what each can do.",
             "/app/locations/new" if manage else "/app/locations", counts.get("locations", 0) > 0),
        Step("products", "Add products", "Upload your catalog as CSV or JSON, or send it through the API.",
             "/app/catalog/import" if manage else "/app/catalog", counts.get("products", 0) > 0),
        Step("stock", "Load stock", "Quantities per product and location, from a file or the API.",
             "/app/inventory/feeds", counts.get("stock", 0) > 0),
        Step("routing", "Publish a routing rule", "Decide which location ships each order.",
             "/app/rules/draft", counts.get("routing", 0) > 0),
        Step("api_key", "Create an API key", "Your channels and scripts use it to call the API.",
             "/app/settings/api-keys" if settings else None, counts["api_keys"] > 0),
        Step("first_order", "Send a first order through the API", "POST /api/v1/orders with your key, or enter "
             "one by hand.", "/app/orders", counts.get("orders", 0) > 0),
        Step("teammate", "Invite a teammate", "Give each colleague their own sign-in and role.",
             "/app/settings/team" if settings else None, counts["members"] > 1 or counts["invitations"] > 0),
    ]
