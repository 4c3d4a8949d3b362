"""Routing orders: the rules in force at each order's time decide, stock is reserved with the
conditional update, and one fulfilment per shipping location is created, all in one
transaction with the order rows locked, so a second delivery of a message finds its orders
routed and does nothing. Orders captured together are routed together, sharing their reads.

Only what is still unallocated is routed: after a location rejects its fulfilment, the same
function routes those lines again without it.
"""

from __future__ import annotations

import json
import uuid
from zoneinfo import ZoneInfo

from sqlalchemy import ARRAY, Uuid, any_, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from core import bulk, clock, metering, webhooks
from core.auth import Principal
from core.db import Prepared, driver
from core.ids import uuid7
from core.outbox import enqueue
from core.problems import ProblemError
from inventory import locations as inventory_locations
from inventory import snapshot as inventory_snapshot
from inventory.ledger import Line, reserve
from inventory.schemas import LocationOut
from orders import lifecycle, queries, service_tasks, sourcing, wording
from orders.models import Fulfilment, FulfilmentLine, Order, OrderLine
from rules import routing
from rules import service as rules
from rules.facts import LineFacts, LocationFacts, Moment, OrderFacts, StockSnapshot
from tenants.service import timezone_of


def open_quantity(line: OrderLine) -> int:
    return line.quantity - line.qty_allocated - line.qty_cancelled


async def _orders_before(session: AsyncSession, order: Order) -> int:
    if order.customer_id is None:
        return 0
    return int(await session.scalar(select(func.count()).select_from(Order).where(
        Order.tenant_id == order.tenant_id, Order.customer_id == order.customer_id,
        Order.placed_at < order.placed_at)) or 0)


def facts_of(order: Order, lines: list[tuple[OrderLine, int]], orders_before: int) -> OrderFacts:
    return OrderFacts(
        lines=tuple(LineFacts(line.sku, quantity, line.category, line.unit_price_minor) for line, quantity in lines),
        reference=order.number, channel=order.channel, currency=order.currency, total_minor=order.total_minor,
        # Ship-to-store is a pickup the rules may source from anywhere.
        delivery_mode="ship" if order.delivery_mode == "ship" else "pickup",
        country=order.ship_country, postcode=order.ship_postcode, latitude=order.ship_latitude,
        longitude=order.ship_longitude, pickup_location=order.pickup_location_code,
        customer_tags=frozenset(order.customer_tags or ()), customer_orders_count=orders_before,
        placed_at=order.placed_at,
    )


async def route(session: AsyncSession, tenant_id: uuid.UUID, order_id: uuid.UUID, *, actor: str = "router") -> str:
    """Route what is open on the order, once; returns the order's status afterwards."""
    return (await route_many(session, tenant_id, [order_id], actor=actor)).get(order_id, "missing")


