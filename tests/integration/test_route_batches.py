"""Orders captured together are routed together: the relay merges their routing messages per
company, and one transaction routes them oldest first, each decision drawing down the stock the
next one sees; when another order took some of that stock meanwhile, each is routed on its own."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from httpx import AsyncClient

from factories import bearer, create_tenant
from inventory_factories import (
    API,
    adjust,
    ledger_mismatches,
    levels,
    line_for,
    location_body,
    make_locations,
    one_warehouse_shop,
)


def _row(actor: str, tenant: str, **kwargs: Any) -> Any:
    from core.models import OutboxMessage

    return OutboxMessage(id=uuid.uuid4(), tenant_id=uuid.UUID(tenant), actor_name=actor, queue_name="orders",
                         kwargs={"tenant_id": tenant, **kwargs})


def test_the_relay_merges_routing_messages_per_company() -> None:
    import orders.tasks  # noqa: F401  (declares the merge)
    from core.outbox import MERGE_LIMIT, broker_messages

    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    rows = [_row("orders.route", a, order_id="a1"), _row("mail.send", a, message_id="m1"),
            _row("orders.route", b, order_id="b1"), _row("orders.route", a, order_id="a2"),
            *[_row("orders.route", a, order_id=f"x{n}") for n in range(MERGE_LIMIT)]]
    sent = [(m.actor_name, m.kwargs) for m in broker_messages(rows, 0)]
    assert sent == [
        ("orders.route_batch", {"tenant_id": a, "order_ids": ["a1", "a2", *[f"x{n}" for n in range(MERGE_LIMIT - 2)]]}),
        ("mail.send", {"tenant_id": a, "message_id": "m1"}),
        ("orders.route", {"tenant_id": b, "order_id": "b1"}),  # alone: as it is
        ("orders.route_batch", {"tenant_id": a, "order_ids": [f"x{n}" for n in range(MERGE_LIMIT - 2, MERGE_LIMIT)]}),
    ]
    # Each message keeps the id of a row it carries, so a redelivery is recognisable.
    assert len({m.message_id for m in broker_messages(rows, 0)}) == 4


def _order(number: str) -> dict[str, Any]:
    return {"channel": "web", "external_number": number, "currency": "EUR",
            "lines": [{"sku": "BAT-1", "quantity": 1, "unit_price_minor": 900}],
            "customer": {"email": f"{number.lower()}@example.test"},
            "delivery": {"mode": "ship", "address": {"country": "FR", "latitude": 48.85, "longitude": 2.35}},
            "total_minor": 900}


async def _shop_and_orders(client: AsyncClient, count: int) -> tuple[Any, list[dict[str, Any]]]:
    """WH-A (nearest) holds 2 units, WH-B 10; ``count`` one-unit orders."""
    tenant = await create_tenant()
    await one_warehouse_shop(client, tenant.api_key, location="WH-A", sku="BAT-1", quantity=2)
    await make_locations(client, tenant.api_key, location_body("WH-B", latitude=45.7, longitude=4.8))
    assert (await adjust(client, tenant.api_key, "BAT-1", "WH-B", 10)).status_code == 201
    orders = []
    for n in range(count):
        created = await client.post(f"{API}/orders", headers=bearer(tenant.api_key), json=_order(f"B-{n}"))
        assert created.status_code == 201, created.text
        orders.append(created.json())
    return tenant, orders


async def _figures(tenant_id: uuid.UUID) -> dict[str, tuple[int, int]]:
    """(on hand, reserved) per location."""
    return {code: (on_hand, reserved) for (_, code), (on_hand, reserved, _) in (await levels(tenant_id)).items()}


async def _placed(client: AsyncClient, tenant: Any, orders: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [(await client.get(f"{API}/orders/{o['id']}", headers=bearer(tenant.api_key))).json() for o in orders]


async def test_a_batch_draws_the_stock_down_order_after_order(client: AsyncClient) -> None:
    from core.broker import COROUTINES

    tenant, orders = await _shop_and_orders(client, 4)
    batch = COROUTINES["orders.route_batch"]
    await batch(tenant_id=str(tenant.tenant_id), order_ids=[o["id"] for o in reversed(orders)])
    routed = await _placed(client, tenant, orders)
    # Oldest first, whatever the order of the ids: the first two get WH-A's two units.
    assert [(o["status"], [f["location"] for f in o["fulfilments"]]) for o in routed] == [
        ("routed", ["WH-A"]), ("routed", ["WH-A"]), ("routed", ["WH-B"]), ("routed", ["WH-B"])]
    assert await ledger_mismatches(tenant.tenant_id) == []
    figures = await _figures(tenant.tenant_id)
    assert figures == {"WH-A": (2, 2), "WH-B": (10, 2)}
    # Each order's reservation is its own line in the ledger, under its own number.
    from sqlalchemy import text

    from core.db import get_database

    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        references = sorted((await session.scalars(text(
            "SELECT reference FROM inventory_movements WHERE reason = 'reservation'"))).all())
    assert references == sorted(f"order {o['number']}" for o in routed)
    # A redelivery of the same batch changes nothing.
    await batch(tenant_id=str(tenant.tenant_id), order_ids=[o["id"] for o in orders])
    assert await _placed(client, tenant, orders) == routed


async def test_a_batch_that_lost_its_stock_routes_each_order_on_its_own(client: AsyncClient,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Between the batch's look at the stock and its reservation, a stock count takes one of WH-A's
    two units away: the batch, which gave both to its own orders, keeps nothing, and each of its
    orders is routed again on fresh figures."""
    from core.broker import COROUTINES
    from core.db import get_database
    from inventory import ledger
    from inventory import snapshot as inventory_snapshot

    tenant, orders = await _shop_and_orders(client, 2)
    one_less = await line_for(tenant.tenant_id, "BAT-1", "WH-A", -1)
    real = inventory_snapshot.available_now
    raced: list[bool] = []

    async def racing(*args: Any, **kwargs: Any) -> Any:
        stock = await real(*args, **kwargs)
        if not raced:  # the batch has read the stock: the count, committed meanwhile, finds one unit missing
            raced.append(True)
            async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
                await ledger.adjust(session, tenant.tenant_id, one_less, reason="count", actor="stock count")
        return stock

    monkeypatch.setattr(inventory_snapshot, "available_now", racing)
    await COROUTINES["orders.route_batch"](tenant_id=str(tenant.tenant_id), order_ids=[o["id"] for o in orders])
    assert raced == [True]
    routed = await _placed(client, tenant, orders)
    assert [(o["status"], [f["location"] for f in o["fulfilments"]]) for o in routed] == [
        ("routed", ["WH-A"]), ("routed", ["WH-B"])]
    assert await ledger_mismatches(tenant.tenant_id) == []
    assert await _figures(tenant.tenant_id) == {"WH-A": (1, 1), "WH-B": (10, 1)}


