"""Transactional outbox.

Whatever must happen after a commit is written as an ``outbox_messages`` row in the same
transaction as the work. The relay sends pending rows to the broker and marks them sent:
a rolled-back transaction sends nothing, and with Redis down the rows wait and go out when
it returns. A message may go out twice (sent, then the mark failed to commit), which is why
every actor is idempotent.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import dramatiq
import structlog
from dramatiq import Message
from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import bulk
from core.db import Database, Prepared, utcnow
from core.ids import uuid7
from core.models import OutboxMessage

log = structlog.get_logger(__name__)

RELAY_BATCH = 200
MERGE_LIMIT = 50


@dataclass(frozen=True)
class Merge:
    into: str  # the actor that takes a list
    queue: str
    key: str  # the argument each message contributes
    as_list: str  # the list argument of ``into``


# Actors whose pending messages for one tenant go out as a single message of another actor.
MERGED: dict[str, Merge] = {}


def enqueue(session: AsyncSession, actor: dramatiq.Actor[Any, Any], *, tenant_id: uuid.UUID,
            **kwargs: Any) -> OutboxMessage:
    """Announce work for after the commit. Arguments must be JSON values (ids, not objects)."""
    return enqueue_named(session, actor.actor_name, actor.queue_name, tenant_id=tenant_id, kwargs=kwargs)


def enqueue_named(session: AsyncSession, actor_name: str, queue_name: str, *, tenant_id: uuid.UUID,
                  kwargs: dict[str, Any]) -> OutboxMessage:
    row = {"tenant_id": tenant_id, "id": uuid7(), "actor_name": actor_name, "queue_name": queue_name,
           "kwargs": {**kwargs, "tenant_id": str(tenant_id)}}
    bulk.defer(session, OutboxMessage, row)  # one INSERT for all of a transaction's messages
    session.info["outbox_pending"] = True
    return bulk.detached(OutboxMessage, row)


def merge_into(actor: dramatiq.Actor[Any, Any], batch: dramatiq.Actor[Any, Any], *, key: str, as_list: str) -> None:
    """Relay pending messages of ``actor`` for the same tenant (up to MERGE_LIMIT) as one message
    of ``batch``, with their ``key`` arguments as its ``as_list``: under load, the worker then does
    in one transaction what would take one each. A message that is alone goes out as it is."""
    MERGED[actor.actor_name] = Merge(batch.actor_name, batch.queue_name, key, as_list)


class Pending(Protocol):
    """What the relay reads of an outbox row."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def actor_name(self) -> str: ...
    @property
    def queue_name(self) -> str: ...
    @property
    def kwargs(self) -> dict[str, Any]: ...


def broker_messages(rows: Sequence[Pending], now_ms: int) -> list[Message[Any]]:
    """The messages for these outbox rows, in their order, mergeable ones merged per tenant. Each
    message carries the id of its first row, so a redelivery is recognisable."""
    groups: dict[tuple[str, str], list[Pending]] = {}
    order: list[list[Pending]] = []
    for row in rows:
        merge = MERGED.get(row.actor_name)
        if merge is None or set(row.kwargs) != {"tenant_id", merge.key}:
            order.append([row])
            continue
        group = groups.get((row.actor_name, row.kwargs["tenant_id"]))
        if group is None or len(group) >= MERGE_LIMIT:
            group = groups[(row.actor_name, row.kwargs["tenant_id"])] = []
            order.append(group)
        group.append(row)
    messages: list[Message[Any]] = []
    for group in order:
        first = group[0]
        if len(group) == 1:
            queue, actor, kwargs = first.queue_name, first.actor_name, first.kwargs
        else:
            merge = MERGED[first.actor_name]
            queue, actor = merge.queue, merge.into
            kwargs = {"tenant_id": first.kwargs["tenant_id"], merge.as_list: [row.kwargs[merge.key] for row in group]}
        messages.append(Message(queue_name=queue, actor_name=actor, args=(), kwargs=kwargs, options={},
                                message_id=str(first.id), message_timestamp=now_ms))
    return messages


def _send_all(broker: dramatiq.Broker, messages: list[Message[Any]]) -> None:
    for message in messages:
        broker.enqueue(message)


_PENDING = (select(OutboxMessage.id).where(OutboxMessage.sent_at.is_(None)).order_by(OutboxMessage.id)
            .limit(bindparam("limit")).with_for_update(skip_locked=True).scalar_subquery())
# ``sent_at IS NULL`` here too lets the partial index find the rows, instead of scanning the
# whole table (it keeps a week of sent messages).
_CLAIM = Prepared(update(OutboxMessage).where(OutboxMessage.sent_at.is_(None), OutboxMessage.id.in_(_PENDING))
                  .values(sent_at=bindparam("now"), attempts=OutboxMessage.attempts + 1)
                  .returning(OutboxMessage.id, OutboxMessage.actor_name, OutboxMessage.queue_name,
                             OutboxMessage.kwargs))


class _Claimed(NamedTuple):
    id: uuid.UUID
    actor_name: str
    queue_name: str
    kwargs: dict[str, Any]


class _BrokerDown(Exception):
    pass


async def relay_pending(db: Database, broker: dramatiq.Broker, *, limit: int = RELAY_BATCH) -> int:
    """Send one batch of pending messages; returns how many went out."""
    session = db.session()
    session.info["outbox_relay"] = True
    ids: list[uuid.UUID] = []
    try:
        async with session, session.begin():
            # Marked sent and read in one statement; if the broker then refuses them, raising rolls
            # the mark back and the rows wait for the next pass.
            rows = sorted((_Claimed._make(row) for row in await _CLAIM.fetch(session, limit=limit, now=utcnow())),
                          key=lambda row: row.id)
            if not rows:
                return 0
            ids = [row.id for row in rows]
            messages = broker_messages(rows, int(time.time() * 1000))
            try:
                await asyncio.to_thread(_send_all, broker, messages)
            except Exception as exc:
                raise _BrokerDown(str(exc)) from exc
            return len(rows)
    except _BrokerDown as down:
        log.warning("outbox.relay.broker_unavailable", error=str(down), pending=len(ids))
        await _note_failure(db, ids, str(down))
        return 0


async def _note_failure(db: Database, ids: list[uuid.UUID], error: str) -> None:
    session = db.session()
    session.info["outbox_relay"] = True
    async with session, session.begin():
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.sent_at.is_(None), OutboxMessage.id.in_(ids))
            .values(attempts=OutboxMessage.attempts + 1, last_error=error[:2000])
        )


async def relay_all(db: Database, broker: dramatiq.Broker) -> int:
    total = 0
    while sent := await relay_pending(db, broker):
        total += sent
        if sent < RELAY_BATCH:
            break
    return total