async def route_many(session: AsyncSession, tenant_id: uuid.UUID, order_ids: list[uuid.UUID], *,
                     actor: str = "router") -> dict[uuid.UUID, str]:
    """Route several orders in one transaction, oldest first, each as if alone but with the reads
    shared: the rules, the locations and one stock snapshot that each decision draws down for the
    next. All their stock is reserved in one statement at the end; when another transaction took
    some of it meanwhile, that raises InsufficientStock and nothing is kept (the caller routes
    them again on fresh figures). Returns each order's status afterwards."""
    # One routing pass at a time per company: a pass decides on a stock snapshot and reserves at
    # the end, so two at once would each find the other had taken the stock it chose, and both
    # would start again. Waiting for the other's commit is far cheaper.
    connection = await driver(session)
    await connection.execute(_TAKE_TURNS, str(tenant_id))
    # Read as plain rows, written back below in one statement: the pass changes only their
    # status, hold reason and routing, and nothing else in the transaction loads them.
    orders = [bulk.detached(Order, dict(row)) for row in await _LOCK_ORDERS.fetch(session, tenant=tenant_id,
                                                                                   ids=list(order_ids))]
    statuses = {order.id: order.status for order in orders}
    # Routed already (a second delivery), on hold, or cancelled: left alone.
    orders = sorted((o for o in orders if o.status in ("received", "backordered")), key=lambda o: o.placed_at)
    if not orders:
        return statuses
    lines_of: dict[uuid.UUID, list[OrderLine]] = {order.id: [] for order in orders}
    for row in await _LINES.fetch(session, tenant=tenant_id, ids=list(lines_of)):
        lines_of[row["order_id"]].append(bulk.detached(OrderLine, dict(row)))
    in_force = await rules.routing_in_force_at(session, tenant_id, [o.placed_at for o in orders] + [clock.now()])
    timezone = await timezone_of(session, tenant_id)
    locations = await inventory_locations.active(session, tenant_id)
    by_code = {loc.code: loc for loc in locations}
    stock = sourcing.Stock(locations, await inventory_snapshot.available_now(
        session, tenant_id, {line.sku for lines in lines_of.values() for line in lines if open_quantity(line) > 0}))
    reservations: list[Line] = []
    references: list[str] = []
    allocated: dict[OrderLine, int] = {}
    usage: list[metering.Fact] = []
    for order, (version, compiled) in zip(orders, in_force, strict=False):
        order_lines = lines_of[order.id]
        open_lines = [(line, open_quantity(line)) for line in order_lines if open_quantity(line) > 0]
        if not open_lines:
            await settle(session, order, actor=actor, lines=order_lines)
            statuses[order.id] = order.status
            continue
        if version is None:  # nothing was published yet when it was placed: today's rules decide
            version, compiled = in_force[-1]
        if version is None or compiled is None:
            await hold(session, order, "No routing rules were in force when the order was placed: publish a version "
                                       "under Rules, then release the order.", actor=actor)
            statuses[order.id] = order.status
            continue
        # Counting the customer's earlier orders costs a query: only when a rule asks for it.
        orders_before = await _orders_before(session, order) if "customer.orders_count" in compiled.fields else 0
        excluded = frozenset(order.excluded_locations or ())
        # A pickup store that rejected its part stays where the customer collects: it is there with
        # no stock, so that the rule's fallback (ship to store) can still send the goods to it.
        emptied = excluded & {order.pickup_location_code} if order.delivery_mode == "pickup" else frozenset()
        snapshot = await stock.snapshot(session, tenant_id, order.placed_at, timezone, excluded - emptied,
                                        frozenset(code for code in emptied if code))
        decision = routing.decide(compiled, facts_of(order, open_lines, orders_before), snapshot,
                                  Moment(order.placed_at, timezone))
        routed_before = order.routing_version is not None
        order.routing_version = version.number
        order.routing = {"version": version.number, **decision.to_dict()}
        if decision.outcome != "fulfil":
            why, missing, scope = why_waiting(open_lines, snapshot, decision)
            # The same in machine form, beside the trace: what is missing, counted where.
            order.routing["missing"] = [{"sku": sku, "units": units} for sku, units in missing.items()]
            order.routing["missing_where"] = scope
            rule = f"rule “{decision.rule}”" if decision.rule else "no rule gave a plan"
            if decision.outcome == "backorder":
                lifecycle.move_order(session, order, "backordered", actor=actor,
                                     reason=f"{why}; waiting for stock ({rule}, v{version.number}).")
            elif decision.rule:
                await hold(session, order, f"{why}. Rule “{decision.rule}” (v{version.number}) leaves it for "
                                           f"customer service to decide.", actor=actor)
            else:
                await hold(session, order, f"{why}. No routing rule gave a plan (v{version.number}): for customer "
                                           f"service to decide.", actor=actor)
        else:
            # Numbering goes on from the fulfilments of an earlier routing (before a rejection, say).
            earlier = list(await session.scalars(select(Fulfilment).where(
                Fulfilment.tenant_id == tenant_id, Fulfilment.order_id == order.id))) if routed_before else []
            created, taken, units = _allocate(session, order, open_lines, decision, actor=actor, locations=by_code,
                                              numbered=len(earlier))
            usage += _metered(order, created, timezone, first=not earlier)
            stock.take(decision, order.placed_at, timezone)
            reservations += taken
            references += [f"order {order.number}"] * len(taken)
            for line, count in units.items():  # written below in one statement, not one UPDATE per line
                set_committed_value(line, "qty_allocated", line.qty_allocated + count)
                allocated[line] = count
            where = ", ".join(f"{s.location}" + (f" → {s.ship_to_store}" if s.ship_to_store else "")
                              for s in decision.shipments)
            lifecycle.move_order(session, order, "routed", actor=actor,
                                 reason=f"{decision.reason} (v{version.number}): {where}", version=version.number,
                                 rule=decision.rule)
            if order.excluded_locations:  # routed again after a rejection: a pickup store's missing stock is dealt with
                await service_tasks.close_if_open(session, order, "stock_missing_at_pickup",
                                                  f"routed again: {where}", actor=actor)
            # A part may have shipped before a re-route.
            await settle(session, order, actor=actor, lines=order_lines, fulfilments=earlier + created)
        statuses[order.id] = order.status
    now = clock.now()
    await connection.execute(_ROUTED, tenant_id, [o.id for o in orders], [o.status for o in orders],
                             [o.hold_reason for o in orders], [o.routing_version for o in orders],
                             [None if o.routing is None else json.dumps(o.routing) for o in orders],
                             [now] * len(orders))
    # Reserving comes last, so the stock rows stay locked for as short a time as possible: what the
    # commit would write (fulfilments, timeline, webhook deliveries) is written first.
    await webhooks.stage(session)
    await bulk.write_deferred(session)
    await metering.record(session, tenant_id, usage)
    if allocated:
        await connection.execute(_ALLOCATE, tenant_id, [line.id for line in allocated], list(allocated.values()))
        await reserve(session, tenant_id, reservations, actor=actor, references=references,
                      reference=references[0] if len(set(references)) == 1 else f"{len(set(references))} orders")
    return statuses


