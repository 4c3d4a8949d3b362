"""The store's pages on a tablet and the orders on a phone, in the real Chromium: a store associate,
on an 820 by 1180 tablet, carries a click & collect order from the queue to "collected", and no page
they pass through scrolls sideways or offers a button or a link smaller than a fingertip. An admin then
reads the orders list and an order on a 390 by 844 phone, where tables turn into cards. A merchandiser
reads every choice of the rule builder in full, on a desktop and on the tablet."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Page, expect

from browser_pages import sign_in
from processes import cli_tenant

pytestmark = pytest.mark.browser

PASSWORD = "tablets on the counter"
ASSOCIATE_PASSWORD = "behind the till all day"
TIMEZONE = "Europe/Paris"
STORE = "ST-LYON-PRESQUILE"
TABLET = {"width": 820, "height": 1180}
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
FINGERTIP_PX = 44
SHOTS = Path("/tmp/shots")
MAIL_TIMEOUT_S = 30
ROUTED_TIMEOUT_S = 20

expect.set_options(timeout=15_000)

# Elements that stick out of the viewport, to say what makes a page scroll sideways.
_WIDER_THAN_SCREEN = """() => {
  const width = window.innerWidth;
  const out = [];
  for (const e of document.querySelectorAll('body *')) {
    const box = e.getBoundingClientRect();
    if (box.width && box.right > width + 0.5) {
      const classes = typeof e.className === 'string' ? e.className.trim().split(/\\s+/).filter(Boolean) : [];
      out.push(`${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''}${classes.map(c => '.' + c).join('')}`
               + ` right=${Math.round(box.right)}`);
    }
  }
  return {scrollWidth: document.documentElement.scrollWidth, innerWidth: width, culprits: out.slice(0, 10)};
}"""


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def no_sideways_scroll(page: Page, where: str) -> None:
    found = page.evaluate(_WIDER_THAN_SCREEN)
    if found["scrollWidth"] > found["innerWidth"]:
        shot(page, "FAILED-" + re.sub(r"[^a-z0-9]+", "-", where.lower()).strip("-"))
    assert found["scrollWidth"] <= found["innerWidth"], (
        f"{where} scrolls sideways at {found['innerWidth']} px (content {found['scrollWidth']} px wide): "
        f"{found['culprits']}")


def fingertip_sized(page: Page, selector: str, where: str, *, wide_too: bool = False) -> int:
    """Every visible element matching ``selector`` is at least 44 px high (and wide, with
    ``wide_too``: a short link such as "PDF"); how many there were."""
    sizes = page.locator(selector).evaluate_all(
        """els => els.filter(e => e.checkVisibility({visibilityProperty: true}))
                     .map(e => { const box = e.getBoundingClientRect();
                                 return [e.textContent.trim().slice(0, 40), box.height, box.width]; })""")
    small = [(label, round(height, 1), round(width, 1)) for label, height, width in sizes
             if height < FINGERTIP_PX or (wide_too and width < FINGERTIP_PX)]
    assert not small, (f"{where}: touch targets under {FINGERTIP_PX} px {'high or wide' if wide_too else 'high'} "
                       f"(text, height, width): {small}")
    return len(sizes)


# Each select whose chosen text does not fit beside its arrow: the text is measured in the select's
# own font, the room is its inner width less the padding and the arrow (a background image).
_CUT_CHOICES = r"""els => {
  const canvas = document.createElement('canvas').getContext('2d');
  return els.filter(s => !s.multiple && s.checkVisibility() && s.selectedIndex >= 0).map(s => {
    const style = getComputedStyle(s);
    canvas.font = style.font;
    const text = s.options[s.selectedIndex].text;
    const offset = /calc\(100% - ([0-9.]+)px\)/.exec(style.backgroundPositionX);
    const arrow = style.backgroundImage === 'none' ? 0
      : (offset ? Number(offset[1]) : 0) + parseFloat(style.backgroundSize);
    const room = s.clientWidth - parseFloat(style.paddingLeft) - Math.max(parseFloat(style.paddingRight), arrow);
    return {name: s.id || s.name, text, need: Math.ceil(canvas.measureText(text).width), room: Math.floor(room)};
  }).filter(c => c.need > c.room);
}"""


def set_up(api: httpx.Client) -> None:
    for body in (
        {"code": "WH-RHONE", "name": "Rhône warehouse", "kind": "warehouse", "country": "FR", "timezone": TIMEZONE,
         "latitude": 45.7, "longitude": 4.9, "ships_to_customers": True},
        {"code": STORE, "name": "Lyon Presqu'île store", "kind": "store", "country": "FR", "timezone": TIMEZONE,
         "latitude": 45.7640, "longitude": 4.8357, "ship_from_store": True, "click_and_collect": True,
         "receives_transfers": True},
    ):
        assert api.post("/api/v1/locations", json=body).status_code == 201
    for sku, name, price in (("COAT-WOOL-NAVY-XL-2026", "Double-breasted wool coat, navy, XL", 18900),
                             ("SCARF-CASHMERE-GREY", "Cashmere scarf, heather grey", 6900)):
        assert api.post("/api/v1/products", json={"sku": sku, "name": name, "price_minor": price,
                                                  "category": "outerwear"}).status_code == 201
        for location in ("WH-RHONE", STORE):
            assert api.post("/api/v1/inventory/adjustments",
                            json={"sku": sku, "location": location, "quantity": 10}).status_code == 201
    document = {"rules": [{"id": "stores", "name": "Stores first", "enabled": True, "when": None,
                           "then": {"location_types": ["store", "warehouse"], "filters": [],
                                    "sorts": [{"by": "distance", "band": 0}],
                                    "split": {"max_shipments": 1, "min_order_value": 0, "never_split_line": False},
                                    "fallback": ["ship_to_store", "hold"]}}]}
    assert api.put("/api/v1/rule-sets/routing/draft", json={"document": document}).status_code == 200
    assert api.post("/api/v1/rule-sets/routing/versions", json={}).status_code == 201


def place_pickup(api: httpx.Client, number: str, name: str) -> dict[str, Any]:
    total = 18900 + 2 * 6900
    created = api.post("/api/v1/orders", headers={"Idempotency-Key": number}, json={
        "channel": "web", "external_number": number, "currency": "EUR",
        "lines": [{"sku": "COAT-WOOL-NAVY-XL-2026", "quantity": 1, "unit_price_minor": 18900},
                  {"sku": "SCARF-CASHMERE-GREY", "quantity": 2, "unit_price_minor": 6900}],
        "customer": {"email": f"{number.lower()}.a-rather-long-address@example.test", "name": name},
        "delivery": {"mode": "pickup", "pickup_location": STORE},
        "total_minor": total, "payment": {"authorized_minor": total, "provider": "external"}})
    assert created.status_code == 201, created.text
    deadline = time.monotonic() + ROUTED_TIMEOUT_S
    while time.monotonic() < deadline:
        order: dict[str, Any] = api.get(f"/api/v1/orders/{created.json()['id']}").json()
        if order["status"] != "received":
            assert order["status"] == "routed", order
            return order
        time.sleep(0.2)
    raise AssertionError(f"order {number} was not routed within {ROUTED_TIMEOUT_S} s")


def invitation_link(owner: Page, email: str, live_server: Any) -> str:
    """The link of the invitation mail to ``email``, read in the outgoing-mail log by the owner."""
    owner.goto("/app/settings/mail-log")
    row = owner.locator("tbody tr", has_text=email)
    deadline = time.monotonic() + MAIL_TIMEOUT_S
    while row.locator(".badge").inner_text().strip() != "sent":
        if time.monotonic() > deadline:
            pytest.fail(f"the invitation mail was not sent within {MAIL_TIMEOUT_S} s\n{live_server.log_tail()}")
        time.sleep(0.5)
        owner.reload()
    row.get_by_role("link").click()
    href = owner.locator("pre.mail-body a[href*='/invitations/']").get_attribute("href") or ""
    assert "/invitations/inv_" in href, href
    return href


def test_a_store_associate_works_the_queue_on_a_tablet_and_orders_read_on_a_phone(
        live_server: Any, new_context: Any, journey_for: Any) -> None:
    base = live_server.base_url
    journey = journey_for("tablet-")
    suffix = uuid.uuid4().hex[:8]
    owner_email = f"tess-{suffix}@example.test"
    associate_email = f"theo-{suffix}@example.test"
    created = cli_tenant(f"Maison Tess {suffix}", owner_email, PASSWORD, owner="Tess Owner", timezone=TIMEZONE)
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {created['api_key']}"}, timeout=30) as api:
        set_up(api)
        order = place_pickup(api, f"WEB-{suffix}-1", "Anne-Sophie de la Tour-Maubourg")
        place_pickup(api, f"WEB-{suffix}-2", "Bob Martin")
        invited = api.post("/api/v1/invitations", json={"email": associate_email, "role": "store_associate",
                                                         "locations": [STORE]})
        assert invited.status_code == 201, invited.text
    [pickup] = order["fulfilments"]
    assert (pickup["location"], pickup["kind"]) == (STORE, "pickup")

    owner = journey.watch(new_context(timezone_id=TIMEZONE, base_url=base).new_page(), "owner")
    sign_in(owner, base, owner_email, PASSWORD)
    link = invitation_link(owner, associate_email, live_server)

    # 1. The associate joins and works on a tablet held upright.
    tablet = journey.watch(new_context(timezone_id=TIMEZONE, base_url=base, viewport=TABLET,
                                       has_touch=True).new_page(), "associate")
    tablet.goto(link)
    tablet.get_by_label("Your name").fill("Théo Vendeur")
    tablet.get_by_label("Choose a password").fill(ASSOCIATE_PASSWORD)
    tablet.get_by_role("button", name="Accept invitation").click()
    expect(tablet).to_have_url(re.compile(rf"{re.escape(base)}/app"))
    no_sideways_scroll(tablet, "the associate's home")
    shot(tablet, "820-home")

    # The navigation folds behind one button that opens it.
    menu = tablet.locator(".console-header").get_by_role("button", name="Menu")
    expect(menu).to_be_visible()
    expect(tablet.locator(".console-nav").get_by_role("link", name="Orders")).to_be_hidden()
    fingertip_sized(tablet, ".console-header .menu-button", "the menu button")
    menu.click()
    expect(tablet.locator(".console-nav").get_by_role("link", name="Orders")).to_be_visible()
    fingertip_sized(tablet, ".console-nav a", "the links of the menu")
    shot(tablet, "820-menu-open")
    no_sideways_scroll(tablet, "the open menu")
    tablet.locator(".console-nav").get_by_role("link", name="Fulfilment").click()
    expect(tablet).to_have_url(re.compile(r"/app/fulfilments"))
    expect(tablet.locator(".console-nav").get_by_role("link", name="Fulfilment")).to_be_hidden()  # folded again

    card = tablet.locator(f'[data-fulfilment="{pickup["number"]}"]')
    expect(card).to_be_visible()
    shot(tablet, "820-queue")
    # Reject is a real button, and its form fits the card.
    reject = card.locator("details.reject > summary")
    reject.click()
    expect(card.get_by_role("button", name="Reject: route elsewhere")).to_be_visible()
    no_sideways_scroll(tablet, "the queue with Reject open")
    fingertip_sized(tablet, ".queue-card button, .queue-card summary, .queue-card select", "the queue, Reject open")
    shot(tablet, "820-queue-reject-open")
    reject.click()
    targets = ".queue-card button, .queue-card summary, .queue-card .queue-actions a"
    links = ".queue-tools a, .queue-card header a, .queue-card .queue-actions a"  # "PDF", "order O-…"
    assert fingertip_sized(tablet, links, "the links of the queue", wide_too=True) >= 3
    for button, status in (("Accept", "accepted"), ("Start picking", "picking"), ("Packed", "packed"),
                           ("Ready for pickup", "ready for pickup")):
        no_sideways_scroll(tablet, f"the queue before '{button}'")
        assert fingertip_sized(tablet, targets, f"the queue before '{button}'")
        fingertip_sized(tablet, links, f"the links of the queue before '{button}'", wide_too=True)
        card.get_by_role("button", name=button).click()
        expect(card.locator(".badge").first).to_have_text(status)
    shot(tablet, "820-queue-ready")
    no_sideways_scroll(tablet, "the queue with a pickup ready")
    fingertip_sized(tablet, targets, "the queue with a pickup ready")

    # The order page, from the card, as the associate sees it on the tablet.
    card.get_by_role("link", name=f"order {order['number']}").click()
    expect(tablet.locator("#order-status")).to_have_text("ready for pickup")
    no_sideways_scroll(tablet, "the order page on a tablet")
    fingertip_sized(tablet, "main button, main a[role=button]", "the order page on a tablet")
    shot(tablet, "820-order")
    tablet.goto("/app/fulfilments")
    card.get_by_role("button", name="Handed over").click()
    expect(tablet.locator(f'[data-fulfilment="{pickup["number"]}"]')).to_have_count(0)
    no_sideways_scroll(tablet, "the queue after the hand-over")
    tablet.goto(f"/app/orders/{order['id']}")
    expect(tablet.locator("#order-status")).to_have_text("collected")
    no_sideways_scroll(tablet, "the collected order")
    tablet.goto("/app/orders")
    no_sideways_scroll(tablet, "the orders list on a tablet")
    shot(tablet, "820-orders")
    # A page that does not exist keeps the console around the associate.
    missing = tablet.goto("/app/no-such-page")
    assert missing is not None and missing.status == 404
    expect(tablet.get_by_role("heading", name="Not found")).to_be_visible()
    expect(tablet.locator(".console-header").get_by_role("button", name="Menu")).to_be_visible()
    expect(tablet.get_by_role("link", name="Pricing")).to_have_count(0)
    no_sideways_scroll(tablet, "a missing page")
    shot(tablet, "820-not-found")

    # 2. The owner, on a phone: the orders list and the order read as cards, nothing wider than the screen.
    owner.set_viewport_size(PHONE)
    owner.goto("/app/orders")
    rows = owner.locator("#orders-table tbody tr")
    expect(rows).to_have_count(2)
    expect(owner.locator("#orders-table thead")).to_be_hidden()
    first = rows.filter(has_text=order["number"])
    expect(first.locator("td[data-label='Status']")).to_contain_text("collected")
    assert first.locator("td").first.bounding_box()["width"] > PHONE["width"] * 0.6  # a card, not a column
    no_sideways_scroll(owner, "the orders list on a phone")
    fingertip_sized(owner, ".console-header .menu-button", "the menu button on a phone")
    shot(owner, "390-orders")
    first.get_by_role("link", name=order["number"]).click()
    expect(owner.locator("#order-status")).to_have_text("collected")
    expect(owner.locator("#order-lines thead")).to_be_hidden()
    expect(owner.locator("#order-lines td[data-label='SKU']").first).to_contain_text("COAT-WOOL-NAVY-XL-2026")
    no_sideways_scroll(owner, "the order page on a phone")
    shot(owner, "390-order")

    assert journey.page_errors == []
    assert journey.failures == []


def test_the_rule_builder_shows_every_choice_in_full_on_a_desktop_and_a_tablet(
        live_server: Any, new_context: Any, journey_for: Any) -> None:
    """The builder's selects as wide as their choices ("Ship to the pickup store from another location",
    "hold for customer service"), the sample order's too; an amount the server refused keeps its unit
    beside it."""
    base = live_server.base_url
    journey = journey_for("builder-widths-")
    suffix = uuid.uuid4().hex[:8]
    email = f"mona-{suffix}@example.test"
    created = cli_tenant(f"Maison Mona {suffix}", email, PASSWORD, owner="Mona Merch", timezone=TIMEZONE)
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {created['api_key']}"}, timeout=30) as api:
        set_up(api)
    page = journey.watch(new_context(timezone_id=TIMEZONE, base_url=base, viewport=DESKTOP).new_page(), "merchandiser")
    sign_in(page, base, email, PASSWORD)
    page.goto("/app/rules/draft")

    def saved(action: Any) -> None:
        """The edit sent, and the builder back from the server with the draft's next revision."""
        before = page.locator("#builder-status").get_attribute("data-revision")
        action()
        expect(page.locator("#builder-status")).not_to_have_attribute("data-revision", before or "")
        expect(page.locator(".htmx-request, .htmx-swapping, .htmx-settling")).to_have_count(0)

    # An order total that is no amount: the server marks the field, its unit stays beside it.
    page.locator("#r0\\.new_field").select_option("order.total")
    saved(lambda: page.locator("#rule-0").get_by_role("button", name="+ Add condition").click())
    page.locator("#r0\\.0\\.value").fill("abc")
    saved(lambda: page.locator("#r0\\.0\\.value").press("Tab"))
    expect(page.locator("#r0\\.0\\.value")).to_have_attribute("aria-invalid", "true")

    for viewport in (DESKTOP, TABLET):
        width = viewport["width"]
        page.set_viewport_size(viewport)
        page.goto("/app/rules/draft")
        expect(page.locator("#r0\\.then\\.fallback\\.0 option:checked")).to_have_text(
            "Ship to the pickup store from another location")
        expect(page.locator("#otherwise option:checked")).to_have_text("hold for customer service")
        expect(page.locator("#simulate-form [name=delivery_mode] option:checked")).to_have_text("Ship to the customer")
        cut = page.locator("main select").evaluate_all(_CUT_CHOICES)
        assert cut == [], f"at {width} px, choices cut short (text and room in px): {cut}"
        field = page.locator("#r0\\.0\\.value").bounding_box()
        unit = page.locator("#r0\\.0\\.value + small").bounding_box()
        assert field and unit
        assert unit["x"] >= field["x"] + field["width"] - 1, (width, field, unit)  # beside, not above
        assert field["y"] - 1 <= unit["y"] and unit["y"] + unit["height"] <= field["y"] + field["height"] + 1, (
            width, field, unit)
        no_sideways_scroll(page, f"the rule builder at {width} px")
        journey.shot(page, f"{width}-builder")

    assert journey.page_errors == []


def test_the_api_documentation_renders_offline(live_server: Any, new_context: Any, journey_for: Any) -> None:
    """/api/docs with every request to another host refused, as on a machine with no internet."""
    journey = journey_for("api-docs-")
    page = journey.watch(new_context(base_url=live_server.base_url).new_page(), "api docs")
    elsewhere: list[str] = []

    def only_this_server(route: Any) -> None:
        host = urlsplit(route.request.url).hostname
        if host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    page.goto("/api/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("OMS API")
    expect(page.locator(".swagger-ui .opblock-tag").first).to_be_visible()
    expect(page.locator(".swagger-ui .opblock-summary-path", has_text="/api/v1/orders").first).to_be_visible()
    shot(page, "api-docs-offline")
    assert elsewhere == []
    assert journey.page_errors == []
