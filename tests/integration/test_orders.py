"""Orders: capture from every channel, routing by the worker with the rules in force when the
order was placed, the fulfilment lifecycle at the locations, cancellation, the orders list,
tenant isolation, roles, and the console pages."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient
from sqlalchemy import text

from factories import PASSWORD, bearer, create_tenant, login, post_form, run_outbox_inline, unique
from inventory_factories import API, ledger_mismatches, location_body, make_locations, product_body, stock_up

ORDERS = f"{API}/orders"
FULFILMENTS = f"{API}/fulfilments"
RULES = f"{API}/rule-sets/routing"
PARIS = (48.8566, 2.3522)

# --- rules --------------------------------------------------------------------------------------


def rule(rule_id: str, name: str, *, types: tuple[str, ...] = ("warehouse", "store"),
         sorts: tuple[str, ...] = ("priority",), fallback: tuple[str, ...] = ("split", "hold"),
         max_shipments: int = 2) -> dict[str, Any]:
    from rules.routing import new_rule

    built = new_rule(rule_id, name)
    built["then"]["location_types"] = list(types)
    built["then"]["sorts"] = [{"by": by, "band": 0} for by in sorts]
    built["then"]["fallback"] = list(fallback)
    built["then"]["split"]["max_shipments"] = max_shipments
    return built


def document(*rules: dict[str, Any], otherwise: str = "hold") -> dict[str, Any]:
    return {"rules": list(rules), "otherwise": otherwise}


def by_priority(name: str = "By priority", **options: Any) -> dict[str, Any]:
    return document(rule("main", name, **options))


async def publish_rules(client: AsyncClient, key: str, doc: dict[str, Any], **body: Any) -> dict[str, Any]:
    saved = await client.put(f"{RULES}/draft", json={"document": doc}, headers=bearer(key))
    assert saved.status_code == 200, saved.text
    published = await client.post(f"{RULES}/versions", json=body, headers=bearer(key))
    assert published.status_code == 201, published.text
    return published.json()


# --- the network ----------------------------------------------------------------------------------


def tag() -> str:
    return uuid.uuid4().hex[:6].upper()


async def network(client: AsyncClient, key: str, *, stock: dict[str, dict[str, int]] | None = None,
                  ) -> dict[str, str]:
    """A warehouse in Lyon (priority 10), a second warehouse in Lille (priority 30), a Paris
    store (priority 20) that ships, offers click & collect and receives transfers, and two SKUs.
    ``stock`` is {"sku"|"sku2": {"wh"|"wh2"|"store": units}}; by default 10 of each SKU at wh."""
    t = tag()
    c = {"wh": f"WH-{t}", "wh2": f"WH2-{t}", "store": f"ST-{t}", "sku": f"SKU-{t}", "sku2": f"SKU2-{t}"}
    await make_locations(
        client, key,
        location_body(c["wh"], name="Lyon DC", city="Lyon", latitude=45.764, longitude=4.8357, priority=10),
        location_body(c["wh2"], name="Lille DC", city="Lille", latitude=50.6292, longitude=3.0573, priority=30),
        location_body(c["store"], name="Paris Rivoli", kind="store", latitude=48.8606, longitude=2.3376,
                      ships_to_customers=False, ship_from_store=True, click_and_collect=True,
                      receives_transfers=True, priority=20),
    )
    response = await client.post(f"{API}/products/import", headers=bearer(key), json={"products": [
        product_body(c["sku"], price_minor=2500, category="shoes"),
        product_body(c["sku2"], price_minor=4000, category="coats"),
    ]})
    assert response.status_code == 200, response.text
    wanted = stock if stock is not None else {"sku": {"wh": 10}, "sku2": {"wh": 10}}
    quantities = {(c[sku], c[loc]): units for sku, per in wanted.items() for loc, units in per.items() if units}
    if quantities:
        await stock_up(client, key, quantities)
    return c


async def stock_of(client: AsyncClient, key: str, sku: str) -> dict[str, tuple[int, int]]:
    """location code -> (on_hand, reserved), as GET /inventory shows it."""
    response = await client.get(f"{API}/inventory", params={"sku": sku}, headers=bearer(key))
    assert response.status_code == 200, response.text
    [entry] = response.json()
    return {level["location"]: (level["on_hand"], level["reserved"]) for level in entry["levels"]}


# --- orders -----------------------------------------------------------------------------------------


def order_body(*lines: tuple[str, int, int], channel: str = "web", email: str | None = None,
               external_number: str | None = None, pickup: str | None = None, paid: bool = True,
               shipping: int = 0, **overrides: Any) -> dict[str, Any]:
    """An order of (sku, quantity, unit price) lines whose totals add up, shipped to Paris
    unless ``pickup`` names the store."""
    total = sum(q * p for _, q, p in lines) + shipping
    body: dict[str, Any] = {
        "channel": channel, "currency": "EUR",
        "lines": [{"sku": s, "quantity": q, "unit_price_minor": p} for s, q, p in lines],
        "customer": {"email": email or f"{unique('buyer')}@example.test", "name": "Bea Buyer", "phone": "+33100000000"},
        "delivery": ({"mode": "pickup", "pickup_location": pickup} if pickup else
                     {"mode": "ship", "address": {"country": "FR", "name": "Bea Buyer", "line1": "1 rue de Rivoli",
                                                  "city": "Paris", "postcode": "75001", "latitude": PARIS[0],
                                                  "longitude": PARIS[1]}}),
        "shipping_fee_minor": shipping, "total_minor": total,
    }
    if paid:
        body["payment"] = {"provider": "external", "method": "card", "authorized_minor": total}
    if external_number:
        body["external_number"] = external_number
    body.update(overrides)
    return body


async def capture(client: AsyncClient, key: str, body: dict[str, Any], headers: dict[str, str] | None = None,
                  expect: int = 201) -> dict[str, Any]:
    response = await client.post(ORDERS, json=body, headers={**bearer(key), **(headers or {})})
    assert response.status_code == expect, response.text
    return response.json()


async def get_order(client: AsyncClient, key: str, order_id: str) -> dict[str, Any]:
    response = await client.get(f"{ORDERS}/{order_id}", headers=bearer(key))
    assert response.status_code == 200, response.text
    return response.json()


async def routed_order(client: AsyncClient, tenant: Any, body: dict[str, Any]) -> dict[str, Any]:
    """Capture, let the worker route it, and return the order as it stands."""
    created = await capture(client, tenant.api_key, body)
    await run_outbox_inline(tenant.tenant_id)
    return await get_order(client, tenant.api_key, created["id"])


async def act(client: AsyncClient, key: str, fulfilment_id: str, action: str, **body: Any) -> Any:
    return await client.post(f"{FULFILMENTS}/{fulfilment_id}/{action}", json=body, headers=bearer(key))


async def act_ok(client: AsyncClient, key: str, fulfilment_id: str, *actions: str, **body: Any) -> dict[str, Any]:
    done: dict[str, Any] = {}
    for action in actions:
        response = await act(client, key, fulfilment_id, action, **body)
        assert response.status_code == 200, f"{action}: {response.text}"
        done = response.json()
    return done


async def queue(client: AsyncClient, key: str, location: str, **params: Any) -> list[dict[str, Any]]:
    """A location's fulfilment queue through the API."""
    response = await client.get(FULFILMENTS, params={"location": location, **params}, headers=bearer(key))
    assert response.status_code == 200, response.text
    return response.json()


async def cancel(client: AsyncClient, key: str, order_id: str, **body: Any) -> Any:
    return await client.post(f"{ORDERS}/{order_id}/cancel", json=body, headers=bearer(key))


async def list_orders(client: AsyncClient, key: str, **params: Any) -> dict[str, Any]:
    response = await client.get(ORDERS, params=params, headers=bearer(key))
    assert response.status_code == 200, response.text
    return response.json()


async def route_again(tenant_id: uuid.UUID, order_id: str) -> None:
    """One more delivery of the orders.route message, as a worker would receive it."""
    from core.broker import COROUTINES

    await COROUTINES["orders.route"](tenant_id=str(tenant_id), order_id=order_id)


def problems_of(response: Any) -> dict[str, str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return {e["field"]: e["message"] for e in response.json()["errors"]}


def kinds(order: dict[str, Any]) -> list[str]:
    return [e["kind"] for e in order["events"]]


async def count_rows(owner_engine: Any, table: str, tenant_id: uuid.UUID, where: str = "true") -> int:
    """Rows of the tenant in ``table``, read as the database owner in the tenant's scope."""
    async with owner_engine.connect() as conn, conn.begin():
        await conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant_id)})
        return int((await conn.execute(text(f"SELECT count(*) FROM {table} WHERE tenant_id = :t AND {where}"),
                                        {"t": tenant_id})).scalar_one())


ROUTE_MESSAGES = "actor_name = 'orders.route'"


# --- 1. capture and routing -------------------------------------------------------------------------------


