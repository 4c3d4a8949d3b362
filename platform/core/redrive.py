"""Pending work is found from the database and sent again when it waits too long.

The database is the truth, the broker only the transport: a broker can lose or strand a
message (seen: after a Redis stall, messages a worker had fetched stayed in its acknowledgement
set for good). So every kind of work that waits for a worker registers here how to recognise
it in its table (``pending``, waiting since ``since``) and how to send its actor again. The
scheduler's sweep, every ``SWEEP_EVERY``:

1. asks, across companies, which ones have items pending for longer than the kind's threshold,
   as the sweeper role (``core.sweeper``), through small partial indexes: idle companies cost
   nothing;
2. in each such company's own scope, takes the items no worker is processing (a worker holds
   its item's row locked, so ``FOR UPDATE SKIP LOCKED`` passes it by) and sends their actor
   again through the outbox, in the transaction that counts the re-drive in ``redrives``.

Actors are idempotent, so re-driving work that was merely slow does nothing twice. The
thresholds are minutes, far above what work waits in a queue under load. An item is re-driven
at most ``MAX_REDRIVES`` times, each time after twice the previous pause; then it is left for a
person, on Settings → Stuck work with the pending figures of every kind.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import ColumnElement, FromClause, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from core.db import Database
from core.ids import uuid7
from core.models import Redrive
from core.sweeper import companies_where

log = structlog.get_logger(__name__)

MAX_REDRIVES = 5
BATCH = 500  # items of one kind re-driven per company and sweep; the next sweep takes the rest
SWEEP_EVERY = timedelta(seconds=float(os.environ.get("REDRIVE_EVERY_SECONDS", "30")))
# One threshold for every kind instead of each one's own (tests; an operator in a hurry).
_OVERRIDE = os.environ.get("REDRIVE_AFTER_SECONDS")

Send = Callable[[AsyncSession, uuid.UUID, list[uuid.UUID]], Awaitable[None]]
# Of the overdue items (id, waiting since), those that should go now (default: all of them).
Ready = Callable[[AsyncSession, uuid.UUID, list[tuple[uuid.UUID, datetime]]], Awaitable[list[uuid.UUID]]]


@dataclass(frozen=True)
class PendingWork:
    kind: str
    label: str
    table: FromClause
    pending: ColumnElement[bool]  # the same predicate as the table's partial index and policy
    since: Any  # the column: when the item began to wait
    default_threshold: timedelta
    send: Send
    ready: Ready | None = None

    @property
    def threshold(self) -> timedelta:
        return timedelta(seconds=float(_OVERRIDE)) if _OVERRIDE else self.default_threshold


PENDING_WORK: dict[str, PendingWork] = {}


def pending_work(kind: str, label: str, *, table: FromClause, pending: ColumnElement[bool], since: Any,
                 threshold: timedelta, ready: Ready | None = None) -> Callable[[Send], Send]:
    """Register a kind of pending work; the decorated coroutine sends the actor for some items
    (through the outbox, in the session's transaction)."""

    def register(send: Send) -> Send:
        PENDING_WORK[kind] = PendingWork(kind, label, table, pending, since, threshold, send, ready)
        return send

    return register


async def sweep(db: Database) -> dict[str, int]:
    """One pass over every kind in every company; returns how many items of each kind were sent
    again."""
    now = clock.now()
    sent: dict[str, int] = {}
    for work in PENDING_WORK.values():
        for tenant_id in await companies_with_overdue(db, work, now - work.threshold):
            await _count(sent, work, tenant_id, _redrive(db, work, tenant_id, now))
    return sent


async def sweep_company(db: Database, tenant_id: uuid.UUID) -> dict[str, int]:
    """``sweep`` for one company."""
    now = clock.now()
    sent: dict[str, int] = {}
    for work in PENDING_WORK.values():
        await _count(sent, work, tenant_id, _redrive(db, work, tenant_id, now))
    return sent


async def _count(sent: dict[str, int], work: PendingWork, tenant_id: uuid.UUID, redriving: Awaitable[int]) -> None:
    """A company whose re-drive fails (a constraint, a lost connection) doesn't stop the others."""
    try:
        count = await redriving
    except Exception:
        log.exception("redrive.failed", kind=work.kind, tenant_id=str(tenant_id))
        return
    if count:
        sent[work.kind] = sent.get(work.kind, 0) + count


async def companies_with_overdue(db: Database, work: PendingWork, cutoff: datetime) -> list[uuid.UUID]:
    """The companies with items of this kind waiting since before ``cutoff``."""
    return await companies_where(db, work.table, work.pending, work.since < cutoff)


async def _redrive(db: Database, work: PendingWork, tenant_id: uuid.UUID, now: datetime) -> int:
    table, cutoff = work.table, now - work.threshold
    async with db.transaction(tenant_id=tenant_id) as session:
        overdue = [(row[0], row[1]) for row in await session.execute(
            select(table.c.id, work.since).where(table.c.tenant_id == tenant_id, work.pending, work.since < cutoff)
            .order_by(work.since).limit(BATCH).with_for_update(skip_locked=True))]
        if not overdue:
            return 0
        ids = await work.ready(session, tenant_id, overdue) if work.ready else [item for item, _ in overdue]
        since = dict(overdue)
        records = {r.item_id: r for r in await session.scalars(select(Redrive).where(
            Redrive.tenant_id == tenant_id, Redrive.kind == work.kind, Redrive.item_id.in_(ids)))}
        due: list[uuid.UUID] = []
        gave_up: list[uuid.UUID] = []
        for item in ids:
            record = records.get(item)
            if record is None or record.last_at < since[item]:  # new, or waiting anew since its last re-drive
                due.append(item)
            elif record.gave_up_at is not None:
                continue
            elif record.count >= MAX_REDRIVES:
                gave_up.append(item)
            elif record.last_at <= now - work.threshold * 2 ** record.count:
                due.append(item)
        if gave_up:
            await session.execute(update(Redrive).where(
                Redrive.tenant_id == tenant_id, Redrive.kind == work.kind, Redrive.item_id.in_(gave_up))
                .values(gave_up_at=now))
            log.error("redrive.gave_up", kind=work.kind, tenant_id=str(tenant_id), items=len(gave_up),
                      first=str(gave_up[0]))
        if not due:
            return 0
        await work.send(session, tenant_id, due)
        for item in due:
            record = records.get(item)
            if record is None:
                session.add(Redrive(tenant_id=tenant_id, id=uuid7(), kind=work.kind, item_id=item, count=1,
                                    first_at=now, last_at=now))
            elif record.last_at < since[item]:
                record.count, record.first_at, record.last_at, record.gave_up_at = 1, now, now, None
            else:
                record.count, record.last_at = record.count + 1, now
        oldest = min(since[item] for item in due)
        log.warning("redrive.sent", kind=work.kind, tenant_id=str(tenant_id), items=len(due),
                    oldest_waiting_s=round((now - oldest).total_seconds(), 1))
        return len(due)


@dataclass(frozen=True)
class Figure:
    """One kind of pending work in one company, for Settings → Stuck work."""

    kind: str
    label: str
    threshold: timedelta
    pending: int
    oldest_since: datetime | None
    redriven_today: int  # items sent again in the last 24 hours
    given_up: list[uuid.UUID]  # items still pending after MAX_REDRIVES re-drives

    @property
    def threshold_label(self) -> str:
        seconds = int(self.threshold.total_seconds())
        return f"{seconds // 60} min" if seconds >= 60 and seconds % 60 == 0 else f"{seconds} s"


async def figures(session: AsyncSession, tenant_id: uuid.UUID) -> list[Figure]:
    now = clock.now()
    result = []
    for work in PENDING_WORK.values():
        table = work.table
        pending, oldest = (await session.execute(select(func.count(), func.min(work.since)).where(
            table.c.tenant_id == tenant_id, work.pending))).one()
        redriven = await session.scalar(select(func.count()).select_from(Redrive).where(
            Redrive.tenant_id == tenant_id, Redrive.kind == work.kind, Redrive.last_at > now - timedelta(days=1)))
        given_up = list(await session.scalars(select(Redrive.item_id).where(
            Redrive.tenant_id == tenant_id, Redrive.kind == work.kind, Redrive.gave_up_at.is_not(None),
            Redrive.item_id.in_(select(table.c.id).where(table.c.tenant_id == tenant_id, work.pending)))
            .order_by(Redrive.first_at).limit(100)))
        result.append(Figure(work.kind, work.label, work.threshold, int(pending), oldest, int(redriven or 0),
                             given_up))
    return result


async def send_again(session: AsyncSession, tenant_id: uuid.UUID, kind: str, item_id: uuid.UUID) -> bool:
    """A person sends an item the sweep gave up on once more; False if it is no longer pending."""
    work = PENDING_WORK[kind]
    table = work.table
    found = await session.scalar(select(table.c.id).where(table.c.tenant_id == tenant_id, table.c.id == item_id,
                                                          work.pending).with_for_update())
    if found is None:
        return False
    await work.send(session, tenant_id, [item_id])
    await session.execute(update(Redrive).where(Redrive.tenant_id == tenant_id, Redrive.kind == kind,
                                                Redrive.item_id == item_id)
                          .values(count=0, gave_up_at=None, last_at=clock.now()))
    return True
