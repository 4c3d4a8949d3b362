"""What the console and the API say about orders and their money, in the words a shop employee
reads: a cancellation that names nothing is refused, an order's figures after a partial
cancellation, the payment sentence in every state, why an order waits, what a rejection did,
which locations ship, and the manual order builder."""

from __future__ import annotations

import re
from typing import Any

from httpx import AsyncClient
from test_orders import (
    ORDERS,
    act_ok,
    by_priority,
    cancel,
    count_rows,
    get_order,
    network,
    order_body,
    problems_of,
    publish_rules,
    routed_order,
)

from factories import bearer, create_tenant, login, post_form, run_outbox_inline
from inventory_factories import API, location_body, make_locations, make_products, stock_up


def plain(html: str) -> str:
    """The page's text as a reader sees it: tags dropped, spaces (narrow, no-break) collapsed."""
    text = re.sub(r"<[^>]+>", " ", html)
    text = text.replace("\u202f", " ").replace("\u00a0", " ").replace("&amp;", "&").replace("&#39;", "'")
    return re.sub(r"\s+", " ", text)


async def post_htmx(client: AsyncClient, url: str, data: dict[str, str], **headers: str) -> Any:
    """A form post as htmx sends it (``HX-Target``: the part of the page it swaps)."""
    from factories import csrf_headers

    sent = {"HX-Request": "true", **{k.replace("_", "-"): v for k, v in headers.items()}}
    return await client.post(url, data=data, headers={**csrf_headers(client), **sent})


async def console(client: AsyncClient, tenant: Any) -> AsyncClient:
    await login(client, tenant.email)
    return client


# --- which locations ship ------------------------------------------------------------------------


async def test_a_location_saved_with_ships_to_customers_unticked_is_not_reported_as_shipping(client) -> None:
    tenant = await create_tenant()
    await console(client, tenant)
    # The location form as a person fills it: a store with click & collect and ship-from-store
    # ticked, "Ships to customers" left unticked (an unticked checkbox sends nothing).
    saved = await post_form(client, "/app/locations/new", {
        "code": "ST-NORD", "name": "Nord store", "kind": "store", "country": "FR", "timezone": "Europe/Paris",
        "click_and_collect": "on", "ship_from_store": "on", "priority": "20"})
    assert saved.status_code == 303, saved.text
    await make_locations(client, tenant.api_key, location_body("WH-SUD", priority=10))
    await make_products(client, tenant.api_key, "SKU-SHIP")
    await stock_up(client, tenant.api_key, {("SKU-SHIP", "ST-NORD"): 4, ("SKU-SHIP", "WH-SUD"): 2})

    stored = {loc["code"]: loc for loc in (await client.get(f"{API}/locations", headers=bearer(tenant.api_key))).json()}
    assert stored["ST-NORD"]["ships_to_customers"] is False

    [sku] = (await client.get(f"{API}/availability", params={"sku": "SKU-SHIP"},
                              headers=bearer(tenant.api_key))).json()
    listed = {loc["location"]: loc for loc in sku["locations"]}
    # What availability says of each location is what its form says.
    assert listed["ST-NORD"]["ships_to_customers"] is False
    assert listed["ST-NORD"]["ship_from_store"] is True
    assert listed["WH-SUD"]["ships_to_customers"] is True and listed["WH-SUD"]["ship_from_store"] is False
    assert sku["deliverable"] is True and sku["total_available"] == 6


# --- a cancellation that names nothing -------------------------------------------------------------


