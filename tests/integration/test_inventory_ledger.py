"""Issue 4 invariants: on_hand and reserved always equal the sums of their movements,
refused operations change nothing, and the last unit is sold once, across coroutines and
processes."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
import uuid
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from factories import create_tenant, unique
from inventory_factories import ledger_mismatches, levels, movement_count, reserve

# --- helpers ----------------------------------------------------------------------------------

_tenant: dict[str, Any] = {}


async def shared_tenant() -> Any:
    """One tenant for all the generated examples; each example gets its own SKUs and locations."""
    if "tenant" not in _tenant:
        _tenant["tenant"] = await create_tenant()
    return _tenant["tenant"]


def principal_for(tenant: Any) -> Any:
    from core.auth import Principal

    return Principal(tenant_id=tenant.tenant_id, role="owner", label="ledger-test", tenant_name=tenant.name,
                     timezone="Europe/Paris", currency="EUR")


async def make_grid(tenant_id: uuid.UUID, n_skus: int = 2, n_locations: int = 2,
                    ) -> tuple[list[tuple[str, uuid.UUID]], list[tuple[str, uuid.UUID]]]:
    """Fresh products and locations: ([(sku, id)], [(code, id)])."""
    from core.db import get_database
    from inventory.models import Location, Product

    skus = [(unique("SKU"), uuid.uuid4()) for _ in range(n_skus)]
    codes = [(unique("LOC"), uuid.uuid4()) for _ in range(n_locations)]
    async with get_database().transaction(tenant_id=tenant_id) as session:
        for sku, product_id in skus:
            session.add(Product(tenant_id=tenant_id, id=product_id, sku=sku, name=sku, price_minor=100,
                                currency="EUR"))
        for code, location_id in codes:
            session.add(Location(tenant_id=tenant_id, id=location_id, code=code, name=code, kind="warehouse",
                                 country="FR", timezone="Europe/Paris"))
    return skus, codes


async def send_and_apply_feed(tenant: Any, kind: str, rows: list[tuple[str, str, int]]) -> Any:
    """Accept a JSON feed as the API does, then run the apply job; returns the feed."""
    import msgspec

    from core.broker import COROUTINES
    from core.db import get_database
    from inventory.feeds import accept_feed, get_feed

    payload = msgspec.json.encode({"rows": [{"sku": s, "location": loc, "quantity": q} for s, loc, q in rows]})
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        feed, created = await accept_feed(session, principal_for(tenant), external_id=unique("feed"), kind=kind,
                                          content_format="json", payload=payload, source="api")
    assert created
    await COROUTINES["inventory.apply_feed"](tenant_id=str(tenant.tenant_id), feed_id=str(feed.id))
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        return await get_feed(session, principal_for(tenant), feed.id)


# --- (a) property test: random operation sequences keep the ledger exact -----------------------

KEY = st.tuples(st.integers(0, 1), st.integers(0, 1))  # (sku index, location index)


def feed_rows(low: int, high: int) -> st.SearchStrategy:
    """Mostly distinct rows; sometimes a duplicate row, which rejects the feed."""
    rows = st.tuples(KEY, st.integers(low, high))
    return st.one_of(st.lists(rows, min_size=1, max_size=4, unique_by=lambda row: row[0]),
                     st.lists(rows, min_size=2, max_size=4))


OPERATION = st.one_of(
    st.tuples(st.just("adjust"), KEY, st.integers(-8, 8)),
    st.tuples(st.just("reserve"), st.lists(st.tuples(KEY, st.integers(1, 3)), min_size=1, max_size=2)),
    st.tuples(st.just("release"), KEY, st.integers(1, 2)),
    st.tuples(st.just("safety"), KEY, st.integers(0, 4)),
    st.tuples(st.just("snapshot"), feed_rows(0, 10)),
    st.tuples(st.just("delta"), feed_rows(-6, 6)),
)


class Model:
    """What the stock should be: (sku index, location index) -> [on_hand, reserved, safety]."""

    def __init__(self) -> None:
        self.state: dict[tuple[int, int], list[int]] = {}

    def get(self, key: tuple[int, int]) -> list[int]:
        return self.state.setdefault(key, [0, 0, 0])

    def adjust(self, key: tuple[int, int], quantity: int) -> bool:
        level = self.get(key)
        if level[0] + quantity < 0:
            return False
        level[0] += quantity
        return True

    def reserve(self, lines: list[tuple[tuple[int, int], int]]) -> bool:
        trial = {k: list(v) for k, v in self.state.items()}
        for key, quantity in sorted(lines):
            level = trial.setdefault(key, [0, 0, 0])
            if level[0] - level[1] - level[2] < quantity:
                return False
            level[1] += quantity
        self.state = trial
        return True

    def release(self, key: tuple[int, int], quantity: int) -> bool:
        level = self.get(key)
        if level[1] < quantity:
            return False
        level[1] -= quantity
        return True

    def feed(self, kind: str, rows: list[tuple[tuple[int, int], int]]) -> tuple[bool, int]:
        """(applied, stock exceptions)"""
        keys = [key for key, _ in rows]
        if len(set(keys)) != len(keys):
            return False, 0  # duplicate row
        targets = dict(rows)
        new: dict[tuple[int, int], int] = {}
        if kind == "snapshot":
            named = {loc for _, loc in keys}
            for key, level in self.state.items():
                if key[1] in named and key not in targets and level[0] != 0:
                    new[key] = 0
            new.update(targets)
        else:
            for key, quantity in targets.items():
                before = self.state.get(key, [0, 0, 0])[0]
                if before + quantity < 0:
                    return False, 0
                new[key] = before + quantity
        exceptions = 0
        for key, value in new.items():
            level = self.get(key)
            if value != level[0] and value < level[1]:
                exceptions += 1
            level[0] = value
        return True, exceptions


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(initial=st.lists(st.integers(0, 10), min_size=4, max_size=4),
       operations=st.lists(OPERATION, min_size=8, max_size=30))
async def test_random_operations_keep_on_hand_and_reserved_equal_to_their_movements(initial, operations) -> None:
    from core.db import get_database
    from core.problems import ProblemError
    from inventory import ledger
    from inventory.ledger import Line

    tenant = await shared_tenant()
    tenant_id = tenant.tenant_id
    skus, codes = await make_grid(tenant_id)
    model = Model()

    def line(key: tuple[int, int], quantity: int) -> Line:
        return Line(skus[key[0]][1], codes[key[1]][1], quantity)

    async def database_state() -> dict[tuple[int, int], tuple[int, int, int]]:
        names = {(skus[s][0], codes[loc][0]): (s, loc) for s in range(2) for loc in range(2)}
        return {names[k]: v for k, v in (await levels(tenant_id)).items() if k in names and v != (0, 0, 0)}

    def model_state() -> dict[tuple[int, int], tuple[int, int, int]]:
        return {k: (v[0], v[1], v[2]) for k, v in model.state.items() if v != [0, 0, 0]}

    # Opening stock, so that reservations and releases have something to work on.
    opening = [("adjust", (s, loc), initial[2 * s + loc]) for s in range(2) for loc in range(2)]
    for step, operation in enumerate(opening + operations):
        kind = operation[0]
        moves_before = await movement_count(tenant_id)
        try:
            async with get_database().transaction(tenant_id=tenant_id) as session:
                if kind == "adjust":
                    _, key, quantity = operation
                    expected = model.adjust(key, quantity)
                    await ledger.adjust(session, tenant_id, line(key, quantity), reason="adjustment",
                                           actor="test")
                elif kind == "reserve":
                    expected = model.reserve(operation[1])
                    await ledger.reserve(session, tenant_id, [line(k, q) for k, q in operation[1]],
                                            reference=f"order-{step}", actor="test")
                elif kind == "release":
                    _, key, quantity = operation
                    expected = model.release(key, quantity)
                    await ledger.release(session, tenant_id, [line(key, quantity)], reference=f"order-{step}",
                                            actor="test")
                elif kind == "safety":
                    _, key, quantity = operation
                    model.get(key)[2] = quantity
                    expected = True
                    await ledger.set_safety_stock(session, tenant_id, line(key, quantity), actor="test")
                else:
                    expected = None
            applied = True
        except ProblemError:
            applied = False
        if kind in ("snapshot", "delta"):
            rows = [(skus[k[0]][0], codes[k[1]][0], q) for k, q in operation[1]]
            feed = await send_and_apply_feed(tenant, kind, rows)
            expected, exceptions = model.feed(kind, operation[1])
            applied = feed.status == "applied"
            assert feed.status in ("applied", "rejected")
            if applied:
                assert feed.exceptions == exceptions, (step, operation, feed.exceptions, exceptions)
        event(f"{kind} {'applied' if applied else 'refused'}")
        assert applied == expected, (step, operation, model_state())
        if not applied:
            assert await movement_count(tenant_id) == moves_before, (step, operation)
        assert await database_state() == model_state(), (step, operation)

    assert await ledger_mismatches(tenant_id) == []


# --- service-level guards ----------------------------------------------------------------------


async def test_release_of_a_non_positive_quantity_is_refused_and_changes_nothing() -> None:
    """A release of -3 must not act as an unchecked reservation of 3."""
    from core.db import get_database
    from core.problems import ProblemError
    from inventory import ledger
    from inventory.ledger import Line

    tenant = await shared_tenant()
    skus, codes = await make_grid(tenant.tenant_id, 1, 1)
    product_id, location_id = skus[0][1], codes[0][1]
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        await ledger.adjust(session, tenant.tenant_id, Line(product_id, location_id, 2), reason="receipt",
                               actor="test")
    before, moves = await levels(tenant.tenant_id), await movement_count(tenant.tenant_id)
    for quantity in (-3, 0):
        refused = False
        try:
            async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
                await ledger.release(session, tenant.tenant_id, [Line(product_id, location_id, quantity)],
                                        reference="order-x", actor="test")
        except ProblemError:
            refused = True
        assert refused, f"release of {quantity} was accepted"
    assert await levels(tenant.tenant_id) == before
    assert await movement_count(tenant.tenant_id) == moves


async def test_a_failed_multi_line_reservation_reserves_nothing() -> None:
    from core.db import get_database
    from inventory import ledger
    from inventory.ledger import Line

    tenant = await shared_tenant()
    skus, codes = await make_grid(tenant.tenant_id, 2, 1)
    (_, p1), (_, p2) = skus
    location_id = codes[0][1]
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        await ledger.adjust(session, tenant.tenant_id, Line(p1, location_id, 5), reason="receipt", actor="t")
        await ledger.adjust(session, tenant.tenant_id, Line(p2, location_id, 1), reason="receipt", actor="t")
    moves = await movement_count(tenant.tenant_id)
    assert not await reserve(tenant.tenant_id, Line(p1, location_id, 3), Line(p2, location_id, 2))
    assert await reserve(tenant.tenant_id, Line(p1, location_id, 3), Line(p2, location_id, 1))
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        assert await ledger.available(session, tenant.tenant_id, Line(p1, location_id, 0)) == 2
        assert await ledger.available(session, tenant.tenant_id, Line(p2, location_id, 0)) == 0
    assert await movement_count(tenant.tenant_id) == moves + 2
    assert await ledger_mismatches(tenant.tenant_id) == []


# --- (b) concurrency: the last unit is sold once ---------------------------------------------------


async def stocked_line(units: int, safety: int = 0) -> tuple[Any, Any]:
    from core.db import get_database
    from inventory import ledger
    from inventory.ledger import Line

    tenant = await create_tenant()
    skus, codes = await make_grid(tenant.tenant_id, 1, 1)
    line = Line(skus[0][1], codes[0][1], 1)
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        await ledger.adjust(session, tenant.tenant_id, Line(line.product_id, line.location_id, units),
                               reason="receipt", actor="test")
        if safety:
            await ledger.set_safety_stock(session, tenant.tenant_id,
                                             Line(line.product_id, line.location_id, safety), actor="test")
    return tenant, line


async def level_figures(tenant_id: uuid.UUID, line: Any) -> tuple[int, int, int]:
    from core.db import get_database
    from inventory import ledger
    from inventory.models import InventoryLevel

    async with get_database().transaction(tenant_id=tenant_id) as session:
        on_hand, reserved = (await session.execute(
            select(InventoryLevel.on_hand, InventoryLevel.reserved)
            .where(InventoryLevel.tenant_id == tenant_id, InventoryLevel.product_id == line.product_id,
                   InventoryLevel.location_id == line.location_id))).one()
        available = await ledger.available(session, tenant_id, line)
    return on_hand, reserved, available


async def test_twenty_buyers_of_the_last_unit_one_wins() -> None:
    tenant, line = await stocked_line(1)
    results = await asyncio.gather(*[reserve(tenant.tenant_id, line, reference=f"order-{i}") for i in range(20)])
    assert results.count(True) == 1
    assert await level_figures(tenant.tenant_id, line) == (1, 1, 0)
    assert await ledger_mismatches(tenant.tenant_id) == []
    assert await movement_count(tenant.tenant_id) == 2


async def test_twenty_buyers_of_five_units_five_win() -> None:
    tenant, line = await stocked_line(5)
    results = await asyncio.gather(*[reserve(tenant.tenant_id, line, reference=f"order-{i}") for i in range(20)])
    assert results.count(True) == 5
    assert await level_figures(tenant.tenant_id, line) == (5, 5, 0)
    assert await ledger_mismatches(tenant.tenant_id) == []


async def test_concurrent_buyers_never_take_the_safety_stock() -> None:
    tenant, line = await stocked_line(6, safety=2)
    results = await asyncio.gather(*[reserve(tenant.tenant_id, line, reference=f"order-{i}") for i in range(12)])
    assert results.count(True) == 4
    assert await level_figures(tenant.tenant_id, line) == (6, 4, 0)


WORKER_SCRIPT = textwrap.dedent("""
    import asyncio, sys, uuid

    async def main():
        from sqlalchemy import text
        from oms import models  # noqa: F401
        from core.db import get_database
        from inventory.ledger import InsufficientStock, Line, reserve

        tenant = uuid.UUID(sys.argv[1])
        line = Line(uuid.UUID(sys.argv[2]), uuid.UUID(sys.argv[3]), 1)
        db = get_database()
        async with db.transaction(tenant_id=tenant) as session:
            await session.execute(text("select 1"))
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

        async def one(i):
            try:
                async with db.transaction(tenant_id=tenant) as session:
                    await reserve(session, tenant, [line], reference=f"{sys.argv[4]}-{i}", actor="process")
                return 1
            except InsufficientStock:
                return 0

        wins = sum(await asyncio.gather(*[one(i) for i in range(10)]))
        print(f"wins {wins}", flush=True)
        await db.dispose()

    asyncio.run(main())
