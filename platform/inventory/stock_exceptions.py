"""Open stock exceptions as other pages list them (the dashboard's operations lists): each with
where it is resolved, the stock page (``/app/inventory``), filtered to its SKU."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from inventory.models import Location, Product, StockException

PAGE = "/app/inventory"


@dataclass(frozen=True)
class OpenException:
    id: uuid.UUID
    sku: str
    location_code: str
    kind: str
    message: str
    created_at: datetime

    @property
    def link(self) -> str:
        """The stock page, showing this SKU's levels and the exceptions to resolve."""
        return f"{PAGE}?{urlencode({'sku': self.sku})}"


async def open_exceptions(session: AsyncSession, tenant_id: uuid.UUID, limit: int = 20,
                          ) -> tuple[list[OpenException], int]:
    """The newest ``limit`` stock exceptions nobody has resolved yet, and how many there are."""
    limit = max(0, limit)
    rows = await session.execute(
        select(StockException.id, Product.sku, Location.code, StockException.kind, StockException.message,
               StockException.created_at, func.count().over())
        .join(Product, and_(Product.tenant_id == StockException.tenant_id, Product.id == StockException.product_id))
        .join(Location, and_(Location.tenant_id == StockException.tenant_id,
                             Location.id == StockException.location_id))
        .where(StockException.tenant_id == tenant_id, StockException.resolved_at.is_(None))
        .order_by(StockException.created_at.desc(), StockException.id.desc()).limit(max(1, limit)))
    found = list(rows)
    total = int(found[0][-1]) if found else 0
    return [OpenException(*row[:-1]) for row in found[:limit]], total