async def test_cancelling_with_nothing_selected_is_refused_and_writes_nothing(client, owner_engine) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key)
    await publish_rules(client, key, by_priority())
    order = await routed_order(client, tenant, order_body((c["sku"], 2, 2500)))
    events_before = len(order["events"])

    refused = await cancel(client, key, order["id"], lines=[], reason="nothing")
    assert problems_of(refused) == {"lines": "Choose what to cancel: the whole order, or a number of units of at "
                                             "least one line."}

    await console(client, tenant)
    # The browser asks for a confirmation only once something is chosen (app.js reads the mark);
    # without JavaScript, or with nothing chosen, the server's answer says what to choose.
    shown = await client.get(f"/app/orders/{order['id']}")
    form = re.search(r'<form method="post" action="/app/orders/[^"]+/cancel"[^>]*>', shown.text)
    assert form and f'data-confirm="Cancel these units of order {order["number"]}?"' in form.group(0)
    assert "data-confirm-if-chosen" in form.group(0)
    page = await post_form(client, f"/app/orders/{order['id']}/cancel",
                           {"cancel_line_1": "0", "reason": "nothing"})
    assert page.status_code == 422
    text = plain(page.text)
    # Said next to the selection, the cancel form open; no notice of a cancellation or a refund.
    assert re.search(r'<details id="cancel-order" open>', page.text)
    assert 'id="lines-error"' in page.text and "Choose what to cancel" in text
    assert 'class="notice"' not in page.text and "refund is recorded" not in text

    after = await get_order(client, key, order["id"])
    assert after["status"] == "routed" and len(after["events"]) == events_before
    assert [line["cancelled"] for line in after["lines"]] == [0]
    assert await count_rows(owner_engine, "refunds", tenant.tenant_id) == 0


# --- customer email ------------------------------------------------------------------------------


async def test_the_api_refuses_a_malformed_customer_email_in_plain_words(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key)
    refused = await client.post(ORDERS, json=order_body((c["sku"], 1, 2500), email="marie@@example"),
                                headers=bearer(key))
    problems = problems_of(refused)
    assert list(problems) == ["customer.email"]
    assert problems["customer.email"].startswith("This is not a valid email address")
    assert "regex" not in problems["customer.email"].lower()


# --- the money of an order after a partial cancellation ------------------------------------------


def money_table(html: str) -> dict[str, list[str]]:
    """The order page's money table: row heading -> [Original, Now] as shown."""
    table = re.search(r'<table[^>]*id="order-money".*?</table>', html, re.S)
    assert table, "the order page shows its money"
    rows: dict[str, list[str]] = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table.group(0), re.S):
        cells = [plain(cell).strip() for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
        if cells and cells[0]:
            rows[cells[0]] = cells[1:]
    return rows


async def test_after_a_partial_cancellation_the_order_shows_what_it_comes_to_now(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"wh": 3}, "sku2": {"wh2": 1}})
    await publish_rules(client, key, by_priority(types=("warehouse",)))
    # 3 at 25,00 + 1 at 40,00 = 115,00, less 10,00 off the order, plus 4,90 shipping: 109,90.
    body = order_body((c["sku"], 3, 2500), (c["sku2"], 1, 4000), shipping=490, discount_minor=1000)
    body["total_minor"] = body["payment"]["authorized_minor"] = 10990
    order = await routed_order(client, tenant, body)
    by_location = {f["location"]: f for f in order["fulfilments"]}
    # The coat leaves first: the whole payment is captured with it.
    await act_ok(client, key, by_location[c["wh2"]]["id"], "accept", "pick", "pack", "ship")
    response = await cancel(client, key, order["id"], lines=[{"line_no": 1, "quantity": 2}], reason="Too many")
    assert response.status_code == 200, response.text
    after = response.json()
    # Two of three shoes, at what the customer paid for them (their share of the discount off):
    # 75,00 - 6,52 = 68,48 for three, 45,65 for two.
    assert (after["captured_minor"], after["refunded_minor"]) == (10990, 4565)

    await console(client, tenant)
    page = await client.get(f"/app/orders/{order['id']}")
    assert page.status_code == 200
    assert money_table(page.text) == {
        "Lines": ["115,00 €", "65,00 €"],
        "Discount": ["\u221210,00 €", "\u22125,65 €"],
        "Shipping": ["4,90 €", "4,90 €"],
        "Total": ["109,90 €", "64,25 €"],
        "Authorised": ["109,90 €", ""],
        "Captured": ["", "109,90 €"],
        "Refunded": ["", "45,65 €"],
        "Nothing owed": ["", "0,00 €"],
    }
    text = plain(page.text)
    assert "now 64,25 € (was 109,90 €)" in text
    assert "109,90 € captured, 45,65 € refunded: the customer has paid 64,25 €." in text


