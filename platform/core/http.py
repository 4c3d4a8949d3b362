"""Kernel routes: health checks, the outgoing-mail log and stuck work (failed jobs, and work
waiting for a worker with what the re-drive sweep did about it)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.di import Provide
from litestar.response import Redirect, Template
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from core import clock, redrive
from core.auth import Principal, admins_only
from core.db import get_database, utcnow
from core.deps import provide_db, provide_principal
from core.mail import body_for_log, html_for_log
from core.models import FailedJob, MailMessage
from core.outbox import enqueue_named
from core.pages import NOTICES, page, redirect
from core.problems import not_found
from core.redis import get_redis

NOTICES.update({"job_retried": "Sent again: it is back in the queue.", "job_discarded": "Discarded.",
                "work_sent_again": "Sent again.", "work_done": "Nothing to send: that work is done."})


@get("/healthz", include_in_schema=False, sync_to_thread=False)
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@get("/readyz", include_in_schema=False)
async def readyz() -> Response[dict[str, str]]:
    """Readiness: the database and the broker answer."""
    checks: dict[str, str] = {}

    async def database() -> None:
        async with get_database().engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def broker() -> None:
        await get_redis().ping()

    for name, check in (("database", database), ("broker", broker)):
        try:
            await asyncio.wait_for(check(), timeout=3)
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"unavailable: {type(exc).__name__}"
    ready = all(value == "ok" for value in checks.values())
    return Response({"status": "ready" if ready else "not ready", **checks}, status_code=200 if ready else 503)


class KernelSettingsController(Controller):
    path = "/app/settings"
    include_in_schema = False
    guards = [admins_only]
    dependencies = {"db": Provide(provide_db), "principal": Provide(provide_principal, sync_to_thread=False)}

    @get("/mail-log")
    async def mail_log(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal) -> Template:
        messages = await db.scalars(
            select(MailMessage).options(defer(MailMessage.body_html), defer(MailMessage.body_text))
            .where(MailMessage.tenant_id == principal.tenant_id)
            .order_by(MailMessage.created_at.desc()).limit(200)
        )
        return page(request, "settings/mail_log.html", messages=list(messages))

    @get("/mail-log/{message_id:uuid}")
    async def mail_message(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                           message_id: uuid.UUID) -> Template:
        message = await db.scalar(
            select(MailMessage).where(MailMessage.tenant_id == principal.tenant_id, MailMessage.id == message_id)
        )
        if message is None:
            raise not_found("Message")
        return page(request, "settings/mail_message.html", message=message,
                    body=body_for_log(message, principal), html=html_for_log(message, principal))

    @get("/stuck-work")
    async def stuck_work(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal) -> Template:
        jobs = await db.scalars(
            select(FailedJob).where(FailedJob.tenant_id == principal.tenant_id)
            .order_by(FailedJob.failed_at.desc()).limit(200)
        )
        return page(request, "settings/stuck_work.html", jobs=list(jobs), now=clock.now(),
                    pending=await redrive.figures(db, principal.tenant_id), max_redrives=redrive.MAX_REDRIVES)

    @post("/stuck-work/pending/{kind:str}/{item_id:uuid}/send")
    async def send_pending_again(self, db: AsyncSession, principal: Principal, kind: str,
                                 item_id: uuid.UUID) -> Redirect:
        if kind not in redrive.PENDING_WORK:
            raise not_found("Kind of work")
        sent = await redrive.send_again(db, principal.tenant_id, kind, item_id)
        return redirect("/app/settings/stuck-work", done="work_sent_again" if sent else "work_done")

    async def _open_job(self, db: AsyncSession, principal: Principal, job_id: uuid.UUID) -> FailedJob:
        job = await db.scalar(
            select(FailedJob).where(FailedJob.tenant_id == principal.tenant_id, FailedJob.id == job_id)
            .with_for_update()
        )
        if job is None:
            raise not_found("Job")
        return job

    @post("/stuck-work/{job_id:uuid}/retry")
    async def retry(self, db: AsyncSession, principal: Principal, job_id: uuid.UUID) -> Redirect:
        job = await self._open_job(db, principal, job_id)
        if job.status == "failed":
            enqueue_named(db, job.actor_name, job.queue_name, tenant_id=principal.tenant_id, kwargs=job.kwargs)
            job.status, job.resolved_at, job.resolved_by = "retried", utcnow(), principal.user_id
        return redirect("/app/settings/stuck-work", done="job_retried")

    @post("/stuck-work/{job_id:uuid}/discard")
    async def discard(self, db: AsyncSession, principal: Principal, job_id: uuid.UUID) -> Redirect:
        job = await self._open_job(db, principal, job_id)
        if job.status == "failed":
            job.status, job.resolved_at, job.resolved_by = "discarded", utcnow(), principal.user_id
        return redirect("/app/settings/stuck-work", done="job_discarded")


route_handlers = [healthz, readyz, KernelSettingsController]
