"""Input no form would send, refused with a clear 4xx that names the field, and nothing changed:
NUL characters and unpaired surrogates anywhere (query, JSON, form, uploaded file), integers past
their column, JSON nested thousands deep, condition trees too deep or too large, CSV files with
old line endings or giant fields, numbers typed as "²", "--1", "nan", "1e999990" or five thousand
digits, and a time zone that is a folder of zones."""

from __future__ import annotations

import json
from typing import Any

import pytest
from httpx import AsyncClient

from factories import bearer, create_tenant, csrf_headers, login, post_form
from inventory_factories import API, location_body, one_warehouse_shop, product_body

PARIS = {"country": "FR", "latitude": 48.86, "longitude": 2.35}


def _order(sku: str, number: str, **changes: Any) -> dict[str, Any]:
    body = {"channel": "web", "external_number": number, "currency": "EUR",
            "lines": [{"sku": sku, "quantity": 1, "unit_price_minor": 1000}],
            "customer": {"email": f"{number.lower()}@example.test", "name": "Nina Nul"},
            "delivery": {"mode": "ship", "address": PARIS}, "total_minor": 1000}
    body.update(changes)
    return body


def _refused(response: Any, field: str | None = None) -> dict[str, Any]:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    body = response.json()
    if field is not None:
        assert field in [e["field"] for e in body.get("errors", [])] or field in body["detail"], body
    return dict(body)


async def _orders(client: AsyncClient, key: str) -> list[Any]:
    return (await client.get(f"{API}/orders", headers=bearer(key))).json()["orders"]


@pytest.fixture
async def shop(client: AsyncClient) -> Any:
    tenant = await create_tenant()
    await one_warehouse_shop(client, tenant.api_key, location="WH-BAD", sku="BAD-1", quantity=5)
    return tenant


async def test_nul_characters_are_refused_wherever_they_come(client: AsyncClient, shop: Any) -> None:
    key = bearer(shop.api_key)
    for path, params, name in (("/availability", {"sku": "BAD\x001"}, "sku"),
                               ("/inventory", {"sku": "a\x00"}, "sku"),
                               ("/fulfilments", {"location": "WH\x00"}, "location"),
                               ("/products", {"category": "sh\x00oes"}, "category")):
        _refused(await client.get(f"{API}{path}", params=params, headers=key), name)
    _refused(await client.post(f"{API}/products", headers=key, json=product_body("NUL-1", name="Shoe\x00")), "name")
    _refused(await client.put(f"{API}/inventory/safety-stock", headers=key,
                              json={"sku": "BAD-1\x00", "location": "WH-BAD", "safety_stock": 1}), "sku")
    body = _order("BAD-1", "NUL-1")
    body["customer"]["name"] = "Nina\x00"
    _refused(await client.post(f"{API}/orders", headers=key, json=body), "customer.name")
    body = _order("BAD-1", "NUL-2")
    body["lines"][0]["sku"] = "BAD-1\x00"
    _refused(await client.post(f"{API}/orders", headers=key, json=body), "lines[0].sku")
    # A key with a NUL, and an unpaired surrogate (not text at all).
    _refused(await client.post(f"{API}/orders", headers={**key, "Content-Type": "application/json"},
                               content=b'{"channel\\u0000": "web"}'))
    _refused(await client.post(f"{API}/products", headers={**key, "Content-Type": "application/json"},
                               content=b'{"sku": "S-1", "name": "\\ud800", "price_minor": 1}'))
    assert await _orders(client, shop.api_key) == []
    products = (await client.get(f"{API}/products", headers=key)).json()
    assert [p["sku"] for p in products] == ["BAD-1"]

    # The console: a form field, and a file.
    await login(client, shop.email)
    page = await post_form(client, "/app/orders/new", {"channel": "phone", "email": "x@example.test",
                                                       "line.0.sku": "BAD-1", "line.0.quantity": "1",
                                                       "line.0.price": "10.00", "mode": "ship", "name": "A\x00"})
    assert page.status_code == 422 and "NUL" in page.text
    upload = await client.post("/app/catalog/import", headers=csrf_headers(client),
                               files={"file": ("catalog.csv", b"sku,name,price_minor\nX-1,Sh\x00oe,100\n", "text/csv")})
    assert upload.status_code == 422 and "Line 2 contains a NUL character" in upload.text
    assert await _orders(client, shop.api_key) == []


