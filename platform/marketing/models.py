"""Marketing's tables: its settings, segments, coupons, the counters that keep promotions'
limits and budgets, the redemptions recorded with orders, and campaigns with their recipients.

Promotions themselves are a rule set (``rules``, kind ``promotions``): versioned documents in
which each promotion has a stable ``id``; the tables here name a promotion by that id.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, TenantScoped, utcnow

CAPTURE_MODES = ("apply", "check", "off")
CAMPAIGN_STATUSES = ("draft", "scheduled", "sending", "sent", "cancelled")
RECIPIENT_STATUSES = ("pending", "sent", "skipped")


class MarketingSettings(Base):
    """How order capture treats promotions: ``apply`` them on top of what the channel sent,
    ``check`` the discounts a channel already applied against them, or leave them ``off``."""

    __tablename__ = "marketing_settings"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    capture_mode: Mapped[str] = mapped_column(String(10), default="apply", server_default="apply")
    refuse_invalid_coupons: Mapped[bool] = mapped_column(default=False, server_default="false")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(320), default="", server_default="")


class Segment(TenantScoped, Base):
    """A named condition over customer fields, evaluated when used (never a stored list)."""

    __tablename__ = "segments"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(500), default="", server_default="")
    condition: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(320), default="", server_default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(320), default="", server_default="")
    archived_at: Mapped[datetime | None]


class CouponBatch(TenantScoped, Base):
    __tablename__ = "coupon_batches"

    promotion_id: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(20), default="", server_default="")
    size: Mapped[int]
    max_uses: Mapped[int | None]  # per code; None: as many as the promotion allows
    expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(320), default="", server_default="")


class Coupon(TenantScoped, Base):
    """A code a customer types. ``uses`` is consumed by a conditional update in the order's
    transaction and given back when the order is cancelled or returned."""

    __tablename__ = "coupons"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        Index("ix_coupons_batch", "tenant_id", "batch_id"),
        Index("ix_coupons_promotion", "tenant_id", "promotion_id"),
        CheckConstraint("uses >= 0 AND (max_uses IS NULL OR uses <= max_uses)", name="uses_within_limit"),
    )

    code: Mapped[str] = mapped_column(String(40))  # upper case, as typed codes are compared
    promotion_id: Mapped[str] = mapped_column(String(40))
    batch_id: Mapped[uuid.UUID | None]
    max_uses: Mapped[int | None]  # None: unlimited (the promotion's own limits still hold)
    uses: Mapped[int] = mapped_column(default=0, server_default="0")
    starts_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    disabled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(320), default="", server_default="")


class PromotionCounter(Base):
    """A promotion's uses and money given, against its total limit and budget."""

    __tablename__ = "promotion_counters"
    __table_args__ = (CheckConstraint("uses >= 0 AND given_minor >= 0", name="not_negative"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    promotion_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    uses: Mapped[int] = mapped_column(default=0, server_default="0")
    given_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class PromotionCustomerUse(Base):
    __tablename__ = "promotion_customer_uses"
    __table_args__ = (CheckConstraint("uses >= 0", name="not_negative"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    promotion_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    uses: Mapped[int] = mapped_column(default=0, server_default="0")


class Redemption(TenantScoped, Base):
    """One promotion applied to one order: its amount, apportioned to the order's lines
    (``lines``: ``[{"line_no": n, "amount_minor": x}]``) and to shipping, and what a
    cancellation or return has given back of it."""

    __tablename__ = "redemptions"
    __table_args__ = (
        Index("ix_redemptions_order", "tenant_id", "order_id"),
        Index("ix_redemptions_coupon", "tenant_id", "coupon_id"),
        Index("ix_redemptions_customer", "tenant_id", "customer_id"),
        Index("ix_redemptions_promotion", "tenant_id", "promotion_id", "created_at"),
        CheckConstraint("amount_minor >= 0 AND given_back_minor BETWEEN 0 AND amount_minor", name="amounts"),
    )

    order_id: Mapped[uuid.UUID]
    order_number: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[uuid.UUID | None]
    promotion_id: Mapped[str] = mapped_column(String(40))
    promotion_name: Mapped[str] = mapped_column(String(200))
    promotion_class: Mapped[str] = mapped_column(String(10))  # line | order | shipping
    rule_version: Mapped[int | None]
    coupon_id: Mapped[uuid.UUID | None]
    coupon_code: Mapped[str | None] = mapped_column(String(40))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    shipping_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    given_back_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    use_given_back: Mapped[bool] = mapped_column(default=False, server_default="false")
    # Which counters it was charged to (a promotion limited since is never given back more than it took).
    counted: Mapped[bool] = mapped_column(default=False, server_default="false")
    counted_for_customer: Mapped[bool] = mapped_column(default=False, server_default="false")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Campaign(TenantScoped, Base):
    """An email to a segment at a time; its recipients are listed when it starts sending."""

    __tablename__ = "campaigns"
    __table_args__ = (
        Index("ix_campaigns_due", "tenant_id", "status", "scheduled_at"),
        CheckConstraint("pace_per_minute BETWEEN 1 AND 100000", name="pace_range"),
        CheckConstraint("attribution_days BETWEEN 0 AND 365", name="attribution_range"),
    )

    name: Mapped[str] = mapped_column(String(200))
    segment_id: Mapped[uuid.UUID]
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    coupon_code: Mapped[str | None] = mapped_column(String(40))  # shown in the mail; attributes orders
    status: Mapped[str] = mapped_column(String(20), default="draft", server_default="draft")
    scheduled_at: Mapped[datetime | None]
    attribution_days: Mapped[int] = mapped_column(default=7, server_default="7")
    pace_per_minute: Mapped[int] = mapped_column(default=600, server_default="600")
    recipients_count: Mapped[int] = mapped_column(default=0, server_default="0")
    sent_count: Mapped[int] = mapped_column(default=0, server_default="0")
    skipped_count: Mapped[int] = mapped_column(default=0, server_default="0")
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(320), default="", server_default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CampaignRecipient(Base):
    """One customer of a campaign's send list: a row per (campaign, customer), so that a
    restarted sender never mails anyone twice."""

    __tablename__ = "campaign_recipients"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "campaign_id"], ["campaigns.tenant_id", "campaigns.id"],
                             ondelete="CASCADE"),
        Index("ix_campaign_recipients_status", "tenant_id", "campaign_id", "status"),
        Index("ix_campaign_recipients_customer", "tenant_id", "customer_id"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    campaign_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(20), default="pending", server_default="pending")
    reason: Mapped[str | None] = mapped_column(String(200))
    mail_id: Mapped[uuid.UUID | None]
    sent_at: Mapped[datetime | None]
