"""Orders, their lines, fulfilments and timeline, the company's payment account, and the
customer-service tasks orders raise.

Rows of other domains (a fulfilment's location, an order's customer, a line's product) are
referenced by id and copied code, with no foreign key to their tables: orders keep what they
were placed with, and this module imports no other domain's models.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import MONEY_COLUMN, Base, TenantScoped, utcnow


class Order(TenantScoped, Base):
    """An order of any channel, from capture to closing. ``status`` moves only through
    ``orders.lifecycle``, which writes each move to ``order_events``."""

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("tenant_id", "number"),
        Index("uq_orders_channel_number", "tenant_id", "channel", "external_number", unique=True,
              postgresql_where=text("external_number IS NOT NULL")),
        Index("ix_orders_placed", "tenant_id", "placed_at", "id"),
        Index("ix_orders_status_placed", "tenant_id", "status", "placed_at", "id"),
        Index("ix_orders_channel_placed", "tenant_id", "channel", "placed_at", "id"),
        Index("ix_orders_customer_email_plain", "tenant_id", "customer_email"),  # stored in lower case
        Index("ix_orders_customer_placed", "tenant_id", "customer_id", "placed_at"),
        Index("ix_orders_external_number", "tenant_id", "external_number"),  # search without the channel
        Index("ix_orders_ship_postcode", "tenant_id", "ship_postcode"),  # customer service's search
        Index("ix_orders_exchange_for", "tenant_id", "exchange_for", postgresql_where=text("exchange_for IS NOT NULL")),
        Index("ix_orders_payment_attention", "tenant_id", "payment_status", "placed_at",
              postgresql_where=text("payment_status IN ('capture_failed', 'capture_pending')")),
        # Work that waits on a worker (see orders.tasks' pending work): small, and found across
        # companies by the re-drive sweep.
        Index("ix_orders_pending_work", "tenant_id", "updated_at",
              postgresql_where=text("status IN ('received', 'backordered') OR payment_status = 'capture_pending'")),
        Index("ix_orders_to_close", "tenant_id", "updated_at",
              postgresql_where=text("status IN ('delivered', 'collected', 'shipped')")),
        CheckConstraint("total_minor >= 0", name="total_not_negative"),
        # The refund ledger's invariant, held by the database itself: refunds are written with the
        # order row locked (``orders.payments.refund``), and this check refuses whatever slips past.
        CheckConstraint("refunded_minor <= captured_minor", name="refunded_within_captured"),
    )

    number: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(20))
    external_number: Mapped[str | None] = mapped_column(String(100))  # the channel's own order number
    status: Mapped[str] = mapped_column(String(20), default="received")
    hold_reason: Mapped[str | None] = mapped_column(String(500))
    currency: Mapped[str] = mapped_column(String(3))
    subtotal_minor: Mapped[int] = mapped_column(MONEY_COLUMN, default=0, server_default="0")
    discount_minor: Mapped[int] = mapped_column(MONEY_COLUMN, default=0, server_default="0")
    shipping_fee_minor: Mapped[int] = mapped_column(MONEY_COLUMN, default=0, server_default="0")
    total_minor: Mapped[int] = mapped_column(MONEY_COLUMN)
    delivery_mode: Mapped[str] = mapped_column(String(20))  # ship | pickup | ship_to_store
    ship_name: Mapped[str | None] = mapped_column(String(200))
    ship_line1: Mapped[str | None] = mapped_column(String(200))
    ship_city: Mapped[str | None] = mapped_column(String(100))
    ship_country: Mapped[str | None] = mapped_column(String(2))
    ship_postcode: Mapped[str | None] = mapped_column(String(20))
    ship_latitude: Mapped[float | None] = mapped_column(Float)
    ship_longitude: Mapped[float | None] = mapped_column(Float)
    pickup_location_code: Mapped[str | None] = mapped_column(String(64))
    customer_id: Mapped[uuid.UUID | None]
    customer_email: Mapped[str | None] = mapped_column(String(320))  # lower case, for search
    customer_name: Mapped[str | None] = mapped_column(String(200))
    customer_phone: Mapped[str | None] = mapped_column(String(40))
    customer_tags: Mapped[list[str]] = mapped_column(ARRAY(String(50)), default=list)
    language: Mapped[str | None] = mapped_column(String(8))  # the customer's, for mails; else the company's
    payment_provider: Mapped[str | None] = mapped_column(String(20))  # external | stripe
    payment_method: Mapped[str | None] = mapped_column(String(40))
    payment_reference: Mapped[str | None] = mapped_column(String(200))
    payment_status: Mapped[str] = mapped_column(String(20), default="none", server_default="none")
    authorized_minor: Mapped[int] = mapped_column(MONEY_COLUMN, default=0, server_default="0")
    captured_minor: Mapped[int] = mapped_column(MONEY_COLUMN, default=0, server_default="0")
    refunded_minor: Mapped[int] = mapped_column(MONEY_COLUMN, default=0, server_default="0")
    # Stripe captures that got a definite refusal: each retry goes under a new idempotency key.
    capture_attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    excluded_locations: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list,
                                                          server_default="{}")  # rejected by them
    routing_version: Mapped[int | None]
    routing: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # the last decision and its trace
    created_by: Mapped[str] = mapped_column(String(320), default="", server_default="")
    exchange_for: Mapped[uuid.UUID | None]  # the order this one replaces goods of (an exchange)
    placed_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, server_default=func.now())


class OrderLine(TenantScoped, Base):
    __tablename__ = "order_lines"
    __table_args__ = (
        UniqueConstraint("tenant_id", "order_id", "line_no"),
        ForeignKeyConstraint(["tenant_id", "order_id"], ["orders.tenant_id", "orders.id"], ondelete="CASCADE"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("qty_allocated + qty_cancelled <= quantity", name="not_over_allocated"),
        CheckConstraint("qty_shipped <= qty_allocated", name="shipped_within_allocated"),
    )

    order_id: Mapped[uuid.UUID]
    line_no: Mapped[int]
    sku: Mapped[str] = mapped_column(String(64))
    product_id: Mapped[uuid.UUID | None]
    name: Mapped[str] = mapped_column(String(300), default="", server_default="")
    category: Mapped[str | None] = mapped_column(String(100))
    quantity: Mapped[int]
    unit_price_minor: Mapped[int] = mapped_column(MONEY_COLUMN)
    discount_minor: Mapped[int] = mapped_column(MONEY_COLUMN, default=0, server_default="0")
    # The line's share of the order-level discount, apportioned at capture (largest remainder):
    # what the customer pays for the line is its net, and every capture and refund is computed
    # from line nets (``orders.payments.net_of``).
    order_discount_minor: Mapped[int] = mapped_column(MONEY_COLUMN, default=0, server_default="0")
    qty_allocated: Mapped[int] = mapped_column(default=0, server_default="0")
    qty_shipped: Mapped[int] = mapped_column(default=0, server_default="0")
    qty_cancelled: Mapped[int] = mapped_column(default=0, server_default="0")
    qty_returned: Mapped[int] = mapped_column(default=0, server_default="0")


class Fulfilment(TenantScoped, Base):
    """The part of an order one location sends (or hands over), with its own lifecycle."""

    __tablename__ = "fulfilments"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "order_id"], ["orders.tenant_id", "orders.id"], ondelete="CASCADE"),
        Index("ix_fulfilments_order", "tenant_id", "order_id"),
        Index("ix_fulfilments_queue", "tenant_id", "location_code", "status", "created_at"),
        Index("ix_fulfilments_location_day", "tenant_id", "location_code", "created_at"),
        Index("ix_fulfilments_waiting_pickup", "tenant_id", "pickup_expires_at",
              postgresql_where=text("status = 'ready_for_pickup'")),
        Index("ix_fulfilments_tracking", "tenant_id", "tracking_number",
              postgresql_where=text("tracking_number IS NOT NULL")),  # a carrier's tracking events
        Index("ix_fulfilments_arriving", "tenant_id", "ship_to_store", "created_at",
              postgresql_where=text("kind = 'transfer' AND status IN ('shipped', 'ready_for_pickup')")),
        # Work not yet shipped or ready, against each location's promise (the dashboard's late list).
        Index("ix_fulfilments_open", "tenant_id", "created_at",
              postgresql_where=text("status IN ('created', 'accepted', 'picking', 'packed')")),
    )

    order_id: Mapped[uuid.UUID]
    number: Mapped[str] = mapped_column(String(80))
    location_id: Mapped[uuid.UUID]
    location_code: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20))  # ship | pickup | transfer (to a pickup store)
    ship_to_store: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="created")
    reason: Mapped[str | None] = mapped_column(String(500))
    tracking_number: Mapped[str | None] = mapped_column(String(100))
    carrier: Mapped[str | None] = mapped_column(String(40))  # a code of ``orders.carriers`` or "other"
    tracking_url: Mapped[str | None] = mapped_column(String(500))
    shipped_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    pickup_expires_at: Mapped[datetime | None]
    ready_at: Mapped[datetime | None]  # first ready for pickup (at the pickup store, for a transfer)


class FulfilmentLine(TenantScoped, Base):
    __tablename__ = "fulfilment_lines"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "fulfilment_id"], ["fulfilments.tenant_id", "fulfilments.id"],
                             ondelete="CASCADE"),
        Index("ix_fulfilment_lines_fulfilment", "tenant_id", "fulfilment_id"),
        CheckConstraint("quantity >= 0", name="quantity_not_negative"),
    )

    fulfilment_id: Mapped[uuid.UUID]
    order_line_id: Mapped[uuid.UUID]
    sku: Mapped[str] = mapped_column(String(64))
    product_id: Mapped[uuid.UUID]
    quantity: Mapped[int]


class OrderEvent(TenantScoped, Base):
    """The order's timeline: every state change (order or fulfilment), who made it and why."""

    __tablename__ = "order_events"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "order_id"], ["orders.tenant_id", "orders.id"], ondelete="CASCADE"),
        Index("ix_order_events_order", "tenant_id", "order_id", "id"),
        Index("ix_order_events_recent", "tenant_id", "created_at"),
        # Which companies changed lately, across companies (the figures' refresh sweep): cheap to keep.
        Index("ix_order_events_created", "created_at", postgresql_using="brin"),
    )

    order_id: Mapped[uuid.UUID]
    fulfilment_id: Mapped[uuid.UUID | None]
    kind: Mapped[str] = mapped_column(String(40))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str | None] = mapped_column(String(1000))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PaymentAccount(TenantScoped, Base):
    """The company's own account at a payment provider (its Stripe secret key)."""

    __tablename__ = "payment_accounts"
    __table_args__ = (UniqueConstraint("tenant_id", "provider"),)

    provider: Mapped[str] = mapped_column(String(20))  # stripe
    secret_key: Mapped[str] = mapped_column(String(300))  # never logged; shown masked
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str] = mapped_column(String(320), default="")


