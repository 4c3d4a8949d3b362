"""The stock routing reads: active locations as routing facts, the units available at each
(location, SKU) as they stand, and the ledger's changes since a moment, with which the figures
of any past moment can be rebuilt."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ARRAY, String, and_, any_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Prepared
from inventory.availability import AVAILABLE
from inventory.models import InventoryLevel, InventoryMovement, Location, Product
from inventory.schemas import LocationOut
from rules.facts import LocationFacts

StockKey = tuple[str, str]  # (location code, SKU)


def location_facts(location: LocationOut, available: dict[str, int], capacity_used: int = 0) -> LocationFacts:
    """A location as the routing evaluator sees it; ``capacity_used`` is what its day's
    fulfilments took of its daily capacity."""
    capacity = None if location.daily_capacity is None else max(0, location.daily_capacity - capacity_used)
    return LocationFacts(
        code=location.code, kind=location.kind, available=available, name=location.name, country=location.country,
        latitude=location.latitude, longitude=location.longitude, priority=location.priority,
        tags=frozenset(location.tags or ()), ships=location.ships_to_customers or location.ship_from_store,
        collects=location.click_and_collect, receives_transfers=location.receives_transfers,
        capacity_left=capacity, shipping_cost_minor=location.shipping_cost_minor,
    )


async def available_now(session: AsyncSession, tenant_id: uuid.UUID, skus: Collection[str]) -> dict[StockKey, int]:
    """Available units (safety stock taken off) per location and SKU, as they stand."""
    if not skus:
        return {}
    rows = await _AVAILABLE.fetch(session, tenant=tenant_id, skus=list(skus))
    return {(row["code"], row["sku"]): int(row["available"]) for row in rows}


_AVAILABLE = Prepared(
    select(Location.code, Product.sku, AVAILABLE.label("available"))
    .join(Product, and_(Product.tenant_id == InventoryLevel.tenant_id, Product.id == InventoryLevel.product_id))
    .join(Location, and_(Location.tenant_id == InventoryLevel.tenant_id, Location.id == InventoryLevel.location_id))
    .where(InventoryLevel.tenant_id == bindparam("tenant"), Product.sku == any_(bindparam("skus", type_=ARRAY(String))))
)


@dataclass(frozen=True, slots=True)
class Change:
    at: datetime
    key: StockKey
    available_delta: int


async def changes_since(session: AsyncSession, tenant_id: uuid.UUID, skus: Collection[str],
                        since: datetime) -> list[Change]:
    """The ledger's changes to available stock after ``since``, oldest first: with the
    current figures they give the stock as it was at any time since."""
    if not skus:
        return []
    rows = await session.execute(
        select(InventoryMovement.created_at, Location.code, Product.sku,
               InventoryMovement.on_hand_delta - InventoryMovement.reserved_delta
               - InventoryMovement.safety_stock_delta)
        .join(Product, and_(Product.tenant_id == InventoryMovement.tenant_id,
                            Product.id == InventoryMovement.product_id))
        .join(Location, and_(Location.tenant_id == InventoryMovement.tenant_id,
                             Location.id == InventoryMovement.location_id))
        .where(InventoryMovement.tenant_id == tenant_id, InventoryMovement.created_at > since,
               Product.sku.in_(list(skus)))
        .order_by(InventoryMovement.created_at, InventoryMovement.id)
    )
    return [Change(at, (code, sku), int(delta)) for at, code, sku, delta in rows]
