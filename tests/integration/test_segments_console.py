"""Segments in the console and the API: "ordered in store in the last 90 days, never online" built
row by row through the builder's form posts, counted and previewed right (saved or not), a row on a
field segments can't use refused with the row named, the API's create, read, change, count, members
and archive, and another company's segment out of reach."""

from __future__ import annotations

import html
import re
import uuid
from datetime import timedelta
from typing import Any

from httpx import AsyncClient
from test_routing_rules import form_fields

from factories import bearer, create_tenant, csrf_headers, login

API = "/api/v1/segments"
NEW = "/app/marketing/segments/new"
STORE_NOT_ONLINE = {"all": [
    {"field": "customer.last_order_date", "op": "in_last_days", "value": 90},
    {"field": "customer.channels", "op": "has", "value": "store"},
    {"field": "customer.channels", "op": "has_none", "value": ["web"]},
]}


async def add_customers(tenant_id: uuid.UUID) -> dict[str, uuid.UUID]:
    """Customers by what they did; ``in_*`` ones are in the segment above, ``out_*`` ones are not."""
    from core import clock
    from core.db import get_database
    from customers.models import Customer

    now = clock.now()
    people = {
        "in_recent": (["store"], ["PARIS"], 10, 3),
        "in_edge": (["store"], ["LYON"], 89, 1),
        "in_marketplace_too": (["store", "marketplace"], ["PARIS"], 30, 5),
        "out_online_too": (["store", "web"], ["PARIS"], 5, 8),
        "out_long_ago": (["store"], ["PARIS"], 120, 2),
        "out_web_only": (["web"], [], 3, 1),
    }
    ids: dict[str, uuid.UUID] = {}
    async with get_database().transaction(tenant_id=tenant_id) as session:
        for name, (channels, stores, days_ago, orders) in people.items():
            customer = Customer(tenant_id=tenant_id, email=f"{name}-{uuid.uuid4().hex[:6]}@example.test",
                                name=name.replace("_", " ").title(), channels=channels, stores=stores,
                                orders_count=orders, lifetime_value_minor=orders * 4500,
                                first_order_at=now - timedelta(days=days_ago + 200),
                                last_order_at=now - timedelta(days=days_ago))
            session.add(customer)
            await session.flush()
            ids[name] = customer.id
        session.add(Customer(tenant_id=tenant_id, email=f"never-{uuid.uuid4().hex[:6]}@example.test", name="Never"))
    return ids


def members_in(html: str) -> set[str]:
    return set(re.findall(r'data-customer="([0-9a-f-]+)"', html))


def count_in(html: str) -> int:
    found = re.search(r'data-count="(\d+)"', html)
    assert found, html
    return int(found.group(1))


def posted(html: str, **changes: str) -> dict[str, str]:
    """The editor's fields as the page shows them, with some changed (one value each)."""
    fields = {name: values[0] for name, values in form_fields(html, "segment-form").items()}
    fields.pop("action", None)
    fields.update(changes)
    return fields


async def post(client: AsyncClient, url: str, data: dict[str, str], *, htmx: bool = False) -> Any:
    headers = csrf_headers(client)
    if htmx:
        headers["HX-Request"] = "true"
    return await client.post(url, data=data, headers=headers, follow_redirects=False)


