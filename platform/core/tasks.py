"""The kernel's actors: mail delivery (a mail the broker lost is found queued and sent again)
and housekeeping, and the re-drive sweep."""

from __future__ import annotations

import uuid
from datetime import timedelta

import structlog
from sqlalchemy import ARRAY, Uuid, any_, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import bulk, redrive, sweeper
from core.broker import actor, broker
from core.db import Prepared, get_database, utcnow
from core.mail import transport
from core.models import IdempotencyRecord, MailMessage, OutboxMessage, Redrive
from core.outbox import enqueue, merge_into, relay_all
from core.redrive import pending_work
from core.scheduler import periodic

log = structlog.get_logger(__name__)


@actor("mail.send")
async def send_mail(tenant_id: str, message_id: str) -> None:
    """Deliver one mail. A second delivery of the same message finds it sent and stops."""
    await _deliver(uuid.UUID(tenant_id), [uuid.UUID(message_id)])


@actor("mail.send_batch")
async def send_mails(tenant_id: str, message_ids: list[str]) -> None:
    """Mails queued together (the relay merges their messages), delivered in one transaction."""
    await _deliver(uuid.UUID(tenant_id), [uuid.UUID(message_id) for message_id in message_ids])


merge_into(send_mail, send_mails, key="message_id", as_list="message_ids")


@pending_work("mail.send", "Mails waiting to be sent", table=MailMessage.__table__,
              pending=MailMessage.status == "queued", since=MailMessage.created_at, threshold=timedelta(minutes=3))
async def _send_again(session: AsyncSession, tenant_id: uuid.UUID, message_ids: list[uuid.UUID]) -> None:
    for message_id in message_ids:
        enqueue(session, send_mail, tenant_id=tenant_id, message_id=str(message_id))


class MailNotDelivered(Exception):
    """Raised after the mails that went out are recorded as sent, so the retry (with backoff)
    sends only the others."""


async def _deliver(tenant: uuid.UUID, message_ids: list[uuid.UUID]) -> None:
    failed: list[str] = []
    async with get_database().transaction(tenant_id=tenant) as session:
        chosen = transport()
        sent: list[uuid.UUID] = []
        for row in await _UNSENT.fetch(session, tenant=tenant, ids=message_ids):
            message = bulk.detached(MailMessage, dict(row))
            try:
                await chosen.deliver(message)
            except Exception as exc:  # the others still go; this one waits for the retry
                failed.append(f"{message.id}: {exc}")
                continue
            sent.append(message.id)
        if sent:
            await _SENT.execute(session, tenant=tenant, ids=sent, now=utcnow(), transport=chosen.name)
    if failed:
        raise MailNotDelivered(f"{len(failed)} of {len(message_ids)} not delivered; first: {failed[0]}")


_UNSENT = Prepared(select(MailMessage.__table__).where(
    MailMessage.tenant_id == bindparam("tenant"), MailMessage.id == any_(bindparam("ids", type_=ARRAY(Uuid))),
    MailMessage.status != "sent").order_by(MailMessage.id).with_for_update())
_SENT = Prepared(update(MailMessage).where(
    MailMessage.tenant_id == bindparam("tenant"), MailMessage.id == any_(bindparam("ids", type_=ARRAY(Uuid))))
    .values(status="sent", sent_at=bindparam("now"), transport=bindparam("transport")))


@periodic("maintenance.purge", every=timedelta(hours=1))
async def purge_expired() -> None:
    """Forget idempotency records after 24 hours, relayed outbox rows and re-drives (but those
    given up on) after 7 days: across companies, as the sweeper, so idle ones cost nothing."""
    db, now = get_database(), utcnow()
    await sweeper.purge(db, IdempotencyRecord.__table__, IdempotencyRecord.created_at < now - timedelta(hours=24))
    await sweeper.purge(db, OutboxMessage.__table__, OutboxMessage.created_at < now - timedelta(days=7),
                        OutboxMessage.sent_at.is_not(None), OutboxMessage.sent_at < now - timedelta(days=7))
    await sweeper.purge(db, Redrive.__table__, Redrive.gave_up_at.is_(None), Redrive.last_at < now - timedelta(days=7))


@periodic("redrive.sweep", every=redrive.SWEEP_EVERY)
async def redrive_pending_work() -> None:
    """Work that waited too long for a worker, found in the database and sent again."""
    await redrive.sweep(get_database())


@periodic("outbox.relay", every=timedelta(seconds=1))
async def relay_outbox() -> None:
    """Sweep: the web process relays right after its commits; this catches the rest."""
    await relay_all(get_database(), broker)
