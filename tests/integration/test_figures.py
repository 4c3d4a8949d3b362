"""The dashboard's figures: the day rows a refresh keeps equal a re-count made from the orders
after random work (captures routed by the worker, shipments, pickups, rejections, cancellations
whole and partial, refunds, goodwill and returns, over two local days, channels and rules, in
two companies); a refresh recomputes only the days that changed, a new time zone rebuilds every
day, and another company's rows are never touched. Today's figures read live equal what a
refresh stores; hours follow the company's clock across a change of clocks; what waits now
(late fulfilments, pickups, holds) is counted against each location's promise."""

from __future__ import annotations

import random
import uuid
from bisect import bisect_right
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from httpx import AsyncClient
from sqlalchemy import select
from test_orders import (
    act_ok,
    cancel,
    capture,
    document,
    get_order,
    network,
    order_body,
    publish_rules,
    rule,
)
from test_refund_ledger import refund
from test_returns import RETURNS, accept_returns, opened

from core import clock
from factories import bearer, create_tenant, run_outbox_inline

PARIS = "Europe/Paris"
NEW_YORK = "America/New_York"


def leaf(field: str, op: str, value: Any) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


def rules_for_web_and_stores(name: str) -> dict[str, Any]:
    """Web and store orders split or wait for stock under ``name``; the others match no rule
    and go on hold."""
    web_and_stores = rule("ws", name, types=("warehouse", "store"), fallback=("split", "backorder"),
                          max_shipments=2)
    web_and_stores["when"] = {"any": [leaf("order.channel", "eq", "web"), leaf("order.channel", "eq", "store")]}
    return document(web_and_stores, otherwise="hold")


def at(moment: datetime) -> str:
    return moment.isoformat()


def start_of_test_day() -> datetime:
    """09:00 UTC three days ahead (10:00 or 11:00 in Paris): the orders of the day before are
    placed after the rules were published, and 30 hours back is another local day."""
    ahead = datetime.now(UTC).date() + timedelta(days=3)
    return datetime.combine(ahead, time(9), UTC)


# --- the re-count, in Python, from the rows the orders are made of ---------------------------


