"""The promotions console as a marketer uses it: a promotion built through the builder's form posts
(added, 15 % off the order, limited to a segment, saved with the draft's revision), scheduled for
next Monday 09:00 in the company's time zone and seen so on the timeline, then withdrawn; a
sample cart priced with the draft beside the version in force, with every promotion's verdict;
last week's orders replayed under the draft; an invalid draft's problems naming the promotion;
and another company seeing none of it."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from httpx import AsyncClient
from test_orders import capture, order_body
from test_routing_rules import form_fields

from factories import bearer, create_tenant, csrf_headers, login, post_form, unique
from inventory_factories import API, product_body

BASE = "/app/marketing/promotions"
PARIS = ZoneInfo("Europe/Paris")
MINUS = "\u2212"  # as amounts taken off are shown


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def main_of(html: str) -> str:
    return html[html.index('<main id="main"'):html.index("</main>")]


def owner(tenant: Any) -> Any:
    from core.auth import Principal

    return Principal(tenant_id=tenant.tenant_id, role="owner", label=tenant.email, tenant_name=tenant.name,
                     timezone="Europe/Paris", currency="EUR", user_id=tenant.user_id)


async def make_segment(tenant: Any, name: str, condition: dict[str, Any]) -> str:
    from core.db import get_database
    from marketing import segments

    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        segment = await segments.create_segment(session, owner(tenant), name=name, condition=condition)
        return str(segment.id)


async def set_draft(tenant: Any, *promotions: dict[str, Any], within_class: str = "priority") -> None:
    from core.db import get_database
    from rules import service

    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        await service.save_draft(session, owner(tenant), {"promotions": list(promotions), "within_class": within_class},
                                 kind=service.PROMOTIONS)


async def draft_of(tenant: Any) -> Any:
    from core.db import get_database
    from rules import service

    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        rule_set = await service.rule_set_of(session, owner(tenant), service.PROMOTIONS)
        return rule_set.draft, rule_set.draft_revision


async def versions_of(tenant: Any) -> list[Any]:
    from core.db import get_database
    from rules import service

    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        rule_set = await service.rule_set_of(session, owner(tenant), service.PROMOTIONS)
        return await service.versions(session, rule_set)


def promotion(pid: str, name: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": pid, "name": name, "enabled": True, "priority": 100, "exclusive": False, "combines_with": [],
        "when": None, "channels": [], "segment": None, "coupon": False,
        "effect": {"kind": "percent_off", "target": "order", "percent": 15, "lines": None},
        "limits": {"total_uses": None, "per_customer": None, "budget_minor": None}}
    body.update(fields)
    return body


async def products(client: AsyncClient, key: str, *items: tuple[str, int, str]) -> None:
    response = await client.post(f"{API}/products/import", headers=bearer(key), json={
        "products": [product_body(sku, price_minor=price, category=category) for sku, price, category in items]})
    assert response.status_code == 200, response.text


async def builder_post(client: AsyncClient, data: dict[str, Any]) -> Any:
    return await client.post(f"{BASE}/draft", data=data, headers={**csrf_headers(client), "HX-Request": "true"},
                             follow_redirects=False)


def posted(html: str) -> dict[str, Any]:
    """The builder's fields as the browser would send them (every value of a repeated name)."""
    return {name: values if len(values) > 1 else values[0] for name, values in form_fields(html).items()}


def next_monday_nine() -> tuple[str, datetime]:
    today = datetime.now(PARIS).date()
    monday = today + timedelta(days=7 - today.weekday())
    return monday.isoformat(), datetime.combine(monday, time(9, 0), tzinfo=PARIS).astimezone(UTC)


# --- build, schedule, withdraw --------------------------------------------------------------------------

