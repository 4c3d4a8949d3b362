"""The customer-service task queue, in the console and the API: open tasks oldest first with how
long each has waited, filtered by kind, assignee and status; a task's page with its comments and
the forms to take it, give it to a colleague, comment and resolve it; the counts in the
navigation (polled by htmx: one indexed query each time).

Who does what (``orders.service_tasks``): every signed-in member sees the tasks of the orders in
their reach; owners, admins, customer service and store associates (for the orders of their
locations) take, assign and comment; owners, admins and customer service resolve.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import Parameter
from litestar.response import Redirect, ServerSentEvent, Template
from sqlalchemy.ext.asyncio import AsyncSession

from core import live
from core.auth import Principal, requires, signed_in
from core.deps import DEPS
from core.pages import NOTICES, form_data, form_errors, page, redirect, safe_next
from core.params import id_cursor
from core.problems import ProblemError, invalid
from orders import service_tasks
from orders.guards import TAKERS, take_orders
from support.task_schemas import AssignIn, CommentIn, CommentOut, ResolveIn, TaskOut, TaskPage

work_tasks = requires(*service_tasks.WORKERS)
QUEUE = "/app/service-tasks"
# Sent with every change made from the console: the navigation's counts refresh at once.
CHANGED = {"HX-Trigger": "tasks-changed"}

NOTICES.update({
    "task_resolved": "Task resolved: the note is on the order's timeline.",
    "task_assigned": "Task assigned: it is on the order's timeline.",
    "task_unassigned": "Task unassigned: anyone may take it.",
    "task_commented": "Comment added: it is on the order's timeline too.",
})


def task_out(row: service_tasks.TaskRow) -> TaskOut:
    task = row.task
    return TaskOut(id=task.id, order_id=task.order_id, order_number=row.order_number, order_status=row.order_status,
                   kind=task.kind, title=service_tasks.KINDS[task.kind], subject=task.subject, status=task.status,
                   detail=task.detail, occurrences=task.occurrences, assigned_to=task.assigned_to,
                   comments_count=row.comments, opened_at=task.opened_at, updated_at=task.updated_at,
                   resolved_at=task.resolved_at, resolved_by=task.resolved_by, resolution=task.resolution)


def comment_out(comment: Any) -> CommentOut:
    return CommentOut(id=comment.id, task_id=comment.task_id, body=comment.body, author=comment.author,
                      created_at=comment.created_at)


def return_link(task: Any) -> str | None:
    """The page of the return a return's task is about."""
    return f"/app/returns/{task.subject}" if task.kind in service_tasks.RETURN_KINDS and task.subject else None


ShortText = Annotated[str, Parameter(max_length=40)]
Email = Annotated[str, Parameter(max_length=320)]
TaskPageSize = Annotated[int, Parameter(ge=1, le=service_tasks.PAGE_MAX)]


def _htmx(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("HX-Request") == "true"


class ServiceTasksPagesController(Controller):
    path = QUEUE
    include_in_schema = False
    guards = [signed_in]
    dependencies = DEPS

    @get("/")
    async def tasks_page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                         status: ShortText = "open", kind: ShortText = "", assignee: Email = "",
                         after: str | None = None) -> Template:
        rows, cursor = await service_tasks.listing(db, principal, status=status, kind=kind, assignee=assignee,
                                                   after=id_cursor(after))
        template = "support/_task_rows.html" if _htmx(request) and request.headers.get("HX-Target") == "task-rows" \
            else "support/tasks.html"
        return page(request, template, **_queue_context(principal, rows, cursor, status, kind, assignee),
                    query=dict(request.query_params))

    @get("/count")
    async def count(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal) -> Template:
        """The navigation's counts (htmx polls it): open tasks, and those assigned to the caller."""
        return page(request, "support/_task_count.html", counts=await service_tasks.counts(db, principal))

    @get("/live")
    async def tasks_live(self, principal: Principal) -> ServerSentEvent:
        """The list's server-sent events: a ``changed`` event when a task is opened, assigned,
        commented on or resolved, or an order the caller may see gets a timeline entry."""
        # A store associate hears through their locations' orders (every task change writes to its
        # order's timeline): task rows carry no location.
        kinds = frozenset({"tasks", "orders"}) if principal.locations is None else frozenset({"orders"})
        return live.stream(principal, live.Interest(tenant_id=principal.tenant_id, kinds=kinds,
                                                    locations=principal.locations))

    @get("/{task_id:uuid}")
    async def task_page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                        task_id: uuid.UUID) -> Template:
        return await _task_page(request, db, principal, task_id)

    @post("/{task_id:uuid}/assign", guards=[work_tasks])
    async def assign(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                     task_id: uuid.UUID) -> Template | Redirect:
        """Take the task ("me"), give it to a colleague (their email), or to nobody ("")."""
        async def act(values: dict[str, str]) -> str:
            chosen = values.get("assignee", "").strip()
            task = await service_tasks.assign(db, principal, task_id, principal.label if chosen == "me" else chosen)
            return "task_assigned" if task.assigned_to else "task_unassigned"

        return await _step(request, db, principal, task_id, act)

    @post("/{task_id:uuid}/comments", guards=[work_tasks])
    async def comment(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                      task_id: uuid.UUID) -> Template | Redirect:
        async def act(values: dict[str, str]) -> str:
            await service_tasks.comment(db, principal, task_id, values.get("body", ""))
            return "task_commented"

        return await _step(request, db, principal, task_id, act)

    @post("/{task_id:uuid}/resolve", guards=[take_orders])
    async def resolve(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                      task_id: uuid.UUID) -> Template | Redirect:
        async def act(values: dict[str, str]) -> str:
            await service_tasks.resolve(db, principal, task_id, values.get("note", ""))
            return "task_resolved"

        return await _step(request, db, principal, task_id, act)