async def test_integers_past_their_column_are_refused(client: AsyncClient, shop: Any) -> None:
    key = bearer(shop.api_key)
    for path in ("/rule-sets/routing/versions/2534450111657", "/rule-sets/routing/versions/-5"):
        _refused(await client.get(f"{API}{path}", headers=key))
    _refused(await client.post(f"{API}/rule-sets/routing/versions/2432902008176639999/withdraw", headers=key))
    _refused(await client.post(f"{API}/rule-sets/routing/versions", headers=key,
                               json={"source_version": 2**40}), "source_version")
    _refused(await client.post(f"{API}/orders", headers=key,
                               json=_order("BAD-1", "BIG-1", lines=[{"sku": "BAD-1", "quantity": 2**33,
                                                                     "unit_price_minor": 1}])))
    _refused(await client.get(f"{API}/orders", headers=key, params={"limit": 10**30}), "limit")
    # Numbers no column holds, written out in the JSON (5,000 digits, 1e999): 422 naming the field.
    for huge in ("1" * 5000, "1e999", "-99999999999999999999"):
        body = json.dumps(_order("BAD-1", "BIG-2")).replace('"unit_price_minor": 1000', f'"unit_price_minor": {huge}')
        assert huge in body
        refused = await client.post(f"{API}/orders", headers={**key, "Content-Type": "application/json"},
                                    content=body)
        assert refused.status_code == 422, refused.text[:300]
        assert refused.json()["errors"][0]["field"] == "lines[0].unit_price_minor", refused.text[:300]
    assert await _orders(client, shop.api_key) == []


async def test_deep_nesting_is_refused_before_anything_recurses(client: AsyncClient, shop: Any) -> None:
    key = {**bearer(shop.api_key), "Content-Type": "application/json"}
    deep = b"[" * 50_000 + b"]" * 50_000
    _refused(await client.post(f"{API}/orders", headers=key, content=deep), "body")
    leaf = b'{"field": "order.channel", "op": "eq", "value": "web"}'
    nots = b'{"not": ' * 1000 + leaf + b"}" * 1000
    _refused(await client.post(f"{API}/rule-sets/routing/validate", headers=key,
                               content=b'{"document": {"rules": [{"when": ' + nots + b"}]}}"))
    # Within the body's bound, a condition tree still has its own, told like any rule problem.
    nine: dict[str, Any] = {"field": "order.channel", "op": "eq", "value": "web"}
    for _ in range(9):
        nine = {"all": [nine]}
    document = {"rules": [{"id": "r1", "name": "Deep", "enabled": True, "when": nine,
                           "then": {"location_types": ["warehouse"]}}], "otherwise": "hold"}
    checked = (await client.post(f"{API}/rule-sets/routing/validate", headers=key,
                                 json={"document": document})).json()
    assert checked["valid"] is False and "nested more than 8 levels" in str(checked["problems"])
    upload = await client.post(f"{API}/products/import", headers=key, content=b'{"products": ' + deep + b"}")
    _refused(upload)


async def test_csv_with_old_line_endings_is_read_and_a_giant_field_is_refused(client: AsyncClient,
                                                                               shop: Any) -> None:
    from factories import run_outbox_inline

    headers = {**bearer(shop.api_key), "Content-Type": "text/csv"}
    sent = await client.post(f"{API}/inventory/feeds", params={"feed_id": "cr-only", "kind": "delta"},
                             headers=headers, content=b"sku,location,quantity\rBAD-1,WH-BAD,3\r")
    assert sent.status_code == 202, sent.text
    await run_outbox_inline(shop.tenant_id)
    feed = (await client.get(f"{API}/inventory/feeds/{sent.json()['id']}", headers=bearer(shop.api_key))).json()
    assert (feed["status"], feed["rows_changed"]) == ("applied", 1), feed
    giant = b"sku,location,quantity\nBAD-1,WH-BAD," + b"9" * 200_000 + b"\n"
    refused = await client.post(f"{API}/inventory/feeds", params={"feed_id": "giant", "kind": "delta"},
                                headers=headers, content=giant)
    assert refused.status_code == 422 and "Line 2" in refused.text, refused.text
    stock = (await client.get(f"{API}/inventory", params={"sku": "BAD-1"}, headers=bearer(shop.api_key))).json()
    assert stock[0]["levels"][0]["on_hand"] == 8


