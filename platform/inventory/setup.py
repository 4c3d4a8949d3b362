"""What a company has set up in inventory so far, for the getting-started checklist."""

from __future__ import annotations

import uuid

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from inventory.models import InventoryLevel, Location, Product


async def setup_counts(session: AsyncSession, tenant_id: uuid.UUID) -> dict[str, int]:
    """1 for each of locations, products and stock the company has, 0 for each it lacks."""
    has = {}
    for name, model in (("locations", Location), ("products", Product), ("stock", InventoryLevel)):
        has[name] = int(bool(await session.scalar(select(exists().where(model.tenant_id == tenant_id)))))
    return has