REFUND_SOURCES = ("cancellation", "return", "exchange", "goodwill", "shipping")


class Refund(TenantScoped, Base):
    """Money given back on an order, as recorded; for a Stripe payment, ``pending`` until Stripe
    has taken it (``sent``), ``failed`` when Stripe refused it for good, ``abandoned`` when
    customer service settled it another way. The order's refunds are its refund ledger: each
    says why (``source``), and how much of it goes to each line (``RefundLine``) and to shipping;
    the rest of its amount is given back on the order as a whole."""

    __tablename__ = "refunds"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "order_id"], ["orders.tenant_id", "orders.id"], ondelete="CASCADE"),
        Index("ix_refunds_order", "tenant_id", "order_id"),
        Index("ix_refunds_pending", "tenant_id", "created_at", postgresql_where=text("status = 'pending'")),
        # What an agent gave as goodwill this month, against their role's monthly limit.
        Index("ix_refunds_goodwill_by", "tenant_id", "created_by", "created_at",
              postgresql_where=text("source = 'goodwill'")),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("source IN ('cancellation', 'return', 'exchange', 'goodwill', 'shipping')",
                        name="source_known"),
        CheckConstraint("shipping_minor >= 0 AND shipping_minor <= amount_minor", name="shipping_within_amount"),
    )

    order_id: Mapped[uuid.UUID]
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    provider: Mapped[str] = mapped_column(String(20))  # external | stripe
    source: Mapped[str] = mapped_column(String(20), default="cancellation",
                                        server_default="cancellation")  # one of REFUND_SOURCES
    shipping_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")  # of amount_minor
    reason: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(20))  # pending | sent | failed | abandoned
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")  # definite refusals, as for captures
    created_by: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class RefundLine(TenantScoped, Base):
    """The part of a refund given back on one order line: a line never gets back more than its
    net (``orders.payments.net_of``), counting its refunds that were not failed or abandoned."""

    __tablename__ = "refund_lines"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "refund_id"], ["refunds.tenant_id", "refunds.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["tenant_id", "order_line_id"], ["order_lines.tenant_id", "order_lines.id"],
                             ondelete="CASCADE"),
        Index("ix_refund_lines_refund", "tenant_id", "refund_id"),
        Index("ix_refund_lines_order_line", "tenant_id", "order_line_id"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
    )

    refund_id: Mapped[uuid.UUID]
    order_line_id: Mapped[uuid.UUID]
    amount_minor: Mapped[int] = mapped_column(BigInteger)


