"""Simulation of routing rules: the draft (or any version) beside the version in force, on a
sample order or on a replay of the company's recent orders. It reads and never writes: nothing
is reserved. ``LAB`` is what the rules console is given to do it (see ``rules.lab``).

A replay judges each order against the stock it met, rebuilt from the inventory ledger
(current figures minus every later change), at the moment it was placed, and counts daily
capacity as the replayed orders use it up.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import anyio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from core.auth import Principal
from inventory import catalog, locations
from inventory.schemas import LocationOut
from inventory.snapshot import Change, StockKey, available_now, changes_since, location_facts
from orders import sourcing
from orders.models import Order, OrderLine
from orders.promotion_hook import PricingLine, PricingRequest
from rules import routing, service
from rules.facts import LineFacts, Moment, OrderFacts, StockSnapshot
from rules.lab import BuilderChoices, LocationChoice, RoutingLab
from rules.routing import CompiledRouting, Decision
from rules.schemas import SampleOrder


@dataclass
class Candidate:
    """One side of a comparison: the draft, or a published version."""

    label: str
    number: int | None
    routing: CompiledRouting | None  # None: nothing in force


@dataclass
class Totals:
    orders: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    shipments_per_location: dict[str, int] = field(default_factory=dict)
    shipments_per_order: float = 0.0
    split_rate: float = 0.0
    mean_distance_km: float | None = None
    shipping_cost_minor: int = 0

    @classmethod
    def of(cls, decisions: list[Decision | None]) -> Totals:
        made = [d for d in decisions if d is not None]
        fulfilled = [d for d in made if d.outcome == "fulfil"]
        distances = [s.distance_km for d in fulfilled for s in d.shipments if s.distance_km is not None]
        per_location = Counter(s.location for d in fulfilled for s in d.shipments)
        return cls(
            orders=len(made), outcomes=dict(Counter(d.outcome for d in made)),
            shipments_per_location=dict(per_location.most_common()),
            shipments_per_order=round(sum(len(d.shipments) for d in fulfilled) / len(fulfilled), 2)
            if fulfilled else 0.0,
            split_rate=round(sum(1 for d in fulfilled if len(d.shipments) > 1) / len(fulfilled), 3)
            if fulfilled else 0.0,
            mean_distance_km=round(statistics.fmean(distances), 1) if distances else None,
            shipping_cost_minor=sum(s.shipping_cost_minor or 0 for d in fulfilled for s in d.shipments),
        )


def summary(decision: Decision | None) -> str:
    """A decision in a few words, for the diff table."""
    if decision is None:
        return "no version in force"
    if decision.outcome != "fulfil":
        return decision.outcome
    parts = []
    for s in decision.shipments:
        how = "pickup" if s.pickup else (f"→ {s.ship_to_store}" if s.ship_to_store else "ship")
        parts.append(f"{s.location} ({how}, {sum(s.lines.values())} u)")
    return " + ".join(parts)


async def candidates(session: AsyncSession, principal: Principal, at: datetime,
                     number: int | None = None) -> tuple[Candidate, Candidate]:
    """The draft (or version ``number``), validated, and the version in force at ``at``."""
    rule_set = await service.routing_set(session, principal)
    if number is None:
        document, label = rule_set.draft, "Draft"
    else:
        document, label = (await service.version(session, rule_set, number)).document, f"v{number}"
    problems = routing.validate_document(document)
    if problems:
        raise service.problems_error(problems)
    in_force, compiled = await service.routing_in_force(session, principal.tenant_id, at)
    current = Candidate(f"v{in_force.number} (in force)" if in_force else "In force: none",
                        in_force.number if in_force else None, compiled)
    return Candidate(label, number, routing.compile_document(document)), current


async def simulate(session: AsyncSession, principal: Principal, order: OrderFacts, *,
                   number: int | None = None) -> dict[str, Any]:
    """One order under the candidate and under the version in force, with both traces."""
    at = order.placed_at or clock.now()
    candidate, current = await candidates(session, principal, at, number)
    snapshot = await sourcing.snapshot_now(session, principal.tenant_id, {line.sku for line in order.lines}, at=at,
                                           timezone=principal.timezone)
    moment = Moment(at, principal.timezone)
    results = []
    for side in (candidate, current):
        decision = routing.decide(side.routing, order, snapshot, moment) if side.routing else None
        results.append({"label": side.label, "version": side.number, "summary": summary(decision),
                        "decision": decision.to_dict() if decision else None})
    return {"at": at.isoformat(), "candidate": results[0], "in_force": results[1]}


class _Replayer:
    """Walks orders oldest first, moving the stock forward through the ledger as it goes.

    Each side (candidate, version in force) has its own snapshot: the stock dicts are shared and
    moved in place, and only the locations whose daily capacity a decision used get new facts."""

    def __init__(self, active: list[LocationOut], stock: dict[StockKey, int], changes: list[Change]) -> None:
        self.raw: dict[str, dict[str, int]] = {loc.code: {} for loc in active}
        self.available: dict[str, dict[str, int]] = {loc.code: {} for loc in active}
        for (code, sku), units in stock.items():
            if code in self.raw:
                self.raw[code][sku] = units
                self.available[code][sku] = max(0, units)
        self.changes = changes
        self.next_change = 0
        self.fresh = StockSnapshot(tuple(location_facts(loc, self.available[loc.code]) for loc in active))

    def advance_to(self, at: datetime) -> None:
        while self.next_change < len(self.changes) and self.changes[self.next_change].at <= at:
            change = self.changes[self.next_change]
            code, sku = change.key
            if code in self.raw:
                units = self.raw[code][sku] = self.raw[code].get(sku, 0) + change.available_delta
                self.available[code][sku] = max(0, units)
            self.next_change += 1


def _use_capacity(snapshot: StockSnapshot, decision: Decision) -> StockSnapshot:
    changed = {}
    for shipment in decision.shipments:
        facts = snapshot.by_code[shipment.location]
        if facts.capacity_left is not None:
            changed[facts.code] = dataclasses.replace(facts, capacity_left=max(0, facts.capacity_left - 1))
    return snapshot.replacing(changed) if changed else snapshot


def _replay(orders: list[OrderFacts], replayer: _Replayer, sides: tuple[Candidate, Candidate],
            timezone: str, with_traces: int) -> dict[str, Any]:
    decisions: list[list[Decision | None]] = [[], []]
    day = None
    rows: list[dict[str, Any]] = []
    snapshots = [replayer.fresh, replayer.fresh]
    for order in orders:
        at = order.placed_at or clock.now()
        replayer.advance_to(at)
        moment = Moment(at, timezone)
        if moment.date != day:  # a new day in the company's time zone: capacity is whole again
            day, snapshots = moment.date, [replayer.fresh, replayer.fresh]
        pair: list[Decision | None] = []
        for i, side in enumerate(sides):
            if side.routing is None:
                pair.append(None)
                continue
            decision = routing.decide(side.routing, order, snapshots[i], moment)
            snapshots[i] = _use_capacity(snapshots[i], decision)
            pair.append(decision)
            decisions[i].append(decision)
        changed = summary(pair[0]) != summary(pair[1])
        rows.append({"order": order.reference, "placed_at": at.isoformat(), "changed": changed,
                     "candidate": summary(pair[0]), "in_force": summary(pair[1]), "_pair": pair})
    rows.sort(key=lambda r: not r["changed"])  # stable: changed orders first, each group oldest first
    for position, row in enumerate(rows):
        pair = row.pop("_pair")
        if position < with_traces:
            row["candidate_trace"] = pair[0].trace.to_dict() if pair[0] else None
            row["in_force_trace"] = pair[1].trace.to_dict() if pair[1] else None
    return {
        "orders": len(orders),
        "changed": sum(1 for r in rows if r["changed"]),
        "candidate": {"label": sides[0].label, "version": sides[0].number,
                      "totals": dataclasses.asdict(Totals.of(decisions[0]))},
        "in_force": {"label": sides[1].label, "version": sides[1].number,
                     "totals": dataclasses.asdict(Totals.of(decisions[1]))},
        "rows": rows,
    }


async def replay(session: AsyncSession, principal: Principal, *, days: int = 7, limit: int = 1000,
                 number: int | None = None, with_traces: int = 50) -> dict[str, Any]:
    """The tenant's orders of the last ``days`` (at most ``limit``, the newest) under the
    candidate and the version in force now, with totals for each and a per-order diff."""
    now = clock.now()
    candidate, current = await candidates(session, principal, now, number)
    orders = await sourcing.recent_orders(session, principal.tenant_id, now - timedelta(days=days), limit)
    skus = {line.sku for order in orders for line in order.lines}
    active = await locations.active(session, principal.tenant_id)
    stock = await available_now(session, principal.tenant_id, skus)
    start = orders[0].placed_at if orders and orders[0].placed_at else now
    changes = await changes_since(session, principal.tenant_id, skus, start)
    for change in changes:  # back to the stock as it stood when the first order came in
        stock[change.key] = stock.get(change.key, 0) - change.available_delta
    replayer = _Replayer(active, stock, changes)
    started = time.perf_counter()
    result = await anyio.to_thread.run_sync(_replay, orders, replayer, (candidate, current), principal.timezone,
                                            with_traces)
    result.update(days=days, limit=limit, stock_basis="ledger",
                  seconds=round(time.perf_counter() - started, 3))
    return result


async def sample_facts(session: AsyncSession, principal: Principal, sample: SampleOrder) -> OrderFacts:
    """A sample order with categories and prices filled in from the catalog."""
    known = await catalog.products_by_sku(session, principal.tenant_id, {line.sku for line in sample.lines})
    lines = []
    for line in sample.lines:
        product = known.get(line.sku)
        lines.append(LineFacts(
            sku=line.sku, quantity=line.quantity,
            category=line.category if line.category is not None else (product.category if product else None),
            unit_price_minor=line.unit_price_minor if line.unit_price_minor is not None
            else (product.price_minor if product else 0)))
    total = sample.total_minor if sample.total_minor is not None else sum(
        line.unit_price_minor * line.quantity for line in lines)
    return OrderFacts(
        lines=tuple(lines), reference="sample", channel=sample.channel, currency=sample.currency or principal.currency,
        total_minor=total, delivery_mode=sample.delivery_mode, country=(sample.country or "").upper() or None,
        postcode=sample.postcode, latitude=sample.latitude, longitude=sample.longitude,
        pickup_location=sample.pickup_location, customer_tags=frozenset(sample.customer_tags),
        customer_orders_count=sample.customer_orders_count, placed_at=sample.at,
    )


class OrdersRoutingLab(RoutingLab):
    """The rules console's ``RoutingLab``: the data it reads is inventory's and orders'."""

    async def choices(self, session: AsyncSession, tenant_id: uuid.UUID) -> BuilderChoices:
        return BuilderChoices(
            [LocationChoice(loc.code, loc.name, loc.click_and_collect)
             for loc in await locations.active(session, tenant_id)],
            await catalog.categories(session, tenant_id))

    async def simulate(self, session: AsyncSession, principal: Principal, sample: SampleOrder, *,
                       version: int | None = None) -> dict[str, Any]:
        return await simulate(session, principal, await sample_facts(session, principal, sample), number=version)

    async def replay(self, session: AsyncSession, principal: Principal, *, days: int, limit: int,
                     version: int | None = None, traces: int = 20) -> dict[str, Any]:
        return await replay(session, principal, days=days, limit=limit, number=version, with_traces=traces)