async def test_captured_order_is_routed_with_stock_reserved_and_a_timeline(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key)
    await publish_rules(client, key, by_priority("Warehouses by priority"))

    body = order_body((c["sku"], 2, 2500), (c["sku2"], 1, 4000), shipping=490, external_number="WEB-1001",
                      email="Bea.Buyer@Example.test")
    created = await capture(client, key, body)
    assert created["status"] == "received"
    assert created["number"].startswith("O-")
    assert created["channel"] == "web" and created["external_number"] == "WEB-1001"
    assert [(line["line_no"], line["sku"], line["quantity"], line["unit_price_minor"], line["allocated"])
            for line in created["lines"]] == [(1, c["sku"], 2, 2500, 0), (2, c["sku2"], 1, 4000, 0)]
    assert created["lines"][0]["name"] == f"Product {c['sku']}"
    assert (created["subtotal_minor"], created["shipping_fee_minor"], created["total_minor"]) == (9000, 490, 9490)
    assert created["currency"] == "EUR"
    # Emails are kept in lower case, so that search and the customer record match whatever the case typed.
    assert created["customer_email"] == "bea.buyer@example.test" and created["customer_name"] == "Bea Buyer"
    assert (created["payment_status"], created["authorized_minor"], created["captured_minor"]) == (
        "authorized", 9490, 0)
    assert created["fulfilments"] == [] and created["routing"] is None
    assert created["delivery_mode"] == "ship"

    ran = await run_outbox_inline(tenant.tenant_id)
    assert ("orders.route", {"tenant_id": str(tenant.tenant_id), "order_id": created["id"]}) in ran

    order = await get_order(client, key, created["id"])
    assert order["status"] == "routed"
    assert order["routing_version"] == 1
    [fulfilment] = order["fulfilments"]
    assert fulfilment["location"] == c["wh"]
    assert fulfilment["kind"] == "ship" and fulfilment["status"] == "created"
    assert fulfilment["number"] == f"{order['number']}-1"
    assert sorted((f["sku"], f["quantity"]) for f in fulfilment["lines"]) == sorted([(c["sku"], 2), (c["sku2"], 1)])
    assert [line["allocated"] for line in order["lines"]] == [2, 1]

    assert (await stock_of(client, key, c["sku"]))[c["wh"]] == (10, 2)
    assert (await stock_of(client, key, c["sku2"]))[c["wh"]] == (10, 1)

    assert kinds(order) == ["order.received", "fulfilment.created", "order.routed"]
    received, created_event, routed = order["events"]
    assert received["to_status"] == "received" and "WEB-1001" in received["reason"]
    assert created_event["to_status"] == "created" and c["wh"] in created_event["reason"]
    assert routed["from_status"] == "received" and routed["to_status"] == "routed"
    assert "Warehouses by priority" in routed["reason"] and "(v1)" in routed["reason"]
    assert routed["actor"] == "router"

    routing = order["routing"]
    assert routing["version"] == 1 and routing["outcome"] == "fulfil"
    assert routing["rule"] == "Warehouses by priority"
    assert [s["location"] for s in routing["shipments"]] == [c["wh"]]
    [tried] = routing["trace"]
    assert tried["matched"] is True and tried["rule"] == "Warehouses by priority"
    assert {entry["location"] for entry in tried["locations"]} >= {c["wh"], c["wh2"], c["store"]}
    assert any(c["wh"] in step for step in tried["steps"])
    assert await ledger_mismatches(tenant.tenant_id) == []


# --- 2. bad input ------------------------------------------------------------------------------------------


async def test_order_with_many_problems_is_refused_listing_each_and_stores_nothing(client, owner_engine) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key)
    no_pickup = f"NOPICK-{tag()}"
    await make_locations(client, key, location_body(no_pickup, kind="store", click_and_collect=False))
    await publish_rules(client, key, by_priority())
    email = f"{unique('nobody')}@example.test"

    body = order_body((f"NOPE-{tag()}", 1, 1000), (c["sku"], 0, 2500), channel="fax", pickup=no_pickup,
                      email=email, external_number="FAX-1", currency="USD")
    response = await client.post(ORDERS, json=body, headers=bearer(key))
    problems = problems_of(response)
    assert set(problems) == {"channel", "currency", "lines[0].sku", "lines[1].quantity", "delivery.pickup_location"}
    assert "'fax'" in problems["channel"]
    assert "EUR" in problems["currency"] and "USD" in problems["currency"]
    assert "Line 1" in problems["lines[0].sku"] and "unknown SKU" in problems["lines[0].sku"]
    assert "Line 2" in problems["lines[1].quantity"] and "not 0" in problems["lines[1].quantity"]
    assert no_pickup in problems["delivery.pickup_location"] and "pickup" in problems["delivery.pickup_location"]
    assert response.json()["detail"].startswith("The order was not accepted: 5 problems.")

    wrong_total = order_body((c["sku"], 2, 2500), email=email)
    wrong_total["total_minor"] = 4000
    wrong_total["payment"]["authorized_minor"] = 4000
    problems = problems_of(await client.post(ORDERS, json=wrong_total, headers=bearer(key)))
    assert set(problems) == {"total_minor"}
    assert "5000" in problems["total_minor"] and "4000" in problems["total_minor"]

    underpaid = order_body((c["sku"], 2, 2500), email=email)
    underpaid["payment"]["authorized_minor"] = 100
    underpaid["customer"]["email"] = "not-an-email"
    underpaid["placed_at"] = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    problems = problems_of(await client.post(ORDERS, json=underpaid, headers=bearer(key)))
    assert set(problems) == {"payment.authorized_minor", "customer.email", "placed_at"}

    naive = order_body((c["sku"], 1, 2500), email=email, placed_at="2026-01-01T10:00:00")
    assert set(problems_of(await client.post(ORDERS, json=naive, headers=bearer(key)))) == {"placed_at"}

    assert (await list_orders(client, key))["orders"] == []
    for table in ("orders", "order_lines", "customers", "outbox_messages"):
        assert await count_rows(owner_engine, table, tenant.tenant_id) == 0, table
    assert (await stock_of(client, key, c["sku"]))[c["wh"]] == (10, 0)


async def test_pickup_at_an_unknown_or_paused_store_is_refused(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key)
    unknown = order_body((c["sku"], 1, 2500), pickup=f"GHOST-{tag()}")
    assert "Unknown pickup store" in problems_of(
        await client.post(ORDERS, json=unknown, headers=bearer(key)))["delivery.pickup_location"]
    no_store = order_body((c["sku"], 1, 2500))
    no_store["delivery"] = {"mode": "pickup"}
    assert set(problems_of(await client.post(ORDERS, json=no_store, headers=bearer(key)))) == {
        "delivery.pickup_location"}
    no_address = order_body((c["sku"], 1, 2500))
    no_address["delivery"] = {"mode": "ship"}
    assert set(problems_of(await client.post(ORDERS, json=no_address, headers=bearer(key)))) == {"delivery.address"}
    paused = f"PAUSED-{tag()}"
    await make_locations(client, key, location_body(paused, kind="store", click_and_collect=True, status="paused"))
    at_paused = order_body((c["sku"], 1, 2500), pickup=paused)
    assert "paused" in problems_of(
        await client.post(ORDERS, json=at_paused, headers=bearer(key)))["delivery.pickup_location"]
    bad_mode = order_body((c["sku"], 1, 2500))
    bad_mode["delivery"]["mode"] = "drone"
    assert set(problems_of(await client.post(ORDERS, json=bad_mode, headers=bearer(key)))) == {"delivery.mode"}
    assert (await list_orders(client, key))["orders"] == []


# --- 3. idempotency ------------------------------------------------------------------------------------------


async def test_same_idempotency_key_captures_once_and_replays(client, owner_engine) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key)
    body = order_body((c["sku"], 1, 2500))
    headers = {**bearer(key), "Idempotency-Key": unique("idem")}

    first = await client.post(ORDERS, json=body, headers=headers)
    assert first.status_code == 201, first.text
    again = await client.post(ORDERS, json=body, headers=headers)
    assert again.status_code == 201, again.text
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json() == first.json()

    other = await client.post(ORDERS, json=order_body((c["sku"], 2, 2500)), headers=headers)
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["title"]

    assert [o["id"] for o in (await list_orders(client, key))["orders"]] == [first.json()["id"]]
    assert await count_rows(owner_engine, "orders", tenant.tenant_id) == 1
    assert await count_rows(owner_engine, "outbox_messages", tenant.tenant_id, ROUTE_MESSAGES) == 1


async def test_resending_a_channel_order_number_returns_the_stored_order(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key)
    await publish_rules(client, key, by_priority())
    body = order_body((c["sku"], 1, 2500), channel="marketplace", external_number="AMZ-407-1")
    first = await capture(client, key, body)
    await run_outbox_inline(tenant.tenant_id)

    resent = await capture(client, key, body, expect=200)
    assert resent["id"] == first["id"] and resent["number"] == first["number"]
    assert resent["status"] == "routed"  # the order as it stands, not a second one
    # The same number from another channel is another order.
    other_channel = await capture(client, key, {**body, "channel": "web"})
    assert other_channel["id"] != first["id"]

    assert len((await list_orders(client, key))["orders"]) == 2
    await run_outbox_inline(tenant.tenant_id)
    assert (await stock_of(client, key, c["sku"]))[c["wh"]] == (10, 2)  # one unit each, never three


