"""Setting up stock, in the real Chromium against the real web server and worker: a tenant made with
`oms tenants create`, two locations through the form, a catalog import (a good file imported after
its preview, a bad one refused with its errors by row), stock feeds applied by the worker (a good
snapshot seen turning "applied" live through server-sent events, without reloading; a bad one
rejected with every error by row and nothing changed), and a grid figure opening its movements."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from browser_pages import sign_in
from processes import cli_tenant

pytestmark = pytest.mark.browser

PASSWORD = "stock takes patience and care"
TIMEZONE = "Europe/Paris"
FEED_TIMEOUT_MS = 20_000

GOOD_CATALOG = """\
sku,name,price_minor,category,brand
TSHIRT-BLU-M,Blue T-shirt M,1999,Tops,Maison
JEANS-32,Slim jeans 32,5990,Bottoms,Maison
SCARF-RED,Red wool scarf,2450,Accessories,Atelier
"""
# As the French company reads its amounts (the console writes money in the company's locale).
PRICES = {"TSHIRT-BLU-M": "19,99 €", "JEANS-32": "59,90 €", "SCARF-RED": "24,50 €"}

# Row numbers are the file's line numbers (the header is row 1): the bad price is on row 3, and the
# second CAP-GRN on row 5 (the first is on row 2).
BAD_CATALOG = """\
sku,name,price_minor,category,brand
CAP-GRN,Green cap,1200,Accessories,Maison
BELT-BRN,Brown belt,abc,Accessories,Maison
SOCKS-GRY,Grey socks,900,Accessories,Maison
CAP-GRN,Green cap again,1300,Accessories,Maison
"""

GOOD_FEED = """\
sku,location,quantity
TSHIRT-BLU-M,WH-PARIS,40
JEANS-32,WH-PARIS,25
SCARF-RED,WH-PARIS,12
TSHIRT-BLU-M,ST-LYON,6
JEANS-32,ST-LYON,3
"""
GOOD_FEED_LEVELS = {("TSHIRT-BLU-M", "WH-PARIS"): 40, ("JEANS-32", "WH-PARIS"): 25,
                    ("SCARF-RED", "WH-PARIS"): 12, ("TSHIRT-BLU-M", "ST-LYON"): 6, ("JEANS-32", "ST-LYON"): 3}

BAD_FEED = """\
sku,location,quantity
TSHIRT-BLU-M,WH-PARIS,35
HAT-UNKNOWN,WH-PARIS,5
JEANS-32,WH-PARIS,-4
SCARF-RED,ST-LYON,12a
"""
BAD_FEED_ERRORS = [
    ("3", "sku", "Unknown SKU 'HAT-UNKNOWN'."),
    ("4", "quantity", "A snapshot quantity can't be negative (-4)."),
    ("5", "quantity", "'12a' is not a whole number."),
]

expect.set_options(timeout=10_000)


def grid_figures(page: Page) -> dict[tuple[str, str], dict[str, str]]:
    """Every row of the inventory grid: (sku, location) → its figures as shown."""
    rows: list[dict[str, Any]] = page.locator("table.inventory-grid tbody tr").evaluate_all("""rows => rows.map(r => ({
        sku: r.dataset.sku, location: r.dataset.location,
        figures: Object.fromEntries([...r.querySelectorAll('[data-figure]')]
                                    .map(e => [e.dataset.figure, e.textContent.trim()])),
    }))""")
    return {(r["sku"], r["location"]): r["figures"] for r in rows}


def table_rows(page: Page, selector: str) -> list[list[str]]:
    rows: list[list[str]] = page.locator(selector).evaluate_all(
        "rows => rows.map(r => [...r.querySelectorAll('td')].map(td => td.textContent.trim()))")
    return rows


def test_locations_catalog_and_stock_feeds(live_server: Any, new_context: Any, journey_for: Any,
                                           tmp_path: Path) -> None:
    base = live_server.base_url
    journey = journey_for("inv-")
    suffix = uuid.uuid4().hex[:8]
    company = f"Atelier Martin {suffix}"
    email = f"ines-{suffix}@example.test"

    def upload(name: str, content: str) -> Path:
        path = tmp_path / name
        path.write_text(content, encoding="utf-8")
        return path

    # 1. A tenant made from the command line; its owner logs in through the browser.
    cli_tenant(company, email, PASSWORD, owner="Inès Martin", timezone=TIMEZONE)
    context = new_context(timezone_id=TIMEZONE, base_url=base)
    page = journey.watch(context.new_page(), "owner")
    sign_in(page, base, email, PASSWORD)
    expect(page.locator(".tenant-name")).to_have_text(company)
    journey.shot(page, "console-home")

    # 2. Two locations through the form: a warehouse, and a click & collect store with opening hours.
    page.locator("header").get_by_role("link", name="Locations").click()
    expect(page).to_have_url(f"{base}/app/locations")
    expect(page.locator("main")).to_contain_text("No locations yet")
    page.get_by_role("button", name="Add a location").click()
    expect(page).to_have_url(f"{base}/app/locations/new")
    expect(page.get_by_role("heading", name="New location", level=1)).to_be_visible()
    page.get_by_label("Code", exact=True).fill("WH-PARIS")
    page.get_by_label("Name", exact=True).fill("Paris warehouse")
    page.get_by_label("Kind").select_option("warehouse")
    page.get_by_label("Street", exact=True).fill("12 rue des Entrepôts")
    page.get_by_label("Postcode", exact=True).fill("93200")
    page.get_by_label("City", exact=True).fill("Saint-Denis")
    page.get_by_label("Country", exact=True).fill("FR")
    page.get_by_label("Ships to customers").check()
    page.get_by_label("Daily order capacity").fill("500")
    journey.shot(page, "warehouse-form")
    page.get_by_role("button", name="Save location").click()
    # No coordinates typed: they are found from the city, and the saved form shows them to check.
    expect(page).to_have_url(re.compile(re.escape(f"{base}/app/locations/") + r"[0-9a-f-]{36}\?done=location_saved$"),
                             timeout=60_000)  # the first lookup reads the shipped places once
    expect(page.get_by_role("status")).to_have_text("Location saved.")
    expect(page.locator("#coordinates .field-note")).to_contain_text("Placed at Saint-Denis, FR (48.94, 2.35)")
    page.get_by_role("link", name="← Locations").click()

    page.get_by_role("button", name="Add a location").click()
    page.get_by_label("Code", exact=True).fill("ST-LYON")
    page.get_by_label("Name", exact=True).fill("Lyon Presqu'île store")
    page.get_by_label("Kind").select_option("store")
    page.get_by_label("Street", exact=True).fill("5 rue de la République")
    page.get_by_label("Postcode", exact=True).fill("69002")
    page.get_by_label("City", exact=True).fill("Lyon")
    page.get_by_label("Country", exact=True).fill("FR")
    page.get_by_label("Latitude", exact=True).fill("45.7640")
    page.get_by_label("Longitude", exact=True).fill("4.8357")
    page.get_by_label("Click & collect pickup").check()
    page.get_by_label("Accepts returns").check()
    for day in ("mon", "tue", "wed", "thu", "fri", "sat"):
        page.get_by_label(f"{day} opens").fill("10:00")
        page.get_by_label(f"{day} closes").fill("19:00")
    journey.shot(page, "store-form")
    page.get_by_role("button", name="Save location").click()
    expect(page.get_by_role("status")).to_have_text("Location saved.")

    warehouse = page.locator('tr[data-location="WH-PARIS"]')
    store = page.locator('tr[data-location="ST-LYON"]')
    expect(page.locator("main table tbody tr")).to_have_count(2)
    expect(warehouse.locator("td").nth(1)).to_have_text("Paris warehouse")
    expect(warehouse.locator("td").nth(2)).to_have_text("warehouse")
    expect(warehouse.locator("td").nth(4)).to_contain_text("ships")
    expect(warehouse.locator("td").nth(5)).to_have_text("500")
    expect(store.locator("td").nth(1)).to_have_text("Lyon Presqu'île store")
    expect(store.locator("td").nth(2)).to_have_text("store")
    expect(store.locator("td").nth(3)).to_contain_text("Lyon")
    expect(store.locator("td").nth(4)).to_contain_text("click & collect")
    expect(store.locator("td").nth(4)).not_to_contain_text("ships")
    expect(store.locator(".badge.ok")).to_have_text("active")
    journey.shot(page, "locations")

    store.get_by_role("link", name="ST-LYON").click()  # the hours were kept
    expect(page.get_by_role("heading", name="Lyon Presqu'île store", level=1)).to_be_visible()
    expect(page.get_by_label("Click & collect pickup")).to_be_checked()
    expect(page.get_by_label("mon opens")).to_have_value("10:00")
    expect(page.get_by_label("sat closes")).to_have_value("19:00")
    expect(page.get_by_label("sun opens")).to_have_value("")

    # 3. A good catalog file: previewed, then imported; the catalog shows formatted prices.
    page.locator("header").get_by_role("link", name="Catalog").click()
    expect(page).to_have_url(f"{base}/app/catalog")
    page.get_by_role("button", name="Import a file").click()
    expect(page).to_have_url(f"{base}/app/catalog/import")
    page.get_by_label("File").set_input_files(upload("good-catalog.csv", GOOD_CATALOG))
    page.get_by_role("button", name="Check the file").click()
    preview = page.locator("#import-preview")
    expect(preview.locator("header")).to_have_text("good-catalog.csv: 3 valid products")
    expect(preview.locator("table.errors")).to_have_count(0)
    assert [[*row[:4], " ".join(row[4].split())] for row in table_rows(page, "#import-preview table tbody tr")] == [
        ["TSHIRT-BLU-M", "Blue T-shirt M", "Tops", "Maison", PRICES["TSHIRT-BLU-M"]],
        ["JEANS-32", "Slim jeans 32", "Bottoms", "Maison", PRICES["JEANS-32"]],
        ["SCARF-RED", "Red wool scarf", "Accessories", "Atelier", PRICES["SCARF-RED"]],
    ]
    expect(preview.locator("#import-plan")).to_have_text(
        "Importing creates 3 products and updates 0; 0 are already as in the file.")
    journey.shot(page, "catalog-preview-good")
    page.get_by_role("button", name="Import 3 products").click()
    expect(page).to_have_url(re.compile(re.escape(f"{base}/app/catalog") + r"(\?.*)?$"))
    expect(page.get_by_role("status")).to_have_text("3 products created, 0 updated, 0 unchanged.")
    expect(page.locator("main table tbody tr")).to_have_count(3)
    for sku, price in PRICES.items():
        expect(page.locator(f'tr[data-sku="{sku}"] td').nth(4)).to_have_text(price)
    expect(page.locator('tr[data-sku="TSHIRT-BLU-M"] td').nth(1)).to_have_text("Blue T-shirt M")
    journey.shot(page, "catalog-imported")

    # 4. A bad catalog file: every error by row, no import button, and the catalog unchanged.
    page.goto("/app/catalog/import")
    page.get_by_label("File").set_input_files(upload("bad-catalog.csv", BAD_CATALOG))
    with page.expect_response(lambda r: r.url == f"{base}/app/catalog/import"
                              and r.request.method == "POST") as preview_response:
        page.get_by_role("button", name="Check the file").click()
    assert preview_response.value.status == 422
    expect(preview.locator("header")).to_contain_text("bad-catalog.csv")
    expect(preview.locator("header .field-error")).to_have_text("2 errors")
    errors = preview.locator("table.errors tbody tr")
    expect(errors).to_have_count(2)
    with journey.soft(page, "catalog errors by file row"):
        rows = table_rows(page, "#import-preview table.errors tbody tr")
        assert rows[0] == ["3", "price_minor", "'abc' is not a whole number of minor units."], rows
        assert rows[1][:2] == ["5", "sku"] and "CAP-GRN" in rows[1][2] and "twice" in rows[1][2], rows
    expect(preview).to_contain_text("nothing was imported")
    expect(page.get_by_role("button", name=re.compile(r"^Import \d+ product"))).to_have_count(0)
    expect(page.locator('form[action="/app/catalog/import/apply"]')).to_have_count(0)
    journey.shot(page, "catalog-preview-bad")
    page.goto("/app/catalog")
    expect(page.locator("main table tbody tr")).to_have_count(3)
    expect(page.locator("main table tbody")).not_to_contain_text("CAP-GRN")
    expect(page.locator("main table tbody")).not_to_contain_text("BELT-BRN")
    expect(page.locator("main table tbody")).not_to_contain_text("SOCKS-GRY")
    assert sorted(page.locator("tbody tr").evaluate_all("rows => rows.map(r => r.dataset.sku)")) == sorted(PRICES)

    # 5. A good snapshot feed: the feed page turns "applied" by itself (SSE), then the grid shows it.
    page.locator("header").get_by_role("link", name="Inventory").click()
    expect(page).to_have_url(f"{base}/app/inventory")
    expect(page.locator("main")).to_contain_text("No stock yet")
    page.locator(".subnav").get_by_role("link", name="Feeds").click()
    expect(page).to_have_url(f"{base}/app/inventory/feeds")
    expect(page.locator("main table tbody")).to_contain_text("No feeds yet.")
    feed_id = f"stock-snapshot-{suffix}"
    page.get_by_label("File").set_input_files(upload("stock-snapshot.csv", GOOD_FEED))
    page.get_by_label("Kind").select_option("snapshot")
    page.get_by_label("Feed id").fill(feed_id)
    journey.shot(page, "feed-form")

    feed_page = re.compile(re.escape(f"{base}/app/inventory/feeds/") + r"[0-9a-f-]{36}(\?.*)?$")
    navigations: list[str] = []  # the main frame's, from landing on a feed page on
    live_requests: list[str] = []  # htmx's event streams and status fetches, likewise
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    page.on("request", lambda request: live_requests.append(request.url)
            if re.search(r"/feeds/[0-9a-f-]+/(events|status)(\?|$)", request.url) else None)

    def submit_feed() -> str:
        """Upload the filled form; returns the status the feed page was first served with."""
        # Cleared before the click: a fast worker can finish, and htmx swap the status, before the
        # landing assertions below return.
        navigations.clear()
        live_requests.clear()
        with page.expect_response(lambda r: bool(feed_page.match(r.url))
                                  and r.request.resource_type == "document") as landing:
            page.get_by_role("button", name="Upload feed").click()
        expect(page).to_have_url(feed_page)
        first = re.search(r'id="feed-status" data-status="(\w+)"', landing.value.text())
        assert first, landing.value.text()[-2000:]
        navigations[:] = [url for url in navigations if not feed_page.match(url)]
        return first.group(1)

    def check_live_update(first_status: str, *, required: bool) -> None:
        assert navigations == [], f"the feed page reloaded instead of updating live: {navigations}"
        if first_status not in ("accepted", "applying"):
            if required:
                with journey.soft(page, "feed page first shown before the worker applied it"):
                    raise AssertionError(f"the worker finished the feed before its page was first served "
                                         f"({first_status!r}), so the live update was not exercised")
            return
        assert any(url.endswith("/status") for url in live_requests), live_requests
        with journey.soft(page, "one event stream per status change"):
            # accepted → applying → done: one stream per state at most, not a reconnection loop.
            streams = [url for url in live_requests if "/events" in url]
            assert len(streams) <= 3, (
                f"{len(streams)} event streams and {len(live_requests) - len(streams)} status fetches "
                "for one feed: the status block subscribes again after each swap, and each new stream "
                "sends the current status at once, which triggers the next swap")

    first_status = submit_feed()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Feed {feed_id}")
    expect(page.get_by_role("status")).to_have_count(0)  # no notice that would go stale beside the live status
    journey.shot(page, "feed-good-landing")

    status = page.locator("#feed-status")
    expect(status).to_have_attribute("data-status", "applied", timeout=FEED_TIMEOUT_MS)
    expect(page.locator("#feed-status-badge")).to_have_text("applied")
    expect(status).to_contain_text("5 rows read, 5 stock figures changed.")
    expect(status.locator("[aria-busy]")).to_have_count(0)
    check_live_update(first_status, required=True)
    journey.shot(page, "feed-good-applied")

    status.get_by_role("link", name="See the stock").click()
    expect(page).to_have_url(f"{base}/app/inventory")
    expect(page.locator("table.inventory-grid tbody tr")).to_have_count(len(GOOD_FEED_LEVELS))
    tshirt_paris = page.locator('table.inventory-grid tr[data-sku="TSHIRT-BLU-M"][data-location="WH-PARIS"]')
    expect(tshirt_paris.locator('[data-figure="on_hand"]')).to_have_text("40")
    expect(tshirt_paris.locator('[data-figure="reserved"]')).to_have_text("0")
    expect(tshirt_paris.locator('[data-figure="safety_stock"]')).to_have_text("0")
    expect(tshirt_paris.locator('[data-figure="available"]')).to_have_text("40")
    before_bad_feed = grid_figures(page)
    assert {key: int(f["on_hand"]) for key, f in before_bad_feed.items()} == GOOD_FEED_LEVELS
    assert all(f["reserved"] == "0" and f["available"] == f["on_hand"] for f in before_bad_feed.values())
    journey.shot(page, "inventory-grid")

    # 6. A bad snapshot feed: rejected with every error by row; the stock did not move.
    page.goto("/app/inventory/feeds")
    page.get_by_label("File").set_input_files(upload("stock-bad.csv", BAD_FEED))
    page.get_by_label("Kind").select_option("snapshot")
    first_status = submit_feed()
    expect(page.get_by_role("heading", level=1)).to_contain_text("stock-bad.csv")
    expect(status).to_have_attribute("data-status", "rejected", timeout=FEED_TIMEOUT_MS)
    check_live_update(first_status, required=False)
    expect(page.locator("#feed-status-badge")).to_have_text("rejected")
    expect(status.get_by_role("alert")).to_contain_text("The feed was rejected and nothing changed.")
    with journey.soft(page, "feed errors by row"):
        expect(status.locator("table.errors tbody tr")).to_have_count(len(BAD_FEED_ERRORS))
        assert [tuple(r) for r in table_rows(page, "#feed-status table.errors tbody tr")] == BAD_FEED_ERRORS
    journey.shot(page, "feed-bad-rejected")

    page.goto("/app/inventory/feeds")
    feed_rows = page.locator("main table tbody tr")
    expect(feed_rows).to_have_count(2)
    expect(feed_rows.filter(has_text=feed_id).locator(".badge")).to_have_text("applied")
    expect(feed_rows.filter(has_text="stock-bad.csv").locator(".badge")).to_have_text("rejected")
    with journey.soft(page, "rows of the rejected feed"):  # the file has 4 rows, 2 of them unreadable
        bad_row = feed_rows.filter(has_text="stock-bad.csv").locator("td")
        assert bad_row.nth(4).inner_text().strip() == "4", f"Rows shows {bad_row.nth(4).inner_text()!r}"
    journey.shot(page, "feeds-list")

    page.goto("/app/inventory")
    expect(page.locator("table.inventory-grid tbody tr")).to_have_count(len(GOOD_FEED_LEVELS))
    assert grid_figures(page) == before_bad_feed
    expect(tshirt_paris.locator('[data-figure="on_hand"]')).to_have_text("40")

    # 7. An on-hand figure opens the movements that made it: the snapshot.
    tshirt_paris.locator('[data-figure="on_hand"]').click()
    expect(page).to_have_url(re.compile(re.escape(f"{base}/app/inventory/movements?product=")
                                        + r"[0-9a-f-]{36}&location=[0-9a-f-]{36}$"))
    expect(page.get_by_role("heading", name="Stock movements", level=1)).to_be_visible()
    movements = page.locator("main table tbody tr")
    expect(movements).to_have_count(1)
    movement = table_rows(page, "main table tbody tr")[0]
    # when, SKU, location, on hand, reserved, safety stock, reason, reference, by
    assert movement[1:8] == ["TSHIRT-BLU-M", "WH-PARIS", "+40", "", "", "Stock feed: full count",
                             f"feed {feed_id}"], movement
    assert movement[8] == email, movement
    journey.shot(page, "movements")

    # 8. From the grid to the product: two units damaged at the warehouse, with a note; the figures
    # and the product's movements show it. Then its price, typed the French way, and an attribute.
    page.goto("/app/inventory")
    tshirt_paris.get_by_role("link", name="Adjust stock of TSHIRT-BLU-M at WH-PARIS").click()
    expect(page.get_by_role("heading", name="Blue T-shirt M", level=1)).to_be_visible()
    adjust = page.locator("#adjust")
    expect(adjust.get_by_label("Location")).to_have_value(re.compile(r"[0-9a-f-]{36}"))
    adjust.get_by_label("What happened").select_option(label="Damaged or lost")
    adjust.get_by_label("Quantity").fill("2")
    adjust.get_by_label("Note").fill("torn in transit")
    journey.shot(page, "product-adjust")
    adjust.get_by_role("button", name="Adjust stock").click()
    expect(page.get_by_role("status")).to_have_text("Stock adjusted.")
    paris_stock = page.locator('table.product-stock tr[data-location="WH-PARIS"]')
    expect(paris_stock.locator('[data-figure="on_hand"]')).to_have_text("38")
    expect(paris_stock.locator('[data-figure="available"]')).to_have_text("38")
    expect(page.locator("table.product-movements tbody tr").first).to_contain_text("torn in transit")
    expect(page.locator("table.product-movements tbody tr").first).to_contain_text("-2")
    expect(page.locator("table.product-movements tbody tr").first).to_contain_text("Damaged or lost")

    page.get_by_role("button", name="Edit product").click()
    expect(page.get_by_label("Price")).to_have_value("19,99")
    page.get_by_label("Price").fill("17,50")
    page.get_by_label("Name of attribute 1").fill("colour")
    page.get_by_label("Value of attribute 1").fill("blue")
    page.get_by_role("button", name="Add an attribute").click()
    expect(page.get_by_label("Name of attribute 2")).to_be_focused()
    page.get_by_label("Name of attribute 2").fill("size")
    page.get_by_label("Value of attribute 2").fill("M")
    journey.shot(page, "product-form")
    page.get_by_role("button", name="Save product").click()
    expect(page.get_by_role("status")).to_have_text("Product saved.")
    expect(page.locator('[data-field="price"]')).to_have_text("17,50 €")
    assert table_rows(page, "table.attributes tbody tr") == [["blue"], ["M"]]
    assert page.locator("table.attributes tbody th").all_inner_texts() == ["colour", "size"]
    journey.shot(page, "product-page")

    # The wide tables at a laptop-narrow width, for a look (no assertions on layout).
    page.set_viewport_size({"width": 820, "height": 900})
    page.goto("/app/locations")
    journey.shot(page, "locations-narrow")
    page.goto("/app/inventory")
    journey.shot(page, "inventory-narrow")

    assert journey.page_errors == [], journey.page_errors
    assert not journey.failures, ("\n\n".join(journey.failures) + "\n\n" + live_server.log_tail(30))
