"""Cancelling units from the order page, in the real Chromium: with nothing chosen the browser asks
no question and the page says what to choose; with units chosen it asks first, and only a yes
cancels them."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from browser_pages import sign_in
from processes import cli_tenant

pytestmark = pytest.mark.browser

PASSWORD = "second thoughts happen"
expect.set_options(timeout=15_000)


def routed_order(api: httpx.Client, number: str) -> dict[str, Any]:
    assert api.post("/api/v1/locations", json={
        "code": "WH-ONE", "name": "Only warehouse", "kind": "warehouse", "country": "FR", "timezone": "Europe/Paris",
        "latitude": 47.0, "longitude": 2.4, "ships_to_customers": True}).status_code == 201
    assert api.post("/api/v1/products", json={"sku": "MUG", "name": "Mug", "price_minor": 1200}).status_code == 201
    assert api.post("/api/v1/inventory/adjustments",
                    json={"sku": "MUG", "location": "WH-ONE", "quantity": 10}).status_code == 201
    document = {"rules": [{"id": "all", "name": "Warehouse", "enabled": True, "when": None,
                           "then": {"location_types": ["warehouse"], "filters": [], "sorts": [],
                                    "split": {"max_shipments": 1, "min_order_value": 0, "never_split_line": False},
                                    "fallback": ["hold"]}}]}
    assert api.put("/api/v1/rule-sets/routing/draft", json={"document": document}).status_code == 200
    assert api.post("/api/v1/rule-sets/routing/versions", json={}).status_code == 201
    created = api.post("/api/v1/orders", json={
        "channel": "phone", "external_number": number, "currency": "EUR",
        "lines": [{"sku": "MUG", "quantity": 3, "unit_price_minor": 1200}],
        "customer": {"email": "nina@example.test", "name": "Nina Mugs"},
        "delivery": {"mode": "ship", "address": {"country": "FR", "city": "Lyon", "latitude": 45.76,
                                                  "longitude": 4.83}},
        "total_minor": 3600})
    assert created.status_code == 201, created.text
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        order: dict[str, Any] = api.get(f"/api/v1/orders/{created.json()['id']}").json()
        if order["status"] != "received":
            assert order["status"] == "routed", order
            return order
        time.sleep(0.2)
    raise AssertionError("the worker did not route the order")


def test_the_cancel_form_asks_only_when_something_is_chosen(live_server: Any, new_context: Any,
                                                            journey_for: Any) -> None:
    base = live_server.base_url
    journey = journey_for("cancel-confirm-")
    suffix = uuid.uuid4().hex[:8]
    email = f"nina-{suffix}@example.test"
    created = cli_tenant(f"Nina Mugs {suffix}", email, PASSWORD, owner="Nina Owner", timezone="Europe/Paris")
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {created['api_key']}"}, timeout=30) as api:
        order = routed_order(api, f"PH-{suffix}")

    page = journey.watch(new_context(timezone_id="Europe/Paris", base_url=base).new_page(), "agent")
    sign_in(page, base, email, PASSWORD)
    asked: list[str] = []
    say_yes = {"now": False}

    def answer(dialog: Any) -> None:
        asked.append(dialog.message)
        if say_yes["now"]:
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", answer)
    page.goto(f"/app/orders/{order['id']}")
    page.locator("#cancel-order summary").click()
    page.get_by_role("button", name="Cancel units").click()
    # No question first: the answer says what to choose, beside the choice.
    expect(page.locator("#lines-error")).to_contain_text("Choose what to cancel")
    assert asked == []
    journey.shot(page, "nothing-chosen")

    # One unit chosen: asked first, and "no" sends nothing.
    units = page.get_by_label("Line 1 (MUG, up to 3)")
    units.fill("1")
    with page.expect_event("dialog"):
        page.get_by_role("button", name="Cancel units").click()
    assert asked == [f"Cancel these units of order {order['number']}?"]
    expect(units).to_have_value("1")

    say_yes["now"] = True
    page.get_by_role("button", name="Cancel units").click()
    expect(page.locator(".notice")).to_contain_text("Units cancelled")
    # One unit cancelled in all: the first answer, "no", cancelled nothing.
    expect(page.locator("#order-lines td[data-label='Cancelled']")).to_have_text("1")
    assert len(asked) == 2
    journey.shot(page, "units-cancelled")

    assert journey.page_errors == []
    assert journey.failures == []
