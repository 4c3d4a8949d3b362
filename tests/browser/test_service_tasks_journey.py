"""A customer-service agent's day, in the real Chromium against the real web server and worker: an
order routing can't serve goes on hold, the agent finds it under Tasks (counted in the navigation),
takes it and comments on it on its page, opens the order from there, resolves the task with a
note from the order page, and the note is on the timeline. The owner then shortens the company's
pickup window under Settings → Orders."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from browser_pages import new_company, one_warehouse_of_mugs, phone_order_of_mugs, signed_in_page

pytestmark = pytest.mark.browser

PASSWORD = "tasks before coffee"
expect.set_options(timeout=15_000)


def test_an_agent_resolves_a_held_order_from_the_task_list(live_server: Any, new_context: Any,
                                                           journey_for: Any) -> None:
    base = live_server.base_url
    journey = journey_for("tasks-")
    company = new_company("Cara Ceramics", "cara", PASSWORD, owner="Cara Owner")
    with company.api(base) as api:
        one_warehouse_of_mugs(api, mugs=2)
        order = phone_order_of_mugs(api, f"PH-{company.suffix}", 5, "hugo@example.test", "Hugo Held")
    assert order["status"] == "on_hold", order

    page = signed_in_page(new_context, journey, "agent", base, company.email, PASSWORD, timezone_id="Europe/Paris")
    page.locator("header").get_by_role("link", name="Tasks").click()
    row = page.locator("#service-tasks tbody tr").filter(has_text=order["number"])
    expect(row).to_contain_text("Order on hold")
    expect(row).to_contain_text("for customer service to decide")
    expect(page.locator("#nav-task-count")).to_contain_text("1")  # the navigation counts the open task
    journey.shot(page, "task-list")

    # The task's page: the agent takes it and comments, in place; the navigation's count says it is theirs.
    row.get_by_role("link", name="Order on hold").click()
    page.get_by_role("button", name="Assign to me").click()
    expect(page.locator("#task-assignee")).to_contain_text("You")
    expect(page.locator("#nav-task-count")).to_contain_text("mine")
    page.get_by_role("textbox", name="Comment").fill("Calling Hugo about the missing mugs")
    page.get_by_role("button", name="Add comment").click()
    expect(page.locator("#task-comments")).to_contain_text("Calling Hugo about the missing mugs")
    expect(page.get_by_role("heading", name="Comments (1)")).to_be_visible()
    journey.shot(page, "task-page")

    page.locator("#task-panel").get_by_role("link", name=order["number"]).click()
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
    expect(page.locator("#nav-task-count .nav-count")).to_have_count(0)
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
