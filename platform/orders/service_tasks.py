"""Customer-service tasks: what the platform hands to people when it can't finish alone.

A task is opened by the code that met the problem, in the same transaction, with the order row
locked: a capture Stripe keeps refusing, a refund it refused, an order routing put on hold. The
same problem again on the same order counts on the open task instead of opening a second one.
A task closes by itself when the problem goes away (the capture succeeds on a retry, the order
is released or cancelled), or by hand with a note saying what was done.

While a payment-capture task is open the order is on payment hold: its remaining fulfilments
can't ship or be handed over, so no more goods leave unpaid.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from core.auth import Principal
from core.ids import uuid7
from core.locale import format_money as money
from core.problems import ProblemError, invalid, not_found
from orders import lifecycle, queries
from orders.models import Fulfilment, Order, Refund, ServiceTask, TaskComment
from tenants import service as tenants

KINDS = {
    "payment_capture_failed": "Payment capture failed",
    "refund_failed": "Refund failed",
    "order_on_hold": "Order on hold",
    "delivery_exception": "Delivery problem",  # a carrier's tracking reported one (orders.fulfilment)
    "stock_missing_at_pickup": "Stock missing at the pickup store",
    "pickup_expired": "Pickup expired",
    "return_to_inspect": "Return to inspect",  # subject: the return's id (support.returns)
    "return_overdue": "Return not received",  # an exchange shipped at once whose return did not come
    "goodwill_approval": "Goodwill awaiting approval",  # subject: the request's id (support.goodwill)
}
STATUSES = ("open", "resolved")
# Tasks closed by the decision they wait for, not by hand: resolving one would leave it undecided.
DECIDED_ELSEWHERE = {
    "goodwill_approval": "Approve or decline the goodwill request on the order's page: that closes this task.",
}
PAGE_SIZE = 50
PAGE_MAX = 200  # the API's limit is refused above it
# Kinds whose subject is a return's id: the task links to the return's page.
RETURN_KINDS = frozenset({"return_to_inspect", "return_overdue"})
# Who works tasks (is assigned them, takes them, comments on them): customer service and admins
# every task of the company, a store associate those of the orders of their locations (the
# pickup store's missing stock, a return received there). Resolving stays with ``TAKERS``
# (orders.guards): closing a payment task lifts a hold, closing a refund task settles money.
WORKERS = ("owner", "admin", "customer_service", "store_associate")
COMMENT_MAX = 2000
ASSIGNEES = ("", "me", "none")  # the listing's filters besides an email: anyone, mine, unassigned


async def open_task(session: AsyncSession, order: Order, kind: str, detail: str, *, actor: str,
                    subject: str = "") -> ServiceTask:
    """Open a task for the order (the caller holds the order's lock), or count again on the one
    already open for the same problem (and the same ``subject``: a return, a request)."""
    task = await open_of(session, order, kind, subject)
    now = clock.now()
    if task is not None:
        task.occurrences += 1
        task.detail = detail[:1000]
        task.updated_at = now
        return task
    task = ServiceTask(tenant_id=order.tenant_id, id=uuid7(), order_id=order.id, kind=kind, subject=subject,
                       status="open",
                       detail=detail[:1000], occurrences=1, opened_at=now, updated_at=now)
    session.add(task)
    lifecycle.record(session, order, "task.opened", actor=actor, reason=f"{KINDS[kind]}: {detail}"[:1000],
                     task_id=str(task.id), task_kind=kind)
    return task


async def open_of(session: AsyncSession, order: Order, kind: str, subject: str = "") -> ServiceTask | None:
    found: ServiceTask | None = await session.scalar(select(ServiceTask).where(
        ServiceTask.tenant_id == order.tenant_id, ServiceTask.order_id == order.id, ServiceTask.kind == kind,
        ServiceTask.subject == subject, ServiceTask.status == "open"))
    return found


async def close_if_open(session: AsyncSession, order: Order, kind: str, resolution: str, *, actor: str,
                        subject: str = "") -> None:
    """The problem went away by itself: close its task, if one is open."""
    task = await open_of(session, order, kind, subject)
    if task is not None:
        _close(session, order, task, resolution, actor=actor)


def _close(session: AsyncSession, order: Order, task: ServiceTask, resolution: str, *, actor: str) -> None:
    now = clock.now()
    task.status = "resolved"
    task.resolved_at = now
    task.updated_at = now
    task.resolved_by = actor
    task.resolution = resolution[:1000]
    lifecycle.record(session, order, "task.resolved", actor=actor,
                     reason=f"{KINDS[task.kind]}: {resolution}"[:1000], task_id=str(task.id), task_kind=task.kind)


async def on_payment_hold(session: AsyncSession, order: Order) -> bool:
    """Whether the order's goods must wait: a capture failed and nobody has dealt with it yet."""
    return order.payment_status == "capture_failed" and \
        await open_of(session, order, "payment_capture_failed") is not None


async def resolve(session: AsyncSession, principal: Principal, task_id: uuid.UUID, note: str) -> ServiceTask:
    """Close a task by hand, saying what was done (the customer paid another way, the order was
    sorted out by phone...). Closing a payment task lifts the order's payment hold; closing a
    refund task stops sending the order's failing refunds."""
    order, task = await _locked(session, principal, task_id)
    note = note.strip()
    if not note:
        raise invalid({"note": "Say what was done, for the order's timeline."})
    if len(note) > 1000:
        raise invalid({"note": "Keep the note under 1,000 characters."})
    if task.status != "open":
        raise ProblemError(409, "Already resolved",
                           f"This task was resolved by {task.resolved_by}: {task.resolution}")
    if task.kind in DECIDED_ELSEWHERE:
        raise ProblemError(409, "Decided elsewhere", DECIDED_ELSEWHERE[task.kind])
    _close(session, order, task, note, actor=principal.label)
    if task.kind == "refund_failed":
        await _settled_elsewhere(session, order, actor=principal.label, note=note)
    await tenants.audit(session, principal.tenant_id, tenants.Actor.of(principal), "task.resolved",
                        target=f"order {order.number}", task_kind=task.kind, note=note)
    return task


async def _settled_elsewhere(session: AsyncSession, order: Order, *, actor: str, note: str) -> None:
    """Customer service settled the order's failing refunds another way: they are no longer sent
    to Stripe (a retry on its way finds them abandoned and leaves them)."""
    rows = await session.scalars(select(Refund).where(
        Refund.tenant_id == order.tenant_id, Refund.order_id == order.id,
        Refund.status.in_(("pending", "failed"))).with_for_update())
    for row in rows:
        row.status = "abandoned"
        lifecycle.record(session, order, "payment.refund_abandoned", actor=actor, amount_minor=row.amount_minor,
                         refund_id=str(row.id),
                         reason=f"{money(row.amount_minor, order.currency)} no longer sent with Stripe: {note}"[:1000])


@dataclass(frozen=True)
class TaskRow:
    task: ServiceTask
    order_number: str
    order_status: str
    comments: int = 0  # how many comments the task has


def _comment_count() -> Any:
    return (select(func.count()).where(TaskComment.tenant_id == ServiceTask.tenant_id,
                                       TaskComment.task_id == ServiceTask.id)
            .correlate(ServiceTask).scalar_subquery())


async def listing(session: AsyncSession, principal: Principal, *, status: str = "open", kind: str = "",
                  order_id: uuid.UUID | None = None, after: uuid.UUID | None = None,
                  limit: int = PAGE_SIZE, assignee: str = "") -> tuple[list[TaskRow], str | None]:
    """Tasks, oldest open first (the longest waiting is the most urgent), resolved ones newest
    first; and the cursor of the next page, if there may be one. ``assignee``: "" anyone's,
    "me" the principal's, "none" nobody's yet, or a member's email."""
    errors: dict[str, str] = {}
    if status not in STATUSES:
        errors["status"] = f"Unknown status {status!r}: open or resolved."
    if kind and kind not in KINDS:
        errors["kind"] = f"Unknown kind {kind!r}: {', '.join(KINDS)}."
    assignee = assignee.strip().lower()
    if assignee not in ASSIGNEES and "@" not in assignee:
        errors["assignee"] = f"Unknown assignee {assignee[:60]!r}: me, none, or a member's email."
    if errors:
        raise invalid(errors)
    query = (select(ServiceTask, Order.number, Order.status, _comment_count())
             .join(Order, (Order.tenant_id == ServiceTask.tenant_id) & (Order.id == ServiceTask.order_id))
             .where(ServiceTask.tenant_id == principal.tenant_id, ServiceTask.status == status,
                    *queries.reach(principal)))
    if kind:
        query = query.where(ServiceTask.kind == kind)
    if assignee == "none":
        query = query.where(ServiceTask.assigned_to.is_(None))
    elif assignee:
        query = query.where(ServiceTask.assigned_to == (principal.label.lower() if assignee == "me" else assignee))
    if order_id is not None:
        query = query.where(ServiceTask.order_id == order_id)
    # Ids are time-ordered (UUIDv7): they order the tasks by opening and serve as the page cursor.
    if status == "open":
        query = query.where(ServiceTask.id > after) if after else query
        query = query.order_by(ServiceTask.id)
    else:
        query = query.where(ServiceTask.id < after) if after else query
        query = query.order_by(ServiceTask.id.desc())
    limit = max(1, min(limit, PAGE_MAX))
    rows = [TaskRow(task, number, order_status, comments)
            for task, number, order_status, comments in await session.execute(query.limit(limit))]
    return rows, str(rows[-1].task.id) if len(rows) == limit else None


async def row_of(session: AsyncSession, principal: Principal, task_id: uuid.UUID) -> TaskRow:
    found = (await session.execute(
        select(ServiceTask, Order.number, Order.status, _comment_count())
        .join(Order, (Order.tenant_id == ServiceTask.tenant_id) & (Order.id == ServiceTask.order_id))
        .where(ServiceTask.tenant_id == principal.tenant_id, ServiceTask.id == task_id,
               *queries.reach(principal)))).first()
    if found is None:
        raise not_found("Task")
    return TaskRow(*found)


# --- working a task: assignees, comments, counts ------------------------------------------------


@dataclass(frozen=True)
class Assignee:
    email: str
    name: str
    role: str


async def _locked(session: AsyncSession, principal: Principal, task_id: uuid.UUID) -> tuple[Order, ServiceTask]:
    """The task and its order, the order row locked first (as every change to the order is); a
    task of another company, or of an order out of the principal's reach, is not found."""
    task = await session.scalar(select(ServiceTask).where(ServiceTask.tenant_id == principal.tenant_id,
                                                          ServiceTask.id == task_id))
    if task is None:
        raise not_found("Task")
    order = await session.scalar(select(Order).where(Order.tenant_id == principal.tenant_id,
                                                     Order.id == task.order_id, *queries.reach(principal))
                                 .with_for_update())
    if order is None:
        raise not_found("Task")
    await session.refresh(task, with_for_update=True)
    return order, task


async def _order_codes(session: AsyncSession, tenant_id: uuid.UUID, order_id: uuid.UUID) -> set[str]:
    """The locations an order touches: its pickup store, its fulfilments' locations and stores."""
    pickup = await session.scalar(select(Order.pickup_location_code).where(Order.tenant_id == tenant_id,
                                                                           Order.id == order_id))
    codes = {pickup} if pickup else set()
    for location, store in await session.execute(select(Fulfilment.location_code, Fulfilment.ship_to_store).where(
            Fulfilment.tenant_id == tenant_id, Fulfilment.order_id == order_id)):
        codes.update(code for code in (location, store) if code)
    return codes


def _may_work(role: str, locations: list[str] | None, codes: set[str]) -> bool:
    if role == "store_associate":
        return bool(set(locations or ()) & codes)
    return role in WORKERS


async def assignees(session: AsyncSession, principal: Principal, task: ServiceTask) -> list[Assignee]:
    """The members the task may be given: owners, admins, customer service, and the store
    associates of the locations its order touches."""
    codes = await _order_codes(session, principal.tenant_id, task.order_id)
    return sorted((Assignee(user.email.lower(), user.name or user.email, member.role)
                   for member, user in await tenants.list_members(session, principal)
                   if _may_work(member.role, member.locations, codes)), key=lambda a: (a.name.lower(), a.email))


async def assign(session: AsyncSession, principal: Principal, task_id: uuid.UUID,
                 assignee: str | None) -> ServiceTask:
    """Give the task to a member (``None``: to nobody), on the order's timeline. The same
    assignee again changes nothing."""
    order, task = await _locked(session, principal, task_id)
    if task.status != "open":
        raise ProblemError(409, "Already resolved",
                           f"This task was resolved by {task.resolved_by}: it can't be assigned any more.")
    email = (assignee or "").strip().lower() or None
    if email is not None:
        found = next((m for m, u in await tenants.list_members(session, principal) if u.email.lower() == email), None)
        if found is None:
            raise invalid({"assignee": f"{email[:320]} is not a member of {principal.tenant_name}: invite them "
                                       f"under Settings → Team first, or choose a member."})
        if not _may_work(found.role, found.locations, await _order_codes(session, order.tenant_id, order.id)):
            raise invalid({"assignee": (
                f"{email} is a store associate of other locations: only the associates of the stores of order "
                f"{order.number}, customer service and admins work its tasks." if found.role == "store_associate"
                else f"{email} is a {found.role.replace('_', ' ')} member: tasks go to customer service, admins, "
                     f"owners, or the associates of the order's stores.")})
    if email == task.assigned_to:
        return task
    previous, task.assigned_to = task.assigned_to, email
    said = (f"assigned to {email}" + (f" (was {previous})" if previous else "")) if email else \
        f"unassigned (was {previous})"
    lifecycle.record(session, order, "task.assigned", actor=principal.label, reason=f"{KINDS[task.kind]}: {said}",
                     task_id=str(task.id), task_kind=task.kind, assignee=email, previous=previous)
    await tenants.audit(session, principal.tenant_id, tenants.Actor.of(principal), "task.assigned",
                        target=f"order {order.number}", task_kind=task.kind, before=previous, after=email)
    return task


async def comment(session: AsyncSession, principal: Principal, task_id: uuid.UUID, body: str) -> TaskComment:
    """A comment on the task (open or resolved), on the order's timeline too."""
    order, task = await _locked(session, principal, task_id)
    body = body.strip()
    if not body:
        raise invalid({"body": "Write the comment: it can't be empty."})
    if len(body) > COMMENT_MAX:
        raise invalid({"body": f"Keep the comment under {COMMENT_MAX:,} characters ({len(body):,} now)."})
    row = TaskComment(tenant_id=order.tenant_id, id=uuid7(), task_id=task.id, body=body, author=principal.label,
                      created_at=clock.now())
    session.add(row)
    lifecycle.record(session, order, "task.commented", actor=principal.label,
                     reason=f"{KINDS[task.kind]}: {body}"[:1000], task_id=str(task.id), task_kind=task.kind,
                     comment_id=str(row.id))
    await tenants.audit(session, principal.tenant_id, tenants.Actor.of(principal), "task.commented",
                        target=f"order {order.number}", task_kind=task.kind, comment=body[:500])
    return row


async def comments_of(session: AsyncSession, principal: Principal, task_id: uuid.UUID) -> list[TaskComment]:
    """The task's comments, oldest first (the caller found the task within the principal's reach)."""
    return list(await session.scalars(select(TaskComment).where(
        TaskComment.tenant_id == principal.tenant_id, TaskComment.task_id == task_id).order_by(TaskComment.id)))


@dataclass(frozen=True)
class Counts:
    open: int  # open tasks the principal can see
    mine: int  # of which assigned to the principal


async def counts(session: AsyncSession, principal: Principal) -> Counts:
    """For the navigation, polled: one query over the open tasks (index ix_service_tasks_status),
    joined to their orders only for a principal whose reach is limited (a store associate)."""
    query = (select(func.count(), func.count().filter(ServiceTask.assigned_to == principal.label.lower()))
             .select_from(ServiceTask)
             .where(ServiceTask.tenant_id == principal.tenant_id, ServiceTask.status == "open"))
    reach = queries.reach(principal)
    if reach:
        query = query.join(Order, (Order.tenant_id == ServiceTask.tenant_id) & (Order.id == ServiceTask.order_id)) \
            .where(*reach)
    total, mine = (await session.execute(query)).one()
    return Counts(int(total), int(mine))
