"""Closing finished orders: once the goods have reached the customer (delivered, collected, or
shipped with no delivery confirmed) and nothing has happened to the order for the return window,
it is closed, the last state of its life."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from orders import lifecycle
from orders.models import Order

ACTOR = "order closing"
RETURN_WINDOW = timedelta(days=30)
FINISHED = ("delivered", "collected", "shipped")


async def due(session: AsyncSession, tenant_id: uuid.UUID, limit: int = 500) -> list[uuid.UUID]:
    return list(await session.scalars(select(Order.id).where(
        Order.tenant_id == tenant_id, Order.status.in_(FINISHED),
        Order.updated_at < clock.now() - RETURN_WINDOW).order_by(Order.updated_at).limit(limit)))


async def close(session: AsyncSession, tenant_id: uuid.UUID, order_id: uuid.UUID) -> bool:
    """Close one order; False when something happened to it meanwhile."""
    order = await session.scalar(select(Order).where(Order.tenant_id == tenant_id, Order.id == order_id)
                                 .with_for_update())
    if order is None or order.status not in FINISHED or order.updated_at >= clock.now() - RETURN_WINDOW:
        return False
    lifecycle.move_order(session, order, "closed", actor=ACTOR,
                         reason=f"nothing left to do {RETURN_WINDOW.days} days after it reached the customer")
    return True
