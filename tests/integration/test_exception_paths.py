"""When things go wrong, and right again: a Stripe refund or capture that fails and succeeds on a
later attempt closes its customer-service task by itself; routing that loses its stock (to a stock
count) between looking and reserving decides again, never oversells, and holds the order when it
keeps losing; a key revoked in the console is refused at once; and who may resolve tasks or
change Settings → Orders."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from typing import Any

import pytest
import stripe
import test_stripe_payments as fake
from httpx import AsyncClient
from test_orders import key_with_role, member

from factories import TenantSetup, bearer, create_tenant, login, post_form, run_outbox_inline
from inventory_factories import API, adjust, ledger_mismatches, location_body, make_locations, one_warehouse_shop

stripe_base, KEY = fake.stripe_base, fake.KEY  # the shop's Stripe on the fake server (tests/integration/conftest.py)
Json = dict[str, Any]
TASKS = f"{API}/service-tasks"
SETTINGS = f"{API}/settings/orders"
# A restricted key with no right to the calls (or one rolled in the Stripe dashboard): Stripe answers 401.
REFUSED_KEY = "rk_test_rolled_in_the_dashboard"


def _order(number: str, sku: str, quantity: int, *, intent: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "channel": "web", "external_number": number, "currency": "EUR",
        "lines": [{"sku": sku, "quantity": quantity, "unit_price_minor": 1999}],
        "customer": {"email": f"{number.lower()}@example.test"},
        "delivery": {"mode": "ship", "address": {"country": "FR", "latitude": 48.85, "longitude": 2.35}},
        "total_minor": 1999 * quantity}
    if intent:
        body["payment"] = {"provider": "stripe", "reference": intent, "authorized_minor": 1999 * quantity}
    return body


async def _redeliver(tenant_id: uuid.UUID, actor_name: str) -> None:
    """Dramatiq's retry: the same message runs again."""
    from sqlalchemy import select

    from core.broker import COROUTINES
    from core.db import get_database
    from core.models import OutboxMessage

    async with get_database().transaction(tenant_id=tenant_id) as session:
        [row] = list(await session.scalars(select(OutboxMessage).where(
            OutboxMessage.tenant_id == tenant_id, OutboxMessage.actor_name == actor_name)))
    await COROUTINES[actor_name](**json.loads(json.dumps(row.kwargs)))


async def _get(client: AsyncClient, key: dict[str, str], order_id: str) -> Json:
    return dict((await client.get(f"{API}/orders/{order_id}", headers=key)).json())


async def _move(client: AsyncClient, key: dict[str, str], fulfilment_id: str, *actions: str) -> None:
    for action in actions:
        moved = await client.post(f"{API}/fulfilments/{fulfilment_id}/{action}", headers=key, json={})
        assert moved.status_code == 200, (action, moved.text)


async def _stripe_key(client: AsyncClient, key: dict[str, str], secret: str) -> None:
    saved = await client.put(f"{API}/payment-accounts/stripe", headers=key, json={"secret_key": secret})
    assert saved.status_code == 200, saved.text


async def _split_stripe_order(client: AsyncClient, base: str) -> tuple[TenantSetup, dict[str, str], Json, str]:
    """A Stripe order for two units that ships in two parts: one unit in each of two warehouses."""
    tenant = await create_tenant()
    key = bearer(tenant.api_key)  # as the company's shop and back office call the API
    await one_warehouse_shop(client, tenant.api_key, location="WH-A", sku="PAY-1", quantity=1)
    await make_locations(client, tenant.api_key, location_body("WH-B", latitude=45.7, longitude=4.8))
    assert (await adjust(client, tenant.api_key, "PAY-1", "WH-B", 1)).status_code == 201
    await _stripe_key(client, key, KEY)
    intent = fake.authorised_intent(base, 2 * 1999)
    created = await client.post(f"{API}/orders", headers=key, json=_order("P-1", "PAY-1", 2, intent=intent))
    assert created.status_code == 201, created.text
    await run_outbox_inline(tenant.tenant_id)
    order = await _get(client, key, created.json()["id"])
    assert len(order["fulfilments"]) == 2, order["fulfilments"]
    return tenant, key, order, intent


