"""The catalog and stock in the console: a product's page (details, attributes, stock at each
location, its movements), its form (every problem at once, attributes as rows), deactivation (new
orders refused, placed ones go on), stock adjustments with a reason through the ledger (received,
damaged, corrected, counted; never below what orders hold), safety stock; catalog files as
spreadsheets export them (semicolons, tabs, Windows-1252, UTF-8 with a byte order mark, UTF-16,
prices written the company's way), with what was created, updated and left as it was; and the roles
that may not change any of it."""

from __future__ import annotations

import html
import re
import uuid
from typing import Any

from test_orders import by_priority, capture, get_order, network, order_body, publish_rules
from test_roles import _join

from factories import bearer, create_tenant, csrf_headers, login, post_form, run_outbox_inline
from inventory_factories import (
    API,
    ledger_mismatches,
    levels,
    location_body,
    make_locations,
    movement_count,
    product_body,
)


def text_of(response: Any) -> str:
    """The page as a person reads it: no tags, entities decoded, every run of spaces one space."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", response.text)))


def figures(page: Any, location: str) -> dict[str, int]:
    """The stock figures of one location's row on a product page."""
    row = re.search(rf'<tr data-location="{re.escape(location)}"[^>]*>(.*?)</tr>', page.text, re.S)
    assert row, f"no stock row for {location}"
    return {name: int(value) for name, value in
            re.findall(r'data-figure="(\w+)">\s*(-?\d+)\s*<', row.group(1))}


async def product(client: Any, key: str, sku: str) -> dict[str, Any]:
    [found] = [p for p in (await client.get(f"{API}/products", params={"q": sku}, headers=bearer(key))).json()
               if p["sku"] == sku]
    return dict(found)


async def movements(client: Any, key: str, sku: str) -> list[dict[str, Any]]:
    response = await client.get(f"{API}/inventory/movements", params={"sku": sku}, headers=bearer(key))
    assert response.status_code == 200, response.text
    return list(response.json())


async def upload(client: Any, name: str, content: bytes, **form: str) -> Any:
    return await client.post("/app/catalog/import", headers=csrf_headers(client), data=form,
                             files={"file": (name, content, "text/csv")})


# --- a product's page and form ---------------------------------------------------------------


