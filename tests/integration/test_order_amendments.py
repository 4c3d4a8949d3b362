"""What customer service changes on an order (orders.amendments): the pickup store and the
delivery address until the goods leave, a customer mail sent again, notes; each refused with a
clear message and nothing changed when it can't be done, through the API and the console."""

from __future__ import annotations

import re
import uuid
from typing import Any

from httpx import AsyncClient
from test_orders import (
    ORDERS,
    act_ok,
    by_priority,
    get_order,
    key_with_role,
    member,
    network,
    order_body,
    problems_of,
    publish_rules,
    routed_order,
    stock_of,
)

from factories import bearer, create_tenant, login, mail_to, post_form, run_outbox_inline
from inventory_factories import ledger_mismatches, location_body, make_locations, stock_up


async def pickup_network(client: AsyncClient, key: str, stock: dict[str, int] | None = None) -> dict[str, str]:
    """The orders tests' network (warehouse ``wh``, store ``store`` in Paris doing click & collect
    and receiving transfers) plus ``store2`` (Lyon, the same), ``pickup_only`` (click & collect, no
    transfers), ``no_pickup`` (no click & collect) and ``paused``; ``stock`` of ``sku`` per location,
    by default 5 at wh, store and store2."""
    wanted = stock if stock is not None else {"wh": 5, "store": 5, "store2": 5}
    c = await network(client, key, stock={"sku": {k: v for k, v in wanted.items() if k in ("wh", "store")}})
    tail = c["store"].removeprefix("ST-")
    c |= {"store2": f"ST2-{tail}", "pickup_only": f"ST3-{tail}", "no_pickup": f"ST4-{tail}", "paused": f"ST5-{tail}"}
    store = {"kind": "store", "ships_to_customers": False, "click_and_collect": True, "receives_transfers": True,
             "priority": 20}
    await make_locations(
        client, key,
        location_body(c["store2"], name="Lyon Bellecour", city="Lyon", postcode="69002", latitude=45.7578,
                      longitude=4.832, **store),
        location_body(c["pickup_only"], name="Nantes", city="Nantes", **(store | {"receives_transfers": False})),
        location_body(c["no_pickup"], name="Outlet", city="Lille", **(store | {"click_and_collect": False})),
        location_body(c["paused"], name="Closed for works", **(store | {"status": "paused"})),
    )
    if wanted.get("store2"):
        await stock_up(client, key, {(c["sku"], c["store2"]): wanted["store2"]})
    return c


async def audited(tenant_id: uuid.UUID, action: str) -> list[Any]:
    from sqlalchemy import select

    from core.db import get_database
    from tenants.models import AuditEvent

    async with get_database().transaction(tenant_id=tenant_id) as session:
        return list(await session.scalars(select(AuditEvent).where(AuditEvent.tenant_id == tenant_id,
                                                                   AuditEvent.action == action)))


def change_pickup(client: AsyncClient, key: str, order_id: str, headers: dict[str, str] | None = None,
                  **body: Any) -> Any:
    return client.post(f"{ORDERS}/{order_id}/pickup-store", json=body, headers={**bearer(key), **(headers or {})})


def change_address(client: AsyncClient, key: str, order_id: str, **body: Any) -> Any:
    return client.post(f"{ORDERS}/{order_id}/delivery-address", json=body, headers=bearer(key))


def add_note(client: AsyncClient, key: str, order_id: str, **body: Any) -> Any:
    return client.post(f"{ORDERS}/{order_id}/notes", json=body, headers=bearer(key))


def events_of(order: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in order["events"] if e["kind"] == kind]


NEW_ADDRESS = {"name": "Bea Buyer", "line1": "8 avenue Foch", "postcode": "69006", "city": "Lyon", "country": "fr"}


# --- the pickup store ---------------------------------------------------------------------------------------


