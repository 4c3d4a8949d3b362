"""What routing reads for orders: the stock of a routing pass (inventory's figures, drawn down
decision after decision, with each location's daily capacity left from the fulfilments it took),
and recent orders as routing facts for a replay."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Collection
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from inventory import locations
from inventory.schemas import LocationOut
from inventory.snapshot import StockKey, available_now, location_facts
from orders.models import Fulfilment, Order, OrderLine
from rules.facts import LineFacts, OrderFacts, StockSnapshot
from rules.routing import Decision


async def capacity_used(session: AsyncSession, tenant_id: uuid.UUID, codes: list[str], at: datetime,
                        timezone: str) -> dict[str, int]:
    """Fulfilments each of these locations took on ``at``'s local day (rejected and cancelled
    ones excluded)."""
    if not codes:
        return {}
    start = at.astimezone(ZoneInfo(timezone)).replace(hour=0, minute=0, second=0, microsecond=0)
    rows = await session.execute(
        select(Fulfilment.location_code, func.count()).where(
            Fulfilment.tenant_id == tenant_id, Fulfilment.location_code.in_(codes),
            Fulfilment.created_at >= start, Fulfilment.created_at < start + timedelta(days=1),
            Fulfilment.status.not_in(("rejected", "cancelled")))
        .group_by(Fulfilment.location_code))
    return {code: int(count) for code, count in rows}


async def snapshot_now(session: AsyncSession, tenant_id: uuid.UUID, skus: Collection[str], *, at: datetime,
                       timezone: str, excluded: frozenset[str] = frozenset()) -> StockSnapshot:
    """Every active location (less ``excluded``) with its stock of these SKUs as it stands, and
    the daily capacity it has left on ``at``'s local day."""
    stock = Stock(await locations.active(session, tenant_id), await available_now(session, tenant_id, skus))
    return await stock.snapshot(session, tenant_id, at, timezone, excluded)


class Stock:
    """The stock the orders of one routing pass see: read once, drawn down by each decision, with
    each local day's capacity left at the locations that have a daily limit.

    A snapshot is made once per local day (and set of excluded locations) and handed to every
    order of the pass: its locations share the stock figures this draws down, and a decision
    changes only the facts of a location with a daily limit (one order fewer left to take)."""

    def __init__(self, active: list[LocationOut], available: dict[StockKey, int]) -> None:
        self.locations = active
        self.by_code = {loc.code: loc for loc in active}
        self.available: dict[str, dict[str, int]] = {loc.code: {} for loc in active}
        for (code, sku), units in available.items():
            if code in self.available:
                self.available[code][sku] = max(0, units)
        self.used: dict[date, dict[str, int]] = {}
        self.snapshots: dict[tuple[date, frozenset[str], frozenset[str]], StockSnapshot] = {}

    async def snapshot(self, session: AsyncSession, tenant_id: uuid.UUID, at: datetime, timezone: str,
                       excluded: frozenset[str], emptied: frozenset[str] = frozenset()) -> StockSnapshot:
        """``excluded`` locations are left out; ``emptied`` ones are there with no stock (a pickup
        store that could not hand over: still the place to send the goods to)."""
        day = at.astimezone(ZoneInfo(timezone)).date()
        if day not in self.used:
            limited = [loc.code for loc in self.locations if loc.daily_capacity]
            self.used[day] = await capacity_used(session, tenant_id, limited, at, timezone)
        snapshot = self.snapshots.get((day, excluded, emptied))
        if snapshot is None:
            used = self.used[day]
            snapshot = self.snapshots[(day, excluded, emptied)] = StockSnapshot(
                tuple(location_facts(loc, {} if loc.code in emptied else self.available[loc.code],
                                     used.get(loc.code, 0))
                      for loc in self.locations if loc.code not in excluded), taken_at=at)
        return snapshot

    def take(self, decision: Decision, at: datetime, timezone: str) -> None:
        day = at.astimezone(ZoneInfo(timezone)).date()
        used = self.used[day]
        for shipment in decision.shipments:
            used[shipment.location] = used.get(shipment.location, 0) + 1
            for sku, quantity in shipment.lines.items():
                self.available[shipment.location][sku] = self.available[shipment.location].get(sku, 0) - quantity
        limited = {s.location for s in decision.shipments if self.by_code[s.location].daily_capacity}
        if not limited:
            return
        for (on, excluded, emptied), snapshot in list(self.snapshots.items()):
            if on == day:
                self.snapshots[(on, excluded, emptied)] = snapshot.replacing({
                    code: location_facts(self.by_code[code], {} if code in emptied else self.available[code],
                                         used[code])
                    for code in limited if code in snapshot.by_code})


async def recent_orders(session: AsyncSession, tenant_id: uuid.UUID, since: datetime,
                        limit: int) -> list[OrderFacts]:
    """The latest ``limit`` orders placed since ``since``, oldest first, as routing saw them;
    a customer's order count is how many orders they had placed before."""
    previous = func.count().over(partition_by=Order.customer_email, order_by=(Order.placed_at, Order.id)) - 1
    numbered = (select(Order, previous.label("previous"))
                .where(Order.tenant_id == tenant_id).subquery())
    # The count runs over all the tenant's orders, so that it includes those before ``since``.
    rows = (await session.execute(
        select(numbered).where(numbered.c.placed_at >= since)
        .order_by(numbered.c.placed_at.desc(), numbered.c.id.desc()).limit(limit)
    )).all()
    ids = [row.id for row in rows]
    lines: dict[uuid.UUID, list[LineFacts]] = defaultdict(list)
    if ids:
        rows_of_lines = await session.execute(
            select(OrderLine.order_id, OrderLine.sku, OrderLine.quantity, OrderLine.category,
                   OrderLine.unit_price_minor)
            .where(OrderLine.tenant_id == tenant_id, OrderLine.order_id.in_(ids))
            .order_by(OrderLine.order_id, OrderLine.line_no))
        for order_id, sku, quantity, category, price in rows_of_lines:
            lines[order_id].append(LineFacts(sku, quantity, category, price))
    return [
        OrderFacts(
            lines=tuple(lines[row.id]), reference=row.number, channel=row.channel, currency=row.currency,
            total_minor=row.total_minor, delivery_mode=row.delivery_mode, country=row.ship_country,
            postcode=row.ship_postcode, latitude=row.ship_latitude, longitude=row.ship_longitude,
            pickup_location=row.pickup_location_code, customer_tags=frozenset(row.customer_tags or ()),
            customer_orders_count=row.previous if row.customer_email else 0, placed_at=row.placed_at,
        )
        for row in reversed(rows)
    ]
