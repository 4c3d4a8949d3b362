"""Shipping: a parcel leaves with its carrier and tracking number (console and API), the customer
and the company's webhooks get the tracking link, delivery is recorded by hand, by the API or by a
carrier's tracking events; the stock room prints a pick list per location and a packing slip per
fulfilment; a store associate starts on their location's queue, which names what it holds and
moves one fulfilment at a time without reloading the page."""

from __future__ import annotations

import contextlib
import json
import re
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from test_orders import (
    act,
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
from test_webhooks import Receiver, _run_all

from factories import bearer, create_tenant, csrf_headers, login, mail_to, post_form, run_outbox_inline
from inventory_factories import API, product_body

TRACK = f"{API}/tracking-events"
UPS_NUMBER = "1Z999AA10123456784"


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    """The company's webhook endpoint, listening on 127.0.0.1."""
    made = Receiver()
    yield made
    made.server.shutdown()


def _pdf_text(content: bytes) -> bytes:
    """The PDF's bytes with its compressed streams inflated: the text drawn with the built-in
    fonts is there as written (Windows-1252)."""
    assert content.startswith(b"%PDF-")
    out = [content]
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", content, re.DOTALL):
        with contextlib.suppress(zlib.error):
            out.append(zlib.decompress(stream))
    return b"\n".join(out)


async def _shop(client: Any, *, names: dict[str, str] | None = None,
                attributes: dict[str, dict[str, Any]] | None = None) -> tuple[Any, dict[str, str]]:
    """A company with the network of test_orders (a warehouse in France first), its products
    renamed and given attributes as asked, and rules by priority."""
    tenant = await create_tenant()
    c = await network(client, tenant.api_key, stock={"sku": {"wh": 20}, "sku2": {"wh": 20}})
    if names or attributes:
        products = [product_body(c[which], price_minor=2500 if which == "sku" else 4000,
                                 name=(names or {}).get(which, f"Product {c[which]}"),
                                 attributes=(attributes or {}).get(which, {}))
                    for which in ("sku", "sku2")]
        imported = await client.post(f"{API}/products/import", headers=bearer(tenant.api_key),
                                     json={"products": products})
        assert imported.status_code == 200, imported.text
    await publish_rules(client, tenant.api_key, by_priority())
    return tenant, c


async def _packed(client: Any, tenant: Any, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    order = await routed_order(client, tenant, body)
    [part] = order["fulfilments"]
    await act_ok(client, tenant.api_key, part["id"], "accept", "pick", "pack")
    return order, part


async def _shipped(client: Any, tenant: Any, body: dict[str, Any], **tracking: Any) -> tuple[dict[str, Any],
                                                                                           dict[str, Any]]:
    order, part = await _packed(client, tenant, body)
    return order, await act_ok(client, tenant.api_key, part["id"], "ship", **tracking)


async def _tap(client: Any, url: str, data: dict[str, str]) -> Any:
    """A console form posted the way htmx posts it (the card's buttons)."""
    return await client.post(url, data=data, headers={**csrf_headers(client), "HX-Request": "true"},
                             follow_redirects=False)


# --- carriers -------------------------------------------------------------------------------------


async def test_the_carriers_are_data_with_tracking_pages_and_a_country_s_come_first(client) -> None:
    tenant = await create_tenant()
    listed = await client.get(f"{API}/carriers", params={"country": "FR"}, headers=bearer(tenant.api_key))
    assert listed.status_code == 200, listed.text
    carriers = listed.json()
    codes = [c["code"] for c in carriers]
    for wanted in ("colissimo", "chronopost", "laposte_lettre_suivie", "dpd_fr", "gls", "ups", "dhl_express",
                   "fedex", "usps", "royal_mail", "postnl", "mondial_relay", "colis_prive", "bpost", "dhl_paket"):
        assert wanted in codes
    assert codes[-1] == "other" and carriers[-1]["tracking_url"] is None
    assert codes.index("colissimo") < codes.index("usps") and codes.index("mondial_relay") < codes.index("royal_mail")
    for carrier in carriers[:-1]:
        assert carrier["tracking_url"].startswith("https://") and "{number}" in carrier["tracking_url"]
    in_gb = [c["code"] for c in (await client.get(f"{API}/carriers", params={"country": "GB"},
                                                  headers=bearer(tenant.api_key))).json()]
    assert in_gb[0] == "royal_mail"


# --- shipping --------------------------------------------------------------------------------------


async def test_a_parcel_ships_with_its_carrier_and_everyone_gets_the_tracking_link(client, hooks) -> None:
    tenant, c = await _shop(client)
    key = tenant.api_key
    hooked = await client.post(f"{API}/webhook-endpoints", headers=bearer(key), json={
        "url": hooks.url, "events": ["fulfilment.shipped"]})
    assert hooked.status_code == 201, hooked.text
    email = "parcel.watcher@example.test"
    order, shipped = await _shipped(client, tenant, order_body((c["sku"], 2, 2500), email=email),
                                    carrier="colissimo", tracking_number="6a 123 456 789 01")
    link = "https://www.laposte.fr/outils/suivre-vos-envois?code=6A12345678901"
    assert (shipped["status"], shipped["carrier"], shipped["carrier_name"]) == ("shipped", "colissimo", "Colissimo")
    assert (shipped["tracking_number"], shipped["tracking_url"]) == ("6A12345678901", link)
    assert shipped["shipped_at"] is not None and shipped["delivered_at"] is None
    again = await get_order(client, key, order["id"])
    assert again["fulfilments"][0]["tracking_url"] == link
    shipped_event = next(e for e in again["events"] if e["kind"] == "fulfilment.shipped")
    assert shipped_event["data"]["tracking_number"] == "6A12345678901"

    # The order page shows the carrier and the number as a link opening apart.
    await login(client, tenant.email)
    page = await client.get(f"/app/orders/{order['id']}")
    assert page.status_code == 200
    assert "Colissimo" in page.text
    assert re.search(rf'<a href="{re.escape(link)}" target="_blank" rel="noopener"[^>]*>6A12345678901</a>', page.text)
    assert "Shipped " in page.text

    # The customer's mail and the webhook carry it too.
    await _run_all(tenant.tenant_id)
    [mail] = [m for m in await mail_to(tenant.tenant_id, email) if m.kind == "order.shipped"]
    assert "6A12345678901" in mail.body_text and link in mail.body_text
    [hook] = [json.loads(r["body"]) for r in hooks.requests]
    assert hook["type"] == "fulfilment.shipped"
    assert hook["data"]["fulfilment"]["carrier"] == "colissimo"
    assert hook["data"]["fulfilment"]["tracking_number"] == "6A12345678901"
    assert hook["data"]["fulfilment"]["tracking_url"] == link


async def test_another_carrier_takes_its_own_link_and_a_parcel_may_go_without_tracking(client) -> None:
    tenant, c = await _shop(client)
    _, other = await _shipped(client, tenant, order_body((c["sku"], 1, 2500)), carrier="other",
                              tracking_number="LOC-77", tracking_url="https://courier.example/t/LOC-77")
    assert (other["carrier"], other["carrier_name"], other["tracking_number"], other["tracking_url"]) == (
        "other", "Other carrier", "LOC-77", "https://courier.example/t/LOC-77")
    # A channel's integration that ships without tracking still can (nothing to link).
    _, bare = await _shipped(client, tenant, order_body((c["sku"], 1, 2500)))
    assert (bare["status"], bare["carrier"], bare["tracking_url"]) == ("shipped", None, None)


async def test_shipping_with_bad_tracking_says_every_problem_and_changes_nothing(client) -> None:
    tenant, c = await _shop(client)
    key = tenant.api_key
    email = "careful@example.test"
    order, part = await _packed(client, tenant, order_body((c["sku"], 2, 2500), email=email))
    before = await stock_of(client, key, c["sku"])

    both = problems_of(await act(client, key, part["id"], "ship", carrier="pigeon", tracking_number="12/34"))
    assert set(both) == {"carrier", "tracking_number"}
    assert "Unknown carrier" in both["carrier"] and "letters, digits and dashes" in both["tracking_number"]
    assert set(problems_of(await act(client, key, part["id"], "ship", carrier="colissimo"))) == {"tracking_number"}
    for url in ("javascript:alert(1)", "ftp://files.example/x", "https://", "not a link"):
        refused = problems_of(await act(client, key, part["id"], "ship", carrier="other", tracking_url=url))
        assert set(refused) == {"tracking_url"} and "web address" in refused["tracking_url"], url
    listed_with_link = problems_of(await act(client, key, part["id"], "ship", carrier="ups",
                                             tracking_number=UPS_NUMBER, tracking_url="https://ups.example/x"))
    assert set(listed_with_link) == {"tracking_url"}
    overlong = problems_of(await act(client, key, part["id"], "ship", carrier="ups", tracking_number="9" * 101))
    assert set(overlong) == {"tracking_number"}
    nul = await act(client, key, part["id"], "ship", carrier="ups", tracking_number="1Z\u0000X")
    assert nul.status_code == 422 and "tracking_number" in nul.text

    after = await get_order(client, key, order["id"])
    assert after["fulfilments"][0]["status"] == "packed" and after["fulfilments"][0]["tracking_number"] is None
    assert after["status"] == "routed" and after["lines"][0]["shipped"] == 0
    assert await stock_of(client, key, c["sku"]) == before
    assert not [m for m in await mail_to(tenant.tenant_id, email) if m.kind == "order.shipped"]


async def test_the_console_asks_for_the_carrier_and_moves_one_card_at_a_time(client) -> None:
    tenant, c = await _shop(client, names={"sku": "Trail shoe Élan", "sku2": "Rain coat"})
    key = tenant.api_key
    order, part = await _packed(client, tenant, order_body((c["sku"], 2, 2500)))
    fid = part["id"]
    await login(client, tenant.email)
    queue = await client.get("/app/fulfilments", params={"location": c["wh"]})
    assert queue.status_code == 200
    assert "Trail shoe Élan" in queue.text and c["sku"] in queue.text  # names, SKUs beside
    assert f'action="/app/fulfilments/{fid}/ship"' in queue.text and 'name="carrier"' in queue.text
    options = re.findall(r'<option value="([a-z_]+)"', queue.text)
    assert options.index("colissimo") < options.index("usps")  # a French warehouse: French carriers first
    assert f'/app/fulfilments/{fid}/packing-slip' in queue.text
    assert f"/app/fulfilments/pick-list?location={c['wh']}" in queue.text

    # Nothing chosen and a number with a slash: both said, next to their fields, what was typed kept.
    refused = await post_form(client, f"/app/fulfilments/{fid}/ship",
                              {"location": c["wh"], "tracking_number": "AB/12"})
    assert refused.status_code == 422
    assert "Choose the carrier" in refused.text and "letters, digits and dashes" in refused.text
    assert f'id="carrier-{fid}-error"' in refused.text and 'value="AB/12"' in refused.text
    assert (await get_order(client, key, order["id"]))["fulfilments"][0]["status"] == "packed"

    # With htmx, the answer is the card alone: its problems inside it, then the step done.
    card = await _tap(client, f"/app/fulfilments/{fid}/ship", {"location": c["wh"], "carrier": "chronopost"})
    assert card.status_code == 200 and card.text.lstrip().startswith("<article")
    assert f'data-fulfilment="{part["number"]}"' in card.text and "Enter the tracking number Chronopost" in card.text
    assert "<html" not in card.text
    done = await _tap(client, f"/app/fulfilments/{fid}/ship",
                      {"location": c["wh"], "carrier": "chronopost", "tracking_number": "XY123456789FR",
                       "tracking_url": "https://leftover.example/ignored"})
    assert done.status_code == 200 and "<html" not in done.text
    assert f"{part['number']}: shipped" in done.text and "data-fulfilment" not in done.text
    shipped = (await get_order(client, key, order["id"]))["fulfilments"][0]
    assert (shipped["status"], shipped["carrier"], shipped["tracking_number"]) == ("shipped", "chronopost",
                                                                                    "XY123456789FR")
    assert shipped["tracking_url"].startswith("https://www.chronopost.fr/")
    assert "leftover" not in shipped["tracking_url"]

    # A one-tap step on another fulfilment swaps its card, in its new state.
    second = await routed_order(client, tenant, order_body((c["sku2"], 1, 4000)))
    sid = second["fulfilments"][0]["id"]
    accepted = await _tap(client, f"/app/fulfilments/{sid}/accept", {"location": c["wh"]})
    assert accepted.status_code == 200 and "Rain coat" in accepted.text
    assert 'status-accepted' in accepted.text and f'action="/app/fulfilments/{sid}/pick"' in accepted.text
    # Without JavaScript, the same post redirects back to the queue, as before.
    picked = await post_form(client, f"/app/fulfilments/{sid}/pick", {"location": c["wh"]})
    assert picked.status_code == 303 and picked.headers["location"].startswith(f"/app/fulfilments?location={c['wh']}")
    # A step no longer possible (someone else was quicker) is said inside the card.
    stale = await _tap(client, f"/app/fulfilments/{sid}/accept", {"location": c["wh"]})
    assert stale.status_code == 200 and 'role="alert"' in stale.text and "become accepted" in stale.text


# --- delivery -----------------------------------------------------------------------------------------


async def test_delivery_by_hand_by_the_api_and_by_tracking_events(client, hooks) -> None:
    tenant, c = await _shop(client)
    key = tenant.api_key
    hooked = await client.post(f"{API}/webhook-endpoints", headers=bearer(key), json={
        "url": hooks.url, "events": ["fulfilment.delivered", "order.delivered"]})
    assert hooked.status_code == 201, hooked.text

    # 1. A carrier's tracking events: news on the timeline, a problem as a task, then delivered.
    by_carrier, parcel = await _shipped(client, tenant, order_body((c["sku"], 1, 2500)), carrier="ups",
                                        tracking_number=UPS_NUMBER)
    moving = {"carrier": "ups", "tracking_number": UPS_NUMBER, "status": "in_transit",
              "occurred_at": parcel["shipped_at"]}
    first = await client.post(TRACK, json=moving, headers=bearer(key))
    assert first.status_code == 200, first.text
    assert first.json()["changed"] is True and first.json()["fulfilments"][0]["id"] == parcel["id"]
    assert (await client.post(TRACK, json=moving, headers=bearer(key))).json()["changed"] is False
    problem = {"carrier": "ups", "tracking_number": UPS_NUMBER, "status": "exception", "detail": "Address not found"}
    assert (await client.post(TRACK, json=problem, headers=bearer(key))).json()["changed"] is True
    assert (await client.post(TRACK, json=problem, headers=bearer(key))).json()["changed"] is False
    tasks = (await client.get(f"{API}/service-tasks", params={"order_id": by_carrier["id"]},
                              headers=bearer(key))).json()["tasks"]
    assert [(t["kind"], t["occurrences"]) for t in tasks] == [("delivery_exception", 1)]
    assert "Address not found" in tasks[0]["detail"]
    order = await get_order(client, key, by_carrier["id"])
    assert [e["kind"] for e in order["events"]].count("fulfilment.tracking") == 2

    delivered = {"carrier": "UPS", "tracking_number": "1z999aa1 0123456784", "status": "delivered"}
    answer = await client.post(TRACK, json=delivered, headers=bearer(key))
    assert answer.status_code == 200, answer.text
    assert answer.json()["changed"] is True and answer.json()["fulfilments"][0]["status"] == "delivered"
    order = await get_order(client, key, by_carrier["id"])
    assert order["status"] == "delivered" and order["fulfilments"][0]["delivered_at"] is not None
    repeat = await client.post(TRACK, json=delivered, headers=bearer(key))
    assert repeat.status_code == 200 and repeat.json()["changed"] is False
    assert (await get_order(client, key, by_carrier["id"]))["events"] == order["events"]
    tasks = (await client.get(f"{API}/service-tasks", params={"order_id": by_carrier["id"], "status": "resolved"},
                              headers=bearer(key))).json()["tasks"]
    assert [t["kind"] for t in tasks] == ["delivery_exception"]  # delivered: the problem went away

    unknown = await client.post(TRACK, json={**delivered, "tracking_number": "1Z000NOTOURS"}, headers=bearer(key))
    assert unknown.status_code == 404 and unknown.headers["content-type"].startswith("application/problem+json")
    wrong_carrier = await client.post(TRACK, json={**delivered, "carrier": "fedex"}, headers=bearer(key))
    assert wrong_carrier.status_code == 404
    bad = problems_of(await client.post(TRACK, json={"carrier": "owl", "tracking_number": "a b/c",
                                                     "status": "delivered"}, headers=bearer(key)))
    assert set(bad) == {"carrier", "tracking_number"}
    future = problems_of(await client.post(TRACK, json={**delivered, "occurred_at": "2999-01-01T00:00:00Z"},
                                           headers=bearer(key)))
    assert set(future) == {"occurred_at"}
    reader = await key_with_role(tenant, "read_only")
    assert (await client.post(TRACK, json=delivered, headers=bearer(reader))).status_code == 403

    # Another company's key never finds this company's parcel.
    stranger = await create_tenant()
    assert (await client.post(TRACK, json=delivered, headers=bearer(stranger.api_key))).status_code == 404

    # 2. By the API: delivering again changes nothing.
    email = "doorstep@example.test"
    by_api, part = await _shipped(client, tenant, order_body((c["sku"], 1, 2500), email=email), carrier="dpd_fr",
                                  tracking_number="250012345678")
    done = await act_ok(client, key, part["id"], "deliver")
    assert done["status"] == "delivered" and done["delivered_at"] is not None
    twice = await act_ok(client, key, part["id"], "deliver")
    assert twice["delivered_at"] == done["delivered_at"]
    assert (await get_order(client, key, by_api["id"]))["status"] == "delivered"
    await _run_all(tenant.tenant_id)
    told = [m for m in await mail_to(tenant.tenant_id, email) if m.kind == "order.delivered"]
    assert len(told) == 1 and "250012345678" in told[0].body_text  # once, with the parcel's number
    _, unshipped_part = await _packed(client, tenant, order_body((c["sku"], 1, 2500)))
    too_soon = await act(client, key, unshipped_part["id"], "deliver")
    assert too_soon.status_code == 409 and "packed" in too_soon.json()["detail"]

    # 3. By hand, on the order page.
    by_hand, hand_part = await _shipped(client, tenant, order_body((c["sku"], 1, 2500)), carrier="gls",
                                        tracking_number="GLS12345")
    await login(client, tenant.email)
    page = await client.get(f"/app/orders/{by_hand['id']}")
    assert f'action="/app/fulfilments/{hand_part["id"]}/deliver"' in page.text and "Mark delivered" in page.text
    marked = await post_form(client, f"/app/fulfilments/{hand_part['id']}/deliver", {"back": "order"})
    assert marked.status_code == 303 and marked.headers["location"].startswith(f"/app/orders/{by_hand['id']}")
    assert (await get_order(client, key, by_hand["id"]))["status"] == "delivered"
    page = await client.get(f"/app/orders/{by_hand['id']}")
    assert "Delivered " in page.text or "delivered " in page.text
    assert "Mark delivered" not in page.text

    # The company's webhooks heard of each delivery, with the parcel's tracking.
    await _run_all(tenant.tenant_id)
    hooks = [json.loads(r["body"]) for r in hooks.requests]
    parcels = [h["data"]["fulfilment"] for h in hooks if h["type"] == "fulfilment.delivered"]
    assert sorted(p["tracking_number"] for p in parcels) == sorted([UPS_NUMBER, "250012345678", "GLS12345"])
    ups = next(p for p in parcels if p["carrier"] == "ups")
    assert ups["tracking_url"] == f"https://www.ups.com/track?tracknum={UPS_NUMBER}" and ups["delivered_at"]
    assert sorted(h["data"]["number"] for h in hooks if h["type"] == "order.delivered") == sorted(
        [by_carrier["number"], by_api["number"], by_hand["number"]])


# --- pick list and packing slip ------------------------------------------------------------------------


async def test_a_pick_list_sums_what_the_accepted_fulfilments_need_for_its_location_only(client) -> None:
    tenant, c = await _shop(client, names={"sku": "Trail shoe", "sku2": "Rain coat"},
                            attributes={"sku2": {"bin": "A-01"}, "sku": {"bin": "C-07"}})
    key = tenant.api_key
    first = await routed_order(client, tenant, order_body((c["sku"], 2, 2500)))
    second = await routed_order(client, tenant, order_body((c["sku"], 1, 2500), (c["sku2"], 3, 4000)))
    waiting = await routed_order(client, tenant, order_body((c["sku"], 5, 2500)))  # not accepted yet
    f1, f2 = first["fulfilments"][0], second["fulfilments"][0]
    await act_ok(client, key, f1["id"], "accept")
    await act_ok(client, key, f2["id"], "accept", "pick")

    listed = await client.get(f"{API}/fulfilments/pick-list", params={"location": c["wh"]}, headers=bearer(key))
    assert listed.status_code == 200, listed.text
    picks = listed.json()
    assert picks["fulfilments"] == [f1["number"], f2["number"]]
    rows = [(line["bin"], line["sku"], line["name"], line["quantity"], line["fulfilments"]) for line in picks["lines"]]
    assert rows == [("A-01", c["sku2"], "Rain coat", 3, [f2["number"]]),
            ("C-07", c["sku"], "Trail shoe", 3, [f1["number"], f2["number"]])]
    assert waiting["fulfilments"][0]["number"] not in json.dumps(picks)

    store_associate = await member(tenant.tenant_id, "store_associate", [c["store"]])
    warehouse_associate = await member(tenant.tenant_id, "store_associate", [c["wh"]])
    await login(client, warehouse_associate)
    home = await client.get("/app", follow_redirects=False)  # their location's figures, and its queue
    assert home.status_code == 200 and f'hx-get="/app/fulfilments?location={c["wh"]}"' in home.text
    page = await client.get("/app/fulfilments/pick-list", params={"location": c["wh"]})
    assert page.status_code == 200
    assert page.text.index("Rain coat") < page.text.index("Trail shoe")
    assert f"{f1['number']}, {f2['number']}" in page.text
    pdf = await client.get("/app/fulfilments/pick-list.pdf", params={"location": c["wh"]})
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"] == f'inline; filename="pick-list-{c["wh"]}.pdf"'
    text = _pdf_text(pdf.content)
    assert c["sku"].encode() in text and b"Rain coat" in text and f2["number"].encode() in text

    await login(client, store_associate)
    assert (await client.get("/app/fulfilments/pick-list", params={"location": c["wh"]})).status_code == 404
    assert (await client.get("/app/fulfilments/pick-list.pdf", params={"location": c["wh"]})).status_code == 404
    own = await client.get("/app/fulfilments/pick-list")
    assert own.status_code == 200 and "Nothing to pick" in own.text and c["wh"] not in own.text
    other = await create_tenant()
    assert (await client.get(f"{API}/fulfilments/pick-list", params={"location": c["wh"]},
                             headers=bearer(other.api_key))).status_code == 404


async def test_a_packing_slip_says_what_goes_in_the_parcel_and_where_without_prices(client) -> None:
    tenant, c = await _shop(client, names={"sku": "Chaussure élégante", "sku2": "Manteau d\u2019hiver ôté"})
    key = tenant.api_key
    order, part = await _packed(client, tenant, order_body((c["sku"], 2, 2500), (c["sku2"], 1, 4000),
                                                          external_number="WEB-777"))
    await login(client, tenant.email)
    page = await client.get(f"/app/fulfilments/{part['id']}/packing-slip")
    assert page.status_code == 200
    assert "WEB-777" in page.text and order["number"] in page.text and part["number"] in page.text
    assert "Bea Buyer" in page.text and "1 rue de Rivoli" in page.text and "75001 Paris" in page.text
    assert "France" in page.text and "Chaussure élégante" in page.text and c["sku2"] in page.text
    assert tenant.name in page.text
    assert "25,00" not in page.text and "€" not in page.text and "40,00" not in page.text  # no prices

    pdf = await client.get(f"/app/fulfilments/{part['id']}/packing-slip.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"] == f'inline; filename="packing-slip-{part["number"]}.pdf"'
    text = _pdf_text(pdf.content)
    assert b"WEB-777" in text and b"1 rue de Rivoli" in text
    assert "Chaussure élégante".encode("cp1252") in text  # accents print as typed
    assert "Manteau d\u2019hiver ôté".encode("cp1252") in text
    by_api = await client.get(f"{API}/fulfilments/{part['id']}/packing-slip", headers=bearer(key))
    assert by_api.status_code == 200 and by_api.content.startswith(b"%PDF-")

    elsewhere = await member(tenant.tenant_id, "store_associate", [c["store"]])
    await login(client, elsewhere)
    assert (await client.get(f"/app/fulfilments/{part['id']}/packing-slip")).status_code == 404
    assert (await client.get(f"/app/fulfilments/{part['id']}/packing-slip.pdf")).status_code == 404
    here = await member(tenant.tenant_id, "store_associate", [c["wh"]])
    await login(client, here)
    assert (await client.get(f"/app/fulfilments/{part['id']}/packing-slip")).status_code == 200
    stranger = await create_tenant()
    assert (await client.get(f"{API}/fulfilments/{part['id']}/packing-slip",
                             headers=bearer(stranger.api_key))).status_code == 404


def test_pdf_text_outside_windows_1252_prints_as_its_base_letter_or_a_question_mark() -> None:
    from orders.documents import printable

    assert printable("Łódź \u2013 12,50 € · Ærøskøbing") == "Lódz \u2013 12,50 € · Ærøskøbing"
    assert printable("Ő\u0151\nx") == "Oo x"
    assert printable("東京") == "??"


async def test_a_store_associate_starts_on_their_queue_with_names(client) -> None:
    tenant, c = await _shop(client, names={"sku": "Trail shoe"})
    order = await routed_order(client, tenant, order_body((c["sku"], 1, 2500)))
    associate = await member(tenant.tenant_id, "store_associate", [c["wh"]])
    await login(client, associate)
    home = await client.get("/app", follow_redirects=False)
    assert home.status_code == 200 and f'hx-get="/app/fulfilments?location={c["wh"]}"' in home.text
    queue = await client.get("/app/fulfilments", params={"location": c["wh"]}, headers={"HX-Request": "true"})
    assert order["fulfilments"][0]["number"] in queue.text and "Trail shoe" in queue.text
    await run_outbox_inline(tenant.tenant_id)
    await login(client, tenant.email)
    owner_home = await client.get("/app", follow_redirects=False)
    assert owner_home.status_code == 200 and "Getting started" in owner_home.text  # the checklist, above the figures


def test_a_busy_locations_pick_list_still_prints() -> None:
    """One SKU wanted by hundreds of fulfilments: its row names the first ones and counts the rest,
    so it fits on a page instead of failing the whole PDF."""
    from datetime import UTC, datetime

    from inventory.schemas import LocationOut
    from orders.documents import PickLine, PickList, pick_list_pdf

    numbers = [f"O-{n:06d}-1" for n in range(500)]
    location = msgspec.convert({"id": str(uuid.uuid4()), "code": "WH-1", "name": "Warehouse", "kind": "warehouse",
                                "country": "FR", "timezone": "Europe/Paris",
                                "created_at": "2026-12-01T00:00:00Z"}, LocationOut, strict=False)
    picks = PickList(company="Maison", location=location, made_at=datetime(2026, 12, 5, tzinfo=UTC),
                     fulfilments=numbers, lines=[PickLine("BAG-01", "Sac", 500, None, numbers)], truncated=False)
    text = _pdf_text(pick_list_pdf(picks, "Europe/Paris"))
    assert b"O-000000-1" in text and b"O-000007-1 and 492" in text and b"O-000008-1" not in text