async def recount(tenant_id: uuid.UUID, tz: str) -> tuple[dict[tuple[Any, ...], tuple[int, ...]],
                                                         dict[tuple[Any, ...], tuple[Any, ...]]]:
    """What ``order_days`` and ``location_days`` must hold, counted one order at a time."""
    from core.db import get_database
    from orders.figures import BUCKETS
    from orders.models import Fulfilment, Order, OrderEvent, OrderLine, Refund

    zone = ZoneInfo(tz)
    async with get_database().transaction(tenant_id=tenant_id) as session:
        orders = list(await session.scalars(select(Order).where(Order.tenant_id == tenant_id)))
        lines = list(await session.scalars(select(OrderLine).where(OrderLine.tenant_id == tenant_id)))
        fulfilments = list(await session.scalars(select(Fulfilment).where(Fulfilment.tenant_id == tenant_id)))
        refunds = list(await session.scalars(select(Refund).where(Refund.tenant_id == tenant_id)))
        events = list(await session.scalars(select(OrderEvent).where(OrderEvent.tenant_id == tenant_id)))
    lines_of: dict[uuid.UUID, list[OrderLine]] = defaultdict(list)
    for line in lines:
        lines_of[line.order_id].append(line)
    fulfilments_of: dict[uuid.UUID, list[Fulfilment]] = defaultdict(list)
    for fulfilment in fulfilments:
        fulfilments_of[fulfilment.order_id].append(fulfilment)
    refunds_of: dict[uuid.UUID, list[Refund]] = defaultdict(list)
    for made in refunds:
        if made.status not in ("failed", "abandoned"):
            refunds_of[made.order_id].append(made)
    went_to: dict[uuid.UUID, set[str | None]] = defaultdict(set)
    for event in events:
        went_to[event.order_id].add(event.to_status)

    days: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0] * 13)
    places: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [0, 0, 0, [0] * len(BUCKETS)])
    for order in orders:
        day = order.placed_at.astimezone(zone).date()
        mine = lines_of[order.id]
        if order.status == "cancelled":
            cancelled = order.total_minor
        else:
            cancelled = sum((line.unit_price_minor * line.quantity - line.discount_minor - line.order_discount_minor)
                            * line.qty_cancelled // line.quantity for line in mine)
        given = refunds_of[order.id]
        live = [f for f in fulfilments_of[order.id] if f.status not in ("rejected", "cancelled")]
        figures = (1, sum(line.quantity for line in mine), order.total_minor, order.discount_minor,
                   int(order.status == "cancelled"), cancelled,
                   sum(r.amount_minor for r in given if r.source != "goodwill"),
                   sum(r.amount_minor for r in given if r.source == "cancellation"),
                   sum(r.amount_minor for r in given if r.source == "goodwill"),
                   sum(line.qty_returned for line in mine), int(len(live) >= 2),
                   int("backordered" in went_to[order.id]), int("on_hold" in went_to[order.id]))
        key = (day, order.channel, ((order.routing or {}).get("rule") or "")[:200])
        days[key] = [a + b for a, b in zip(days[key], figures, strict=True)]
        for fulfilment in fulfilments_of[order.id]:
            place = places[(day, fulfilment.location_code)]
            place[0] += 1
            place[1] += fulfilment.status == "rejected"
            done_at = fulfilment.shipped_at if fulfilment.kind == "ship" else fulfilment.ready_at
            if done_at is not None:
                place[2] += 1
                minutes = max((done_at - order.placed_at).total_seconds() / 60, 0)
                place[3][bisect_right(BUCKETS[:-1], minutes)] += 1
    return ({key: tuple(values) for key, values in days.items()},
            {key: (a, b, c, tuple(hist)) for key, (a, b, c, hist) in places.items()})


async def stored(tenant_id: uuid.UUID, *, with_marks: bool = False) -> tuple[dict[Any, Any], dict[Any, Any]]:
    """The company's day rows as kept (with their ids and refresh times when ``with_marks``)."""
    from core.db import get_database
    from orders.models import LocationDay, OrderDay

    async with get_database().transaction(tenant_id=tenant_id) as session:
        order_days = list(await session.scalars(select(OrderDay).where(OrderDay.tenant_id == tenant_id)))
        location_days = list(await session.scalars(select(LocationDay).where(LocationDay.tenant_id == tenant_id)))
    days = {(r.day, r.channel, r.rule): (
        r.orders, r.units, r.gross_minor, r.discount_minor, r.cancelled_orders, r.cancelled_minor, r.refunds_minor,
        r.cancellation_refunds_minor, r.goodwill_minor, r.returned_units, r.split_orders, r.backordered_orders,
        r.held_orders) + ((r.id, r.refreshed_at) if with_marks else ()) for r in order_days}
    places = {(r.day, r.location_code): (r.fulfilments, r.rejected, r.done, tuple(r.done_hist))
              + ((r.id, r.refreshed_at) if with_marks else ()) for r in location_days}
    return days, places


async def ready_at(tenant_id: uuid.UUID, order_id: str) -> list[datetime | None]:
    from core.db import get_database
    from orders.models import Fulfilment

    async with get_database().transaction(tenant_id=tenant_id) as session:
        return list(await session.scalars(select(Fulfilment.ready_at).where(
            Fulfilment.tenant_id == tenant_id, Fulfilment.order_id == uuid.UUID(order_id))))


async def refresh(tenant_id: uuid.UUID, tz: str) -> int:
    from core.db import get_database
    from orders import figures

    async with get_database().transaction(tenant_id=tenant_id) as session:
        return await figures.refresh(session, tenant_id, tz)


async def assert_rows_equal_a_recount(tenant_id: uuid.UUID, tz: str) -> tuple[dict[Any, Any], dict[Any, Any]]:
    expected_days, expected_places = await recount(tenant_id, tz)
    days, places = await stored(tenant_id)
    assert days == expected_days
    assert places == expected_places
    return days, places


# --- the work ---------------------------------------------------------------------------------------


class Shop:
    """A company's network, rules and API key, and the orders placed through its API."""

    def __init__(self, client: AsyncClient, tenant: Any, codes: dict[str, str]) -> None:
        self.client, self.tenant, self.c = client, tenant, codes
        self.key = tenant.api_key

    async def place(self, *lines: tuple[str, int, int], placed_at: datetime, channel: str = "web",
                    pickup: bool = False, line_discount: int = 0, order_discount: int = 0,
                    shipping: int = 0) -> dict[str, Any]:
        body = order_body(*[(self.c[sku], q, p) for sku, q, p in lines], channel=channel,
                          pickup=self.c["store"] if pickup else None, shipping=shipping, placed_at=at(placed_at))
        body["lines"][0]["discount_minor"] = line_discount
        body["discount_minor"] = order_discount
        body["total_minor"] -= line_discount + order_discount
        body["payment"]["authorized_minor"] = body["total_minor"]
        return await capture(self.client, self.key, body)

    async def route(self) -> None:
        await run_outbox_inline(self.tenant.tenant_id)

    async def order(self, order_id: str) -> dict[str, Any]:
        return await get_order(self.client, self.key, order_id)

    async def open_fulfilments(self, order_id: str) -> list[dict[str, Any]]:
        return [f for f in (await self.order(order_id))["fulfilments"]
                if f["status"] in ("created", "accepted", "picking", "packed")]

    async def ship(self, order_id: str, *, first_only: bool = False) -> None:
        for fulfilment in (await self.open_fulfilments(order_id))[:1 if first_only else None]:
            await act_ok(self.client, self.key, fulfilment["id"], *_steps_from(fulfilment["status"]), "ship")

    async def make_ready(self, order_id: str, *, collect: bool = False) -> None:
        """Ready at the pickup store (a transfer is shipped there first), and collected."""
        for fulfilment in await self.open_fulfilments(order_id):
            travel = ("ship",) if fulfilment["kind"] == "transfer" else ()
            await act_ok(self.client, self.key, fulfilment["id"], *_steps_from(fulfilment["status"]), *travel,
                         "ready", *(("collect",) if collect else ()))

    async def reject(self, order_id: str) -> None:
        for fulfilment in await self.open_fulfilments(order_id):
            await act_ok(self.client, self.key, fulfilment["id"], "reject", reason="Box crushed")
        await self.route()

    async def cancel(self, order_id: str, **body: Any) -> None:
        response = await cancel(self.client, self.key, order_id, reason="Customer asked", **body)
        assert response.status_code == 200, response.text

    async def goodwill(self, order_id: str, amount: int) -> None:
        response = await refund(self.client, self.key, order_id, amount_minor=amount, reason="Parcel was late")
        assert response.status_code == 201, response.text

    async def give_back(self, order_id: str, line_no: int, quantity: int) -> None:
        made = await opened(self.client, self.key, order_id, (line_no, quantity), method="post", location=self.c["wh"])
        received = await self.client.post(f"{RETURNS}/{made['id']}/receive", json={"location": self.c["wh"]},
                                          headers=bearer(self.key))
        assert received.status_code == 200, received.text
        inspected = await self.client.post(f"{RETURNS}/{made['id']}/inspect", headers=bearer(self.key), json={
            "lines": [{"line_no": line_no, "condition": "resellable"}]})
        assert inspected.status_code == 200, inspected.text


def _steps_from(status: str) -> tuple[str, ...]:
    steps = ("accept", "pick", "pack")
    return steps[{"created": 0, "accepted": 1, "picking": 2, "packed": 3}[status]:]


async def shop(client: AsyncClient, tz: str, rule_name: str = "Web and stores") -> Shop:
    tenant = await create_tenant(timezone=tz)
    codes = await network(client, tenant.api_key, stock={"sku": {"wh": 60, "wh2": 40, "store": 20},
                                                         "sku2": {"wh": 3, "wh2": 3}})
    await accept_returns(client, tenant.api_key, codes["wh"])
    await publish_rules(client, tenant.api_key, rules_for_web_and_stores(rule_name))
    return Shop(client, tenant, codes)


async def random_work(s: Shop, rng: random.Random, now: datetime, count: int) -> None:
    """``count`` orders of random channels, lines and times over the last 30 hours, routed by
    the worker, then each given a random turn of its life."""
    placed = []
    for _ in range(count):
        pickup = rng.random() < 0.25
        lines = [("sku", rng.randint(1, 3), rng.choice((1999, 2500)))]
        if rng.random() < 0.3:
            lines.append(("sku2", 1, 4000))
        placed.append(await s.place(*lines, placed_at=now - timedelta(minutes=rng.randint(5, 30 * 60)),
                                    channel=rng.choice(("web", "web", "store", "marketplace")), pickup=pickup,
                                    line_discount=rng.choice((0, 0, 150)), shipping=rng.choice((0, 490))))
    await s.route()
    for order in placed:
        current = await s.order(order["id"])
        pickup = current["delivery_mode"] == "pickup"
        turn = rng.choice(("nothing", "ship", "ship", "cancel", "cancel_part", "reject", "goodwill"))
        if turn == "nothing" or current["status"] not in ("routed", "received", "on_hold", "backordered"):
            continue
        if turn == "ship" and current["fulfilments"]:
            await (s.make_ready(order["id"], collect=rng.random() < 0.5) if pickup else s.ship(order["id"]))
        elif turn == "cancel":
            await s.cancel(order["id"])
        elif turn == "cancel_part" and current["lines"][0]["quantity"] > 1 and current["status"] == "routed":
            await s.cancel(order["id"], lines=[{"line_no": 1, "quantity": 1}])
        elif turn == "reject" and current["fulfilments"]:
            await s.reject(order["id"])
        elif turn == "goodwill" and current["fulfilments"] and not pickup:
            await s.ship(order["id"])
            if (await s.order(order["id"]))["captured_minor"] > 300:
                await s.goodwill(order["id"], 300)


async def test_day_rows_equal_a_recount_of_the_orders_after_random_work(client) -> None:
    t1 = start_of_test_day()
    a = await shop(client, PARIS, "Web and stores")
    b = await shop(client, NEW_YORK, "Americas")

    with clock.frozen_at(t1):
        # Chosen turns, so that every figure has something to count ...
        yesterday = await a.place(("sku", 2, 2500), placed_at=t1 - timedelta(hours=30))
        discounted = await a.place(("sku", 3, 2500), ("sku2", 1, 4000), placed_at=t1 - timedelta(hours=25),
                                   channel="store", line_discount=500, order_discount=300, shipping=490)
        split = await a.place(("sku2", 5, 4000), placed_at=t1 - timedelta(hours=4))
        backordered = await a.place(("sku2", 4, 4000), placed_at=t1 - timedelta(minutes=50))
        held = await a.place(("sku", 1, 2500), placed_at=t1 - timedelta(hours=3), channel="marketplace")
        collected = await a.place(("sku", 1, 2500), placed_at=t1 - timedelta(hours=2), pickup=True)
        waiting = await a.place(("sku", 2, 2500), placed_at=t1 - timedelta(hours=26), pickup=True)
        rejected = await a.place(("sku", 1, 2500), placed_at=t1 - timedelta(minutes=20))
        returned = await a.place(("sku", 4, 2500), placed_at=t1 - timedelta(hours=28))
        await a.route()
        await a.ship(yesterday["id"])
        await a.cancel(discounted["id"], lines=[{"line_no": 1, "quantity": 1}])
        await a.ship(split["id"], first_only=True)
        await a.cancel(split["id"])  # what is left after the first parcel: refunded as a cancellation
        await a.make_ready(collected["id"], collect=True)
        await a.make_ready(waiting["id"])
        await a.reject(rejected["id"])
        await a.cancel(rejected["id"])
        await a.ship(returned["id"])
        await a.goodwill(returned["id"], 700)
        await a.give_back(returned["id"], 1, 1)
        # ... then random work, in both companies.
        await random_work(a, random.Random(20), t1, 14)
        await random_work(b, random.Random(21), t1, 6)
        assert (await a.order(backordered["id"]))["status"] == "backordered"
        assert (await a.order(held["id"]))["status"] == "on_hold"
        assert len((await a.order(split["id"]))["fulfilments"]) == 2

    with clock.frozen_at(t1 + timedelta(minutes=10)):
        assert await refresh(b.tenant.tenant_id, NEW_YORK) >= 2
        b_rows = await stored(b.tenant.tenant_id, with_marks=True)
        # The first refresh builds every day, from the day before the first order to the day after the last.
        assert await refresh(a.tenant.tenant_id, PARIS) == 4
    days, places = await assert_rows_equal_a_recount(a.tenant.tenant_id, PARIS)
    today, day_before = t1.astimezone(ZoneInfo(PARIS)).date(), t1.astimezone(ZoneInfo(PARIS)).date() - timedelta(1)
    assert {key[0] for key in days} == {today, day_before}
    totals = [sum(column) for column in zip(*days.values(), strict=True)]
    assert totals[0] == 9 + 14 and all(totals), totals  # every figure counted something
    assert {key[2] for key in days} == {"Web and stores", ""}  # marketplace orders matched no rule
    assert sum(done for _, _, done, _ in places.values()) >= 5
    assert await ready_at(a.tenant.tenant_id, collected["id"]) == [t1]  # done: when it was first ready

    # More work, later: the orders of the day before and a new order two days back. Only those
    # two days are recomputed; today's rows stay as they were.
    t2 = t1 + timedelta(hours=2)
    with clock.frozen_at(t2):
        await a.goodwill(yesterday["id"], 400)
        collect = next(f for f in (await a.order(waiting["id"]))["fulfilments"] if f["status"] == "ready_for_pickup")
        await act_ok(client, a.key, collect["id"], "collect")
        older = await a.place(("sku", 1, 1999), placed_at=t1 - timedelta(hours=50), channel="store")
        await a.route()
        await a.ship(older["id"])
    _, before = await stored(a.tenant.tenant_id, with_marks=True)
    with clock.frozen_at(t2 + timedelta(minutes=10)):
        assert await refresh(a.tenant.tenant_id, PARIS) == 2
    await assert_rows_equal_a_recount(a.tenant.tenant_id, PARIS)
    _, after = await stored(a.tenant.tenant_id, with_marks=True)
    assert {key for key in after if key[0] == today} == {key for key in before if key[0] == today}
    assert all(after[key] == before[key] for key in after if key[0] == today)  # same rows, same refresh
    assert {after[key][-1] for key in after if key[0] != today} == {t2 + timedelta(minutes=10)}
    with clock.frozen_at(t2 + timedelta(minutes=20)):
        assert await refresh(a.tenant.tenant_id, PARIS) == 0  # nothing changed since
    await assert_rows_equal_a_recount(a.tenant.tenant_id, PARIS)

    # Another time zone: every day is cut again.
    with clock.frozen_at(t2 + timedelta(minutes=30)):
        assert await refresh(a.tenant.tenant_id, NEW_YORK) >= 4
    days, _ = await assert_rows_equal_a_recount(a.tenant.tenant_id, NEW_YORK)
    assert sum(values[0] for values in days.values()) == 9 + 14 + 1

    # The other company's rows were never touched.
    assert await stored(b.tenant.tenant_id, with_marks=True) == b_rows
    await assert_rows_equal_a_recount(b.tenant.tenant_id, NEW_YORK)
    assert b_rows[0] and b_rows[1]


async def test_todays_live_figures_equal_what_a_refresh_stores(client) -> None:
    from core.db import get_database
    from orders import figures

    t1 = start_of_test_day()
    s = await shop(client, PARIS)
    with clock.frozen_at(t1):
        await random_work(s, random.Random(7), t1, 10)
    tenant_id = s.tenant.tenant_id
    zone = ZoneInfo(PARIS)
    today = t1.astimezone(zone).date()
    with clock.frozen_at(t1 + timedelta(minutes=10)):
        async with get_database().transaction(tenant_id=tenant_id) as session:
            live_days = await figures.days(session, tenant_id, PARIS, today, today)
            live_places = await figures.location_days(session, tenant_id, PARIS, today, today)
            assert await figures.ensure_started(session, tenant_id, PARIS) is False
        await refresh(tenant_id, PARIS)
        days, places = await stored(tenant_id)
        assert live_days and live_places
        assert {(r.day, r.channel, r.rule): (
            r.orders, r.units, r.gross_minor, r.discount_minor, r.cancelled_orders, r.cancelled_minor,
            r.refunds_minor, r.cancellation_refunds_minor, r.goodwill_minor, r.returned_units, r.split_orders,
            r.backordered_orders, r.held_orders) for r in live_days} == {k: v for k, v in days.items() if k[0] == today}
        assert {(r.day, r.location_code): (r.fulfilments, r.rejected, r.done, r.done_hist) for r in live_places} == {
            k: v for k, v in places.items() if k[0] == today}

        async with get_database().transaction(tenant_id=tenant_id) as session:
            assert await figures.ensure_started(session, tenant_id, PARIS) is True
            month = await figures.days(session, tenant_id, PARIS, today - timedelta(days=30), today)
            # Past days from the rows, today live: the same figures either way.
            assert {(r.day, r.channel, r.rule) for r in month} == set(days)
            assert await figures.days(session, tenant_id, PARIS, today, today, locations=frozenset({"X"})) == []
            one = await figures.location_days(session, tenant_id, PARIS, today - timedelta(days=3), today,
                                              locations=frozenset({s.c["wh"]}))
            assert one and {r.location_code for r in one} == {s.c["wh"]}


async def test_a_first_refresh_is_queued_through_the_outbox_and_the_sweep_finds_changed_companies(client) -> None:
    from core.db import get_database
    from orders import figures
    from orders.tasks import _companies_with_recent_changes

    s = await shop(client, PARIS)
    now = clock.now()
    await s.place(("sku", 1, 2500), placed_at=now - timedelta(days=1))
    await s.route()
    tenant_id = s.tenant.tenant_id
    async with get_database().transaction(tenant_id=tenant_id) as session:
        assert await figures.ensure_started(session, tenant_id, PARIS) is False
    ran = await run_outbox_inline(tenant_id)
    assert ("orders.refresh_figures", {"tenant_id": str(tenant_id)}) in ran
    async with get_database().transaction(tenant_id=tenant_id) as session:
        assert await figures.ensure_started(session, tenant_id, PARIS) is True
        # Cut in another zone than the company's now: asked again, so a quiet company is rebuilt too.
        assert await figures.ensure_started(session, tenant_id, "America/New_York") is False
        yesterday = (now - timedelta(days=1)).astimezone(ZoneInfo(PARIS)).date()
        [row] = await figures.days(session, tenant_id, PARIS, yesterday, yesterday)
        assert (row.orders, row.gross_minor, row.rule, row.held_orders) == (1, 2500, "Web and stores", 0)
    assert tenant_id in await _companies_with_recent_changes()
    await assert_rows_equal_a_recount(tenant_id, PARIS)


async def test_hours_follow_the_company_clock_on_the_days_clocks_change(client) -> None:
    from core.db import get_database
    from orders import figures

    s = await shop(client, PARIS)
    # 26 October 2025: 02:00-03:00 happens twice in Paris (25 hours); 30 March 2025: it never happens.
    moments = {
        "2025-10-25T22:30:00+00:00": 1000,  # 00:30 on the 26th
        "2025-10-26T00:30:00+00:00": 1100,  # 02:30 summer time
        "2025-10-26T01:30:00+00:00": 1200,  # 02:30 winter time
        "2025-10-26T22:59:00+00:00": 1300,  # 23:59
        "2025-10-26T23:00:00+00:00": 1400,  # midnight: the 27th
        "2025-03-30T01:30:00+00:00": 1500,  # 03:30 summer time, just after the skipped hour
    }
    for placed, price in moments.items():
        await s.place(("sku", 1, price), placed_at=datetime.fromisoformat(placed))
    tenant_id = s.tenant.tenant_id
    async with get_database().transaction(tenant_id=tenant_id) as session:
        autumn = await figures.hourly(session, tenant_id, PARIS, date(2025, 10, 26))
        spring = await figures.hourly(session, tenant_id, PARIS, date(2025, 3, 30))
    assert [p.hour for p in autumn] == list(range(24)) and [p.hour for p in spring] == list(range(24))
    assert {p.hour: (p.orders, p.gross_minor) for p in autumn if p.orders} == {0: (1, 1000), 2: (2, 2300),
                                                                                 23: (1, 1300)}
    assert {p.hour: (p.orders, p.gross_minor) for p in spring if p.orders} == {3: (1, 1500)}
    assert figures.day_bounds(PARIS, date(2025, 10, 26))[1] - figures.day_bounds(PARIS, date(2025, 10, 26))[0] \
        == timedelta(hours=25)


async def test_what_waits_now_is_counted_against_each_locations_promise(client) -> None:
    from core.db import get_database
    from orders import figures
    from orders.models import Fulfilment

    t1 = start_of_test_day()
    s = await shop(client, PARIS)
    with clock.frozen_at(t1):
        to_ship = await s.place(("sku", 1, 2500), placed_at=t1)
        second = await s.place(("sku", 1, 2500), placed_at=t1)
        pickup = await s.place(("sku", 1, 2500), placed_at=t1, pickup=True)
        await s.place(("sku", 1, 2500), placed_at=t1, channel="marketplace")  # on hold: no rule
        await s.place(("sku2", 9, 4000), placed_at=t1)  # backordered: not enough anywhere
        await s.route()
        await s.make_ready(pickup["id"])
        [moved] = await s.open_fulfilments(second["id"])
        await act_ok(client, s.key, moved["id"], "reject", reason="Shelf empty")
        await s.route()  # now at the second warehouse
    wh, wh2 = s.c["wh"], s.c["wh2"]
    promises = {wh: 2, "ELSEWHERE": 100}  # the second warehouse isn't listed: 24 hours
    tenant_id = s.tenant.tenant_id

    async def counts(at_: datetime, locations: frozenset[str] | None = None) -> figures.NowCounts:
        with clock.frozen_at(at_):
            async with get_database().transaction(tenant_id=tenant_id) as session:
                return await figures.now_counts(session, tenant_id, promises, locations=locations)

    assert await counts(t1 + timedelta(hours=1)) == figures.NowCounts(
        backordered=1, on_hold=1, pickups_waiting=1, pickups_expiring=0, open_fulfilments=2, late_fulfilments=0)
    assert (await counts(t1 + timedelta(hours=3))).late_fulfilments == 1
    assert (await counts(t1 + timedelta(hours=25))).late_fulfilments == 2
    async with get_database().transaction(tenant_id=tenant_id) as session:
        expires = await session.scalar(select(Fulfilment.pickup_expires_at).where(
            Fulfilment.tenant_id == tenant_id, Fulfilment.status == "ready_for_pickup"))
    assert expires is not None
    for before, expiring in ((timedelta(hours=25), 0), (timedelta(hours=23), 1)):
        later = await counts(expires - before)
        assert (later.pickups_waiting, later.pickups_expiring) == (1, expiring)
    at_store = await counts(t1 + timedelta(hours=3), frozenset({s.c["store"]}))
    assert at_store == figures.NowCounts(backordered=0, on_hold=0, pickups_waiting=1, pickups_expiring=0,
                                         open_fulfilments=0, late_fulfilments=0)
    assert (await counts(t1 + timedelta(hours=3), frozenset({wh2}))).open_fulfilments == 1

    with clock.frozen_at(t1 + timedelta(hours=3)):
        async with get_database().transaction(tenant_id=tenant_id) as session:
            [late] = await figures.late_fulfilments(session, tenant_id, promises)
            on_hold = await figures.waiting_orders(session, tenant_id, "on_hold")
            waiting_stock = await figures.waiting_orders(session, tenant_id, "backordered")
    shipping = await s.order(to_ship["id"])
    assert (late.order_id, late.order_number, late.location_code, late.status) == (
        uuid.UUID(to_ship["id"]), shipping["number"], wh, "created")
    assert late.due_at == late.created_at + timedelta(hours=2)
    assert [(o.status, o.currency, o.total_minor) for o in on_hold] == [("on_hold", "EUR", 2500)]
    assert on_hold[0].reason and [o.status for o in waiting_stock] == ["backordered"]
    async with get_database().transaction(tenant_id=tenant_id) as session:
        from core.problems import ProblemError

        try:
            await figures.waiting_orders(session, tenant_id, "shipped")
        except ProblemError as problem:
            assert "on_hold or backordered" in str(problem.__dict__)
        else:
            raise AssertionError("an unknown status was accepted")


async def test_another_company_reads_none_of_the_figures(client) -> None:
    from core.db import get_database
    from orders import figures

    s = await shop(client, PARIS)
    now = clock.now()
    await s.place(("sku", 1, 2500), placed_at=now)
    await s.route()
    stranger = await create_tenant(timezone=PARIS)
    today = figures.local_today(PARIS)
    async with get_database().transaction(tenant_id=stranger.tenant_id) as session:
        assert await figures.days(session, stranger.tenant_id, PARIS, today, today) == []
        assert sum(p.orders for p in await figures.hourly(session, stranger.tenant_id, PARIS, today)) == 0
        counts = await figures.now_counts(session, stranger.tenant_id, {})
        assert counts == figures.NowCounts(0, 0, 0, 0, 0, 0)
        # Asking for the shop's figures by its id, in the stranger's scope: the wall holds.
        theirs = s.tenant.tenant_id
        assert await figures.days(session, theirs, PARIS, today, today) == []
        assert await figures.location_days(session, theirs, PARIS, today, today) == []
        assert sum(p.orders for p in await figures.hourly(session, theirs, PARIS, today)) == 0
    async with get_database().transaction(tenant_id=s.tenant.tenant_id) as session:
        [row] = await figures.days(session, s.tenant.tenant_id, PARIS, today, today)
        assert row.orders == 1
