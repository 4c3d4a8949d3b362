"""Customers: one record per email and tenant, found or created when an order comes in."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ARRAY, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, TenantScoped, utcnow


class Customer(TenantScoped, Base):
    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("tenant_id", "email"),
        Index("ix_customers_search_keys", "search_keys", postgresql_using="gin"),
    )

    # In lower case: compared as is, so that the unique index serves lookups under row-level
    # security (an index on lower(email) can't, lower() not being leakproof).
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str] = mapped_column(String(40), default="")
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(50)), default=list)
    # What customer service's search finds the customer by (``core.search_keys``): each key
    # carries the company's tag, so the index is the company's first even without tenant_id.
    search_keys: Mapped[list[str]] = mapped_column(ARRAY(String(120)), default=list, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
