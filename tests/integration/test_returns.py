"""Returns (RMA): opened for what the customer has, received at any location that takes returns,
inspected line by line into the stock ledger, refunded on the order's ledger; and every refusal
(too many units, after the window, a non-returnable category, receiving twice, a store
associate at a location not theirs, another company's return) changing nothing."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient
from test_orders import API, get_order, stock_of
from test_refund_ledger import ledger, messages, setup, shipped_order
from test_roles import _join

from core import clock
from factories import bearer, create_tenant, login, post_form

RETURNS = f"{API}/returns"


async def accept_returns(client: AsyncClient, key: str, code: str) -> None:
    """Tick "accepts returns" on the location ``code``."""
    listed = await client.get(f"{API}/locations", headers=bearer(key))
    assert listed.status_code == 200, listed.text
    [location] = [loc for loc in listed.json() if loc["code"] == code]
    body = {k: v for k, v in location.items() if k not in ("id", "created_at")}
    body["accepts_returns"] = True
    saved = await client.put(f"{API}/locations/{location['id']}", json=body, headers=bearer(key))
    assert saved.status_code == 200, saved.text


async def returning(client: AsyncClient) -> tuple[Any, dict[str, str], dict[str, Any]]:
    """A company whose warehouse and Paris store take returns, and an order of 2 x sku (25.00)
    and 1 x sku2 (40.00) with 5.00 shipping, shipped from the warehouse and captured."""
    tenant, c = await setup(client)
    await accept_returns(client, tenant.api_key, c["wh"])
    await accept_returns(client, tenant.api_key, c["store"])
    order = await shipped_order(client, tenant, (c["sku"], 2, 2500), (c["sku2"], 1, 4000), shipping=500)
    assert order["captured_minor"] == 9500
    return tenant, c, order


def open_return(client: AsyncClient, key: str, order_id: str, *lines: tuple[int, int], headers: Any = None,
                **body: Any) -> Any:
    return client.post(RETURNS, headers={**bearer(key), **(headers or {})}, json={
        "order_id": order_id, "lines": [{"line_no": n, "quantity": q, "reason_code": "too_small"} for n, q in lines],
        **body})


async def opened(client: AsyncClient, key: str, order_id: str, *lines: tuple[int, int], **body: Any) -> dict[str, Any]:
    response = await open_return(client, key, order_id, *lines, **body)
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_return_goes_from_requested_to_closed_with_stock_back_and_refund_on_the_ledger(client) -> None:
    tenant, c, order = await returning(client)
    key = tenant.api_key
    made = await opened(client, key, order["id"], (1, 1), (2, 1), method="post", location=c["wh"])
    assert (made["status"], made["number"], made["expected_location"]) == (
        "requested", f"{order['number']}-R1", c["wh"])
    assert made["label_reference"] and made["opened_via"] == "api"
    assert [(line["line_no"], line["quantity"], line["reason_code"]) for line in made["lines"]] == [
        (1, 1, "too_small"), (2, 1, "too_small")]
    before = await stock_of(client, key, c["sku"])

    # Received at the store, not where it was expected: any location that takes returns may.
    received = await client.post(f"{RETURNS}/{made['id']}/receive", json={"location": c["store"]}, headers=bearer(key))
    assert received.status_code == 200, received.text
    assert (received.json()["status"], received.json()["received_location"]) == ("received", c["store"])
    assert [line["refund_minor"] for line in received.json()["lines"]] == [2500, 4000]
    tasks = (await client.get(f"{API}/service-tasks", headers=bearer(key))).json()["tasks"]
    assert [t["kind"] for t in tasks if t["order_id"] == order["id"]] == ["return_to_inspect"]

    inspected = await client.post(f"{RETURNS}/{made['id']}/inspect", headers=bearer(key), json={"lines": [
        {"line_no": 1, "condition": "resellable"}, {"line_no": 2, "condition": "damaged"}]})
    assert inspected.status_code == 200, inspected.text
    done = inspected.json()
    assert (done["status"], done["refunded_minor"]) == ("closed", 6500)  # paid by the channel: closed at once
    assert [line["condition"] for line in done["lines"]] == ["resellable", "damaged"]

    # The resellable shoe is back on hand at the store; the damaged coat was received and written off.
    after = await stock_of(client, key, c["sku"])
    assert after.get(c["store"], (0, 0))[0] == before.get(c["store"], (0, 0))[0] + 1
    assert (await stock_of(client, key, c["sku2"])).get(c["store"], (0, 0))[0] == 0
    movements = (await client.get(f"{API}/inventory/movements", params={"sku": c["sku2"]},
                                  headers=bearer(key))).json()
    reasons = [m["reason"] for m in (movements.get("items", movements) if isinstance(movements, dict) else movements)]
    assert "return" in reasons and "return_written_off" in reasons

    [refund] = await ledger(client, key, order["id"])
    assert (refund["source"], refund["amount_minor"]) == ("return", 6500)
    assert sorted((line["line_no"], line["amount_minor"]) for line in refund["lines"]) == [(1, 2500), (2, 4000)]
    final = await get_order(client, key, order["id"])
    assert final["refunded_minor"] == 6500
    kinds = [e["kind"] for e in final["events"]]
    assert [k for k in kinds if k.startswith("return.")] == [
        "return.requested", "return.received", "return.inspected", "return.refunded", "return.closed"]
    tasks = (await client.get(f"{API}/service-tasks", headers=bearer(key))).json()["tasks"]
    assert not [t for t in tasks if t["order_id"] == order["id"]]
    audited = [(e["action"], e["target"]) for e in (await client.get(f"{API}/audit-events", headers=bearer(key))).json()
               if e["action"].startswith("return.")]
    assert audited == [(action, f"return {made['number']}")
                       for action in ("return.inspected", "return.received", "return.opened")]


async def test_more_units_than_the_customer_has_less_those_in_returns_are_refused(client) -> None:
    tenant, _c, order = await returning(client)
    key = tenant.api_key
    response = await open_return(client, key, order["id"], (1, 3))
    assert response.status_code == 422
    assert "At most 2 units of line 1" in messages(response)["lines[0].quantity"]
    await opened(client, key, order["id"], (1, 2))
    again = await open_return(client, key, order["id"], (1, 1), (9, 1))
    assert again.status_code == 422
    errors = messages(again)
    assert "already in a return" in errors["lines[0].quantity"]
    assert "no such line" in errors["lines[1].line_no"]
    listed = (await client.get(f"{API}/orders/{order['id']}/returns", headers=bearer(key))).json()
    assert len(listed) == 1


async def test_nothing_can_come_back_before_it_reached_the_customer(client) -> None:
    tenant, c = await setup(client)
    await accept_returns(client, tenant.api_key, c["wh"])
    order = await shipped_order(client, tenant, (c["sku"], 1, 2500), ship=False)
    response = await open_return(client, tenant.api_key, order["id"], (1, 1))
    assert response.status_code == 422
    assert "has not reached the customer" in messages(response)["lines[0].quantity"]


async def test_after_the_window_only_roles_the_policy_names_may_accept_a_return(client) -> None:
    tenant, _c, order = await returning(client)
    later = datetime.now(UTC) + timedelta(days=31)
    agent = await _key(tenant, "customer_service")
    with clock.frozen_at(later):
        refused = await open_return(client, agent, order["id"], (1, 1), override_window=True)
        assert refused.status_code == 422
        assert "only owners, admins may accept" in messages(refused)["override_window"]
        plain = await open_return(client, tenant.api_key, order["id"], (1, 1))
        assert plain.status_code == 422 and "Accept after the window" in messages(plain)["override_window"]
        made = await opened(client, tenant.api_key, order["id"], (1, 1), override_window=True)
    assert made["window_overridden"] is True


async def test_a_category_the_policy_excludes_and_an_unknown_reason_are_refused(client) -> None:
    tenant, _c, order = await returning(client)
    await _policy(tenant, non_returnable_categories=["coats"])
    response = await client.post(RETURNS, headers=bearer(tenant.api_key), json={
        "order_id": order["id"], "lines": [{"line_no": 2, "quantity": 1, "reason_code": "too_small"},
                                           {"line_no": 1, "quantity": 1, "reason_code": "bored"}]})
    assert response.status_code == 422
    errors = messages(response)
    assert "can't be returned" in errors["lines[0].line_no"] and "coats" in errors["lines[0].line_no"]
    assert "Choose a reason" in errors["lines[1].reason_code"]
    assert (await client.get(f"{API}/orders/{order['id']}/returns", headers=bearer(tenant.api_key))).json() == []


async def test_receiving_twice_and_cancelling_after_receipt_are_refused(client) -> None:
    tenant, c, order = await returning(client)
    key = tenant.api_key
    made = await opened(client, key, order["id"], (1, 1))
    first, second = await asyncio.gather(*[
        client.post(f"{RETURNS}/{made['id']}/receive", json={"location": c["wh"]}, headers=bearer(key))
        for _ in range(2)])
    assert sorted([first.status_code, second.status_code]) == [200, 409]
    loser = first if first.status_code == 409 else second
    assert "was received at" in loser.json()["detail"]
    cancelled = await client.post(f"{RETURNS}/{made['id']}/cancel", json={"reason": "kept"}, headers=bearer(key))
    assert cancelled.status_code == 409
    assert (await get_order(client, key, order["id"]))["lines"][0]["returned"] == 1


async def test_a_cancelled_return_gives_its_units_back_to_return_and_cannot_be_received(client) -> None:
    tenant, c, order = await returning(client)
    key = tenant.api_key
    made = await opened(client, key, order["id"], (1, 2))
    cancelled = await client.post(f"{RETURNS}/{made['id']}/cancel", json={"reason": "The customer kept them"},
                                  headers=bearer(key))
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    refused = await client.post(f"{RETURNS}/{made['id']}/receive", json={"location": c["wh"]}, headers=bearer(key))
    assert refused.status_code == 409
    await opened(client, key, order["id"], (1, 2))


async def test_a_location_that_takes_no_returns_is_refused(client) -> None:
    tenant, c, order = await returning(client)
    made = await opened(client, tenant.api_key, order["id"], (1, 1))
    response = await client.post(f"{RETURNS}/{made['id']}/receive", json={"location": c["wh2"]},
                                 headers=bearer(tenant.api_key))
    assert response.status_code == 422 and "does not take returns" in messages(response)["location"]
    unknown = await open_return(client, tenant.api_key, order["id"], (1, 1), location="NOPE")
    assert unknown.status_code == 422 and "No location has the code" in messages(unknown)["location"]


async def test_a_store_associate_receives_at_their_store_only(client, make_client) -> None:
    tenant, c, order = await returning(client)
    made = await opened(client, tenant.api_key, order["id"], (1, 1), location=c["store"], method="in_store")
    elsewhere = await _join(client, make_client, tenant, "store_associate", [c["wh2"]])
    store = await _join(client, make_client, tenant, "store_associate", [c["store"]])
    page = await elsewhere.get(f"/app/returns/{made['id']}")
    assert page.status_code == 404  # neither expected nor received at their location, nor their order
    refused = await post_form(elsewhere, f"/app/returns/{made['id']}/receive", {"location": c["store"]})
    assert refused.status_code in (403, 404)

    listed = await store.get("/app/returns")
    assert made["number"] in listed.text
    page = await store.get(f"/app/returns/{made['id']}")
    assert page.status_code == 200 and "Receive the return" in page.text
    other = await post_form(store, f"/app/returns/{made['id']}/receive", {"location": c["wh"]})
    assert other.status_code == 403 and "only where you are" in other.text
    received = await post_form(store, f"/app/returns/{made['id']}/receive", {"location": c["store"]})
    assert received.status_code == 303, received.text
    page = await store.get(f"/app/returns/{made['id']}")
    line_id = re.search(r'name="condition_([0-9a-f-]{36})"', page.text).group(1)
    inspected = await post_form(store, f"/app/returns/{made['id']}/inspect", {f"condition_{line_id}": "resellable"})
    assert inspected.status_code == 303, inspected.text
    assert (await stock_of(client, tenant.api_key, c["sku"]))[c["store"]][0] == 1
    assert (await client.get(f"{RETURNS}/{made['id']}", headers=bearer(tenant.api_key))).json()["status"] == "closed"


async def test_an_agent_opens_a_return_from_the_order_page_after_seeing_its_effect(client) -> None:
    tenant, c, order = await returning(client)
    await login(client, tenant.email)
    order_page = await client.get(f"/app/orders/{order['id']}")
    assert order_page.status_code == 200 and "Open a return" in order_page.text
    panel = await client.get(f"/app/orders/{order['id']}/returns", headers={"HX-Request": "true"})
    assert panel.status_code == 200 and "Open a return" in panel.text and "<html" not in panel.text
    form = {"qty_1": "1", "reason_1": "too_large", "qty_2": "", "method": "in_store", "location": c["store"],
            "step": "review"}
    review = await post_form(client, f"/app/orders/{order['id']}/returns", form)
    assert review.status_code == 200, review.text
    assert "Confirm the return" in review.text and "25,00" in review.text  # a French company: its money format
    assert (await client.get(f"{API}/orders/{order['id']}/returns", headers=bearer(tenant.api_key))).json() == []
    token = re.search(r'name="token" value="([0-9a-f]+)"', review.text).group(1)
    confirmed = [await post_form(client, f"/app/orders/{order['id']}/returns", {**form, "step": "confirm",
                                                                               "token": token}) for _ in range(2)]
    assert [r.status_code for r in confirmed] == [303, 303]
    assert confirmed[0].headers["location"] == confirmed[1].headers["location"]  # a resent form: one return
    listed = (await client.get(f"{API}/orders/{order['id']}/returns", headers=bearer(tenant.api_key))).json()
    assert [(r["method"], r["expected_location"], r["opened_via"]) for r in listed] == [
        ("in_store", c["store"], "console")]

    too_many = await post_form(client, f"/app/orders/{order['id']}/returns", {**form, "qty_1": "5"})
    assert too_many.status_code == 422 and "At most 1 unit of line 1" in too_many.text


async def test_the_restocking_fee_is_kept_and_the_refund_waits_for_the_inspection_only_when_the_policy_says(
        client) -> None:
    tenant, c, order = await returning(client)
    key = tenant.api_key
    await _policy(tenant, restocking_fee_bp=1000, refund_on="received", refund_return_shipping=True)
    made = await opened(client, key, order["id"], (1, 2), (2, 1))
    received = await client.post(f"{RETURNS}/{made['id']}/receive", json={"location": c["wh"]}, headers=bearer(key))
    body = received.json()
    # 10 % kept on 50.00 and 40.00; every unit back, so the 5.00 shipping is refunded too.
    assert (body["status"], body["restocking_fee_minor"], body["refunded_minor"]) == ("received", 900, 8600)
    [refund] = await ledger(client, key, order["id"])
    assert (refund["amount_minor"], refund["shipping_minor"]) == (8600, 500)


async def test_another_company_never_reaches_a_return(client) -> None:
    tenant, c, order = await returning(client)
    made = await opened(client, tenant.api_key, order["id"], (1, 1))
    other = await create_tenant()
    for response in [
        await client.get(f"{RETURNS}/{made['id']}", headers=bearer(other.api_key)),
        await client.post(f"{RETURNS}/{made['id']}/receive", json={"location": c["wh"]}, headers=bearer(other.api_key)),
        await client.post(f"{RETURNS}/{made['id']}/cancel", json={"reason": "x"}, headers=bearer(other.api_key)),
        await open_return(client, other.api_key, order["id"], (1, 1)),
    ]:
        assert response.status_code == 404, response.text
    assert (await client.get(f"{RETURNS}/{made['id']}", headers=bearer(tenant.api_key))).json()["status"] == \
        "requested"


async def test_an_order_intake_key_opens_returns_for_its_channel_only(client) -> None:
    tenant, c, order = await returning(client)
    web = await _key(tenant, "order_intake", channel="web")
    made = await opened(client, web, order["id"], (1, 1))
    assert made["opened_via"] == "api"
    store_key = await _key(tenant, "order_intake", channel="pos")
    assert (await open_return(client, store_key, order["id"], (1, 1))).status_code == 404
    assert (await client.get(f"{RETURNS}/{made['id']}", headers=bearer(store_key))).status_code == 404
    assert (await client.post(f"{RETURNS}/{made['id']}/receive", json={"location": c["wh"]},
                              headers=bearer(web))).status_code == 403


async def _key(tenant: Any, role: str, channel: str | None = None) -> str:
    from core.auth import Principal
    from core.db import get_database
    from tenants.service import create_api_key

    principal = Principal(tenant_id=tenant.tenant_id, role="owner", label=tenant.email, tenant_name=tenant.name,
                          timezone="Europe/Paris", currency="EUR", user_id=tenant.user_id)
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        api_key, token = await create_api_key(session, principal, name=f"{role} key")
        api_key.role = role
        if channel is not None:
            api_key.channel = channel
    return token


async def _policy(tenant: Any, **values: Any) -> None:
    from core.db import get_database
    from core.ids import uuid7
    from support.models import ReturnPolicy
    from support.policy import DEFAULTS

    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        session.add(ReturnPolicy(
            tenant_id=tenant.tenant_id, id=uuid7(), window_days=values.get("window_days", DEFAULTS.window_days),
            non_returnable_categories=values.get("non_returnable_categories", []),
            restocking_fee_bp=values.get("restocking_fee_bp", 0),
            refund_return_shipping=values.get("refund_return_shipping", False),
            override_roles=list(DEFAULTS.override_roles), refund_on=values.get("refund_on", "inspected"),
            reason_codes=list(DEFAULTS.reason_codes), goodwill_limits={}, updated_by="test"))


# --- exchanges ------------------------------------------------------------------------------------

def exchange(client: AsyncClient, key: str, order_id: str, lines: list[tuple[int, int]],
             replacement: list[tuple[str, int]], **body: Any) -> Any:
    return client.post(f"{API}/orders/{order_id}/exchanges", headers=bearer(key), json={
        "lines": [{"line_no": n, "quantity": q, "reason_code": "too_small"} for n, q in lines],
        "replacement": [{"sku": s, "quantity": q} for s, q in replacement], **body})


async def test_an_even_exchange_ships_its_replacement_when_the_goods_come_back_and_refunds_nothing(client) -> None:
    from factories import run_outbox_inline

    tenant, c, order = await returning(client)
    key = tenant.api_key
    response = await exchange(client, key, order["id"], [(1, 1)], [(c["sku"], 1)])
    assert response.status_code == 201, response.text
    made = response.json()
    assert (made["returned_value_minor"], made["replacement_total_minor"], made["difference_minor"]) == (2500, 2500, 0)
    await run_outbox_inline(tenant.tenant_id)
    replacement = await get_order(client, key, made["replacement_order_id"])
    assert replacement["status"] == "on_hold" and "waiting for the return" in replacement["hold_reason"]
    assert (replacement["channel"], replacement["customer_email"]) == (order["channel"], order["customer_email"])
    assert replacement["external_number"] == f"{order['number']}-X1"
    assert made["return"]["exchange_order_id"] == made["replacement_order_id"]

    received = await client.post(f"{RETURNS}/{made['return']['id']}/receive", json={"location": c["wh"]},
                                 headers=bearer(key))
    assert received.status_code == 200 and received.json()["lines"][0]["refund_minor"] == 0
    await run_outbox_inline(tenant.tenant_id)
    assert (await get_order(client, key, made["replacement_order_id"]))["status"] == "routed"
    inspected = await client.post(f"{RETURNS}/{made['return']['id']}/inspect", headers=bearer(key),
                                  json={"lines": [{"line_no": 1, "condition": "resellable"}]})
    assert inspected.json()["status"] == "closed" and inspected.json()["refunded_minor"] == 0
    assert await ledger(client, key, order["id"]) == []


async def test_a_cheaper_replacement_refunds_the_difference_and_a_dearer_one_is_charged(client) -> None:
    tenant, c, order = await returning(client)
    key = tenant.api_key
    cheaper = await exchange(client, key, order["id"], [(2, 1)], [(c["sku"], 1)])
    assert cheaper.status_code == 201, cheaper.text
    assert cheaper.json()["difference_minor"] == -1500
    return_id = cheaper.json()["return"]["id"]
    await client.post(f"{RETURNS}/{return_id}/receive", json={"location": c["wh"]}, headers=bearer(key))
    await client.post(f"{RETURNS}/{return_id}/inspect", headers=bearer(key),
                      json={"lines": [{"line_no": 2, "condition": "resellable"}]})
    [refund] = await ledger(client, key, order["id"])
    assert (refund["source"], refund["amount_minor"]) == ("exchange", 1500)

    dearer = await exchange(client, key, order["id"], [(1, 1)], [(c["sku2"], 1)])
    assert dearer.status_code == 422
    assert "more than what comes back" in messages(dearer)["charge_difference"]
    charged = await exchange(client, key, order["id"], [(1, 1)], [(c["sku2"], 1)], charge_difference=True)
    assert charged.status_code == 201, charged.text
    assert charged.json()["difference_minor"] == 1500
    replacement = await get_order(client, key, charged.json()["replacement_order_id"])
    assert (replacement["total_minor"], replacement["authorized_minor"]) == (4000, 4000)


async def test_a_replacement_shipped_at_once_raises_a_task_when_the_goods_do_not_come_back(client) -> None:
    from core.broker import COROUTINES
    from factories import run_outbox_inline

    tenant, c, order = await returning(client)
    key = tenant.api_key
    made = (await exchange(client, key, order["id"], [(1, 1)], [(c["sku"], 1)], ship_now=True)).json()
    await run_outbox_inline(tenant.tenant_id)
    assert (await get_order(client, key, made["replacement_order_id"]))["status"] == "routed"
    await COROUTINES["support.flag_overdue_returns"](tenant_id=str(tenant.tenant_id))
    tasks = (await client.get(f"{API}/service-tasks", headers=bearer(key))).json()["tasks"]
    assert not [t for t in tasks if t["kind"] == "return_overdue"]
    with clock.frozen_at(datetime.now(UTC) + timedelta(days=31)):
        await COROUTINES["support.flag_overdue_returns"](tenant_id=str(tenant.tenant_id))
        await COROUTINES["support.flag_overdue_returns"](tenant_id=str(tenant.tenant_id))
    tasks = (await client.get(f"{API}/service-tasks", headers=bearer(key))).json()["tasks"]
    assert [(t["kind"], t["occurrences"]) for t in tasks if t["order_id"] == order["id"]] == [("return_overdue", 1)]


async def test_an_exchange_with_an_unknown_product_or_too_many_units_changes_nothing(client) -> None:
    tenant, _c, order = await returning(client)
    response = await exchange(client, tenant.api_key, order["id"], [(1, 5)], [("NOPE", 1)])
    assert response.status_code == 422
    errors = messages(response)
    assert "At most 2 units" in errors["lines[0].quantity"] and "No product has the SKU" in errors["replacement[0].sku"]
    assert (await client.get(f"{API}/orders/{order['id']}/returns", headers=bearer(tenant.api_key))).json() == []
    orders = (await client.get(f"{API}/orders", headers=bearer(tenant.api_key))).json()["orders"]
    assert len(orders) == 1


async def test_an_agent_starts_an_exchange_from_the_order_page(client) -> None:
    tenant, c, order = await returning(client)
    await login(client, tenant.email)
    form = {"qty_1": "1", "reason_1": "too_small", "method": "post", "location": c["wh"],
            "replacement_sku": c["sku2"], "replacement_quantity": "1", "step": "review"}
    refused = await post_form(client, f"/app/orders/{order['id']}/returns", form)
    assert refused.status_code == 422 and "confirm the customer pays the difference" in refused.text
    review = await post_form(client, f"/app/orders/{order['id']}/returns", {**form, "charge_difference": "on"})
    assert review.status_code == 200 and "Confirm the exchange" in review.text and "15,00" in review.text
    token = re.search(r'name="token" value="([0-9a-f]+)"', review.text).group(1)
    done = await post_form(client, f"/app/orders/{order['id']}/returns",
                           {**form, "charge_difference": "on", "step": "confirm", "token": token})
    assert done.status_code == 303, done.text
    [made] = (await client.get(f"{API}/orders/{order['id']}/returns", headers=bearer(tenant.api_key))).json()
    replacement = await get_order(client, tenant.api_key, made["exchange_order_id"])
    assert [(line["sku"], line["quantity"]) for line in replacement["lines"]] == [(c["sku2"], 1)]


async def test_notes_longer_than_a_return_keeps_are_refused_by_api_and_console(client) -> None:
    tenant, c, order = await returning(client)
    long_note = await open_return(client, tenant.api_key, order["id"], (1, 1), note="n" * 501)
    assert long_note.status_code == 422 and "500 characters" in messages(long_note)["note"]
    made = await opened(client, tenant.api_key, order["id"], (1, 1), note="m" * 500)
    await login(client, tenant.email)
    refused = await post_form(client, f"/app/returns/{made['id']}/cancel", {"reason": "r" * 401})
    assert refused.status_code == 422 and "400 characters" in refused.text
    console = await post_form(client, f"/app/orders/{order['id']}/returns", {
        "qty_2": "1", "reason_2": "too_small", "method": "post", "location": c["wh"], "note": "n" * 501,
        "step": "review"})
    assert console.status_code == 422 and "500 characters" in console.text
    assert (await client.get(f"{RETURNS}/{made['id']}", headers=bearer(tenant.api_key))).json()["status"] == \
        "requested"