class ServiceTask(TenantScoped, Base):
    """Work for customer service that the platform could not finish alone (a payment that
    can't be captured, a refund Stripe refused, an order routing put on hold). One open task
    per order and kind: a repeat of the same problem counts on it instead of opening another."""

    __tablename__ = "service_tasks"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "order_id"], ["orders.tenant_id", "orders.id"], ondelete="CASCADE"),
        Index("uq_service_tasks_open", "tenant_id", "order_id", "kind", "subject", unique=True,
              postgresql_where=text("status = 'open'")),
        Index("ix_service_tasks_assigned", "tenant_id", "assigned_to", "status"),
        Index("ix_service_tasks_status", "tenant_id", "status", "id"),
    )

    order_id: Mapped[uuid.UUID]
    kind: Mapped[str] = mapped_column(String(40))  # one of ``orders.service_tasks.KINDS``
    # What on the order the task is about, when an order can have several (a return's id, a
    # goodwill request's id); '' for the order itself.
    subject: Mapped[str] = mapped_column(String(64), default="", server_default="")
    assigned_to: Mapped[str | None] = mapped_column(String(320))  # a member's email
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | resolved
    detail: Mapped[str] = mapped_column(String(1000))
    occurrences: Mapped[int] = mapped_column(default=1)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(320))
    resolution: Mapped[str | None] = mapped_column(String(1000))


