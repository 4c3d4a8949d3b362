"""Cancelling an order or some of its units, until they ship: reservations are released, what
was captured for them is refunded, the timeline says who and why, and the customer is told (the
whole order's mail, or the part's: what went, its refund, what still comes)."""

from __future__ import annotations

import uuid
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal
from core.problems import ProblemError, invalid, not_found
from inventory.ledger import Line, release
from orders import allocation, customer_stats, lifecycle, notifications, payments, promotion_hook, service_tasks
from orders.models import Fulfilment, FulfilmentLine, Order, OrderLine

NOTHING_CHOSEN = "Choose what to cancel: the whole order, or a number of units of at least one line."


def cancellable(line: OrderLine) -> int:
    return line.quantity - line.qty_cancelled - line.qty_shipped


class Cancelled(NamedTuple):
    order: Order
    whole: bool  # the order is cancelled (else some of its units)
    refunded_minor: int  # what this cancellation refunded


async def cancel(session: AsyncSession, principal: Principal, order_id: uuid.UUID, *,
                 lines: list[tuple[int, int]] | None = None, reason: str = "", notify: bool = True) -> Cancelled:
    """Cancel the given (line number, quantity) pairs, or every unit not shipped yet. A list
    that names no unit is refused before anything is read or written."""
    if lines is not None and not lines:
        raise invalid({"lines": NOTHING_CHOSEN}, detail=NOTHING_CHOSEN)
    order = await session.scalar(select(Order).where(Order.tenant_id == principal.tenant_id, Order.id == order_id)
                                 .with_for_update())
    if order is None:
        raise not_found("Order")
    if order.status in ("cancelled", "closed"):
        raise ProblemError(409, "Too late", f"Order {order.number} is already {order.status}.")
    order_lines = {line.line_no: line for line in await session.scalars(select(OrderLine).where(
        OrderLine.tenant_id == order.tenant_id, OrderLine.order_id == order.id))}
    wanted = _requested(order, order_lines, lines)
    # Parts still holding stock: not a transfer already on its way to (or at) the pickup store,
    # whose units have shipped and left the warehouse's reservation.
    fulfilments = {f.id: f for f in await session.scalars(select(Fulfilment).where(
        Fulfilment.tenant_id == order.tenant_id, Fulfilment.order_id == order.id,
        Fulfilment.status.in_(lifecycle.HOLDING))) if not (f.kind == "transfer" and f.status == "ready_for_pickup")}
    held = list(await session.scalars(select(FulfilmentLine).where(
        FulfilmentLine.tenant_id == order.tenant_id, FulfilmentLine.fulfilment_id.in_(list(fulfilments)),
        FulfilmentLine.quantity > 0))) if fulfilments else []
    value = 0
    by_line: dict[uuid.UUID, int] = {}  # what the cancelled units of each line were worth
    for line_no, quantity in wanted.items():
        line = order_lines[line_no]
        by_line[line.id] = payments.cancelled_value(line, quantity)
        value += by_line[line.id]
        take_open = min(allocation.open_quantity(line), quantity)
        remaining = quantity - take_open
        for held_line in [h for h in held if h.order_line_id == line.id]:
            if remaining <= 0:
                break
            take = min(held_line.quantity, remaining)
            fulfilment = fulfilments[held_line.fulfilment_id]
            await release(session, order.tenant_id, [Line(held_line.product_id, fulfilment.location_id, take)],
                          reference=f"order {order.number}", actor=principal.label, reason="cancelled")
            held_line.quantity -= take
            line.qty_allocated -= take
            remaining -= take
        line.qty_cancelled += quantity
    await session.flush()
    for fulfilment in fulfilments.values():
        if not any(h.quantity > 0 for h in held if h.fulfilment_id == fulfilment.id):
            lifecycle.move_fulfilment(session, order, fulfilment, "cancelled", actor=principal.label,
                                      reason=reason or "order cancelled")
    everything = all(cancellable(line) == 0 and line.qty_shipped == 0 for line in order_lines.values())
    await customer_stats.units_gone(session, order, wanted, list(order_lines.values()), wholly_cancelled=everything)
    if (promotions := promotion_hook.hook()) is not None:
        await promotions.give_back(session, order.tenant_id, order.id, units=dict(wanted),
                                   whole=all(line.qty_cancelled + line.qty_returned >= line.quantity
                                             for line in order_lines.values()))
    lifecycle.record(session, order, "order.lines_cancelled", actor=principal.label, reason=reason or None,
                     lines={str(k): v for k, v in wanted.items()})
    refund_due = order.captured_minor if everything else value
    refunded = await payments.refund(session, order, refund_due, actor=principal.label, reason=reason or "cancelled",
                                     source="cancellation", lines=by_line,
                                     shipping=order.shipping_fee_minor if everything else 0)
    if everything:
        lifecycle.move_order(session, order, "cancelled", actor=principal.label, reason=reason or None)
        await service_tasks.close_if_open(session, order, "order_on_hold", "the order was cancelled",
                                          actor=principal.label)
        await service_tasks.close_if_open(session, order, "stock_missing_at_pickup", "the order was cancelled",
                                          actor=principal.label)
        if notify:
            await notifications.tell_customer(session, order, "cancelled", refunded_minor=refunded)
    else:
        await allocation.settle(session, order, actor=principal.label)
        if notify:  # what was cancelled, its refund, and what still comes
            await notifications.tell_customer(session, order, "lines_cancelled", lines=list(order_lines.values()),
                                              cancelled=wanted, refunded_minor=refunded)
    return Cancelled(order, everything, refunded)


def _requested(order: Order, order_lines: dict[int, OrderLine],
               lines: list[tuple[int, int]] | None) -> dict[int, int]:
    if lines is None:
        wanted = {no: cancellable(line) for no, line in order_lines.items() if cancellable(line) > 0}
        if not wanted:
            raise ProblemError(409, "Too late", f"Everything on order {order.number} has shipped: open a return "
                                                f"instead.")
        return wanted
    errors: dict[str, str] = {}
    wanted = {}
    for i, (line_no, quantity) in enumerate(lines):
        line = order_lines.get(line_no)
        if line is None:
            errors[f"lines[{i}].line_no"] = f"Order {order.number} has no line {line_no}."
        elif quantity <= 0:
            errors[f"lines[{i}].quantity"] = f"Line {line_no}: cancel at least one unit."
        elif quantity + wanted.get(line_no, 0) > cancellable(line):
            shipped = f", {line.qty_shipped} shipped" if line.qty_shipped else ""
            errors[f"lines[{i}].quantity"] = (f"Line {line_no}: only {cancellable(line)} of {line.quantity} can still "
                                              f"be cancelled ({line.qty_cancelled} cancelled{shipped}).")
        else:
            wanted[line_no] = wanted.get(line_no, 0) + quantity
    if errors:
        raise invalid(errors, detail=next(iter(errors.values())))
    return wanted
