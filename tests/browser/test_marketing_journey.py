"""A marketer's week, in real Chromium against the web server, a worker and the scheduler: she builds
the segment "ordered in store in the last 90 days, never online" in the visual builder and sees its
live count; makes a 15 % promotion for that segment that needs a code, and a batch of 100 codes for
it; replays last week's orders and prices a sample cart with the draft; schedules the promotion and
a campaign to the segment for next Monday 9:00 in the company's time zone. The servers' clock moves
past that Monday morning: the scheduler and the worker send the campaign to exactly the segment's
members (the mail log says so), a member's order with a code gets 15 % off, the same code gives
nothing on a second order, and cancelling the first order in the console gives the code back.

The shop's side (its orders, some of them placed in the past) goes through the API; everything the
marketer does goes through the console."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from browser_pages import new_company, routing_decided, signed_in_page
from conftest import LiveServer, serving
from processes import start_oms, stop_process

pytestmark = pytest.mark.browser

PASSWORD = "a fair price for every regular"
TIMEZONE = "Europe/Paris"
TEE, TEE_PRICE = "TEE-LIN", 2000
# The scheduler looks for campaigns due every 30 seconds; the worker then sends them.
SEND_WAIT_S = 150

expect.set_options(timeout=15_000)


@pytest.fixture(scope="module")
def live_server(artifacts_dir: Path) -> Iterator[LiveServer]:
    """The web server and a worker, and the scheduler on the same (movable) clock."""
    with serving(artifacts_dir) as server:
        env = dict(os.environ, PUBLIC_URL=server.base_url, OMS_CLOCK_SHIFT_FILE=str(server.clock_shift_file))
        scheduler, log_file = start_oms(["scheduler"], env, artifacts_dir / "marketing-scheduler.log")
        try:
            yield server
        finally:
            stop_process(scheduler)
            log_file.close()


# --- the shop's side, through the API -----------------------------------------------------------------

def set_up_shop(api: httpx.Client) -> None:
    """A warehouse and a Paris store, two products with stock, and routing from the warehouse."""
    for body in (
        {"code": "WH-CENTRE", "name": "Central warehouse", "kind": "warehouse", "country": "FR", "timezone": TIMEZONE,
         "latitude": 47.0, "longitude": 2.4, "ships_to_customers": True},
        {"code": "ST-PARIS", "name": "Paris store", "kind": "store", "country": "FR", "timezone": TIMEZONE,
         "latitude": 48.8606, "longitude": 2.3376, "ship_from_store": True, "click_and_collect": True},
    ):
        created = api.post("/api/v1/locations", json=body)
        assert created.status_code == 201, created.text
    for sku, name, category, price in ((TEE, "Linen tee", "tops", TEE_PRICE), ("MUG", "Mug", "home", 1200)):
        created = api.post("/api/v1/products", json={"sku": sku, "name": name, "price_minor": price,
                                                     "category": category})
        assert created.status_code == 201, created.text
        adjusted = api.post("/api/v1/inventory/adjustments", json={"sku": sku, "location": "WH-CENTRE",
                                                                   "quantity": 500})
        assert adjusted.status_code == 201, adjusted.text
    document = {"rules": [{"id": "all", "name": "Warehouse", "enabled": True, "when": None,
                           "then": {"location_types": ["warehouse"], "filters": [], "sorts": [],
                                    "split": {"max_shipments": 1, "min_order_value": 0, "never_split_line": False},
                                    "fallback": ["hold"]}}]}
    assert api.put("/api/v1/rule-sets/routing/draft", json={"document": document}).status_code == 200
    assert api.post("/api/v1/rule-sets/routing/versions", json={}).status_code == 201


def place(api: httpx.Client, email: str, name: str, channel: str, *, days_ago: float | None = None,
          codes: tuple[str, ...] = (), units: int = 2) -> dict[str, Any]:
    """An order of ``units`` linen tees shipped to Paris, from a customer who agrees to marketing
    mails; placed ``days_ago`` (now on the servers' clock when None)."""
    body: dict[str, Any] = {
        "channel": channel, "currency": "EUR",
        "lines": [{"sku": TEE, "quantity": units, "unit_price_minor": TEE_PRICE}],
        "customer": {"email": email, "name": name, "email_consent": True},
        "delivery": {"mode": "ship", "address": {"country": "FR", "name": name, "line1": "1 rue de Rivoli",
                                                  "city": "Paris", "postcode": "75001", "latitude": 48.86,
                                                  "longitude": 2.34}},
        "total_minor": units * TEE_PRICE,
    }
    if days_ago is not None:
        body["placed_at"] = (datetime.now(UTC) - timedelta(days=days_ago)).isoformat()
    if codes:
        body["coupon_codes"] = list(codes)
    created = api.post("/api/v1/orders", json=body)
    assert created.status_code == 201, created.text
    order: dict[str, Any] = created.json()
    return order


def received_notes(api: httpx.Client, order_id: str) -> list[str]:
    """What pricing said about the order when it was captured (its timeline's first event)."""
    detail = api.get(f"/api/v1/orders/{order_id}").json()
    received = next(e for e in detail["events"] if e["kind"] == "order.received")
    notes: list[str] = (received.get("data") or {}).get("promotions") or []
    return notes


# --- time ----------------------------------------------------------------------------------------------

def next_monday_nine() -> datetime:
    """Next Monday (never today) at 09:00 in the company's time zone, as UTC."""
    today = datetime.now(ZoneInfo(TIMEZONE)).date()
    monday = today + timedelta(days=(7 - today.weekday()) % 7 or 7)
    return datetime(monday.year, monday.month, monday.day, 9, 0, tzinfo=ZoneInfo(TIMEZONE)).astimezone(UTC)


def local_day(at: datetime) -> date:
    return at.astimezone(ZoneInfo(TIMEZONE)).date()


# --- the console ----------------------------------------------------------------------------------------

def by_id(page: Page, element_id: str) -> Locator:
    """An element by its id, dots and all (the builders name controls "r0.1.value")."""
    return page.locator(f'[id="{element_id}"]')


def settled(page: Page) -> None:
    """No htmx request in flight, nothing being swapped in."""
    expect(page.locator(".htmx-request, .htmx-swapping, .htmx-settling")).to_have_count(0)


def revision(page: Page) -> int:
    return int(page.locator("#builder-status").get_attribute("data-revision") or 0)


def saved(page: Page, action: Any) -> None:
    """Do ``action`` in the promotions builder and wait for the draft's next revision to come back."""
    before = revision(page)
    action()
    expect(page.locator("#builder-status")).not_to_have_attribute("data-revision", str(before))
    settled(page)


def add_segment_row(page: Page, row: int, field: str) -> None:
    """A condition on ``field`` added at the end of the segment's rows (row ``row``, from 0)."""
    by_id(page, "r0.new_field").select_option(field)
    page.locator("#segment-form").get_by_role("button", name="+ Add condition").click()
    expect(by_id(page, f"r0.{row}.field")).to_have_value(field)
    settled(page)


def changed(page: Page, control: Locator, value: str) -> None:
    """Type ``value`` into a text or number control and leave it (the form is sent back on change)."""
    control.fill(value)
    control.press("Tab")
    settled(page)


def reload_until(page: Page, server: LiveServer, url: str, check: Any, what: str) -> None:
    """Open ``url`` again until ``check(page)`` holds (the scheduler and the worker act on their own time)."""
    deadline = time.monotonic() + SEND_WAIT_S
    while time.monotonic() < deadline:
        page.goto(url)
        if check(page):
            return
        time.sleep(2)
    pytest.fail(f"{what} did not happen within {SEND_WAIT_S} s\n{server.log_tail()}")


def test_a_marketer_targets_store_regulars_with_a_scheduled_promotion_codes_and_a_campaign(
        live_server: LiveServer, new_context: Any, journey_for: Any) -> None:
    base = live_server.base_url
    journey = journey_for("marketing-")
    company = new_company("Maison Lin", "margaux", PASSWORD, owner="Margaux Marketer", timezone=TIMEZONE)
    s = company.suffix
    api = company.api(base)
    set_up_shop(api)

    # 1. The customers, from their orders. In store in the last 90 days and never online: the segment.
    members = {f"anne-{s}@example.test": "Anne Store", f"bruno-{s}@example.test": "Bruno Store",
               f"chloe-{s}@example.test": "Chloé Store"}
    anne, bruno, chloe = members
    for (email, name), days in zip(members.items(), (12, 25, 40), strict=True):
        place(api, email, name, "store", days_ago=days)
    place(api, anne, "Anne Store", "store", days_ago=3)  # last week
    # In store lately, but online too.
    place(api, f"damien-{s}@example.test", "Damien Both", "store", days_ago=10)
    place(api, f"damien-{s}@example.test", "Damien Both", "web", days_ago=30)
    place(api, f"elise-{s}@example.test", "Élise Both", "store", days_ago=20)
    place(api, f"elise-{s}@example.test", "Élise Both", "web", days_ago=2)  # last week
    # In store, long ago.
    place(api, f"fabrice-{s}@example.test", "Fabrice Before", "store", days_ago=150)
    place(api, f"gaelle-{s}@example.test", "Gaëlle Before", "store", days_ago=200)
    # Online only.
    place(api, f"hugo-{s}@example.test", "Hugo Web", "web", days_ago=1)  # last week

    page = signed_in_page(new_context, journey, "marketer", base, company.email, PASSWORD, timezone_id=TIMEZONE,
                          viewport={"width": 1280, "height": 1400})
    page.on("dialog", lambda dialog: dialog.accept())

    # 2. The segment, in the builder: each row as she adds it, and the live count of who is in it.
    page.locator("header").get_by_role("link", name="Marketing").click()
    expect(page).to_have_url(f"{base}/app/marketing")
    journey.shot(page, "marketing-home")
    page.locator("#segments-card").get_by_role("link", name="New segment").click()
    expect(page).to_have_url(f"{base}/app/marketing/segments/new")
    segment_name = f"In store lately, never online {s}"
    changed(page, page.get_by_label("Name", exact=True), segment_name)
    add_segment_row(page, 0, "customer.channels")
    expect(by_id(page, "r0.0.field").locator("option:checked")).to_have_text("Channels ordered from")
    expect(by_id(page, "r0.0.op").locator("option:checked")).to_have_text("has")
    changed(page, by_id(page, "r0.0.value"), "store")
    add_segment_row(page, 1, "customer.last_order_date")
    by_id(page, "r0.1.op").select_option("in_last_days")
    settled(page)
    expect(by_id(page, "r0.1.value")).to_have_attribute("aria-label", "Number of days")
    changed(page, by_id(page, "r0.1.value"), "90")
    add_segment_row(page, 2, "customer.channels")
    by_id(page, "r0.2.op").select_option("has_none")
    settled(page)
    changed(page, by_id(page, "r0.2.value"), "web")
    count = page.locator("#segment-count .segment-count")
    expect(count).to_have_attribute("data-count", "3")
    preview = page.locator("#segment-count-result tbody tr td:nth-child(2)")
    expect(preview).to_have_count(3)
    assert sorted(preview.all_inner_texts()) == sorted(members)
    assert page.locator("#segment-name").input_value() == segment_name
    journey.shot(page, "segment-built")
    page.get_by_role("button", name="Save segment").click()
    expect(page).to_have_url(re.compile(rf"{re.escape(base)}/app/marketing/segments/[0-9a-f-]{{36}}\?done="))
    expect(page.get_by_role("status").filter(has_text="Segment created")).to_be_visible()
    expect(page.locator("#segment-count .segment-count")).to_have_attribute("data-count", "3")
    journey.shot(page, "segment-saved")

    # 3. The promotion in the draft: 15 % off the order, for the segment, with a code.
    page.goto("/app/marketing")
    page.locator("#promotions-card").get_by_role("link", name="Edit the draft").click()
    expect(page.get_by_role("heading", name="No version in force")).to_be_visible()
    page.locator(".subnav").get_by_role("link", name="Draft").click()
    expect(page).to_have_url(f"{base}/app/marketing/promotions/draft")
    saved(page, lambda: page.get_by_role("button", name="+ Add promotion").click())
    expect(page.locator("#builder .rule-card")).to_have_count(1)
    promotion_name = "Store regulars 15 %"
    by_id(page, "p0.name").fill(promotion_name)
    saved(page, lambda: by_id(page, "p0.name").press("Tab"))
    expect(by_id(page, "p0.effect.kind").locator("option:checked")).to_have_text("Percent off")
    expect(by_id(page, "p0.effect.target")).to_have_value("order")
    by_id(page, "p0.effect.percent").fill("15")
    saved(page, lambda: by_id(page, "p0.effect.percent").press("Tab"))
    saved(page, lambda: by_id(page, "p0.segment").select_option(label=f"in “{segment_name}”"))
    saved(page, lambda: by_id(page, "p0.coupon").check())
    expect(by_id(page, "p0.name")).to_have_value(promotion_name)
    expect(by_id(page, "p0.effect.percent")).to_have_value("15")
    expect(by_id(page, "p0.coupon")).to_be_checked()
    expect(page.locator("#builder-status")).to_contain_text("Valid")
    journey.shot(page, "promotion-drafted")

    # A batch of 100 single-use codes for it, and their CSV.
    page.goto("/app/marketing")
    page.locator("#coupons-card").get_by_role("link", name="Create codes").click()
    batch = page.locator("#new-batch")
    batch.get_by_label("Promotion").select_option(label=promotion_name)
    expect(batch.get_by_label("How many codes")).to_have_value("100")
    expect(batch.get_by_label("Uses per code")).to_have_value("1")
    batch.get_by_label("Prefix").fill("LIN-")
    batch.get_by_label("Name").fill("Store regulars mailing")
    batch.get_by_role("button", name="Create the codes").click()
    expect(page).to_have_url(re.compile(r"/app/marketing/coupons/batches/[0-9a-f-]{36}\?done="))
    expect(page.get_by_role("status").filter(has_text="Batch created")).to_be_visible()
    rows = page.locator("tr[data-code]")
    expect(rows).to_have_count(100)
    expect(page.locator("hgroup")).to_contain_text("single-use")
    codes: list[str] = rows.evaluate_all("rows => rows.map(r => r.dataset.code)")
    assert all(code.startswith("LIN-") for code in codes) and len(set(codes)) == 100
    code = codes[0]
    journey.shot(page, "codes")
    with page.expect_download() as download:
        page.get_by_role("button", name="Export CSV").click()
    exported = Path(download.value.path()).read_text().splitlines()
    assert exported[0] == "code,promotion,max_uses,uses,expires_at"
    assert sorted(line.split(",")[0] for line in exported[1:]) == sorted(codes)
    assert {line.split(",")[2] for line in exported[1:]} == {"1"}

    # 4. Simulate: last week's orders replayed with the draft, then a sample cart.
    page.goto("/app/marketing/promotions/draft")
    page.locator("#replay-form").get_by_role("button", name="Replay").click()
    replay = page.locator("#replay-result")
    expect(replay.locator("#replay-count")).to_have_text("0 of 3 orders")
    expect(replay.locator("#replay-promotions")).to_contain_text(promotion_name)
    verdicts = replay.locator("#replay-orders .promotion-trace li")
    expect(verdicts).to_have_count(3)
    expect(verdicts.first).to_contain_text(promotion_name)
    reasons = verdicts.evaluate_all("items => items.map(li => li.dataset.reason)")
    # Anne (in the segment) had no code; Élise and Hugo ordered online, so are not in it.
    assert sorted(reasons) == ["needs_code", "segment", "segment"], reasons
    expect(replay.locator('li[data-reason="segment"]').first).to_contain_text(
        f"Customer not in segment “{segment_name}”")
    replay.locator("#replay-orders details").first.locator("summary").click()
    journey.shot(page, "replayed")

    cart = page.locator("#cart-form")
    cart.get_by_label("Channel").select_option("store")
    cart.get_by_label("Customer's email").fill(bruno)
    cart.get_by_label("SKU of line 1").fill(TEE)
    cart.get_by_label("Quantity of line 1").fill("2")
    cart.get_by_label("Coupon codes").fill(code.lower())
    cart.get_by_role("button", name="Price the cart").click()
    draft_side = page.locator("#simulation-result .decision").nth(0)
    expect(draft_side.locator("h4")).to_have_text("Draft")
    applied = draft_side.locator('.promotion-trace li[data-reason="applied"]')
    expect(applied).to_contain_text(promotion_name)
    expect(applied.locator(".badge")).to_contain_text("6,00")  # 15 % of 2 x 20.00
    expect(page.locator("#simulation-result .decision").nth(1)).to_contain_text("No version is in force")
    journey.shot(page, "cart-priced")
    # Without the code, the trace says what is missing.
    page.locator("#cart-form").get_by_label("Coupon codes").fill("")
    page.locator("#cart-form").get_by_role("button", name="Price the cart").click()
    expect(page.locator("#simulation-result .decision").nth(0).locator(".promotion-trace li")).to_have_attribute(
        "data-reason", "needs_code")

    # 5. Publish the promotion for next Monday 9:00, Paris time, and a campaign for the same moment.
    monday = next_monday_nine()
    page.locator("#builder-status").get_by_role("button", name="Publish…").click()
    expect(page).to_have_url(f"{base}/app/marketing/promotions/publish")
    expect(page.locator(".what-changes")).to_contain_text(promotion_name)
    page.get_by_label("From a date and time").check()
    page.locator("input[name=from_day]").fill(local_day(monday).isoformat())
    page.locator("input[name=from_time]").fill("09:00")
    page.get_by_label("Note").fill("Store regulars, from Monday")
    journey.shot(page, "publish-form")
    page.get_by_role("button", name="Publish", exact=True).click()
    expect(page).to_have_url(f"{base}/app/marketing/promotions?done=promotions_scheduled")
    version = page.locator('#versions tr[data-version="1"]')
    expect(version.locator(".badge")).to_have_text("scheduled")
    expect(page.locator("#timeline li")).to_have_count(2)
    expect(page.locator("#timeline li").nth(1)).to_contain_text("v1")
    journey.shot(page, "promotion-scheduled")
    [published] = api.get("/api/v1/rule-sets/promotions").json()["versions"]
    assert datetime.fromisoformat(published["effective_from"]) == monday

    page.goto("/app/marketing/campaigns")
    page.locator("#new-campaign").click()
    subject = f"15 % off for our store regulars ({s})"
    page.get_by_label("Name").fill("Store regulars, Monday")
    page.get_by_label("Segment").select_option(label=segment_name)
    expect(page.locator("#segment-count-text")).to_contain_text("3 with email consent, of 3 customers")
    page.get_by_label("Subject").fill(subject)
    page.get_by_label("Message").fill("Thank you for shopping in our Paris store. With the code {coupon_code}, "
                                      "your next order is 15 % off.")
    page.get_by_label("Coupon code").fill(code)
    page.get_by_label("Send on").fill(local_day(monday).isoformat())
    page.get_by_label("At", exact=True).fill("09:00")
    journey.shot(page, "campaign-form")
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("status").filter(has_text="Campaign saved as a draft")).to_be_visible()
    campaign_url = page.url.split("?")[0]
    page.locator("#schedule-campaign").click()
    expect(page.locator("#campaign-status")).to_have_text("Scheduled")
    expect(page.locator("hgroup")).to_contain_text(
        f"sends {monday.astimezone(ZoneInfo(TIMEZONE)):%Y-%m-%d} 09:00 ({TIMEZONE})")
    expect(page.locator("#figure-sent dd").first).to_have_text("0")
    journey.shot(page, "campaign-scheduled")

    # 6. Monday, 9:00 and a little after: the scheduler finds the campaign due, the worker sends it.
    live_server.shift_clock((monday + timedelta(seconds=20) - datetime.now(UTC)).total_seconds())
    reload_until(page, live_server, campaign_url, lambda p: p.locator("#campaign-status").inner_text() == "Sent",
                 "the campaign's sending")
    expect(page.locator("#figure-recipients dd").first).to_have_text("3")
    expect(page.locator("#figure-sent dd").first).to_have_text("3")
    recipients = page.locator("#campaign-recipients tr[data-recipient]")
    assert sorted(recipients.evaluate_all("rows => rows.map(r => r.dataset.recipient)")) == sorted(members)
    journey.shot(page, "campaign-sent")
    page.goto("/app/settings/team")
    page.get_by_role("link", name="Outgoing mail").click()
    expect(page).to_have_url(f"{base}/app/settings/mail-log")
    mails = page.locator("main tbody tr").filter(has_text=subject)
    expect(mails).to_have_count(3)
    assert sorted(row.locator("td").nth(1).inner_text() for row in mails.all()) == sorted(members)
    # Queued with their recipients, then handed to the mail interface by the worker.
    reload_until(page, live_server, f"{base}/app/settings/mail-log",
                 lambda p: p.locator("main tbody tr").filter(has_text=subject).filter(
                     has=p.locator(".badge", has_text=re.compile(r"^sent$"))).count() == 3,
                 "the campaign's mails going out")
    journey.shot(page, "mail-log")
    page.goto("/app/marketing/promotions")
    expect(version.locator(".badge")).to_have_text("in force")
    journey.shot(page, "promotion-in-force")

    # 7. A member orders with the code: 15 % off the order, stored with it.
    first = place(api, anne, "Anne Store", "store", codes=(code.lower(),))
    assert (first["discount_minor"], first["total_minor"]) == (600, 3400), first
    stored = api.get(f"/api/v1/orders/{first['id']}").json()
    assert (stored["discount_minor"], stored["total_minor"]) == (600, 3400)
    assert any(promotion_name in note for note in received_notes(api, first["id"]))
    # The same code again, from another member: the order is taken, without the discount, and says why.
    second = place(api, bruno, "Bruno Store", "store", codes=(code,))
    assert (second["discount_minor"], second["total_minor"]) == (0, 4000), second
    assert f"Code {code} has been used the most times allowed" in received_notes(api, second["id"])

    # The marketer finds the first order from the code's page and cancels it: the code is usable again.
    routing_decided(api, first["id"])
    page.goto("/app/marketing/coupons")
    page.get_by_role("link", name="Store regulars mailing").click()
    page.locator(f'tr[data-code="{code}"]').get_by_role("link", name="1 order").click()
    expect(page.locator("h1")).to_contain_text("used up")
    code_url = page.url
    redemption = page.locator("main tbody tr").filter(has_text=first["number"])
    expect(redemption).to_contain_text("6,00")
    journey.shot(page, "code-used")
    redemption.get_by_role("link", name=first["number"]).click()
    expect(page).to_have_url(f"{base}/app/orders/{first['id']}")
    cancel = page.locator("#cancel-order")
    cancel.locator("summary").click()
    cancel.get_by_label("The whole order (everything not shipped)").check()
    cancel.get_by_label("Reason").fill("Customer changed their mind")
    cancel.get_by_role("button", name="Cancel units").click()
    expect(page.locator(".notice")).to_contain_text("Order cancelled")
    journey.shot(page, "order-cancelled")
    assert api.get(f"/api/v1/orders/{first['id']}").json()["status"] == "cancelled"
    page.goto(code_url)
    expect(page.locator("h1")).to_contain_text("active")
    expect(page.locator("main tbody tr").filter(has_text=first["number"])).to_contain_text("use given back")
    journey.shot(page, "code-given-back")

    third = place(api, chloe, "Chloé Store", "store", codes=(code,))
    assert (third["discount_minor"], third["total_minor"]) == (600, 3400), third
    page.reload()
    expect(page.locator("h1")).to_contain_text("used up")
    expect(page.locator("main tbody tr").filter(has_text=third["number"])).to_contain_text("6,00")
    journey.shot(page, "code-used-again")

    # The campaign counts the recipients' orders of the week: the cancelled one brings no revenue.
    page.goto(campaign_url)
    expect(page.locator("#figure-orders dd").first).to_have_text("3")
    expect(page.locator("#figure-orders")).to_contain_text("74,00")
    journey.shot(page, "campaign-measured")

    api.close()
    assert journey.page_errors == [], journey.page_errors
    assert journey.failures == [], journey.failures