async def _step(request: Request[Any, Any, Any], db: AsyncSession, principal: Principal, task_id: uuid.UUID,
                act: Callable[[dict[str, str]], Awaitable[str]]) -> Template | Redirect:
    """One of the task's forms: done (``act`` names the notice), or the refusal shown, nothing changed."""
    values = await form_data(request)
    try:
        notice = await act(values)
    except ProblemError as problem:
        if problem.status not in (409, 422):
            raise
        await db.rollback()
        return await _refused(request, db, principal, task_id, problem, values)
    return await _done(request, db, principal, task_id, values, notice)


def _queue_context(principal: Principal, rows: list[service_tasks.TaskRow], cursor: str | None, status: str,
                   kind: str, assignee: str) -> dict[str, Any]:
    return {"rows": rows, "next_cursor": cursor, "status": status, "kind": kind, "assignee": assignee,
            "kinds": service_tasks.KINDS, "can_resolve": principal.role in TAKERS,
            "can_work": principal.role in service_tasks.WORKERS, "return_link": return_link}


async def _task_page(request: Request[Any, Any, Any], db: AsyncSession, principal: Principal, task_id: uuid.UUID,
                     *, status_code: int = 200, errors: dict[str, str] | None = None,
                     values: dict[str, str] | None = None, problem: ProblemError | None = None,
                     notice: str | None = None) -> Template:
    """The task's page, or (for htmx) its panel alone: what happened, who has it, its comments,
    and the forms the caller may use."""
    row = await service_tasks.row_of(db, principal, task_id)
    can_work = principal.role in service_tasks.WORKERS
    open_ = row.task.status == "open"
    context: dict[str, Any] = {
        "row": row, "task": row.task, "kinds": service_tasks.KINDS,
        "comments": await service_tasks.comments_of(db, principal, task_id),
        "assignees": await service_tasks.assignees(db, principal, row.task) if can_work and open_ else [],
        "can_work": can_work, "can_resolve": principal.role in TAKERS, "return_link": return_link(row.task),
        "errors": errors or {}, "values": values or {}, "problem": problem,
        "comment_max": service_tasks.COMMENT_MAX,
    }
    if notice:  # the panel swapped in place says what was done (a page after a redirect has ?done=)
        context["partial_notice"] = NOTICES[notice]
    template = "support/_task_panel.html" if _htmx(request) else "support/task.html"
    return page(request, template, status_code=status_code, **context)


async def _refused(request: Request[Any, Any, Any], db: AsyncSession, principal: Principal, task_id: uuid.UUID,
                   problem: ProblemError, values: dict[str, str]) -> Template:
    """The task again, with what was refused beside its field (htmx swaps 2xx answers only: the
    panel comes back as 200 with its problems)."""
    errors = form_errors(problem)
    if problem.status == 409:
        errors = {"__all__": problem.detail}
    return await _task_page(request, db, principal, task_id, status_code=200 if _htmx(request) else problem.status,
                            errors=errors, values=values, problem=problem)


