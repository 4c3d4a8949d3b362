"""An order's refund ledger: every refund, whatever its source (a cancellation, a return, an
exchange's difference, goodwill, shipping), with its parts per line. Goodwill refunds are asked
for here; their limits (what was captured, each line's net) are checked in
``orders.payments.refund``, with the order row locked."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import idempotency
from core.auth import Principal
from core.problems import ProblemError, invalid, not_found
from orders import payments, queries
from orders.models import Order, OrderLine, Refund, RefundLine
from orders.schemas import RefundIn, RefundLineOut, RefundOut

REASON_MISSING = "Say why the customer gets this refund."


@dataclass(frozen=True)
class Ledger:
    order: Order
    refunds: list[RefundOut]  # newest first


async def _locked(session: AsyncSession, principal: Principal, order_id: uuid.UUID) -> Order:
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


async def goodwill_once(session: AsyncSession, principal: Principal, order_id: uuid.UUID, data: RefundIn, *,
                        token: str) -> None:
    """The console's confirmed goodwill refund, made once under the token its review step gave:
    a double click or a resent form makes no second refund. Without a token (a form from before
    the review step), it is made as asked."""
    if not token:
        await goodwill(session, principal, order_id, data)
        return
    digest = hashlib.sha256(msgspec.json.encode([str(order_id), data])).hexdigest()
    claim = idempotency.Keyed(f"console-refund:{token}", digest, "POST", f"/app/orders/{order_id}/refund")
    earlier = (await idempotency.claim_many(session, principal.tenant_id, [claim]))[claim.key]
    if isinstance(earlier, ProblemError):
        raise earlier
    if earlier is not None:
        return
    made = await goodwill(session, principal, order_id, data)
    answer = idempotency.Answer(201, msgspec.json.encode({"id": str(made.id)}))
    await idempotency.settle_many(session, principal.tenant_id, {claim.key: answer}, [])


async def goodwill(session: AsyncSession, principal: Principal, order_id: uuid.UUID, data: RefundIn) -> RefundOut:
    """Refund ``data.amount_minor`` as goodwill, or refuse (422, every problem named, nothing written)."""
    order = await _locked(session, principal, order_id)
    order_lines = list(await session.scalars(select(OrderLine).where(
        OrderLine.tenant_id == order.tenant_id, OrderLine.order_id == order.id)))
    by_no = {line.line_no: line for line in order_lines}
    by_id = {line.id: line for line in order_lines}
    errors: dict[str, str] = {}
    reason = data.reason.strip()
    if not reason:
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
    if errors:  # with the amounts' problems too, all at once
        left = await payments.refundable(session, order, order_lines)
        errors |= payments.refund_problems(order, data.amount_minor, parts, data.shipping_minor, left, positions)
        raise invalid(errors, detail=next(iter(errors.values())))
    row = await payments.record_refund(session, order, data.amount_minor, actor=principal.label, reason=reason,
                                source="goodwill", lines=parts, shipping=data.shipping_minor, exact=True)
    assert row is not None  # an exact refund is written or refused
    await session.flush()
    return _out(row, [(line_id, amount) for line_id, amount in parts.items() if amount > 0], by_id)


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