async def test_concurrent_captures_of_one_channel_order_make_one_order(client, make_client, owner_engine) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key)
    await publish_rules(client, key, by_priority())
    body = order_body((c["sku"], 3, 2500), channel="marketplace", external_number=unique("MKP"))
    clients = [await make_client() for _ in range(5)]

    responses = await asyncio.gather(*(other.post(ORDERS, json=body, headers=bearer(key)) for other in clients))
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 200, 201], [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert await count_rows(owner_engine, "orders", tenant.tenant_id) == 1
    assert await count_rows(owner_engine, "order_lines", tenant.tenant_id) == 1
    assert await count_rows(owner_engine, "customers", tenant.tenant_id) == 1

    await run_outbox_inline(tenant.tenant_id)
    assert (await stock_of(client, key, c["sku"]))[c["wh"]] == (10, 3)
    order = await get_order(client, key, responses[0].json()["id"])
    assert order["status"] == "routed" and len(order["fulfilments"]) == 1


# --- 4. routing ----------------------------------------------------------------------------------------------


async def test_order_without_rules_goes_on_hold_and_is_routed_once_released(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key)
    order = await routed_order(client, tenant, order_body((c["sku"], 1, 2500)))
    assert order["status"] == "on_hold"
    assert "No routing rules" in order["hold_reason"]
    assert order["fulfilments"] == [] and order["routing_version"] is None
    assert (await stock_of(client, key, c["sku"]))[c["wh"]] == (10, 0)
    assert kinds(order)[-2:] == ["order.on_hold", "task.opened"]  # customer service decides

    await publish_rules(client, key, by_priority("After the launch"))
    released = await client.post(f"{ORDERS}/{order['id']}/release", headers=bearer(key))
    assert released.status_code == 200, released.text
    assert released.json()["status"] == "received"
    await run_outbox_inline(tenant.tenant_id)

    order = await get_order(client, key, order["id"])
    assert order["status"] == "routed", order["hold_reason"]
    assert order["hold_reason"] is None
    assert [f["location"] for f in order["fulfilments"]] == [c["wh"]]
    assert order["routing"]["rule"] == "After the launch"
    assert (await stock_of(client, key, c["sku"]))[c["wh"]] == (10, 1)

    again = await client.post(f"{ORDERS}/{order['id']}/release", headers=bearer(key))
    assert again.status_code == 409 and "routed" in again.json()["detail"]


async def test_order_routes_by_the_version_in_force_when_it_was_placed(client) -> None:
    from core import clock

    tenant = await create_tenant(timezone="Europe/Paris")
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"wh": 10, "store": 10}})
    await publish_rules(client, key, document(rule("wh", "Warehouses only", types=("warehouse",))))
    year = datetime.now(UTC).year + 2  # midnight on 1 January in Paris, some time ahead
    v2 = await publish_rules(client, key, document(rule("st", "Stores first", types=("store", "warehouse"))),
                             effective_from=f"{year}-01-01T00:00:00")
    assert v2["number"] == 2 and v2["status"] == "scheduled"

    with clock.frozen_at(datetime(year, 1, 2, 9, 0, tzinfo=UTC)):
        before = await capture(client, key, order_body((c["sku"], 1, 2500),
                                                       placed_at=f"{year - 1}-12-31T23:59:00+01:00"))
        after = await capture(client, key, order_body((c["sku"], 1, 2500), placed_at=f"{year}-01-01T00:01:00+01:00"))
        await run_outbox_inline(tenant.tenant_id)
        before = await get_order(client, key, before["id"])
        after = await get_order(client, key, after["id"])

    assert before["placed_at"].startswith(f"{year - 1}-12-31T22:59:00")
    assert (before["status"], before["routing_version"], before["routing"]["rule"]) == ("routed", 1, "Warehouses only")
    assert [f["location"] for f in before["fulfilments"]] == [c["wh"]]
    assert "(v1)" in before["events"][-1]["reason"]
    assert (after["status"], after["routing_version"], after["routing"]["rule"]) == ("routed", 2, "Stores first")
    assert [f["location"] for f in after["fulfilments"]] == [c["store"]]
    assert "(v2)" in after["events"][-1]["reason"]
    stock = await stock_of(client, key, c["sku"])
    assert (stock[c["wh"]], stock[c["store"]]) == ((10, 1), (10, 1))


async def test_routing_the_same_order_again_reserves_once(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key)
    await publish_rules(client, key, by_priority())
    created = await capture(client, key, order_body((c["sku"], 2, 2500)))

    # Three deliveries of the message at once, then the one the outbox holds, then one more.
    await asyncio.gather(*(route_again(tenant.tenant_id, created["id"]) for _ in range(3)))
    await run_outbox_inline(tenant.tenant_id)
    await route_again(tenant.tenant_id, created["id"])

    order = await get_order(client, key, created["id"])
    assert order["status"] == "routed"
    assert len(order["fulfilments"]) == 1
    assert kinds(order).count("fulfilment.created") == 1 and kinds(order).count("order.routed") == 1
    assert order["lines"][0]["allocated"] == 2
    assert (await stock_of(client, key, c["sku"]))[c["wh"]] == (10, 2)

    # Twice in one transaction, as a worker retrying inside its own unit of work would.
    from core.db import get_database
    from orders import allocation

    second = await capture(client, key, order_body((c["sku"], 3, 2500)))
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        statuses = [await allocation.route(session, tenant.tenant_id, uuid.UUID(second["id"])) for _ in range(2)]
    assert statuses == ["routed", "routed"]
    await run_outbox_inline(tenant.tenant_id)
    second = await get_order(client, key, second["id"])
    assert len(second["fulfilments"]) == 1 and kinds(second).count("order.routed") == 1
    assert (await stock_of(client, key, c["sku"]))[c["wh"]] == (10, 5)
    assert await ledger_mismatches(tenant.tenant_id) == []


async def test_missing_stock_backorders_or_holds_as_the_rule_says(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"wh": 2}})
    await publish_rules(client, key, by_priority("Wait for stock", fallback=("backorder",)))
    waiting = await routed_order(client, tenant, order_body((c["sku"], 5, 2500)))
    assert waiting["status"] == "backordered"
    assert waiting["fulfilments"] == []
    assert waiting["routing"]["outcome"] == "backorder"
    assert "waiting for stock" in waiting["events"][-1]["reason"]
    assert (await stock_of(client, key, c["sku"]))[c["wh"]] == (2, 0)

    await publish_rules(client, key, by_priority("Ask customer service", fallback=("split", "hold")))
    held = await routed_order(client, tenant, order_body((c["sku"], 5, 2500)))
    assert held["status"] == "on_hold"
    assert "customer service" in held["hold_reason"] and "(v2)" in held["hold_reason"]
    assert held["fulfilments"] == []
    assert any("lack 3 units" in step for step in held["routing"]["trace"][0]["steps"])

    await stock_up(client, key, {(c["sku"], c["wh2"]): 5})
    released = await client.post(f"{ORDERS}/{waiting['id']}/release", headers=bearer(key))
    assert released.status_code == 200, released.text
    await run_outbox_inline(tenant.tenant_id)
    waiting = await get_order(client, key, waiting["id"])
    assert waiting["status"] == "routed"
    assert [f["location"] for f in waiting["fulfilments"]] == [c["wh2"]]
    assert (await stock_of(client, key, c["sku"]))[c["wh2"]] == (5, 5)


async def test_backorders_are_routed_when_a_feed_brings_stock(client) -> None:
    from inventory_factories import send_feed

    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={})
    await publish_rules(client, key, by_priority(fallback=("backorder",)))
    waiting = await routed_order(client, tenant, order_body((c["sku"], 3, 2500)))
    assert waiting["status"] == "backordered"

    sent = await send_feed(client, key, unique("feed"), "delta", [(c["sku"], c["wh"], 4)])
    assert sent.status_code in (200, 201, 202), sent.text
    for _ in range(3):  # the feed, then the backorder release it queues
        await run_outbox_inline(tenant.tenant_id)
    order = await get_order(client, key, waiting["id"])
    assert order["status"] == "routed"
    assert [f["location"] for f in order["fulfilments"]] == [c["wh"]]
    assert (await stock_of(client, key, c["sku"]))[c["wh"]] == (4, 3)