class TaskComment(TenantScoped, Base):
    """A comment on a customer-service task, by whoever works on it."""

    __tablename__ = "task_comments"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "task_id"], ["service_tasks.tenant_id", "service_tasks.id"],
                             ondelete="CASCADE"),
        Index("ix_task_comments_task", "tenant_id", "task_id", "id"),
    )

    task_id: Mapped[uuid.UUID]
    body: Mapped[str] = mapped_column(String(2000))
    author: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OrderDay(TenantScoped, Base):
    """The dashboard's figures of one local day (in the company's time zone) of orders placed,
    per channel and routing rule that decided them: rebuilt from the orders by ``orders.rollups``
    for every day whose orders changed, so that a month's figures are a few hundred rows."""

    __tablename__ = "order_days"
    __table_args__ = (UniqueConstraint("tenant_id", "day", "channel", "rule"),)

    day: Mapped[date]
    channel: Mapped[str] = mapped_column(String(20))
    rule: Mapped[str] = mapped_column(String(200), default="", server_default="")  # '' when no rule decided
    orders: Mapped[int] = mapped_column(default=0, server_default="0")
    units: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    gross_minor: Mapped[int] = mapped_column(MONEY_COLUMN, default=0, server_default="0")
    discount_minor: Mapped[int] = mapped_column(MONEY_COLUMN, default=0, server_default="0")
    cancelled_orders: Mapped[int] = mapped_column(default=0, server_default="0")
    cancelled_minor: Mapped[int] = mapped_column(MONEY_COLUMN, default=0, server_default="0")
    refunds_minor: Mapped[int] = mapped_column(MONEY_COLUMN, default=0, server_default="0")
    cancellation_refunds_minor: Mapped[int] = mapped_column(MONEY_COLUMN, default=0, server_default="0")
    goodwill_minor: Mapped[int] = mapped_column(MONEY_COLUMN, default=0, server_default="0")
    returned_units: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    split_orders: Mapped[int] = mapped_column(default=0, server_default="0")
    backordered_orders: Mapped[int] = mapped_column(default=0, server_default="0")
    held_orders: Mapped[int] = mapped_column(default=0, server_default="0")
    refreshed_at: Mapped[datetime] = mapped_column(default=utcnow)


class LocationDay(TenantScoped, Base):
    """The fulfilments of one local day's orders at one location: how many, rejected, done
    (shipped, or ready for pickup), and how long done took, as counts per bucket of minutes."""

    __tablename__ = "location_days"
    __table_args__ = (UniqueConstraint("tenant_id", "day", "location_code"),)

    day: Mapped[date]
    location_code: Mapped[str] = mapped_column(String(64))
    fulfilments: Mapped[int] = mapped_column(default=0, server_default="0")
    rejected: Mapped[int] = mapped_column(default=0, server_default="0")
    done: Mapped[int] = mapped_column(default=0, server_default="0")
    done_hist: Mapped[list[int]] = mapped_column(ARRAY(Integer), default=list, server_default="{}")
    refreshed_at: Mapped[datetime] = mapped_column(default=utcnow)


class RollupMark(TenantScoped, Base):
    """How far a company's day rows are refreshed, and in which time zone they were cut."""

    __tablename__ = "rollup_marks"
    __table_args__ = (UniqueConstraint("tenant_id"),)

    refreshed_at: Mapped[datetime | None]
    timezone: Mapped[str] = mapped_column(String(64))
