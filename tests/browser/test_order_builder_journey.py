"""An order taken by phone in the real Chromium: the catalog searched as the agent types, two
products picked, a price changed the French way, one line removed, the running total counted by
the server at each step, the order reviewed with its total, then placed."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from browser_pages import new_company, signed_in_page

pytestmark = pytest.mark.browser

PASSWORD = "phone orders welcome"

expect.set_options(timeout=15_000)


def euros(amount: str) -> re.Pattern[str]:
    """An amount as the page shows it, whatever space sits before the euro sign."""
    return re.compile(rf"^{re.escape(amount)}\s€$")


def set_up(api: httpx.Client) -> None:
    assert api.post("/api/v1/locations", json={
        "code": "WH-LYON", "name": "Lyon warehouse", "kind": "warehouse", "country": "FR",
        "timezone": "Europe/Paris", "latitude": 45.76, "longitude": 4.84, "ships_to_customers": True,
    }).status_code == 201
    imported = api.post("/api/v1/products/import", json={"products": [
        {"sku": "BAG-TOTE", "name": "Tote Bag Large", "price_minor": 3500},
        {"sku": "BAG-MINI", "name": "Mini Bag", "price_minor": 1990},
    ]})
    assert imported.status_code == 200, imported.text


def test_an_agent_builds_reviews_and_places_a_phone_order(live_server: Any, new_context: Any,
                                                          journey_for: Any) -> None:
    base = live_server.base_url
    journey = journey_for("builder-")
    company = new_company("Maison Sacs", "agent", PASSWORD, owner="Agnès Agent")
    with company.api(base) as api:
        set_up(api)

        page = signed_in_page(new_context, journey, "new order", base, company.email, PASSWORD)
        page.goto("/app/orders/new")

        # Search as one types, in lower case, and pick each product from the results.
        search = page.get_by_label("Find a product by SKU or name")
        results = page.locator("#product-results")
        search.press_sequentially("tote bag", delay=40)
        results.get_by_role("button", name=re.compile("BAG-TOTE")).click()
        lines = page.locator("#order-lines tbody tr")
        expect(lines).to_have_count(1)
        search.fill("mini")
        results.get_by_role("button", name=re.compile("BAG-MINI")).click()
        expect(lines).to_have_count(2)
        total = page.locator("#running-total")
        expect(total).to_have_text(euros("54,90"))
        expect(page.get_by_label("Unit price of BAG-TOTE")).to_have_value("35,00")
        journey.shot(page, "two-lines")

        # A price typed as people write it here; the server counts the total again.
        price = page.get_by_label("Unit price of BAG-TOTE")
        price.fill("59,00")
        price.press("Tab")
        expect(total).to_have_text(euros("78,90"))

        page.get_by_role("button", name="Remove BAG-MINI").click()
        expect(lines).to_have_count(1)
        expect(total).to_have_text(euros("59,00"))
        expect(page.get_by_label("Unit price of BAG-TOTE")).to_have_value("59,00")

        page.get_by_label("Email").fill("marie.martin@example.test")
        page.get_by_label("Name", exact=True).fill("Marie Martin")
        page.get_by_label("Street").fill("3 rue des Lilas")
        page.get_by_label("Postcode").fill("69001")
        page.get_by_label("City").fill("Lyon")
        shipping = page.get_by_label("Shipping fee")
        shipping.fill("4,90")
        shipping.press("Tab")
        expect(total).to_have_text(euros("63,90"))
        journey.shot(page, "one-line")

        # The review says what will be placed, with its total; nothing is placed before.
        page.get_by_role("button", name="Review order").click()
        expect(page.get_by_role("heading", name="Review the order")).to_be_visible()
        expect(page.locator("#review-lines tbody tr")).to_have_count(1)
        expect(page.locator("#review-total")).to_have_text(euros("63,90"))
        expect(page.locator("#review-order")).to_contain_text("Marie Martin")
        assert api.get("/api/v1/orders").json()["orders"] == []
        journey.shot(page, "review")

        page.get_by_role("button", name=re.compile("Place order")).click()
        expect(page.locator(".notice")).to_contain_text("Order received")
        journey.shot(page, "placed")
        [listed] = api.get("/api/v1/orders").json()["orders"]
        order = api.get(f"/api/v1/orders/{listed['id']}").json()
        assert [(line["sku"], line["quantity"], line["unit_price_minor"]) for line in order["lines"]] == [
            ("BAG-TOTE", 1, 5900)]
        assert (order["total_minor"], order["customer_email"]) == (6390, "marie.martin@example.test")

    assert journey.page_errors == []
    assert journey.failures == []


def test_the_order_builder_works_with_javascript_turned_off(live_server: Any, new_context: Any,
                                                            journey_for: Any) -> None:
    base = live_server.base_url
    journey = journey_for("builder-nojs-")
    company = new_company("Maison Sacs", "agent", PASSWORD, owner="Agnès Agent")
    with company.api(base) as api:
        set_up(api)
        page = signed_in_page(new_context, journey, "no script", base, company.email, PASSWORD,
                              java_script_enabled=False)
        page.goto("/app/orders/new")
        page.get_by_label("Find a product by SKU or name").fill("mini bag")
        page.get_by_role("button", name="Search").click()
        page.locator("#product-results").get_by_role("button", name=re.compile("BAG-MINI")).click()
        expect(page.locator("#order-lines tbody tr")).to_have_count(1)
        page.get_by_label("Quantity of BAG-MINI").fill("2")
        page.get_by_role("button", name="Update total").click()
        expect(page.locator("#running-total")).to_have_text(euros("39,80"))
        page.get_by_label("Email").fill("paul@example.test")
        for label, value in (("Street", "1 quai Voltaire"), ("Postcode", "69002"), ("City", "Lyon")):
            page.get_by_label(label).fill(value)
        page.get_by_role("button", name="Review order").click()
        expect(page.locator("#review-total")).to_have_text(euros("39,80"))
        page.get_by_role("button", name=re.compile("Place order")).click()
        expect(page.locator(".notice")).to_contain_text("Order received")
        journey.shot(page, "placed")
        [listed] = api.get("/api/v1/orders").json()["orders"]
        assert (listed["total_minor"], listed["customer_email"]) == (3980, "paul@example.test")
    assert journey.failures == []
