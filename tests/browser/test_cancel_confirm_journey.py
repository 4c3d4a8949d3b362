"""Cancelling units from the order page, in the real Chromium: with nothing chosen the browser asks
no question and the page says what to choose; with units chosen it asks first, and only a yes
cancels them."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from browser_pages import new_company, one_warehouse_of_mugs, phone_order_of_mugs, signed_in_page

pytestmark = pytest.mark.browser

PASSWORD = "second thoughts happen"
expect.set_options(timeout=15_000)


def test_the_cancel_form_asks_only_when_something_is_chosen(live_server: Any, new_context: Any,
                                                            journey_for: Any) -> None:
    base = live_server.base_url
    journey = journey_for("cancel-confirm-")
    company = new_company("Nina Mugs", "nina", PASSWORD, owner="Nina Owner")
    with company.api(base) as api:
        one_warehouse_of_mugs(api, mugs=10)
        order = phone_order_of_mugs(api, f"PH-{company.suffix}", 3, "nina@example.test", "Nina Mugs")
    assert order["status"] == "routed", order

    page = signed_in_page(new_context, journey, "agent", base, company.email, PASSWORD, timezone_id="Europe/Paris")
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
