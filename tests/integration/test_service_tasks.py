"""Customer-service tasks for orders routing puts on hold, closed by a release or a cancellation
or by hand; who may see and resolve them; and the company's pickup window."""

from __future__ import annotations

import uuid
from datetime import timedelta
from zoneinfo import ZoneInfo

from httpx import AsyncClient

from factories import bearer, create_tenant, login, run_outbox_inline
from inventory_factories import API, adjust, location_body, make_locations, one_warehouse_shop

TASKS = f"{API}/service-tasks"


def _order(number: str, quantity: int, *, pickup: str | None = None) -> dict:
    body = {"channel": "web", "external_number": number, "currency": "EUR",
            "lines": [{"sku": "TSK-1", "quantity": quantity, "unit_price_minor": 1000}],
            "customer": {"email": f"{number.lower()}@example.test", "name": "Tess"},
            "delivery": {"mode": "ship", "address": {"country": "FR", "latitude": 48.85, "longitude": 2.35}},
            "total_minor": 1000 * quantity}
    if pickup:
        body["delivery"] = {"mode": "pickup", "pickup_location": pickup}
    return body


async def _held_order(client: AsyncClient, tenant, number: str) -> dict:
    """An order for more than there is anywhere: the rule's fallback holds it."""
    created = await client.post(f"{API}/orders", headers=bearer(tenant.api_key), json=_order(number, 50))
    assert created.status_code == 201, created.text
    await run_outbox_inline(tenant.tenant_id)
    order = (await client.get(f"{API}/orders/{created.json()['id']}", headers=bearer(tenant.api_key))).json()
    assert order["status"] == "on_hold"
    return order


async def test_an_order_on_hold_opens_a_task_that_release_and_cancel_close(client: AsyncClient) -> None:
    tenant = await create_tenant()
    key = bearer(tenant.api_key)
    await one_warehouse_shop(client, tenant.api_key, location="WH-T", sku="TSK-1", quantity=5)
    first = await _held_order(client, tenant, "T-1")
    second = await _held_order(client, tenant, "T-2")

    tasks = (await client.get(TASKS, headers=key)).json()["tasks"]
    assert [(t["order_number"], t["kind"]) for t in tasks] == [(first["number"], "order_on_hold"),
                                                               (second["number"], "order_on_hold")]
    assert tasks[0]["detail"] == first["hold_reason"]
    only_second = (await client.get(TASKS, headers=key, params={"order_id": second["id"]})).json()["tasks"]
    assert [t["order_number"] for t in only_second] == [second["number"]]

    # Released: routing tries again (and holds it again: still no stock), the first task closes
    # and a new one opens, so there is never more than one open task per problem.
    released = await client.post(f"{API}/orders/{first['id']}/release", headers=key)
    assert released.status_code == 200, released.text
    await run_outbox_inline(tenant.tenant_id)
    first_tasks = (await client.get(TASKS, headers=key, params={"order_id": first["id"]})).json()["tasks"]
    assert len(first_tasks) == 1 and first_tasks[0]["id"] != tasks[0]["id"]
    closed = (await client.get(f"{TASKS}/{tasks[0]['id']}", headers=key)).json()
    assert closed["status"] == "resolved" and "released" in closed["resolution"]

    cancelled = await client.post(f"{API}/orders/{second['id']}/cancel", headers=key, json={"reason": "no stock"})
    assert cancelled.status_code == 200, cancelled.text
    assert (await client.get(f"{TASKS}/{tasks[1]['id']}", headers=key)).json()["status"] == "resolved"
    assert [t["order_number"] for t in (await client.get(TASKS, headers=key)).json()["tasks"]] == [first["number"]]


async def test_bad_filters_and_cursors_are_refused(client: AsyncClient) -> None:
    tenant = await create_tenant()
    key = bearer(tenant.api_key)
    assert (await client.get(TASKS, headers=key, params={"status": "later"})).status_code == 422
    assert (await client.get(TASKS, headers=key, params={"kind": "nope"})).status_code == 422
    assert (await client.get(TASKS, headers=key, params={"after": "x"})).status_code == 422
    assert (await client.get(f"{TASKS}/{uuid.uuid4()}", headers=key)).status_code == 404


async def test_another_company_can_neither_see_nor_resolve_a_task(client: AsyncClient) -> None:
    tenant, other = await create_tenant(), await create_tenant()
    await one_warehouse_shop(client, tenant.api_key, location="WH-T", sku="TSK-1", quantity=5)
    await _held_order(client, tenant, "T-3")
    [task] = (await client.get(TASKS, headers=bearer(tenant.api_key))).json()["tasks"]
    assert (await client.get(TASKS, headers=bearer(other.api_key))).json()["tasks"] == []
    assert (await client.get(f"{TASKS}/{task['id']}", headers=bearer(other.api_key))).status_code == 404
    refused = await client.post(f"{TASKS}/{task['id']}/resolve", headers=bearer(other.api_key), json={"note": "x"})
    assert refused.status_code == 404
    assert (await client.get(f"{TASKS}/{task['id']}", headers=bearer(tenant.api_key))).json()["status"] == "open"