async def test_a_segment_is_built_row_by_row_counted_and_previewed(client: AsyncClient) -> None:
    tenant = await create_tenant()
    ids = await add_customers(tenant.tenant_id)
    expected = {str(ids[name]) for name in ("in_recent", "in_edge", "in_marketplace_too")}
    await login(client, tenant.email)

    start = await client.get(NEW)
    assert start.status_code == 200
    assert "No condition yet: add one below." in start.text
    assert "Add a condition to see who is in the segment." in start.text
    # Only customer fields are offered: no order's channel, no time of day.
    picker = start.text.split('id="r0.new_field"', 1)[1].split("</select>", 1)[0]
    assert 'value="customer.last_order_date"' in picker and 'value="order.channel"' not in picker

    # 1. "Last order date is in the last 90 days".
    page = await post(client, NEW, posted(start.text, action="add_condition:r0",
                                          **{"r0.new_field": "customer.last_order_date"}))
    assert page.status_code == 200 and 'name="r0.0.field"' in page.text
    page = await post(client, NEW, posted(page.text, **{"r0.0.op": "in_last_days", "r0.0.value": "90"}))
    assert re.search(r'<input type="number"[^>]*name="r0\.0\.value"[^>]*value="90"', page.text)

    # 2. "Channels ordered from has store", added through htmx: the rows come back alone, and the
    # live count is told to refresh.
    added = await post(client, NEW, posted(page.text, action="add_condition:r0",
                                           **{"r0.new_field": "customer.channels"}), htmx=True)
    assert added.status_code == 200 and added.headers.get("hx-trigger") == "segment-changed"
    assert added.text.lstrip().startswith('<form id="segment-form"')
    page = await post(client, NEW, posted(added.text, **{"r0.1.op": "has", "r0.1.value": "store"}))

    # 3. "Channels ordered from has none of web": a list operator starts empty, then gets its value.
    page = await post(client, NEW, posted(page.text, action="add_condition:r0",
                                          **{"r0.new_field": "customer.channels"}))
    page = await post(client, NEW, posted(page.text, **{"r0.2.op": "has_none"}))
    page = await post(client, NEW, posted(page.text, **{"r0.2.value": "web", "r0.2.present": "1"}))

    # The live count of the unsaved condition (what the page's htmx posts as rows change).
    live = await post(client, "/app/marketing/segments/count", posted(page.text), htmx=True)
    assert live.status_code == 200
    assert count_in(live.text) == 3 and members_in(live.text) == expected

    saved = await post(client, NEW, posted(page.text, action="save", name="Store regulars",
                                           description="Bought in store lately, never online"))
    assert saved.status_code == 303, saved.text
    segment_id = saved.headers["location"].split("/")[-1].split("?")[0]
    stored = (await client.get(f"{API}/{segment_id}", headers=bearer(tenant.api_key))).json()
    assert stored["condition"] == STORE_NOT_ONLINE and stored["name"] == "Store regulars"

    shown = await client.get(saved.headers["location"])
    assert "Segment created." in shown.text
    assert count_in(shown.text) == 3 and members_in(shown.text) == expected
    for customer_id in expected:
        assert f'href="/app/customers/{customer_id}"' in shown.text

    # The list and the home page load each count after the page.
    listing = await client.get("/app/marketing/segments")
    assert f'hx-get="/app/marketing/segments/{segment_id}/count"' in listing.text
    badge = await client.get(f"/app/marketing/segments/{segment_id}/count")
    assert count_in(badge.text) == 3
    home = await client.get("/app/marketing")
    assert home.status_code == 200 and "Store regulars" in home.text
    assert '<a href="/app/marketing" aria-current="page">Marketing</a>' in home.text

    # Saving again as is changes nothing but who saved; the API says the same count and members.
    count = (await client.get(f"{API}/{segment_id}/count", headers=bearer(tenant.api_key))).json()
    assert count["count"] == 3
    again = await post(client, f"/app/marketing/segments/{segment_id}", posted(shown.text, action="save"))
    assert again.status_code == 303
    via_htmx = await post(client, f"/app/marketing/segments/{segment_id}", posted(shown.text, action="save"),
                          htmx=True)
    assert via_htmx.status_code == 204 and via_htmx.headers["hx-redirect"].startswith(
        f"/app/marketing/segments/{segment_id}")


async def test_a_row_on_a_field_segments_cant_use_is_refused_with_the_row_named(client: AsyncClient) -> None:
    tenant = await create_tenant()
    key = bearer(tenant.api_key)
    made = await client.post(API, headers=key, json={"name": "Store regulars", "condition": STORE_NOT_ONLINE})
    assert made.status_code == 201, made.text
    segment_id = made.json()["id"]
    await login(client, tenant.email)
    page = await client.get(f"/app/marketing/segments/{segment_id}")

    # A post naming an order's field on row 2 (no browser offers it): refused, the row marked.
    refused = await post(client, f"/app/marketing/segments/{segment_id}",
                         posted(page.text, action="save", **{"r0.1.field": "order.channel"}))
    assert refused.status_code == 422
    assert "Nothing was saved" in refused.text
    control = re.search(r'<select name="r0\.1\.field" id="r0\.1\.field"[^>]*>', refused.text).group(0)
    assert 'aria-invalid="true"' in control and 'aria-describedby="r0.1-error"' in control
    message = html.unescape(refused.text.split('id="r0.1-error">', 1)[1].split("</small>", 1)[0])
    assert message.startswith("row 2 (Channel): unknown field 'order.channel'")
    assert (await client.get(f"{API}/{segment_id}", headers=key)).json()["condition"] == STORE_NOT_ONLINE

    # The API refuses the same with every problem, each at its path; the name too.
    bad = {"all": [{"field": "customer.orders_count", "op": "gte", "value": "many"},
                   {"field": "customer.shoe_size", "op": "eq", "value": "42"}]}
    refused_api = await client.post(API, headers=key, json={"name": "store regulars", "condition": bad})
    assert refused_api.status_code == 422
    errors = {e["field"]: e["message"] for e in refused_api.json()["errors"]}
    assert errors["name"] == "A segment named “Store regulars” already exists: choose another name."
    assert errors["condition.all[1].field"].startswith("row 2: unknown field 'customer.shoe_size'")
    assert errors["condition.all[0].value"].startswith("row 1 (Customer's previous orders)")
    empty = await client.post(API, headers=key, json={"name": "Everyone", "condition": {"all": []}})
    assert empty.status_code == 422
    assert {e["field"] for e in empty.json()["errors"]} == {"condition"}