async def test_a_refused_refund_opens_a_task_that_a_later_attempt_closes(client: AsyncClient,
                                                                         stripe_base: str) -> None:
    from orders.payments import PaymentFailed

    tenant, key, order, intent = await _split_stripe_order(client, stripe_base)
    await _move(client, key, order["fulfilments"][0]["id"], "accept", "pick", "pack", "ship")
    await run_outbox_inline(tenant.tenant_id)
    assert (await _get(client, key, order["id"]))["captured_minor"] == order["total_minor"]
    unit = order["lines"][0]["unit_price_minor"]
    # The company pastes a key Stripe refuses, then cancels the unit that has not left: a refund is due.
    await _stripe_key(client, key, REFUSED_KEY)
    cancelled = await client.post(f"{API}/orders/{order['id']}/cancel", headers=key,
                                  json={"lines": [{"line_no": 1, "quantity": 1}], "reason": "damaged"})
    assert cancelled.status_code == 200, cancelled.text
    with pytest.raises(PaymentFailed):
        await run_outbox_inline(tenant.tenant_id)
    with pytest.raises(PaymentFailed):  # retried, refused again: counted on the same task
        await _redeliver(tenant.tenant_id, "payments.refund_stripe")
    [task] = (await client.get(TASKS, headers=key)).json()["tasks"]
    assert (task["kind"], task["order_number"], task["status"], task["occurrences"]) == (
        "refund_failed", order["number"], "open", 2)
    assert task["detail"].startswith("Refunding") and "failed" in task["detail"]
    assert stripe.Refund.list(payment_intent=intent, api_key=KEY).data == []

    await _stripe_key(client, key, KEY)
    await _redeliver(tenant.tenant_id, "payments.refund_stripe")
    closed = (await client.get(f"{TASKS}/{task['id']}", headers=key)).json()
    assert closed["status"] == "resolved" and "later attempt" in closed["resolution"], closed
    assert (await client.get(TASKS, headers=key)).json()["tasks"] == []
    assert [r.amount for r in stripe.Refund.list(payment_intent=intent, api_key=KEY).data] == [unit]
    after = await _get(client, key, order["id"])
    assert (after["payment_status"], after["refunded_minor"]) == ("partially_refunded", unit)
    kinds = [e["kind"] for e in after["events"]]
    assert (kinds.count("payment.refund_failed"), kinds.count("payment.refund_sent")) == (2, 1)
    assert [k for k in kinds if k.startswith("task.")] == ["task.opened", "task.resolved"]


async def test_a_capture_that_fails_once_then_succeeds_closes_its_task(client: AsyncClient,
                                                                       stripe_base: str) -> None:
    from orders.payments import PaymentFailed

    tenant, key, order, intent = await _split_stripe_order(client, stripe_base)
    first, second = order["fulfilments"]
    await _stripe_key(client, key, REFUSED_KEY)
    await _move(client, key, first["id"], "accept", "pick", "pack", "ship")
    with pytest.raises(PaymentFailed):  # a 401 may pass: tried again later
        await run_outbox_inline(tenant.tenant_id)
    [task] = (await client.get(TASKS, headers=key)).json()["tasks"]
    assert (task["kind"], task["status"]) == ("payment_capture_failed", "open") and "asked again" in task["detail"]
    assert (await _get(client, key, order["id"]))["payment_status"] == "capture_failed"
    await _move(client, key, second["id"], "accept", "pick", "pack")
    held = await client.post(f"{API}/fulfilments/{second['id']}/ship", headers=key, json={})
    assert held.status_code == 409, held.text

    await _stripe_key(client, key, KEY)
    await _redeliver(tenant.tenant_id, "payments.capture_stripe")
    closed = (await client.get(f"{TASKS}/{task['id']}", headers=key)).json()
    assert closed["status"] == "resolved" and "later attempt" in closed["resolution"], closed
    assert (await client.get(TASKS, headers=key)).json()["tasks"] == []
    captured = await _get(client, key, order["id"])
    assert (captured["payment_status"], captured["captured_minor"]) == ("captured", order["total_minor"])
    assert stripe.PaymentIntent.retrieve(intent, api_key=KEY).status == "succeeded"
    await _move(client, key, second["id"], "ship")
    after = await _get(client, key, order["id"])
    assert after["status"] == "shipped"
    assert [e["kind"] for e in after["events"] if e["kind"].startswith("task.")] == ["task.opened", "task.resolved"]


