"""Kernel tables: outbox, stuck work, re-drives, outgoing mail, idempotency records and webhooks.

All are tenant-owned: ``(tenant_id, id)`` keys and forced row-level security (the
migration that creates them enables it).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, Index, LargeBinary, String, Text, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, TenantScoped, utcnow


class OutboxMessage(TenantScoped, Base):
    """A message to send to the broker once the transaction that wrote it commits."""

    __tablename__ = "outbox_messages"
    __table_args__ = (
        Index("ix_outbox_messages_pending", "id", postgresql_where=text("sent_at IS NULL")),
        Index("ix_outbox_messages_created", "created_at", postgresql_using="brin"),
    )

    actor_name: Mapped[str] = mapped_column(String(200))
    queue_name: Mapped[str] = mapped_column(String(100))
    kwargs: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class FailedJob(TenantScoped, Base):
    """Work that failed for good after its retries: the console's "stuck work"."""

    __tablename__ = "failed_jobs"
    __table_args__ = (UniqueConstraint("tenant_id", "message_id"),)

    message_id: Mapped[str] = mapped_column(String(64))
    actor_name: Mapped[str] = mapped_column(String(200))
    queue_name: Mapped[str] = mapped_column(String(100))
    kwargs: Mapped[dict[str, Any]] = mapped_column(JSONB)
    error: Mapped[str] = mapped_column(Text)
    retries: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(20), default="failed")  # failed | retried | discarded
    failed_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[uuid.UUID | None]


class Redrive(TenantScoped, Base):
    """Pending work the scheduler sent again because it waited too long (see ``core.redrive``):
    one row per item, counting its re-drives, so that an item is re-driven with growing pauses
    and, past the limit, left for a person."""

    __tablename__ = "redrives"
    __table_args__ = (
        UniqueConstraint("tenant_id", "kind", "item_id"),
        Index("ix_redrives_recent", "tenant_id", "last_at"),
    )

    kind: Mapped[str] = mapped_column(String(60))
    item_id: Mapped[uuid.UUID]
    count: Mapped[int] = mapped_column(default=1)
    first_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_at: Mapped[datetime] = mapped_column(default=utcnow)
    gave_up_at: Mapped[datetime | None]


class MailMessage(TenantScoped, Base):
    """Outgoing mail: the log the console shows, and the work item the mail actor sends."""

    __tablename__ = "mail_messages"
    __table_args__ = (
        Index("ix_mail_messages_created", "tenant_id", "created_at"),
        Index("ix_mail_messages_queued", "tenant_id", "created_at", postgresql_where=text("status = 'queued'")),
        # An order's mails (its page's list, to send one again).
        Index("ix_mail_messages_order", "tenant_id", text("(meta ->> 'order_id')")),
    )

    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)  # the HTML alternative, when the mail has one
    kind: Mapped[str] = mapped_column(String(50))
    sent_by: Mapped[uuid.UUID | None]  # the user whose action sent it (an invitation's inviter)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    status: Mapped[str] = mapped_column(String(20), default="queued")  # queued | sent | failed
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    transport: Mapped[str | None] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)


class MailTemplate(TenantScoped, Base):
    """A company's own subject and introduction for one kind of customer mail in one language;
    without one, the mail uses the platform's translated default."""

    __tablename__ = "mail_templates"
    __table_args__ = (UniqueConstraint("tenant_id", "kind", "language"),)

    kind: Mapped[str] = mapped_column(String(50))
    language: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str] = mapped_column(String(300))
    intro: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str] = mapped_column(String(320), default="")


class IdempotencyRecord(TenantScoped, Base):
    """The first response to a create sent with an ``Idempotency-Key``, kept for 24 hours."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("tenant_id", "key"),
                      Index("ix_idempotency_records_created", "created_at", postgresql_using="brin"))

    key: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(500))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int]
    response_body: Mapped[bytes] = mapped_column(LargeBinary)
    media_type: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookEndpoint(TenantScoped, Base):
    """Where a company wants its events POSTed, signed with the endpoint's own secret."""

    __tablename__ = "webhook_endpoints"

    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(200), default="")
    events: Mapped[list[str]] = mapped_column(ARRAY(String(60)), default=list)  # empty: every event
    secret: Mapped[str] = mapped_column(String(100))  # the HMAC key: shown to admins, never logged
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(TenantScoped, Base):
    """One event for one endpoint, with its attempts."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_endpoint", "tenant_id", "endpoint_id", "created_at"),
        Index("ix_webhook_deliveries_pending", "tenant_id", "next_attempt_at",
              postgresql_where=text("status = 'pending'")),
    )

    endpoint_id: Mapped[uuid.UUID]
    event_id: Mapped[uuid.UUID]
    event_type: Mapped[str] = mapped_column(String(60))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(default=0)
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_attempt_at: Mapped[datetime | None]
    # When the next attempt is due at the latest (the retry's backoff): a pending delivery past
    # it was lost by the broker and is re-driven.
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    delivered_at: Mapped[datetime | None]


class UsageEvent(TenantScoped, Base):
    """One metered fact (an order routed, a location active on a day), written in the same
    transaction as the work it meters. Its key is unique per company and dimension, so a retried
    actor or a replayed request counts it once (see ``core.metering``)."""

    __tablename__ = "usage_events"
    __table_args__ = (
        UniqueConstraint("tenant_id", "dimension", "fact_key"),
        Index("ix_usage_events_period", "tenant_id", "dimension", "occurred_at", "subject"),
    )

    dimension: Mapped[str] = mapped_column(String(20))  # orders | location_days
    subject: Mapped[str] = mapped_column(String(100))  # the order's id, the location's code
    fact_key: Mapped[str] = mapped_column(String(200))
    occurred_at: Mapped[datetime]