async def test_order_splits_across_two_locations_when_the_rule_allows(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"wh": 2, "wh2": 1}})
    await publish_rules(client, key, by_priority("Split in two", fallback=("split", "hold"), max_shipments=2))
    order = await routed_order(client, tenant, order_body((c["sku"], 3, 2500)))
    assert order["status"] == "routed"
    assert sorted((f["location"], f["lines"][0]["quantity"]) for f in order["fulfilments"]) == [
        (c["wh"], 2), (c["wh2"], 1)]
    assert sorted(f["number"] for f in order["fulfilments"]) == [f"{order['number']}-1", f"{order['number']}-2"]
    assert kinds(order).count("fulfilment.created") == 2
    stock = await stock_of(client, key, c["sku"])
    assert (stock[c["wh"]], stock[c["wh2"]]) == ((2, 2), (1, 1))

    await publish_rules(client, key, by_priority("One parcel only", fallback=("split", "hold"), max_shipments=1))
    await stock_up(client, key, {(c["sku"], c["wh"]): 2, (c["sku"], c["wh2"]): 1})
    single = await routed_order(client, tenant, order_body((c["sku"], 3, 2500)))
    assert single["status"] == "on_hold" and single["fulfilments"] == []
    assert any("the limit is 1" in step for step in single["routing"]["trace"][0]["steps"])


# --- 5. fulfilment lifecycle ---------------------------------------------------------------------------------


async def test_shipping_consumes_stock_and_captures_the_payment(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key)
    await publish_rules(client, key, by_priority())
    order = await routed_order(client, tenant, order_body((c["sku"], 2, 2500), (c["sku2"], 1, 4000), shipping=500))
    [fulfilment] = order["fulfilments"]
    fid = fulfilment["id"]

    steps = []
    for action in ("accept", "pick", "pack"):
        steps.append((await act_ok(client, key, fid, action))["status"])
    assert steps == ["accepted", "picking", "packed"]
    assert (await get_order(client, key, order["id"]))["status"] == "routed"
    shipped = await act_ok(client, key, fid, "ship", tracking_number="TRACK-123")
    assert shipped["status"] == "shipped" and shipped["location"] == c["wh"]

    order = await get_order(client, key, order["id"])
    assert order["status"] == "shipped"
    assert [(line["sku"], line["shipped"]) for line in order["lines"]] == [(c["sku"], 2), (c["sku2"], 1)]
    assert (order["payment_status"], order["captured_minor"], order["refunded_minor"]) == ("captured", 9500, 0)
    assert kinds(order)[-6:] == ["fulfilment.accepted", "fulfilment.picking", "fulfilment.packed",
                                 "fulfilment.shipped", "payment.captured", "order.shipped"]
    assert order["events"][-3]["data"].get("tracking_number") == "TRACK-123"

    assert (await stock_of(client, key, c["sku"]))[c["wh"]] == (8, 0)
    assert (await stock_of(client, key, c["sku2"]))[c["wh"]] == (9, 0)
    ledger = await client.get(f"{API}/inventory/movements", params={"sku": c["sku"], "location": c["wh"]},
                              headers=bearer(key))
    assert ledger.status_code == 200, ledger.text
    moves = [(m["reason"], m["on_hand_delta"], m["reserved_delta"], m["reference"]) for m in ledger.json()]
    assert ("shipped", -2, -2, f"order {order['number']}") in moves
    assert any(reason != "shipped" and reserved == 2 for reason, _, reserved, _ in moves)  # the reservation
    assert await ledger_mismatches(tenant.tenant_id) == []
    assert await queue(client, key, c["wh"]) == []  # done: off the warehouse's queue
    assert [f["status"] for f in await queue(client, key, c["wh"], all_states="true")] == ["shipped"]


async def test_moves_the_lifecycle_does_not_allow_are_refused_with_the_current_state(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key)
    await publish_rules(client, key, by_priority())

    cancelled = await routed_order(client, tenant, order_body((c["sku"], 1, 2500)))
    fid = cancelled["fulfilments"][0]["id"]
    response = await client.post(f"{ORDERS}/{cancelled['id']}/cancel", json={"reason": "changed mind"},
                                 headers=bearer(key))
    assert response.status_code == 200, response.text
    refused = await act(client, key, fid, "ship")
    assert refused.status_code == 409, refused.text
    assert "is cancelled" in refused.json()["detail"] and "shipped" in refused.json()["detail"]

    order = await routed_order(client, tenant, order_body((c["sku"], 1, 2500)))
    fid = order["fulfilments"][0]["id"]
    too_soon = await act(client, key, fid, "ship")
    assert too_soon.status_code == 409 and "is created" in too_soon.json()["detail"]
    not_pickup = await act(client, key, fid, "ready")
    assert not_pickup.status_code == 409 and "ship it instead" in not_pickup.json()["detail"]
    assert (await act(client, key, fid, "teleport")).status_code == 404
    assert (await act(client, key, str(uuid.uuid4()), "accept")).status_code == 404
    await act_ok(client, key, fid, "accept", "pick", "pack", "ship")
    repack = await act(client, key, fid, "pack")
    assert repack.status_code == 409, repack.text
    assert "is shipped" in repack.json()["detail"]
    reject = await act(client, key, fid, "reject", reason="too late")
    assert reject.status_code == 409 and "is shipped" in reject.json()["detail"]

    order = await get_order(client, key, order["id"])
    assert order["status"] == "shipped" and order["fulfilments"][0]["status"] == "shipped"
    assert (await stock_of(client, key, c["sku"]))[c["wh"]] == (9, 0)
    assert await ledger_mismatches(tenant.tenant_id) == []


async def test_pickup_order_is_made_ready_then_collected_at_the_store(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"wh": 5, "store": 5}})
    await publish_rules(client, key, by_priority("Click and collect", types=("store", "warehouse")))
    order = await routed_order(client, tenant, order_body((c["sku"], 2, 2500), pickup=c["store"]))
    assert order["status"] == "routed" and order["delivery_mode"] == "pickup"
    assert order["pickup_location"] == c["store"]
    [fulfilment] = order["fulfilments"]
    assert (fulfilment["location"], fulfilment["kind"]) == (c["store"], "pickup")
    assert (await stock_of(client, key, c["sku"]))[c["store"]] == (5, 2)
    fid = fulfilment["id"]

    await act_ok(client, key, fid, "accept", "pick", "pack")
    ship = await act(client, key, fid, "ship")
    assert ship.status_code == 409 and "collected in store" in ship.json()["detail"]
    assert (await act_ok(client, key, fid, "ready"))["status"] == "ready_for_pickup"
    ready = await get_order(client, key, order["id"])
    assert ready["status"] == "ready_for_pickup"
    assert ready["payment_status"] == "authorized"
    assert [f["id"] for f in await queue(client, key, c["store"])] == [fid]  # waiting at the counter

    assert (await act_ok(client, key, fid, "collect"))["status"] == "collected"
    collected = await get_order(client, key, order["id"])
    assert collected["status"] == "collected"
    assert collected["lines"][0]["shipped"] == 2
    assert (collected["payment_status"], collected["captured_minor"]) == ("captured", 5000)
    assert (await stock_of(client, key, c["sku"]))[c["store"]] == (3, 0)
    assert (await stock_of(client, key, c["sku"]))[c["wh"]] == (5, 0)
    assert await queue(client, key, c["store"]) == []
    assert await ledger_mismatches(tenant.tenant_id) == []


async def test_rejected_fulfilment_is_released_and_routed_elsewhere(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"wh": 5, "wh2": 5}})
    await publish_rules(client, key, by_priority(types=("warehouse",)))
    order = await routed_order(client, tenant, order_body((c["sku"], 2, 2500)))
    [first] = order["fulfilments"]
    assert first["location"] == c["wh"]

    silent = await act(client, key, first["id"], "reject")
    assert silent.status_code == 422, silent.text
    blank = await act(client, key, first["id"], "reject", reason="   ")
    assert blank.status_code == 422
    assert (await get_order(client, key, order["id"]))["fulfilments"][0]["status"] == "created"

    await act_ok(client, key, first["id"], "accept")
    rejected = await act_ok(client, key, first["id"], "reject", reason="Item damaged")
    assert (rejected["status"], rejected["reason"]) == ("rejected", "Item damaged")
    assert (await stock_of(client, key, c["sku"]))[c["wh"]] == (5, 0)
    waiting = await get_order(client, key, order["id"])
    assert waiting["status"] == "received"
    assert waiting["lines"][0]["allocated"] == 0
    assert c["wh"] in waiting["events"][-1]["reason"] and "Item damaged" in waiting["events"][-1]["reason"]

    await run_outbox_inline(tenant.tenant_id)
    order = await get_order(client, key, order["id"])
    assert order["status"] == "routed"
    assert [(f["location"], f["status"]) for f in order["fulfilments"]] == [(c["wh"], "rejected"),
                                                                          (c["wh2"], "created")]
    assert order["fulfilments"][1]["number"] == f"{order['number']}-2"
    assert c["wh"] not in {entry["location"] for entry in order["routing"]["trace"][0]["locations"]}
    stock = await stock_of(client, key, c["sku"])
    assert (stock[c["wh"]], stock[c["wh2"]]) == ((5, 0), (5, 2))
    assert await queue(client, key, c["wh"]) == []
    assert [f["order_id"] for f in await queue(client, key, c["wh2"])] == [order["id"]]

    # The second location rejects too: nowhere is left, so the order waits for customer service.
    await act_ok(client, key, order["fulfilments"][1]["id"], "reject", reason="Item missing")
    await run_outbox_inline(tenant.tenant_id)
    order = await get_order(client, key, order["id"])
    assert order["status"] == "on_hold"
    assert all(f["status"] == "rejected" for f in order["fulfilments"])
    assert await ledger_mismatches(tenant.tenant_id) == []