async def test_two_routing_passes_of_one_company_wait_for_each_other(client: AsyncClient,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers route two batches of one company at the same moment, both wanting WH-A's two
    units: the second waits for the first to commit and decides on what it left, so neither has
    to start again order by order."""
    import asyncio

    from core.broker import COROUTINES
    from orders import tasks

    tenant, orders = await _shop_and_orders(client, 4)
    one_by_one: list[uuid.UUID] = []
    real_route = tasks._route

    async def spy(tenant_id: uuid.UUID, order_id: uuid.UUID, *, actor: str) -> None:
        one_by_one.append(order_id)
        await real_route(tenant_id, order_id, actor=actor)

    monkeypatch.setattr(tasks, "_route", spy)
    batch = COROUTINES["orders.route_batch"]
    await asyncio.gather(batch(tenant_id=str(tenant.tenant_id), order_ids=[orders[0]["id"], orders[2]["id"]]),
                         batch(tenant_id=str(tenant.tenant_id), order_ids=[orders[1]["id"], orders[3]["id"]]))
    assert one_by_one == []
    routed = await _placed(client, tenant, orders)
    assert [o["status"] for o in routed] == ["routed"] * 4
    assert sorted(f["location"] for o in routed for f in o["fulfilments"]) == ["WH-A", "WH-A", "WH-B", "WH-B"]
    assert await ledger_mismatches(tenant.tenant_id) == []
    assert await _figures(tenant.tenant_id) == {"WH-A": (2, 2), "WH-B": (10, 2)}
