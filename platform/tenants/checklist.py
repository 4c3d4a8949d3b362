"""The getting-started checklist on the empty console.

Each step links to the page that does it and ticks itself from the data. Steps whose
domain has not shipped yet are listed, marked as coming, with no link.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal
from tenants.models import ApiKey, Invitation, Membership


@dataclass
class Step:
    key: str
    title: str
    text: str
    href: str | None
    done: bool
    available: bool = True


async def _count(session: AsyncSession, stmt: object) -> int:
    return int(await session.scalar(stmt) or 0)  # type: ignore[call-overload]


async def setup_counts(session: AsyncSession, principal: Principal) -> dict[str, int]:
    from orders.setup import setup_counts as order_counts
    from rules.service import has_published

    counts = await order_counts(session, principal)
    counts["routing"] = int(await has_published(session, principal.tenant_id))
    return counts


async def checklist(session: AsyncSession, principal: Principal) -> list[Step]:
    tenant = principal.tenant_id
    members = await _count(session, select(func.count()).select_from(Membership).where(Membership.tenant_id == tenant))
    invites = await _count(session, select(func.count()).select_from(Invitation).where(Invitation.tenant_id == tenant))
    keys = await _count(session, select(func.count()).select_from(ApiKey).where(ApiKey.tenant_id == tenant))
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
             "/app/settings/api-keys" if settings else None, keys > 0),
        Step("first_order", "Send a first order through the API", "POST /api/v1/orders with your key, or enter "
             "one by hand.", "/app/orders", counts.get("orders", 0) > 0),
        Step("teammate", "Invite a teammate", "Give each colleague their own sign-in and role.",
             "/app/settings/team" if settings else None, members > 1 or invites > 0),
    ]
