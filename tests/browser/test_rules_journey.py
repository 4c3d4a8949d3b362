"""A merchandiser's routing change, in the real Chromium against the real web server: build a rule
in the visual builder (adding, reordering by drag and drop and by buttons, and deleting rows with
the mouse), follow a problem to the control at fault, simulate it on a sample order and read the
trace with the results across the page, see what the draft changes, then schedule it for a future
date in the company's time zone and see it on the timeline as scheduled."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Page, expect

from browser_pages import sign_in
from core.locale import format_time
from processes import cli_tenant

pytestmark = pytest.mark.browser

PASSWORD = "routes are a matter of taste"
TIMEZONE = "Europe/Paris"

expect.set_options(timeout=10_000)


def set_up_network(base: str, key: str) -> None:
    """A warehouse in the centre of France, a Paris store, two products and their stock."""
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as api:
        for body in (
            {"code": "WH-CENTRE", "name": "Central warehouse", "kind": "warehouse", "country": "FR",
             "timezone": TIMEZONE, "latitude": 47.0, "longitude": 2.4, "ships_to_customers": True},
            {"code": "ST-PARIS", "name": "Paris store", "kind": "store", "country": "FR", "timezone": TIMEZONE,
             "latitude": 48.8606, "longitude": 2.3376, "ship_from_store": True, "click_and_collect": True},
        ):
            assert api.post("/api/v1/locations", json=body).status_code == 201
        for sku, category, price in (("TEE-SUN", "summer", 2500), ("COAT-WOOL", "winter", 15000)):
            assert api.post("/api/v1/products", json={"sku": sku, "name": sku.title(), "price_minor": price,
                                                      "category": category}).status_code == 201
        for sku, location, quantity in (("TEE-SUN", "WH-CENTRE", 50), ("TEE-SUN", "ST-PARIS", 4),
                                        ("COAT-WOOL", "WH-CENTRE", 10)):
            adjusted = api.post("/api/v1/inventory/adjustments",
                                json={"sku": sku, "location": location, "quantity": quantity})
            assert adjusted.status_code == 201, adjusted.text


def rows_of(page: Page, rule: int) -> Any:
    return page.locator(f"#rule-{rule} .cond-group.root > .cond-rows > li")


def row_fields(page: Page, rule: int) -> list[str]:
    fields: list[str] = rows_of(page, rule).evaluate_all(
        "items => items.map(li => { const s = li.querySelector('select[name$=\".field\"]');"
        " return s.options[s.selectedIndex].text; })")
    return fields


def rule_names(page: Page) -> list[str]:
    names: list[str] = page.locator(".rule-card .rule-name").evaluate_all("inputs => inputs.map(i => i.value)")
    return names


def saved(page: Page, revision_before: int) -> int:
    """Wait for the builder to come back from the server with a newer revision of the draft."""
    status = page.locator("#builder-status")
    expect(status).not_to_have_attribute("data-revision", str(revision_before))
    # htmx wires the new builder up while it settles: an event fired before that is not heard.
    expect(page.locator(".htmx-request, .htmx-swapping, .htmx-settling")).to_have_count(0)
    return revision(page)


def revision(page: Page) -> int:
    return int(page.locator("#builder-status").get_attribute("data-revision") or 0)


def test_merchandiser_builds_simulates_and_schedules_a_rule(live_server: Any, new_context: Any,
                                                           journey_for: Any) -> None:
    base = live_server.base_url
    journey = journey_for("rules-")
    suffix = uuid.uuid4().hex[:8]
    email = f"rosa-{suffix}@example.test"
    created = cli_tenant(f"Maison Rosa {suffix}", email, PASSWORD, owner="Rosa Merch", timezone=TIMEZONE)
    set_up_network(base, created["api_key"])

    # Tall enough to show both rule cards, so that one can be dragged onto the other without scrolling.
    context = new_context(timezone_id=TIMEZONE, base_url=base, viewport={"width": 1280, "height": 2400})
    page = journey.watch(context.new_page(), "merchandiser")
    sign_in(page, base, email, PASSWORD)

    # 1. The rules page: nothing in force yet.
    page.locator("header").get_by_role("link", name="Rules").click()
    expect(page.get_by_role("heading", name="No version in force")).to_be_visible()
    page.locator(".subnav").get_by_role("link", name="Draft").click()
    expect(page).to_have_url(f"{base}/app/rules/draft")
    expect(page.locator("#builder")).to_contain_text("No rules yet")
    expect(page.locator("#builder-status")).to_contain_text("add a rule before publishing")
    expect(page.locator("#builder-status").get_by_role("button", name="Publish…")).to_be_disabled()

    # 2. Two rules, added with the mouse; the second is the catch-all from the warehouse. Every edit is
    # saved by the server, which sends the builder back with the draft's next revision.
    def edit(action: Any) -> None:
        before = revision(page)
        action()
        saved(page, before)

    edit(lambda: page.get_by_role("button", name="+ Add rule").click())
    expect(page.locator(".rule-card")).to_have_count(1)
    edit(lambda: page.get_by_role("button", name="+ Add rule").click())
    expect(page.locator(".rule-card")).to_have_count(2)
    page.locator("#r0\\.name").fill("Everything else")
    edit(lambda: page.locator("#r0\\.name").press("Tab"))
    edit(lambda: page.locator("#r0\\.then\\.type\\.1").select_option(""))
    page.locator("#r1\\.name").fill("Summer from stores")
    edit(lambda: page.locator("#r1\\.name").press("Tab"))

    # Conditions on the summer rule: category, order total, and a channel row that is then deleted.
    picker = page.locator("#r1\\.new_field")
    expect(picker).to_have_value("")  # the picker reads "Add a condition on…" until a field is chosen
    expect(picker.locator("option:checked")).to_have_text("Add a condition on…")
    picker.select_option("line.category")
    edit(lambda: page.locator("#rule-1").get_by_role("button", name="+ Add condition").click())
    expect(rows_of(page, 1)).to_have_count(1)
    edit(lambda: page.locator("#r1\\.0\\.op").select_option("in"))
    expect(page.locator("#r1\\.0\\.value")).to_have_attribute("multiple", "")
    edit(lambda: page.locator("#r1\\.0\\.value").select_option(["summer"]))
    page.locator("#r1\\.new_field").select_option("order.channel")
    edit(lambda: page.locator("#rule-1").get_by_role("button", name="+ Add condition").click())
    page.locator("#r1\\.new_field").select_option("order.total")
    edit(lambda: page.locator("#rule-1").get_by_role("button", name="+ Add condition").click())
    expect(rows_of(page, 1)).to_have_count(3)
    assert row_fields(page, 1) == ["Line category", "Channel", "Order total"]
    edit(lambda: page.locator("#r1\\.2\\.op").select_option("gte"))
    page.locator("#r1\\.2\\.value").fill("abc")
    edit(lambda: page.locator("#r1\\.2\\.value").press("Tab"))
    expect(rows_of(page, 1).nth(2).locator(".field-error")).to_contain_text("condition row 3 (Order total)")
    expect(page.locator("#builder-status")).to_contain_text("1 problem")
    expect(page.locator("#r1\\.2\\.value")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#r1\\.2\\.op")).not_to_have_attribute("aria-invalid", "true")
    # The problem listed at the top leads to the control at fault.
    page.locator("#r1\\.0\\.value").focus()
    page.locator("#builder-status").get_by_role("link").click()
    expect(page.locator("#r1\\.2\\.value")).to_be_focused()
    page.locator("#r1\\.2\\.value").fill("10,00 €")  # as a French shopkeeper writes it
    edit(lambda: page.locator("#r1\\.2\\.value").press("Tab"))
    expect(page.locator("#builder-status")).to_contain_text("Valid")
    journey.shot(page, "three-conditions")

    # Reorder rows: the order total dragged above the channel, then the category moved down a row.
    edit(lambda: rows_of(page, 1).nth(2).locator(".handle").drag_to(rows_of(page, 1).nth(1)))
    assert row_fields(page, 1) == ["Line category", "Order total", "Channel"]
    edit(lambda: rows_of(page, 1).nth(0).get_by_role("button", name="Move condition down").click())
    assert row_fields(page, 1) == ["Order total", "Line category", "Channel"]
    edit(lambda: rows_of(page, 1).nth(2).get_by_role("button", name="Delete condition").click())
    assert row_fields(page, 1) == ["Order total", "Line category"]
    expect(page.locator("#r1\\.0\\.value")).to_have_value("10,00")

    # Stores before warehouses for summer items, and the summer rule dragged above the catch-all.
    edit(lambda: page.locator("#r1\\.then\\.type\\.0").select_option("store"))
    edit(lambda: page.locator("#r1\\.then\\.type\\.1").select_option("warehouse"))
    edit(lambda: page.locator("#rule-1 .rule-head .handle").drag_to(page.locator("#rule-0 .rule-number")))
    assert rule_names(page) == ["Summer from stores", "Everything else"]
    expect(page.locator("#builder-status")).to_contain_text("Valid")
    journey.shot(page, "built")

    # 3. Simulate a Parisian order of a summer tee: the draft ships it from the Paris store.
    form = page.locator("#simulate-form")
    form.get_by_label("SKU of line 1").fill("TEE-SUN")
    form.get_by_label("Quantity of line 1").fill("2")
    form.get_by_label("Latitude").fill("48.85")
    form.get_by_label("Longitude").fill("2.35")
    form.get_by_role("button", name="Simulate").click()
    result = page.locator("#simulation-result")
    draft_side, in_force_side = result.locator(".decision").nth(0), result.locator(".decision").nth(1)
    expect(draft_side.locator("h4")).to_have_text("Draft")
    expect(draft_side.locator("table.shipments tbody tr")).to_have_count(1)
    expect(draft_side.locator("table.shipments tbody tr td").first).to_have_text("ST-PARIS")
    expect(draft_side.locator(".trace li.matched").first).to_contain_text("Rule 1 “Summer from stores”")
    expect(draft_side.locator(".trace li.matched").first).to_contain_text("Order total is at least 10.00 EUR: yes")
    expect(in_force_side).to_contain_text("No version is in force")
    # The results use the page's width, beside each other, not a side column.
    builder_box, result_box = page.locator("#builder").bounding_box(), result.bounding_box()
    assert builder_box and result_box and result_box["width"] >= 0.9 * builder_box["width"]
    journey.shot(page, "simulated")

    # A coat is not a summer item: the second rule sends it from the warehouse.
    form.get_by_label("SKU of line 1").fill("COAT-WOOL")
    form.get_by_label("Quantity of line 1").fill("1")
    form.get_by_role("button", name="Simulate").click()
    expect(draft_side.locator("table.shipments tbody tr td").first).to_have_text("WH-CENTRE")
    expect(draft_side.locator(".trace li.skipped").first).to_contain_text("Line category is one of [summer]: no")

    # 4. Schedule it for midnight, a month from now, in Paris time.
    start = datetime.now(ZoneInfo(TIMEZONE)).date() + timedelta(days=30)
    page.locator("#builder-status").get_by_role("button", name="Publish…").click()
    expect(page).to_have_url(f"{base}/app/rules/publish")
    changes = page.locator(".what-changes")
    expect(changes).to_contain_text("No version is in force yet")
    expect(changes).to_contain_text("Added: “Summer from stores”")
    expect(changes).to_contain_text("Order total is at least 10,00\u00a0€")
    page.get_by_label("From a date and time").check()
    page.locator("input[name=from_day]").fill(start.isoformat())
    page.locator("input[name=from_time]").fill("00:00")
    page.get_by_label("Note").fill("Summer stock from stores")
    journey.shot(page, "publish-form")
    page.get_by_role("button", name="Publish").click()
    expect(page).to_have_url(f"{base}/app/rules?done=scheduled")
    expect(page.get_by_role("status")).to_contain_text("Version scheduled")
    row = page.locator('#versions tr[data-version="1"]')
    expect(row.locator(".badge")).to_have_text("scheduled")
    local_start = datetime.combine(start, datetime.min.time(), tzinfo=ZoneInfo(TIMEZONE))
    expect(row.locator("td").nth(2)).to_have_text(format_time(local_start, TIMEZONE, "fr_FR"))
    timeline = page.locator("#timeline li")
    expect(timeline).to_have_count(2)
    expect(timeline.nth(0)).to_contain_text("no version")
    expect(timeline.nth(1)).to_contain_text(f"From {format_time(local_start, TIMEZONE, 'fr_FR')}")
    expect(timeline.nth(1)).to_contain_text("v1")
    journey.shot(page, "scheduled")

    # The API agrees: the version starts at that local midnight, stored in UTC.
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {created['api_key']}"}) as api:
        overview = api.get("/api/v1/rule-sets/routing").json()
    assert overview["in_force"] is None
    [version] = overview["versions"]
    assert version["status"] == "scheduled"
    assert datetime.fromisoformat(version["effective_from"]) == local_start.astimezone(UTC)

    assert journey.page_errors == []
    assert journey.failures == []