async def test_a_new_pickup_store_releases_the_old_one_and_routing_picks_the_new_one(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await pickup_network(client, key)
    await publish_rules(client, key, by_priority("Click and collect", types=("store", "warehouse")))
    order = await routed_order(client, tenant, order_body((c["sku"], 2, 2500), pickup=c["store"]))
    [first] = order["fulfilments"]
    assert (first["location"], first["kind"]) == (c["store"], "pickup")
    await act_ok(client, key, first["id"], "accept", "pick")
    assert (await stock_of(client, key, c["sku"]))[c["store"]] == (5, 2)

    idem = {"Idempotency-Key": f"pickup-{uuid.uuid4()}"}
    response = await change_pickup(client, key, order["id"], idem, location_code=c["store2"],
                                   reason="The customer moved to Lyon")
    assert response.status_code == 200, response.text
    done = response.json()
    assert (done["before"], done["after"], done["status"]) == (c["store"], c["store2"], "received")
    assert [(r["number"], r["location"], r["status"], r["lines"]) for r in done["released"]] == [
        (first["number"], c["store"], "picking", [{"sku": c["sku"], "quantity": 2}])]
    # The old store's reservation is released at once; the order waits for routing.
    assert (await stock_of(client, key, c["sku"]))[c["store"]] == (5, 0)
    waiting = await get_order(client, key, order["id"])
    assert (waiting["status"], waiting["pickup_location"], waiting["lines"][0]["allocated"]) == (
        "received", c["store2"], 0)
    assert waiting["fulfilments"][0]["status"] == "cancelled"
    [changed] = events_of(waiting, "order.pickup_store_changed")
    assert (changed["reason"], changed["data"]["before"], changed["data"]["after"]) == (
        "The customer moved to Lyon", c["store"], c["store2"])
    again = await change_pickup(client, key, order["id"], idem, location_code=c["store2"],
                                reason="The customer moved to Lyon")
    assert again.status_code == 200 and again.headers.get("Idempotent-Replayed") == "true"

    await run_outbox_inline(tenant.tenant_id)
    routed = await get_order(client, key, order["id"])
    assert routed["status"] == "routed"
    assert [(f["location"], f["kind"], f["status"]) for f in routed["fulfilments"]] == [
        (c["store"], "pickup", "cancelled"), (c["store2"], "pickup", "created")]
    stock = await stock_of(client, key, c["sku"])
    assert (stock[c["store"]], stock[c["store2"]], stock[c["wh"]]) == ((5, 0), (5, 2), (5, 0))
    assert len(events_of(routed, "order.pickup_store_changed")) == 1  # the replay changed nothing twice
    assert await ledger_mismatches(tenant.tenant_id) == []

    [mail] = [m for m in await mail_to(tenant.tenant_id, routed["customer_email"])
              if m.kind == "order.pickup_store_changed"]
    assert "Nouveau magasin de retrait" in mail.subject and "Lyon Bellecour" in mail.body_text  # the company's French
    [logged] = await audited(tenant.tenant_id, "order.pickup_store_changed")
    assert (logged.target, logged.details["before"], logged.details["after"]) == (
        f"order {routed['number']}", c["store"], c["store2"])


async def test_a_ship_to_store_order_goes_to_another_store_until_its_parcel_leaves(client, make_client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await pickup_network(client, key, {"wh": 5})
    await publish_rules(client, key, by_priority("Send it to the store", types=("store", "warehouse"),
                                                 fallback=("ship_to_store", "hold")))
    body = order_body((c["sku"], 2, 2500), pickup=c["store"])
    body["delivery"]["mode"] = "ship_to_store"
    order = await routed_order(client, tenant, body)
    [transfer] = order["fulfilments"]
    assert (transfer["location"], transfer["kind"], transfer["ship_to_store"]) == (c["wh"], "transfer", c["store"])

    # A store that does click & collect but receives no transfers can't be a ship-to-store destination.
    no_transfers = await change_pickup(client, key, order["id"], location_code=c["pickup_only"], reason="Closer")
    assert "does not receive ship-to-store parcels" in problems_of(no_transfers)["location_code"]

    done = await change_pickup(client, key, order["id"], location_code=c["store2"], reason="Closer to work")
    assert done.status_code == 200, done.text
    assert [(r["location"], r["kind"]) for r in done.json()["released"]] == [(c["wh"], "transfer")]
    assert (await stock_of(client, key, c["sku"]))[c["wh"]] == (5, 0)
    await run_outbox_inline(tenant.tenant_id)
    routed = await get_order(client, key, order["id"])
    new = routed["fulfilments"][-1]
    assert (new["location"], new["kind"], new["ship_to_store"], new["status"]) == (
        c["wh"], "transfer", c["store2"], "created")
    assert (await stock_of(client, key, c["sku"]))[c["wh"]] == (5, 2)

    # The warehouse's associate sees the order (its transfer leaves from there) but the pickup store isn't theirs.
    warehouse = await make_client()
    await login(warehouse, await member(tenant.tenant_id, "store_associate", [c["wh"]]))
    refused = await post_form(warehouse, f"/app/orders/{order['id']}/pickup-store",
                              {"location_code": c["store"], "reason": "x"})
    assert refused.status_code == 403
    assert "Change the pickup store" not in (await warehouse.get(f"/app/orders/{order['id']}")).text

    await act_ok(client, key, new["id"], "accept", "pick", "pack", "ship")
    late = await change_pickup(client, key, order["id"], location_code=c["store"], reason="Back to Paris")
    assert late.status_code == 409
    assert "already left" in late.json()["detail"] and new["number"] in late.json()["detail"]
    assert (await get_order(client, key, order["id"]))["pickup_location"] == c["store2"]


async def test_a_pickup_store_change_is_refused_with_a_reason_and_changes_nothing(client, make_client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await pickup_network(client, key)
    await publish_rules(client, key, by_priority("Click and collect", types=("store", "warehouse")))
    order = await routed_order(client, tenant, order_body((c["sku"], 1, 2500), pickup=c["store"]))
    before = await get_order(client, key, order["id"])

    refusals = [("", "Choose the store"), ("NOWHERE", "Unknown store 'NOWHERE'"), (c["paused"], "is paused"),
                (c["no_pickup"], "does not offer pickup (click & collect)"),
                (c["store"], "is already the pickup store")]
    for code, words in refusals:
        problems = problems_of(await change_pickup(client, key, order["id"], location_code=code, reason="Asked"))
        assert words in problems["location_code"], (code, problems)
    both = problems_of(await change_pickup(client, key, order["id"], location_code="NOWHERE", reason="  "))
    assert set(both) == {"location_code", "reason"} and "Say why" in both["reason"]

    viewer = await key_with_role(tenant, "read_only")
    assert (await change_pickup(client, viewer, order["id"], location_code=c["store2"], reason="x")).status_code == 403
    stranger = await create_tenant()
    assert (await change_pickup(client, stranger.api_key, order["id"], location_code=c["store2"],
                                reason="x")).status_code == 404

    # A store associate: for an order collected at their store only (another's orders they don't see).
    here = await make_client()
    await login(here, await member(tenant.tenant_id, "store_associate", [c["store"]]))
    elsewhere = await make_client()
    await login(elsewhere, await member(tenant.tenant_id, "store_associate", [c["wh"]]))
    url = f"/app/orders/{order['id']}/pickup-store"
    assert (await post_form(elsewhere, url, {"location_code": c["store2"], "reason": "x"})).status_code == 404
    review = await post_form(here, url, {"location_code": c["store2"], "reason": "At the counter"})
    assert review.status_code == 200 and "Pickup moves from" in review.text

    after = await get_order(client, key, order["id"])
    assert (after["status"], after["pickup_location"], after["fulfilments"], after["events"]) == (
        before["status"], before["pickup_location"], before["fulfilments"], before["events"])
    assert (await stock_of(client, key, c["sku"]))[c["store"]] == (5, 1)

    # Home delivery has no pickup store; a collected order's goods have left.
    delivered_home = await routed_order(client, tenant, order_body((c["sku"], 1, 2500)))
    home = await change_pickup(client, key, delivered_home["id"], location_code=c["store2"], reason="x")
    assert home.status_code == 409 and "delivery address" in home.json()["detail"]
    fid = order["fulfilments"][0]["id"]
    await act_ok(client, key, fid, "accept", "pick", "pack", "ready", "collect")
    collected = await change_pickup(client, key, order["id"], location_code=c["store2"], reason="x")
    assert collected.status_code == 409 and "already left" in collected.json()["detail"]


# --- the delivery address -----------------------------------------------------------------------------------


async def test_the_delivery_address_changes_until_a_parcel_leaves_and_the_fulfilment_stays(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key)
    await publish_rules(client, key, by_priority(types=("warehouse",)))
    hook = await client.post("/api/v1/webhook-endpoints", headers=bearer(key),
                             json={"url": "http://127.0.0.1:9/hooks", "events": ["order.updated"]})
    assert hook.status_code == 201, hook.text
    order = await routed_order(client, tenant, order_body((c["sku"], 1, 2500)))
    [fulfilment] = order["fulfilments"]

    response = await change_address(client, key, order["id"], **NEW_ADDRESS, reason="The customer moved")
    assert response.status_code == 200, response.text
    done = response.json()
    assert done["before"] == {"name": "Bea Buyer", "line1": "1 rue de Rivoli", "postcode": "75001", "city": "Paris",
                              "country": "FR"}
    assert done["after"] == NEW_ADDRESS | {"country": "FR"}
    assert done["fulfilments"] == [fulfilment["number"]]
    after = await get_order(client, key, order["id"])
    assert [(f["id"], f["location"], f["status"]) for f in after["fulfilments"]] == [
        (fulfilment["id"], c["wh"], "created")]
    [event] = events_of(after, "order.address_changed")
    assert (event["reason"], event["data"]["after"]["city"], event["data"]["before"]["city"]) == (
        "The customer moved", "Lyon", "Paris")
    # Another town: the old coordinates are not kept.
    assert await count_rows_where(tenant.tenant_id, order["id"], "ship_latitude IS NULL AND ship_city = 'Lyon'")

    await login(client, tenant.email)
    slip = await client.get(f"/app/fulfilments/{fulfilment['id']}/packing-slip")
    assert "8 avenue Foch" in slip.text and "1 rue de Rivoli" not in slip.text
    [mail] = [m for m in await mail_to(tenant.tenant_id, after["customer_email"]) if m.kind == "order.address_changed"]
    assert "8 avenue Foch" in mail.body_text and "69006 Lyon" in mail.body_text
    deliveries = (await client.get(f"/api/v1/webhook-endpoints/{hook.json()['id']}/deliveries",
                                   headers=bearer(key))).json()
    assert [d["event_type"] for d in deliveries] == ["order.updated"]

    await act_ok(client, key, fulfilment["id"], "accept", "pick", "pack")
    await act_ok(client, key, fulfilment["id"], "ship", carrier="colissimo", tracking_number="6A0000000009")
    events = (await get_order(client, key, order["id"]))["events"]
    late = await change_address(client, key, order["id"], **NEW_ADDRESS | {"line1": "9 avenue Foch"}, reason="x")
    assert late.status_code == 409 and "already left" in late.json()["detail"]
    assert (await get_order(client, key, order["id"]))["events"] == events


async def count_rows_where(tenant_id: uuid.UUID, order_id: str, where: str) -> int:
    from sqlalchemy import text

    from core.db import get_database

    async with get_database().transaction(tenant_id=tenant_id) as session:
        return int((await session.execute(text(f"SELECT count(*) FROM orders WHERE tenant_id = :t AND id = :o "
                                               f"AND {where}"), {"t": tenant_id, "o": order_id})).scalar_one())


async def test_a_bad_address_is_refused_with_every_problem_and_changes_nothing(client, make_client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key)
    await publish_rules(client, key, by_priority(types=("warehouse",)))
    order = await routed_order(client, tenant, order_body((c["sku"], 1, 2500)))
    before = await get_order(client, key, order["id"])

    problems = problems_of(await change_address(client, key, order["id"], line1=" ", postcode="", city="",
                                                country="XX", reason=""))
    assert set(problems) == {"line1", "postcode", "city", "country", "reason"}
    assert "Unknown country 'XX'" in problems["country"] and "needs the street" in problems["line1"]
    half = problems_of(await change_address(client, key, order["id"], **NEW_ADDRESS, latitude=45.7))
    assert "together" in half["longitude"]
    assert "country" in problems_of(await change_address(client, key, order["id"], **NEW_ADDRESS | {
        "country": "France"}, reason="x"))  # not a two-letter code
    same = problems_of(await change_address(client, key, order["id"], name="Bea Buyer", line1="1 rue de Rivoli",
                                            postcode="75001", city="Paris", country="FR", reason="x"))
    assert "already the delivery address" in same["line1"]

    assert (await change_address(client, await key_with_role(tenant, "read_only"), order["id"], **NEW_ADDRESS,
                                 reason="x")).status_code == 403
    associate = await make_client()
    await login(associate, await member(tenant.tenant_id, "store_associate", [c["wh"]]))
    assert (await post_form(associate, f"/app/orders/{order['id']}/delivery-address",
                            {**NEW_ADDRESS, "reason": "x"})).status_code == 403
    stranger = await create_tenant()
    assert (await change_address(client, stranger.api_key, order["id"], **NEW_ADDRESS, reason="x")).status_code == 404
    c2 = await network(client, key, stock={"sku": {"store": 3}})
    pickup = await routed_order(client, tenant, order_body((c2["sku"], 1, 2500), pickup=c2["store"]))
    collected = await change_address(client, key, pickup["id"], **NEW_ADDRESS, reason="x")
    assert collected.status_code == 409 and "pickup store" in collected.json()["detail"]

    assert (await get_order(client, key, order["id"]))["events"] == before["events"]
    assert await count_rows_where(tenant.tenant_id, order["id"], "ship_city = 'Paris' AND ship_latitude IS NOT NULL")
    service = await key_with_role(tenant, "customer_service")
    assert (await change_address(client, service, order["id"], **NEW_ADDRESS, reason="Asked")).status_code == 200


# --- mails sent again -----------------------------------------------------------------------------------------


async def test_a_mail_of_the_order_is_sent_again_as_it_was_once_with_a_reason(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key)
    await publish_rules(client, key, by_priority(types=("warehouse",)))
    order = await routed_order(client, tenant, order_body((c["sku"], 1, 2500)))
    other = await routed_order(client, tenant, order_body((c["sku"], 1, 2500)))
    await run_outbox_inline(tenant.tenant_id)  # the confirmations are sent
    listed = (await client.get(f"{ORDERS}/{order['id']}/notifications", headers=bearer(key))).json()
    [confirmation] = listed
    assert (confirmation["kind"], confirmation["status"], confirmation["resend_of"]) == (
        "order.confirmation", "sent", None)
    url = f"{ORDERS}/{order['id']}/notifications/{confirmation['id']}/resend"

    assert "Say why" in problems_of(await client.post(url, json={"reason": " "}, headers=bearer(key)))["reason"]
    [other_mail] = (await client.get(f"{ORDERS}/{other['id']}/notifications", headers=bearer(key))).json()
    wrong = await client.post(f"{ORDERS}/{order['id']}/notifications/{other_mail['id']}/resend",
                              json={"reason": "x"}, headers=bearer(key))
    assert wrong.status_code == 404  # another order's mail
    assert (await client.post(url, json={"reason": "x"},
                              headers=bearer(await key_with_role(tenant, "read_only")))).status_code == 403
    assert (await client.post(url, json={"reason": "x"},
                              headers=bearer((await create_tenant()).api_key))).status_code == 404

    key_header = {"Idempotency-Key": f"resend-{uuid.uuid4()}"}
    first = await client.post(url, json={"reason": "The customer lost it"}, headers={**bearer(key), **key_header})
    replay = await client.post(url, json={"reason": "The customer lost it"}, headers={**bearer(key), **key_header})
    assert (first.status_code, replay.status_code) == (201, 201), first.text
    copy = first.json()
    assert replay.json()["id"] == copy["id"]
    assert (copy["resend_of"], copy["kind"], copy["status"], copy["subject"]) == (
        confirmation["id"], "order.confirmation", "queued", confirmation["subject"])
    # The copy is on its way: sending it again now would send it twice.
    queued = await client.post(f"{ORDERS}/{order['id']}/notifications/{copy['id']}/resend",
                               json={"reason": "again"}, headers=bearer(key))
    assert queued.status_code == 409 and "still on its way" in queued.json()["detail"]

    mails = [m for m in await mail_to(tenant.tenant_id, order["customer_email"])]
    assert len(mails) == 2 and mails[0].body_text == mails[1].body_text and mails[0].meta["resend_of"] == \
        confirmation["id"]
    [event] = events_of(await get_order(client, key, order["id"]), "mail.resent")
    assert (event["reason"], event["data"]["mail_id"]) == ("The customer lost it", confirmation["id"])


# --- notes ------------------------------------------------------------------------------------------------------


async def test_notes_go_on_the_timeline_with_their_author_and_are_bounded(client, make_client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"store": 3}})
    await publish_rules(client, key, by_priority("Click and collect", types=("store", "warehouse")))
    order = await routed_order(client, tenant, order_body((c["sku"], 1, 2500), pickup=c["store"]))

    made = await add_note(client, key, order["id"], body="  Customer prefers a call before collection  ")
    assert made.status_code == 201, made.text
    note = made.json()
    assert note["body"] == "Customer prefers a call before collection" and note["author"]
    [event] = events_of(await get_order(client, key, order["id"]), "note.added")
    assert (event["reason"], event["actor"], event["id"]) == (note["body"], note["author"], note["id"])

    assert "Write the note" in problems_of(await add_note(client, key, order["id"], body="   "))["body"]
    assert "body" in problems_of(await add_note(client, key, order["id"], body="x" * 1001))
    assert (await add_note(client, await key_with_role(tenant, "read_only"), order["id"],
                           body="x")).status_code == 403
    assert (await add_note(client, (await create_tenant()).api_key, order["id"], body="x")).status_code == 404
    assert len(events_of(await get_order(client, key, order["id"]), "note.added")) == 1

    # A store associate notes the orders of their store, in the console.
    associate = await make_client()
    email = await member(tenant.tenant_id, "store_associate", [c["store"]])
    await login(associate, email)
    page = await associate.get(f"/app/orders/{order['id']}")
    assert 'action="/app/orders/' + order["id"] + '/notes"' in page.text
    assert "Change the delivery address" not in page.text and "Send a mail again" not in page.text
    assert (await post_form(associate, f"/app/orders/{order['id']}/notes", {"body": "Parcel box dented"})).status_code \
        == 303
    timeline = (await associate.get(f"/app/orders/{order['id']}")).text
    assert "Parcel box dented" in timeline and email in timeline
    empty = await post_form(associate, f"/app/orders/{order['id']}/notes", {"body": ""})
    assert empty.status_code == 422 and "Write the note." in empty.text


# --- the console ----------------------------------------------------------------------------------------------


def token_of(html: str) -> str:
    found = re.search(r'name="token" value="([0-9a-f]{32})"', html)
    assert found, html[:2000]
    return found.group(1)


async def test_the_console_shows_each_change_before_making_it_once(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await pickup_network(client, key)
    await publish_rules(client, key, by_priority("Click and collect", types=("store", "warehouse")))
    pickup = await routed_order(client, tenant, order_body((c["sku"], 2, 2500), pickup=c["store"]))
    home = await routed_order(client, tenant, order_body((c["sku"], 1, 2500)))
    await run_outbox_inline(tenant.tenant_id)
    await login(client, tenant.email)

    page = (await client.get(f"/app/orders/{pickup['id']}")).text
    assert "Actions" in page and "Change the pickup store" in page and "Change the delivery address" not in page
    assert f'value="{c["store2"]}"' in page and f'value="{c["no_pickup"]}"' not in page
    url = f"/app/orders/{pickup['id']}/pickup-store"
    refused = await post_form(client, url, {"location_code": c["store2"], "reason": ""})
    assert refused.status_code == 422 and "Say why" in refused.text
    review = await post_form(client, url, {"location_code": c["store2"], "reason": "Customer asked"})
    assert review.status_code == 200
    effect = " ".join(review.text.split())
    assert f"Pickup moves from {c['store']} to Lyon Bellecour ({c['store2']}" in effect
    assert f"2 \u00d7 {c['sku']} back to available at {c['store']}" in effect
    assert "routing picks again" in effect
    assert (await get_order(client, key, pickup["id"]))["pickup_location"] == c["store"]  # nothing done yet
    confirmed = {"location_code": c["store2"], "reason": "Customer asked", "confirm": "1",
                 "token": token_of(review.text)}
    assert (await post_form(client, url, confirmed)).status_code == 303
    assert (await post_form(client, url, confirmed)).status_code == 303  # a double click: done once
    changed = await get_order(client, key, pickup["id"])
    assert changed["pickup_location"] == c["store2"] and len(events_of(changed, "order.pickup_store_changed")) == 1
    timeline = (await client.get(f"/app/orders/{pickup['id']}")).text
    assert f"Pickup store changed from {c['store']} to {c['store2']}" in timeline
    assert "Routing again for the new pickup store" in timeline

    url = f"/app/orders/{home['id']}/delivery-address"
    page = (await client.get(f"/app/orders/{home['id']}")).text
    assert "Change the delivery address" in page and "Change the pickup store" not in page
    bad = await post_form(client, url, {**NEW_ADDRESS, "city": "", "country": "ZZ", "reason": "Moved"})
    assert bad.status_code == 422 and "Home delivery needs the city." in bad.text and "Unknown country" in bad.text
    review = await post_form(client, url, {**NEW_ADDRESS, "reason": "Moved"})
    effect = " ".join(review.text.split())
    assert "Deliver to Bea Buyer, 8 avenue Foch, 69006 Lyon, FR" in effect
    [parcel] = home["fulfilments"]
    assert f"{parcel['number']} from {parcel['location']}" in effect and "its packing slip shows it" in effect
    confirmed = {**NEW_ADDRESS, "country": "FR", "reason": "Moved", "confirm": "1", "token": token_of(review.text)}
    assert (await post_form(client, url, confirmed)).status_code == 303
    assert (await post_form(client, url, confirmed)).status_code == 303
    assert len(events_of(await get_order(client, key, home["id"]), "order.address_changed")) == 1

    mails = await client.get(f"/app/orders/{home['id']}/notifications")
    assert mails.status_code == 200 and "Order confirmation" in mails.text
    sent = [m for m in await mail_to(tenant.tenant_id, home["customer_email"]) if m.kind == "order.confirmation"]
    url = f"/app/orders/{home['id']}/notifications/{sent[0].id}/resend"
    review = await post_form(client, url, {"reason": "Lost in spam"})
    assert review.status_code == 200 and f"again to {home['customer_email']}" in review.text
    confirmed = {"reason": "Lost in spam", "confirm": "1", "token": token_of(review.text)}
    assert (await post_form(client, url, confirmed)).status_code == 303
    assert (await post_form(client, url, confirmed)).status_code == 303
    resent = [m for m in await mail_to(tenant.tenant_id, home["customer_email"]) if m.kind == "order.confirmation"]
    assert len(resent) == 2

    note = await post_form(client, f"/app/orders/{home['id']}/notes", {"body": "Called the customer"})
    assert note.status_code == 303
    timeline = (await client.get(f"/app/orders/{home['id']}")).text
    assert "Called the customer" in timeline and "Delivery address changed from" in timeline
    assert "Mail sent again" in timeline

    # Once the parcel left, the address is no longer offered.
    fid = home["fulfilments"][0]["id"]
    await act_ok(client, key, fid, "accept", "pick", "pack")
    await act_ok(client, key, fid, "ship", carrier="colissimo", tracking_number="6A0000000010")
    assert "Change the delivery address" not in (await client.get(f"/app/orders/{home['id']}")).text
    gone = await post_form(client, url.replace(f"notifications/{sent[0].id}/resend", "delivery-address"),
                           {**NEW_ADDRESS, "line1": "1 place Bellecour", "reason": "Moved again"})
    assert gone.status_code == 409 and "already left" in gone.text