# --- routing that loses the race -------------------------------------------------------------------------------

async def _race(client: AsyncClient, monkeypatch: pytest.MonkeyPatch, stock: dict[str, int],
                counts: list[str]) -> tuple[TenantSetup, Json, list[dict[str, int]]]:
    """Warehouses with one SKU (WH-A nearest the customer) and an order. Each time routing of the
    order has looked at the stock, a stock count at the next location of ``counts`` finds one
    unit missing and takes it off, before the order can reserve: it decides on figures already
    out of date. (Two routing passes of one company never race: the second waits for the
    first.) Returns the order and what its routing saw each time."""
    from core.db import get_database
    from inventory import ledger
    from inventory_factories import line_for
    from orders import sourcing

    tenant = await create_tenant()
    key = bearer(tenant.api_key)
    await one_warehouse_shop(client, tenant.api_key, location="WH-A", sku="RACE-1", quantity=stock["WH-A"])
    far = {"WH-B": (45.7, 4.8), "WH-C": (43.3, 5.4)}  # Lyon, Marseille
    for code in sorted(set(stock) - {"WH-A"}):
        await make_locations(client, tenant.api_key, location_body(code, latitude=far[code][0], longitude=far[code][1]))
        assert (await adjust(client, tenant.api_key, "RACE-1", code, stock[code])).status_code == 201
    created = await client.post(f"{API}/orders", headers=key, json=_order("R-0", "RACE-1", 1))
    assert created.status_code == 201, created.text
    missing = [await line_for(tenant.tenant_id, "RACE-1", code, -1) for code in counts]
    real, seen = sourcing.Stock.snapshot, []

    async def racing(stock: Any, session: Any, tenant_id: uuid.UUID, at: datetime, *args: Any) -> Any:
        snapshot = await real(stock, session, tenant_id, at, *args)
        seen.append({loc.code: loc.available.get("RACE-1", 0) for loc in snapshot.locations})
        if missing:
            async with get_database().transaction(tenant_id=tenant.tenant_id) as counting:
                await ledger.adjust(counting, tenant.tenant_id, missing.pop(0), reason="count",
                                       actor="stock count")
        return snapshot

    monkeypatch.setattr(sourcing.Stock, "snapshot", racing)
    await run_outbox_inline(tenant.tenant_id)
    assert missing == [], "every count took its unit while the order was being routed"
    return tenant, await _get(client, key, created.json()["id"]), seen


async def _stock_is_sound(tenant_id: uuid.UUID) -> dict[str, tuple[int, int]]:
    """(on hand, reserved) per location, once the ledger is checked and nothing is oversold."""
    from inventory_factories import levels

    assert await ledger_mismatches(tenant_id) == []
    figures = {code: (on_hand, reserved) for (_, code), (on_hand, reserved, _) in (await levels(tenant_id)).items()}
    assert all(reserved <= on_hand for on_hand, reserved in figures.values()), figures
    return figures


def _created_at(order: Json) -> list[str]:
    return [e["data"].get("location") for e in order["events"] if e["kind"] == "fulfilment.created"]


