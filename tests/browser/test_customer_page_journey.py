"""The customer's page in the real Chromium: an agent goes from an order to the customer's
history, reads the figures (net of a cancellation), adds a note, and finds it at the top of the
timeline; the page reads on a desktop and on a 390 px phone without scrolling sideways."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from browser_pages import new_company, one_warehouse_of_mugs, phone_order_of_mugs, signed_in_page

pytestmark = pytest.mark.browser

PASSWORD = "customers remembered well"
PHONE = {"width": 390, "height": 844}

_WIDER_THAN_SCREEN = """() => {
  const width = window.innerWidth;
  const out = [];
  for (const e of document.querySelectorAll('body *')) {
    const box = e.getBoundingClientRect();
    if (box.width && box.right > width + 0.5) {
      out.push(`${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''} right=${Math.round(box.right)}`);
    }
  }
  return {scrollWidth: document.documentElement.scrollWidth, innerWidth: width, culprits: out.slice(0, 10)};
}"""


def no_sideways_scroll(page: Page, where: str) -> None:
    found = page.evaluate(_WIDER_THAN_SCREEN)
    assert found["scrollWidth"] <= found["innerWidth"], (
        f"{where} scrolls sideways at {found['innerWidth']} px: {found['culprits']}")


def test_an_agent_reads_a_customers_history_and_adds_a_note(live_server: Any, new_context: Any,
                                                            journey_for: Any) -> None:
    base = live_server.base_url
    journey = journey_for("customer-")
    company = new_company("Maison Clio", "clio", PASSWORD, owner="Clio Owner")
    email = f"marguerite-{company.suffix}.long-address@example.test"
    with company.api(base) as api:
        one_warehouse_of_mugs(api, 20)
        first = phone_order_of_mugs(api, f"PH-{company.suffix}-1", 2, email, "Marguerite Duras-Lefèvre")
        second = phone_order_of_mugs(api, f"PH-{company.suffix}-2", 3, email, "Marguerite Duras-Lefèvre")
        cancelled = api.post(f"/api/v1/orders/{second['id']}/cancel", json={"reason": "Ordered twice"})
        assert cancelled.status_code == 200, cancelled.text

    page = signed_in_page(new_context, journey, "agent", base, company.email, PASSWORD, timezone_id="Europe/Paris")
    page.goto(f"/app/orders/{first['id']}")
    page.get_by_role("link", name="Customer's history").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Marguerite Duras-Lefèvre")
    expect(page.locator("#figure-orders dd").first).to_have_text("2")
    expect(page.locator("#figure-ltv dd").first).to_have_text(re.compile(r"24[.,]00"))  # the cancelled one adds nothing
    expect(page.locator("#customer-orders tbody tr")).to_have_count(2)
    no_sideways_scroll(page, "the customer's page on a desktop")
    journey.shot(page, "desktop")

    page.get_by_label(re.compile("Add a note")).fill("Prefers a call after 6 pm; mugs are gifts.")
    page.get_by_role("button", name="Add note").click()
    expect(page.locator(".notice")).to_contain_text("Note added")
    expect(page.locator("#customer-notes li").first).to_contain_text("Prefers a call after 6 pm")
    first_entry = page.locator("#customer-timeline li").first
    expect(first_entry).to_contain_text("Note")
    expect(first_entry).to_contain_text(company.email)

    page.set_viewport_size(PHONE)
    page.reload()
    no_sideways_scroll(page, "the customer's page on a phone")
    journey.shot(page, "phone")
    assert journey.page_errors == []