async def test_units_cancelled_before_capture_leave_less_to_capture(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key)
    await publish_rules(client, key, by_priority())
    order = await routed_order(client, tenant, order_body((c["sku"], 2, 2500), (c["sku2"], 1, 4000), shipping=490))
    await console(client, tenant)
    done = await post_form(client, f"/app/orders/{order['id']}/cancel", {"cancel_line_2": "1", "reason": "Gift"})
    assert done.status_code == 303
    page = await client.get(done.headers["location"])
    text = plain(page.text)
    assert "Units cancelled: their stock is released. Nothing to refund: no payment was captured for them." in text
    assert money_table(page.text)["Total"] == ["94,90 €", "54,90 €"]
    assert money_table(page.text)["To capture"] == ["", "54,90 €"]
    assert "94,90 € authorised by the customer; 54,90 € will be captured when the goods leave." in text
    timeline = plain(re.search(r'<ol class="order-timeline".*?</ol>', page.text, re.S).group(0))
    assert "Units cancelled: 1 of line 2" in timeline and "Refund recorded" not in timeline


# --- the payment sentence in every state ---------------------------------------------------------


def payment_words(html: str) -> str:
    found = re.search(r'<p id="payment-words">(.*?)</p>', html, re.S)
    assert found, "the order page says how its payment stands"
    return plain(found.group(1)).strip()


async def set_payment(owner_engine: Any, tenant_id: Any, order_id: str, **columns: Any) -> None:
    """A payment state no console action reaches alone (a Stripe failure, a full refund after capture)."""
    from sqlalchemy import text

    assignments = ", ".join(f"{name} = :{name}" for name in columns)
    async with owner_engine.connect() as conn, conn.begin():
        await conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant_id)})
        await conn.execute(text(f"UPDATE orders SET {assignments} WHERE tenant_id = :t AND id = :o"),
                           {"t": tenant_id, "o": order_id, **columns})


async def test_the_payment_sentence_is_true_in_every_state(client, owner_engine) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"wh": 50}})
    await publish_rules(client, key, by_priority(types=("warehouse",)))

    async def placed(**options: Any) -> dict[str, Any]:
        return await routed_order(client, tenant, order_body((c["sku"], 2, 2500), **options))

    unpaid, authorised, shipped, partly, full, cancelled, failed = [
        await placed(paid=False), await placed(), await placed(), await placed(), await placed(), await placed(),
        await placed()]
    for order in (shipped, partly):
        await act_ok(client, key, order["fulfilments"][0]["id"], "accept", "pick", "pack", "ship")
    assert (await cancel(client, key, cancelled["id"], reason="Changed her mind")).status_code == 200
    await set_payment(owner_engine, tenant.tenant_id, partly["id"], refunded_minor=1000,
                      payment_status="partially_refunded")
    await set_payment(owner_engine, tenant.tenant_id, full["id"], captured_minor=5000, refunded_minor=5000,
                      payment_status="refunded")
    await set_payment(owner_engine, tenant.tenant_id, failed["id"], payment_status="capture_failed")

    await console(client, tenant)
    said = {name: payment_words((await client.get(f"/app/orders/{order['id']}")).text) for name, order in (
        ("unpaid", unpaid), ("authorised", authorised), ("shipped", shipped), ("partly", partly), ("full", full),
        ("cancelled", cancelled), ("failed", failed))}
    assert said == {
        "unpaid": "No payment is recorded for this order: the customer owes 50,00 €.",
        "authorised": "50,00 € authorised by the customer; 50,00 € will be captured when the goods leave.",
        "shipped": "50,00 € captured.",
        "partly": "50,00 € captured, 10,00 € refunded: the customer has paid 40,00 €.",
        "full": "50,00 € captured and refunded in full.",
        "cancelled": "Nothing was charged: the order was cancelled before its payment of 50,00 € was captured, so "
                     "there is nothing to refund.",
        "failed": "Capturing 50,00 € failed: it is tried again automatically, and customer service is following up.",
    }
    # Never a word its state contradicts.
    for name in ("unpaid", "cancelled"):
        assert "refunded" not in said[name] and "will be captured" not in said[name]
    assert "authorised" not in said["cancelled"].replace("authorised by", "")
    for name in ("unpaid", "authorised", "cancelled", "failed"):
        assert " captured." not in said[name] and "refunded" not in said[name]