async def test_segments_through_the_api(client: AsyncClient) -> None:
    from core.db import get_database
    from marketing import segments

    tenant = await create_tenant()
    ids = await add_customers(tenant.tenant_id)
    key = bearer(tenant.api_key)
    made = await client.post(API, headers={**key, "Idempotency-Key": "seg-1"},
                             json={"name": "Store regulars", "condition": STORE_NOT_ONLINE})
    assert made.status_code == 201
    replay = await client.post(API, headers={**key, "Idempotency-Key": "seg-1"},
                               json={"name": "Store regulars", "condition": STORE_NOT_ONLINE})
    assert replay.json()["id"] == made.json()["id"]
    segment_id = made.json()["id"]

    assert [s["id"] for s in (await client.get(API, headers=key)).json()] == [segment_id]
    page_one = (await client.get(f"{API}/{segment_id}/members?limit=2", headers=key)).json()
    assert len(page_one["members"]) == 2 and page_one["next_after"] == page_one["members"][-1]["id"]
    page_two = (await client.get(f"{API}/{segment_id}/members?limit=2&after={page_one['next_after']}",
                                 headers=key)).json()
    assert len(page_two["members"]) == 1 and page_two["next_after"] is None
    assert {m["id"] for m in page_one["members"] + page_two["members"]} == {
        str(ids[n]) for n in ("in_recent", "in_edge", "in_marketplace_too")}
    assert (await client.get(f"{API}/{segment_id}/members?limit=0", headers=key)).status_code == 422

    wider = {"all": [{"field": "customer.channels", "op": "has", "value": "store"}]}
    changed = await client.put(f"{API}/{segment_id}", headers=key,
                               json={"name": "Store buyers", "condition": wider, "description": "Ever in store"})
    assert changed.status_code == 200 and changed.json()["name"] == "Store buyers"
    assert (await client.get(f"{API}/{segment_id}/count", headers=key)).json()["count"] == 5

    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        assert await segments.names(session, tenant.tenant_id) == {segment_id: "Store buyers"}
    archived = await client.delete(f"{API}/{segment_id}", headers=key)
    assert archived.status_code == 200 and archived.json()["archived_at"] is not None
    assert (await client.get(API, headers=key)).json() == []
    assert [s["id"] for s in (await client.get(f"{API}?archived=true", headers=key)).json()] == [segment_id]
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        assert await segments.names(session, tenant.tenant_id) == {}
    refused = await client.put(f"{API}/{segment_id}", headers=key, json={"name": "Again", "condition": wider})
    assert refused.status_code == 409


async def test_another_companys_segment_is_out_of_reach(client: AsyncClient, make_client: Any) -> None:
    a, b = await create_tenant(), await create_tenant()
    made = await client.post(API, headers=bearer(a.api_key),
                             json={"name": "Alpha secret segment", "condition": STORE_NOT_ONLINE})
    segment_id = made.json()["id"]
    b_key = bearer(b.api_key)
    for method, path, body in (("GET", "", None), ("GET", "/count", None), ("GET", "/members", None),
                               ("PUT", "", {"name": "Taken", "condition": STORE_NOT_ONLINE}),
                               ("DELETE", "", None)):
        response = await client.request(method, f"{API}/{segment_id}{path}", headers=b_key, json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert "Alpha secret segment" not in response.text
    assert (await client.get(API, headers=b_key)).json() == []

    intruder = await make_client()
    await login(intruder, b.email)
    for path in (f"/app/marketing/segments/{segment_id}", f"/app/marketing/segments/{segment_id}/count"):
        response = await intruder.get(path)
        assert response.status_code == 404 and "Alpha secret segment" not in response.text
    form = posted((await intruder.get(NEW)).text, action="save", name="Mine")
    for path in (f"/app/marketing/segments/{segment_id}", f"/app/marketing/segments/{segment_id}/archive"):
        assert (await post(intruder, path, form)).status_code == 404
    assert "Alpha secret segment" not in (await intruder.get("/app/marketing/segments")).text
    after = (await client.get(f"{API}/{segment_id}", headers=bearer(a.api_key))).json()
    assert after["name"] == "Alpha secret segment" and after["archived_at"] is None


async def test_the_marketing_home_and_its_settings(client: AsyncClient) -> None:
    tenant = await create_tenant()
    await login(client, tenant.email)
    home = await client.get("/app/marketing")
    assert home.status_code == 200
    for card in ("promotions-card", "coupons-card", "segments-card", "campaigns-card"):
        assert f'id="{card}"' in home.text
    assert "No promotion in force" in home.text and "No segment yet" in home.text

    settings = await client.get("/app/marketing/settings")
    assert settings.status_code == 200
    assert re.search(r'<input type="radio" id="mode-apply"[^>]*checked', settings.text)
    for mode in ("apply", "check", "off"):
        assert f'id="mode-{mode}-help"' in settings.text
    refused = await post(client, "/app/marketing/settings", {"capture_mode": "sometimes"})
    assert refused.status_code == 422 and "Unknown mode" in html.unescape(refused.text)
    saved = await post(client, "/app/marketing/settings", {"capture_mode": "check", "refuse_invalid_coupons": "1"})
    assert saved.status_code == 303
    settings = await client.get(saved.headers["location"])
    assert "Marketing settings saved" in settings.text
    assert re.search(r'<input type="radio" id="mode-check"[^>]*checked', settings.text)
    assert re.search(r'id="refuse-invalid-coupons"[^>]*checked', settings.text)
    home = await client.get("/app/marketing")
    assert "orders with a code that can't be used are refused" in html.unescape(home.text)
