"""A parcel through the warehouse in the real Chromium: the queue moves a fulfilment step by step
without reloading the page, the ship form asks for the carrier (the browser itself refuses it
empty) and its tracking number, the order page links to the carrier's tracking page and records
the delivery by hand; the pick list and the packing slip print without the console around them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from browser_pages import new_company, routing_decided, signed_in_page

pytestmark = pytest.mark.browser

PASSWORD = "parcels leave on time"
WAREHOUSE = "WH-SHIP"

expect.set_options(timeout=15_000)


def set_up(api: httpx.Client) -> None:
    assert api.post("/api/v1/locations", json={
        "code": WAREHOUSE, "name": "Entrepôt de Lyon", "kind": "warehouse", "country": "FR",
        "timezone": "Europe/Paris", "address_line1": "3 quai Rambaud", "city": "Lyon", "postcode": "69002",
        "latitude": 45.74, "longitude": 4.82, "ships_to_customers": True}).status_code == 201
    for sku, name, place in (("JKT-1", "Veste légère", "B-12"), ("CAP-1", "Casquette", "A-03")):
        assert api.post("/api/v1/products", json={"sku": sku, "name": name, "price_minor": 5900,
                                                  "attributes": {"bin": place}}).status_code == 201
        assert api.post("/api/v1/inventory/adjustments",
                        json={"sku": sku, "location": WAREHOUSE, "quantity": 10}).status_code == 201
    then = {"location_types": ["warehouse"], "filters": [], "sorts": [{"by": "priority", "band": 0}],
            "split": {"max_shipments": 1, "min_order_value": 0, "never_split_line": False}, "fallback": ["hold"]}
    rules = {"rules": [{"id": "wh", "name": "Warehouse", "enabled": True, "when": None, "then": then}]}
    assert api.put("/api/v1/rule-sets/routing/draft", json={"document": rules}).status_code == 200
    assert api.post("/api/v1/rule-sets/routing/versions", json={}).status_code == 201


def place(api: httpx.Client, number: str, *lines: tuple[str, int]) -> dict[str, Any]:
    total = sum(quantity * 5900 for _, quantity in lines)
    created = api.post("/api/v1/orders", json={
        "channel": "web", "external_number": number, "currency": "EUR",
        "lines": [{"sku": sku, "quantity": quantity, "unit_price_minor": 5900} for sku, quantity in lines],
        "customer": {"email": f"{number.lower()}@example.test", "name": "Léa Dupont"},
        "delivery": {"mode": "ship", "address": {"country": "FR", "name": "Léa Dupont", "line1": "8 rue des Lilas",
                                                 "postcode": "75020", "city": "Paris"}},
        "total_minor": total, "payment": {"authorized_minor": total, "provider": "external"}})
    assert created.status_code == 201, created.text
    order = routing_decided(api, created.json()["id"])
    assert order["status"] == "routed", order
    return order


def test_a_parcel_is_picked_packed_shipped_tracked_and_delivered(live_server: Any, new_context: Any,
                                                                 journey_for: Any) -> None:
    base = live_server.base_url
    journey = journey_for("shipping-")
    company = new_company("Maison Sam", "sam", PASSWORD, owner="Sam Owner")
    suffix = company.suffix
    with company.api(base) as api:
        set_up(api)
        order = place(api, f"WEB-{suffix}-1", ("JKT-1", 2), ("CAP-1", 1))
        other = place(api, f"WEB-{suffix}-2", ("JKT-1", 1))
        [parcel], [second] = order["fulfilments"], other["fulfilments"]
        assert api.post(f"/api/v1/fulfilments/{second['id']}/accept", json={}).status_code == 200

    tab = signed_in_page(new_context, journey, "queue", base, company.email, PASSWORD,
                         timezone_id="Europe/Paris", viewport={"width": 1024, "height": 768})
    tab.goto(f"/app/fulfilments?location={WAREHOUSE}")
    tab.evaluate("window.samePage = true")
    card = tab.locator(f'[data-fulfilment="{parcel["number"]}"]')
    expect(card).to_contain_text("Veste légère")
    expect(card).to_contain_text("JKT-1")
    for button, status in (("Accept", "accepted"), ("Start picking", "picking"), ("Packed", "packed")):
        card.get_by_role("button", name=button).click()
        expect(card.locator(".badge").first).to_have_text(status)
    assert tab.evaluate("window.samePage") is True, "the queue was reloaded"

    # The ship form: the browser refuses it without a carrier, saying so beside the field in the
    # server's words; the link field is for another carrier, and a link that is none is told plainly.
    card.locator("summary", has_text="Ship").click()
    link_field = card.get_by_label("Tracking link")
    expect(link_field).to_be_hidden()
    card.get_by_role("button", name="Shipped").click()
    expect(card.locator(".field-error")).to_have_text("Choose the carrier that takes the parcel (or Other carrier).")
    expect(card.get_by_label("Carrier", exact=True)).to_be_focused()
    expect(card.locator(".badge").first).to_have_text("packed")
    card.get_by_label("Carrier", exact=True).select_option("other")
    expect(card.locator(".field-error")).to_have_count(0)  # corrected: the mark goes at once
    expect(link_field).to_be_visible()
    link_field.fill("www.laposte.fr/suivi")
    card.get_by_role("button", name="Shipped").click()
    expect(card.locator(".field-error")).to_have_text(
        "The tracking link must be a web address starting with https:// (or http://).")
    expect(link_field).to_be_focused()
    expect(link_field).to_have_attribute("aria-invalid", "true")
    expect(card.locator(".badge").first).to_have_text("packed")
    journey.shot(tab, "ship-form-link-refused")
    # A listed carrier makes its own link: the one typed, hidden now, is left aside.
    card.get_by_label("Carrier", exact=True).select_option("colissimo")
    expect(link_field).to_be_hidden()
    card.get_by_label("Tracking number").fill("6A 1234 5678 9")
    journey.shot(tab, "ship-form")
    card.get_by_role("button", name="Shipped").click()
    expect(tab.locator(".queue-done")).to_contain_text(f"{parcel['number']}: shipped (6A123456789)")
    assert tab.evaluate("window.samePage") is True, "the queue was reloaded"
    journey.shot(tab, "shipped")

    # The pick list of what is still to pick, as printed.
    picks = journey.watch(tab.context.new_page(), "pick list")
    picks.goto(f"/app/fulfilments/pick-list?location={WAREHOUSE}")
    expect(picks.locator("#pick-list tbody tr")).to_have_count(1)
    expect(picks.locator("#pick-list")).to_contain_text(second["number"])
    picks.emulate_media(media="print")
    expect(picks.locator(".console-header")).to_be_hidden()
    expect(picks.get_by_role("button", name="Print")).to_be_hidden()
    journey.shot(picks, "pick-list-print")

    # The packing slip: who it goes to, what is in it, no prices.
    slip = journey.watch(tab.context.new_page(), "packing slip")
    slip.goto(f"/app/fulfilments/{parcel['id']}/packing-slip")
    expect(slip.locator("#slip-order-number")).to_have_text(f"WEB-{suffix}-1")
    expect(slip.locator("#slip-ship-to")).to_contain_text("8 rue des Lilas")
    expect(slip.locator("#slip-lines")).to_contain_text("Casquette")
    expect(slip.locator("body")).not_to_contain_text("59,00")
    slip.emulate_media(media="print")
    journey.shot(slip, "packing-slip-print")

    # The order page links to the carrier's page for the parcel, and records the delivery.
    tab.goto(f"/app/orders/{order['id']}")
    tracking = tab.locator(f'[data-fulfilment="{parcel["number"]}"] a.tracking-link')
    expect(tracking).to_have_text("6A123456789")
    expect(tracking).to_have_attribute("href", "https://www.laposte.fr/outils/suivre-vos-envois?code=6A123456789")
    expect(tracking).to_have_attribute("target", "_blank")
    tab.once("dialog", lambda dialog: dialog.accept())
    tab.get_by_role("button", name="Mark delivered").click()
    expect(tab.locator("#order-status")).to_have_text("delivered")
    journey.shot(tab, "order-delivered")

    assert journey.page_errors == []
    assert journey.failures == []


STORE = "ST-OPERA"


def test_a_parcel_to_the_pickup_store_is_announced_in_french_with_its_tracking(live_server: Any, new_context: Any,
                                                                                journey_for: Any) -> None:
    """Click & collect from a store without the stock: the warehouse ships it to the store with a
    carrier and a tracking number, and the customer's mail, in French, gives the tracking link,
    the store's address and hours, and the shop's own order number."""
    base = live_server.base_url
    journey = journey_for("ship-to-store-")
    company = new_company("Maison Lou", "lou", PASSWORD, owner="Lou Owner")
    suffix = company.suffix
    hours = {day: [["10:00", "19:30"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat")}
    number = f"CMD-{suffix}"
    with company.api(base) as api:
        set_up(api)
        assert api.post("/api/v1/locations", json={
            "code": STORE, "name": "Paris Opéra", "kind": "store", "country": "FR", "timezone": "Europe/Paris",
            "address_line1": "12 boulevard des Capucines", "city": "Paris", "postcode": "75009",
            "latitude": 48.87, "longitude": 2.33, "click_and_collect": True, "receives_transfers": True,
            "ships_to_customers": False, "opening_hours": hours}).status_code == 201
        then = {"location_types": ["store", "warehouse"], "filters": [], "sorts": [{"by": "priority", "band": 0}],
                "split": {"max_shipments": 1, "min_order_value": 0, "never_split_line": False},
                "fallback": ["ship_to_store", "hold"]}
        rules = {"rules": [{"id": "all", "name": "Nearest stock", "enabled": True, "when": None, "then": then}]}
        assert api.put("/api/v1/rule-sets/routing/draft", json={"document": rules}).status_code == 200
        assert api.post("/api/v1/rule-sets/routing/versions", json={}).status_code == 201
        order = api.post("/api/v1/orders", json={
            "channel": "web", "external_number": number, "currency": "EUR", "language": "fr",
            "lines": [{"sku": "JKT-1", "quantity": 1, "unit_price_minor": 5900}],
            "customer": {"email": f"lou-{suffix}@example.test", "name": "Lou Martin"},
            "delivery": {"mode": "pickup", "pickup_location": STORE}, "total_minor": 5900}).json()
        routed = routing_decided(api, order["id"])
        assert routed["status"] == "routed", routed
        [transfer] = routed["fulfilments"]
        assert (transfer["kind"], transfer["ship_to_store"]) == ("transfer", STORE)
        for action in ("accept", "pick", "pack"):
            assert api.post(f"/api/v1/fulfilments/{transfer['id']}/{action}", json={}).status_code == 200

    tab = signed_in_page(new_context, journey, "warehouse", base, company.email, PASSWORD,
                         timezone_id="Europe/Paris", viewport={"width": 1024, "height": 768})
    tab.goto(f"/app/fulfilments?location={WAREHOUSE}")
    card = tab.locator(f'[data-fulfilment="{transfer["number"]}"]')
    card.locator("summary", has_text="Ship to store").click()
    card.locator("select[name=carrier]").select_option("colissimo")
    card.get_by_label("Tracking number").fill("6A98765432109")
    card.get_by_role("button", name="Shipped").click()
    expect(tab.locator(".queue-done")).to_contain_text(f"{transfer['number']}: shipped (6A98765432109)")

    # The customer's mail, as the company's outgoing-mail log shows it.
    tab.goto("/app/settings/mail-log")
    tab.get_by_role("link", name=f"Votre commande {number} est en route").click()
    text = tab.locator("body")
    tracking = "https://www.laposte.fr/outils/suivre-vos-envois?code=6A98765432109"
    for words in (tracking, "12 boulevard des Capucines", "75009 Paris", "Paris Opéra", number,
                  "Votre colis est en route vers ce magasin", "10:00 \u2013 19:30"):
        expect(text).to_contain_text(words)
    mail = tab.frame_locator("iframe.mail-frame")
    expect(mail.get_by_role("link", name="Suivre votre colis")).to_have_attribute("href", tracking)
    expect(mail.locator("body")).to_contain_text("12 boulevard des Capucines")
    expect(mail.locator("body")).to_contain_text(number)
    journey.shot(tab, "french-mail")

    assert journey.page_errors == []
    assert journey.failures == []
