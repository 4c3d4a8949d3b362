"""A customer-service agent's day, in the real Chromium against the real web server and worker: an
order routing can't serve goes on hold, the agent finds it under Tasks, opens the order from
there, resolves the task with a note from the order page, and the note is on the timeline. The
owner then shortens the company's pickup window under Settings → Orders."""

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

PASSWORD = "tasks before coffee"
expect.set_options(timeout=15_000)


def held_order(api: httpx.Client, number: str) -> dict[str, Any]:
    assert api.post("/api/v1/locations", json={
        "code": "WH-ONE", "name": "Only warehouse", "kind": "warehouse", "country": "FR", "timezone": "Europe/Paris",
        "latitude": 47.0, "longitude": 2.4, "ships_to_customers": True}).status_code == 201
    assert api.post("/api/v1/products", json={"sku": "MUG", "name": "Mug", "price_minor": 1200}).status_code == 201
    assert api.post("/api/v1/inventory/adjustments",
                    json={"sku": "MUG", "location": "WH-ONE", "quantity": 2}).status_code == 201
    document = {"rules": [{"id": "all", "name": "Warehouse", "enabled": True, "when": None,
                           "then": {"location_types": ["warehouse"], "filters": [], "sorts": [],
                                    "split": {"max_shipments": 1, "min_order_value": 0, "never_split_line": False},
                                    "fallback": ["hold"]}}]}
    assert api.put("/api/v1/rule-sets/routing/draft", json={"document": document}).status_code == 200
    assert api.post("/api/v1/rule-sets/routing/versions", json={}).status_code == 201
    created = api.post("/api/v1/orders", json={
        "channel": "phone", "external_number": number, "currency": "EUR",
        "lines": [{"sku": "MUG", "quantity": 5, "unit_price_minor": 1200}],
        "customer": {"email": "hugo@example.test", "name": "Hugo Held"},
        "delivery": {"mode": "ship", "address": {"country": "FR", "city": "Lyon", "latitude": 45.76,
                                                  "longitude": 4.83}},
        "total_minor": 6000})
    assert created.status_code == 201, created.text
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        order: dict[str, Any] = api.get(f"/api/v1/orders/{created.json()['id']}").json()
        if order["status"] != "received":
            assert order["status"] == "on_hold", order
            return order
        time.sleep(0.2)
    raise AssertionError("the worker did not route the order")


def test_an_agent_resolves_a_held_order_from_the_task_list(live_server: Any, new_context: Any,
                                                           journey_for: Any) -> None:
    base = live_server.base_url
    journey = journey_for("tasks-")
    suffix = uuid.uuid4().hex[:8]
    email = f"cara-{suffix}@example.test"
    created = cli_tenant(f"Cara Ceramics {suffix}", email, PASSWORD, owner="Cara Owner", timezone="Europe/Paris")
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {created['api_key']}"}, timeout=30) as api:
        order = held_order(api, f"PH-{suffix}")

    page = journey.watch(new_context(timezone_id="Europe/Paris", base_url=base).new_page(), "agent")
    sign_in(page, base, email, PASSWORD)
    page.locator("header").get_by_role("link", name="Tasks").click()
    row = page.locator("#service-tasks tbody tr").filter(has_text=order["number"])
    expect(row).to_contain_text("Order on hold")
    expect(row).to_contain_text("for customer service to decide")
    journey.shot(page, "task-list")

    row.get_by_role("link", name=order["number"]).click()
    expect(page.locator("#order-status")).to_have_text("on hold")
    task = page.locator(".service-task")
    expect(task).to_contain_text("Order on hold")
    task.get_by_label("What was done").fill("Only 2 mugs left: customer agreed to wait for the restock")
    task.get_by_role("button", name="Resolve task").click()
    expect(page.locator(".notice")).to_contain_text("Task resolved")
    expect(page.locator(".service-task")).to_have_count(0)
    expect(page.locator("#order-timeline")).to_contain_text("customer agreed to wait for the restock")
    journey.shot(page, "task-resolved")

    page.locator("header").get_by_role("link", name="Tasks").click()
    expect(page.get_by_text("Nothing waiting")).to_be_visible()
    page.get_by_role("link", name="Resolved").click()
    expect(page.locator("#service-tasks")).to_contain_text("customer agreed to wait")
    journey.shot(page, "task-history")

    # The company's pickup window, under Settings → Orders.
    page.locator("header").get_by_role("link", name="Settings").click()
    page.get_by_role("link", name="Orders", exact=True).last.click()
    page.get_by_label("Pickup window, in days").fill("3")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".notice")).to_contain_text("Order settings saved")
    expect(page.get_by_label("Pickup window, in days")).to_have_value("3")
    journey.shot(page, "pickup-window")

    assert journey.page_errors == []
    assert journey.failures == []