async def test_a_product_is_added_shown_and_edited_with_every_problem_told_at_once(client) -> None:
    tenant = await create_tenant(country="FR", currency="EUR")  # amounts written 59,90
    await login(client, tenant.email)
    form = await client.get("/app/catalog/new")
    assert form.status_code == 200 and 'name="price"' in form.text

    created = await post_form(client, "/app/catalog/new", {
        "sku": "PULL-NAVY-M", "name": "Navy jumper M", "category": "Knitwear", "brand": "Maison",
        "price": "59,90", "currency": "EUR", "weight_grams": "450", "status": "active", "attr_rows": "3",
        "attr.0.key": "colour", "attr.0.value": "navy", "attr.1.key": "size", "attr.1.value": "M",
        "attr.2.key": "", "attr.2.value": "", "action": "save"})
    assert created.status_code == 303, created.text
    page_url = created.headers["location"].split("?")[0]
    stored = await product(client, tenant.api_key, "PULL-NAVY-M")
    assert page_url == f"/app/catalog/{stored['id']}"
    assert (stored["price_minor"], stored["currency"], stored["weight_grams"], stored["status"]) == (
        5990, "EUR", 450, "active")
    assert stored["attributes"] == {"colour": "navy", "size": "M"}

    shown = await client.get(created.headers["location"])
    assert shown.status_code == 200
    text = text_of(shown)
    assert "Product created." in text and "Navy jumper M" in text
    assert "59,90 €" in text  # the company's way of writing amounts
    attributes = re.search(r'<table class="attributes">(.*?)</table>', shown.text, re.S)
    assert attributes is not None
    assert re.findall(r'<th scope="row">([^<]*)</th><td>([^<]*)</td>', attributes.group(1)) == [
        ("colour", "navy"), ("size", "M")]
    assert (await client.get("/app/catalog/PULL-NAVY-M")).status_code == 200  # by SKU too
    assert (await client.get("/app/catalog/NO-SUCH-SKU")).status_code == 404

    again = await post_form(client, "/app/catalog/new", {"sku": "PULL-NAVY-M", "name": "Copy", "price": "1",
                                                         "currency": "EUR", "attr_rows": "0"})
    assert again.status_code == 422 and "A product with SKU 'PULL-NAVY-M' already exists." in text_of(again)

    # Every problem at once, each next to its field; nothing saved.
    edit_url = f"{page_url}/edit"
    bad = await post_form(client, edit_url, {
        "name": "", "price": "abc", "currency": "EURO", "weight_grams": "-2", "status": "active",
        "attr_rows": "3", "attr.0.key": "colour", "attr.0.value": "navy", "attr.1.key": "",
        "attr.1.value": "orphan value", "attr.2.key": "colour", "attr.2.value": "blue", "action": "save"})
    assert bad.status_code == 422
    text = text_of(bad)
    for message in ("Give the product a name.", "'EURO' is not a currency code",
                    "'-2' is not a weight", "Give this value a name, or clear the row.",
                    "'colour' is given twice"):
        assert message in text, message
    assert "'abc' is not a price: write it like 59,90." in text
    assert 'aria-invalid="true" aria-describedby="name-error"' in bad.text
    assert await product(client, tenant.api_key, "PULL-NAVY-M") == stored

    # Adding a row re-draws the form with one more, and saves nothing.
    more = await post_form(client, edit_url, {"name": "Changed", "price": "59,90", "currency": "EUR",
                                              "attr_rows": "1", "attr.0.key": "colour", "attr.0.value": "navy",
                                              "action": "add_attribute"})
    assert more.status_code == 200 and 'name="attr.1.key"' in more.text and 'value="Changed"' in more.text
    assert (await product(client, tenant.api_key, "PULL-NAVY-M"))["name"] == "Navy jumper M"
    fewer = await post_form(client, edit_url, {"name": "Changed", "price": "59,90", "currency": "EUR",
                                               "attr_rows": "2", "attr.0.key": "colour", "attr.0.value": "navy",
                                               "attr.1.key": "size", "attr.1.value": "M",
                                               "action": "remove_attribute:0"})
    assert fewer.status_code == 200 and 'value="size"' in fewer.text and 'value="colour"' not in fewer.text

    saved = await post_form(client, edit_url, {
        "name": "Navy wool jumper M", "category": "Knitwear", "brand": "", "price": "1 064,50 €",
        "currency": "EUR", "weight_grams": "", "status": "active", "attr_rows": "2",
        "attr.0.key": "colour", "attr.0.value": "midnight", "attr.1.key": "", "attr.1.value": "",
        "action": "save"})
    assert saved.status_code == 303 and "done=product_saved" in saved.headers["location"]
    after = await product(client, tenant.api_key, "PULL-NAVY-M")
    assert (after["name"], after["price_minor"], after["brand"], after["weight_grams"]) == (
        "Navy wool jumper M", 106450, None, None)
    assert after["attributes"] == {"colour": "midnight"}
    edit = await client.get(edit_url)
    assert 'value="1064,50"' in edit.text and "readonly" in edit.text  # the SKU can't change


