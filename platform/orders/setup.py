"""What a tenant has set up so far, for the getting-started checklist."""

from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal
from orders.models import InventoryLevel, Location, Order, Product


async def setup_counts(session: AsyncSession, principal: Principal) -> dict[str, int]:
    tenant = principal.tenant_id
    has = {}
    for name, model in (("locations", Location), ("products", Product), ("stock", InventoryLevel), ("orders", Order)):
        has[name] = int(bool(await session.scalar(select(exists().where(model.tenant_id == tenant)))))
    return has