# A pass waits for the one before it, but not for ever: past the timeout the actor fails and is
# retried with backoff, so a stuck pass can't hold every worker of the company's orders.
_TAKE_TURNS = ("SELECT set_config('lock_timeout', '15s', true), "
               "pg_advisory_xact_lock(hashtext('orders.route'), hashtext($1::text))")
_LOCK_ORDERS = Prepared(select(Order.__table__).where(Order.tenant_id == bindparam("tenant"),
                                                      Order.id == any_(bindparam("ids", type_=ARRAY(Uuid))))
                        .order_by(Order.id).with_for_update())
_LINES = Prepared(select(OrderLine.__table__).where(OrderLine.tenant_id == bindparam("tenant"),
                                                    OrderLine.order_id == any_(bindparam("ids", type_=ARRAY(Uuid))))
                  .order_by(OrderLine.line_no))
_ROUTED = """
    UPDATE orders o SET status = v.status, hold_reason = v.hold_reason, routing_version = v.routing_version,
                        routing = v.routing::jsonb, updated_at = v.updated_at
    FROM unnest($2::uuid[], $3::text[], $4::text[], $5::int[], $6::text[], $7::timestamptz[])
        AS v(id, status, hold_reason, routing_version, routing, updated_at)
    WHERE o.tenant_id = $1 AND o.id = v.id
"""
_ALLOCATE = """
    UPDATE order_lines l SET qty_allocated = l.qty_allocated + v.units
    FROM unnest($2::uuid[], $3::int[]) AS v(id, units)
    WHERE l.tenant_id = $1 AND l.id = v.id
"""


async def hold_unroutable(session: AsyncSession, tenant_id: uuid.UUID, order_id: uuid.UUID, *, actor: str) -> None:
    """Every routing attempt lost the stock it chose to another order: customer service decides."""
    order = await session.scalar(select(Order).where(Order.tenant_id == tenant_id, Order.id == order_id)
                                 .with_for_update())
    if order is not None and order.status in ("received", "backordered"):
        await hold(session, order, "Stock kept changing while routing: release the order to try again.", actor=actor)


