"""The console's home in the real Chromium against the real web server and worker: a company with
orders sees its KPI cards and charts; an order posted through the API moves the "orders today" card
and the orders chart without a reload (pushed over server-sent events); a store associate's home
shows their location's figures and queue, and nothing of the warehouse."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect
from test_tablet_journey import invitation_link

from browser_pages import new_company, routing_decided, sign_in

pytestmark = pytest.mark.browser

PASSWORD = "figures every morning"
ASSOCIATE_PASSWORD = "the store counter at nine"
TIMEZONE = "Europe/Paris"
WAREHOUSE, STORE = "WH-DASH", "ST-DASH"
LIVE_S = 5  # an order posted elsewhere shows on the open home within this

expect.set_options(timeout=15_000)


def set_up(api: httpx.Client) -> None:
    for body in (
        {"code": WAREHOUSE, "name": "Dashboard warehouse", "kind": "warehouse", "country": "FR", "timezone": TIMEZONE,
         "latitude": 47.0, "longitude": 2.4, "ships_to_customers": True},
        {"code": STORE, "name": "Dashboard store", "kind": "store", "country": "FR", "timezone": TIMEZONE,
         "latitude": 48.8606, "longitude": 2.3376, "click_and_collect": True},
    ):
        assert api.post("/api/v1/locations", json=body).status_code == 201
    assert api.post("/api/v1/products", json={"sku": "SCARF", "name": "Wool scarf", "price_minor": 4500,
                                              "category": "accessories"}).status_code == 201
    for location, quantity in ((WAREHOUSE, 50), (STORE, 5)):
        assert api.post("/api/v1/inventory/adjustments",
                        json={"sku": "SCARF", "location": location, "quantity": quantity}).status_code == 201
    document = {"rules": [{"id": "wh", "name": "Warehouse first", "enabled": True, "when": None,
                           "then": {"location_types": ["warehouse", "store"], "filters": [], "sorts": [],
                                    "split": {"max_shipments": 1, "min_order_value": 0, "never_split_line": False},
                                    "fallback": ["hold"]}}]}
    assert api.put("/api/v1/rule-sets/routing/draft", json={"document": document}).status_code == 200
    assert api.post("/api/v1/rule-sets/routing/versions", json={}).status_code == 201


def place(api: httpx.Client, number: str, *, pickup: bool = False, channel: str = "web") -> dict[str, Any]:
    delivery = ({"mode": "pickup", "pickup_location": STORE} if pickup else
                {"mode": "ship", "address": {"country": "FR", "city": "Paris", "latitude": 48.85, "longitude": 2.35}})
    created = api.post("/api/v1/orders", headers={"Idempotency-Key": number}, json={
        "channel": channel, "external_number": number, "currency": "EUR",
        "lines": [{"sku": "SCARF", "quantity": 1, "unit_price_minor": 4500}],
        "customer": {"email": f"{number.lower()}@example.test", "name": "Dana Client"},
        "delivery": delivery, "total_minor": 4500, "payment": {"provider": "external", "authorized_minor": 4500}})
    assert created.status_code == 201, created.text
    return routing_decided(api, created.json()["id"])


def charted(page: Page) -> int:
    """The orders today's line shows, summed over its hours (the orders may fall in two hours)."""
    titles = page.locator("#chart-orders .series-current g.pt title").all_text_contents()
    return sum(int(m.group(1)) for t in titles if (m := re.search(r": (\d+) orders?$", t)))


def wait_charted(page: Page, count: int) -> int:
    for _ in range(LIVE_S * 10):
        if (seen := charted(page)) == count:
            return seen
        page.wait_for_timeout(100)
    return charted(page)


