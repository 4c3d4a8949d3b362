"""Customers: one record per email and tenant, found or created when an order comes in."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ARRAY, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, TenantScoped, utcnow


class Customer(TenantScoped, Base):
    __tablename__ = "customers"
    __table_args__ = (Index("uq_customers_email", "tenant_id", text("lower(email)"), unique=True),)

    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str] = mapped_column(String(40), default="")
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(50)), default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