@pytest.mark.parametrize("typed", ["²", "--1", "9" * 5000, "nan", "1e999", "1e999990", "inf", "١٢"])
async def test_numbers_typed_in_forms_are_read_strictly(client: AsyncClient, shop: Any, typed: str) -> None:
    await login(client, shop.email)
    base = {"channel": "phone", "email": "typed@example.test", "line.0.sku": "BAD-1", "line.0.quantity": "1",
            "line.0.price": "10.00", "mode": "ship", "country": "FR"}
    for field in ("line.0.quantity", "line.0.price", "shipping_fee", "latitude"):
        page = await post_form(client, "/app/orders/new", dict(base, **{field: typed}))
        assert page.status_code == 422, (field, page.status_code)
    settings = await post_form(client, "/app/settings/orders", {"pickup_window_days": typed})
    assert settings.status_code == 422
    simulated = await post_form(client, "/app/rules/simulate", {"line.0.sku": "BAD-1", "line.0.quantity": typed,
                                                                "total": typed, "latitude": typed})
    assert simulated.status_code in (200, 422) and "Internal error" not in simulated.text
    replay = await post_form(client, "/app/rules/replay", {"days": typed, "limit": typed})
    assert replay.status_code == 200
    location = await post_form(client, "/app/locations/new", {"code": "T-1", "name": "T", "kind": "store",
                                                               "country": "FR", "timezone": "Europe/Paris",
                                                               "latitude": typed, "priority": typed})
    assert location.status_code == 422
    assert await _orders(client, shop.api_key) == []


async def test_a_time_zone_is_a_zone_not_a_folder(client: AsyncClient, shop: Any) -> None:
    for zone in ("Europe", "America", "../etc/passwd", "Europe/Atlantis"):
        _refused(await client.post(f"{API}/locations", headers=bearer(shop.api_key),
                                   json=location_body("TZ-1", timezone=zone)), "timezone")


@pytest.mark.parametrize("typed", ["²", "--1", "9" * 5000, "nan", "1e999", "1e999990", "inf"])
async def test_numbers_typed_in_the_rule_builder_are_kept_as_text_and_flagged(client: AsyncClient, shop: Any,
                                                                                typed: str) -> None:
    key = bearer(shop.api_key)
    await login(client, shop.email)
    draft = (await client.get(f"{API}/rule-sets/routing/draft", headers=key)).json()
    await post_form(client, "/app/rules/draft", {"revision": str(draft["revision"]), "action": "add_condition:r0",
                                                 "r0.new_field": "order.total"})
    draft = (await client.get(f"{API}/rule-sets/routing/draft", headers=key)).json()
    saved = await post_form(client, "/app/rules/draft", {
        "revision": str(draft["revision"]), "r0.present": "1", "r0.name": "Typed", "r0.enabled": "on",
        "r0.0.field": "order.total", "r0.0.op": "gte", "r0.0.value": typed})
    assert saved.status_code in (200, 303), saved.status_code
    draft = (await client.get(f"{API}/rule-sets/routing/draft", headers=key)).json()
    assert draft["document"]["rules"][0]["when"]["all"][0]["value"] == typed  # what was typed, to correct
    assert any("order.total" in p["path"] or "value" in p["path"] for p in draft["problems"]), draft["problems"]


async def test_the_boundary_reads_a_body_whatever_it_says_it_is(client: AsyncClient, shop: Any) -> None:
    """A JSON body sent as text/plain or without a type is checked all the same; a JSON body past
    the size walked is scanned for nesting and NUL escapes; a form past any form of ours is
    refused before it is parsed."""
    key = bearer(shop.api_key)
    body = b'{"channel": "web\\u0000"}'
    for media in ("text/plain", "application/octet-stream"):
        _refused(await client.post(f"{API}/orders", headers={**key, "Content-Type": media}, content=body), "channel")
    padding = b'"' + b"x" * (1024 * 1024) + b'"'
    big = b'{"pad": ' + padding + b', "sku": "a\\u0000"}'
    _refused(await client.post(f"{API}/products", headers={**key, "Content-Type": "application/json"},
                               content=big), "body")
    # An escaped backslash before "u0000" is text, not a NUL: left to the route, which says why.
    harmless = b'{"pad": ' + padding + b', "sku": "a\\\\u0000"}'
    answer = await client.post(f"{API}/products", headers={**key, "Content-Type": "application/json"},
                               content=harmless)
    assert answer.status_code in (400, 413, 422) and "NUL" not in answer.text
    deep = b'{"pad": ' + padding + b', "x": ' + b"[" * 100 + b"]" * 100 + b"}"
    _refused(await client.post(f"{API}/products", headers={**key, "Content-Type": "application/json"},
                               content=deep), "body")
    await login(client, shop.email)
    form = await client.post("/app/orders/new", headers={**csrf_headers(client),
                                                         "Content-Type": "application/x-www-form-urlencoded"},
                             content=b"name=" + b"a" * (3 * 1024 * 1024))
    assert form.status_code == 413
    assert await _orders(client, shop.api_key) == []