async def test_attributes_that_are_not_text_survive_an_edit(client) -> None:
    tenant = await create_tenant()
    made = await client.post(f"{API}/products", headers=bearer(tenant.api_key), json=product_body(
        "BOOT-40", attributes={"sizes": [38, 39, 40], "waterproof": True, "colour": "brown"}))
    assert made.status_code == 201, made.text
    await login(client, tenant.email)
    form = await client.get("/app/catalog/BOOT-40/edit")
    rows = dict(re.findall(r'name="attr\.(\d+)\.key" value="([^"]*)"', form.text))
    values = dict(re.findall(r'name="attr\.(\d+)\.value" value="([^"]*)"', form.text))
    assert sorted(rows.values()) == ["", "colour", "sizes", "waterproof"]
    data = {"name": "Boot 40", "price": "19,99", "currency": "EUR", "status": "active",
            "attr_rows": str(len(rows)), "action": "save"}
    for i, key in rows.items():
        data[f"attr.{i}.key"] = key
        data[f"attr.{i}.value"] = html.unescape(values[i])
    saved = await post_form(client, "/app/catalog/BOOT-40/edit", data)
    assert saved.status_code == 303, saved.text
    assert (await product(client, tenant.api_key, "BOOT-40"))["attributes"] == {
        "sizes": [38, 39, 40], "waterproof": True, "colour": "brown"}
    too_long = await client.post(f"{API}/products", headers=bearer(tenant.api_key),
                                 json=product_body("BOOT-41", attributes={"notes": "x" * 501}))
    assert too_long.status_code in (400, 422) and "longer than 500" in too_long.text


async def test_deactivating_a_product_refuses_new_orders_and_lets_placed_ones_go_on(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key)
    await publish_rules(client, key, by_priority())
    placed = await capture(client, key, order_body((c["sku"], 1, 2500)))

    await login(client, tenant.email)
    stored = await product(client, key, c["sku"])
    off = await post_form(client, f"/app/catalog/{stored['id']}/status", {"status": "inactive"})
    assert off.status_code == 303 and "done=product_inactive" in off.headers["location"]
    shown = await client.get(off.headers["location"])
    assert "Product deactivated" in text_of(shown) and "Reactivate" in text_of(shown)
    page = shown.text
    assert (await product(client, key, c["sku"]))["status"] == "inactive"

    # The order placed before goes on: routed, its unit reserved.
    await run_outbox_inline(tenant.tenant_id)
    order = await get_order(client, key, placed["id"])
    assert order["status"] == "routed" and order["fulfilments"][0]["location"] == c["wh"], order
    assert (await levels(tenant.tenant_id))[(c["sku"], c["wh"])] == (10, 1, 0)
    refused = await client.post(f"{API}/orders", headers=bearer(key), json=order_body((c["sku"], 1, 2500)))
    assert refused.status_code == 422 and "inactive" in refused.text
    # Not for sale, so none available: a shop asking before it takes an order is told so.
    asked = (await client.get(f"{API}/availability", params={"sku": c["sku"]}, headers=bearer(key))).json()
    assert asked[0]["total_available"] == 0 and not asked[0]["deliverable"] and asked[0]["pickup_today"] == []

    # Stock held by that order can't be adjusted or counted away.
    damaged = await post_form(client, f"/app/catalog/{stored['id']}/adjust", {
        "location": _location_id(page, c["wh"]), "reason": "damage", "quantity": "10", "note": ""})
    assert damaged.status_code == 409
    assert "10 on hand, 1 reserved, so at most 9 can be removed" in text_of(damaged)
    counted = await post_form(client, f"/app/catalog/{stored['id']}/adjust", {
        "location": _location_id(page, c["wh"]), "reason": "count", "quantity": "0"})
    assert counted.status_code == 409 and "1 are reserved for orders here" in text_of(counted)
    assert (await levels(tenant.tenant_id))[(c["sku"], c["wh"])] == (10, 1, 0)

    on = await post_form(client, f"/app/catalog/{stored['id']}/status", {"status": "active"})
    assert on.status_code == 303 and (await product(client, key, c["sku"]))["status"] == "active"
    assert (await post_form(client, f"/app/catalog/{stored['id']}/status", {"status": "gone"})).status_code == 422


