"""An order's refund ledger: every refund, whatever its source (a cancellation, a return, an
exchange's difference, goodwill, shipping), with its parts per line. Goodwill refunds are asked
for here; their limits (what was captured, each line's net) are checked in
``orders.payments.refund``, with the order row locked. Who may give how much goodwill (each
role's limits, approval above them) is customer service's to decide (``support.goodwill``):
``goodwill_given`` tells it what an agent gave this month."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal
from core.problems import invalid, not_found
from orders import payments, queries
from orders.models import Order, OrderLine, Refund, RefundLine
from orders.schemas import RefundIn, RefundLineOut, RefundOut

REASON_MISSING = "Say why the customer gets this refund."


@dataclass(frozen=True)
class Ledger:
    order: Order
    refunds: list[RefundOut]  # newest first


async def locked(session: AsyncSession, principal: Principal, order_id: uuid.UUID) -> Order:
    """The order with its row locked for the rest of the transaction (404 for another company's):
    refunds of one order, and decisions about them, are counted one after the other."""
    order: Order | None = await session.scalar(select(Order).where(
        Order.tenant_id == principal.tenant_id, Order.id == order_id).with_for_update())
    if order is None:
        raise not_found("Order")
    return order


async def effect(session: AsyncSession, principal: Principal, order_id: uuid.UUID, amount: int, reason: str
                 ) -> tuple[Order, dict[str, str], int]:
    """What a goodwill refund of ``amount`` would do, before it is asked for: the order, the
    problems (by field, as the API names them) and what would be left refundable after it."""
    order = await queries.get_order(session, principal, order_id)
    errors = {"reason": REASON_MISSING} if not reason.strip() else {}
    left = await payments.refundable(session, order)
    errors |= payments.refund_problems(order, amount, {}, 0, left)
    return order, errors, left.total - amount


@dataclass(frozen=True)
class Checked:
    """A goodwill refund as asked, checked against the ledger with the order locked: what each
    named line gets (by line number, as a request to approve stores it)."""

    order: Order
    parts: dict[uuid.UUID, int]  # order line id → amount
    line_nos: dict[uuid.UUID, int]  # order line id → its number
    by_id: dict[uuid.UUID, OrderLine]

    @property
    def lines(self) -> list[dict[str, Any]]:
        return [{"line_no": self.line_nos[line_id], "amount_minor": amount} for line_id, amount in self.parts.items()]


async def check_goodwill(session: AsyncSession, principal: Principal, order_id: uuid.UUID, data: RefundIn
                         ) -> Checked:
    """Lock the order and check a goodwill refund of ``data`` against its ledger: 422 naming every
    problem (no reason, more than is left, a line named wrong or beyond its net), nothing written."""
    order = await locked(session, principal, order_id)
    order_lines = list(await session.scalars(select(OrderLine).where(
        OrderLine.tenant_id == order.tenant_id, OrderLine.order_id == order.id)))
    by_no = {line.line_no: line for line in order_lines}
    by_id = {line.id: line for line in order_lines}
    errors: dict[str, str] = {}
    if not data.reason.strip():
        errors["reason"] = REASON_MISSING
    parts: dict[uuid.UUID, int] = {}
    positions: dict[uuid.UUID, int] = {}
    for i, part in enumerate(data.lines or []):
        line = (by_no.get(part.line_no) if part.line_no is not None else
                by_id.get(part.order_line_id) if part.order_line_id is not None else None)
        if part.line_no is None and part.order_line_id is None:
            errors[f"lines[{i}].line_no"] = "Name the line by its number (line_no) or its id (order_line_id)."
        elif line is None or (part.line_no is not None and part.order_line_id is not None
                              and part.order_line_id != line.id):
            errors[f"lines[{i}].line_no"] = f"Order {order.number} has no such line."
        elif line.id in parts:
            errors[f"lines[{i}].line_no"] = f"Line {line.line_no} is named twice: give it one amount."
        else:
            parts[line.id], positions[line.id] = part.amount_minor, i
    left = await payments.refundable(session, order, order_lines)
    errors |= payments.refund_problems(order, data.amount_minor, parts, data.shipping_minor, left, positions)
    if errors:
        raise invalid(errors, detail=next(iter(errors.values())))
    return Checked(order, parts, {line_id: by_id[line_id].line_no for line_id in parts}, by_id)


async def goodwill(session: AsyncSession, principal: Principal, order_id: uuid.UUID, data: RefundIn) -> RefundOut:
    """Refund ``data.amount_minor`` as goodwill in ``principal``'s name, or refuse (422, every
    problem named, nothing written). Whether the principal may give that much alone is checked
    before, by customer service (``support.goodwill``)."""
    checked = await check_goodwill(session, principal, order_id, data)
    row = await payments.record_refund(session, checked.order, data.amount_minor, actor=principal.label,
                                       reason=data.reason.strip(), source="goodwill", lines=checked.parts,
                                       shipping=data.shipping_minor, exact=True)
    assert row is not None  # an exact refund is written or refused
    await session.flush()
    return _out(row, [(line_id, amount) for line_id, amount in checked.parts.items() if amount > 0], checked.by_id)


async def goodwill_given(session: AsyncSession, tenant_id: uuid.UUID, actor: str, since: datetime) -> int:
    """What ``actor`` (a principal's label) gave as goodwill since ``since``, counting the refunds
    that were not failed nor abandoned (ix_refunds_goodwill_by)."""
    total = await session.scalar(select(func.coalesce(func.sum(Refund.amount_minor), 0)).where(
        Refund.tenant_id == tenant_id, Refund.source == "goodwill", Refund.created_by == actor,
        Refund.created_at >= since, Refund.status.not_in(payments.UNSETTLED)))
    return int(total or 0)


async def ledger(session: AsyncSession, principal: Principal, order_id: uuid.UUID) -> Ledger:
    order = await queries.get_order(session, principal, order_id)  # within the person's reach, else 404
    rows = list(await session.scalars(select(Refund).where(
        Refund.tenant_id == order.tenant_id, Refund.order_id == order.id).order_by(Refund.created_at.desc(),
                                                                                   Refund.id.desc())))
    parts: dict[uuid.UUID, list[tuple[uuid.UUID, int]]] = {}
    if rows:
        for part in await session.scalars(select(RefundLine).where(
                RefundLine.tenant_id == order.tenant_id, RefundLine.refund_id.in_([r.id for r in rows]))):
            parts.setdefault(part.refund_id, []).append((part.order_line_id, part.amount_minor))
    by_id = {line.id: line for line in await session.scalars(select(OrderLine).where(
        OrderLine.tenant_id == order.tenant_id, OrderLine.order_id == order.id))}
    return Ledger(order, [_out(row, parts.get(row.id, []), by_id) for row in rows])


def _out(row: Refund, parts: list[tuple[uuid.UUID, int]], by_id: dict[uuid.UUID, OrderLine]) -> RefundOut:
    lines = sorted((RefundLineOut(order_line_id=line_id, line_no=by_id[line_id].line_no, sku=by_id[line_id].sku,
                                  amount_minor=amount) for line_id, amount in parts if line_id in by_id),
                   key=lambda out: out.line_no)
    return RefundOut(id=row.id, order_id=row.order_id, source=row.source, amount_minor=row.amount_minor,
                     currency=row.currency, shipping_minor=row.shipping_minor, lines=lines, provider=row.provider,
                     status=row.status, reason=row.reason, created_by=row.created_by, created_at=row.created_at,
                     sent_at=row.sent_at)
