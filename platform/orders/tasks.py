"""Order actors, the periodic jobs that fan out to them, and the order work the re-drive
sweep finds waiting (see ``core.redrive``)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from core.broker import actor
from core.db import get_database
from core.outbox import enqueue, merge_into
from core.redrive import PENDING_WORK, pending_work
from core.scheduler import fan_out, periodic
from core.sweeper import companies_where
from inventory import feeds
from inventory.feeds import on_stock_arrived
from orders.models import Fulfilment, Order, OrderEvent


@actor("orders.route", queue="orders", time_limit_ms=60_000)
async def route_order(tenant_id: str, order_id: str) -> None:
    """Route the order's open lines with the rules in force at its time. Idempotent: the
    order row is locked and only a received (or backordered) order is routed, so a second
    delivery, or one after a worker died mid-way (its transaction rolled back), routes once."""
    await _route(uuid.UUID(tenant_id), uuid.UUID(order_id), actor="router")


@actor("orders.route_batch", queue="orders", time_limit_ms=120_000)
async def route_batch(tenant_id: str, order_ids: list[str]) -> None:
    """Orders captured together, routed in one transaction (the relay merges their messages).
    When one of them lost its stock to another order meanwhile, nothing of the batch is kept and
    each is routed on its own, as ``orders.route`` would."""
    from inventory.ledger import InsufficientStock
    from orders import allocation

    tenant, ids = uuid.UUID(tenant_id), [uuid.UUID(order_id) for order_id in order_ids]
    try:
        async with get_database().transaction(tenant_id=tenant) as session:
            await allocation.route_many(session, tenant, ids, actor="router")
        return
    except InsufficientStock:
        pass
    for order_id in ids:
        await _route(tenant, order_id, actor="router")


merge_into(route_order, route_batch, key="order_id", as_list="order_ids")

ROUTING_ATTEMPTS = 3


async def _route(tenant: uuid.UUID, order_id: uuid.UUID, *, actor: str) -> None:
    """Route in a transaction of its own; when another order took the stock between the
    snapshot and the reservation, decide again on fresh figures, a few times, then hold."""
    from inventory.ledger import InsufficientStock
    from orders import allocation

    for _ in range(ROUTING_ATTEMPTS):
        try:
            async with get_database().transaction(tenant_id=tenant) as session:
                await allocation.route(session, tenant, order_id, actor=actor)
            return
        except InsufficientStock:
            continue
    async with get_database().transaction(tenant_id=tenant) as session:
        await allocation.hold_unroutable(session, tenant, order_id, actor=actor)


@on_stock_arrived
def _route_backorders_again(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    """A feed brought stock: the company's backorders may go now."""
    enqueue(session, route_backorders, tenant_id=tenant_id)


@pending_work("orders.routing", "Orders waiting to be routed", table=Order.__table__,
              pending=Order.status == "received", since=Order.updated_at, threshold=timedelta(minutes=2))
async def _route_again(session: AsyncSession, tenant_id: uuid.UUID, order_ids: list[uuid.UUID]) -> None:
    for order_id in order_ids:
        enqueue(session, route_order, tenant_id=tenant_id, order_id=str(order_id))


async def _stock_arrived_since(session: AsyncSession, tenant_id: uuid.UUID,
                               overdue: list[tuple[uuid.UUID, datetime]]) -> list[uuid.UUID]:
    """Backorders wait for stock, not for a worker: they are late only when a feed brought stock
    a while ago and routing has not looked at them since."""
    arrived = await feeds.last_stock_arrival(session, tenant_id)
    if arrived is None or arrived > clock.now() - _BACKORDERS.threshold:
        return []
    return [order_id for order_id, since in overdue if since < arrived]


@pending_work("orders.backorders", "Backorders to route now that stock arrived", table=Order.__table__,
              pending=Order.status == "backordered", since=Order.updated_at, threshold=timedelta(minutes=2),
              ready=_stock_arrived_since)
async def _route_backorders_on_stock(session: AsyncSession, tenant_id: uuid.UUID,
                                     order_ids: list[uuid.UUID]) -> None:
    await _route_again(session, tenant_id, order_ids)