def _location_id(page_text: str, code: str) -> str:
    found = re.search(r'<option value="([0-9a-f-]{36})"[^>]*>' + re.escape(code) + " ", page_text)
    assert found, code
    return found.group(1)


# --- stock from the product page -------------------------------------------------------------


async def test_stock_is_received_damaged_corrected_and_counted_with_a_reason(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    await make_locations(client, key, location_body("WH-A"), location_body("ST-B", kind="store"))
    assert (await client.post(f"{API}/products", headers=bearer(key), json=product_body("TEE-1"))).status_code == 201
    await login(client, tenant.email)
    page = await client.get("/app/catalog/TEE-1")
    assert figures(page, "WH-A") == {"on_hand": 0, "reserved": 0, "safety_stock": 0, "available": 0}
    wh, store = _location_id(page.text, "WH-A"), _location_id(page.text, "ST-B")
    adjust = f"/app/catalog/{(await product(client, key, 'TEE-1'))['id']}/adjust"

    received = await post_form(client, adjust, {"location": wh, "reason": "receipt", "quantity": "12",
                                                "note": "PO-2024-17"})
    assert received.status_code == 303, received.text
    shown = await client.get(received.headers["location"])
    assert "Stock adjusted." in shown.text
    assert figures(shown, "WH-A") == {"on_hand": 12, "reserved": 0, "safety_stock": 0, "available": 12}
    assert "PO-2024-17" in shown.text  # the movement, on the product's page

    for reason, quantity in (("damage", "2"), ("adjustment", "-3"), ("return", "1"), ("count", "9")):
        done = await post_form(client, adjust, {"location": wh, "reason": reason, "quantity": quantity})
        assert done.status_code == 303, (reason, done.text)
    recount = await post_form(client, adjust, {"location": wh, "reason": "count", "quantity": "9",
                                               "note": "yearly count"})
    assert recount.status_code == 303
    ledger = await movements(client, key, "TEE-1")
    assert [(m["reason"], m["on_hand_delta"], m["reference"]) for m in reversed(ledger)] == [
        ("receipt", 12, "PO-2024-17"), ("damage", -2, None), ("adjustment", -3, None), ("return", 1, None),
        ("count", 1, None), ("count", 0, "yearly count")]
    assert {m["actor"] for m in ledger} == {tenant.email}
    assert (await levels(tenant.tenant_id))[("TEE-1", "WH-A")] == (9, 0, 0)

    # Refused, in plain words, changing nothing: not even an empty level at the store.
    before = await movement_count(tenant.tenant_id)
    too_many = await post_form(client, adjust, {"location": wh, "reason": "damage", "quantity": "50"})
    assert too_many.status_code == 409
    assert "Removing 50 would make on hand negative: only 9 on hand." in text_of(too_many)
    assert figures(too_many, "WH-A")["on_hand"] == 9
    empty_store = await post_form(client, adjust, {"location": store, "reason": "adjustment", "quantity": "-1"})
    assert empty_store.status_code == 409
    nonsense = await post_form(client, adjust, {"location": "nowhere", "reason": "stolen", "quantity": "abc",
                                                "note": "n" * 201})
    assert nonsense.status_code == 422
    text = text_of(nonsense)
    for message in ("Choose the location whose stock changed.", "Choose what happened",
                    "A note is at most 200 characters"):
        assert message in text, message
    zero = await post_form(client, adjust, {"location": wh, "reason": "adjustment", "quantity": "0"})
    assert zero.status_code == 422 and "Type the units to add (12) or to remove (-3)." in text_of(zero)
    received_negative = await post_form(client, adjust, {"location": wh, "reason": "receipt", "quantity": "-4"})
    assert received_negative.status_code == 422 and "Type how many units" in text_of(received_negative)
    assert await movement_count(tenant.tenant_id) == before
    assert ("TEE-1", "ST-B") not in await levels(tenant.tenant_id)

    # Safety stock: kept back from what is available, and in the ledger.
    safety = f"{adjust.rsplit('/', 1)[0]}/safety-stock"
    kept = await post_form(client, safety, {"safety_location": wh, "safety_stock": "4"})
    assert kept.status_code == 303 and "done=safety_stock_set" in kept.headers["location"]
    assert figures(await client.get(kept.headers["location"]), "WH-A") == {
        "on_hand": 9, "reserved": 0, "safety_stock": 4, "available": 5}
    stock = (await client.get(f"{API}/inventory", params={"sku": "TEE-1"}, headers=bearer(key))).json()
    assert stock[0]["total_available"] == 5
    assert (await movements(client, key, "TEE-1"))[0]["safety_stock_delta"] == 4
    wrong = await post_form(client, safety, {"safety_location": wh, "safety_stock": "-1"})
    assert wrong.status_code == 422 and "Type the units to keep back" in text_of(wrong)
    assert await ledger_mismatches(tenant.tenant_id) == []

    # The grid and the movements page lead to the product.
    grid = await client.get("/app/inventory")
    assert f'/app/catalog/{adjust.split("/")[3]}?location={wh}#adjust' in grid.text
    ledger_page = await client.get(f"/app/inventory/movements?product={adjust.split('/')[3]}")
    assert "±0" in ledger_page.text and "yearly count" in ledger_page.text

    # Both lists say what happened in words, newest first, never the ledger's codes.
    product_page = await client.get(f"/app/catalog/{adjust.split('/')[3]}")
    said = ["Safety stock", "Counted", "Counted", "Returned", "Correction", "Damaged or lost", "Received"]
    for shown_page, table in ((ledger_page, "<table>"), (product_page, '<table class="product-movements">')):
        body = shown_page.text.split(table, 1)[1].split("</table>", 1)[0]
        reasons = [html.unescape(cell) for cell in re.findall(r"<td>([^<]*)</td><td>[^<]*</td><td><small>", body)]
        assert reasons == said, reasons


async def test_stock_short_of_its_orders_can_still_be_received_and_counted_up(client) -> None:
    """Where on hand is already below what orders hold (a snapshot said so), units coming in and a
    count that finds more are taken; a count that finds fewer still is refused."""
    from core.db import get_database
    from inventory import ledger

    tenant = await create_tenant()
    key = tenant.api_key
    ids = await make_locations(client, key, location_body("WH-S"))
    assert (await client.post(f"{API}/products", headers=bearer(key), json=product_body("SHORT-1"))).status_code == 201
    await client.post(f"{API}/inventory/adjustments", headers=bearer(key),
                      json={"sku": "SHORT-1", "location": "WH-S", "quantity": 5, "reason": "receipt"})
    product_id = (await product(client, key, "SHORT-1"))["id"]
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        await ledger.reserve(session, tenant.tenant_id, [ledger.Line(uuid.UUID(product_id), uuid.UUID(ids["WH-S"]), 5)],
                             reference="order O-1", actor="test")
    lost = await client.post(f"{API}/inventory/adjustments", headers=bearer(key),
                             json={"sku": "SHORT-1", "location": "WH-S", "quantity": -3, "reason": "damage"})
    assert lost.status_code == 201, lost.text
    assert (await levels(tenant.tenant_id))[("SHORT-1", "WH-S")] == (2, 5, 0)

    await login(client, tenant.email)
    adjust = f"/app/catalog/{product_id}/adjust"
    came_in = await post_form(client, adjust, {"location": ids["WH-S"], "reason": "receipt", "quantity": "1"})
    assert came_in.status_code == 303, came_in.text
    counted_up = await post_form(client, adjust, {"location": ids["WH-S"], "reason": "count", "quantity": "4"})
    assert counted_up.status_code == 303, counted_up.text
    counted_down = await post_form(client, adjust, {"location": ids["WH-S"], "reason": "count", "quantity": "1"})
    assert counted_down.status_code == 409 and "5 are reserved for orders here" in text_of(counted_down)
    assert (await levels(tenant.tenant_id))[("SHORT-1", "WH-S")] == (4, 5, 0)
    assert await ledger_mismatches(tenant.tenant_id) == []


async def test_only_merchandisers_change_the_catalog_and_the_stock(client, make_client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    await make_locations(client, key, location_body("WH-R"))
    assert (await client.post(f"{API}/products", headers=bearer(key), json=product_body("ROLE-1"))).status_code == 201
    await client.post(f"{API}/inventory/adjustments", headers=bearer(key),
                      json={"sku": "ROLE-1", "location": "WH-R", "quantity": 5, "reason": "receipt"})
    await login(client, tenant.email)
    owner_page = await client.get("/app/catalog/ROLE-1")
    wh = _location_id(owner_page.text, "WH-R")
    product_id = (await product(client, key, "ROLE-1"))["id"]
    before = (await product(client, key, "ROLE-1"), await levels(tenant.tenant_id),
              await movement_count(tenant.tenant_id))

    for role, locations in (("read_only", None), ("store_associate", ["WH-R"]), ("customer_service", None)):
        member = await _join(client, make_client, tenant, role, locations)
        seen = await member.get(f"/app/catalog/{product_id}")
        assert seen.status_code == 200 and "ROLE-1" in seen.text, role
        assert "Edit product" not in seen.text and 'action="/app/catalog/' not in seen.text, role
        assert (await member.get("/app/catalog/new")).status_code == 403, role
        assert (await member.get(f"/app/catalog/{product_id}/edit")).status_code == 403, role
        for url, data in (
            ("/app/catalog/new", {"sku": "NEW-1", "name": "New", "price": "1", "attr_rows": "0"}),
            (f"/app/catalog/{product_id}/edit", {"name": "Renamed", "price": "1", "attr_rows": "0"}),
            (f"/app/catalog/{product_id}/status", {"status": "inactive"}),
            (f"/app/catalog/{product_id}/adjust", {"location": wh, "reason": "receipt", "quantity": "5"}),
            (f"/app/catalog/{product_id}/safety-stock", {"safety_location": wh, "safety_stock": "2"}),
            ("/app/catalog/import/apply", {}),
        ):
            assert (await post_form(member, url, data)).status_code == 403, (role, url)
        refused = await member.post("/app/catalog/import", headers=csrf_headers(member),
                                    files={"file": ("c.csv", b"sku,name,price\nX-1,X,1\n", "text/csv")})
        assert refused.status_code == 403, role
    assert (await product(client, key, "ROLE-1"), await levels(tenant.tenant_id),
            await movement_count(tenant.tenant_id)) == before


# --- catalog files as spreadsheets export them -----------------------------------------------


async def test_a_semicolon_windows_1252_file_with_prices_as_the_company_writes_them(client) -> None:
    tenant = await create_tenant(country="FR", currency="EUR")
    await login(client, tenant.email)
    await client.get("/app/catalog/import")
    content = ("sku;name;price;category;attr:matière\r\n"
               "CAFE-1;Café crème;59,90;Épicerie;grès\r\n"
               "THE-2;Thé vert « Sencha »;1 234,56 €;Épicerie;\r\n"
               ";;;;\r\n").encode("cp1252")
    preview = await upload(client, "catalogue.csv", content)
    assert preview.status_code == 200, preview.text
    text = text_of(preview)
    assert "catalogue.csv: 2 valid products" in text
    assert "Read as Windows-1252, columns separated by semicolons." in text
    assert "Café crème" in text and "59,90 €" in text and "1 234,56 €" in text
    assert "Importing creates 2 products and updates 0; 0 are already as in the file." in text
    applied = await post_form(client, "/app/catalog/import/apply")
    assert applied.status_code == 303
    listed = await client.get(applied.headers["location"])
    assert '<p class="notice" role="status">2 products created, 0 updated, 0 unchanged.</p>' in listed.text
    cafe, the = await product(client, tenant.api_key, "CAFE-1"), await product(client, tenant.api_key, "THE-2")
    assert (cafe["name"], cafe["price_minor"], cafe["category"], cafe["attributes"]) == (
        "Café crème", 5990, "Épicerie", {"matière": "grès"})
    assert (the["name"], the["price_minor"], the["attributes"]) == ("Thé vert « Sencha »", 123456, {})

    # The same file again: nothing to create or update, so no import is offered, nor can one be sent.
    again = await upload(client, "catalogue.csv", content)
    assert again.status_code == 200, again.text
    assert "Nothing to import: all 2 products are already in the catalog as in this file." in text_of(again)
    assert "/app/catalog/import/apply" not in again.text and "Import 2 products" not in text_of(again)
    assert (await post_form(client, "/app/catalog/import/apply")).status_code == 409
    one = await upload(client, "one.csv",
                       "sku;name;price;category;attr:matière\nCAFE-1;Café crème;59,90;Épicerie;grès\n".encode("cp1252"))
    assert "Nothing to import: the product is already in the catalog as in this file." in text_of(one)

    # Again with one change, one new product and one as it was: said so.
    content = ("sku;name;price;category;attr:matière\n"
               "CAFE-1;Café crème;62,00;Épicerie;grès\n"
               "THE-2;Thé vert « Sencha »;1234,56;Épicerie;\n"
               "CHOCO-3;Chocolat noir;4,5;Épicerie;cacao\n").encode("cp1252")
    preview = await upload(client, "catalogue.csv", content)
    assert "Importing creates 1 product and updates 1; 1 is already as in the file." in text_of(preview)
    applied = await post_form(client, "/app/catalog/import/apply")
    listed = await client.get(applied.headers["location"])
    assert "1 product created, 1 updated, 1 unchanged." in listed.text
    assert (await product(client, tenant.api_key, "CAFE-1"))["price_minor"] == 6200
    assert (await product(client, tenant.api_key, "CHOCO-3"))["price_minor"] == 450

    # A price that is no price is a row error, in the company's way of writing one.
    bad = await upload(client, "bad.csv", "sku;name;price\nX-1;Truc;douze\nX-2;Machin;-3\n".encode("cp1252"))
    assert bad.status_code == 422
    rows = re.findall(r"<tr><td>(\d+)</td><td>(\w*)</td><td>([^<]*)</td></tr>", html.unescape(bad.text))
    assert rows == [("2", "price", "'douze' is not a price: write it like 59,90."),
                    ("3", "price", "A price can't be negative.")]


async def test_tab_separated_utf8_with_a_byte_order_mark_and_utf16_files(client) -> None:
    tenant = await create_tenant(country="US", currency="USD", timezone="America/New_York")
    await login(client, tenant.email)
    await client.get("/app/catalog/import")
    content = "\ufeffSKU\tName\tPrice\tBrand\nTEE-US\tTee, heather grey\t$1,234.50\tAcme\nCAP-US\tCap\t12\t\n"
    preview = await upload(client, "export.txt", content.encode("utf-8"))
    assert preview.status_code == 200, preview.text
    assert "Read as UTF-8, columns separated by tabs." in text_of(preview)
    assert (await post_form(client, "/app/catalog/import/apply")).status_code == 303
    tee = await product(client, tenant.api_key, "TEE-US")
    assert (tee["name"], tee["price_minor"], tee["currency"], tee["brand"]) == ("Tee, heather grey", 123450,
                                                                                 "USD", "Acme")
    assert (await product(client, tenant.api_key, "CAP-US"))["price_minor"] == 1200

    # "Unicode text" as a spreadsheet saves it: UTF-16 with its byte order mark, tabs.
    unicode_text = "sku\tname\tprice_minor\r\nMUG-1\tMug “Café”\t899\r\n".encode("utf-16")
    preview = await upload(client, "unicode.txt", unicode_text)
    assert preview.status_code == 200, preview.text
    assert "Read as UTF-16, columns separated by tabs." in text_of(preview)
    assert (await post_form(client, "/app/catalog/import/apply")).status_code == 303
    mug = await product(client, tenant.api_key, "MUG-1")
    assert (mug["name"], mug["price_minor"]) == ("Mug “Café”", 899)


async def test_the_form_may_choose_the_encoding_and_the_separator(client) -> None:
    tenant = await create_tenant(country="FR", currency="EUR")
    await login(client, tenant.email)
    await client.get("/app/catalog/import")
    utf8 = "sku,name,price_minor\nCAFE-9,Café,100\n".encode()
    forced = await upload(client, "c.csv", utf8, encoding="latin-1")
    assert forced.status_code == 200 and "Read as Latin-1" in text_of(forced)
    assert "CafÃ©" in text_of(forced)  # what the person chose, shown for them to see
    as_utf8 = await upload(client, "c.csv", "sku;name;price\nCAFE-9;Café;1\n".encode("cp1252"), encoding="utf-8")
    assert as_utf8.status_code == 422 and "not UTF-8 text" in text_of(as_utf8)
    as_cp1252 = await upload(client, "c.csv", "sku,name,price\nCAFE-9,Café,1\n".encode("latin-1"),
                             encoding="cp1252", separator="semicolon")
    assert as_cp1252.status_code == 422
    assert "missing column(s): sku, name, price (or price_minor)" in text_of(as_cp1252)
    assert "columns read as separated by semicolons" in text_of(as_cp1252)
    chosen = await upload(client, "c.csv", "sku;name;price\nCAFE-9;Café;1,00\n".encode("cp1252"),
                          encoding="cp1252", separator="semicolon")
    assert chosen.status_code == 200 and 'value="semicolon" selected' in chosen.text
    assert (await post_form(client, "/app/catalog/import/apply")).status_code == 303
    assert (await product(client, tenant.api_key, "CAFE-9"))["name"] == "Café"


async def test_files_that_are_not_text_are_still_refused_whatever_their_encoding(client) -> None:
    tenant = await create_tenant()
    await login(client, tenant.email)
    await client.get("/app/catalog/import")
    nul = await upload(client, "c.csv", "sku;name;price\nX-1;Caf\x00é;1\n".encode("cp1252"))
    assert nul.status_code == 422 and "Line 2 contains a NUL character" in nul.text
    giant = await upload(client, "c.csv", b"sku;name;price\nX-1;" + b"\xe9" * 200_000 + b";1\n")
    assert giant.status_code == 422 and "Line 2" in giant.text
    old_mac = await upload(client, "c.csv", "sku;name;price\rX-1;Thé;1,50\r".encode("cp1252"))
    assert old_mac.status_code == 200 and "1 valid product" in old_mac.text
    split_price = await upload(client, "c.csv", b"sku,name,price\nX-1,Shoe,59,90\nX-2,Boot,\"59,90\"\n")
    assert split_price.status_code == 422
    assert "This row has 4 columns but the header has 3: is a value holding the separator (comma) not quoted" \
        in text_of(split_price)
    assert "1 valid product" in text_of(split_price)  # the quoted one is read as 59,90
    both = await upload(client, "c.csv", b"sku,name,price,price_minor\nX-1,A,1,100\n")
    assert both.status_code == 422 and "not both" in text_of(both)
    unknown = await upload(client, "c.csv", b"sku,name,price,colour\nX-1,A,1,red\n", encoding="ebcdic")
    assert unknown.status_code == 422 and "unknown column(s): 'colour'" in text_of(unknown)  # "ebcdic": automatic
    async_products = (await client.get(f"{API}/products", headers=bearer(tenant.api_key))).json()
    assert async_products == []