# --- 6. cancellation ---------------------------------------------------------------------------------------------


async def test_cancelling_before_shipment_releases_every_reservation(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"wh": 2, "wh2": 5}, "sku2": {"wh": 5}})
    await publish_rules(client, key, by_priority(types=("warehouse",)))
    order = await routed_order(client, tenant, order_body((c["sku"], 3, 2500), (c["sku2"], 1, 4000)))
    assert sorted(f["location"] for f in order["fulfilments"]) == [c["wh"], c["wh2"]]
    assert (await stock_of(client, key, c["sku"])) == {c["wh"]: (2, 2), c["wh2"]: (5, 1)}

    response = await cancel(client, key, order["id"], reason="Customer changed their mind")
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert cancelled["status"] == "cancelled"
    assert [(line["cancelled"], line["allocated"]) for line in cancelled["lines"]] == [(3, 0), (1, 0)]
    assert {f["status"] for f in cancelled["fulfilments"]} == {"cancelled"}
    assert all(f["lines"] == [] for f in cancelled["fulfilments"])
    assert (cancelled["payment_status"], cancelled["captured_minor"], cancelled["refunded_minor"]) == (
        "authorized", 0, 0)  # nothing was captured, so nothing to refund
    assert "payment.refunded" not in kinds(cancelled)
    assert cancelled["events"][-1]["kind"] == "order.cancelled"
    assert cancelled["events"][-1]["reason"] == "Customer changed their mind"

    assert (await stock_of(client, key, c["sku"])) == {c["wh"]: (2, 0), c["wh2"]: (5, 0)}
    assert (await stock_of(client, key, c["sku2"])) == {c["wh"]: (5, 0)}
    assert await queue(client, key, c["wh"]) == [] and await queue(client, key, c["wh2"]) == []
    again = await cancel(client, key, order["id"])
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]
    assert await ledger_mismatches(tenant.tenant_id) == []


async def test_cancelling_what_is_left_after_a_shipment_refunds_it(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"wh": 2, "wh2": 1}})
    await publish_rules(client, key, by_priority(types=("warehouse",)))
    order = await routed_order(client, tenant, order_body((c["sku"], 3, 2500), shipping=500))
    assert sorted(f["location"] for f in order["fulfilments"]) == [c["wh"], c["wh2"]]
    from_wh = next(f for f in order["fulfilments"] if f["location"] == c["wh"])
    await act_ok(client, key, from_wh["id"], "accept", "pick", "pack", "ship")
    order = await get_order(client, key, order["id"])
    assert order["status"] == "partially_shipped"
    assert (order["payment_status"], order["captured_minor"]) == ("captured", 8000)

    response = await cancel(client, key, order["id"], reason="Out of stock at Lille")
    assert response.status_code == 200, response.text
    order = response.json()
    assert order["status"] == "shipped"
    assert [(line["shipped"], line["cancelled"], line["allocated"]) for line in order["lines"]] == [(2, 1, 2)]
    assert (order["payment_status"], order["captured_minor"], order["refunded_minor"]) == (
        "partially_refunded", 8000, 2500)
    refund = next(e for e in order["events"] if e["kind"] == "payment.refunded")
    assert refund["data"]["amount_minor"] == 2500 and "Out of stock at Lille" in refund["reason"]
    assert {f["location"]: f["status"] for f in order["fulfilments"]} == {c["wh"]: "shipped", c["wh2"]: "cancelled"}
    assert (await stock_of(client, key, c["sku"])) == {c["wh"]: (0, 0), c["wh2"]: (1, 0)}

    too_late = await cancel(client, key, order["id"])
    assert too_late.status_code == 409, too_late.text
    assert too_late.json()["title"] == "Too late"
    assert await ledger_mismatches(tenant.tenant_id) == []


async def test_cancelling_some_units_of_lines(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key)
    await publish_rules(client, key, by_priority())
    order = await routed_order(client, tenant, order_body((c["sku"], 3, 2500), (c["sku2"], 1, 4000)))

    response = await cancel(client, key, order["id"], reason="one pair too many", lines=[{"line_no": 1, "quantity": 1}])
    assert response.status_code == 200, response.text
    order = response.json()
    assert order["status"] == "routed"
    assert [(line["quantity"], line["allocated"], line["cancelled"]) for line in order["lines"]] == [
        (3, 2, 1), (1, 1, 0)]
    [fulfilment] = order["fulfilments"]
    assert fulfilment["status"] == "created"
    assert sorted((f["sku"], f["quantity"]) for f in fulfilment["lines"]) == sorted([(c["sku"], 2), (c["sku2"], 1)])
    assert (await stock_of(client, key, c["sku"]))[c["wh"]] == (10, 2)
    event = next(e for e in order["events"] if e["kind"] == "order.lines_cancelled")
    assert event["data"]["lines"] == {"1": 1} and event["reason"] == "one pair too many"

    over = await cancel(client, key, order["id"], lines=[{"line_no": 1, "quantity": 3}])
    problems = problems_of(over)
    assert list(problems) == ["lines[0].quantity"]
    assert "Line 1" in problems["lines[0].quantity"] and "only 2 of 3" in problems["lines[0].quantity"]
    twice = await cancel(client, key, order["id"], lines=[{"line_no": 1, "quantity": 2}, {"line_no": 1, "quantity": 1}])
    assert list(problems_of(twice)) == ["lines[1].quantity"]
    unknown = problems_of(await cancel(client, key, order["id"], lines=[{"line_no": 9, "quantity": 1},
                                                                        {"line_no": 2, "quantity": 0}]))
    assert "no line 9" in unknown["lines[0].line_no"] and "at least one unit" in unknown["lines[1].quantity"]
    assert (await stock_of(client, key, c["sku"]))[c["wh"]] == (10, 2)  # refusals changed nothing

    response = await cancel(client, key, order["id"], lines=[{"line_no": 2, "quantity": 1}])
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "routed"
    assert (await stock_of(client, key, c["sku2"]))[c["wh"]] == (10, 0)
    assert [(f["sku"], f["quantity"]) for f in response.json()["fulfilments"][0]["lines"]] == [(c["sku"], 2)]

    await act_ok(client, key, fulfilment["id"], "accept", "pick", "pack", "ship")
    order = await get_order(client, key, order["id"])
    assert order["status"] == "shipped"
    assert [(line["shipped"], line["cancelled"]) for line in order["lines"]] == [(2, 1), (0, 1)]
    assert (await stock_of(client, key, c["sku"]))[c["wh"]] == (8, 0)
    shipped_line = problems_of(await cancel(client, key, order["id"], lines=[{"line_no": 1, "quantity": 1}]))
    assert "2 shipped" in shipped_line["lines[0].quantity"]
    assert await ledger_mismatches(tenant.tenant_id) == []
    # The customer keeps 2 units at 25.00: that is what they pay, whatever was cancelled before the capture.
    assert order["payment_status"] in ("captured", "partially_refunded")
    assert order["captured_minor"] - order["refunded_minor"] == 5000, (order["captured_minor"],
                                                                        order["refunded_minor"])


async def test_cancelled_order_is_not_routed_by_a_late_message(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key)
    await publish_rules(client, key, by_priority())
    created = await capture(client, key, order_body((c["sku"], 2, 2500)))
    response = await cancel(client, key, created["id"], reason="fraud check failed")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert response.json()["lines"][0]["cancelled"] == 2

    await run_outbox_inline(tenant.tenant_id)
    await route_again(tenant.tenant_id, created["id"])
    order = await get_order(client, key, created["id"])
    assert order["status"] == "cancelled"
    assert order["fulfilments"] == [] and order["routing"] is None
    assert "order.routed" not in kinds(order)
    assert (await stock_of(client, key, c["sku"]))[c["wh"]] == (10, 0)
    assert (await client.post(f"{ORDERS}/{created['id']}/release", headers=bearer(key))).status_code == 409


# --- 7. the orders list ----------------------------------------------------------------------------------------


def numbers(page: dict[str, Any]) -> list[str]:
    return [o["number"] for o in page["orders"]]