# --- why an order waits, and what a rejection did --------------------------------------------------


async def test_an_order_on_hold_says_why_in_plain_words_where_it_is_listed(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"wh": 10, "wh2": 5}})
    await publish_rules(client, key, by_priority("Ask customer service", fallback=("split", "hold")))
    # Two lines of the same bag: 500 wanted, 15 in the whole network.
    held = await routed_order(client, tenant, order_body((c["sku"], 300, 2500), (c["sku"], 200, 2500)))
    assert held["status"] == "on_hold"
    assert held["hold_reason"].startswith(f"Not enough stock: 485 units of {c['sku']} missing.")
    # The same, for programs, beside the routing trace.
    assert held["routing"]["missing"] == [{"sku": c["sku"], "units": 485}]
    assert held["routing"]["missing_where"] == "network"

    await console(client, tenant)
    listing = await client.get("/app/orders")
    row = re.search(rf'<tr data-order="{held["number"]}">.*?</tr>', listing.text, re.S)
    assert row, listing.text
    assert f"Not enough stock: 485 units of {c['sku']} missing" in plain(row.group(0))

    # The order page says it once, above the task to decide, and explains no location: none was chosen.
    page = await client.get(f"/app/orders/{held['id']}")
    above_timeline = plain(page.text.split('<ol class="order-timeline"')[0])
    assert above_timeline.count(f"485 units of {c['sku']} missing") == 1
    assert f"On hold: Not enough stock: 485 units of {c['sku']} missing" in above_timeline
    task = re.search(r'<article class="service-task".*?</article>', page.text, re.S)
    assert task and "Order on hold" in plain(task.group(0)) and "Resolve task" in plain(task.group(0))
    assert "Why this location" not in page.text and "why-location" not in page.text


async def test_the_timeline_says_a_rejected_order_is_routed_again(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"wh": 5, "wh2": 5}})
    await publish_rules(client, key, by_priority(types=("warehouse",)))
    order = await routed_order(client, tenant, order_body((c["sku"], 2, 2500)))
    await act_ok(client, key, order["fulfilments"][0]["id"], "reject", reason="Item damaged")
    await run_outbox_inline(tenant.tenant_id)

    await console(client, tenant)
    page = await client.get(f"/app/orders/{order['id']}")
    entries = [plain(entry).strip() for entry in re.findall(r"<li>(.*?)</li>",
                                                            re.search(r'<ol class="order-timeline".*?</ol>',
                                                                      page.text, re.S).group(0), re.S)]
    titles = [re.sub(r"^\S+ \S+ ", "", entry).split(" by ")[0] for entry in reversed(entries)]
    assert titles == ["Order received", f"Fulfilment created at {c['wh']}", "Routed",
                      f"Fulfilment rejected at {c['wh']}", "Routing again after a rejection",
                      f"Fulfilment created at {c['wh2']}", "Routed"]
    again = next(entry for entry in entries if "Routing again after a rejection" in entry)
    assert f"{c['wh']} rejected its part: Item damaged; routing again without it" in again


# --- the manual order builder ---------------------------------------------------------------------


def hidden_fields(html: str) -> dict[str, str]:
    import html as markup

    return {markup.unescape(name): markup.unescape(value)
            for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html)}


