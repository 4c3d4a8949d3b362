"""Customer-service tasks in the API and the console, and Settings → Orders (the pickup window)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post, put
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal, admins_only, requires, signed_in
from core.deps import DEPS
from core.pages import NOTICES, client_ip, form_errors, page, redirect, safe_next
from core.problems import ProblemError
from orders import service_tasks
from tenants import service as tenants

RESOLVERS = ("owner", "admin", "customer_service")
resolvers_only = requires(*RESOLVERS)

NOTICES.update({
    "task_resolved": "Task resolved: the note is on the order's timeline.",
    "order_settings_saved": "Order settings saved.",
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


class OrderSettings(msgspec.Struct, forbid_unknown_fields=True):
    pickup_window_days: int


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
        rows = await service_tasks.listing(db, principal, status=status, kind=kind, order_id=order_id,
                                           after=_cursor(after), limit=limit)
        wanted = max(1, min(limit, 200))
        return TaskPage(tasks=[task_out(row) for row in rows],
                        next_cursor=str(rows[-1].task.id) if len(rows) == wanted else None)

    @get("/{task_id:uuid}", summary="One task")
    async def get_task(self, db: AsyncSession, principal: Principal, task_id: uuid.UUID) -> TaskOut:
        return task_out(await service_tasks.row_of(db, principal, task_id))

    @post("/{task_id:uuid}/resolve", summary="Resolve a task, saying what was done", guards=[resolvers_only],
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
        rows = await service_tasks.listing(db, principal, status=status, kind=kind, after=_cursor(after))
        return page(request, "orders/tasks.html", rows=rows, status=status, kind=kind, kinds=service_tasks.KINDS,
                    next_cursor=str(rows[-1].task.id) if len(rows) == service_tasks.PAGE_SIZE else None,
                    can_resolve=principal.role in RESOLVERS)

    @post("/{task_id:uuid}/resolve", guards=[resolvers_only])
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
            rows = await service_tasks.listing(db, principal)
            return page(request, "orders/tasks.html", status_code=problem.status, rows=rows, status="open", kind="",
                        kinds=service_tasks.KINDS, next_cursor=None, can_resolve=True, problem=problem,
                        errors=form_errors(problem), failed_task=task_id)
        return redirect(back, done="task_resolved")


class OrderSettingsApiController(Controller):
    path = "/api/v1/settings/orders"
    tags = ["Account"]
    guards = [admins_only]
    dependencies = DEPS

    @get("/", summary="The company's order settings (the pickup window)")
    async def get_settings(self, db: AsyncSession, principal: Principal) -> OrderSettings:
        return OrderSettings(pickup_window_days=(await tenants.get_tenant(db, principal)).pickup_window_days)

    @put("/", summary="Change the company's order settings")
    async def put_settings(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                           data: OrderSettings) -> OrderSettings:
        tenant = await tenants.set_pickup_window(db, principal, data.pickup_window_days, ip=client_ip(request))
        return OrderSettings(pickup_window_days=tenant.pickup_window_days)


class OrderSettingsPagesController(Controller):
    path = "/app/settings/orders"
    include_in_schema = False
    guards = [admins_only]
    dependencies = DEPS

    @get("/")
    async def settings_page(self, request: Request[Any, Any, Any], db: AsyncSession,
                            principal: Principal) -> Template:
        tenant = await tenants.get_tenant(db, principal)
        return page(request, "settings/orders.html", values={"pickup_window_days": tenant.pickup_window_days})

    @post("/")
    async def save(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                   ) -> Template | Redirect:
        form = await request.form()
        raw = str(form.get("pickup_window_days") or "").strip()
        try:
            days = int(raw) if raw.isascii() and raw.isdigit() else -1
            await tenants.set_pickup_window(db, principal, days, ip=client_ip(request))
        except ProblemError as problem:
            await db.rollback()
            return page(request, "settings/orders.html", status_code=422, errors=form_errors(problem),
                        values={"pickup_window_days": raw})
        return redirect("/app/settings/orders", done="order_settings_saved")


route_handlers = [ServiceTasksApiController, ServiceTasksPagesController, OrderSettingsApiController,
                  OrderSettingsPagesController]
