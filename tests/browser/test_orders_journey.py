"""Orders end to end, in the real Chromium against the real web server and worker: a routing change
is scheduled for tomorrow (Paris time); an order placed today ships from the warehouse to the
pickup store, and one placed after midnight (the servers' clock moved by the test, nothing else
done in between) is picked in the store itself. The store's fulfilment page then carries it to
"ready for pickup" and "collected" while the order page, open in another tab, follows live."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Page, expect

from browser_pages import routing_decided, sign_in
from processes import cli_tenant

pytestmark = pytest.mark.browser

PASSWORD = "orders flow like water"
TIMEZONE = "Europe/Paris"

expect.set_options(timeout=15_000)


def rule(rule_id: str, name: str, types: list[str]) -> dict[str, Any]:
    return {"id": rule_id, "name": name, "enabled": True, "when": None,
            "then": {"location_types": types, "filters": [], "sorts": [{"by": "distance", "band": 0}],
                     "split": {"max_shipments": 1, "min_order_value": 0, "never_split_line": False},
                     "fallback": ["ship_to_store", "hold"]}}


def set_up(api: httpx.Client, tomorrow_local: datetime) -> None:
    for body in (
        {"code": "WH-CENTRE", "name": "Central warehouse", "kind": "warehouse", "country": "FR", "timezone": TIMEZONE,
         "latitude": 47.0, "longitude": 2.4, "ships_to_customers": True},
        {"code": "ST-PARIS", "name": "Paris store", "kind": "store", "country": "FR", "timezone": TIMEZONE,
         "latitude": 48.8606, "longitude": 2.3376, "ship_from_store": True, "click_and_collect": True,
         "receives_transfers": True},
    ):
        assert api.post("/api/v1/locations", json=body).status_code == 201
    assert api.post("/api/v1/products", json={"sku": "BAG-TOTE", "name": "Tote bag", "price_minor": 3500,
                                              "category": "bags"}).status_code == 201
    for location, quantity in (("WH-CENTRE", 20), ("ST-PARIS", 3)):
        assert api.post("/api/v1/inventory/adjustments",
                        json={"sku": "BAG-TOTE", "location": location, "quantity": quantity}).status_code == 201
    # Today: everything from the warehouse. From tomorrow 00:00 in Paris: stores first.
    for document, window in (({"rules": [rule("wh", "Warehouse only", ["warehouse"])]}, {}),
                             ({"rules": [rule("st", "Stores first", ["store", "warehouse"])]},
                              {"effective_from": tomorrow_local.replace(tzinfo=None).isoformat()})):
        assert api.put("/api/v1/rule-sets/routing/draft", json={"document": document}).status_code == 200
        published = api.post("/api/v1/rule-sets/routing/versions", json=window)
        assert published.status_code == 201, published.text


def place(api: httpx.Client, number: str) -> str:
    order = api.post("/api/v1/orders", headers={"Idempotency-Key": number}, json={
        "channel": "web", "external_number": number, "currency": "EUR",
        "lines": [{"sku": "BAG-TOTE", "quantity": 1, "unit_price_minor": 3500}],
        "customer": {"email": f"{number.lower()}@example.test", "name": "Chloé Client"},
        "delivery": {"mode": "pickup", "pickup_location": "ST-PARIS"},
        "total_minor": 3500, "payment": {"authorized_minor": 3500, "provider": "external"}})
    assert order.status_code == 201, order.text
    order_id: str = order.json()["id"]
    return order_id


def test_scheduled_routing_change_and_a_pickup_carried_through_live(live_server: Any, new_context: Any,
                                                                    journey_for: Any) -> None:
    base = live_server.base_url
    journey = journey_for("orders-")
    suffix = uuid.uuid4().hex[:8]
    email = f"olga-{suffix}@example.test"
    created = cli_tenant(f"Maison Olga {suffix}", email, PASSWORD, owner="Olga Owner", timezone=TIMEZONE)
    zone = ZoneInfo(TIMEZONE)
    tomorrow = (datetime.now(zone) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {created['api_key']}"}, timeout=30)
    try:
        set_up(api, tomorrow)

        # 1. Today: the rules in force send the pickup from the warehouse to the store.
        before = routing_decided(api, place(api, f"WEB-{suffix}-1"))
        assert before["status"] == "routed", before
        [shipment] = before["fulfilments"]
        assert (shipment["location"], shipment["kind"], shipment["ship_to_store"]) == ("WH-CENTRE", "transfer",
                                                                                       "ST-PARIS")
        assert before["routing_version"] == 1

        # 2. The servers' clock passes midnight in Paris; nobody touches the rules.
        live_server.shift_clock((tomorrow + timedelta(hours=1) - datetime.now(zone)).total_seconds())
        after = routing_decided(api, place(api, f"WEB-{suffix}-2"))
        assert after["status"] == "routed", after
        [pickup] = after["fulfilments"]
        assert (pickup["location"], pickup["kind"]) == ("ST-PARIS", "pickup")
        assert after["routing_version"] == 2
    finally:
        api.close()

    context = new_context(timezone_id=TIMEZONE, base_url=base)
    order_tab = journey.watch(context.new_page(), "order page")
    sign_in(order_tab, base, email, PASSWORD)

    # 3. The orders list shows both; the second's page explains its store.
    order_tab.locator("header").get_by_role("link", name="Orders").click()
    expect(order_tab.locator("#orders-table tbody tr")).to_have_count(2)
    order_tab.get_by_role("link", name=after["number"]).click()
    expect(order_tab.locator("#order-status")).to_have_text("routed")
    order_tab.get_by_text("Why this location").click()
    expect(order_tab.locator(".why-location")).to_contain_text("Stores first")
    journey.shot(order_tab, "order-routed")

    # 4. The store's page, in another tab, carries it through; the order page follows without reloading.
    queue_tab: Page = journey.watch(context.new_page(), "store queue")
    queue_tab.goto("/app/fulfilments?location=ST-PARIS")
    card = queue_tab.locator(f'[data-fulfilment="{pickup["number"]}"]')
    for button, status in (("Accept", "accepted"), ("Start picking", "picking"), ("Packed", "packed"),
                           ("Ready for pickup", "ready for pickup")):
        card.get_by_role("button", name=button).click()
        expect(card.locator(".badge")).to_have_text(status)
    journey.shot(queue_tab, "queue-ready")
    expect(order_tab.locator("#order-status")).to_have_text("ready for pickup")
    journey.shot(order_tab, "order-ready-live")
    card.get_by_role("button", name="Handed over").click()
    expect(queue_tab.locator(f'[data-fulfilment="{pickup["number"]}"]')).to_have_count(0)
    expect(order_tab.locator("#order-status")).to_have_text("collected")
    expect(order_tab.locator("#order-timeline")).to_contain_text("Fulfilment collected by the customer")
    journey.shot(order_tab, "order-collected-live")

    assert journey.page_errors == []
    assert journey.failures == []