async def test_a_promotion_built_in_the_form_is_scheduled_for_monday_and_withdrawn(client: AsyncClient) -> None:
    tenant = await create_tenant(timezone="Europe/Paris")
    regulars = await make_segment(tenant, "Store regulars", {"all": [
        {"field": "customer.orders_count", "op": "gte", "value": 2}]})
    await login(client, tenant.email)

    empty = await client.get(f"{BASE}/draft")
    assert empty.status_code == 200, empty.text
    assert "No promotions yet" in empty.text and 'id="builder"' in empty.text
    fields = posted(empty.text)
    assert fields["revision"] == "1"

    added = await builder_post(client, {**fields, "action": "add_promotion"})
    assert added.status_code == 200, added.text
    assert 'name="p0.name"' in added.text and 'value="Promotion 1"' in added.text
    fields = posted(added.text)
    assert fields["revision"] == "2"
    # The segment select offers the company's segments by name.
    assert re.search(rf'<option value="{regulars}"\s*>in “Store regulars”</option>', added.text)

    fields.update({"p0.name": "Summer 15 %", "p0.effect.percent": "15", "p0.effect.target": "order",
                   "p0.segment": regulars, "p0.limits.budget": "1 000,00", "p0.channels": ["web", "store"]})
    saved = await builder_post(client, {**fields, "action": ""})
    assert saved.status_code == 200, saved.text
    assert "Ready to simulate and publish" in saved.text
    draft, revision = await draft_of(tenant)
    assert revision == 3
    [summer] = draft["promotions"]
    assert (summer["name"], summer["segment"], summer["channels"]) == ("Summer 15 %", regulars, ["web", "store"])
    assert summer["effect"] == {"kind": "percent_off", "target": "order", "percent": 15, "lines": None}
    assert summer["limits"] == {"total_uses": None, "per_customer": None, "budget_minor": 100000}
    shown = posted(saved.text)
    assert shown["p0.limits.budget"] == "1000,00"  # the company's locale

    # A condition row on the lines to discount: routing's rows, on line fields.
    lines = await builder_post(client, {**shown, "p0.effect.target": "lines"})
    shown = posted(lines.text)
    assert "r1.present" in shown  # the lines' tree of promotion 1
    with_row = await builder_post(client, {**shown, "r1.new_field": "line.category", "action": "add_condition:r1"})
    shown = posted(with_row.text)
    assert shown["r1.0.field"] == "line.category"
    picker = with_row.text.split('id="r1.new_field"', 1)[1].split("</select>", 1)[0]
    assert 'value="line.sku"' in picker and 'value="order.total"' not in picker
    back = await builder_post(client, {**shown, "p0.effect.target": "order"})
    draft, _ = await draft_of(tenant)
    assert draft["promotions"][0]["effect"]["lines"] is None
    assert back.status_code == 200

    # A post from a page older than the draft changes nothing, and says so.
    stale = await builder_post(client, {**shown, "revision": "2", "p0.name": "Overwritten"})
    assert stale.status_code == 200
    assert "saved the draft since you opened it" in stale.text
    assert (await draft_of(tenant))[0]["promotions"][0]["name"] == "Summer 15 %"

    # Scheduled for next Monday 09:00 in Paris.
    day, at = next_monday_nine()
    form = await client.get(f"{BASE}/publish")
    assert form.status_code == 200 and "Added: “Summer 15 %”" in text_of(form.text)
    published = await post_form(client, f"{BASE}/publish", {"when": "later", "from_day": day, "from_time": "09:00",
                                                             "note": "Monday launch"})
    assert published.status_code == 303, published.text
    assert published.headers["location"] == f"{BASE}?done=promotions_scheduled"
    [version] = await versions_of(tenant)
    assert version.effective_from == at and version.note == "Monday launch"

    overview = await client.get(published.headers["location"])
    assert overview.status_code == 200
    timeline = text_of(overview.text.split('id="timeline"', 1)[1].split("</ol>", 1)[0])
    from core.locale import format_time

    assert f"From {format_time(at, 'Europe/Paris', 'fr_FR')}" in timeline and "v1 — Monday launch" in timeline
    assert "no version: no promotion applies" in timeline
    row = overview.text.split('data-version="1"', 1)[1].split("</tr>", 1)[0]
    assert ">scheduled<" in row and f"{BASE}/versions/1/withdraw" in row

    page = text_of(main_of((await client.get(f"{BASE}/versions/1")).text))
    assert "Promotions v1 scheduled" in page and "15 % off the order" in page
    assert "customers in “Store regulars”" in page

    withdrawn = await post_form(client, f"{BASE}/versions/1/withdraw")
    assert withdrawn.status_code == 303
    after = await client.get(f"{BASE}")
    assert ">withdrawn<" in after.text.split('data-version="1"', 1)[1].split("</tr>", 1)[0]
    assert "v1" not in text_of(after.text.split('id="timeline"', 1)[1].split("</ol>", 1)[0])
    assert (await versions_of(tenant))[0].cancelled_at is not None