async def hold(session: AsyncSession, order: Order, reason: str, *, actor: str) -> None:
    """Put the order on hold, with a task for customer service to decide."""
    lifecycle.move_order(session, order, "on_hold", actor=actor, reason=reason)
    await service_tasks.open_task(session, order, "order_on_hold", reason, actor=actor)


def why_waiting(open_lines: list[tuple[OrderLine, int]], snapshot: StockSnapshot,
                decision: routing.Decision) -> tuple[str, dict[str, int], str | None]:
    """Why routing found no plan, in plain words ("Not enough stock: 485 units of BAG-01
    missing"), with the units missing per SKU and where they were counted: in the whole network
    ("network"), at the locations the rules allow ("allowed"), or nothing is missing (None: the
    stock is there but no plan fits the rules)."""
    wanted: dict[str, int] = {}
    for line, quantity in open_lines:
        wanted[line.sku] = wanted.get(line.sku, 0) + quantity

    def short(locations: list[LocationFacts]) -> dict[str, int]:
        missing = {sku: units - sum(loc.available.get(sku, 0) for loc in locations) for sku, units in wanted.items()}
        return {sku: units for sku, units in sorted(missing.items()) if units > 0}

    missing = short(list(snapshot.locations))
    if missing:
        return f"Not enough stock: {wording.missing_units(missing)}", missing, "network"
    tried = [rule_trace for _, rule_trace in decision.trace.tried if rule_trace is not None]
    allowed = {code for rule_trace in tried for code, verdict, _ in rule_trace.considered if verdict == "ranked"}
    missing = short([loc for loc in snapshot.locations if loc.code in allowed])
    if missing:
        return (f"Not enough stock where the routing rules allow shipping from: {wording.missing_units(missing)} "
                f"(the rest is at locations the rules leave out)"), missing, "allowed"
    if not tried:
        return "No routing rule applies to this order", {}, None
    steps = [step for rule_trace in tried for step in rule_trace.steps if not step.startswith("fallback:")]
    return "The stock is there, but no plan fits the routing rules" + (f": {steps[-1]}" if steps else ""), {}, None


def _allocate(session: AsyncSession, order: Order, open_lines: list[tuple[OrderLine, int]],
              decision: routing.Decision, *, actor: str, locations: dict[str, LocationOut],
              numbered: int) -> tuple[list[Fulfilment], list[Line], dict[OrderLine, int]]:
    """One fulfilment per shipment of the decision, the stock it has to reserve and the units
    it allocates per line."""
    count = numbered
    created: list[Fulfilment] = []
    reservations: list[Line] = []
    allocated: dict[OrderLine, int] = {}
    for shipment in decision.shipments:
        location = locations[shipment.location]
        wanted = dict(shipment.lines)
        count += 1
        # Written with the next statement, all of the pass's fulfilments (and their lines) in one
        # INSERT each; nothing changes them again in this transaction.
        row = {"tenant_id": order.tenant_id, "id": uuid7(), "order_id": order.id, "number": f"{order.number}-{count}",
               "location_id": location.id, "location_code": location.code,
               "kind": "pickup" if shipment.pickup else ("transfer" if shipment.ship_to_store else "ship"),
               "ship_to_store": shipment.ship_to_store, "status": "created", "reason": None,
               "tracking_number": None, "pickup_expires_at": None}
        bulk.defer(session, Fulfilment, row)
        fulfilment = bulk.detached(Fulfilment, row)
        created.append(fulfilment)
        units = 0
        for line, _ in open_lines:
            take = min(wanted.get(line.sku, 0), open_quantity(line) - allocated.get(line, 0))
            if take <= 0 or line.product_id is None:
                continue
            wanted[line.sku] -= take
            allocated[line] = allocated.get(line, 0) + take
            units += take
            bulk.defer(session, FulfilmentLine, {
                "tenant_id": order.tenant_id, "id": uuid7(), "fulfilment_id": fulfilment.id, "order_line_id": line.id,
                "sku": line.sku, "product_id": line.product_id, "quantity": take})
            reservations.append(Line(line.product_id, location.id, take))
        lifecycle.record(session, order, "fulfilment.created", actor=actor, fulfilment=fulfilment,
                         to_status="created", location=location.code, reason=_units(units) + f" from {location.code}")
        lifecycle.announce(session, order, "fulfilment.created", fulfilment=fulfilment)
    return created, reservations, allocated


