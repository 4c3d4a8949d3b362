"""The routing rules console as a merchandiser and a reader use it: an empty draft is not
publishable, a problem is shown at the control at fault, replay shows what changes first,
versions say what changed in words, readers never see JSON, amounts are read as people type
them and shown in the company's locale, and times are the company's."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

from httpx import AsyncClient
from test_routing_rules import (
    RULES,
    builder_post,
    document,
    draft_now,
    form_fields,
    get_json,
    insert_order,
    leaf,
    overview,
    publish,
    publish_ok,
    read_only_member,
    rule,
    save_draft,
)

from factories import create_tenant, csrf_headers, login, post_form
from inventory_factories import API, location_body, make_locations, product_body, stock_up


class _Elements(HTMLParser):
    """Every element's attributes, by id."""

    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[str, dict[str, str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        a["<tag>"] = tag
        if "id" in a:
            self.by_id[a["id"]] = a


def elements(html: str) -> dict[str, dict[str, str]]:
    parser = _Elements()
    parser.feed(html)
    return parser.by_id


def main_of(html: str) -> str:
    """The page's own content, without the layout (whose htmx headers are JSON)."""
    return html[html.index('<main id="main"'):html.index("</main>")]


def text_of(html: str) -> str:
    """The words of a fragment, tags removed and spaces collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


# --- an empty draft -------------------------------------------------------------------------------

async def test_an_empty_draft_is_not_ready_to_publish(client: AsyncClient) -> None:
    tenant = await create_tenant()
    await login(client, tenant.email)

    draft = await client.get("/app/rules/draft")
    assert draft.status_code == 200
    status = text_of(draft.text[draft.text.index('id="builder-status"'):draft.text.index("</div>",
                                                                                        draft.text.index(
                                                                                            'id="builder-status"'))])
    assert "The draft has no rules yet: add a rule before publishing." in status
    assert "Valid" not in status and "Ready to simulate and publish" not in status
    assert re.search(r'<button type="button" class="small" disabled[^>]*>Publish…</button>', draft.text)
    assert 'href="/app/rules/publish"' not in main_of(draft.text)

    form = await client.get("/app/rules/publish")
    assert form.status_code == 200
    assert "The draft has no rules yet: add a rule before publishing." in form.text
    assert re.search(r'<button type="submit" disabled>Publish</button>', form.text)

    refused = await post_form(client, "/app/rules/publish", {"when": "now"})
    assert refused.status_code == 422
    assert "The draft has no rules yet" in refused.text
    by_api = await publish(client, tenant.api_key)
    assert by_api.status_code == 422
    [error] = by_api.json()["errors"]
    assert error["field"] == "rules"
    assert error["message"] == "The draft has no rules yet: add a rule before publishing."
    assert (await overview(client, tenant.api_key))["versions"] == []
    assert "no rules yet" in (await client.get("/app/rules")).text

    # One rule later, the draft is valid and can be published.
    revision = (await draft_now(client, tenant.api_key))["revision"]
    await builder_post(client, {"revision": str(revision), "action": "add_rule"})
    ready = await client.get("/app/rules/draft")
    assert "Ready to simulate and publish" in ready.text
    assert '<a href="/app/rules/publish" role="button" class="small">Publish…</a>' in ready.text
    assert (await post_form(client, "/app/rules/publish", {"when": "now"})).status_code == 303


# --- a problem at its control --------------------------------------------------------------------

async def test_a_problem_marks_the_control_at_fault(client: AsyncClient) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    near = rule("near", "Near ones", when={"all": [leaf("order.channel", "eq", "web"),
                                                   leaf("order.total", "gte", 5000)]},
                filters=[{"kind": "offers_delivery_mode"}, {"kind": "within_distance", "km": 50}])
    await save_draft(client, key, document(near))
    await login(client, tenant.email)
    fields = form_fields((await client.get("/app/rules/draft")).text)
    fields.update({"r0.1.value": ["lots"], "r0.then.filters.1.km": ["far"], "r0.name": [""]})
    posted = {name: values[0] for name, values in fields.items()}
    response = await builder_post(client, {**posted, "action": ""}, htmx=True)
    assert response.status_code == 200, response.text
    found = elements(response.text)

    # The condition's value, not its field or operator, is the control at fault.
    value = found["r0.1.value"]
    assert value["aria-invalid"] == "true" and value["aria-describedby"] == "r0.1-error"
    assert "aria-invalid" not in found["r0.1.field"] and "aria-invalid" not in found["r0.1.op"]
    assert "aria-invalid" not in found["r0.0.value"]
    assert "Order total" in text_of(response.text.split('id="r0.1-error"', 1)[1].split("</small>", 1)[0])

    # The filter's distance, with its message right after it.
    km = found["r0.then.filters.1.km"]
    assert km["aria-invalid"] == "true" and km["aria-describedby"] == "r0.then.filters.1.km-error"
    message = response.text.split('id="r0.then.filters.1.km-error">', 1)[1].split("</small>", 1)[0]
    assert "distance is a number of km" in message
    assert response.text.index('id="r0.then.filters.1.km"') < response.text.index('id="r0.then.filters.1.km-error"')

    # The rule's name.
    assert found["r0.name"]["aria-invalid"] == "true"
    assert "give the rule a name" in response.text

    # The list at the top links to each control, to jump there.
    links = re.findall(r'<a href="#([^"]+)" data-focus="\1">', response.text)
    assert set(links) == {"r0.name", "r0.1.value", "r0.then.filters.1.km"}
    assert "3 problems" in response.text

    # The publish page links each problem to the same controls of the draft.
    publish_page = await client.get("/app/rules/publish")
    assert 'href="/app/rules/draft#r0.then.filters.1.km"' in publish_page.text
    assert 'href="/app/rules/draft#r0.1.value"' in publish_page.text
    assert re.search(r'<button type="submit" disabled>Publish</button>', publish_page.text)


async def test_pickers_read_as_actions_and_the_duplicate_button_has_no_font_glyph(client: AsyncClient) -> None:
    tenant = await create_tenant()
    await save_draft(client, tenant.api_key, document(rule("a", "All orders")))
    await login(client, tenant.email)
    page = (await client.get("/app/rules/draft")).text
    for picker, prompt in (("r0.new_field", "Add a condition on…"), ("r0.then.new_filter", "Add a filter…"),
                           ("r0.then.new_sort", "Add a preference…")):
        select = page.split(f'id="{picker}"', 1)[1].split("</select>", 1)[0]
        assert 'class="picker"' in page.split(f'id="{picker}"', 1)[0].rsplit("<select", 1)[1]
        first = re.search(r"<option[^>]*>[^<]*</option>", select)
        assert first is not None and first.group(0) == f'<option value="" disabled selected>{prompt}</option>'
    # the picker of preferences offers only those the rule does not have yet
    sorts = page.split('id="r0.then.new_sort"', 1)[1].split("</select>", 1)[0]
    assert 'value="priority"' not in sorts and 'value="distance"' in sorts
    duplicate = re.search(r'<button[^>]*value="duplicate_rule:0"[^>]*>(.*?)</button>', page, re.S)
    assert duplicate is not None and 'aria-label="Duplicate rule 1"' in duplicate.group(0)
    assert duplicate.group(1).lstrip().startswith("<svg") and 'aria-hidden="true"' in duplicate.group(1)
    assert "⧉" not in page


# --- money as people write it -----------------------------------------------------------------------

async def test_amounts_are_read_as_typed_and_shown_in_the_company_locale(client: AsyncClient) -> None:
    tenant = await create_tenant()  # a French company: "59,00 €"
    key = tenant.api_key
    await save_draft(client, key, document(rule("big", "Big baskets", when={"all": [
        leaf("order.total", "gte", 100), leaf("order.total", "between", [100, 200])]})))
    await login(client, tenant.email)
    await client.get("/app/rules/draft")

    for typed, minor in (("59,00", 5900), ("59,00 €", 5900), ("59.00", 5900), ("1 234,56", 123456),
                         ("€1,234.56", 123456)):
        revision = (await draft_now(client, key))["revision"]
        response = await builder_post(client, {
            "revision": str(revision), "r0.present": "1", "r0.name": "Big baskets", "r0.enabled": "on",
            "r0.0.field": "order.total", "r0.0.op": "gte", "r0.0.value": typed,
            "r0.1.field": "order.total", "r0.1.op": "between", "r0.1.value": "10", "r0.1.value2": typed,
            "r0.then.present": "1", "r0.then.type.0": "warehouse", "r0.then.fallback.0": "split",
            "r0.then.fallback.1": "hold", "r0.then.split.max_shipments": "2",
            "r0.then.split.min_order_value": typed}, htmx=True)
        assert response.status_code == 200, typed
        saved = (await draft_now(client, key))["document"]["rules"][0]
        assert saved["when"]["all"][0]["value"] == minor, typed
        assert saved["when"]["all"][1]["value"] == [1000, minor], typed
        assert saved["then"]["split"]["min_order_value"] == minor, typed
        assert (await draft_now(client, key))["problems"] == [], typed

    shown = form_fields((await client.get("/app/rules/draft")).text)
    assert shown["r0.0.value"] == ["1234,56"] and shown["r0.1.value"] == ["10,00"]
    assert shown["r0.then.split.min_order_value"] == ["1234,56"]

    # the sample order's total, typed the same ways
    await save_draft(client, key, document(rule("big", "Big baskets", when={"all": [leaf("order.total", "gte", 5900)]},
                                                types=("warehouse",), fallback=("hold",))))
    simulated = await post_form(client, "/app/rules/simulate", {"line.0.sku": "ANY", "line.0.quantity": "1",
                                                                 "total": "59,00 €"})
    assert simulated.status_code == 200
    assert "Order total is at least 59.00 EUR: yes" in simulated.text
    refused = await post_form(client, "/app/rules/simulate", {"line.0.sku": "ANY", "line.0.quantity": "0",
                                                               "total": "a lot", "country": "France"})
    assert refused.status_code == 200  # a fragment htmx swaps in, with the form and its problems
    found = elements(refused.text)
    for name in ("total", "line.0.quantity", "country"):
        assert f'id="{name}-error"' in refused.text, name
    assert "write it like 59,00\xa0€" in refused.text
    assert 'value="a lot"' in refused.text  # what was typed stays, to correct it
    assert found["simulate-form"]["hx-swap-oob"] == "true"

    # the version summary shows amounts as the company reads them
    await publish_ok(client, key)
    version = await client.get("/app/rules/versions/1")
    assert "Order total is at least 59,00 €" in text_of(main_of(version.text))


# --- replay ---------------------------------------------------------------------------------------

async def test_replay_shows_changed_orders_first_and_hides_the_others(client: AsyncClient) -> None:
    from core import clock
    from core.locale import format_time

    tenant = await create_tenant(timezone="Europe/Paris")
    key = tenant.api_key
    wh, store, a, b = "WH-RC", "ST-RC", "RC-A", "RC-B"
    await make_locations(
        client, key,
        location_body(wh, latitude=45.764, longitude=4.8357, priority=10),
        location_body(store, kind="store", latitude=48.8606, longitude=2.3376, ships_to_customers=False,
                      ship_from_store=True, priority=20),
    )
    response = await client.post(f"{API}/products/import", headers={"Authorization": f"Bearer {key}"}, json={
        "products": [product_body(a, category="summer"), product_body(b, category="winter")]})
    assert response.status_code == 200, response.text
    now = datetime.now(UTC).replace(microsecond=0)
    with clock.frozen_at(now - timedelta(days=20)):
        await stock_up(client, key, {(a, wh): 10, (b, wh): 10, (a, store): 10})
    placed = {"O-1": now - timedelta(days=3), "O-2": now - timedelta(days=2, hours=5),
              "O-3": now - timedelta(days=1), "O-4": now - timedelta(hours=12)}
    for number, sku in (("O-1", a), ("O-2", b), ("O-3", a), ("O-4", b)):
        await insert_order(tenant.tenant_id, number, placed[number], [(sku, 1, "x", 1999)])
    await save_draft(client, key, document(rule("wh", "Warehouse only", types=("warehouse",))))
    await publish_ok(client, key)
    await save_draft(client, key, document(rule("st", "Stores first", types=("store", "warehouse"))))
    await login(client, tenant.email)
    await client.get("/app/rules/draft")

    headers = {**csrf_headers(client), "HX-Request": "true"}
    shown = await client.post("/app/rules/replay", data={"days": "7", "limit": "1000"}, headers=headers)
    assert shown.status_code == 200
    assert '<span id="replay-count">2 of 4 orders</span> would change' in shown.text
    assert re.findall(r'<tr class="(?:changed|unchanged)" data-order="([^"]+)"', shown.text) == ["O-1", "O-3"]
    assert "2 unchanged orders hidden" in shown.text
    toggle = elements(shown.text)["show-unchanged"]
    assert "checked" not in toggle and toggle["name"] == "show_unchanged"
    # times in the company's time zone and locale
    assert format_time(placed["O-1"], "Europe/Paris", "fr_FR") in shown.text
    assert format_time(placed["O-1"], "UTC", "fr_FR") not in shown.text

    everything = await client.post("/app/rules/replay", data={"days": "7", "limit": "1000", "show_unchanged": "1"},
                                   headers=headers)
    rows = re.findall(r'<tr class="(changed|unchanged)" data-order="([^"]+)"', everything.text)
    assert rows == [("changed", "O-1"), ("changed", "O-3"), ("unchanged", "O-2"), ("unchanged", "O-4")]
    assert "checked" in elements(everything.text)["show-unchanged"]
    assert "unchanged orders hidden" not in everything.text

    # nothing changes when the draft is the version in force
    await save_draft(client, key, document(rule("wh", "Warehouse only", types=("warehouse",))))
    same = await client.post("/app/rules/replay", data={"days": "7", "limit": "1000"}, headers=headers)
    assert '<span id="replay-count">0 of 4 orders</span> would change' in same.text
    assert "No order would change" in same.text


# --- versions in words --------------------------------------------------------------------------------

def v1_document() -> dict[str, Any]:
    return document(
        rule("big", "Big baskets", when={"all": [leaf("order.total", "gte", 10000)]}, types=("warehouse",)),
        rule("summer", "summer", when={"all": [leaf("line.category", "in", ["summer"])]}, types=("store",)),
        rule("rest", "Everything else"),
    )


def v2_document() -> dict[str, Any]:
    return document(
        rule("summer", "Summer from stores", when={"all": [leaf("line.category", "in", ["summer"])]},
             types=("store",)),
        rule("big", "Big baskets", when={"all": [leaf("order.total", "gte", 5900)]}, types=("warehouse",)),
        rule("vip", "VIP customers", when={"all": [leaf("customer.tags", "has", "vip")]}, types=("store",)),
        otherwise="backorder",
    )


async def test_a_version_says_what_changed_from_the_one_before(client: AsyncClient) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    await save_draft(client, key, v1_document())
    await publish_ok(client, key)
    await save_draft(client, key, v2_document())
    await login(client, tenant.email)

    # Before publishing: what the draft changes from the version in force.
    before = await client.get("/app/rules/publish")
    changes = text_of(before.text.split('id="changes-title">', 1)[1].split("</section>", 1)[0])
    assert "compared with v1, in force now" in changes
    for words in ("1 added", "2 changed", "1 removed",
                  "Added: “VIP customers”", "Customer tags has vip",
                  "Removed: “Everything else”", "Was at position 3",
                  "Changed: “Summer from stores”", "Renamed from “summer”",
                  "Changed: “Big baskets”", "Order total is at least 100,00 €", "Order total is at least 59,00 €",
                  "When no rule gives a plan: the order is backordered (was held for customer service)"):
        assert words in changes, words
    assert "Moved to position" in changes

    await publish_ok(client, key)
    page = await client.get("/app/rules/versions/2")
    assert page.status_code == 200
    section = text_of(page.text.split('id="changes-title">', 1)[1].split("</section>", 1)[0])
    assert section.startswith("What changed from v1")
    for words in ("Added: “VIP customers”", "Removed: “Everything else”", "Renamed from “summer”",
                  "Order total is at least 100,00 €", "Order total is at least 59,00 €"):
        assert words in section, words
    # the summary of the rules themselves, in the same words
    assert "When all of these hold: Order total is at least 59,00 €" in text_of(main_of(page.text))

    first = text_of(main_of((await client.get("/app/rules/versions/1")).text))
    assert "The first version: every rule is new." in first

    # Republishing the same rules changes nothing, and says so.
    await publish_ok(client, key)
    same = text_of(main_of((await client.get("/app/rules/versions/3")).text))
    assert "What changed from v2 Nothing changes: the rules are the same as v2." in same


async def test_readers_see_the_rules_in_words_never_as_json(client: AsyncClient, make_client: Any) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    await save_draft(client, key, v1_document())
    await publish_ok(client, key)
    await save_draft(client, key, v2_document())
    reader = await make_client()
    await login(reader, await read_only_member(tenant.tenant_id))

    for path in ("/app/rules/draft", "/app/rules/versions/1", "/app/rules"):
        page = await reader.get(path)
        assert page.status_code == 200, path
        content = main_of(page.text)
        assert '{"' not in content and '"location_types"' not in content and "Show JSON" not in content, path
        assert 'class="document"' not in content, path
    draft = text_of(main_of((await reader.get("/app/rules/draft")).text))
    for words in ("You can read and simulate the draft", "1. Summer from stores", "Line category is one of summer",
                  "Ship from stores", "When no rule gives a plan, the order is backordered."):
        assert words in draft, words
    assert "Simulate an order" in draft  # a reader may try the draft
    assert 'id="builder"' not in (await reader.get("/app/rules/draft")).text

    # those who edit the rules may still read the JSON of a version
    await login(client, tenant.email)
    assert "Show JSON" in (await client.get("/app/rules/versions/1")).text


# --- times ----------------------------------------------------------------------------------------------

async def test_times_are_shown_in_the_company_time_zone(client: AsyncClient) -> None:
    tenant = await create_tenant(timezone="Europe/Paris")
    key = tenant.api_key
    await save_draft(client, key, v1_document())
    # 22:00 UTC on 30 September is midnight on 1 October in Paris
    published = await publish_ok(client, key, effective_from="2027-09-30T22:00:00+00:00", note="autumn")
    assert published["number"] == 1
    await login(client, tenant.email)

    version = text_of(main_of((await client.get("/app/rules/versions/1")).text))
    assert "From 1 oct. 2027, 00:00:00" in version
    assert "30 Sept 2027" not in version and "22:00" not in version
    timeline = text_of(main_of((await client.get("/app/rules")).text))
    assert "From 1 oct. 2027, 00:00:00" in timeline

    versions = await get_json(client, key, RULES)
    assert versions["versions"][0]["effective_from_local"] == "2027-10-01T00:00:00+02:00"