# --- an invalid draft -----------------------------------------------------------------------------------

async def test_an_invalid_draft_lists_its_problems_naming_the_promotion(client: AsyncClient) -> None:
    tenant = await create_tenant()
    await products(client, tenant.api_key, ("TEE-1", 2000, "tops"))
    await set_draft(
        tenant,
        promotion("p-a", "Summer 15 %", effect={"kind": "percent_off", "target": "order", "percent": 150,
                                                "lines": None}),
        promotion("p-b", "Two for one", effect={
            "kind": "buy_x_get_y", "buy": {"lines": {"field": "line.sku", "op": "eq", "value": "GHOST"}, "quantity": 1},
            "get": {"lines": None, "quantity": 1, "percent": 100}, "max_per_order": 1},
            limits={"total_uses": None, "per_customer": None, "budget_minor": -100}))
    await login(client, tenant.email)

    draft = await client.get(f"{BASE}/draft")
    status = text_of(draft.text.split('id="builder-status"', 1)[1].split("</div>", 1)[0])
    assert "3 problems" in status
    assert "Promotion 1 (Summer 15 %): the percent off is a whole number from 1 to 100" in status
    assert "Promotion 2 (Two for one), lines to buy" in status and "GHOST is not in the catalog" in status
    assert "Promotion 2 (Two for one): the budget cannot be below zero" in status
    # each at its control
    percent = re.search(r'<input[^>]*id="p0\.effect\.percent"[^>]*>', draft.text)
    assert percent is not None and 'aria-invalid="true"' in percent.group(0)
    budget = re.search(r'<input[^>]*id="p1\.limits\.budget"[^>]*>', draft.text)
    assert budget is not None and 'aria-invalid="true"' in budget.group(0)
    links = set(re.findall(r'<a href="#([^"]+)" data-focus="\1">', draft.text))
    assert links == {"p0.effect.percent", "r6.0.value", "p1.limits.budget"}  # r6: promotion 2's lines to buy

    page = await client.get(f"{BASE}/publish")
    assert re.search(r'<button type="submit" disabled>Publish</button>', page.text)
    assert f'href="{BASE}/draft#p0.effect.percent"' in page.text
    refused = await post_form(client, f"{BASE}/publish", {"when": "now"})
    assert refused.status_code == 422
    assert "Promotion 1 (Summer 15 %)" in refused.text and "Promotion 2 (Two for one)" in refused.text
    assert await versions_of(tenant) == []


# --- a sample cart --------------------------------------------------------------------------------------

