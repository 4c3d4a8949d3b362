"""Stuck work: messages that failed for good are recorded for the tenant's console.

Dramatiq's Retries middleware marks a message failed once its retries are exhausted; this
middleware runs after it and writes a ``failed_jobs`` row in the message's tenant, where the
console offers retry (a new outbox message) and discard.
"""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from dramatiq import Middleware
from dramatiq.asyncio import get_event_loop_thread
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core import redrive
from core.models import FailedJob, Redrive

log = structlog.get_logger(__name__)


async def record_failure(*, message_id: str, actor_name: str, queue_name: str, kwargs: dict[str, Any],
                         error: str, retries: int) -> None:
    from core.db import get_database

    tenant = kwargs.get("tenant_id")
    if not tenant:
        log.error("job.failed", actor=actor_name, message_id=message_id, error=error)
        return
    tenant_id = uuid.UUID(str(tenant))
    async with get_database().transaction(tenant_id=tenant_id) as session:
        await session.execute(
            insert(FailedJob)
            .values(
                tenant_id=tenant_id, message_id=message_id, actor_name=actor_name, queue_name=queue_name,
                kwargs=kwargs, error=error[-8000:], retries=retries,
            )
            .on_conflict_do_nothing(index_elements=["tenant_id", "message_id"])
        )
    log.error("job.failed", actor=actor_name, message_id=message_id, tenant_id=str(tenant_id), error=error[-500:])


async def stuck_count(session: AsyncSession, tenant_id: uuid.UUID) -> int:
    """What Settings → Stuck work asks a person to decide on: failed jobs neither retried nor
    discarded, and pending items the re-drives gave up on that are still pending."""
    counts: list[Any] = [select(func.count()).select_from(FailedJob).where(
        FailedJob.tenant_id == tenant_id, FailedJob.status == "failed").scalar_subquery()]
    for work in redrive.PENDING_WORK.values():
        still_pending = select(work.table.c.id).where(work.table.c.tenant_id == tenant_id, work.pending)
        counts.append(select(func.count()).select_from(Redrive).where(
            Redrive.tenant_id == tenant_id, Redrive.kind == work.kind, Redrive.gave_up_at.is_not(None),
            Redrive.item_id.in_(still_pending)).scalar_subquery())
    return sum((await session.execute(select(*counts))).one())


class RecordFailures(Middleware):
    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: BaseException | None = None
    ) -> None:
        if exception is None or not getattr(message, "failed", False):
            return
        loop_thread = get_event_loop_thread()
        coro = record_failure(
            message_id=message.message_id,
            actor_name=message.actor_name,
            queue_name=message.queue_name,
            kwargs=dict(message.kwargs),
            error=message.options.get("traceback") or repr(exception),
            retries=int(message.options.get("retries", 0)),
        )
        try:
            if loop_thread is None:
                import asyncio

                asyncio.run(coro)
            else:
                loop_thread.run_coroutine(coro)
        except Exception:
            log.exception("job.failed.unrecorded", actor=message.actor_name, message_id=message.message_id)
