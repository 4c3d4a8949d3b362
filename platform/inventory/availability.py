"""Reading stock: levels per SKU and location, the movements ledger, network and pickup
availability. Reads go to the database every time: a cached figure could promise stock
that a reservation would then refuse."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ARRAY, Select, String, and_, any_, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal
from inventory.locations import is_open, opens_today
from inventory.models import InventoryLevel, InventoryMovement, Location, Product, StockException
from inventory.schemas import LocationAvailability, SkuAvailability

AVAILABLE = InventoryLevel.on_hand - InventoryLevel.reserved - InventoryLevel.safety_stock


@dataclass
class GridRow:
    product: Product
    location: Location
    level: InventoryLevel

    @property
    def available(self) -> int:
        return self.level.on_hand - self.level.reserved - self.level.safety_stock


def _grid(principal: Principal) -> Select[InventoryLevel, Product, Location]:
    return (
        select(InventoryLevel, Product, Location)
        .join(Product, and_(Product.tenant_id == InventoryLevel.tenant_id, Product.id == InventoryLevel.product_id))
        .join(Location, and_(Location.tenant_id == InventoryLevel.tenant_id,
                             Location.id == InventoryLevel.location_id))
        .where(InventoryLevel.tenant_id == principal.tenant_id)
    )


async def inventory_grid(session: AsyncSession, principal: Principal, *, sku: str = "", location_id: uuid.UUID | None,
                         category: str = "", low_stock: bool = False, limit: int = 200) -> list[GridRow]:
    stmt = _grid(principal)
    if sku:
        stmt = stmt.where(func.lower(Product.sku).like(f"%{sku.lower()}%"))
    if location_id:
        stmt = stmt.where(Location.id == location_id)
    if category:
        stmt = stmt.where(Product.category == category)
    if low_stock:
        stmt = stmt.where(func.greatest(InventoryLevel.safety_stock, 2) >= AVAILABLE)
    rows = await session.execute(stmt.order_by(Product.sku, Location.code).limit(limit))
    return [GridRow(product=p, location=loc, level=level) for level, p, loc in rows]


async def levels_for_skus(session: AsyncSession, principal: Principal, skus: list[str]) -> list[GridRow]:
    rows = await session.execute(
        _grid(principal).where(Product.sku == any_(bindparam("skus", skus, ARRAY(String))))
        .order_by(Product.sku, Location.code)
    )
    return [GridRow(product=p, location=loc, level=level) for level, p, loc in rows]


async def level_of(session: AsyncSession, principal: Principal, product_id: uuid.UUID,
                   location_id: uuid.UUID) -> InventoryLevel | None:
    level: InventoryLevel | None = await session.scalar(select(InventoryLevel).where(
        InventoryLevel.tenant_id == principal.tenant_id, InventoryLevel.product_id == product_id,
        InventoryLevel.location_id == location_id))
    return level


async def movements(session: AsyncSession, principal: Principal, *, product_id: uuid.UUID | None = None,
                    location_id: uuid.UUID | None = None, limit: int = 200,
                    ) -> list[tuple[InventoryMovement, str, str]]:
    stmt = (
        select(InventoryMovement, Product.sku, Location.code)
        .join(Product, and_(Product.tenant_id == InventoryMovement.tenant_id,
                            Product.id == InventoryMovement.product_id))
        .join(Location, and_(Location.tenant_id == InventoryMovement.tenant_id,
                             Location.id == InventoryMovement.location_id))
        .where(InventoryMovement.tenant_id == principal.tenant_id)
    )
    if product_id:
        stmt = stmt.where(InventoryMovement.product_id == product_id)
    if location_id:
        stmt = stmt.where(InventoryMovement.location_id == location_id)
    rows = await session.execute(stmt.order_by(InventoryMovement.id.desc()).limit(limit))
    return [(m, sku, code) for m, sku, code in rows]


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 6371.0 * 2 * math.asin(math.sqrt(min(1.0, a)))


async def availability(session: AsyncSession, principal: Principal, skus: list[str], *, at: datetime,
                       latitude: float | None = None, longitude: float | None = None,
                       country: str | None = None, pickup_location: str | None = None) -> list[SkuAvailability]:
    """For each SKU: available per active location and in total (safety stock honoured),
    whether it can be delivered (a shipping location has one), and which click & collect
    stores have it for pickup today."""
    stmt = (
        select(Product.sku, Product.status, Location, AVAILABLE)
        .join(Product, and_(Product.tenant_id == InventoryLevel.tenant_id, Product.id == InventoryLevel.product_id))
        .join(Location, and_(Location.tenant_id == InventoryLevel.tenant_id,
                             Location.id == InventoryLevel.location_id))
        .where(InventoryLevel.tenant_id == principal.tenant_id, Product.sku.in_(skus), Location.status == "active")
    )
    if pickup_location:
        stmt = stmt.where(Location.code == pickup_location)
    result: dict[str, SkuAvailability] = {
        sku: SkuAvailability(sku=sku, total_available=0, deliverable=False, locations=[], pickup_today=[])
        for sku in skus
    }
    for sku, status, location, available in await session.execute(stmt.order_by(Location.priority, Location.code)):
        # An inactive product is not for sale: new orders for it are refused, so none is available.
        available = max(0, int(available)) if status == "active" else 0
        entry = result[sku]
        distance = None
        if latitude is not None and longitude is not None and location.latitude is not None:
            distance = round(distance_km(latitude, longitude, location.latitude, location.longitude or 0.0), 1)
        # Each capability as the location's form and API store it: reporting ship-from-store as
        # "ships to customers" told a company its store shipped although that box was unticked.
        entry.locations.append(LocationAvailability(
            location=location.code, name=location.name, kind=location.kind, available=available,
            ships_to_customers=location.ships_to_customers, ship_from_store=location.ship_from_store,
            click_and_collect=location.click_and_collect, open_now=is_open(location, at), distance_km=distance,
        ))
        entry.total_available += available
        # Deliverable as routing sees it: either capability sends parcels to customers.
        ships = location.ships_to_customers or location.ship_from_store
        if ships and available > 0 and (country is None or location.country == country.upper()):
            entry.deliverable = True
        if location.click_and_collect and available > 0 and opens_today(location, at):
            entry.pickup_today.append(location.code)
    if latitude is not None and longitude is not None:
        for entry in result.values():
            entry.locations.sort(key=lambda item: (item.distance_km is None, item.distance_km or 0))
    return list(result.values())


async def open_exceptions(session: AsyncSession, principal: Principal, limit: int = 50,
                          ) -> list[tuple[StockException, str, str]]:
    """Stock exceptions nobody has resolved yet, newest first."""
    rows = await session.execute(
        select(StockException, Product.sku, Location.code)
        .join(Product, and_(Product.tenant_id == StockException.tenant_id, Product.id == StockException.product_id))
        .join(Location, and_(Location.tenant_id == StockException.tenant_id,
                             Location.id == StockException.location_id))
        .where(StockException.tenant_id == principal.tenant_id, StockException.resolved_at.is_(None))
        .order_by(StockException.created_at.desc()).limit(limit)
    )
    return [(e, sku, code) for e, sku, code in rows]


async def resolve_exception(session: AsyncSession, principal: Principal, exception_id: uuid.UUID) -> None:
    from core.db import utcnow
    from core.problems import not_found

    exception = await session.scalar(select(StockException).where(
        StockException.tenant_id == principal.tenant_id, StockException.id == exception_id))
    if exception is None:
        raise not_found("Stock exception")
    if exception.resolved_at is None:
        exception.resolved_at = utcnow()