LAB = OrdersRoutingLab()


async def recent_pricing_requests(session: AsyncSession, tenant_id: uuid.UUID, since: datetime,
                                  limit: int) -> list[PricingRequest]:
    """The latest ``limit`` orders placed since ``since``, oldest first, as promotions are asked
    to price them (for a replay of promotions: read only). The figures are the stored ones, that
    is with any promotions' discounts already added: the caller takes its own back out. Orders
    without a customer record (none are captured so) are left out."""
    rows = list((await session.execute(
        select(Order.id, Order.number, Order.customer_id, Order.channel, Order.currency, Order.shipping_fee_minor,
               Order.discount_minor, Order.delivery_mode, Order.ship_country, Order.ship_postcode,
               Order.pickup_location_code, Order.customer_tags, Order.placed_at)
        .where(Order.tenant_id == tenant_id, Order.placed_at >= since, Order.customer_id.is_not(None))
        .order_by(Order.placed_at.desc(), Order.id.desc()).limit(limit))).all())
    lines: dict[uuid.UUID, list[PricingLine]] = {row.id: [] for row in rows}
    if rows:
        for line in await session.execute(
                select(OrderLine.order_id, OrderLine.line_no, OrderLine.sku, OrderLine.category, OrderLine.quantity,
                       OrderLine.unit_price_minor, OrderLine.discount_minor)
                .where(OrderLine.tenant_id == tenant_id, OrderLine.order_id.in_(list(lines)))
                .order_by(OrderLine.order_id, OrderLine.line_no)):
            lines[line.order_id].append(PricingLine(line.line_no, line.sku, line.category, line.quantity,
                                                    line.unit_price_minor, line.discount_minor))
    return [PricingRequest(
        order_id=row.id, order_number=row.number, customer_id=row.customer_id, channel=row.channel,
        currency=row.currency, lines=tuple(lines[row.id]), shipping_fee_minor=row.shipping_fee_minor,
        discount_minor=row.discount_minor, coupon_codes=(), delivery_mode=row.delivery_mode,
        country=row.ship_country, postcode=row.ship_postcode, pickup_location=row.pickup_location_code,
        customer_tags=tuple(row.customer_tags or ()), placed_at=row.placed_at) for row in reversed(rows)]
