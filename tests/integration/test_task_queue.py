"""The customer-service task queue worked by people: tasks opened where the problems happen (a
pickup store that can't hand over, a pickup nobody collected), taken, given to a colleague,
commented on and resolved, in the console and the API, each on the order's timeline; the queue's
filters and ages; and the navigation's counts, per role, from one query."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient
from test_orders import act_ok, by_priority, get_order, member, network, order_body, publish_rules, routed_order

from factories import bearer, create_tenant, csrf_headers, login, post_form, run_outbox_inline
from inventory_factories import API, one_warehouse_shop

TASKS = f"{API}/service-tasks"


async def _tasks(client: AsyncClient, key: str, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(TASKS, headers=bearer(key), params=params)
    assert response.status_code == 200, response.text
    return response.json()["tasks"]


async def _held_task(client: AsyncClient, tenant: Any, number: str) -> dict[str, Any]:
    """An order for more than there is: routing holds it, and a task opens."""
    body = {"channel": "web", "external_number": number, "currency": "EUR",
            "lines": [{"sku": "TQ-1", "quantity": 50, "unit_price_minor": 1000}],
            "customer": {"email": f"{number.lower()}@example.test", "name": "Quinn"},
            "delivery": {"mode": "ship", "address": {"country": "FR", "latitude": 48.85, "longitude": 2.35}},
            "total_minor": 50_000}
    created = await client.post(f"{API}/orders", headers=bearer(tenant.api_key), json=body)
    assert created.status_code == 201, created.text
    await run_outbox_inline(tenant.tenant_id)
    [task] = await _tasks(client, tenant.api_key, order_id=created.json()["id"])
    return task


async def _htmx_post(client: AsyncClient, url: str, data: dict[str, str]) -> Any:
    """A form sent by htmx: the answer is a fragment to swap in."""
    return await client.post(url, data=data, headers={**csrf_headers(client), "HX-Request": "true"})


def _events(order: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in order["events"] if e["kind"] == kind]


# --- tasks opened where the problems happen ------------------------------------------------------


async def test_a_pickup_nobody_collects_opens_a_task(client: AsyncClient) -> None:
    from core import clock
    from core.broker import COROUTINES

    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"store": 4}})
    await publish_rules(client, key, by_priority(types=("store",)))
    order = await routed_order(client, tenant, order_body((c["sku"], 1, 2500), pickup=c["store"]))
    [fulfilment] = order["fulfilments"]
    await act_ok(client, key, fulfilment["id"], "accept", "pick", "pack", "ready")
    await COROUTINES["orders.expire_pickups"](tenant_id=str(tenant.tenant_id))
    assert await _tasks(client, key) == []  # still within the pickup window

    with clock.frozen_at(datetime.now(UTC) + timedelta(days=8)):
        await COROUTINES["orders.expire_pickups"](tenant_id=str(tenant.tenant_id))
        await COROUTINES["orders.expire_pickups"](tenant_id=str(tenant.tenant_id))  # twice: one task
    [task] = await _tasks(client, key)
    assert (task["kind"], task["title"], task["order_number"]) == ("pickup_expired", "Pickup expired",
                                                                   order["number"])
    assert c["store"] in task["detail"] and "back on the shelf" in task["detail"]
    assert "nothing to refund" in task["detail"] and "cancelled" in task["detail"]  # paid at collection
    done = await get_order(client, key, order["id"])
    assert done["status"] == "cancelled"
    assert [e["reason"] for e in _events(done, "task.opened")] == [f"Pickup expired: {task['detail']}"]


async def test_stock_missing_at_the_pickup_store_opens_a_task_that_routing_elsewhere_closes(
        client: AsyncClient, make_client: Any) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"store": 1, "wh": 5}})
    await publish_rules(client, key, by_priority("Store first", types=("store", "warehouse"),
                                                 fallback=("ship_to_store", "hold")))
    order = await routed_order(client, tenant, order_body((c["sku"], 1, 2500), pickup=c["store"]))
    [pickup] = order["fulfilments"]
    assert (pickup["kind"], pickup["location"]) == ("pickup", c["store"])

    associate = await make_client()
    await login(associate, await member(tenant.tenant_id, "store_associate", [c["store"]]))
    rejected = await post_form(associate, f"/app/fulfilments/{pickup['id']}/reject",
                               {"reason": "Item missing from the shelf", "location": c["store"]})
    assert rejected.status_code == 303, rejected.text
    [task] = await _tasks(client, key)
    assert (task["kind"], task["title"]) == ("stock_missing_at_pickup", "Stock missing at the pickup store")
    assert c["store"] in task["detail"] and "Item missing from the shelf" in task["detail"]
    listed = await associate.get("/app/service-tasks")  # the store sees it: its own order
    assert "Stock missing at the pickup store" in listed.text and order["number"] in listed.text

    # Routed again without the store's shelf: the rule's fallback sends the warehouse's unit to the
    # store, and the task closes by itself.
    await run_outbox_inline(tenant.tenant_id)
    order = await get_order(client, key, order["id"])
    assert order["status"] == "routed"
    assert [(f["kind"], f["location"], f["ship_to_store"]) for f in order["fulfilments"]] == [
        ("pickup", c["store"], None), ("transfer", c["wh"], c["store"])]
    assert await _tasks(client, key) == []
    [closed] = await _tasks(client, key, status="resolved")
    assert closed["id"] == task["id"] and closed["resolution"].startswith("routed again")


async def test_stock_missing_at_the_pickup_store_with_nowhere_else_waits_until_cancelled(
        client: AsyncClient) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"store": 1}})
    await publish_rules(client, key, by_priority("Store first", types=("store", "warehouse"),
                                                 fallback=("ship_to_store", "hold")))
    order = await routed_order(client, tenant, order_body((c["sku"], 1, 2500), pickup=c["store"]))
    await act_ok(client, key, order["fulfilments"][0]["id"], "reject", reason="Damaged box")
    await run_outbox_inline(tenant.tenant_id)
    assert (await get_order(client, key, order["id"]))["status"] == "on_hold"
    assert sorted(t["kind"] for t in await _tasks(client, key)) == ["order_on_hold", "stock_missing_at_pickup"]

    cancelled = await client.post(f"{API}/orders/{order['id']}/cancel", headers=bearer(key),
                                  json={"reason": "customer gave up"})
    assert cancelled.status_code == 200, cancelled.text
    assert await _tasks(client, key) == []
    assert {t["resolution"] for t in await _tasks(client, key, status="resolved")} == {"the order was cancelled"}


# --- working a task in the console ---------------------------------------------------------------


async def test_an_agent_takes_assigns_comments_and_resolves_a_task_in_the_console(client: AsyncClient,
                                                                                   make_client: Any) -> None:
    from core import clock

    tenant = await create_tenant()
    await one_warehouse_shop(client, tenant.api_key, location="WH-Q", sku="TQ-1", quantity=5)
    task = await _held_task(client, tenant, "Q-1")
    colleague = await member(tenant.tenant_id, "customer_service")
    await login(client, tenant.email)
    page = f"/app/service-tasks/{task['id']}"

    shown = await client.get(page)
    assert shown.status_code == 200 and "Order on hold" in shown.text and "Nobody yet" in shown.text
    assert f'href="/app/orders/{task["order_id"]}"' in shown.text and colleague in shown.text  # may be chosen

    taken = await post_form(client, f"{page}/assign", {"assignee": "me"})
    assert taken.status_code == 303 and taken.headers["location"] == f"{page}?done=task_assigned"
    assert (await client.get(f"{TASKS}/{task['id']}", headers=bearer(tenant.api_key))).json()[
        "assigned_to"] == tenant.email.lower()
    given = await post_form(client, f"{page}/assign", {"assignee": colleague})
    assert given.status_code == 303
    outsider = await post_form(client, f"{page}/assign", {"assignee": "nobody@example.test"})
    assert outsider.status_code == 422 and "nobody@example.test is not a member" in outsider.text

    empty = await post_form(client, f"{page}/comments", {"body": "   "})
    assert empty.status_code == 422 and "Write the comment" in empty.text
    too_long = await post_form(client, f"{page}/comments", {"body": "x" * 2001})
    assert too_long.status_code == 422 and "under 2,000 characters" in too_long.text
    said = await post_form(client, f"{page}/comments", {"body": "Rang the customer: no answer, will try at 4"})
    assert said.status_code == 303

    # With htmx, the panel comes back in place and the navigation's counts are told to refresh.
    panel = await _htmx_post(client, f"{page}/comments", {"body": "Second try: they will wait"})
    assert panel.status_code == 200 and panel.headers["HX-Trigger"] == "tasks-changed"
    assert "<html" not in panel.text and "Second try: they will wait" in panel.text
    assert "Comments (2)" in panel.text and "Comment added" in panel.text

    with clock.frozen_at(datetime.now(UTC) + timedelta(hours=3, minutes=5)):
        queue = await client.get("/app/service-tasks")
    row = queue.text.split(f'id="task-{task["id"]}"')[1].split("</tr>")[0]
    # How long it has waited, in the company's words (a French company here).
    assert "3\xa0heures" in row and colleague in row and '<td class="num">2</td>' in row

    resolved = await post_form(client, f"{page}/resolve", {"note": "Customer will wait for the restock"})
    assert resolved.status_code == 303 and resolved.headers["location"] == f"{page}?done=task_resolved"
    after = await client.get(resolved.headers["location"])
    assert "Task resolved" in after.text and "Customer will wait for the restock" in after.text
    assert "Assign to me" not in after.text  # a resolved task is no one's to take any more

    order = await get_order(client, tenant.api_key, task["order_id"])
    assigned = _events(order, "task.assigned")
    assert [(e["actor"], e["data"]["assignee"]) for e in assigned] == [
        (tenant.email, tenant.email.lower()), (tenant.email, colleague)]
    assert assigned[1]["reason"] == f"Order on hold: assigned to {colleague} (was {tenant.email.lower()})"
    assert [e["reason"] for e in _events(order, "task.commented")] == [
        "Order on hold: Rang the customer: no answer, will try at 4", "Order on hold: Second try: they will wait"]
    timeline = (await client.get(f"/app/orders/{task['order_id']}")).text
    assert "Task assigned" in timeline and "Comment on a task" in timeline


async def test_the_queue_filters_by_assignee_and_kind_and_a_store_associate_takes_their_stores_tasks(
        client: AsyncClient, make_client: Any) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"wh": 5}})
    await publish_rules(client, key, by_priority(fallback=("hold",)))
    here = await routed_order(client, tenant, order_body((c["sku2"], 1, 1000), pickup=c["store"]))
    there = await routed_order(client, tenant, order_body((c["sku2"], 1, 1000)))
    tasks = {t["order_id"]: t for t in await _tasks(client, key)}
    here_task, there_task = tasks[here["id"]], tasks[there["id"]]

    store_email = await member(tenant.tenant_id, "store_associate", [c["store"]])
    store = await make_client()
    await login(store, store_email)
    taken = await _htmx_post(store, f"/app/service-tasks/{here_task['id']}/assign", {"assignee": "me", "view": "row"})
    assert taken.status_code == 200 and taken.text.strip().startswith("<tr") and "You" in taken.text
    assert (await post_form(store, f"/app/service-tasks/{there_task['id']}/assign",
                            {"assignee": "me"})).status_code == 404  # another location's order
    assert (await post_form(store, f"/app/service-tasks/{here_task['id']}/resolve",
                            {"note": "done"})).status_code == 403  # customer service resolves

    mine = await store.get("/app/service-tasks", params={"assignee": "me"})
    assert here["number"] in mine.text
    await login(client, tenant.email)
    nobody = await client.get("/app/service-tasks", params={"assignee": "none"})
    assert there["number"] in nobody.text and here["number"] not in nobody.text
    assert [t["id"] for t in await _tasks(client, key, assignee=store_email)] == [here_task["id"]]
    assert [t["id"] for t in await _tasks(client, key, assignee="none")] == [there_task["id"]]
    assert len(await _tasks(client, key, kind="order_on_hold")) == 2
    assert await _tasks(client, key, kind="pickup_expired") == []
    refused = await client.get(TASKS, headers=bearer(key), params={"assignee": "someone"})
    assert refused.status_code == 422 and "me, none, or a member's email" in refused.text
    filtered = await client.get("/app/service-tasks", params={"kind": "pickup_expired"})
    assert "No open task matches these filters" in filtered.text


# --- the API ---------------------------------------------------------------------------------------


async def test_the_api_assigns_comments_and_resolves_and_refuses_outsiders(client: AsyncClient) -> None:
    tenant, other = await create_tenant(), await create_tenant()
    key = bearer(tenant.api_key)
    await one_warehouse_shop(client, tenant.api_key, location="WH-Q", sku="TQ-1", quantity=5)
    task = await _held_task(client, tenant, "Q-2")
    url = f"{TASKS}/{task['id']}"
    agent = await member(tenant.tenant_id, "customer_service")
    marketer = await member(tenant.tenant_id, "marketing")
    far_associate = await member(tenant.tenant_id, "store_associate", ["WH-ELSEWHERE"])

    for who, words in ((other.email, "is not a member"), ("ghost@example.test", "is not a member"),
                       (marketer, "is a marketing member"), (far_associate, "store associate of other locations")):
        refused = await client.post(f"{url}/assign", headers=key, json={"assignee": who})
        assert refused.status_code == 422 and words in refused.json()["errors"][0]["message"], refused.text
    missing = await client.post(f"{url}/assign", headers=key, json={})
    assert missing.status_code == 422 and "Say who" in missing.text
    assert (await client.get(url, headers=key)).json()["assigned_to"] is None

    assigned = await client.post(f"{url}/assign", headers=key, json={"assignee": agent.upper()})
    assert assigned.status_code == 200 and assigned.json()["assigned_to"] == agent
    again = await client.post(f"{url}/assign", headers=key, json={"assignee": agent})
    assert again.status_code == 200
    commented = await client.post(f"{url}/comments", headers=key, json={"body": "  Waiting for stock  "})
    assert commented.status_code == 201 and commented.json()["body"] == "Waiting for stock"
    assert (await client.post(f"{url}/comments", headers=key, json={})).status_code == 422
    [comment] = (await client.get(f"{url}/comments", headers=key)).json()
    assert comment["author"].startswith("API key") and comment["body"] == "Waiting for stock"
    assert (await client.get(url, headers=key)).json()["comments_count"] == 1
    unassigned = await client.post(f"{url}/assign", headers=key, json={"assignee": None})
    assert unassigned.status_code == 200 and unassigned.json()["assigned_to"] is None

    # Another company's key: the task does not exist for it, whatever it sends.
    outsider = bearer(other.api_key)
    for path, body in (("assign", {"assignee": other.email}), ("comments", {"body": "hi"}),
                       ("resolve", {"note": "done"})):
        assert (await client.post(f"{url}/{path}", headers=outsider, json=body)).status_code == 404, path
    assert (await client.get(f"{url}/comments", headers=outsider)).status_code == 404

    resolved = await client.post(f"{url}/resolve", headers=key, json={"note": "Restocked and shipped"})
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
    late = await client.post(f"{url}/assign", headers=key, json={"assignee": agent})
    assert late.status_code == 409
    order = await get_order(client, tenant.api_key, task["order_id"])
    assert [e["data"]["assignee"] for e in _events(order, "task.assigned")] == [agent, None]
    assert len(_events(order, "task.commented")) == 1


# --- the navigation's counts -----------------------------------------------------------------------


async def test_the_navigation_counts_open_tasks_per_role_with_one_query(client: AsyncClient,
                                                                          make_client: Any) -> None:
    from sqlalchemy import event

    from core.db import get_database

    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"wh": 5}})
    await publish_rules(client, key, by_priority(fallback=("hold",)))
    here = await routed_order(client, tenant, order_body((c["sku2"], 1, 1000), pickup=c["store"]))
    await routed_order(client, tenant, order_body((c["sku2"], 1, 1000)))
    await routed_order(client, tenant, order_body((c["sku2"], 1, 1000)))
    [here_task] = await _tasks(client, key, order_id=here["id"])
    store_email = await member(tenant.tenant_id, "store_associate", [c["store"]])
    assigned = await client.post(f"{TASKS}/{here_task['id']}/assign", headers=bearer(key),
                                 json={"assignee": store_email})
    assert assigned.status_code == 200, assigned.text

    await login(client, tenant.email)
    home = await client.get("/app")
    assert 'hx-get="/app/service-tasks/count"' in home.text and "htmx:sseMessage from:body" in home.text
    assert "every 10s" not in home.text  # pushed with the page's live stream, never polled
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = get_database().engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        owner_count = await client.get("/app/service-tasks/count", headers={"HX-Request": "true"})
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert owner_count.status_code == 200 and "<html" not in owner_count.text
    assert "3 open tasks" in owner_count.text and "mine" not in owner_count.text
    assert len([s for s in statements if "service_tasks" in s]) == 1

    store = await make_client()
    await login(store, store_email)
    store_count = (await store.get("/app/service-tasks/count")).text
    assert "1 open task, 1 assigned to you" in store_count and ">1<" in store_count and "mine" in store_count

    other = await create_tenant()
    await login(client, other.email)
    assert "nav-count" not in (await client.get("/app/service-tasks/count")).text


async def test_a_task_page_of_another_company_or_an_unknown_task_is_not_found(client: AsyncClient) -> None:
    tenant, other = await create_tenant(), await create_tenant()
    await one_warehouse_shop(client, tenant.api_key, location="WH-Q", sku="TQ-1", quantity=5)
    task = await _held_task(client, tenant, "Q-3")
    await login(client, other.email)
    for path in (f"/app/service-tasks/{task['id']}", f"/app/service-tasks/{uuid.uuid4()}"):
        assert (await client.get(path)).status_code == 404
    for action, body in (("assign", {"assignee": "me"}), ("comments", {"body": "hello"}),
                         ("resolve", {"note": "done"})):
        assert (await post_form(client, f"/app/service-tasks/{task['id']}/{action}", body)).status_code == 404
    untouched = (await client.get(f"{TASKS}/{task['id']}", headers=bearer(tenant.api_key))).json()
    assert (untouched["status"], untouched["assigned_to"], untouched["comments_count"]) == ("open", None, 0)