_BACKORDERS = PENDING_WORK["orders.backorders"]


@actor("orders.route_backorders", queue="orders", time_limit_ms=300_000)
async def route_backorders(tenant_id: str) -> None:
    """Stock arrived (a feed was applied): route the backordered orders again, oldest first,
    each in its own transaction so one that still can't be served doesn't hold up the rest."""
    from sqlalchemy import select

    from orders.models import Order

    tenant = uuid.UUID(tenant_id)
    async with get_database().transaction(tenant_id=tenant) as session:
        waiting = list(await session.scalars(select(Order.id).where(
            Order.tenant_id == tenant, Order.status == "backordered").order_by(Order.placed_at).limit(1000)))
    for order_id in waiting:
        await _route(tenant, order_id, actor="backorder release")


async def _one_by_one(tenant_id: str, due: Callable[[AsyncSession, uuid.UUID], Awaitable[list[uuid.UUID]]],
                      act: Callable[[AsyncSession, uuid.UUID, uuid.UUID], Awaitable[object]]) -> None:
    """What is due in the company, each in a transaction of its own, so that one that fails
    undoes nothing of the others (and is done by the next run)."""
    tenant = uuid.UUID(tenant_id)
    async with get_database().transaction(tenant_id=tenant) as session:
        ids = await due(session, tenant)
    for item in ids:
        async with get_database().transaction(tenant_id=tenant) as session:
            await act(session, tenant, item)


@actor("orders.expire_pickups", queue="orders", time_limit_ms=300_000)
async def expire_pickups(tenant_id: str) -> None:
    from orders import expiry

    await _one_by_one(tenant_id, expiry.due, expiry.expire)


@periodic("orders.expire_pickups", every=timedelta(minutes=5))
async def expire_pickups_everywhere() -> None:
    """The companies with a pickup past its window, and only those (see ``core.sweeper``)."""
    for tenant_id in await companies_where(get_database(), Fulfilment.__table__,
                                           Fulfilment.status == "ready_for_pickup",
                                           Fulfilment.pickup_expires_at < clock.now()):
        expire_pickups.send(tenant_id=str(tenant_id))


@actor("orders.close_finished", queue="orders", time_limit_ms=300_000)
async def close_finished(tenant_id: str) -> None:
    from orders import closing

    await _one_by_one(tenant_id, closing.due, closing.close)


@periodic("orders.close_finished", every=timedelta(hours=1))
async def close_finished_everywhere() -> None:
    """The companies with an order past its return window, and only those."""
    from orders.closing import FINISHED, RETURN_WINDOW

    for tenant_id in await companies_where(get_database(), Order.__table__, Order.status.in_(FINISHED),
                                           Order.updated_at < clock.now() - RETURN_WINDOW):
        close_finished.send(tenant_id=str(tenant_id))


@actor("orders.refresh_figures", queue="figures", time_limit_ms=900_000)
async def refresh_figures(tenant_id: str) -> None:
    """Rebuild the company's dashboard rows of the days whose orders changed (``orders.rollups``):
    a recomputation, so a second delivery changes nothing."""
    from orders import rollups
    from tenants.service import timezone_of

    tenant = uuid.UUID(tenant_id)
    async with get_database().transaction(tenant_id=tenant) as session:
        # Read afresh (not the minute's cache): days cut in a zone just left would be rebuilt twice.
        await rollups.refresh(session, tenant, await timezone_of(session, tenant, fresh=True))


async def _companies_with_recent_changes() -> list[uuid.UUID]:
    """The companies with a timeline entry in the last 15 minutes (what the sweeper may see of them);
    a refresh then looks at everything since its last run, however long ago."""
    return await companies_where(get_database(), OrderEvent.__table__,
                                 OrderEvent.created_at > func.now() - timedelta(minutes=15))


refresh_figures_everywhere = fan_out("orders.refresh_figures", timedelta(seconds=30), _companies_with_recent_changes,
                                     refresh_figures)
