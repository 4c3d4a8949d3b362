"""Locations, catalog and inventory.

Inventory per (product, location): ``on_hand``, ``reserved``, ``safety_stock``; available is
on_hand - reserved - safety_stock. Every change to on_hand or reserved writes a movement,
so on_hand always equals the sum of its movements' ``on_hand_delta`` (and reserved of
``reserved_delta``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    CheckConstraint,
    Float,
    ForeignKeyConstraint,
    Index,
    LargeBinary,
    SmallInteger,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import MONEY_COLUMN, Base, TenantScoped, utcnow


def _product_and_location() -> tuple[ForeignKeyConstraint, ForeignKeyConstraint]:
    """Foreign keys of a per-(product, location) row, tenant_id included in both."""
    return (
        ForeignKeyConstraint(["tenant_id", "product_id"], ["products.tenant_id", "products.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["tenant_id", "location_id"], ["locations.tenant_id", "locations.id"],
                             ondelete="CASCADE"),
    )


class Location(TenantScoped, Base):
    __tablename__ = "locations"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        CheckConstraint("promise_hours BETWEEN 1 AND 720", name="promise_hours_range"),
    )

    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    address_line1: Mapped[str] = mapped_column(String(200), default="")
    city: Mapped[str] = mapped_column(String(100), default="")
    postcode: Mapped[str] = mapped_column(String(20), default="")
    country: Mapped[str] = mapped_column(String(2))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    timezone: Mapped[str] = mapped_column(String(64))
    opening_hours: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    ships_to_customers: Mapped[bool] = mapped_column(default=False)
    click_and_collect: Mapped[bool] = mapped_column(default=False)
    ship_from_store: Mapped[bool] = mapped_column(default=False)
    receives_transfers: Mapped[bool] = mapped_column(default=False)
    accepts_returns: Mapped[bool] = mapped_column(default=False)
    daily_capacity: Mapped[int | None]
    shipping_cost_minor: Mapped[int | None] = mapped_column(MONEY_COLUMN)  # one shipment from here, for routing
    priority: Mapped[int] = mapped_column(default=100)
    # Hours from a fulfilment's creation to shipped or ready for pickup: past it, it is late.
    promise_hours: Mapped[int] = mapped_column(SmallInteger, default=24, server_default="24")
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(50)), default=list)
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Product(TenantScoped, Base):
    __tablename__ = "products"
    __table_args__ = (
        UniqueConstraint("tenant_id", "sku"),
        Index("ix_products_category", "tenant_id", "category"),
        CheckConstraint("price_minor >= 0", name="price_not_negative"),
    )

    sku: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(300))
    category: Mapped[str | None] = mapped_column(String(100))
    brand: Mapped[str | None] = mapped_column(String(100))
    price_minor: Mapped[int] = mapped_column(MONEY_COLUMN)
    currency: Mapped[str] = mapped_column(String(3))
    weight_grams: Mapped[int | None]
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class InventoryLevel(TenantScoped, Base):
    __tablename__ = "inventory_levels"
    __table_args__ = (
        UniqueConstraint("tenant_id", "product_id", "location_id"),
        Index("ix_inventory_levels_location", "tenant_id", "location_id"),
        *_product_and_location(),
        CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        CheckConstraint("safety_stock >= 0", name="safety_stock_not_negative"),
    )

    product_id: Mapped[uuid.UUID]
    location_id: Mapped[uuid.UUID]
    on_hand: Mapped[int] = mapped_column(default=0)
    reserved: Mapped[int] = mapped_column(default=0)
    safety_stock: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class InventoryMovement(TenantScoped, Base):
    __tablename__ = "inventory_movements"
    __table_args__ = (
        Index("ix_inventory_movements_level", "tenant_id", "product_id", "location_id", "id"),
        *_product_and_location(),
    )

    product_id: Mapped[uuid.UUID]
    location_id: Mapped[uuid.UUID]
    on_hand_delta: Mapped[int] = mapped_column(default=0)
    reserved_delta: Mapped[int] = mapped_column(default=0)
    safety_stock_delta: Mapped[int] = mapped_column(default=0, server_default="0")
    reason: Mapped[str] = mapped_column(String(32))
    reference: Mapped[str | None] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class InventoryFeed(TenantScoped, Base):
    """A stock feed as received: applied by a worker in one transaction, once."""

    __tablename__ = "inventory_feeds"
    __table_args__ = (
        UniqueConstraint("tenant_id", "external_id"),
        Index("ix_inventory_feeds_recent", "tenant_id", "created_at"),
        Index("ix_inventory_feeds_pending", "tenant_id", "created_at",
              postgresql_where=text("status IN ('accepted', 'applying')")),
    )

    external_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(10))  # snapshot | delta
    source: Mapped[str] = mapped_column(String(10))  # api | upload
    filename: Mapped[str | None] = mapped_column(String(300))
    content_format: Mapped[str] = mapped_column(String(10))  # csv | json
    payload: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)  # up to 50 MB: loaded only to apply
    status: Mapped[str] = mapped_column(String(20), default="accepted")
    rows_total: Mapped[int] = mapped_column(default=0)
    rows_changed: Mapped[int] = mapped_column(default=0)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    exceptions: Mapped[int] = mapped_column(default=0)
    created_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class StockException(TenantScoped, Base):
    __tablename__ = "stock_exceptions"
    __table_args__ = (
        *_product_and_location(),
    )

    product_id: Mapped[uuid.UUID]
    location_id: Mapped[uuid.UUID]
    kind: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(String(500))
    feed_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
