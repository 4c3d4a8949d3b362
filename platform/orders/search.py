"""Orders as customer service's search finds them: exact lookups, each served by an index that
leads with ``tenant_id`` and compares with a leakproof operator (so row-level security keeps it):
our order number (``uq_orders_tenant_id_number``), the channel's (``ix_orders_external_number``),
the customer's email (stored in lower case, ``ix_orders_customer_email_plain``), the delivery
postcode (``ix_orders_ship_postcode``), and a customer's recent orders
(``ix_orders_customer_placed``). Always within the reader's reach (``queries.reach``): a store
associate finds only their locations' orders."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, ColumnElement, Uuid, bindparam, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal
from orders import queries
from orders.models import Order

SCANNED = 500  # orders read at most for one kind of match (a busy postcode), before the newest are kept


@dataclass(frozen=True)
class OrderHit:
    id: uuid.UUID
    number: str
    external_number: str | None
    channel: str
    status: str
    total_minor: int
    currency: str
    placed_at: datetime
    customer_id: uuid.UUID | None
    customer_name: str | None
    customer_email: str | None
    exact: bool  # found by its number (ours or the channel's), not by whom or where it was for


_COLUMNS = (Order.id, Order.number, Order.external_number, Order.channel, Order.status, Order.total_minor,
            Order.currency, Order.placed_at, Order.customer_id, Order.customer_name, Order.customer_email)


def _hit(row: Any, exact: bool) -> OrderHit:
    return OrderHit(id=row.id, number=row.number, external_number=row.external_number, channel=row.channel,
                    status=row.status, total_minor=row.total_minor, currency=row.currency, placed_at=row.placed_at,
                    customer_id=row.customer_id, customer_name=row.customer_name, customer_email=row.customer_email,
                    exact=exact)


async def lookup(session: AsyncSession, principal: Principal, *, numbers: Collection[str] = (),
                 external_numbers: Collection[str] = (), emails: Collection[str] = (),
                 postcodes: Collection[str] = (), limit: int = 8) -> list[OrderHit]:
    """The orders with one of these numbers (ours or the channel's) first, then the newest of
    those for one of these customer emails (lower case) or delivery postcodes; at most
    ``limit``. Each kind is read on its own index; the orders of one email or postcode are read
    up to ``SCANNED`` (newest kept among them)."""
    base = [Order.tenant_id == principal.tenant_id, *queries.reach(principal)]
    hits: dict[uuid.UUID, OrderHit] = {}
    by_number = [c for c in (Order.number.in_(sorted(set(numbers))) if numbers else None,
                             Order.external_number.in_(sorted(set(external_numbers))) if external_numbers else None)
                 if c is not None]
    if by_number:
        for row in (await session.execute(select(*_COLUMNS).where(*base, or_(*by_number))
                                          .order_by(Order.placed_at.desc()).limit(limit))).all():
            hits[row[0]] = _hit(row, True)
    others: list[ColumnElement[bool]] = []
    if emails:
        others.append(Order.customer_email.in_(sorted(set(emails))))
    if postcodes:
        others.append(Order.ship_postcode.in_(sorted(set(postcodes))))
    for condition in others:
        if len(hits) >= limit:
            break
        # The newest among a bounded read: the index holds no date to read them newest first.
        scanned = select(*_COLUMNS).where(*base, condition).limit(SCANNED).subquery()
        rows = (await session.execute(select(scanned).order_by(scanned.c.placed_at.desc())
                                      .limit(limit))).all()
        for row in rows:
            hits.setdefault(row[0], _hit(row, False))
    return list(hits.values())[:limit]


async def recent_for_customers(session: AsyncSession, principal: Principal, customer_ids: Sequence[uuid.UUID], *,
                               each: int = 3, limit: int = 8) -> list[OrderHit]:
    """The newest orders of these customers (``each`` at most per customer, read newest first on
    the customer's index), the customers' order kept; at most ``limit``."""
    if not customer_ids:
        return []
    wanted = func.unnest(bindparam("customer_ids", list(customer_ids), type_=ARRAY(Uuid))) \
        .table_valued("id", with_ordinality="n").render_derived()
    recent = (select(*_COLUMNS)
              .where(Order.tenant_id == principal.tenant_id, Order.customer_id == wanted.c.id,
                     *queries.reach(principal))
              .order_by(Order.placed_at.desc()).limit(each).lateral())
    stmt = select(recent).select_from(wanted).join(recent, true()).order_by(wanted.c.n, recent.c.placed_at.desc()) \
        .limit(limit)
    return [_hit(row, False) for row in (await session.execute(stmt)).all()]


async def counts_for_customers(session: AsyncSession, principal: Principal,
                               customer_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, int]:
    """How many orders each of these customers has within the reader's reach (absent: none)."""
    if not customer_ids:
        return {}
    rows = (await session.execute(
        select(Order.customer_id, func.count())
        .where(Order.tenant_id == principal.tenant_id, Order.customer_id.in_(list(customer_ids)),
               *queries.reach(principal))
        .group_by(Order.customer_id))).all()
    return {customer_id: int(count) for customer_id, count in rows if customer_id is not None}
