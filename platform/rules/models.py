"""Rule sets, their draft, and their published versions.

A rule set (one per kind and tenant: routing now, promotions later) has one draft that is
edited freely, even while invalid, and immutable published versions. Each version has an
effective window in UTC; the one in force at T is the newest whose window contains T.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, TenantScoped, utcnow


class RuleSet(TenantScoped, Base):
    __tablename__ = "rule_sets"
    __table_args__ = (UniqueConstraint("tenant_id", "kind"),)

    kind: Mapped[str] = mapped_column(String(20))  # routing
    name: Mapped[str] = mapped_column(String(100))
    draft: Mapped[dict[str, Any]] = mapped_column(JSONB)
    draft_revision: Mapped[int] = mapped_column(default=1)  # bumped by each save: stale editors are told
    draft_updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    draft_updated_by: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RuleVersion(TenantScoped, Base):
    __tablename__ = "rule_versions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "rule_set_id", "number"),
        ForeignKeyConstraint(["tenant_id", "rule_set_id"], ["rule_sets.tenant_id", "rule_sets.id"],
                             ondelete="CASCADE"),
        CheckConstraint("effective_to IS NULL OR effective_to > effective_from", name="window_not_empty"),
        Index("ix_rule_versions_window", "tenant_id", "rule_set_id", "effective_from"),
    )

    rule_set_id: Mapped[uuid.UUID]
    number: Mapped[int]
    document: Mapped[dict[str, Any]] = mapped_column(JSONB)
    effective_from: Mapped[datetime]
    effective_to: Mapped[datetime | None]
    republished_from: Mapped[int | None]  # the version this one brings back (a rollback)
    note: Mapped[str] = mapped_column(String(500), default="")
    published_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_by: Mapped[str] = mapped_column(String(320))
    cancelled_at: Mapped[datetime | None]  # a scheduled version withdrawn before it took effect
    cancelled_by: Mapped[str | None] = mapped_column(String(320))
