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

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from core.auth import Principal
from core.ids import uuid7
from core.locale import format_money as money
from core.problems import ProblemError, invalid, not_found
from orders import lifecycle, queries
from orders.models import Order, Refund, ServiceTask

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
PAGE_SIZE = 50


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
    task = await session.scalar(select(ServiceTask).where(ServiceTask.tenant_id == principal.tenant_id,
                                                          ServiceTask.id == task_id))
    if task is None:
        raise not_found("Task")
    note = note.strip()
    if not note:
        raise invalid({"note": "Say what was done, for the order's timeline."})
    if len(note) > 1000:
        raise invalid({"note": "Keep the note under 1,000 characters."})
    order = await session.scalar(select(Order).where(Order.tenant_id == principal.tenant_id,
                                                     Order.id == task.order_id, *queries.reach(principal))
                                 .with_for_update())
    if order is None:  # an order out of the principal's reach: its tasks too
        raise not_found("Task")
    await session.refresh(task, with_for_update=True)
    if task.status != "open":
        raise ProblemError(409, "Already resolved",
                           f"This task was resolved by {task.resolved_by}: {task.resolution}")
    _close(session, order, task, note, actor=principal.label)
    if task.kind == "refund_failed":
        await _settled_elsewhere(session, order, actor=principal.label, note=note)
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


async def listing(session: AsyncSession, principal: Principal, *, status: str = "open", kind: str = "",
                  order_id: uuid.UUID | None = None, after: uuid.UUID | None = None,
                  limit: int = PAGE_SIZE) -> tuple[list[TaskRow], str | None]:
    """Tasks, oldest open first (the longest waiting is the most urgent), resolved ones newest
    first; and the cursor of the next page, if there may be one."""
    errors: dict[str, str] = {}
    if status not in STATUSES:
        errors["status"] = f"Unknown status {status!r}: open or resolved."
    if kind and kind not in KINDS:
        errors["kind"] = f"Unknown kind {kind!r}: {', '.join(KINDS)}."
    if errors:
        raise invalid(errors)
    query = (select(ServiceTask, Order.number, Order.status)
             .join(Order, (Order.tenant_id == ServiceTask.tenant_id) & (Order.id == ServiceTask.order_id))
             .where(ServiceTask.tenant_id == principal.tenant_id, ServiceTask.status == status,
                    *queries.reach(principal)))
    if kind:
        query = query.where(ServiceTask.kind == kind)
    if order_id is not None:
        query = query.where(ServiceTask.order_id == order_id)
    # Ids are time-ordered (UUIDv7): they order the tasks by opening and serve as the page cursor.
    if status == "open":
        query = query.where(ServiceTask.id > after) if after else query
        query = query.order_by(ServiceTask.id)
    else:
        query = query.where(ServiceTask.id < after) if after else query
        query = query.order_by(ServiceTask.id.desc())
    limit = max(1, min(limit, 200))
    rows = [TaskRow(task, number, order_status)
            for task, number, order_status in await session.execute(query.limit(limit))]
    return rows, str(rows[-1].task.id) if len(rows) == limit else None


async def row_of(session: AsyncSession, principal: Principal, task_id: uuid.UUID) -> TaskRow:
    found = (await session.execute(
        select(ServiceTask, Order.number, Order.status)
        .join(Order, (Order.tenant_id == ServiceTask.tenant_id) & (Order.id == ServiceTask.order_id))
        .where(ServiceTask.tenant_id == principal.tenant_id, ServiceTask.id == task_id,
               *queries.reach(principal)))).first()
    if found is None:
        raise not_found("Task")
    return TaskRow(*found)


async def open_count(session: AsyncSession, tenant_id: uuid.UUID) -> int:
    return int(await session.scalar(select(func.count()).select_from(ServiceTask).where(
        ServiceTask.tenant_id == tenant_id, ServiceTask.status == "open")) or 0)


def cursor_of(after: str | None) -> uuid.UUID | None:
    if not after:
        return None
    try:
        return uuid.UUID(after)
    except ValueError:
        raise ProblemError(422, "Invalid cursor", "Pass the next_cursor of the previous page as after.") from None