async def _done(request: Request[Any, Any, Any], db: AsyncSession, principal: Principal, task_id: uuid.UUID,
                values: dict[str, str], notice: str) -> Template | Redirect:
    """After a change: for htmx, the row of the queue or the task's panel as they are now (and the
    navigation's counts told to refresh); else back where the form was, with a notice."""
    if _htmx(request):
        await db.flush()
        if values.get("view") == "row":
            row = await service_tasks.row_of(db, principal, task_id)
            response = page(request, "support/_task_row.html", row=row, done=NOTICES[notice],
                            **_queue_context(principal, [row], None, row.task.status, "", ""))
        else:
            response = await _task_page(request, db, principal, task_id, notice=notice)
        response.headers.update(CHANGED)
        return response
    return redirect(safe_next(values.get("next"), f"{QUEUE}/{task_id}"), done=notice)


class ServiceTasksApiController(Controller):
    path = "/api/v1/service-tasks"
    tags = ["Customer service"]
    guards = [signed_in]
    dependencies = DEPS

    @get("/", summary="Customer-service tasks: open ones oldest first, resolved ones newest first",
         description="Filters: status (open, resolved), kind, order_id, and assignee: 'me', 'none' (nobody's "
                     "yet) or a member's email.")
    async def list_tasks(self, db: AsyncSession, principal: Principal, status: ShortText = "open",
                         kind: ShortText = "", order_id: uuid.UUID | None = None, assignee: Email = "",
                         after: str | None = None, limit: TaskPageSize = 50) -> TaskPage:
        rows, cursor = await service_tasks.listing(db, principal, status=status, kind=kind, order_id=order_id,
                                                   assignee=assignee, after=id_cursor(after),
                                                   limit=limit)
        return TaskPage(tasks=[task_out(row) for row in rows], next_cursor=cursor)

    @get("/{task_id:uuid}", summary="One task")
    async def get_task(self, db: AsyncSession, principal: Principal, task_id: uuid.UUID) -> TaskOut:
        return task_out(await service_tasks.row_of(db, principal, task_id))

    @get("/{task_id:uuid}/comments", summary="A task's comments, oldest first")
    async def list_comments(self, db: AsyncSession, principal: Principal, task_id: uuid.UUID) -> list[CommentOut]:
        await service_tasks.row_of(db, principal, task_id)  # 404 for another company's task
        return [comment_out(c) for c in await service_tasks.comments_of(db, principal, task_id)]

    @post("/{task_id:uuid}/assign", summary="Give a task to a member, or to nobody", guards=[work_tasks],
          description="`{\"assignee\": \"agent@example.com\"}` or `{\"assignee\": null}`. The assignee must be a "
                      "member who works tasks: an owner, admin or customer-service member, or a store associate "
                      "of one of the order's locations (else 422). On the order's timeline.",
          status_code=200)
    async def assign(self, db: AsyncSession, principal: Principal, task_id: uuid.UUID, data: AssignIn) -> TaskOut:
        await service_tasks.row_of(db, principal, task_id)  # 404 for another company's task, whatever the body
        if data.assignee is msgspec.UNSET:
            raise invalid({"assignee": "Say who: a member's email, or null to unassign."})
        task = await service_tasks.assign(db, principal, task_id, data.assignee)
        await db.flush()
        return task_out(await service_tasks.row_of(db, principal, task.id))

    @post("/{task_id:uuid}/comments", summary="Comment on a task", guards=[work_tasks],
          description="A comment of at most 2,000 characters, by the caller; on the order's timeline too.")
    async def add_comment(self, db: AsyncSession, principal: Principal, task_id: uuid.UUID,
                          data: CommentIn) -> CommentOut:
        return comment_out(await service_tasks.comment(db, principal, task_id, data.body))

    @post("/{task_id:uuid}/resolve", summary="Resolve a task, saying what was done", guards=[take_orders],
          status_code=200)
    async def resolve(self, db: AsyncSession, principal: Principal, task_id: uuid.UUID, data: ResolveIn) -> TaskOut:
        task = await service_tasks.resolve(db, principal, task_id, data.note)
        await db.flush()
        return task_out(await service_tasks.row_of(db, principal, task.id))


route_handlers = [ServiceTasksPagesController, ServiceTasksApiController]