def _metered(order: Order, created: list[Fulfilment], timezone: str, *, first: bool) -> list[metering.Fact]:
    """What billing counts of a routing: the order, the first time it gets fulfilments, and each
    location sent work, once a day of the company's calendar; at the fulfilments' own time, so
    that a re-count from the fulfilments finds the same (see ``orders.usage``)."""
    if not created:
        return []
    zone = ZoneInfo(timezone)
    facts = [metering.location_active(f.location_code, f.created_at.astimezone(zone).date().isoformat(), f.created_at)
             for f in created]
    if first:
        facts.append(metering.order_routed(order.id, created[0].created_at))
    return facts


def _units(count: int) -> str:
    return f"{count} unit{'s' if count != 1 else ''}"


async def settle(session: AsyncSession, order: Order, *, actor: str, lines: list[OrderLine] | None = None,
                 fulfilments: list[Fulfilment] | None = None) -> None:
    """Bring the order's status in line with its lines and fulfilments (all of them, read here
    unless the caller holds them)."""
    if lines is None:
        lines = list(await session.scalars(select(OrderLine).where(
            OrderLine.tenant_id == order.tenant_id, OrderLine.order_id == order.id)))
    if fulfilments is None:
        fulfilments = list(await session.scalars(select(Fulfilment).where(
            Fulfilment.tenant_id == order.tenant_id, Fulfilment.order_id == order.id)))
    target = derived_status(order, lines, fulfilments)
    if target is not None and target != order.status:
        lifecycle.move_order(session, order, target, actor=actor)


def derived_status(order: Order, lines: list[OrderLine], fulfilments: list[Fulfilment]) -> str | None:
    if all(line.qty_cancelled >= line.quantity for line in lines):
        return "cancelled"
    live = [f for f in fulfilments if f.status not in ("rejected", "cancelled", "expired")]
    unallocated = any(open_quantity(line) > 0 for line in lines)
    if unallocated:
        return None  # routing decides (received, backordered, on hold)
    if not live:
        return None
    states = {f.status for f in live}
    if order.delivery_mode != "ship":
        pickups = [f for f in live if f.kind in ("pickup", "transfer")]
        if pickups and all(f.status == "collected" for f in pickups):
            return "collected"
        if pickups and all(f.status in ("ready_for_pickup", "collected") for f in pickups):
            return "ready_for_pickup"
        return "routed"
    if states <= {"delivered"}:
        return "delivered"
    if states <= {"shipped", "delivered"}:
        return "shipped"
    if states & {"shipped", "delivered"}:
        return "partially_shipped"
    return "routed"


async def release(db: AsyncSession, principal: Principal, order_id: uuid.UUID) -> Order:
    """Send an order on hold (or backordered) through routing again."""
    from orders.tasks import route_order

    order = await queries.get_order(db, principal, order_id)
    await db.refresh(order, with_for_update=True)
    if order.status not in ("on_hold", "backordered"):
        raise ProblemError(409, "Not on hold", f"Order {order.number} is {order.status.replace('_', ' ')}.")
    lifecycle.move_order(db, order, "received", actor=principal.label, reason="released for routing")
    await service_tasks.close_if_open(db, order, "order_on_hold", f"released for routing by {principal.label}",
                                      actor=principal.label)
    enqueue(db, route_order, tenant_id=order.tenant_id, order_id=str(order.id))
    return order
