"""Customer-service tasks in the API and the console."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal, signed_in
from core.deps import DEPS
from core.pages import NOTICES, form_errors, page, redirect, safe_next
from core.problems import ProblemError
from orders import service_tasks
from orders.order_http import TAKERS, take_orders

NOTICES.update({
    "task_resolved": "Task resolved: the note is on the order's timeline.",
})


class TaskOut(msgspec.Struct):
    id: uuid.UUID
    order_id: uuid.UUID
    order_number: str
    order_status: str
    kind: str
    title: str
    status: str
    detail: str
    occurrences: int
    opened_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: str | None


class TaskPage(msgspec.Struct):
    tasks: list[TaskOut]
    next_cursor: str | None


class ResolveIn(msgspec.Struct, forbid_unknown_fields=True):
    note: Annotated[str, msgspec.Meta(max_length=2000)] = ""  # required: checked once the task is found


def task_out(row: service_tasks.TaskRow) -> TaskOut:
    task = row.task
    return TaskOut(id=task.id, order_id=task.order_id, order_number=row.order_number, order_status=row.order_status,
                   kind=task.kind, title=service_tasks.KINDS[task.kind], status=task.status, detail=task.detail,
                   occurrences=task.occurrences, opened_at=task.opened_at, updated_at=task.updated_at,
                   resolved_at=task.resolved_at, resolved_by=task.resolved_by, resolution=task.resolution)


def _cursor(after: str | None) -> uuid.UUID | None:
    if not after:
        return None
    try:
        return uuid.UUID(after)
    except ValueError:
        raise ProblemError(422, "Invalid cursor", "Pass the next_cursor of the previous page as after.") from None


class ServiceTasksApiController(Controller):
    path = "/api/v1/service-tasks"
    tags = ["Customer service"]
    guards = [signed_in]
    dependencies = DEPS

    @get("/", summary="Customer-service tasks: open ones oldest first, resolved ones newest first")
    async def list_tasks(self, db: AsyncSession, principal: Principal, status: str = "open", kind: str = "",
                         order_id: uuid.UUID | None = None, after: str | None = None, limit: int = 50) -> TaskPage:
        rows, cursor = await service_tasks.listing(db, principal, status=status, kind=kind, order_id=order_id,
                                                   after=_cursor(after), limit=limit)
        return TaskPage(tasks=[task_out(row) for row in rows], next_cursor=cursor)

    @get("/{task_id:uuid}", summary="One task")
    async def get_task(self, db: AsyncSession, principal: Principal, task_id: uuid.UUID) -> TaskOut:
        return task_out(await service_tasks.row_of(db, principal, task_id))

    @post("/{task_id:uuid}/resolve", summary="Resolve a task, saying what was done", guards=[take_orders],
          status_code=200)
    async def resolve(self, db: AsyncSession, principal: Principal, task_id: uuid.UUID, data: ResolveIn) -> TaskOut:
        task = await service_tasks.resolve(db, principal, task_id, data.note)
        await db.flush()
        return task_out(await service_tasks.row_of(db, principal, task.id))


class ServiceTasksPagesController(Controller):
    path = "/app/service-tasks"
    include_in_schema = False
    guards = [signed_in]
    dependencies = DEPS

    @get("/")
    async def tasks_page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                         status: str = "open", kind: str = "", after: str | None = None) -> Template:
        rows, cursor = await service_tasks.listing(db, principal, status=status, kind=kind, after=_cursor(after))
        return page(request, "orders/tasks.html", rows=rows, status=status, kind=kind, kinds=service_tasks.KINDS,
                    next_cursor=cursor, can_resolve=principal.role in TAKERS)

    @post("/{task_id:uuid}/resolve", guards=[take_orders])
    async def resolve(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                      task_id: uuid.UUID) -> Template | Redirect:
        form = await request.form()
        back = safe_next(str(form.get("next") or ""), "/app/service-tasks")
        try:
            await service_tasks.resolve(db, principal, task_id, str(form.get("note") or ""))
        except ProblemError as problem:
            if problem.status not in (409, 422):
                raise
            await db.rollback()
            rows, cursor = await service_tasks.listing(db, principal)
            return page(request, "orders/tasks.html", status_code=problem.status, rows=rows, status="open", kind="",
                        kinds=service_tasks.KINDS, next_cursor=cursor, can_resolve=True, problem=problem,
                        errors=form_errors(problem), failed_task=task_id)
        return redirect(back, done="task_resolved")


route_handlers = [ServiceTasksApiController, ServiceTasksPagesController]