def line_fields(html: str) -> dict[str, str]:
    """The builder's line inputs as a browser would send them back."""
    import html as markup

    fields = {}
    for tag in re.findall(r"<input[^>]*>", html):
        name = re.search(r'name="(line\.\d+\.\w+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name:
            fields[name.group(1)] = markup.unescape(value.group(1)) if value else ""
    return fields


async def builder_shop(client: AsyncClient, tenant: Any) -> dict[str, str]:
    key = tenant.api_key
    c = await network(client, key)
    response = await client.post(f"{API}/products/import", headers=bearer(key), json={"products": [
        {"sku": "BAG-TOTE", "name": "Tote Bag Large", "price_minor": 3500},
        {"sku": "BAG-MINI", "name": "Mini bag", "price_minor": 1990},
        {"sku": "BAG-OLD", "name": "Old tote bag", "price_minor": 1000, "status": "inactive"},
    ]})
    assert response.status_code == 200, response.text
    await publish_rules(client, key, by_priority())
    return c


CUSTOMER = {"channel": "phone", "email": "marie@example.test", "name": "Marie Martin", "phone": "+33600000000",
            "mode": "ship", "line1": "3 rue des Lilas", "postcode": "69001", "city": "Lyon", "country": "FR",
            "shipping_fee": "4,90", "paid": "on"}


async def test_the_order_builder_finds_products_adds_removes_reviews_and_places_once(client, owner_engine) -> None:
    tenant = await create_tenant()
    await builder_shop(client, tenant)
    await console(client, tenant)
    assert (await client.get("/app/orders/new")).status_code == 200

    # Search by a name in lower case: the active products, not the withdrawn one.
    found = await client.get("/app/orders/new/products", params={"q": "tote bag"}, headers={"HX-Request": "true"})
    assert found.status_code == 200
    assert 'value="BAG-TOTE"' in found.text and "Tote Bag Large" in found.text and "BAG-OLD" not in found.text
    by_sku = await client.get("/app/orders/new/products", params={"q": "bag-mini"})
    assert 'value="BAG-MINI"' in by_sku.text and "BAG-TOTE" not in by_sku.text

    # Adding two products: each line at its catalog price, the total counted by the server.
    lines = await post_htmx(client, "/app/orders/new/lines", {"add": "BAG-TOTE"}, HX_Target="order-lines")
    assert lines.status_code == 200
    assert line_fields(lines.text) == {"line.0.sku": "BAG-TOTE", "line.0.quantity": "1", "line.0.price": "35,00"}
    lines = await post_form(client, "/app/orders/new/lines", {**line_fields(lines.text), "add": "BAG-MINI"})
    assert line_fields(lines.text) == {"line.0.sku": "BAG-TOTE", "line.0.quantity": "1", "line.0.price": "35,00",
                                       "line.1.sku": "BAG-MINI", "line.1.quantity": "1", "line.1.price": "19,90"}
    assert "total 54,90 €" in plain(lines.text)
    # The same product again: one more unit on its line.
    lines = await post_form(client, "/app/orders/new/lines", {**line_fields(lines.text), "add": "BAG-MINI"})
    assert line_fields(lines.text)["line.1.quantity"] == "2"
    # A price typed the French way, and the total of it alone (the htmx answer to a change).
    changed = {**line_fields(lines.text), "line.0.price": "59,00", "shipping_fee": "4,90"}
    total = await post_htmx(client, "/app/orders/new/lines", changed, HX_Target="order-total")
    assert 'id="order-total"' in total.text and "total 103,70 €" in plain(total.text)
    # Removing the mini bags.
    lines = await post_form(client, "/app/orders/new/lines", {**changed, "remove": "1"})
    assert line_fields(lines.text) == {"line.0.sku": "BAG-TOTE", "line.0.quantity": "1", "line.0.price": "59,00"}
    assert "total 63,90 €" in plain(lines.text)

    # Review: lines, total and customer, nothing placed yet.
    review = await post_form(client, "/app/orders/new", {**CUSTOMER, **line_fields(lines.text), "action": "review"})
    assert review.status_code == 200, review.text
    text = plain(review.text)
    assert "Review the order" in text and "Marie Martin" in text and "marie@example.test" in text
    assert re.search(r'id="review-total"><strong>63,90', review.text.replace("\xa0", " "))
    assert "Place order · 63,90 €" in text
    assert await count_rows(owner_engine, "orders", tenant.tenant_id) == 0

    # Placing it, twice (a double click): one order, with those lines and prices.
    confirm = {**hidden_fields(review.text), "action": "place"}
    assert len(confirm["order_token"]) == 32
    placed = await post_form(client, "/app/orders/new", confirm)
    assert placed.status_code == 303, placed.text
    again = await post_form(client, "/app/orders/new", confirm)
    assert again.status_code == 303 and again.headers["location"] == placed.headers["location"]
    assert await count_rows(owner_engine, "orders", tenant.tenant_id) == 1
    order_id = placed.headers["location"].split("/app/orders/")[1].split("?")[0]
    order = await get_order(client, tenant.api_key, order_id)
    assert [(line["sku"], line["quantity"], line["unit_price_minor"]) for line in order["lines"]] == [
        ("BAG-TOTE", 1, 5900)]
    assert (order["shipping_fee_minor"], order["total_minor"], order["channel"]) == (490, 6390, "phone")
    assert (order["customer_email"], order["payment_status"], order["authorized_minor"]) == (
        "marie@example.test", "authorized", 6390)


async def test_the_order_builder_reports_every_problem_at_once_next_to_its_field(client, owner_engine) -> None:
    tenant = await create_tenant()
    await builder_shop(client, tenant)
    await console(client, tenant)
    refused = await post_form(client, "/app/orders/new", {
        **CUSTOMER, "email": "marie@@example", "line1": "", "shipping_fee": "4,9O",
        "line.0.sku": "BAG-TOTE", "line.0.quantity": "0", "line.0.price": "59,00",
        "line.1.sku": "BAG-MINI", "line.1.quantity": "1", "line.1.price": "dix euros",
        "line.2.sku": "BAG-OLD", "line.2.quantity": "1", "line.2.price": "10,00", "action": "review"})
    assert refused.status_code == 422
    errors = dict(re.findall(r'<small id="([^"]+)-error" class="field-error">([^<]*)</small>', refused.text))
    assert set(errors) == {"email", "line1", "shipping_fee", "line.0.quantity", "line.1.price", "line.2.sku"}
    assert errors["email"].startswith("This is not a valid email address")
    assert errors["line1"] == "Home delivery needs the street."
    assert errors["line.1.price"].startswith("Line 2:") and "is not an amount" in errors["line.1.price"]
    assert "not for sale" in errors["line.2.sku"]
    # What was typed stays, for the person to correct.
    assert line_fields(refused.text)["line.1.price"] == "dix euros"
    assert await count_rows(owner_engine, "orders", tenant.tenant_id) == 0

    nothing = await post_form(client, "/app/orders/new", {**CUSTOMER, "action": "review"})
    assert nothing.status_code == 422
    assert "Add at least one product" in plain(nothing.text)


async def test_the_order_builder_works_without_javascript(client, owner_engine) -> None:
    """Every step is a plain form post answered with the whole page, what was typed kept."""
    tenant = await create_tenant()
    await builder_shop(client, tenant)
    await console(client, tenant)
    searched = await post_form(client, "/app/orders/new", {**CUSTOMER, "q": "MINI", "action": "search"})
    assert searched.status_code == 200
    assert 'name="add" value="BAG-MINI"' in searched.text and 'value="marie@example.test"' in searched.text
    added = await post_form(client, "/app/orders/new", {**CUSTOMER, "q": "MINI", "add": "BAG-MINI"})
    assert line_fields(added.text) == {"line.0.sku": "BAG-MINI", "line.0.quantity": "1", "line.0.price": "19,90"}
    assert "total 24,80 €" in plain(added.text)  # with the 4,90 shipping fee
    updated = await post_form(client, "/app/orders/new", {**CUSTOMER, **line_fields(added.text),
                                                          "line.0.quantity": "3", "action": "update"})
    assert "total 64,60 €" in plain(updated.text)
    removed = await post_form(client, "/app/orders/new", {**CUSTOMER, **line_fields(updated.text), "remove": "0"})
    assert line_fields(removed.text) == {} and "No lines yet" in plain(removed.text)
    assert await count_rows(owner_engine, "orders", tenant.tenant_id) == 0
