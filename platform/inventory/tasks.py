"""Inventory's actors: stock feeds are applied by a worker, once each; a feed the broker lost
is found waiting and sent again (see ``core.redrive``)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.broker import actor
from core.db import get_database
from core.outbox import enqueue
from core.redrive import pending_work
from inventory import feeds
from inventory.models import InventoryFeed


@actor("inventory.apply_feed", queue="inventory", time_limit_ms=600_000)
async def apply_feed(tenant_id: str, feed_id: str) -> None:
    """Apply one feed, once: a redelivery finds it applied (or rejected) and stops."""
    tenant, feed = uuid.UUID(tenant_id), uuid.UUID(feed_id)
    async with get_database().transaction(tenant_id=tenant) as session:
        if not await feeds.mark_applying(session, tenant, feed):
            return
    try:
        async with get_database().transaction(tenant_id=tenant) as session:
            applied = await feeds.apply(session, tenant, feed)
            if applied is not None and applied.status == "applied" and applied.rows_changed:
                for hook in feeds.STOCK_ARRIVED:
                    hook(session, tenant)
    except (DataError, IntegrityError) as exc:
        # The data, not the moment, is wrong: retrying can't help, so say so on the feed.
        async with get_database().transaction(tenant_id=tenant) as session:
            await feeds.mark_failed(session, tenant, feed, str(exc.orig).split("\n")[0][:500])


@pending_work("inventory.feeds", "Stock feeds waiting to be applied", table=InventoryFeed.__table__,
              pending=InventoryFeed.status.in_(("accepted", "applying")), since=InventoryFeed.created_at,
              threshold=timedelta(minutes=3))
async def _apply_again(session: AsyncSession, tenant_id: uuid.UUID, feed_ids: list[uuid.UUID]) -> None:
    for feed_id in feed_ids:
        enqueue(session, apply_feed, tenant_id=tenant_id, feed_id=str(feed_id))