def test_the_home_shows_figures_that_move_live_and_an_associate_sees_their_store(
        live_server: Any, new_context: Any, journey_for: Any) -> None:
    base = live_server.base_url
    journey = journey_for("dashboard-")
    company = new_company("Maison Dana", "dana", PASSWORD, owner="Dana Owner", timezone=TIMEZONE)
    associate_email = f"sami-{company.suffix}@example.test"
    with company.api(base) as api:
        set_up(api)
        shipped = [place(api, f"WEB-{company.suffix}-{n}") for n in (1, 2)]
        pickup = place(api, f"APP-{company.suffix}-3", pickup=True, channel="api")
        invited = api.post("/api/v1/invitations", json={"email": associate_email, "role": "store_associate",
                                                         "locations": [STORE]})
        assert invited.status_code == 201, invited.text
    assert {o["fulfilments"][0]["location"] for o in shipped} == {WAREHOUSE}
    assert pickup["fulfilments"][0]["location"] == STORE

    # 1. The owner's home: KPI cards and charts of today.
    owner = journey.watch(new_context(timezone_id=TIMEZONE, base_url=base).new_page(), "owner")
    sign_in(owner, base, company.email, PASSWORD)
    orders_card = owner.locator('[data-kpi="orders"] .kpi-value')
    expect(orders_card).to_have_text("3")
    expect(owner.locator('[data-kpi="gross_sales"] .kpi-value')).to_contain_text("135,00")
    for chart in ("orders", "sales", "channels", "locations", "rules", "stockouts"):
        expect(owner.locator(f"#chart-{chart}")).to_be_visible()
    expect(owner.locator("#chart-orders svg")).to_be_visible()
    expect(owner.locator("#chart-channels svg title", has_text="Web: 2 orders")).to_have_count(1)
    expect(owner.locator("#chart-rules svg title", has_text="Warehouse first: 3 orders")).to_have_count(1)
    assert charted(owner) == 3
    owner.locator("#chart-orders .series-current g.pt circle").last.hover()
    expect(owner.locator("#chart-orders .series-current g.pt").last.locator(".tip")).to_have_css("opacity", "1")
    journey.shot(owner, "owner-home")

    # 2. An order posted through the API: the card and the chart move, no reload.
    owner.evaluate("window.__not_reloaded = true")
    with company.api(base) as api:
        created = api.post("/api/v1/orders", headers={"Idempotency-Key": "live-4"}, json={
            "channel": "web", "external_number": f"WEB-{company.suffix}-4", "currency": "EUR",
            "lines": [{"sku": "SCARF", "quantity": 1, "unit_price_minor": 4500}],
            "customer": {"email": "live@example.test", "name": "Live Client"},
            "delivery": {"mode": "ship", "address": {"country": "FR", "latitude": 48.85, "longitude": 2.35}},
            "total_minor": 4500})
        assert created.status_code == 201, created.text
    expect(orders_card).to_have_text("4", timeout=LIVE_S * 1000)
    assert wait_charted(owner, 4) == 4
    assert owner.evaluate("window.__not_reloaded") is True
    journey.shot(owner, "owner-home-live")

    # 3. The store associate's home: their store, its figures and queue; nothing of the warehouse.
    link = invitation_link(owner, associate_email, live_server)
    tablet = journey.watch(new_context(timezone_id=TIMEZONE, base_url=base,
                                       viewport={"width": 820, "height": 1180}).new_page(), "associate")
    tablet.goto(link)
    tablet.get_by_label("Your name").fill("Sami Vendeur")
    tablet.get_by_label("Choose a password").fill(ASSOCIATE_PASSWORD)
    tablet.get_by_role("button", name="Accept invitation").click()
    expect(tablet).to_have_url(re.compile(rf"{re.escape(base)}/app"))
    expect(tablet.locator("#kpi-title")).to_contain_text(STORE)
    expect(tablet.locator('[data-kpi="fulfilments"] .kpi-value')).to_have_text("1")
    expect(tablet.locator(f'#queue [data-fulfilment="{pickup["fulfilments"][0]["number"]}"]')).to_be_visible()
    main = tablet.locator("main").inner_text()
    assert WAREHOUSE not in main and "Dashboard warehouse" not in main
    for order in shipped:
        assert order["number"] not in main
    expect(tablet.locator("[id^=chart-]")).to_have_count(0)
    journey.shot(tablet, "associate-home")

    # 4. A wrong range is said plainly, and today's figures stay.
    owner.goto("/app?period=range&from=2026-01-10&to=2026-01-01")
    expect(owner.locator(".period-errors")).to_contain_text("The end comes before the start")
    expect(orders_card).to_have_text("4")

    assert journey.page_errors == []
    assert journey.failures == []
