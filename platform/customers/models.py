"""Customers: one record per email and tenant, found or created when an order comes in."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ARRAY, BigInteger, ForeignKey, ForeignKeyConstraint, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, TenantScoped, utcnow


class Customer(TenantScoped, Base):
    __tablename__ = "customers"
    __table_args__ = (UniqueConstraint("tenant_id", "email"),
                      Index("ix_customers_last_order", "tenant_id", "last_order_at"))

    # In lower case: compared as is, so that the unique index serves lookups under row-level
    # security (an index on lower(email) can't, lower() not being leakproof).
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str] = mapped_column(String(40), default="")
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(50)), default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # What segments test, kept by orders in the transactions that change it (capture, cancellation,
    # return): orders not wholly cancelled, their value less what was cancelled or returned, when
    # the first and last were placed, and the channels, stores and categories they used.
    orders_count: Mapped[int] = mapped_column(default=0, server_default="0")
    lifetime_value_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    first_order_at: Mapped[datetime | None]
    last_order_at: Mapped[datetime | None]
    channels: Mapped[list[str]] = mapped_column(ARRAY(String(20)), default=list, server_default="{}")
    stores: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list, server_default="{}")
    categories: Mapped[list[str]] = mapped_column(ARRAY(String(100)), default=list, server_default="{}")
    # Marketing consent per channel (opt-in: never assumed), and an unsubscribe, honoured at once.
    email_consent: Mapped[bool] = mapped_column(default=False, server_default="false")
    sms_consent: Mapped[bool] = mapped_column(default=False, server_default="false")
    consent_updated_at: Mapped[datetime | None]
    unsubscribed_at: Mapped[datetime | None]


class CustomerSearchKey(Base):
    """One key customer service's search finds a customer by (``core.search_keys``): a word of
    their name or email, its prefixes and one-letter deletions, the email, the phone's last
    digits. The primary key is the search's index: it leads with ``tenant_id`` and is read by
    text equality, which is leakproof, so row-level security keeps it usable."""

    __tablename__ = "customer_search_keys"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"],
                             ondelete="CASCADE"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