async def test_a_sample_cart_shows_each_promotions_verdict_beside_the_version_in_force(client: AsyncClient) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    await products(client, key, ("TEE-1", 2000, "tops"), ("CAP-1", 1000, "hats"))
    vips = await make_segment(tenant, "VIP", {"all": [{"field": "customer.tags", "op": "has", "value": "vip"}]})
    await set_draft(tenant, promotion("p-ten", "Ten off", effect={"kind": "percent_off", "target": "order",
                                                                  "percent": 10, "lines": None}))
    await login(client, tenant.email)
    assert (await post_form(client, f"{BASE}/publish", {"when": "now"})).status_code == 303
    await set_draft(
        tenant,
        promotion("p-summer", "Summer 15 %"),
        promotion("p-vip", "VIP caps", segment=vips, priority=10,
                  effect={"kind": "percent_off", "target": "lines", "percent": 50,
                          "lines": {"field": "line.category", "op": "eq", "value": "hats"}}))
    await client.get(f"{BASE}/draft")

    response = await client.post(f"{BASE}/simulate", headers={**csrf_headers(client), "HX-Request": "true"}, data={
        "channel": "web", "line.0.sku": "TEE-1", "line.0.quantity": "2", "line.1.sku": "CAP-1",
        "line.1.quantity": "1", "line.1.price": "12,00", "email": "nobody@example.test"})
    assert response.status_code == 200, response.text
    result = response.text.split('id="simulation-result"', 1)[1]
    draft_side, current_side = result.split('<section class="decision"')[1:3]
    # 2 x 20,00 + 12,00 = 52,00: the draft's 15 % off the order is 7,80
    assert "Summer 15 %" in draft_side and f"applied: {MINUS}7,80" in text_of(draft_side)
    vip = draft_side.split('data-promotion="p-vip"', 1)[1].split("</li>", 1)[0]
    assert 'data-reason="segment"' in vip and "“VIP”" in vip
    assert "v1 (in force)" in current_side and f"applied: {MINUS}5,20" in text_of(current_side)
    assert "not a customer yet" in response.text

    refused = await client.post(f"{BASE}/simulate", headers={**csrf_headers(client), "HX-Request": "true"}, data={
        "line.0.sku": "NOPE", "line.0.quantity": "1", "line.1.sku": "TEE-1", "line.1.quantity": "0"})
    assert refused.status_code == 200
    assert 'id="line.1.quantity-error"' in refused.text
    assert 'hx-swap-oob="true"' in refused.text


# --- replay ---------------------------------------------------------------------------------------------

async def test_replay_shows_last_weeks_orders_discounted_and_where_a_limit_is_reached(client: AsyncClient) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    sku = f"SKU-{uuid.uuid4().hex[:6]}"
    await products(client, key, (sku, 4000, "coats"))
    now = datetime.now(UTC).replace(microsecond=0)
    numbers = {}
    for days, quantity in ((10, 1), (5, 1), (3, 2), (1, 1)):
        body = order_body((sku, quantity, 4000), placed_at=(now - timedelta(days=days)).isoformat(),
                          external_number=unique("ext"))
        numbers[days] = (await capture(client, key, body))["number"]
    await set_draft(tenant, promotion("p-summer", "Summer 15 %", limits={"total_uses": 2, "per_customer": None,
                                                                          "budget_minor": None}),
                    promotion("p-big", "Big baskets", priority=5,
                              when={"field": "order.total", "op": "gte", "value": 100000}))
    await login(client, tenant.email)
    await client.get(f"{BASE}/draft")

    response = await client.post(f"{BASE}/replay", data={"days": "7", "limit": "1000"},
                                 headers={**csrf_headers(client), "HX-Request": "true"})
    assert response.status_code == 200, response.text
    assert '<span id="replay-count">2 of 3 orders</span> would have been discounted' in response.text
    rows = re.findall(r'<tr class="(changed|unchanged)" data-order="([^"]+)"', response.text)
    assert rows == [("changed", numbers[5]), ("changed", numbers[3]), ("unchanged", numbers[1])]
    # 15 % of 40,00 and of 80,00
    assert text_of(response.text.split('id="replay-total">', 1)[1].split("</strong>", 1)[0]) == "18,00 €"
    last = response.text.split(f'data-order="{numbers[1]}"', 1)[1].split("</details>", 1)[0]
    assert "limit would be reached" not in last  # the badge is in the promotions table
    assert 'data-reason="limit_reached"' in last and 'data-reason="condition_false"' in last
    assert "Order total is at least" in text_of(last)
    table = response.text.split('id="replay-promotions"', 1)[1].split("</table>", 1)[0]
    summer = table.split('data-promotion="p-summer"', 1)[1].split("</tr>", 1)[0]
    assert "limit would be reached" in summer and numbers[1] in summer
    assert numbers[10] not in response.text


