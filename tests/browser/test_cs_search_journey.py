"""Customer service's search from the keyboard, in the real Chromium against the real web server:
"/" puts the cursor in the top bar's box, a misspelt name brings the customer as one types, ↓ and
Enter open their page; an order number, ↓ ↓ and Enter open the order; Escape closes the list; "/"
typed in another field stays in that field."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from browser_pages import new_company, one_warehouse_of_mugs, phone_order_of_mugs, signed_in_page

pytestmark = pytest.mark.browser

PASSWORD = "find them by ear"
expect.set_options(timeout=15_000)


def test_an_agent_finds_a_misspelt_customer_and_an_order_from_the_keyboard(live_server: Any, new_context: Any,
                                                                           journey_for: Any) -> None:
    base = live_server.base_url
    journey = journey_for("search-")
    company = new_company("Sam Stationery", "sam", PASSWORD, owner="Sam Owner")
    with company.api(base) as api:
        one_warehouse_of_mugs(api, mugs=10)
        john = phone_order_of_mugs(api, f"PH-J-{company.suffix}", 1, f"john.smith.{company.suffix}@example.test",
                                   "John Smith")
        phone_order_of_mugs(api, f"PH-K-{company.suffix}", 1, f"jane.{company.suffix}@example.test", "Jane Smith")

    page = signed_in_page(new_context, journey, "agent", base, company.email, PASSWORD, timezone_id="Europe/Paris")
    page.locator("header").get_by_role("link", name="Orders").click()
    box = page.get_by_role("combobox", name="Search orders and customers")
    listbox = page.get_by_role("listbox", name="Search results")

    # "/" typed in another field stays there.
    filter_box = page.get_by_placeholder("Order number or customer email")
    filter_box.click()
    page.keyboard.type("a/b")
    expect(filter_box).to_have_value("a/b")
    expect(box).not_to_be_focused()

    page.locator("h1").click()
    page.keyboard.press("/")
    expect(box).to_be_focused()
    page.keyboard.type("Jhon Smtih", delay=40)
    first = listbox.get_by_role("option").first
    expect(first).to_contain_text("John Smith")
    expect(box).to_have_attribute("aria-expanded", "true")
    journey.shot(page, "misspelt-name")
    page.keyboard.press("ArrowDown")
    expect(first).to_have_attribute("aria-selected", "true")
    expect(box).to_have_attribute("aria-activedescendant", first.get_attribute("id") or "")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/app/customers/[0-9a-f-]{36}$"))
    expect(page.locator("h1")).to_have_text("John Smith")
    journey.shot(page, "customer-page")

    # From the customer's page: the order number finds the order alone; Escape closes the list, ↓ and
    # Enter open it.
    page.wait_for_load_state()
    page.keyboard.press("/")
    expect(box).to_be_focused()
    page.keyboard.type(john["number"].lower(), delay=20)
    option = listbox.get_by_role("option").filter(has_text=john["number"])
    expect(option).to_be_visible()
    expect(listbox.get_by_role("option")).to_have_count(1)
    page.keyboard.press("Escape")
    expect(listbox).to_be_hidden()
    expect(box).to_have_attribute("aria-expanded", "false")
    page.keyboard.press("ArrowDown")
    expect(option).to_have_attribute("aria-selected", "true")
    journey.shot(page, "order-number")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{base}/app/orders/{john['id']}")
    expect(page.locator("h1")).to_contain_text(john["number"])

    # Enter with nothing chosen opens the page of results.
    page.wait_for_load_state()  # the page's script listens from then on
    page.keyboard.press("/")
    expect(box).to_be_focused()
    page.keyboard.type("smith", delay=20)
    expect(listbox.get_by_role("option").first).to_be_visible()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/app/search\?q=smith$"))
    expect(page.locator("#found-customers-section")).to_contain_text("John Smith")
    expect(page.locator("#found-customers-section")).to_contain_text("Jane Smith")
    journey.shot(page, "results-page")

    # On a phone: the box is in the top bar, outside the folded menu, and its results fit the screen.
    phone = signed_in_page(new_context, journey, "phone", base, company.email, PASSWORD,
                           viewport={"width": 390, "height": 844}, timezone_id="Europe/Paris")
    small_box = phone.get_by_role("combobox", name="Search orders and customers")
    small_box.click()
    phone.keyboard.type("jhon smtih", delay=20)
    result = phone.get_by_role("listbox", name="Search results").get_by_role("option").first
    expect(result).to_contain_text("John Smith")
    journey.shot(phone, "phone")
    box_area = result.bounding_box()
    assert box_area is not None and box_area["x"] >= 0 and box_area["x"] + box_area["width"] <= 390, box_area

    assert journey.page_errors == []
    assert journey.failures == []