async def test_orders_list_filters_by_status_channel_mode_location_day_and_search(client) -> None:
    from zoneinfo import ZoneInfo

    from core import clock

    paris = ZoneInfo("Europe/Paris")
    tenant = await create_tenant(timezone="Europe/Paris")
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"wh": 10, "store": 10}})
    day = (datetime.now(paris) - timedelta(days=30)).date()
    with clock.frozen_at(datetime.combine(day - timedelta(days=5), datetime.min.time(), paris)):
        await publish_rules(client, key, by_priority())  # in force before the orders below were placed

    def local(days: int, hour: int, minute: int) -> str:
        return datetime.combine(day + timedelta(days=days), datetime.min.time(), paris).replace(
            hour=hour, minute=minute).isoformat()

    late = await capture(client, key, order_body((c["sku"], 1, 2500), channel="web",
                                                 placed_at=local(0, 23, 30)))
    after_midnight = await capture(client, key, order_body((c["sku"], 1, 2500), channel="store", pickup=c["store"],
                                                           placed_at=local(1, 0, 30)))
    marketplace = await capture(client, key, order_body((c["sku"], 1, 2500), channel="marketplace",
                                                        external_number="MKP-77", placed_at=local(1, 23, 59)))
    email = f"Special.{unique('customer')}@Example.test"
    too_big = await capture(client, key, order_body((c["sku"], 50, 2500), channel="phone", email=email,
                                                    placed_at=local(2, 0, 0)))
    await run_outbox_inline(tenant.tenant_id)
    n = {name: o["number"] for name, o in (("late", late), ("midnight", after_midnight),
                                           ("mkp", marketplace), ("big", too_big))}

    assert numbers(await list_orders(client, key)) == [n["big"], n["mkp"], n["midnight"], n["late"]]
    assert numbers(await list_orders(client, key, status="on_hold")) == [n["big"]]
    assert numbers(await list_orders(client, key, status="routed")) == [n["mkp"], n["midnight"], n["late"]]
    assert numbers(await list_orders(client, key, channel="marketplace")) == [n["mkp"]]
    assert numbers(await list_orders(client, key, delivery_mode="pickup")) == [n["midnight"]]
    assert numbers(await list_orders(client, key, location=c["store"])) == [n["midnight"]]
    assert numbers(await list_orders(client, key, location=c["wh"])) == [n["mkp"], n["late"]]
    # Days are the company's days: 00:30 in Paris is the next day, though still the same day in UTC.
    first = day + timedelta(days=1)
    assert numbers(await list_orders(client, key, day_from=first.isoformat(), day_to=first.isoformat())) == [
        n["mkp"], n["midnight"]]
    assert numbers(await list_orders(client, key, day_to=day.isoformat())) == [n["late"]]
    assert numbers(await list_orders(client, key, day_from=(day + timedelta(days=2)).isoformat())) == [n["big"]]
    assert numbers(await list_orders(client, key, day_from=first.isoformat(), channel="store")) == [n["midnight"]]
    assert numbers(await list_orders(client, key, q=n["late"])) == [n["late"]]
    assert numbers(await list_orders(client, key, q=n["late"].lower())) == [n["late"]]
    assert numbers(await list_orders(client, key, q="MKP-77")) == [n["mkp"]]
    assert numbers(await list_orders(client, key, q=email.lower())) == [n["big"]]
    assert numbers(await list_orders(client, key, q="nobody@example.test")) == []
    summary = (await list_orders(client, key, q="MKP-77"))["orders"][0]
    assert (summary["channel"], summary["external_number"], summary["status"], summary["total_minor"],
            summary["currency"], summary["delivery_mode"]) == ("marketplace", "MKP-77", "routed", 2500, "EUR", "ship")

    for params, field in (({"status": "lost"}, "status"), ({"day_from": "yesterday"}, "from"),
                          ({"day_to": "2026-02-30"}, "to")):
        response = await client.get(ORDERS, params=params, headers=bearer(key))
        assert field in problems_of(response), params


async def test_orders_list_pages_newest_first_without_gaps_or_repeats(client) -> None:
    import base64

    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    placed = [start + timedelta(hours=h) for h in (0, 1, 2, 3, 3, 5, 6)]  # two orders in the same second
    ids = []
    for at in placed:
        ids.append((await capture(client, key, order_body((c["sku"], 1, 2500), placed_at=at.isoformat())))["id"])
    expected = [i for _, i in sorted(zip(placed, ids, strict=True), key=lambda p: (p[0], uuid.UUID(p[1])),
                                     reverse=True)]

    pages, after = [], None
    while True:
        page = await list_orders(client, key, limit=3, **({"after": after} if after else {}))
        pages.append([o["id"] for o in page["orders"]])
        after = page["next_cursor"]
        if after is None:
            break
        assert len(pages) < 5
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p] == expected
    assert len({i for p in pages for i in p}) == 7

    for bad in ("not a cursor!", base64.urlsafe_b64encode(b"yesterday|nothing").decode(), "%%%"):
        response = await client.get(ORDERS, params={"after": bad}, headers=bearer(key))
        assert "after" in problems_of(response), bad
    naive = base64.urlsafe_b64encode(f"{start.replace(tzinfo=None).isoformat()}|{ids[0]}".encode()).decode()
    response = await client.get(ORDERS, params={"after": naive}, headers=bearer(key))
    assert response.status_code in (200, 422), response.text


# --- 8. isolation ----------------------------------------------------------------------------------------------


async def test_another_company_can_neither_see_nor_touch_the_orders(client, make_client) -> None:
    a = await create_tenant()
    c = await network(client, a.api_key)
    await publish_rules(client, a.api_key, by_priority())
    order = await routed_order(client, a, order_body((c["sku"], 2, 2500), external_number="ALPHA-77"))
    fid = order["fulfilments"][0]["id"]

    b = await create_tenant()
    bkey = b.api_key
    bc = await network(client, bkey)
    api_refusals = [
        await client.get(f"{ORDERS}/{order['id']}", headers=bearer(bkey)),
        await cancel(client, bkey, order["id"], reason="not yours"),
        await cancel(client, bkey, order["id"], lines=[{"line_no": 1, "quantity": 1}]),
        await client.post(f"{ORDERS}/{order['id']}/release", headers=bearer(bkey)),
        *[await act(client, bkey, fid, action, reason="not yours") for action in
          ("accept", "pick", "pack", "ship", "ready", "collect", "deliver", "reject")],
    ]
    assert [r.status_code for r in api_refusals] == [404] * len(api_refusals), [r.text for r in api_refusals]
    assert all(order["number"] not in r.text for r in api_refusals)
    assert (await list_orders(client, bkey))["orders"] == []
    assert (await list_orders(client, bkey, q=order["number"]))["orders"] == []
    assert (await list_orders(client, bkey, q="ALPHA-77"))["orders"] == []
    assert await queue(client, bkey, c["wh"]) == []
    assert await queue(client, bkey, c["wh"], all_states="true") == []
    # A's SKUs mean nothing to B, and B's order under the same channel number is B's own, not A's.
    theirs = await client.post(ORDERS, json=order_body((c["sku"], 1, 2500), external_number="ALPHA-77"),
                               headers=bearer(bkey))
    assert "lines[0].sku" in problems_of(theirs)
    mine = await capture(client, bkey, order_body((bc["sku"], 1, 2500), external_number="ALPHA-77"))
    assert mine["id"] != order["id"] and mine["number"] != order["number"]
    assert [o["id"] for o in (await list_orders(client, bkey))["orders"]] == [mine["id"]]

    console = await make_client()
    await login(console, b.email)
    pages = [
        await console.get(f"/app/orders/{order['id']}"),
        await console.get(f"/app/orders/{order['id']}/live"),
        await post_form(console, f"/app/orders/{order['id']}/cancel", {"whole": "1", "reason": "not yours"}),
        await post_form(console, f"/app/orders/{order['id']}/release"),
        await post_form(console, f"/app/fulfilments/{fid}/accept"),
        await post_form(console, f"/app/fulfilments/{fid}/reject", {"reason": "Item missing"}),
    ]
    assert [p.status_code for p in pages] == [404] * len(pages), [p.status_code for p in pages]
    listing = await console.get("/app/orders")
    assert listing.status_code == 200 and order["number"] not in listing.text
    queue_page = await console.get("/app/fulfilments", params={"location": c["wh"]})
    assert queue_page.status_code == 200
    assert order["number"] not in queue_page.text and fid not in queue_page.text

    after = await get_order(client, a.api_key, order["id"])
    assert after["status"] == "routed" and after["fulfilments"][0]["status"] == "created"
    assert kinds(after) == kinds(order)
    assert (await stock_of(client, a.api_key, c["sku"]))[c["wh"]] == (10, 2)


# --- 9. roles ---------------------------------------------------------------------------------------------------


async def member(tenant_id: uuid.UUID, role: str, locations: list[str] | None = None) -> str:
    """A user with ``role`` in the tenant (a store associate at ``locations``); returns the email."""
    from core.db import get_database
    from core.security import hash_password
    from tenants.models import Membership, User

    email = f"{unique(role.replace('_', '-'))}@example.test"
    async with get_database().transaction(tenant_id=tenant_id) as session:
        user = User(email=email, name=f"A {role}", password_hash=await hash_password(PASSWORD))
        session.add(user)
        await session.flush()
        session.add(Membership(tenant_id=tenant_id, user_id=user.id, role=role, locations=locations or []))
    return email