async def test_the_console_lists_tasks_and_resolves_them_from_the_order_page(client: AsyncClient) -> None:
    tenant = await create_tenant()
    await one_warehouse_shop(client, tenant.api_key, location="WH-T", sku="TSK-1", quantity=5)
    order = await _held_order(client, tenant, "T-4")
    await login(client, tenant.email)
    listed = await client.get("/app/service-tasks")
    assert listed.status_code == 200 and order["number"] in listed.text and "Order on hold" in listed.text
    page = await client.get(f"/app/orders/{order['id']}")
    assert "Resolve task" in page.text
    [task] = (await client.get(TASKS, headers=bearer(tenant.api_key))).json()["tasks"]
    from factories import post_form

    done = await post_form(client, f"/app/service-tasks/{task['id']}/resolve",
                           {"note": "Called the customer: they will wait", "next": f"/app/orders/{order['id']}"})
    assert done.status_code in (302, 303) and done.headers["location"].startswith(f"/app/orders/{order['id']}")
    resolved = (await client.get(f"{TASKS}/{task['id']}", headers=bearer(tenant.api_key))).json()
    assert resolved["resolution"] == "Called the customer: they will wait"
    assert resolved["resolved_by"] == tenant.email
    assert "Nothing waiting" in (await client.get("/app/service-tasks")).text


async def test_the_pickup_window_is_the_companys_setting(client: AsyncClient) -> None:
    from core import clock

    tenant = await create_tenant()
    key = bearer(tenant.api_key)
    await one_warehouse_shop(client, tenant.api_key, location="WH-T", sku="TSK-1", quantity=5)
    settings = f"{API}/settings/orders"
    assert (await client.get(settings, headers=key)).json() == {"pickup_window_days": 7}
    for bad in (0, 61, "three", None):
        refused = await client.put(settings, headers=key, json={"pickup_window_days": bad})
        assert refused.status_code in (400, 422), refused.text
    assert (await client.get(settings, headers=key)).json() == {"pickup_window_days": 7}
    saved = await client.put(settings, headers=key, json={"pickup_window_days": 2})
    assert saved.status_code == 200 and saved.json() == {"pickup_window_days": 2}

    await make_locations(client, tenant.api_key, location_body("ST-T", kind="store", latitude=48.86, longitude=2.34,
                                                               click_and_collect=True, ships_to_customers=False))
    assert (await adjust(client, tenant.api_key, "TSK-1", "ST-T", 3)).status_code == 201
    created = await client.post(f"{API}/orders", headers=key, json=_order("T-5", 1, pickup="ST-T"))
    assert created.status_code == 201, created.text
    await run_outbox_inline(tenant.tenant_id)
    order = (await client.get(f"{API}/orders/{created.json()['id']}", headers=key)).json()
    [fulfilment] = order["fulfilments"]
    for action in ("accept", "pick", "pack", "ready"):
        moved = await client.post(f"{API}/fulfilments/{fulfilment['id']}/{action}", headers=key, json={})
        assert moved.status_code == 200, moved.text
    from sqlalchemy import text

    from core.db import get_database

    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        expires = await session.scalar(text("SELECT pickup_expires_at FROM fulfilments WHERE id = :id"),
                                       {"id": uuid.UUID(fulfilment["id"])})
    # Two days from now, to the end of that day in Paris: the store's hours are not given.
    paris = ZoneInfo("Europe/Paris")
    assert expires.astimezone(paris).date() == (clock.now() + timedelta(days=2)).astimezone(paris).date()
    assert expires.astimezone(paris).strftime("%H:%M") == "23:59"

    await login(client, tenant.email)
    assert 'value="2"' in (await client.get("/app/settings/orders")).text


async def test_finished_orders_close_after_the_return_window(client: AsyncClient) -> None:
    """Delivered 31 days ago: closed by the hourly job, with a timeline entry. Delivered 10 days
    ago, or still on its way: left alone."""
    from datetime import UTC, datetime

    from core import clock
    from core.broker import COROUTINES

    tenant = await create_tenant()
    key = bearer(tenant.api_key)
    start = datetime.now(UTC)
    with clock.frozen_at(start - timedelta(days=32)):  # the rules in force from before the first order
        await one_warehouse_shop(client, tenant.api_key, location="WH-T", sku="TSK-1", quantity=10)
    ids = {}
    for number, steps, days_ago in (("C-OLD", ("accept", "pick", "pack", "ship", "deliver"), 31),
                                    ("C-NEW", ("accept", "pick", "pack", "ship", "deliver"), 10),
                                    ("C-OPEN", ("accept",), 31)):
        with clock.frozen_at(start - timedelta(days=days_ago)):
            created = await client.post(f"{API}/orders", headers=key, json=_order(number, 1))
            assert created.status_code == 201, created.text
            await run_outbox_inline(tenant.tenant_id)
            [fulfilment] = (await client.get(f"{API}/orders/{created.json()['id']}", headers=key)).json()[
                "fulfilments"]
            for step in steps:
                moved = await client.post(f"{API}/fulfilments/{fulfilment['id']}/{step}", headers=key, json={})
                assert moved.status_code == 200, moved.text
        ids[number] = created.json()["id"]

    await COROUTINES["orders.close_finished"](tenant_id=str(tenant.tenant_id))
    statuses = {number: (await client.get(f"{API}/orders/{order_id}", headers=key)).json()
                for number, order_id in ids.items()}
    assert {n: o["status"] for n, o in statuses.items()} == {"C-OLD": "closed", "C-NEW": "delivered",
                                                              "C-OPEN": "routed"}
    closing = [e for e in statuses["C-OLD"]["events"] if e["kind"] == "order.closed"]
    assert len(closing) == 1 and "30 days" in closing[0]["reason"]
    cancel = await client.post(f"{API}/orders/{ids['C-OLD']}/cancel", headers=key, json={})
    assert cancel.status_code == 409
