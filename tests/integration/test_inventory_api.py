"""Issue 4 through the JSON API: locations, catalog, adjustments, safety stock, availability,
and one tenant never seeing another's."""

from __future__ import annotations

import uuid

from factories import bearer, create_tenant
from inventory_factories import (
    API,
    adjust,
    levels,
    line_for,
    location_body,
    make_locations,
    make_products,
    movement_count,
    noon_timezone,
    product_body,
    reserve,
    stock_up,
)

# --- locations -------------------------------------------------------------------------------


async def test_location_is_created_listed_read_and_updated(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    body = location_body(
        "PAR-1", name="Paris Rivoli", kind="store", latitude=48.8606, longitude=2.3376,
        opening_hours={"mon": [["09:00", "19:00"]], "sat": [["10:00", "13:00"], ["14:00", "18:00"]]},
        ships_to_customers=False, click_and_collect=True, ship_from_store=True, accepts_returns=True,
        daily_capacity=40, priority=5, tags=["flagship", "paris"],
    )
    created = await client.post(f"{API}/locations", json=body, headers=bearer(key))
    assert created.status_code == 201, created.text
    out = created.json()
    for field, value in body.items():
        assert out[field] == value, field
    uuid.UUID(out["id"])
    assert out["status"] == "active"

    await make_locations(client, key, location_body("WH-LYON", name="Lyon DC", city="Lyon"))
    listed = (await client.get(f"{API}/locations", headers=bearer(key))).json()
    assert sorted(loc["code"] for loc in listed) == ["PAR-1", "WH-LYON"]

    read = await client.get(f"{API}/locations/{out['id']}", headers=bearer(key))
    assert read.status_code == 200 and read.json() == out

    changed = {**body, "name": "Paris Rivoli (works)", "status": "paused", "daily_capacity": 0,
               "country": "fr", "timezone": "Europe/Berlin"}
    updated = await client.put(f"{API}/locations/{out['id']}", json=changed, headers=bearer(key))
    assert updated.status_code == 200, updated.text
    assert updated.json()["name"] == "Paris Rivoli (works)"
    assert updated.json()["status"] == "paused"
    assert updated.json()["daily_capacity"] == 0
    assert updated.json()["country"] == "FR"
    assert updated.json()["timezone"] == "Europe/Berlin"
    assert updated.json()["id"] == out["id"]
    again = (await client.get(f"{API}/locations/{out['id']}", headers=bearer(key))).json()
    assert again["status"] == "paused" and again["name"] == "Paris Rivoli (works)"
    assert len((await client.get(f"{API}/locations", headers=bearer(key))).json()) == 2


async def test_location_validation_errors_name_the_field_and_change_nothing(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key

    async def errors_of(response) -> dict[str, str]:
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        return {e["field"]: e["message"] for e in response.json()["errors"]}

    bad_zone = await client.post(f"{API}/locations", json=location_body("X1", timezone="Mars/Olympus_Mons"),
                                 headers=bearer(key))
    fields = await errors_of(bad_zone)
    assert "timezone" in fields and "Mars/Olympus_Mons" in fields["timezone"]

    bad_country = await client.post(f"{API}/locations", json=location_body("X2", country="XX"), headers=bearer(key))
    assert "country" in await errors_of(bad_country)

    half_coordinates = await client.post(f"{API}/locations", json=location_body("X3", latitude=48.8),
                                         headers=bearer(key))
    assert "latitude" in await errors_of(half_coordinates)

    bad_hours = await client.post(f"{API}/locations", headers=bearer(key),
                                  json=location_body("X4", opening_hours={"mon": [["19:00", "09:00"]]}))
    assert "opening_hours" in await errors_of(bad_hours)

    bad_day = await client.post(f"{API}/locations", headers=bearer(key),
                                json=location_body("X5", opening_hours={"funday": [["09:00", "17:00"]]}))
    assert "opening_hours" in await errors_of(bad_day)

    bad_kind = await client.post(f"{API}/locations", json=location_body("X6", kind="spaceport"), headers=bearer(key))
    assert bad_kind.status_code == 422

    assert (await client.get(f"{API}/locations", headers=bearer(key))).json() == []

    ids = await make_locations(client, key, location_body("WH1"))
    duplicate = await client.post(f"{API}/locations", json=location_body("WH1", name="Another"), headers=bearer(key))
    assert "code" in await errors_of(duplicate)

    bad_update = await client.put(f"{API}/locations/{ids['WH1']}", json=location_body("WH1", timezone="Nowhere/Land"),
                                  headers=bearer(key))
    assert "timezone" in await errors_of(bad_update)
    still = (await client.get(f"{API}/locations/{ids['WH1']}", headers=bearer(key))).json()
    assert still["timezone"] == "Europe/Paris" and still["name"] == "Location WH1"
    assert len((await client.get(f"{API}/locations", headers=bearer(key))).json()) == 1


# --- catalog ---------------------------------------------------------------------------------


async def test_product_is_created_with_price_in_minor_units_and_tenant_currency(client) -> None:
    tenant = await create_tenant()
    created = await client.post(f"{API}/products", json=product_body("SHOE-1", price_minor=8990),
                                headers=bearer(tenant.api_key))
    assert created.status_code == 201, created.text
    out = created.json()
    assert out["sku"] == "SHOE-1" and out["price_minor"] == 8990 and out["currency"] == "EUR"
    assert out["category"] == "shoes" and out["brand"] == "Acme" and out["weight_grams"] == 450
    assert out["attributes"] == {"colour": "red"} and out["status"] == "active"
    read = await client.get(f"{API}/products/{out['id']}", headers=bearer(tenant.api_key))
    assert read.json() == out

    negative = await client.post(f"{API}/products", json=product_body("SHOE-2", price_minor=-1),
                                 headers=bearer(tenant.api_key))
    assert negative.status_code == 422
    bad_sku = await client.post(f"{API}/products", json=product_body("has space"), headers=bearer(tenant.api_key))
    assert bad_sku.status_code == 422
    listed = (await client.get(f"{API}/products", headers=bearer(tenant.api_key))).json()
    assert [p["sku"] for p in listed] == ["SHOE-1"]


async def test_catalog_import_creates_and_updates_and_search_filters(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    first = await client.post(f"{API}/products/import", headers=bearer(key), json={"products": [
        product_body("TSHIRT-S", name="T-shirt small", category="tops", price_minor=1500),
        product_body("TSHIRT-M", name="T-shirt medium", category="tops", price_minor=1500),
        product_body("BOOT-42", name="Hiking boot", category="shoes", brand="Montagne", price_minor=12900),
    ]})
    assert first.status_code == 200, first.text
    assert first.json() == {"created": 3, "updated": 0}

    second = await client.post(f"{API}/products/import", headers=bearer(key), json={"products": [
        product_body("TSHIRT-S", name="T-shirt small", category="tops", price_minor=1299),
        product_body("CAP-1", name="Cap", category="hats", price_minor=900, currency="usd"),
    ]})
    assert second.json() == {"created": 1, "updated": 1}

    everything = (await client.get(f"{API}/products", headers=bearer(key))).json()
    assert [p["sku"] for p in everything] == ["BOOT-42", "CAP-1", "TSHIRT-M", "TSHIRT-S"]
    by_sku = {p["sku"]: p for p in everything}
    assert by_sku["TSHIRT-S"]["price_minor"] == 1299
    assert by_sku["CAP-1"]["currency"] == "USD"
    tops = (await client.get(f"{API}/products", params={"category": "tops"}, headers=bearer(key))).json()
    assert [p["sku"] for p in tops] == ["TSHIRT-M", "TSHIRT-S"]
    search = (await client.get(f"{API}/products", params={"q": "montagne"}, headers=bearer(key))).json()
    assert [p["sku"] for p in search] == ["BOOT-42"]
    search = (await client.get(f"{API}/products", params={"q": "shirt", "category": "tops"},
                               headers=bearer(key))).json()
    assert len(search) == 2


async def test_catalog_import_with_a_duplicate_sku_is_refused_whole(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    await make_products(client, key, "KEEP-1")
    response = await client.post(f"{API}/products/import", headers=bearer(key), json={"products": [
        product_body("NEW-1"), product_body("KEEP-1", price_minor=1), product_body("NEW-1", name="Again"),
    ]})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["errors"] and any("row 3" in e["field"] and "NEW-1" in e["message"] for e in problem["errors"])
    assert "nothing was changed" in problem["detail"]
    listed = (await client.get(f"{API}/products", headers=bearer(key))).json()
    assert [(p["sku"], p["price_minor"]) for p in listed] == [("KEEP-1", 1999)]


async def test_catalog_import_lists_every_bad_row_and_changes_nothing(client) -> None:
    """Two bad rows (negative price on row 2, malformed SKU on row 3): both are reported by row."""
    tenant = await create_tenant()
    key = tenant.api_key
    await make_products(client, key, "KEEP-1")
    response = await client.post(f"{API}/products/import", headers=bearer(key), json={"products": [
        product_body("OK-1"), product_body("BAD-PRICE", price_minor=-5), product_body("bad sku!"),
        product_body("KEEP-1", price_minor=1),
    ]})
    assert response.status_code == 422, response.text
    problem = response.json()
    text = " ".join(f"{e['field']} {e['message']}" for e in problem.get("errors", []))
    assert "price_minor" in text and "sku" in text, problem
    assert len(problem["errors"]) == 2, problem
    listed = (await client.get(f"{API}/products", headers=bearer(key))).json()
    assert [(p["sku"], p["price_minor"]) for p in listed] == [("KEEP-1", 1999)]


def test_catalog_csv_duplicate_is_reported_on_its_file_row() -> None:
    """CSV catalogs (console upload) report errors by file line (header = line 1)."""
    from inventory.catalog import parse_catalog

    content = (b"sku,name,price_minor\n"
               b"A-1,First,100\n"       # line 2
               b"B-1,Second,abc\n"      # line 3: not a number
               b"C-1,Third,300\n"       # line 4
               b"A-1,First again,100\n")  # line 5: duplicate of line 2
    parsed = parse_catalog(content, "csv")
    assert sorted((e.row, e.column) for e in parsed.errors) == [(3, "price_minor"), (5, "sku")]


# --- adjustments, safety stock, ledger via the API -------------------------------------------


async def test_adjustments_move_stock_and_refuse_to_go_negative_with_the_current_figure(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    await make_locations(client, key, location_body("WH1"))
    await make_products(client, key, "SKU-A")

    received = await adjust(client, key, "SKU-A", "WH1", 10, reason="receipt")
    assert received.status_code == 201, received.text
    assert received.json() == {"location": "WH1", "on_hand": 10, "reserved": 0, "safety_stock": 0, "available": 10}
    damaged = await adjust(client, key, "SKU-A", "WH1", -3, reason="damage")
    assert damaged.status_code == 201
    assert damaged.json()["on_hand"] == 7

    refused = await adjust(client, key, "SKU-A", "WH1", -8, reason="adjustment")
    assert refused.status_code == 409
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "7" in refused.json()["detail"]
    assert "only 7 on hand" in refused.json()["detail"]
    assert await levels(tenant.tenant_id) == {("SKU-A", "WH1"): (7, 0, 0)}

    moves = (await client.get(f"{API}/inventory/movements", params={"sku": "SKU-A", "location": "WH1"},
                              headers=bearer(key))).json()
    assert [(m["on_hand_delta"], m["reserved_delta"], m["reason"]) for m in moves] == [
        (-3, 0, "damage"), (10, 0, "receipt")]
    assert {m["sku"] for m in moves} == {"SKU-A"} and {m["location"] for m in moves} == {"WH1"}
    assert sum(m["on_hand_delta"] for m in moves) == 7

    assert (await adjust(client, key, "NOPE", "WH1", 1)).status_code == 404
    assert (await adjust(client, key, "SKU-A", "NOWHERE", 1)).status_code == 404
    assert (await adjust(client, key, "SKU-A", "WH1", 1, reason="theft")).status_code == 422
    assert await movement_count(tenant.tenant_id) == 2


async def test_refused_adjustment_on_a_never_stocked_sku_leaves_no_level(client) -> None:
    tenant = await create_tenant()
    await make_locations(client, tenant.api_key, location_body("WH1"))
    await make_products(client, tenant.api_key, "SKU-A")
    refused = await adjust(client, tenant.api_key, "SKU-A", "WH1", -1)
    assert refused.status_code == 409
    assert "only 0 on hand" in refused.json()["detail"]
    assert await levels(tenant.tenant_id) == {}
    assert await movement_count(tenant.tenant_id) == 0


async def test_safety_stock_lowers_available_and_levels_report_per_location_and_total(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    await make_locations(client, key, location_body("WH1"), location_body("WH2"))
    await make_products(client, key, "SKU-A", "SKU-B", "SKU-C")
    await stock_up(client, key, {("SKU-A", "WH1"): 10, ("SKU-A", "WH2"): 4, ("SKU-B", "WH2"): 2})

    safety = await client.put(f"{API}/inventory/safety-stock", headers=bearer(key),
                              json={"sku": "SKU-A", "location": "WH1", "safety_stock": 3})
    assert safety.status_code == 200, safety.text
    assert safety.json() == {"location": "WH1", "on_hand": 10, "reserved": 0, "safety_stock": 3, "available": 7}
    assert await reserve(tenant.tenant_id, await line_for(tenant.tenant_id, "SKU-A", "WH1", 2))

    negative = await client.put(f"{API}/inventory/safety-stock", headers=bearer(key),
                                json={"sku": "SKU-A", "location": "WH1", "safety_stock": -1})
    assert negative.status_code == 422

    stock = (await client.get(f"{API}/inventory", params=[("sku", "SKU-A"), ("sku", "SKU-B"), ("sku", "SKU-C")],
                              headers=bearer(key))).json()
    assert stock == [
        {"sku": "SKU-A", "total_available": 5 + 4, "levels": [
            {"location": "WH1", "on_hand": 10, "reserved": 2, "safety_stock": 3, "available": 5},
            {"location": "WH2", "on_hand": 4, "reserved": 0, "safety_stock": 0, "available": 4},
        ]},
        {"sku": "SKU-B", "total_available": 2, "levels": [
            {"location": "WH2", "on_hand": 2, "reserved": 0, "safety_stock": 0, "available": 2},
        ]},
        {"sku": "SKU-C", "total_available": 0, "levels": []},
    ]
    # Safety stock is not a movement: on_hand and reserved did not change, so the ledger didn't either.
    assert await movement_count(tenant.tenant_id) == 5  # the safety stock change is in the ledger too


# --- availability ----------------------------------------------------------------------------


async def test_availability_per_location_total_safety_stock_and_pickup_today(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    zone, today = noon_timezone()
    await make_locations(
        client, key,
        location_body("WH-PARIS", latitude=48.8566, longitude=2.3522, priority=1),
        location_body("ST-LYON", kind="store", ships_to_customers=False, click_and_collect=True, timezone=zone,
                      latitude=45.7640, longitude=4.8357, opening_hours={today: [["08:00", "20:00"]]}, priority=2),
        location_body("ST-EARLY", kind="store", ships_to_customers=False, click_and_collect=True, timezone=zone,
                      opening_hours={today: [["05:00", "06:00"]]}, priority=3),
        location_body("ST-NOCC", kind="store", ships_to_customers=False, click_and_collect=False, priority=4),
        location_body("ST-PAUSED", kind="store", click_and_collect=True, status="paused", priority=5),
    )
    await make_products(client, key, "SKU-A", "SKU-B")
    await stock_up(client, key, {("SKU-A", "WH-PARIS"): 10, ("SKU-A", "ST-LYON"): 3, ("SKU-A", "ST-EARLY"): 2,
                                 ("SKU-A", "ST-NOCC"): 1, ("SKU-A", "ST-PAUSED"): 50, ("SKU-B", "ST-LYON"): 2})
    for code, safety in (("WH-PARIS", 4), ("ST-LYON", 0)):
        response = await client.put(f"{API}/inventory/safety-stock", headers=bearer(key),
                                    json={"sku": "SKU-A", "location": code, "safety_stock": safety})
        assert response.status_code == 200
    response = await client.put(f"{API}/inventory/safety-stock", headers=bearer(key),
                                json={"sku": "SKU-B", "location": "ST-LYON", "safety_stock": 2})
    assert response.status_code == 200
    assert await reserve(tenant.tenant_id, await line_for(tenant.tenant_id, "SKU-A", "WH-PARIS", 1))

    result = await client.get(f"{API}/availability", params=[("sku", "SKU-A"), ("sku", "SKU-B"),
                                                              ("sku", "UNKNOWN")], headers=bearer(key))
    assert result.status_code == 200, result.text
    a, b, unknown = result.json()
    per_location = {loc["location"]: loc["available"] for loc in a["locations"]}
    # WH-PARIS: 10 on hand - 1 reserved - 4 safety = 5; the paused store is left out.
    assert per_location == {"WH-PARIS": 5, "ST-LYON": 3, "ST-EARLY": 2, "ST-NOCC": 1}
    assert [loc["location"] for loc in a["locations"]] == ["WH-PARIS", "ST-LYON", "ST-EARLY", "ST-NOCC"]
    assert a["total_available"] == 11
    assert a["deliverable"] is True
    assert a["pickup_today"] == ["ST-LYON"]
    lyon = next(loc for loc in a["locations"] if loc["location"] == "ST-LYON")
    assert lyon["open_now"] is True and lyon["click_and_collect"] is True
    early = next(loc for loc in a["locations"] if loc["location"] == "ST-EARLY")
    assert early["open_now"] is False

    # SKU-B: 2 on hand, all of it safety stock: nothing to promise anywhere.
    assert b == {"sku": "SKU-B", "total_available": 0, "deliverable": False,
                 "locations": [b["locations"][0]], "pickup_today": []}
    assert b["locations"][0]["location"] == "ST-LYON" and b["locations"][0]["available"] == 0
    assert unknown == {"sku": "UNKNOWN", "total_available": 0, "deliverable": False, "locations": [],
                       "pickup_today": []}

    # Near Lyon: sorted by distance, with distances in km.
    near = (await client.get(f"{API}/availability", params={"sku": "SKU-A", "lat": 45.75, "lon": 4.85},
                             headers=bearer(key))).json()[0]
    located = [(loc["location"], loc["distance_km"]) for loc in near["locations"]]
    assert located[0][0] == "ST-LYON" and located[0][1] < 3
    assert located[1][0] == "WH-PARIS" and 385 < located[1][1] < 400
    assert {code for code, distance in located[2:]} == {"ST-EARLY", "ST-NOCC"}
    assert all(distance is None for _, distance in located[2:])

    # Deliverable to Germany? Only French locations ship.
    germany = (await client.get(f"{API}/availability", params={"sku": "SKU-A", "country": "de"},
                                headers=bearer(key))).json()[0]
    assert germany["deliverable"] is False and germany["total_available"] == 11

    # A chosen pickup store.
    pickup = (await client.get(f"{API}/availability", params={"sku": "SKU-A", "location": "ST-LYON"},
                               headers=bearer(key))).json()[0]
    assert pickup["pickup_today"] == ["ST-LYON"] and pickup["total_available"] == 3
    assert [loc["location"] for loc in pickup["locations"]] == ["ST-LYON"]

    half = await client.get(f"{API}/availability", params={"sku": "SKU-A", "lat": 45.0}, headers=bearer(key))
    assert half.status_code == 422


async def test_availability_follows_reservations_to_zero(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    await make_locations(client, key, location_body("WH1"))
    await make_products(client, key, "SKU-A")
    await stock_up(client, key, {("SKU-A", "WH1"): 3})
    await client.put(f"{API}/inventory/safety-stock", headers=bearer(key),
                     json={"sku": "SKU-A", "location": "WH1", "safety_stock": 1})
    line = await line_for(tenant.tenant_id, "SKU-A", "WH1", 2)
    assert await reserve(tenant.tenant_id, line)
    avail = (await client.get(f"{API}/availability", params={"sku": "SKU-A"}, headers=bearer(key))).json()[0]
    assert avail["total_available"] == 0 and avail["deliverable"] is False
    # The safety stock unit can't be reserved either.
    assert not await reserve(tenant.tenant_id, await line_for(tenant.tenant_id, "SKU-A", "WH1", 1))
    assert await levels(tenant.tenant_id) == {("SKU-A", "WH1"): (3, 2, 1)}


# --- tenant isolation ------------------------------------------------------------------------


async def test_another_tenant_sees_none_of_it(client) -> None:
    owner, other = await create_tenant(), await create_tenant()
    key = owner.api_key
    ids = await make_locations(client, key, location_body("WH1"))
    created = await client.post(f"{API}/products", json=product_body("SKU-A"), headers=bearer(key))
    product_id = created.json()["id"]
    await stock_up(client, key, {("SKU-A", "WH1"): 5})
    feed = await client.post(f"{API}/inventory/feeds", headers=bearer(key), json={
        "feed_id": "f-1", "kind": "delta", "rows": [{"sku": "SKU-A", "location": "WH1", "quantity": 1}]})
    assert feed.status_code == 202

    theirs = bearer(other.api_key)
    assert (await client.get(f"{API}/locations", headers=theirs)).json() == []
    assert (await client.get(f"{API}/locations/{ids['WH1']}", headers=theirs)).status_code == 404
    put = await client.put(f"{API}/locations/{ids['WH1']}", json=location_body("WH1", name="Mine now"), headers=theirs)
    assert put.status_code == 404
    assert (await client.get(f"{API}/products", headers=theirs)).json() == []
    assert (await client.get(f"{API}/products/{product_id}", headers=theirs)).status_code == 404
    assert (await client.get(f"{API}/inventory", params={"sku": "SKU-A"}, headers=theirs)).json() == [
        {"sku": "SKU-A", "levels": [], "total_available": 0}]
    assert (await client.get(f"{API}/inventory/movements", headers=theirs)).json() == []
    assert (await client.get(f"{API}/inventory/feeds", headers=theirs)).json() == []
    assert (await client.get(f"{API}/inventory/feeds/{feed.json()['id']}", headers=theirs)).status_code == 404
    assert (await client.get(f"{API}/availability", params={"sku": "SKU-A"}, headers=theirs)).json() == [
        {"sku": "SKU-A", "total_available": 0, "deliverable": False, "locations": [], "pickup_today": []}]
    assert (await adjust(client, other.api_key, "SKU-A", "WH1", 5)).status_code == 404
    assert (await client.put(f"{API}/inventory/safety-stock", headers=theirs,
                             json={"sku": "SKU-A", "location": "WH1", "safety_stock": 5})).status_code == 404
    # Their own feed naming our SKU and location is rejected, not applied to our stock.
    from inventory_factories import apply_feeds, feed_status

    theirs_feed = await client.post(f"{API}/inventory/feeds", headers=theirs, json={
        "feed_id": "f-1", "kind": "snapshot", "rows": [{"sku": "SKU-A", "location": "WH1", "quantity": 0}]})
    assert theirs_feed.status_code == 202
    await apply_feeds(other.tenant_id)
    assert (await feed_status(client, other.api_key, theirs_feed.json()["id"]))["status"] == "rejected"

    # The same codes are free for them.
    await make_locations(client, other.api_key, location_body("WH1"))
    await make_products(client, other.api_key, "SKU-A")
    assert await levels(owner.tenant_id) == {("SKU-A", "WH1"): (5, 0, 0)}
    assert await levels(other.tenant_id) == {}


async def test_absurd_adjustment_quantity_is_a_422_not_a_500(client) -> None:
    tenant = await create_tenant()
    await make_locations(client, tenant.api_key, location_body("WH1"))
    await make_products(client, tenant.api_key, "SKU-A")
    response = await adjust(client, tenant.api_key, "SKU-A", "WH1", 10**12)
    assert response.status_code == 422, response.text
    assert await levels(tenant.tenant_id) == {}


async def test_stock_of_a_sku_is_reported_in_a_large_catalog(client) -> None:
    """GET /inventory must report a SKU's levels whatever the size of the rest of the catalog
    (here 5,001 SKUs x 2 locations = 10,002 levels; the asked-for SKU sorts last)."""
    from inventory_factories import apply_feeds, feed_status

    tenant = await create_tenant()
    key = tenant.api_key
    await make_locations(client, key, location_body("WH1"), location_body("WH2"))
    skus = [f"BULK-{n:05d}" for n in range(5000)] + ["ZZ-LAST"]
    imported = await client.post(f"{API}/products/import", headers=bearer(key), json={
        "products": [{"sku": s, "name": s, "price_minor": 100} for s in skus]})
    assert imported.json() == {"created": 5001, "updated": 0}
    csv_body = "sku,location,quantity\n" + "".join(f"{s},{loc},3\n" for s in skus for loc in ("WH1", "WH2"))
    sent = await client.post(f"{API}/inventory/feeds", params={"feed_id": "bulk", "kind": "snapshot"},
                             content=csv_body.encode(), headers={**bearer(key), "Content-Type": "text/csv"})
    assert sent.status_code == 202
    await apply_feeds(tenant.tenant_id)
    assert (await feed_status(client, key, sent.json()["id"]))["rows_changed"] == 10_002
    stock = (await client.get(f"{API}/inventory", params={"sku": "ZZ-LAST"}, headers=bearer(key))).json()
    assert stock == [{"sku": "ZZ-LAST", "total_available": 6, "levels": [
        {"location": "WH1", "on_hand": 3, "reserved": 0, "safety_stock": 0, "available": 3},
        {"location": "WH2", "on_hand": 3, "reserved": 0, "safety_stock": 0, "available": 3}]}]