async def key_with_role(tenant: Any, role: str) -> str:
    from core.auth import Principal
    from core.db import get_database
    from tenants.service import create_api_key

    principal = Principal(tenant_id=tenant.tenant_id, role="owner", label=tenant.email, tenant_name=tenant.name,
                          timezone="Europe/Paris", currency="EUR", user_id=tenant.user_id)
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        api_key, token = await create_api_key(session, principal, name=f"{role} key")
        api_key.role = role
    return token


async def test_read_only_looks_and_store_associate_handles_fulfilments_only(client, make_client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key)
    await publish_rules(client, key, by_priority())
    order = await routed_order(client, tenant, order_body((c["sku"], 2, 2500)))
    fid = order["fulfilments"][0]["id"]
    viewer, associate = await key_with_role(tenant, "read_only"), await key_with_role(tenant, "store_associate")

    assert [o["id"] for o in (await list_orders(client, viewer))["orders"]] == [order["id"]]
    assert (await get_order(client, viewer, order["id"]))["status"] == "routed"
    assert [f["id"] for f in await queue(client, viewer, c["wh"])] == [fid]
    refused = [
        await client.post(ORDERS, json=order_body((c["sku"], 1, 2500)), headers=bearer(viewer)),
        await cancel(client, viewer, order["id"]),
        await client.post(f"{ORDERS}/{order['id']}/release", headers=bearer(viewer)),
        await act(client, viewer, fid, "accept"),
        await act(client, viewer, fid, "reject", reason="bored"),
        await client.post(ORDERS, json=order_body((c["sku"], 1, 2500)), headers=bearer(associate)),
        await cancel(client, associate, order["id"]),
        await client.post(f"{ORDERS}/{order['id']}/release", headers=bearer(associate)),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused), [r.text for r in refused]
    assert (await get_order(client, key, order["id"]))["fulfilments"][0]["status"] == "created"
    assert len((await list_orders(client, key))["orders"]) == 1

    # A key that says store associate works at no location: associates use the console.
    assert (await act(client, associate, fid, "accept")).status_code == 404
    assert (await act_ok(client, key, fid, "accept", "pick", "pack"))["status"] == "packed"
    shipped = await get_order(client, key, order["id"])

    reader = await make_client()
    await login(reader, await member(tenant.tenant_id, "read_only"))
    listing = await reader.get("/app/orders")
    assert listing.status_code == 200 and order["number"] in listing.text
    assert (await reader.get(f"/app/orders/{order['id']}")).status_code == 200
    assert (await reader.get("/app/orders/new")).status_code == 403
    form = {"channel": "phone", "email": "x@example.test", "line.0.sku": c["sku"], "line.0.quantity": "1",
            "line.0.price": "25.00", "mode": "ship", "country": "FR"}
    assert (await post_form(reader, "/app/orders/new", form)).status_code == 403
    assert (await post_form(reader, f"/app/orders/{order['id']}/cancel", {"whole": "1"})).status_code == 403
    assert (await post_form(reader, f"/app/fulfilments/{fid}/ship")).status_code == 403
    queue_page = await reader.get("/app/fulfilments", params={"location": c["wh"]})
    assert queue_page.status_code == 200 and shipped["fulfilments"][0]["number"] in queue_page.text
    assert f"/app/fulfilments/{fid}/" not in queue_page.text  # no buttons for a reader

    handler = await make_client()
    await login(handler, await member(tenant.tenant_id, "store_associate", [c["wh"]]))
    assert (await handler.get("/app/orders/new")).status_code == 403
    assert (await post_form(handler, "/app/orders/new", form)).status_code == 403
    queue_page = await handler.get("/app/fulfilments", params={"location": c["wh"]})
    assert f'action="/app/fulfilments/{fid}/ship"' in queue_page.text
    # The console asks which carrier takes a parcel to a customer (tests/integration/test_shipping.py).
    assert (await post_form(handler, f"/app/fulfilments/{fid}/ship")).status_code == 422
    done = await post_form(handler, f"/app/fulfilments/{fid}/ship", {"carrier": "colissimo",
                                                                      "tracking_number": "6A0000000001"})
    assert done.status_code == 303, done.text
    assert (await get_order(client, key, order["id"]))["status"] == "shipped"
    assert len((await list_orders(client, key))["orders"]) == 1


# --- 10. the console --------------------------------------------------------------------------------------------


async def test_console_manual_order_queue_and_actions(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key)
    await publish_rules(client, key, by_priority())
    await login(client, tenant.email)

    new_page = await client.get("/app/orders/new")
    assert new_page.status_code == 200 and 'id="new-order"' in new_page.text
    email = f"{unique('phone')}@example.test"
    form = {"channel": "phone", "email": email, "name": "Paul Phone", "line.0.sku": c["sku"],
            "line.0.quantity": "2", "line.0.price": "25.00", "line.1.sku": c["sku2"], "line.1.quantity": "1",
            "line.1.price": "40", "mode": "ship", "line1": "2 rue du Bac", "postcode": "75007", "city": "Paris",
            "country": "fr", "latitude": "48.85", "longitude": "2.32", "shipping_fee": "4.90", "paid": "on"}
    # Reviewed (its total shown), then placed under the review's token.
    review = await post_form(client, "/app/orders/new", {**form, "action": "review"})
    assert review.status_code == 200 and "Place order · 94,90" in review.text.replace("\xa0", " ")
    token = review.text.split('name="order_token" value="')[1].split('"')[0]
    created = await post_form(client, "/app/orders/new", {**form, "action": "place", "order_token": token})
    assert created.status_code == 303, created.text
    location = created.headers["location"]
    assert location.startswith("/app/orders/") and location.endswith("?done=order_created")
    order_id = location.removeprefix("/app/orders/").split("?")[0]

    order = await get_order(client, key, order_id)
    assert (order["channel"], order["status"], order["customer_email"], order["customer_name"]) == (
        "phone", "received", email, "Paul Phone")
    assert [(line["sku"], line["quantity"], line["unit_price_minor"]) for line in order["lines"]] == [
        (c["sku"], 2, 2500), (c["sku2"], 1, 4000)]
    assert (order["shipping_fee_minor"], order["total_minor"]) == (490, 9490)
    assert (order["payment_status"], order["authorized_minor"]) == ("authorized", 9490)
    page = await client.get(location)
    assert page.status_code == 200
    assert order["number"] in page.text and "Order received" in page.text and "Paul Phone" in page.text
    listing = await client.get("/app/orders")
    assert order["number"] in listing.text and email in listing.text
    filtered = await client.get("/app/orders", params={"channel": "web"})
    assert order["number"] not in filtered.text

    bad = dict(form, **{"line.0.sku": f"GHOST-{tag()}"})
    refused = await post_form(client, "/app/orders/new", bad)
    assert refused.status_code == 422
    assert "unknown SKU" in refused.text and bad["line.0.sku"] in refused.text
    assert email in refused.text  # what was typed is kept
    assert len((await list_orders(client, key))["orders"]) == 1

    await run_outbox_inline(tenant.tenant_id)
    order = await get_order(client, key, order_id)
    [fulfilment] = order["fulfilments"]
    fid = fulfilment["id"]
    queue_page = await client.get("/app/fulfilments", params={"location": c["wh"]})
    assert queue_page.status_code == 200
    assert fulfilment["number"] in queue_page.text and order["number"] in queue_page.text
    assert f'action="/app/fulfilments/{fid}/accept"' in queue_page.text
    assert f'action="/app/fulfilments/{fid}/reject"' in queue_page.text

    accepted = await post_form(client, f"/app/fulfilments/{fid}/accept")
    assert accepted.status_code == 303, accepted.text
    assert accepted.headers["location"] == f"/app/fulfilments?location={c['wh']}&done=fulfilment_updated"
    assert (await get_order(client, key, order_id))["fulfilments"][0]["status"] == "accepted"
    queue_page = await client.get("/app/fulfilments", params={"location": c["wh"]})
    assert f'action="/app/fulfilments/{fid}/pick"' in queue_page.text
    assert f'action="/app/fulfilments/{fid}/accept"' not in queue_page.text
    picked = await post_form(client, f"/app/fulfilments/{fid}/pick", {"back": "order"})
    assert picked.status_code == 303
    assert picked.headers["location"] == f"/app/orders/{order_id}?done=fulfilment_updated"
    page = await client.get(f"/app/orders/{order_id}")
    assert "picking" in page.text and "Why this location" in page.text

    cancelled = await post_form(client, f"/app/orders/{order_id}/cancel", {"whole": "1", "reason": "by phone"})
    assert cancelled.status_code == 303
    order = await get_order(client, key, order_id)
    assert order["status"] == "cancelled" and order["fulfilments"][0]["status"] == "cancelled"
    assert (await stock_of(client, key, c["sku"]))[c["wh"]] == (10, 0)
    assert "Nothing to do" in (await client.get("/app/fulfilments", params={"location": c["wh"]})).text