""")


async def test_four_processes_of_ten_buyers_share_seven_units_exactly() -> None:
    tenant, line = await stocked_line(7)
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", WORKER_SCRIPT, str(tenant.tenant_id), str(line.product_id), str(line.location_id),
            f"proc{n}", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=dict(os.environ),
        )
        for n in range(4)
    ]
    try:
        for process in processes:
            ready = await asyncio.wait_for(process.stdout.readline(), timeout=30)
            if ready.strip() != b"ready":
                err = await process.stderr.read()
                raise AssertionError(f"worker process failed to start: {ready!r} {err.decode()[-2000:]}")
        for process in processes:  # start together
            process.stdin.write(b"go\n")
            await process.stdin.drain()
        outputs = await asyncio.wait_for(asyncio.gather(*[p.communicate() for p in processes]), timeout=60)
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
    wins = []
    for (out, err), process in zip(outputs, processes, strict=True):
        assert process.returncode == 0, err.decode()[-2000:]
        wins.append(int(out.decode().split("wins")[1]))
    assert sum(wins) == 7, wins
    assert await level_figures(tenant.tenant_id, line) == (7, 7, 0)
    assert await ledger_mismatches(tenant.tenant_id) == []

    from core.db import get_database
    from inventory.models import InventoryMovement

    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        reservations = await session.scalar(select(func.count()).select_from(InventoryMovement).where(
            InventoryMovement.tenant_id == tenant.tenant_id, InventoryMovement.reason == "reservation"))
    assert reservations == 7


async def test_a_feed_racing_a_first_receipt_loses_no_stock() -> None:
    """A delta feed for a SKU/location with no level yet, applied while a receipt for that same
    pair is creating the level: both quantities must count, and the ledger must still add up."""
    from core.broker import COROUTINES
    from core.db import get_database
    from inventory import ledger
    from inventory.feeds import accept_feed
    from inventory.ledger import Line

    tenant = await create_tenant()
    skus, codes = await make_grid(tenant.tenant_id, 1, 1)
    (sku, product_id), (code, location_id) = skus[0], codes[0]
    import msgspec

    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        feed, _ = await accept_feed(session, principal_for(tenant), external_id="race-1", kind="delta",
                                    content_format="json", source="api",
                                    payload=msgspec.json.encode({"rows": [{"sku": sku, "location": code,
                                                                           "quantity": 2}]}))

    async with get_database().transaction(tenant_id=tenant.tenant_id) as receipt:
        await ledger.adjust(receipt, tenant.tenant_id, Line(product_id, location_id, 5), reason="receipt",
                               actor="test")
        # The receipt has created the level but not committed; the feed job starts now.
        job = asyncio.create_task(COROUTINES["inventory.apply_feed"](tenant_id=str(tenant.tenant_id),
                                                                     feed_id=str(feed.id)))
        await asyncio.sleep(0.5)
    await asyncio.wait_for(job, timeout=20)

    assert await levels(tenant.tenant_id) == {(sku, code): (7, 0, 0)}
    assert await ledger_mismatches(tenant.tenant_id) == []
