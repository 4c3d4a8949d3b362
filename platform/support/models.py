"""Customer service's tables: the company's return policy, returns and their lines, notes on
customers, and goodwill refunds waiting for someone whose limit covers them.

Orders, lines and locations are referenced by id and copied code, with no foreign key to other
domains' tables (as orders do with theirs)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKeyConstraint,
    Index,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, TenantScoped, utcnow

RETURN_STATUSES = ("requested", "received", "inspected", "refunded", "closed", "cancelled")


class ReturnPolicy(TenantScoped, Base):
    """One per company; a company without one has ``support.policy.DEFAULTS``."""

    __tablename__ = "return_policies"
    __table_args__ = (
        UniqueConstraint("tenant_id"),
        CheckConstraint("window_days BETWEEN 0 AND 3650", name="window_days_range"),
        CheckConstraint("restocking_fee_bp BETWEEN 0 AND 10000", name="restocking_fee_range"),
        CheckConstraint("refund_on IN ('received', 'inspected')", name="refund_on_known"),
    )

    window_days: Mapped[int] = mapped_column(default=30)  # from delivery or collection
    non_returnable_categories: Mapped[list[str]] = mapped_column(ARRAY(String(100)), default=list)
    restocking_fee_bp: Mapped[int] = mapped_column(default=0)  # in hundredths of a percent
    refund_return_shipping: Mapped[bool] = mapped_column(Boolean, default=False)
    override_roles: Mapped[list[str]] = mapped_column(ARRAY(String(32)), default=list)  # may return late
    refund_on: Mapped[str] = mapped_column(String(20), default="inspected")
    reason_codes: Mapped[list[str]] = mapped_column(ARRAY(String(40)), default=list)
    # {role: {"per_refund": minor, "per_month": minor}}: goodwill each role may give alone.
    goodwill_limits: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(320), default="")


class Return(TenantScoped, Base):
    """A return (RMA): requested → received → inspected → refunded → closed, or cancelled
    before it is received."""

    __tablename__ = "returns"
    __table_args__ = (
        UniqueConstraint("tenant_id", "number"),
        Index("ix_returns_order", "tenant_id", "order_id"),
        Index("ix_returns_customer", "tenant_id", "customer_id", "created_at"),
        Index("ix_returns_status", "tenant_id", "status", "created_at"),
        # Refunded returns wait for their refund to be paid to close, an exchange's return for its
        # goods until a date (both found by the scheduler).
        Index("ix_returns_waiting", "tenant_id", "expected_by",
              postgresql_where=text("status = 'refunded' OR (status = 'requested' AND expected_by IS NOT NULL)")),
        CheckConstraint("status IN ('requested', 'received', 'inspected', 'refunded', 'closed', 'cancelled')",
                        name="status_known"),
        CheckConstraint("method IN ('in_store', 'post')", name="method_known"),
    )

    number: Mapped[str] = mapped_column(String(80))
    order_id: Mapped[uuid.UUID]
    order_number: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[uuid.UUID | None]
    status: Mapped[str] = mapped_column(String(20), default="requested")
    method: Mapped[str] = mapped_column(String(20))
    expected_location_code: Mapped[str] = mapped_column(String(64))
    received_location_code: Mapped[str | None] = mapped_column(String(64))
    label_reference: Mapped[str | None] = mapped_column(String(100))  # a return label, by post
    note: Mapped[str] = mapped_column(String(1000), default="")
    window_overridden: Mapped[bool] = mapped_column(Boolean, default=False)
    opened_via: Mapped[str] = mapped_column(String(20), default="console")  # console | api
    exchange_order_id: Mapped[uuid.UUID | None]  # the replacement, for an exchange
    refund_id: Mapped[uuid.UUID | None]
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    restocking_fee_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    # What of the returned goods' value paid for an exchange's replacement (never refunded).
    exchange_credit_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    opened_by: Mapped[str] = mapped_column(String(320))
    received_by: Mapped[str | None] = mapped_column(String(320))
    inspected_by: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    received_at: Mapped[datetime | None]
    inspected_at: Mapped[datetime | None]
    refunded_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    expected_by: Mapped[datetime | None]  # an exchange shipped at once waits for its return until then


class ReturnLine(TenantScoped, Base):
    __tablename__ = "return_lines"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "return_id"], ["returns.tenant_id", "returns.id"], ondelete="CASCADE"),
        Index("ix_return_lines_return", "tenant_id", "return_id"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("condition IS NULL OR condition IN ('resellable', 'damaged')", name="condition_known"),
    )

    return_id: Mapped[uuid.UUID]
    order_line_id: Mapped[uuid.UUID]
    line_no: Mapped[int]
    sku: Mapped[str] = mapped_column(String(64))
    product_id: Mapped[uuid.UUID | None]
    name: Mapped[str] = mapped_column(String(300), default="")
    quantity: Mapped[int]
    reason_code: Mapped[str] = mapped_column(String(40))
    condition: Mapped[str | None] = mapped_column(String(20))  # set by the inspection
    refund_minor: Mapped[int] = mapped_column(BigInteger, default=0)


class CustomerNote(TenantScoped, Base):
    """A note an agent wrote about a customer, or about one of their orders."""

    __tablename__ = "customer_notes"
    __table_args__ = (
        Index("ix_customer_notes_customer", "tenant_id", "customer_id", "created_at"),
        Index("ix_customer_notes_order", "tenant_id", "order_id"),
    )

    customer_id: Mapped[uuid.UUID | None]
    order_id: Mapped[uuid.UUID | None]
    body: Mapped[str] = mapped_column(String(2000))
    author: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class GoodwillRequest(TenantScoped, Base):
    """A goodwill refund above its asker's limit, waiting for someone whose limit covers it."""

    __tablename__ = "goodwill_requests"
    __table_args__ = (
        Index("ix_goodwill_requests_order", "tenant_id", "order_id"),
        Index("ix_goodwill_requests_waiting", "tenant_id", "created_at", postgresql_where=text("status = 'waiting'")),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("status IN ('waiting', 'approved', 'declined')", name="status_known"),
    )

    order_id: Mapped[uuid.UUID]
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    shipping_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)  # [{line_no, amount_minor}]
    reason: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(20), default="waiting")
    requested_by: Mapped[str] = mapped_column(String(320))
    requested_role: Mapped[str] = mapped_column(String(32))
    decided_by: Mapped[str | None] = mapped_column(String(320))
    decision_note: Mapped[str | None] = mapped_column(String(1000))
    refund_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]