async def test_console_manual_order_form_says_what_is_wrong_with_a_typed_value(client) -> None:
    tenant = await create_tenant()
    c = await network(client, tenant.api_key)
    await login(client, tenant.email)
    form = {"channel": "phone", "email": f"{unique('phone')}@example.test", "line.0.sku": c["sku"],
            "line.0.quantity": "1", "line.0.price": "25.00", "mode": "ship", "country": "FR"}
    unexplained = []
    for field, typed, message in (("line.0.price", "cheap", "give the unit price"),
                                  ("line.0.quantity", "two", "is not a whole number"),
                                  ("shipping_fee", "free", "The shipping fee is an amount"),
                                  ("latitude", "north", "is not a number")):
        refused = await post_form(client, "/app/orders/new", dict(form, **{field: typed}))
        assert refused.status_code == 422, field
        if message not in refused.text:
            unexplained.append(f"{field}={typed!r}")
    assert unexplained == [], "the 422 page does not say what is wrong with these"
    assert (await list_orders(client, tenant.api_key))["orders"] == []


# --- more of the lifecycle ----------------------------------------------------------------------------------


async def test_ship_to_store_order_travels_to_the_store_then_is_collected(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"wh": 5}})
    await publish_rules(client, key, by_priority("Send it to the store", types=("store", "warehouse"),
                                                 fallback=("ship_to_store", "hold")))
    order = await routed_order(client, tenant, order_body((c["sku"], 2, 2500), pickup=c["store"]))
    assert order["status"] == "routed"
    [transfer] = order["fulfilments"]
    assert (transfer["location"], transfer["kind"], transfer["ship_to_store"]) == (c["wh"], "transfer", c["store"])
    assert f"{c['wh']} → {c['store']}" in order["events"][-1]["reason"]
    assert (await stock_of(client, key, c["sku"]))[c["wh"]] == (5, 2)

    await act_ok(client, key, transfer["id"], "accept", "pick", "pack")
    early = await act(client, key, transfer["id"], "ready")
    assert early.status_code == 409  # it has to reach the store first
    await act_ok(client, key, transfer["id"], "ship")
    on_the_way = await get_order(client, key, order["id"])
    assert on_the_way["status"] == "routed"  # not with the customer yet
    assert on_the_way["captured_minor"] == 5000
    assert (await stock_of(client, key, c["sku"]))[c["wh"]] == (3, 0)

    await act_ok(client, key, transfer["id"], "ready")
    assert (await get_order(client, key, order["id"]))["status"] == "ready_for_pickup"
    await act_ok(client, key, transfer["id"], "collect")
    collected = await get_order(client, key, order["id"])
    assert collected["status"] == "collected"
    assert collected["lines"][0]["shipped"] == 2
    assert (await stock_of(client, key, c["sku"]))[c["wh"]] == (3, 0)  # taken out once, when it left
    assert await ledger_mismatches(tenant.tenant_id) == []


async def test_uncollected_pickup_expires_and_goes_back_on_the_shelf(client) -> None:
    from core import clock
    from core.broker import COROUTINES

    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"store": 4}})
    await publish_rules(client, key, by_priority(types=("store",)))
    order = await routed_order(client, tenant, order_body((c["sku"], 1, 2500), pickup=c["store"]))
    fid = order["fulfilments"][0]["id"]
    await act_ok(client, key, fid, "accept", "pick", "pack", "ready")

    await COROUTINES["orders.expire_pickups"](tenant_id=str(tenant.tenant_id))
    assert (await get_order(client, key, order["id"]))["status"] == "ready_for_pickup"  # within the window
    with clock.frozen_at(datetime.now(UTC) + timedelta(days=8)):
        await COROUTINES["orders.expire_pickups"](tenant_id=str(tenant.tenant_id))
    order = await get_order(client, key, order["id"])
    assert order["status"] == "cancelled"
    assert order["fulfilments"][0]["status"] == "expired"
    assert order["lines"][0]["cancelled"] == 1
    assert (await stock_of(client, key, c["sku"]))[c["store"]] == (4, 0)
    assert await ledger_mismatches(tenant.tenant_id) == []
    # The customer's figures lose the order, as a cancellation takes it off.
    from sqlalchemy import select

    from core.db import get_database
    from customers.models import Customer
    from customers.service import stats_of
    from orders.customer_stats import recount

    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        customer = await session.scalar(select(Customer.id).where(Customer.tenant_id == tenant.tenant_id,
                                                                  Customer.email == order["customer_email"]))
        assert customer is not None
        kept = await stats_of(session, tenant.tenant_id, [customer])
        assert kept == await recount(session, tenant.tenant_id, [customer])
    assert (kept[customer].orders_count, kept[customer].lifetime_value_minor) == (0, 0)


async def test_pickup_waiting_at_the_counter_can_still_be_cancelled(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"store": 4}})
    await publish_rules(client, key, by_priority(types=("store",)))
    order = await routed_order(client, tenant, order_body((c["sku"], 2, 2500), pickup=c["store"]))
    fid = order["fulfilments"][0]["id"]
    await act_ok(client, key, fid, "accept", "pick", "pack", "ready")
    assert (await get_order(client, key, order["id"]))["status"] == "ready_for_pickup"

    response = await cancel(client, key, order["id"], reason="customer called: won't come")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert (await stock_of(client, key, c["sku"]))[c["store"]] == (4, 0)


async def test_rejection_after_a_partial_shipment_keeps_the_order_partially_shipped(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"wh": 2, "store": 1, "wh2": 1}})
    await publish_rules(client, key, by_priority(types=("warehouse", "store")))
    order = await routed_order(client, tenant, order_body((c["sku"], 3, 2500)))
    locations = {f["location"]: f["id"] for f in order["fulfilments"]}
    assert set(locations) == {c["wh"], c["wh2"]}  # warehouses first, then stores
    await act_ok(client, key, locations[c["wh"]], "accept", "pick", "pack", "ship")
    assert (await get_order(client, key, order["id"]))["status"] == "partially_shipped"

    await act_ok(client, key, locations[c["wh2"]], "reject", reason="Item damaged")
    await run_outbox_inline(tenant.tenant_id)
    order = await get_order(client, key, order["id"])
    assert [(f["location"], f["status"]) for f in order["fulfilments"]] == [
        (c["wh"], "shipped"), (c["wh2"], "rejected"), (c["store"], "created")]
    assert (await stock_of(client, key, c["sku"]))[c["store"]] == (1, 1)
    assert order["status"] == "partially_shipped", "2 of 3 units have left: the order is partially shipped"


async def test_console_home_delivery_without_a_country_is_refused(client) -> None:
    tenant = await create_tenant()
    c = await network(client, tenant.api_key)
    await login(client, tenant.email)
    form = {"channel": "phone", "email": f"{unique('phone')}@example.test", "line.0.sku": c["sku"],
            "line.0.quantity": "1", "line.0.price": "25.00", "mode": "ship", "line1": "2 rue du Bac",
            "city": "Paris", "country": ""}
    refused = await post_form(client, "/app/orders/new", form)
    assert refused.status_code == 422, f"accepted: {refused.headers.get('location')}"
    assert (await list_orders(client, tenant.api_key))["orders"] == []


async def test_cancelling_the_store_part_of_a_split_pickup_releases_the_store_stock(client) -> None:
    """A pickup of 3: 1 from the store's shelf, 2 sent from the warehouse. Once the warehouse's
    parcel has left (its units are shipped), cancelling one unit can only be the store's: its
    reservation is released, and nothing is asked of the warehouse, which holds nothing now."""
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"wh": 5, "store": 1}})
    await publish_rules(client, key, by_priority("Store first", types=("store", "warehouse"),
                                                 fallback=("split", "hold")))
    order = await routed_order(client, tenant, order_body((c["sku"], 3, 2500), pickup=c["store"]))
    by_kind = {f["kind"]: f for f in order["fulfilments"]}
    assert set(by_kind) == {"pickup", "transfer"}
    await act_ok(client, key, by_kind["transfer"]["id"], "accept", "pick", "pack", "ship", "ready")
    assert (await stock_of(client, key, c["sku"])) == {c["wh"]: (3, 0), c["store"]: (1, 1)}

    response = await cancel(client, key, order["id"], lines=[{"line_no": 1, "quantity": 1}], reason="one less")
    assert response.status_code == 200, response.text
    after = await get_order(client, key, order["id"])
    assert after["lines"][0]["cancelled"] == 1 and after["lines"][0]["shipped"] == 2
    assert {f["kind"]: f["status"] for f in after["fulfilments"]} == {"pickup": "cancelled",
                                                                       "transfer": "ready_for_pickup"}
    assert (await stock_of(client, key, c["sku"])) == {c["wh"]: (3, 0), c["store"]: (1, 0)}
    assert await ledger_mismatches(tenant.tenant_id) == []
    again = await cancel(client, key, order["id"], lines=[{"line_no": 1, "quantity": 1}])
    assert again.status_code == 422 and "can still be cancelled" in again.text