async def test_replay_prices_orders_as_sent_before_the_promotions_they_got(client: AsyncClient) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    sku = f"SKU-{uuid.uuid4().hex[:6]}"
    await products(client, key, (sku, 5000, "coats"))
    await set_draft(tenant, promotion("p-ten", "Ten off", effect={"kind": "percent_off", "target": "order",
                                                                  "percent": 10, "lines": None}))
    await login(client, tenant.email)
    await client.get(f"{BASE}/draft")
    assert (await post_form(client, f"{BASE}/publish", {"when": "now"})).status_code == 303
    body = order_body((sku, 2, 5000), placed_at=datetime.now(UTC).isoformat())
    order = await capture(client, key, body)
    assert order["discount_minor"] == 1000, order  # 10 % of 100,00, added at capture

    await set_draft(tenant, promotion("p-twenty", "Twenty off", effect={"kind": "percent_off", "target": "order",
                                                                        "percent": 20, "lines": None}))
    response = await client.post(f"{BASE}/replay", data={"days": "1"},
                                 headers={**csrf_headers(client), "HX-Request": "true"})
    row = response.text.split(f'data-order="{order["number"]}"', 1)[1].split("</tr>", 1)[0]
    assert "100,00" in row and f"{MINUS}20,00" in row  # 20 % of the price as sent, not of the discounted one


# --- another company ------------------------------------------------------------------------------------

async def test_another_company_sees_none_of_it(client: AsyncClient, make_client: Any) -> None:
    tenant = await create_tenant()
    await set_draft(tenant, promotion("p-secret", "Secret sale"))
    await login(client, tenant.email)
    await client.get(f"{BASE}/draft")
    assert (await post_form(client, f"{BASE}/publish", {"when": "now"})).status_code == 303
    sku = f"SKU-{uuid.uuid4().hex[:6]}"
    await products(client, tenant.api_key, (sku, 3000, "tops"))
    first = await capture(client, tenant.api_key, order_body((sku, 1, 3000)))

    other = await create_tenant()
    intruder = await make_client()
    await login(intruder, other.email)
    for path in (BASE, f"{BASE}/draft", f"{BASE}/publish"):
        page = await intruder.get(path)
        assert page.status_code == 200, path
        assert "Secret sale" not in page.text and "p-secret" not in page.text, path
    assert (await intruder.get(f"{BASE}/versions/1")).status_code == 404
    assert (await post_form(intruder, f"{BASE}/versions/1/withdraw")).status_code == 404
    assert (await post_form(intruder, f"{BASE}/versions/1/to-draft")).status_code == 404
    replayed = await intruder.post(f"{BASE}/replay", data={"days": "7"},
                                   headers={**csrf_headers(intruder), "HX-Request": "true"})
    assert replayed.status_code == 200 and first["number"] not in replayed.text
    assert "No orders in the last 7 days" in replayed.text
    assert (await versions_of(other)) == [] and len(await versions_of(tenant)) == 1


async def test_readers_see_the_promotions_in_words_and_cannot_edit(client: AsyncClient, make_client: Any) -> None:
    from test_routing_rules import read_only_member

    tenant = await create_tenant()
    await set_draft(tenant, promotion("p-summer", "Summer 15 %", limits={"total_uses": 100, "per_customer": 1,
                                                                          "budget_minor": 50000}))
    reader = await make_client()
    await login(reader, await read_only_member(tenant.tenant_id))
    page = await reader.get(f"{BASE}/draft")
    assert page.status_code == 200
    words = text_of(main_of(page.text))
    assert 'id="builder"' not in page.text and "You can read and simulate the draft" in words
    assert "1. Summer 15 % Every order (no conditions) Gives 15 % off the order" in words
    assert "100 uses in all, 1 per customer, a budget of 500,00 €" in words
    assert "Price a cart" in words and "Replay recent orders" in words
    refused = await reader.post(f"{BASE}/draft", data={"action": "add_promotion"}, headers=csrf_headers(reader))
    assert refused.status_code == 403
    assert (await reader.get(f"{BASE}/publish")).status_code == 403
