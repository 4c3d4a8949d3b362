"""An agent changes a click & collect order's pickup store from the order page's Actions, in the
real Chromium at desktop width: the effect is shown first (what is released where, routing picks
again), confirmed once, the worker routes the order to the new store, and a note goes on the
timeline."""

from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.sync_api import expect

from browser_pages import new_company, signed_in_page

pytestmark = pytest.mark.browser

PASSWORD = "stores change their minds"
expect.set_options(timeout=15_000)


def _store(code: str, name: str, city: str, latitude: float, longitude: float) -> dict[str, Any]:
    return {"code": code, "name": name, "kind": "store", "country": "FR", "timezone": "Europe/Paris", "city": city,
            "latitude": latitude, "longitude": longitude, "click_and_collect": True, "receives_transfers": True}


def test_an_agent_moves_a_pickup_to_another_store_and_notes_why(live_server: Any, new_context: Any,
                                                                 journey_for: Any) -> None:
    base = live_server.base_url
    journey = journey_for("amend-")
    company = new_company("Maison Change", "change", PASSWORD, owner="Camille Agent")
    with company.api(base) as api:
        for body in (_store("ST-PARIS", "Paris Rivoli", "Paris", 48.86, 2.34),
                     _store("ST-LYON", "Lyon Bellecour", "Lyon", 45.76, 4.83)):
            assert api.post("/api/v1/locations", json=body).status_code == 201
        assert api.post("/api/v1/products", json={"sku": "MUG", "name": "Mug", "price_minor": 1200}).status_code == 201
        for store in ("ST-PARIS", "ST-LYON"):
            assert api.post("/api/v1/inventory/adjustments",
                            json={"sku": "MUG", "location": store, "quantity": 4}).status_code == 201
        document = {"rules": [{"id": "cc", "name": "Click and collect", "enabled": True, "when": None,
                               "then": {"location_types": ["store"], "filters": [], "sorts": [],
                                        "split": {"max_shipments": 1, "min_order_value": 0, "never_split_line": False},
                                        "fallback": ["hold"]}}]}
        assert api.put("/api/v1/rule-sets/routing/draft", json={"document": document}).status_code == 200
        assert api.post("/api/v1/rule-sets/routing/versions", json={}).status_code == 201
        created = api.post("/api/v1/orders", json={
            "channel": "web", "external_number": f"W-{company.suffix}", "currency": "EUR",
            "lines": [{"sku": "MUG", "quantity": 2, "unit_price_minor": 1200}],
            "customer": {"email": f"lea-{company.suffix}@example.test", "name": "Léa Martin"},
            "delivery": {"mode": "pickup", "pickup_location": "ST-PARIS"}, "total_minor": 2400})
        assert created.status_code == 201, created.text
        order_id = created.json()["id"]
        deadline = time.monotonic() + 20
        while api.get(f"/api/v1/orders/{order_id}").json()["status"] == "received" and time.monotonic() < deadline:
            time.sleep(0.2)
        order = api.get(f"/api/v1/orders/{order_id}").json()
    assert [(f["location"], f["kind"]) for f in order["fulfilments"]] == [("ST-PARIS", "pickup")], order

    page = signed_in_page(new_context, journey, "agent", base, company.email, PASSWORD, timezone_id="Europe/Paris")
    page.goto(f"/app/orders/{order_id}")
    actions = page.locator("#order-actions")
    expect(actions.get_by_role("heading", name="Actions")).to_be_visible()
    actions.locator("#change-pickup summary").click()
    actions.get_by_label("New pickup store").select_option("ST-LYON")
    actions.locator("#change-pickup").get_by_label("Reason").fill("The customer is in Lyon this week")
    actions.get_by_role("button", name="Review the change").click()

    effect = page.locator("#pickup-effect")
    expect(effect).to_contain_text("Pickup moves from ST-PARIS to Lyon Bellecour (ST-LYON")
    expect(effect).to_contain_text("2 \u00d7 MUG back to available at ST-PARIS")
    expect(effect).to_contain_text("routing picks again")
    journey.shot(page, "pickup-review")
    page.get_by_role("button", name="Confirm the new pickup store").click()
    expect(page.locator(".notice")).to_contain_text("Pickup store changed")

    # The worker routes it again: the page shows the new store's fulfilment (pushed live, or on reload).
    deadline = time.monotonic() + 20
    while page.locator("article.fulfilment").count() < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
        page.reload()
    expect(page.locator("article.fulfilment[data-fulfilment$='-2']")).to_contain_text("ST-LYON")
    expect(page.locator("article.fulfilment[data-fulfilment$='-1']")).to_contain_text("cancelled")
    expect(page.locator("#order-timeline")).to_contain_text("Pickup store changed from ST-PARIS to ST-LYON")

    page.locator("#add-note textarea").fill("Called Léa: she collects on Saturday.")
    page.get_by_role("button", name="Add note").click()
    expect(page.locator(".notice")).to_contain_text("Note added")
    expect(page.locator("#order-timeline li").first).to_contain_text("Called Léa: she collects on Saturday.")
    page.locator("#order-actions").scroll_into_view_if_needed()
    journey.shot(page, "after")

    # The confirmation mail, sent again from the order's mails.
    page.get_by_role("link", name="Send a mail again…").click()
    row = page.locator("#order-mails tr", has_text="Order confirmation")
    row.get_by_label("Why the mail is sent again").fill("Lost in the spam folder")
    row.get_by_role("button", name="Send again…").click()
    expect(page.locator("#resend-effect")).to_contain_text(f"again to lea-{company.suffix}@example.test")
    journey.shot(page, "resend-review")
    page.get_by_role("button", name="Confirm: send it again").click()
    expect(page.locator(".notice")).to_contain_text("Mail sent again")
    expect(page.locator("#order-timeline")).to_contain_text("Mail sent again")
    assert journey.page_errors == []
