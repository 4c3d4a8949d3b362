"""The kernel's actors: mail delivery and housekeeping."""

from __future__ import annotations

import uuid
from datetime import timedelta

import structlog
from sqlalchemy import delete, select

from core.broker import actor, broker
from core.db import get_database, utcnow
from core.mail import transport
from core.models import IdempotencyRecord, MailMessage, OutboxMessage
from core.outbox import relay_all
from core.scheduler import periodic

log = structlog.get_logger(__name__)


@actor("mail.send")
async def send_mail(tenant_id: str, message_id: str) -> None:
    """Deliver one mail. A second delivery of the same message finds it sent and stops."""
    async with get_database().transaction(tenant_id=uuid.UUID(tenant_id)) as session:
        message = await session.scalar(
            select(MailMessage)
            .where(MailMessage.tenant_id == uuid.UUID(tenant_id), MailMessage.id == uuid.UUID(message_id))
            .with_for_update()
        )
        if message is None or message.status == "sent":
            return
        chosen = transport()
        await chosen.deliver(message)
        message.status = "sent"
        message.sent_at = utcnow()
        message.transport = chosen.name


@actor("maintenance.purge_tenant", queue="maintenance")
async def purge_expired(tenant_id: str) -> None:
    """Forget idempotency records after 24 hours and relayed outbox rows after 7 days."""
    tenant = uuid.UUID(tenant_id)
    now = utcnow()
    async with get_database().transaction(tenant_id=tenant) as session:
        await session.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.tenant_id == tenant, IdempotencyRecord.created_at < now - timedelta(hours=24)
            )
        )
        await session.execute(
            delete(OutboxMessage).where(
                OutboxMessage.tenant_id == tenant,
                OutboxMessage.sent_at.is_not(None),
                OutboxMessage.sent_at < now - timedelta(days=7),
            )
        )


@periodic("outbox.relay", every=timedelta(seconds=1))
async def relay_outbox() -> None:
    """Sweep: the web process relays right after its commits; this catches the rest."""
    await relay_all(get_database(), broker)