async def test_routing_that_loses_its_stock_decides_again(client: AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    tenant, order, seen = await _race(client, monkeypatch, {"WH-A": 1, "WH-B": 5}, ["WH-A"])
    assert [s["WH-A"] for s in seen] == [1, 0]  # it chose the nearest unit, which the count then took
    assert (order["status"], [f["location"] for f in order["fulfilments"]]) == ("routed", ["WH-B"])
    assert _created_at(order) == ["WH-B"]  # nothing at WH-A on its timeline
    assert await _stock_is_sound(tenant.tenant_id) == {"WH-A": (0, 0), "WH-B": (5, 1)}
    assert (await client.get(TASKS, headers=bearer(tenant.api_key))).json()["tasks"] == []


async def test_routing_that_keeps_losing_holds_the_order_for_customer_service(
        client: AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    stock = {"WH-A": 1, "WH-B": 1, "WH-C": 1}
    tenant, order, seen = await _race(client, monkeypatch, stock, ["WH-A", "WH-B", "WH-C"])
    assert [max(s.values()) for s in seen] == [1, 1, 1]  # it saw a unit each time
    assert order["status"] == "on_hold" and "stock kept changing" in order["hold_reason"].lower()
    assert order["fulfilments"] == [] and _created_at(order) == []
    [task] = (await client.get(TASKS, headers=bearer(tenant.api_key))).json()["tasks"]
    assert (task["kind"], task["order_id"], task["detail"]) == ("order_on_hold", order["id"], order["hold_reason"])
    assert await _stock_is_sound(tenant.tenant_id) == {code: (0, 0) for code in stock}


# --- keys, roles and settings ----------------------------------------------------------------------------------

def _key_row(html: str, token: str) -> str:
    [row] = [r for r in html.split("<tr>") if f"…{token[-6:]}" in r]
    return row


async def test_a_key_revoked_in_the_console_is_refused_on_the_very_next_call(client: AsyncClient) -> None:
    tenant = await create_tenant()
    await login(client, tenant.email)
    assert (await post_form(client, "/app/settings/api-keys", {"name": "Warehouse script"})).status_code == 303
    page = (await client.get("/app/settings/api-keys")).text
    other = re.findall(r'<code id="new-api-key">([^<]+)</code>', page)[0]
    for _ in range(2):  # used, and so remembered, a moment before
        assert (await client.get(TASKS, headers=bearer(tenant.api_key))).status_code == 200
    found = re.search(r"/app/settings/api-keys/([0-9a-f-]{36})/revoke", _key_row(page, tenant.api_key))
    assert found, page
    revoked = await post_form(client, f"/app/settings/api-keys/{found.group(1)}/revoke")
    assert revoked.status_code == 303, revoked.text
    for _ in range(2):
        refused = await client.get(TASKS, headers=bearer(tenant.api_key))
        assert refused.status_code == 401 and "revoked" in refused.text, refused.text
    assert (await client.get(TASKS, headers=bearer(other))).status_code == 200
    assert "revoked" in _key_row((await client.get("/app/settings/api-keys")).text, tenant.api_key)


async def _held(client: AsyncClient, tenant: TenantSetup, number: str) -> Json:
    created = await client.post(f"{API}/orders", headers=bearer(tenant.api_key), json=_order(number, "TSK-1", 50))
    assert created.status_code == 201, created.text
    await run_outbox_inline(tenant.tenant_id)
    order = await _get(client, bearer(tenant.api_key), created.json()["id"])
    assert order["status"] == "on_hold", order
    return order


async def test_only_customer_service_and_admins_resolve_tasks(client: AsyncClient, make_client: Any) -> None:
    tenant = await create_tenant()
    await one_warehouse_shop(client, tenant.api_key, location="WH-T", sku="TSK-1", quantity=5)
    orders = [await _held(client, tenant, "T-1"), await _held(client, tenant, "T-2")]
    tasks = (await client.get(TASKS, headers=bearer(tenant.api_key))).json()["tasks"]
    first, second = (t["id"] for t in tasks)
    reader, associate = await key_with_role(tenant, "read_only"), await key_with_role(tenant, "store_associate")
    listed = await client.get(TASKS, headers=bearer(reader))
    assert listed.status_code == 200 and [t["id"] for t in listed.json()["tasks"]] == [first, second]
    for key in (reader, associate):
        refused = await client.post(f"{TASKS}/{first}/resolve", headers=bearer(key), json={"note": "done"})
        assert refused.status_code == 403, refused.text
    for role in ("store_associate", "read_only"):
        browser = await make_client()
        await login(browser, await member(tenant.tenant_id, role))
        assert (await post_form(browser, f"/app/service-tasks/{first}/resolve", {"note": "done"})).status_code == 403
    page = await browser.get("/app/service-tasks")  # the reader sees the tasks, with no form to resolve them
    assert page.status_code == 200 and orders[0]["number"] in page.text
    assert f"/app/service-tasks/{first}/resolve" not in page.text
    assert [t["id"] for t in (await client.get(TASKS, headers=bearer(tenant.api_key))).json()["tasks"]] == [
        first, second]  # both still open

    agent_key = await key_with_role(tenant, "customer_service")
    done = await client.post(f"{TASKS}/{first}/resolve", headers=bearer(agent_key), json={"note": "Will wait"})
    assert done.status_code == 200 and done.json()["status"] == "resolved", done.text
    agent, email = await make_client(), await member(tenant.tenant_id, "customer_service")
    await login(agent, email)
    resolved = await post_form(agent, f"/app/service-tasks/{second}/resolve", {"note": "Refunded by phone"})
    assert resolved.status_code == 303, resolved.text
    closed = (await client.get(f"{TASKS}/{second}", headers=bearer(tenant.api_key))).json()
    assert (closed["status"], closed["resolved_by"], closed["resolution"]) == ("resolved", email, "Refunded by phone")
    assert (await client.get(TASKS, headers=bearer(tenant.api_key))).json()["tasks"] == []


async def test_settings_orders_page_refuses_bad_windows_and_non_admins(client: AsyncClient,
                                                                       make_client: Any) -> None:
    tenant = await create_tenant()
    key = bearer(tenant.api_key)
    before = (await client.get(SETTINGS, headers=key)).json()
    await login(client, tenant.email)
    for bad in ("three", "0", "61", "", "-2", "4.5"):
        shown = await post_form(client, "/app/settings/orders", {"pickup_window_days": bad})
        assert shown.status_code == 422, (bad, shown.status_code)
        assert "Give a whole number of days from 1 to 60" in shown.text and f'value="{bad}"' in shown.text
        assert (await client.get(SETTINGS, headers=key)).json() == before
    wanted = before["pickup_window_days"] % 60 + 1
    saved = await post_form(client, "/app/settings/orders", {"pickup_window_days": str(wanted)})
    assert saved.status_code == 303, saved.text
    assert (await client.get(SETTINGS, headers=key)).json() == {"pickup_window_days": wanted}

    agent_key = bearer(await key_with_role(tenant, "customer_service"))
    assert (await client.get(SETTINGS, headers=agent_key)).status_code == 403
    other = wanted % 60 + 1
    assert (await client.put(SETTINGS, headers=agent_key, json={"pickup_window_days": other})).status_code == 403
    agent = await make_client()
    await login(agent, await member(tenant.tenant_id, "customer_service"))
    assert (await agent.get("/app/settings/orders")).status_code == 403
    assert (await post_form(agent, "/app/settings/orders", {"pickup_window_days": str(other)})).status_code == 403
    assert (await client.get(SETTINGS, headers=key)).json() == {"pickup_window_days": wanted}


async def test_settings_orders_page_refuses_a_digit_that_is_not_a_number(client: AsyncClient) -> None:
    # "²" is a digit to str.isdigit() but not a number to int(): the form must say so, not fail.
    tenant = await create_tenant()
    before = (await client.get(SETTINGS, headers=bearer(tenant.api_key))).json()
    await login(client, tenant.email)
    shown = await post_form(client, "/app/settings/orders", {"pickup_window_days": "²"})
    assert shown.status_code == 422, shown.status_code
    assert "Give a whole number of days from 1 to 60" in shown.text
    assert (await client.get(SETTINGS, headers=bearer(tenant.api_key))).json() == before
