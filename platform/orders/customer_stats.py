"""What a customer's orders come to (``customers.service.CustomerStats``), kept on the customer's
record by the transactions that change it: capture counts new orders, cancellation and returns
take off what the units that went were worth. ``recount`` computes the same figures from the
orders themselves: the reference the kept ones must always equal.

A line's units that went (cancelled or returned) are worth their share of the line's net
counted cumulatively (``payments.value_of`` of all the units gone so far, less the same before),
so that however cancellations and returns follow each other, what was taken off is the value of
all of them together; a wholly cancelled order also takes off its shipping and its count."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import ARRAY, Uuid, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from customers.service import CustomerStats, PlacedOrder, adjust, record_orders
from orders import payments
from orders.models import Order, OrderLine


async def record_captured(session: AsyncSession, tenant_id: uuid.UUID,
                          orders: Sequence[tuple[Order, Sequence[str | None]]]) -> None:
    """Count new orders (each with its lines' categories) in their customers' figures: one
    statement for a capture batch."""
    await record_orders(session, tenant_id, [
        PlacedOrder(customer_id=order.customer_id, placed_at=order.placed_at, total_minor=order.total_minor,
                    channel=order.channel, store=order.pickup_location_code,
                    categories=tuple(category for category in categories if category))
        for order, categories in orders if order.customer_id is not None])


def gone_value(line: OrderLine, units: int) -> int:
    """What ``units`` units of the line, already counted as cancelled or returned, were worth."""
    gone = min(line.quantity, line.qty_cancelled + line.qty_returned)
    return payments.value_of(line, gone) - payments.value_of(line, max(gone - units, 0))


async def units_gone(session: AsyncSession, order: Order, counted: Mapping[int, int], lines: Sequence[OrderLine], *,
                     wholly_cancelled: bool) -> None:
    """``counted`` (line number -> units) were just cancelled or returned, and are counted on
    ``lines`` already: the customer's lifetime value loses them (and the shipping, with the
    order's count, when the order is now wholly cancelled)."""
    if order.customer_id is None:
        return
    value = sum(gone_value(line, counted[line.line_no]) for line in lines if counted.get(line.line_no))
    if wholly_cancelled:
        value += order.shipping_fee_minor
    await adjust(session, order.tenant_id, order.customer_id, value_minor=-value, orders=-1 if wholly_cancelled else 0)


# Each order's value and whether it is wholly cancelled, then per customer; the products of two
# amounts in numeric (they may pass 64 bits), divided down as ``payments.value_of`` does.
_RECOUNT = """
    WITH per_order AS (
        SELECT o.customer_id, o.placed_at, o.channel, o.pickup_location_code AS store,
               bool_and(l.qty_cancelled >= l.quantity) AS cancelled,
               o.total_minor - sum(div((l.unit_price_minor::numeric * l.quantity - l.discount_minor
                                        - l.order_discount_minor) * least(l.quantity, l.qty_cancelled + l.qty_returned),
                                       l.quantity))
               - CASE WHEN bool_and(l.qty_cancelled >= l.quantity) THEN o.shipping_fee_minor ELSE 0 END AS value
        FROM orders o JOIN order_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.id
        WHERE o.tenant_id = :tenant AND o.customer_id = ANY(:ids)
        GROUP BY o.tenant_id, o.id),
    categories AS (
        SELECT o.customer_id, array_agg(DISTINCT l.category) AS categories
        FROM orders o JOIN order_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.id
        WHERE o.tenant_id = :tenant AND o.customer_id = ANY(:ids) AND l.category IS NOT NULL
        GROUP BY o.customer_id)
    SELECT p.customer_id, count(*) FILTER (WHERE NOT p.cancelled) AS orders_count,
           sum(p.value)::bigint AS lifetime_value_minor, min(p.placed_at) AS first_order_at,
           max(p.placed_at) AS last_order_at, array_agg(DISTINCT p.channel) AS channels,
           coalesce(array_agg(DISTINCT p.store) FILTER (WHERE p.store IS NOT NULL), '{}') AS stores,
           coalesce(c.categories, '{}') AS categories
    FROM per_order p LEFT JOIN categories c ON c.customer_id = p.customer_id
    GROUP BY p.customer_id, c.categories
"""


async def recount(session: AsyncSession, tenant_id: uuid.UUID,
                  customer_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, CustomerStats]:
    """The figures of these customers counted from their orders (a customer without orders has
    the empty figures)."""
    query = text(_RECOUNT).bindparams(bindparam("ids", type_=ARRAY(Uuid())))
    found: dict[uuid.UUID, CustomerStats] = {customer_id: CustomerStats() for customer_id in customer_ids}
    rows: Any = await session.execute(query, {"tenant": tenant_id, "ids": list(customer_ids)})
    for row in rows:
        found[row.customer_id] = CustomerStats(
            orders_count=row.orders_count, lifetime_value_minor=int(row.lifetime_value_minor),
            first_order_at=row.first_order_at, last_order_at=row.last_order_at, channels=frozenset(row.channels),
            stores=frozenset(row.stores), categories=frozenset(row.categories))
    return found
