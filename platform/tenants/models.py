"""Tenants and identity.

Global tables (no tenant_id, no row-level security): tenants, users, password resets.
Memberships carry tenant_id and are protected like every tenant table; their policy also
lets a session scoped to a user read that user's own memberships, which is how sign-in
finds the tenants of a user before any tenant is chosen.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, CheckConstraint, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import INET, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, TenantScoped, utcnow
from core.ids import uuid7


class Role(enum.StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MERCHANDISER = "merchandiser"
    CUSTOMER_SERVICE = "customer_service"
    MARKETING = "marketing"
    STORE_ASSOCIATE = "store_associate"
    READ_ONLY = "read_only"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


class Tenant(Base):
    __tablename__ = "tenants"
    __table_args__ = (
        CheckConstraint("pickup_window_days BETWEEN 1 AND 60", name="pickup_window_days"),
        CheckConstraint("billing_standing IN ('good', 'payment_failed', 'past_due', 'restricted', 'intake_refused')",
                        name="billing_standing_known"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))
    currency: Mapped[str] = mapped_column(String(3))
    timezone: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # How long a click & collect order waits at the store before it is cancelled and restocked.
    pickup_window_days: Mapped[int] = mapped_column(default=7, server_default="7")
    # The language of mails to customers whose order names none, and of the company's formats.
    language: Mapped[str] = mapped_column(String(8), default="en", server_default="en")
    brand_colour: Mapped[str] = mapped_column(String(7), default="#1d4ed8", server_default="#1d4ed8")
    # Where the company stands with the platform's invoices (set by billing's dunning):
    # good | payment_failed | past_due | restricted | intake_refused.
    billing_standing: Mapped[str] = mapped_column(String(20), default="good", server_default="good")


class User(Base):
    __tablename__ = "users"
    __table_args__ = (Index("uq_users_email", text("lower(email)"), unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]


class Membership(TenantScoped, Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("tenant_id", "user_id"), Index("ix_memberships_user", "user_id"))

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(32))
    # A store associate's locations (codes): the only ones whose work they see and do.
    locations: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Invitation(TenantScoped, Base):
    __tablename__ = "invitations"
    __table_args__ = (UniqueConstraint("tenant_id", "token_hash"),)

    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(32))
    locations: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list, server_default="{}")
    token_hash: Mapped[str] = mapped_column(String(64))
    invited_by: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]
    accepted_by: Mapped[uuid.UUID | None]
    revoked_at: Mapped[datetime | None]


class ApiKey(TenantScoped, Base):
    __tablename__ = "api_keys"
    __table_args__ = (UniqueConstraint("tenant_id", "key_hash"),)

    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(32), default=Role.ADMIN.value)  # admin | read_only | KEY_ROLES
    channel: Mapped[str | None] = mapped_column(String(20))  # an order-intake key's channel
    created_by: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class AuditEvent(TenantScoped, Base):
    __tablename__ = "audit_events"
    action: Mapped[str] = mapped_column(String(64))
    actor_user_id: Mapped[uuid.UUID | None]
    actor_api_key_id: Mapped[uuid.UUID | None]
    actor_label: Mapped[str] = mapped_column(String(320))
    target: Mapped[str | None] = mapped_column(String(320))
    ip: Mapped[str | None] = mapped_column(INET)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PasswordReset(Base):
    __tablename__ = "password_resets"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
