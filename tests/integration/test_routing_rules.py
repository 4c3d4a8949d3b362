"""Routing rules ("Routing rules" issue): the draft and its validation, publishing on a schedule
in the company's time zone, rollbacks and withdrawals, simulation and replay against the stock
ledger, roles, and the console's visual builder and publish form."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from httpx import AsyncClient

from factories import PASSWORD, bearer, create_tenant, csrf_headers, login, post_form, unique
from inventory_factories import API, adjust, location_body, make_locations, product_body, stock_up

RULES = f"{API}/rule-sets/routing"

# --- documents --------------------------------------------------------------------------------


def leaf(field: str, op: str, value: Any) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


def rule(rule_id: str, name: str, *, when: dict[str, Any] | None = None,
         types: tuple[str, ...] = ("warehouse", "store"), filters: list[dict[str, Any]] | None = None,
         sorts: tuple[str, ...] = ("priority",), fallback: tuple[str, ...] = ("split", "hold"),
         max_shipments: int = 2) -> dict[str, Any]:
    return {
        "id": rule_id, "name": name, "enabled": True, "when": when,
        "then": {
            "location_types": list(types),
            "filters": [{"kind": "offers_delivery_mode"}] if filters is None else filters,
            "sorts": [{"by": by, "band": 0} for by in sorts],
            "split": {"max_shipments": max_shipments, "min_order_value": 0, "never_split_line": False},
            "fallback": list(fallback),
        },
    }


def document(*rules: dict[str, Any], otherwise: str = "hold") -> dict[str, Any]:
    return {"rules": list(rules), "otherwise": otherwise}


def big_orders_document() -> dict[str, Any]:
    return document(
        rule("big", "Big orders from the warehouse", when={"all": [leaf("order.total", "gte", 10000)]},
             types=("warehouse",)),
        rule("rest", "Everything else"),
    )


WAREHOUSE_ONLY = document(rule("wh", "Warehouse only", types=("warehouse",)))


# --- API helpers ------------------------------------------------------------------------------


async def get_json(client: AsyncClient, key: str, path: str) -> Any:
    response = await client.get(path, headers=bearer(key))
    assert response.status_code == 200, response.text
    return response.json()


async def put_draft(client: AsyncClient, key: str, doc: Any, revision: int | None = None) -> Any:
    body: dict[str, Any] = {"document": doc}
    if revision is not None:
        body["revision"] = revision
    return await client.put(f"{RULES}/draft", json=body, headers=bearer(key))


async def save_draft(client: AsyncClient, key: str, doc: dict[str, Any]) -> int:
    response = await put_draft(client, key, doc)
    assert response.status_code == 200, response.text
    return response.json()["revision"]


async def publish(client: AsyncClient, key: str, headers: dict[str, str] | None = None, **body: Any) -> Any:
    return await client.post(f"{RULES}/versions", json=body, headers={**bearer(key), **(headers or {})})


async def publish_ok(client: AsyncClient, key: str, **body: Any) -> dict[str, Any]:
    response = await publish(client, key, **body)
    assert response.status_code == 201, response.text
    return response.json()


async def overview(client: AsyncClient, key: str) -> dict[str, Any]:
    return await get_json(client, key, RULES)


async def set_invalid_draft(client: AsyncClient, tenant: Any) -> None:
    """An invalid draft, as the console's builder may save one (the API refuses them)."""
    from sqlalchemy import update

    from core.db import get_database
    from rules.models import RuleSet

    await get_json(client, tenant.api_key, f"{RULES}/draft")  # the rule set is created on first use
    tenant_id = tenant.tenant_id
    bad = document(rule("bad", "Broken rule", when=leaf("order.total", "gte", "a lot")))
    async with get_database().transaction(tenant_id=tenant_id) as session:
        result = await session.execute(update(RuleSet).where(RuleSet.tenant_id == tenant_id,
                                                             RuleSet.kind == "routing").values(draft=bad))
        assert result.rowcount == 1


def problems_of(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()["errors"]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class _FormFields(HTMLParser):
    """The (name, value) pairs a browser would post for one form, without pressing any button."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.fields: list[tuple[str, str]] = []
        self.select: tuple[str, bool] | None = None
        self.options: list[tuple[str, bool]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside:
            return
        if tag == "input" and a.get("name"):
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.fields.append((a["name"], a.get("value") or "on"))
            elif kind not in ("submit", "button"):
                self.fields.append((a["name"], a.get("value", "")))
        elif tag == "select" and a.get("name"):
            self.select, self.options = (a["name"], "multiple" in a), []
        elif tag == "option" and self.select is not None:
            self.options.append((a.get("value", ""), "selected" in a))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        if tag == "select" and self.select is not None:
            name, multiple = self.select
            chosen = [v for v, selected in self.options if selected]
            if not multiple and not chosen and self.options:
                chosen = [self.options[0][0]]
            self.fields += [(name, v) for v in (chosen if multiple else chosen[:1])]
            self.select = None


def form_fields(html: str, form_id: str = "builder") -> dict[str, list[str]]:
    parser = _FormFields(form_id)
    parser.feed(html)
    fields: dict[str, list[str]] = {}
    for name, value in parser.fields:
        fields.setdefault(name, []).append(value)
    return fields


# --- 1. the draft through the API -------------------------------------------------------------


async def test_field_registry_lists_fields_with_their_operators(client) -> None:
    tenant = await create_tenant()
    registry = {f["key"]: f for f in await get_json(client, tenant.api_key, f"{API}/rules/fields")}
    assert registry["order.total"]["type"] == "money"
    assert {o["op"] for o in registry["order.total"]["operators"]} >= {"gte", "between"}
    assert "in" not in {o["op"] for o in registry["order.total"]["operators"]}
    assert registry["line.category"]["choices"] is None  # the tenant's own categories
    assert {c["value"] for c in registry["order.delivery_mode"]["choices"]} == {"ship", "pickup"}


async def test_draft_is_saved_and_read_back_with_a_new_revision(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    empty = await get_json(client, key, f"{RULES}/draft")
    assert empty["document"] == {"rules": [], "otherwise": "hold"}
    assert empty["problems"] == []

    doc = big_orders_document()
    saved = await put_draft(client, key, doc, revision=empty["revision"])
    assert saved.status_code == 200, saved.text
    assert saved.json()["revision"] == empty["revision"] + 1

    draft = await get_json(client, key, f"{RULES}/draft")
    assert draft["document"] == doc
    assert draft["revision"] == empty["revision"] + 1
    assert draft["problems"] == []
    assert draft["updated_by"].startswith("API key")
    assert (await overview(client, key))["draft_revision"] == draft["revision"]


@pytest.mark.parametrize(("bad", "path", "words"), [
    (leaf("order.colour", "eq", "red"), "rules[0].when.field", ["Rule 1 “Broken”", "row 1", "unknown field"]),
    (leaf("order.total", "in", [1000]), "rules[0].when.op",
     ["Rule 1 “Broken”", "row 1 (Order total)", "does not fit a money field"]),
    ({"all": [leaf("order.channel", "eq", "web"), leaf("order.total", "gte", "49.90")]},
     "rules[0].when.all[1].value", ["Rule 1 “Broken”", "row 2 (Order total)", "'49.90'", "minor units"]),
    ({"all": [leaf("order.channel", "eq", "web"), {"any": []}]}, "rules[0].when.all[1]",
     ["Rule 1 “Broken”", "group 2 (any) is empty"]),
    ({"all": [leaf("order.channel", "eq", "fax")]}, "rules[0].when.all[0].value",
     ["Rule 1 “Broken”", "row 1 (Channel)", "'fax' is not one of the channels"]),
])
async def test_invalid_condition_is_refused_naming_rule_and_row(client, bad, path, words) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    revision = await save_draft(client, key, big_orders_document())

    response = await put_draft(client, key, document(rule("ok", "Fine"), rule("broken", "Broken", when=bad)))
    errors = problems_of(response)
    # the broken rule is the second one: its problems are numbered as the merchandiser sees them
    assert [e["field"] for e in errors] == [path.replace("rules[0]", "rules[1]")]
    message = errors[0]["message"]
    for word in words:
        assert word.replace("Rule 1", "Rule 2") in message, message
    assert response.json()["title"] == "Invalid rules"

    draft = await get_json(client, key, f"{RULES}/draft")
    assert draft["revision"] == revision
    assert draft["document"] == big_orders_document()


async def test_invalid_sourcing_and_document_are_refused_with_every_problem(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    revision = await save_draft(client, key, big_orders_document())

    no_terminal = rule("a", "Stores first", fallback=("split",))
    terminal_first = rule("b", "Hold first", fallback=("hold", "split"))
    no_types = rule("c", "Nowhere", types=())
    response = await put_draft(client, key, document(no_terminal, terminal_first, no_types, otherwise="split"))
    errors = problems_of(response)
    by_field = {e["field"]: e["message"] for e in errors}
    assert "fallback is a list of steps" in by_field["rules[0].then.fallback"] or \
        "ends with exactly one of" in by_field["rules[0].then.fallback"]
    assert "Rule 1 “Stores first”" in by_field["rules[0].then.fallback"]
    assert "Rule 2 “Hold first”" in by_field["rules[1].then.fallback"]
    assert "ends with exactly one of next rule, backorder or hold" in by_field["rules[1].then.fallback"]
    assert "Rule 3 “Nowhere”" in by_field["rules[2].then.location_types"]
    assert "held or backordered" in by_field["otherwise"]
    assert "(and 3 more)" in response.json()["detail"]

    unknown_step = await put_draft(client, key, document(rule("d", "Odd", fallback=("teleport", "hold"))))
    assert "rules[0].then.fallback" in [e["field"] for e in problems_of(unknown_step)]
    duplicate_ids = await put_draft(client, key, document(rule("same", "One"), rule("same", "Two")))
    assert [e["field"] for e in problems_of(duplicate_ids)] == ["rules[1].id"]

    draft = await get_json(client, key, f"{RULES}/draft")
    assert draft["revision"] == revision
    assert draft["document"] == big_orders_document()


async def test_stale_revision_is_refused_with_409_and_changes_nothing(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    first = (await get_json(client, key, f"{RULES}/draft"))["revision"]
    mine = await save_draft(client, key, big_orders_document())
    assert mine == first + 1

    stale = await put_draft(client, key, WAREHOUSE_ONLY, revision=first)
    assert stale.status_code == 409, stale.text
    assert stale.headers["content-type"].startswith("application/problem+json")
    assert "saved the draft since you opened it" in stale.json()["detail"]

    draft = await get_json(client, key, f"{RULES}/draft")
    assert draft["revision"] == mine
    assert draft["document"] == big_orders_document()

    fresh = await put_draft(client, key, WAREHOUSE_ONLY, revision=mine)
    assert fresh.status_code == 200, fresh.text
    assert (await get_json(client, key, f"{RULES}/draft"))["document"] == WAREHOUSE_ONLY


async def test_validate_reports_problems_without_saving(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    revision = await save_draft(client, key, WAREHOUSE_ONLY)

    bad = document(rule("x", "Summer", when=leaf("line.category", "in", [])))
    checked = await client.post(f"{RULES}/validate", json={"document": bad}, headers=bearer(key))
    assert checked.status_code == 200, checked.text
    assert checked.json()["valid"] is False
    [problem] = checked.json()["problems"]
    assert problem["path"] == "rules[0].when.value"
    assert "Rule 1 “Summer”" in problem["message"] and "at least one value" in problem["message"]

    good = await client.post(f"{RULES}/validate", json={"document": big_orders_document()}, headers=bearer(key))
    assert good.json() == {"valid": True, "problems": []}

    draft = await get_json(client, key, f"{RULES}/draft")
    assert draft["revision"] == revision
    assert draft["document"] == WAREHOUSE_ONLY


# --- 2. publishing --------------------------------------------------------------------------------


async def test_publish_now_puts_the_version_in_force(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    assert (await overview(client, key))["in_force"] is None
    await save_draft(client, key, WAREHOUSE_ONLY)

    v1 = await publish_ok(client, key, note="first rules")
    assert v1["number"] == 1
    assert v1["status"] == "in force"
    assert v1["republished_from"] is None
    assert v1["effective_to"] is None
    assert v1["rules"] == 1
    assert abs(utc(v1["effective_from"]) - datetime.now(UTC)) < timedelta(minutes=1)

    seen = await overview(client, key)
    assert seen["in_force"] == 1
    assert seen["timezone"] == "Europe/Paris"
    assert [v["number"] for v in seen["versions"]] == [1]
    assert seen["versions"][0]["note"] == "first rules"
    assert [p["version"] for p in seen["upcoming"]] == [1]
    full = await get_json(client, key, f"{RULES}/versions/1")
    assert full["document"] == WAREHOUSE_ONLY
    listed = await get_json(client, key, f"{RULES}/versions")
    assert [(v["number"], v["status"]) for v in listed] == [(1, "in force")]
    assert "document" not in listed[0]
    assert (await client.get(f"{RULES}/versions/7", headers=bearer(key))).status_code == 404


async def test_scheduled_version_takes_effect_at_local_midnight_by_time_alone(client) -> None:
    from core import clock

    tenant = await create_tenant(timezone="Europe/Paris")
    key = tenant.api_key
    await save_draft(client, key, WAREHOUSE_ONLY)
    await publish_ok(client, key)
    await save_draft(client, key, big_orders_document())

    v2 = await publish_ok(client, key, effective_from="2027-10-01T00:00:00", note="autumn")
    assert v2["number"] == 2
    assert v2["status"] == "scheduled"
    assert utc(v2["effective_from"]) == datetime(2027, 9, 30, 22, 0, tzinfo=UTC)
    assert v2["effective_from_local"] == "2027-10-01T00:00:00+02:00"

    seen = await overview(client, key)
    assert seen["in_force"] == 1
    assert [(p["version"], p["until"] and utc(p["until"])) for p in seen["upcoming"]] == [
        (1, datetime(2027, 9, 30, 22, 0, tzinfo=UTC)), (2, None)]
    assert utc(seen["upcoming"][1]["from"]) == datetime(2027, 9, 30, 22, 0, tzinfo=UTC)
    assert {v["number"]: v["status"] for v in seen["versions"]} == {1: "in force", 2: "scheduled"}

    switch = datetime(2027, 9, 30, 22, 0, tzinfo=UTC)
    with clock.frozen_at(switch - timedelta(seconds=1)):
        before = await overview(client, key)
    with clock.frozen_at(switch):
        after = await overview(client, key)
        statuses = {v["number"]: v["status"] for v in after["versions"]}
    assert before["in_force"] == 1
    assert after["in_force"] == 2
    assert statuses == {1: "past", 2: "in force"}


async def test_version_with_an_end_overlays_and_hands_back(client) -> None:
    from core import clock

    tenant = await create_tenant()
    key = tenant.api_key
    await save_draft(client, key, WAREHOUSE_ONLY)
    await publish_ok(client, key)
    await save_draft(client, key, big_orders_document())
    black_friday = await publish_ok(client, key, effective_from="2027-11-26T00:00:00",
                                    effective_to="2027-11-29T00:00:00", note="Black Friday")
    assert black_friday["number"] == 2
    start, end = datetime(2027, 11, 25, 23, 0, tzinfo=UTC), datetime(2027, 11, 28, 23, 0, tzinfo=UTC)
    assert utc(black_friday["effective_from"]) == start
    assert utc(black_friday["effective_to"]) == end
    assert black_friday["effective_to_local"] == "2027-11-29T00:00:00+01:00"

    upcoming = (await overview(client, key))["upcoming"]
    assert [(p["version"], utc(p["from"]) if i else None, p["until"] and utc(p["until"]))
            for i, p in enumerate(upcoming)] == [(1, None, start), (2, start, end), (1, end, None)]

    seen = {}
    for at in (start - timedelta(minutes=1), start, end - timedelta(seconds=1), end, end + timedelta(days=30)):
        with clock.frozen_at(at):
            seen[at] = (await overview(client, key))["in_force"]
    assert list(seen.values()) == [1, 2, 2, 1, 1]


async def test_refused_publications_change_nothing(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    await save_draft(client, key, WAREHOUSE_ONLY)
    await publish_ok(client, key)

    past = await publish(client, key, effective_from="2020-01-01T00:00:00")
    assert [e["field"] for e in problems_of(past)] == ["effective_from"]
    assert "starts in the future" in past.json()["detail"]

    backwards = await publish(client, key, effective_from="2027-12-01T00:00:00", effective_to="2027-11-01T00:00:00")
    assert [e["field"] for e in problems_of(backwards)] == ["effective_to"]
    assert "end is before the start" in backwards.json()["detail"]

    ended = await publish(client, key, effective_to="2020-01-01T00:00:00Z")
    assert [e["field"] for e in problems_of(ended)] == ["effective_to"]

    skipped = await publish(client, key, effective_from="2027-03-28T02:30:00")
    [error] = problems_of(skipped)
    assert error["field"] == "effective_from"
    assert "2027-03-28 02:30 does not exist in Europe/Paris" in error["message"]

    await set_invalid_draft(client, tenant)
    invalid_draft = await publish(client, key)
    errors = problems_of(invalid_draft)
    assert invalid_draft.json()["title"] == "Invalid rules"
    assert [e["field"] for e in errors] == ["rules[0].when.value"]
    assert "Rule 1 “Broken rule”" in errors[0]["message"]
    assert "row 1 (Order total)" in errors[0]["message"] and "'a lot'" in errors[0]["message"]

    seen = await overview(client, key)
    assert [v["number"] for v in seen["versions"]] == [1]
    assert seen["in_force"] == 1


async def test_ambiguous_local_time_is_the_first_occurrence(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    await save_draft(client, key, WAREHOUSE_ONLY)
    # 02:30 on 31 October 2027 happens twice in Paris: the first one is still summer time (UTC+2)
    published = await publish_ok(client, key, effective_from="2027-10-31T02:30:00")
    assert utc(published["effective_from"]) == datetime(2027, 10, 31, 0, 30, tzinfo=UTC)
    # an explicit offset is taken as given
    explicit = await publish_ok(client, key, effective_from="2027-10-31T02:30:00+01:00")
    assert utc(explicit["effective_from"]) == datetime(2027, 10, 31, 1, 30, tzinfo=UTC)


async def test_rollback_republishes_an_earlier_document(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    await save_draft(client, key, WAREHOUSE_ONLY)
    await publish_ok(client, key)
    await save_draft(client, key, big_orders_document())
    await publish_ok(client, key)
    assert (await overview(client, key))["in_force"] == 2

    rollback = await publish_ok(client, key, source_version=1, note="back to v1")
    assert rollback["number"] == 3
    assert rollback["republished_from"] == 1
    assert rollback["status"] == "in force"
    v3 = await get_json(client, key, f"{RULES}/versions/3")
    assert v3["document"] == WAREHOUSE_ONLY
    assert v3["republished_from"] == 1
    seen = await overview(client, key)
    assert seen["in_force"] == 3
    assert {v["number"]: v["status"] for v in seen["versions"]} == {1: "past", 2: "past", 3: "in force"}
    # the draft is left alone
    assert (await get_json(client, key, f"{RULES}/draft"))["document"] == big_orders_document()

    missing = await publish(client, key, source_version=9)
    assert missing.status_code == 404
    assert [v["number"] for v in (await overview(client, key))["versions"]] == [3, 2, 1]


async def test_withdrawn_version_never_takes_effect(client) -> None:
    from core import clock

    tenant = await create_tenant()
    key = tenant.api_key
    await save_draft(client, key, WAREHOUSE_ONLY)
    await publish_ok(client, key)
    await save_draft(client, key, big_orders_document())
    scheduled = await publish_ok(client, key, effective_from="2028-01-01T00:00:00")
    assert scheduled["status"] == "scheduled"

    withdrawn = await client.post(f"{RULES}/versions/2/withdraw", headers=bearer(key))
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["status"] == "withdrawn"
    assert withdrawn.json()["withdrawn_at"] is not None

    seen = await overview(client, key)
    assert {v["number"]: v["status"] for v in seen["versions"]} == {1: "in force", 2: "withdrawn"}
    assert [p["version"] for p in seen["upcoming"]] == [1]
    with clock.frozen_at(datetime(2028, 6, 1, tzinfo=UTC)):
        later = await overview(client, key)
    assert later["in_force"] == 1
    assert {v["number"]: v["status"] for v in later["versions"]} == {1: "in force", 2: "withdrawn"}

    in_force = await client.post(f"{RULES}/versions/1/withdraw", headers=bearer(key))
    assert in_force.status_code == 409, in_force.text
    assert "has taken effect" in in_force.json()["detail"]
    assert (await overview(client, key))["in_force"] == 1
    assert (await client.post(f"{RULES}/versions/5/withdraw", headers=bearer(key))).status_code == 404


async def test_published_versions_are_immutable_in_the_database(client, owner_engine) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from core.db import get_database

    tenant = await create_tenant()
    key = tenant.api_key
    await save_draft(client, key, WAREHOUSE_ONLY)
    await publish_ok(client, key)

    statement = text("UPDATE rule_versions SET document = CAST(:doc AS jsonb) WHERE tenant_id = :t AND number = 1")
    params = {"doc": '{"rules": [], "otherwise": "backorder"}', "t": tenant.tenant_id}
    with pytest.raises(DBAPIError, match="immutable"):
        async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
            await session.execute(statement, params)
    with pytest.raises(DBAPIError, match="immutable"):
        async with owner_engine.begin() as connection:
            await connection.execute(statement, params)
    window = text("UPDATE rule_versions SET effective_from = effective_from - interval '1 day' "
                  "WHERE tenant_id = :t AND number = 1")
    with pytest.raises(DBAPIError, match="immutable"):
        async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
            await session.execute(window, {"t": tenant.tenant_id})

    assert (await get_json(client, key, f"{RULES}/versions/1"))["document"] == WAREHOUSE_ONLY


async def test_published_version_metadata_cannot_be_rewritten(client) -> None:
    """Who published a version, when, and what it brought back are part of the immutable record."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from core.db import get_database

    tenant = await create_tenant()
    key = tenant.api_key
    await save_draft(client, key, WAREHOUSE_ONLY)
    await publish_ok(client, key)
    before = await get_json(client, key, f"{RULES}/versions/1")

    rewritten = []
    for assignment in ("published_by = 'someone else'", "published_at = published_at - interval '1 day'",
                       "republished_from = 7"):
        statement = text(f"UPDATE rule_versions SET {assignment} WHERE tenant_id = :t AND number = 1")
        try:
            async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
                await session.execute(statement, {"t": tenant.tenant_id})
                await session.rollback()  # leave the version as it was for the next attempt
        except DBAPIError as error:
            assert "immutable" in str(error)
        else:
            rewritten.append(assignment)
    assert rewritten == [], f"the app role could rewrite a published version: {rewritten}"
    assert await get_json(client, key, f"{RULES}/versions/1") == before


async def test_concurrent_saves_and_publishes_are_serialised(client) -> None:
    import asyncio

    tenant = await create_tenant()
    key = tenant.api_key
    revision = await save_draft(client, key, WAREHOUSE_ONLY)

    saves = await asyncio.gather(*(put_draft(client, key, big_orders_document(), revision=revision)
                                   for _ in range(4)))
    assert sorted(r.status_code for r in saves) == [200, 409, 409, 409]
    assert (await get_json(client, key, f"{RULES}/draft"))["revision"] == revision + 1

    published = await asyncio.gather(*(publish(client, key, note=f"n{i}") for i in range(4)))
    assert [r.status_code for r in published] == [201] * 4
    assert sorted(r.json()["number"] for r in published) == [1, 2, 3, 4]
    assert (await overview(client, key))["in_force"] == 4


# --- 3. idempotency --------------------------------------------------------------------------------


async def test_publish_with_the_same_idempotency_key_publishes_once(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    await save_draft(client, key, WAREHOUSE_ONLY)
    idem = {"Idempotency-Key": unique("publish")}

    first = await publish(client, key, headers=idem, note="once")
    second = await publish(client, key, headers=idem, note="once")
    assert first.status_code == second.status_code == 201, second.text
    assert second.json() == first.json()
    assert second.headers.get("idempotent-replayed") == "true"
    assert [v["number"] for v in (await overview(client, key))["versions"]] == [1]

    other_body = await publish(client, key, headers=idem, note="twice")
    assert other_body.status_code == 422
    assert [v["number"] for v in (await overview(client, key))["versions"]] == [1]

    refused_key = {"Idempotency-Key": unique("refused")}
    refused = await publish(client, key, headers=refused_key, effective_from="2020-01-01T00:00:00")
    assert refused.status_code == 422
    retried = await publish(client, key, headers=refused_key, effective_from="2020-01-01T00:00:00")
    assert retried.status_code == 422  # a refusal is not stored: the retry is judged again
    assert [v["number"] for v in (await overview(client, key))["versions"]] == [1]


# --- 4. simulation ----------------------------------------------------------------------------------

PARIS = (48.8566, 2.3522)


async def network(client: AsyncClient, key: str, tag: str) -> dict[str, str]:
    """A warehouse in Lyon, a click & collect store in Paris that receives transfers, a
    ship-from-store in Lille; a summer SKU and a winter SKU."""
    codes = {"wh": f"WH-{tag}", "paris": f"PAR-{tag}", "lille": f"LIL-{tag}",
             "sun": f"SUN-{tag}", "coat": f"COAT-{tag}"}
    await make_locations(
        client, key,
        location_body(codes["wh"], name="Lyon DC", city="Lyon", latitude=45.764, longitude=4.8357, priority=10,
                      shipping_cost_minor=590),
        location_body(codes["paris"], name="Paris Rivoli", kind="store", latitude=48.8606, longitude=2.3376,
                      ships_to_customers=False, ship_from_store=True, click_and_collect=True,
                      receives_transfers=True, priority=20),
        location_body(codes["lille"], name="Lille Centre", kind="store", city="Lille", latitude=50.6292,
                      longitude=3.0573, ships_to_customers=False, ship_from_store=True, priority=30),
    )
    response = await client.post(f"{API}/products/import", headers=bearer(key), json={"products": [
        product_body(codes["sun"], category="summer", price_minor=2500),
        product_body(codes["coat"], category="winter", price_minor=8000),
    ]})
    assert response.status_code == 200, response.text
    await stock_up(client, key, {(codes["sun"], codes["wh"]): 10, (codes["coat"], codes["wh"]): 10,
                                 (codes["sun"], codes["paris"]): 5, (codes["sun"], codes["lille"]): 5})
    return codes


def stores_first_document() -> dict[str, Any]:
    return document(
        rule("summer", "summer from stores", when={"all": [leaf("line.category", "in", ["summer"])]},
             types=("store",), sorts=("distance",), fallback=("next_rule",)),
        rule("all", "catch-all", sorts=("priority",), fallback=("ship_to_store", "split", "hold")),
    )


async def stock_and_ledger(client: AsyncClient, key: str, skus: list[str]) -> tuple[Any, Any]:
    stock = await client.get(f"{API}/inventory", params={"sku": skus}, headers=bearer(key))
    ledger = await client.get(f"{API}/inventory/movements", params={"limit": 1000}, headers=bearer(key))
    assert stock.status_code == 200 and ledger.status_code == 200
    return stock.json(), ledger.json()


async def simulate(client: AsyncClient, key: str, order: dict[str, Any], **body: Any) -> dict[str, Any]:
    response = await client.post(f"{RULES}/simulate", json={"order": order, **body}, headers=bearer(key))
    assert response.status_code == 200, response.text
    return response.json()


async def test_simulation_compares_the_draft_with_the_version_in_force(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, "SIM")
    await save_draft(client, key, WAREHOUSE_ONLY)
    await publish_ok(client, key)
    await save_draft(client, key, stores_first_document())
    before = await stock_and_ledger(client, key, [c["sun"], c["coat"]])

    summer = await simulate(client, key, {"lines": [{"sku": c["sun"], "quantity": 2}], "country": "FR",
                                          "latitude": PARIS[0], "longitude": PARIS[1]})
    draft, current = summer["candidate"], summer["in_force"]
    assert draft["label"] == "Draft" and draft["version"] is None
    assert current["version"] == 1 and current["label"] == "v1 (in force)"
    assert draft["decision"]["outcome"] == "fulfil"
    assert draft["decision"]["rule"] == "summer from stores"
    [shipment] = draft["decision"]["shipments"]
    assert shipment["location"] == c["paris"]
    assert shipment["lines"] == [{"sku": c["sun"], "quantity": 2}]
    assert shipment["ship_to_store"] is None and shipment["pickup"] is False
    assert 0 < shipment["distance_km"] < 5
    assert draft["summary"] == f"{c['paris']} (ship, 2 u)"

    assert current["decision"]["rule"] == "Warehouse only"
    [from_warehouse] = current["decision"]["shipments"]
    assert from_warehouse["location"] == c["wh"]
    assert 380 < from_warehouse["distance_km"] < 410
    assert from_warehouse["shipping_cost_minor"] == 590

    [tried] = draft["decision"]["trace"]  # the first rule decided: the catch-all was never tried
    assert tried["rule"] == "summer from stores" and tried["position"] == 1 and tried["matched"] is True
    [why] = tried["why"]
    assert why.startswith("Line category is one of") and "summer" in why and ": yes" in why
    verdicts = {loc["location"]: loc for loc in tried["locations"]}
    assert verdicts[c["wh"]]["verdict"] == "rejected: a warehouse is not among this rule's location types"
    assert verdicts[c["paris"]]["verdict"] == "ranked 1"
    assert verdicts[c["lille"]]["verdict"] == "ranked 2"
    assert verdicts[c["paris"]]["scores"]["distance"].endswith(" km")
    assert float(verdicts[c["lille"]]["scores"]["distance"].split()[0]) > 150
    assert tried["steps"] == [f"{c['paris']} has every line: one shipment"]

    # a summer line with a winter one: no store has both, so the first rule hands over to the next
    mixed = await simulate(client, key, {"lines": [{"sku": c["sun"], "quantity": 1},
                                                   {"sku": c["coat"], "quantity": 1}],
                                         "latitude": PARIS[0], "longitude": PARIS[1]})
    decision = mixed["candidate"]["decision"]
    assert decision["rule"] == "catch-all"
    assert [s["location"] for s in decision["shipments"]] == [c["wh"]]
    first, second = decision["trace"]
    assert first["matched"] is True and second["matched"] is True
    assert first["steps"] == ["no single location has every line", "fallback: try the next rule"]
    assert second["why"] == ["no conditions: applies to every order"]
    assert mixed["candidate"]["summary"] == mixed["in_force"]["summary"] == f"{c['wh']} (ship, 2 u)"

    # a winter order: the first rule does not match, and the trace says why
    winter = await simulate(client, key, {"lines": [{"sku": c["coat"], "quantity": 1}]})
    first, second = winter["candidate"]["decision"]["trace"]
    assert first["matched"] is False and first["locations"] == [] and first["steps"] == []
    [why] = first["why"]
    assert why.startswith("Line category is one of") and ": no" in why and "winter" in why
    assert second["matched"] is True
    # without coordinates, distances are unknown rather than made up
    assert winter["candidate"]["decision"]["shipments"][0]["distance_km"] is None

    # a category given in the sample wins over the catalog's
    relabelled = await simulate(client, key, {"lines": [{"sku": c["coat"], "quantity": 1, "category": "summer"}]})
    assert relabelled["candidate"]["decision"]["trace"][0]["matched"] is True

    # a published version can be tried instead of the draft
    as_v1 = await simulate(client, key, {"lines": [{"sku": c["sun"], "quantity": 2}]}, version=1)
    assert as_v1["candidate"]["label"] == "v1" and as_v1["candidate"]["decision"]["rule"] == "Warehouse only"
    missing = await client.post(f"{RULES}/simulate", json={"order": {"lines": [{"sku": c["sun"], "quantity": 1}]},
                                                           "version": 9}, headers=bearer(key))
    assert missing.status_code == 404

    # judged as if placed later (local time): the version in force then is the one compared
    await publish_ok(client, key, effective_from="2027-10-01T00:00:00")
    autumn = await simulate(client, key, {"lines": [{"sku": c["sun"], "quantity": 2}], "latitude": PARIS[0],
                                          "longitude": PARIS[1], "at": "2027-10-02T12:00:00"})
    assert utc(autumn["at"]) == datetime(2027, 10, 2, 10, 0, tzinfo=UTC)
    assert autumn["in_force"]["version"] == 2 and autumn["in_force"]["label"] == "v2 (in force)"
    assert autumn["in_force"]["decision"]["rule"] == "summer from stores"
    today = await simulate(client, key, {"lines": [{"sku": c["sun"], "quantity": 2}]})
    assert today["in_force"]["version"] == 1
    skipped = await client.post(f"{RULES}/simulate", headers=bearer(key), json={
        "order": {"lines": [{"sku": c["sun"], "quantity": 1}], "at": "2027-03-28T02:30:00"}})
    assert [e["field"] for e in problems_of(skipped)] == ["at"]

    assert await stock_and_ledger(client, key, [c["sun"], c["coat"]]) == before


async def test_pickup_without_stock_at_the_store_ships_to_the_store(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, "PICK")
    await save_draft(client, key, stores_first_document())
    before = await stock_and_ledger(client, key, [c["sun"], c["coat"]])

    pickup = await simulate(client, key, {"lines": [{"sku": c["coat"], "quantity": 2}], "delivery_mode": "pickup",
                                          "pickup_location": c["paris"]})
    decision = pickup["candidate"]["decision"]
    assert decision["outcome"] == "fulfil" and decision["rule"] == "catch-all"
    [shipment] = decision["shipments"]
    assert shipment["location"] == c["wh"]
    assert shipment["ship_to_store"] == c["paris"]
    assert shipment["pickup"] is False
    assert 380 < shipment["distance_km"] < 410  # from the warehouse to the store
    assert pickup["candidate"]["summary"] == f"{c['wh']} (→ {c['paris']}, 2 u)"
    steps = decision["trace"][1]["steps"]
    assert steps == ["the pickup store does not have every line",
                     f"ship to store: {c['wh']} sends every line to {c['paris']}"]
    # nothing in force yet: the other side says so
    assert pickup["in_force"]["decision"] is None
    assert pickup["in_force"]["summary"] == "no version in force"

    at_store = await simulate(client, key, {"lines": [{"sku": c["sun"], "quantity": 1}], "delivery_mode": "pickup",
                                            "pickup_location": c["paris"]})
    [collected] = at_store["candidate"]["decision"]["shipments"]
    assert collected["location"] == c["paris"] and collected["pickup"] is True
    assert collected["ship_to_store"] is None
    assert at_store["candidate"]["summary"] == f"{c['paris']} (pickup, 1 u)"

    # Lille has summer stock but no click & collect: a pickup there cannot be collected there
    lille = await simulate(client, key, {"lines": [{"sku": c["sun"], "quantity": 1}], "delivery_mode": "pickup",
                                         "pickup_location": c["lille"]})
    verdicts = {loc["location"]: loc["verdict"] for loc in lille["candidate"]["decision"]["trace"][0]["locations"]}
    assert verdicts[c["lille"]] == "rejected: does not offer click & collect"

    assert await stock_and_ledger(client, key, [c["sun"], c["coat"]]) == before


async def test_simulation_of_an_invalid_draft_is_refused(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, "BAD")
    await set_invalid_draft(client, tenant)
    response = await client.post(f"{RULES}/simulate", json={"order": {"lines": [{"sku": c["sun"], "quantity": 1}]}},
                                 headers=bearer(key))
    errors = problems_of(response)
    assert errors[0]["field"] == "rules[0].when.value"
    unknown = await client.post(f"{RULES}/simulate", json={"order": {"lines": []}}, headers=bearer(key))
    assert unknown.status_code in (400, 422)


# --- 5. replay ----------------------------------------------------------------------------------------


async def insert_order(tenant_id: uuid.UUID, number: str, placed_at: datetime,
                       lines: list[tuple[str, int, str, int]], *, lat: float = PARIS[0],
                       lon: float = PARIS[1], email: str | None = None) -> None:
    """An order as captured: (sku, quantity, category, unit price) per line."""
    from core.db import get_database
    from orders.models import Order, OrderLine

    async with get_database().transaction(tenant_id=tenant_id) as session:
        order = Order(tenant_id=tenant_id, number=number, channel="web", currency="EUR",
                      total_minor=sum(q * p for _, q, _, p in lines), delivery_mode="ship", ship_country="FR",
                      ship_postcode="75001", ship_latitude=lat, ship_longitude=lon,
                      customer_email=email or f"{number.lower()}@example.test", customer_tags=[], placed_at=placed_at)
        session.add(order)
        await session.flush()
        for i, (sku, quantity, category, price) in enumerate(lines, start=1):
            session.add(OrderLine(tenant_id=tenant_id, order_id=order.id, line_no=i, sku=sku, category=category,
                                  quantity=quantity, unit_price_minor=price))


async def replay(client: AsyncClient, key: str, **body: Any) -> Any:
    return await client.post(f"{RULES}/replay", json=body, headers=bearer(key))


async def test_replay_judges_recent_orders_against_the_stock_they_met(client) -> None:
    from core import clock

    tenant = await create_tenant()
    key = tenant.api_key
    tid = tenant.tenant_id
    wh, store, a, b = "WH-RPL", "ST-RPL", "RPL-A", "RPL-B"
    await make_locations(
        client, key,
        location_body(wh, latitude=45.764, longitude=4.8357, priority=10),
        location_body(store, kind="store", latitude=48.8606, longitude=2.3376, ships_to_customers=False,
                      ship_from_store=True, priority=20),
    )
    response = await client.post(f"{API}/products/import", headers=bearer(key), json={"products": [
        product_body(a, category="summer", price_minor=2000), product_body(b, category="winter", price_minor=5000)]})
    assert response.status_code == 200, response.text

    now = datetime.now(UTC)
    # Stock history: received 20 days ago; the warehouse's A was written off a day ago.
    with clock.frozen_at(now - timedelta(days=20)):
        await stock_up(client, key, {(a, wh): 5, (b, wh): 5, (a, store): 3})
    with clock.frozen_at(now - timedelta(days=1)):
        removed = await adjust(client, key, a, wh, -5, reason="damage")
        assert removed.status_code == 201, removed.text

    await insert_order(tid, "R-OLD", now - timedelta(days=10), [(a, 1, "summer", 2000)])
    await insert_order(tid, "R-1", now - timedelta(days=3), [(a, 1, "summer", 2000)])
    await insert_order(tid, "R-3", now - timedelta(days=2), [(b, 1, "winter", 5000)])
    await insert_order(tid, "R-2", now - timedelta(hours=12), [(a, 1, "summer", 2000)])
    await insert_order(tid, "R-4", now - timedelta(hours=6), [(a, 1, "summer", 2000), (b, 1, "winter", 5000)])

    await save_draft(client, key, WAREHOUSE_ONLY)
    await publish_ok(client, key)
    await save_draft(client, key, document(rule("stores", "Stores first", types=("store", "warehouse"))))
    before = await stock_and_ledger(client, key, [a, b])

    result = await replay(client, key)
    assert result.status_code == 200, result.text
    out = result.json()
    assert out["days"] == 7 and out["limit"] == 1000 and out["stock_basis"] == "ledger"
    assert out["orders"] == 4  # R-OLD is older than 7 days
    rows = {row["order"]: row for row in out["rows"]}
    assert set(rows) == {"R-1", "R-2", "R-3", "R-4"}

    # R-1 came in when the warehouse still had A: the version in force shipped it from there
    assert rows["R-1"]["in_force"] == f"{wh} (ship, 1 u)"
    assert rows["R-1"]["candidate"] == f"{store} (ship, 1 u)"
    assert rows["R-1"]["changed"] is True
    # R-2 came after the write-off: the warehouse had no A any more
    assert rows["R-2"]["in_force"] == "hold"
    assert rows["R-2"]["candidate"] == f"{store} (ship, 1 u)"
    assert rows["R-2"]["changed"] is True
    # only the warehouse has B, under both
    assert rows["R-3"]["in_force"] == rows["R-3"]["candidate"] == f"{wh} (ship, 1 u)"
    assert rows["R-3"]["changed"] is False
    # the draft splits A from the store and B from the warehouse
    assert rows["R-4"]["candidate"] == f"{store} (ship, 1 u) + {wh} (ship, 1 u)"
    assert rows["R-4"]["in_force"] == "hold"
    assert out["changed"] == 3
    assert [row["changed"] for row in out["rows"]] == [True, True, True, False]  # changed ones first
    assert [row["order"] for row in out["rows"]] == ["R-1", "R-2", "R-4", "R-3"]  # each group oldest first
    assert rows["R-2"]["in_force_trace"][0]["steps"][-1] == "fallback: hold for customer service"

    candidate, current = out["candidate"], out["in_force"]
    assert candidate["label"] == "Draft" and current["version"] == 1
    assert candidate["totals"]["orders"] == 4
    assert candidate["totals"]["outcomes"] == {"fulfil": 4}
    assert candidate["totals"]["shipments_per_location"] == {store: 3, wh: 2}
    assert candidate["totals"]["split_rate"] == 0.25
    assert candidate["totals"]["shipments_per_order"] == 1.25
    assert current["totals"]["orders"] == 4
    assert current["totals"]["outcomes"] == {"fulfil": 2, "hold": 2}
    assert current["totals"]["shipments_per_location"] == {wh: 2}
    assert current["totals"]["split_rate"] == 0.0

    recent = (await replay(client, key, days=1)).json()
    assert recent["orders"] == 2
    assert {row["order"] for row in recent["rows"]} == {"R-2", "R-4"}
    # judged against the stock after the write-off, as the ledger says
    assert {row["order"]: row["in_force"] for row in recent["rows"]} == {"R-2": "hold", "R-4": "hold"}

    newest = (await replay(client, key, limit=3)).json()
    assert newest["orders"] == 3
    assert {row["order"] for row in newest["rows"]} == {"R-3", "R-2", "R-4"}
    # R-3 is now the first order: the stock it met is still rebuilt from the ledger
    assert {row["order"]: row["in_force"] for row in newest["rows"]}["R-3"] == f"{wh} (ship, 1 u)"

    month = (await replay(client, key, days=30, traces=0)).json()
    assert month["orders"] == 5
    assert all("candidate_trace" not in row for row in month["rows"])
    old = {row["order"]: row for row in month["rows"]}["R-OLD"]
    assert old["in_force"] == f"{wh} (ship, 1 u)"  # the warehouse had A ten days ago

    assert await stock_and_ledger(client, key, [a, b]) == before

    await set_invalid_draft(client, tenant)
    refused = await replay(client, key)
    assert problems_of(refused)[0]["field"] == "rules[0].when.value"
    too_far = await replay(client, key, days=365)
    assert too_far.status_code in (400, 422)


async def test_replay_uses_up_daily_capacity_and_counts_previous_orders(client) -> None:
    from zoneinfo import ZoneInfo

    from core import clock

    tenant = await create_tenant(timezone="Europe/Paris")
    key = tenant.api_key
    tid = tenant.tenant_id
    wh, store, sku = "WH-CAP", "ST-CAP", "CAP-1"
    await make_locations(
        client, key,
        location_body(wh, priority=10, daily_capacity=1),
        location_body(store, kind="store", ships_to_customers=False, ship_from_store=True, priority=20),
    )
    response = await client.post(f"{API}/products/import", headers=bearer(key),
                                 json={"products": [product_body(sku, category="shoes", price_minor=3000)]})
    assert response.status_code == 200, response.text
    now = datetime.now(UTC)
    with clock.frozen_at(now - timedelta(days=40)):
        await stock_up(client, key, {(sku, wh): 10, (sku, store): 10})

    paris = ZoneInfo("Europe/Paris")
    day = (now - timedelta(days=3)).astimezone(paris).date()

    def local(days: int, hour: int) -> datetime:
        return datetime(day.year, day.month, day.day, hour, tzinfo=paris) + timedelta(days=days)

    line = [(sku, 1, "shoes", 3000)]
    await insert_order(tid, "C-0", now - timedelta(days=30), line, email="bob@example.test")  # before the window
    await insert_order(tid, "C-1", local(0, 10), line, email="alice@example.test")
    await insert_order(tid, "C-2", local(0, 11), line, email="bob@example.test")
    await insert_order(tid, "C-3", local(1, 10), line, email="alice@example.test")

    await save_draft(client, key, WAREHOUSE_ONLY)
    await publish_ok(client, key)
    await save_draft(client, key, document(
        rule("loyal", "Returning customers from the store", when=leaf("customer.orders_count", "gte", 1),
             types=("store",), fallback=("next_rule",)),
        rule("rest", "Warehouse", types=("warehouse",)),
    ))
    out = (await replay(client, key)).json()
    rows = {row["order"]: row for row in out["rows"]}
    assert set(rows) == {"C-1", "C-2", "C-3"}
    # the warehouse takes one order a day: the second one that day finds it full, the next day it is free again
    assert [rows[n]["in_force"] for n in ("C-1", "C-2", "C-3")] == [f"{wh} (ship, 1 u)", "hold", f"{wh} (ship, 1 u)"]
    verdicts = {loc["location"]: loc["verdict"] for loc in rows["C-2"]["in_force_trace"][0]["locations"]}
    assert verdicts[wh].startswith("rejected: daily capacity reached")
    # bob's order before the window still makes C-2 his second; C-3 is alice's second
    assert [rows[n]["candidate"] for n in ("C-1", "C-2", "C-3")] == [
        f"{wh} (ship, 1 u)", f"{store} (ship, 1 u)", f"{store} (ship, 1 u)"]
    assert [rows[n]["changed"] for n in ("C-1", "C-2", "C-3")] == [False, True, True]
    assert out["in_force"]["totals"]["outcomes"] == {"fulfil": 2, "hold": 1}
    assert out["candidate"]["totals"]["shipments_per_location"] == {store: 2, wh: 1}

    # the console's replay shows the same comparison
    await login(client, tenant.email)
    await client.get("/app/rules/draft")
    shown = await client.post("/app/rules/replay", data={"days": "7", "limit": "1000"},
                              headers={**csrf_headers(client), "HX-Request": "true"})
    assert shown.status_code == 200
    assert '<span id="replay-count">2 of 3 orders</span> would change' in shown.text
    assert "C-2" in shown.text and "v1 (in force)" in shown.text


async def test_replay_stock_history_with_real_time_adjustments(client) -> None:
    """The order is placed (in the past) before the warehouse's stock is removed, in real time."""
    tenant = await create_tenant()
    key = tenant.api_key
    wh, sku = "WH-RT", "RT-1"
    await make_locations(client, key, location_body(wh, priority=10))
    response = await client.post(f"{API}/products/import", headers=bearer(key),
                                 json={"products": [product_body(sku, category="shoes")]})
    assert response.status_code == 200
    await stock_up(client, key, {(sku, wh): 2})
    placed = datetime.now(UTC)
    await insert_order(tenant.tenant_id, "RT-ORDER", placed, [(sku, 2, "shoes", 1999)])
    removed = await adjust(client, key, sku, wh, -2)
    assert removed.status_code == 201, removed.text

    nothing = (await replay(client, key, days=1)).json()  # no version in force yet: the draft alone decides
    [row] = nothing["rows"]
    assert row["in_force"] == "no version in force" and row["changed"] is True
    assert nothing["in_force"]["version"] is None and nothing["in_force"]["totals"]["orders"] == 0
    assert nothing["candidate"]["totals"]["outcomes"] == {"hold": 1}  # the empty draft holds everything

    await save_draft(client, key, WAREHOUSE_ONLY)
    await publish_ok(client, key)
    out = (await replay(client, key, days=1)).json()
    [row] = out["rows"]
    assert row["in_force"] == row["candidate"] == f"{wh} (ship, 2 u)"
    assert row["changed"] is False
    assert out["in_force"]["totals"]["shipments_per_location"] == {wh: 1}

    # today's sample order meets today's stock: nothing left
    sample = await simulate(client, key, {"lines": [{"sku": sku, "quantity": 2}]})
    assert sample["in_force"]["decision"]["outcome"] == "hold"


# --- 6. roles -----------------------------------------------------------------------------------------


async def read_only_member(tenant_id: uuid.UUID) -> str:
    """A user with the read_only role in the tenant; returns the email."""
    from core.db import get_database
    from core.security import hash_password
    from tenants.models import Membership, User

    email = f"{unique('viewer')}@example.test"
    async with get_database().transaction(tenant_id=tenant_id) as session:
        user = User(email=email, name="Vera Viewer", password_hash=await hash_password(PASSWORD))
        session.add(user)
        await session.flush()
        session.add(Membership(tenant_id=tenant_id, user_id=user.id, role="read_only"))
    return email


async def read_only_key(tenant: Any) -> str:
    from core.auth import Principal
    from core.db import get_database
    from tenants.service import create_api_key

    principal = Principal(tenant_id=tenant.tenant_id, role="owner", label=tenant.email, tenant_name=tenant.name,
                          timezone="Europe/Paris", currency="EUR", user_id=tenant.user_id)
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        api_key, token = await create_api_key(session, principal, name="reporting")
        api_key.role = "read_only"
    return token


async def test_read_only_can_look_and_simulate_but_not_change(client, make_client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, "RO")
    await save_draft(client, key, stores_first_document())
    await publish_ok(client, key)
    await publish_ok(client, key, effective_from="2028-01-01T00:00:00")
    viewer_key = await read_only_key(tenant)

    assert (await overview(client, viewer_key))["in_force"] == 1
    draft = await get_json(client, viewer_key, f"{RULES}/draft")
    assert draft["document"] == stores_first_document()
    assert (await get_json(client, viewer_key, f"{RULES}/versions/1"))["document"] == stores_first_document()
    sample = await simulate(client, viewer_key, {"lines": [{"sku": c["sun"], "quantity": 1}]})
    assert sample["candidate"]["decision"]["outcome"] == "fulfil"
    assert (await replay(client, viewer_key)).status_code == 200
    checked = await client.post(f"{RULES}/validate", json={"document": WAREHOUSE_ONLY}, headers=bearer(viewer_key))
    assert checked.status_code == 200

    refused = [
        await put_draft(client, viewer_key, WAREHOUSE_ONLY),
        await publish(client, viewer_key),
        await client.post(f"{RULES}/versions/2/withdraw", headers=bearer(viewer_key)),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403]
    seen = await overview(client, key)
    assert [v["number"] for v in seen["versions"]] == [2, 1]
    assert {v["number"]: v["status"] for v in seen["versions"]}[2] == "scheduled"
    assert (await get_json(client, key, f"{RULES}/draft"))["revision"] == draft["revision"]

    viewer = await make_client()
    await login(viewer, await read_only_member(tenant.tenant_id))
    page = await viewer.get("/app/rules")
    assert page.status_code == 200 and "Routing rules" in page.text
    assert "Publish the draft" not in page.text
    draft_page = await viewer.get("/app/rules/draft")
    assert draft_page.status_code == 200
    assert "You can read and simulate the draft" in draft_page.text
    assert 'id="builder"' not in draft_page.text
    simulated = await post_form(viewer, "/app/rules/simulate", {"line.0.sku": c["sun"], "line.0.quantity": "1"})
    assert simulated.status_code == 200 and "summer from stores" in simulated.text
    assert (await post_form(viewer, "/app/rules/draft", {"revision": str(draft["revision"]),
                                                         "action": "add_rule"})).status_code == 403
    assert (await post_form(viewer, "/app/rules/publish", {"when": "now"})).status_code == 403
    assert (await viewer.get("/app/rules/publish")).status_code == 403
    assert (await post_form(viewer, "/app/rules/versions/2/withdraw")).status_code == 403
    after = await get_json(client, key, f"{RULES}/draft")
    assert after["revision"] == draft["revision"]
    assert [v["number"] for v in (await overview(client, key))["versions"]] == [2, 1]


# --- 7. the console -----------------------------------------------------------------------------------


async def draft_now(client: AsyncClient, key: str) -> dict[str, Any]:
    return await get_json(client, key, f"{RULES}/draft")


async def builder_post(client: AsyncClient, data: dict[str, str], *, htmx: bool = False) -> Any:
    headers = csrf_headers(client)
    if htmx:
        headers["HX-Request"] = "true"
    return await client.post("/app/rules/draft", data=data, headers=headers, follow_redirects=False)


async def test_console_pages_render(client) -> None:
    tenant = await create_tenant()
    await login(client, tenant.email)
    await save_draft(client, tenant.api_key, stores_first_document())
    await publish_ok(client, tenant.api_key, note="launch rules")
    await publish_ok(client, tenant.api_key, effective_from="2027-10-01T00:00:00", note="autumn rules")

    overview_page = await client.get("/app/rules")
    assert overview_page.status_code == 200
    for words in ("Routing rules", "In force now", "v1", "launch rules", "autumn rules", "scheduled",
                  "Europe/Paris", "1 oct. 2027, 00:00"):
        assert words in overview_page.text, words

    draft_page = await client.get("/app/rules/draft")
    assert draft_page.status_code == 200
    for words in ("Routing draft", 'id="builder"', "summer from stores", "catch-all", "Simulate an order",
                  'name="revision"'):
        assert words in draft_page.text, words

    version_page = await client.get("/app/rules/versions/1")
    assert version_page.status_code == 200 and "summer from stores" in version_page.text
    publish_page = await client.get("/app/rules/publish")
    assert publish_page.status_code == 200 and "Publish the draft" in publish_page.text


async def test_builder_edits_the_stored_draft(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    await login(client, tenant.email)
    await client.get("/app/rules/draft")
    revision = (await draft_now(client, key))["revision"]

    added = await builder_post(client, {"revision": str(revision), "action": "add_rule"})
    assert added.status_code == 303 and added.headers["location"] == "/app/rules/draft"
    draft = await draft_now(client, key)
    assert draft["revision"] == revision + 1
    [new] = draft["document"]["rules"]
    assert new["name"] == "Rule 1" and new["when"] is None and new["enabled"] is True
    assert draft["problems"] == []
    assert draft["updated_by"] == tenant.email

    await builder_post(client, {"revision": str(draft["revision"]), "action": "add_condition:r0",
                                "r0.new_field": "order.total"})
    draft = await draft_now(client, key)
    assert draft["document"]["rules"][0]["when"] == {"all": [{"field": "order.total", "op": "eq", "value": 0}]}

    await builder_post(client, {"revision": str(draft["revision"]), "r0.present": "1", "r0.name": "Big baskets",
                                "r0.enabled": "on", "r0.0.field": "order.total", "r0.0.op": "gte",
                                "r0.0.value": "49.90"})
    draft = await draft_now(client, key)
    assert draft["document"]["rules"][0]["name"] == "Big baskets"
    assert draft["document"]["rules"][0]["enabled"] is True
    assert draft["document"]["rules"][0]["when"] == {"all": [{"field": "order.total", "op": "gte", "value": 4990}]}
    assert draft["problems"] == []

    await builder_post(client, {"revision": str(draft["revision"]), "action": "add_condition:r0",
                                "r0.new_field": "order.channel"})
    draft = await draft_now(client, key)
    assert [leaf["field"] for leaf in draft["document"]["rules"][0]["when"]["all"]] == ["order.total",
                                                                                       "order.channel"]
    await builder_post(client, {"revision": str(draft["revision"]), "action": "move_node:r0.1:up"})
    draft = await draft_now(client, key)
    assert draft["document"]["rules"][0]["when"]["all"] == [
        {"field": "order.channel", "op": "eq", "value": "web"},
        {"field": "order.total", "op": "gte", "value": 4990}]

    await builder_post(client, {"revision": str(draft["revision"]), "action": "duplicate_rule:0"})
    draft = await draft_now(client, key)
    names = [r["name"] for r in draft["document"]["rules"]]
    assert names == ["Big baskets", "Big baskets (copy)"]
    original, copy = draft["document"]["rules"]
    assert copy["id"] != original["id"] and copy["when"] == original["when"] and copy["then"] == original["then"]

    await builder_post(client, {"revision": str(draft["revision"]), "action": "move_rule:0:down"})
    draft = await draft_now(client, key)
    assert [r["name"] for r in draft["document"]["rules"]] == ["Big baskets (copy)", "Big baskets"]

    await builder_post(client, {"revision": str(draft["revision"]), "action": "delete_node:r0.1"})
    draft = await draft_now(client, key)
    assert draft["document"]["rules"][0]["when"] == {"all": [{"field": "order.channel", "op": "eq", "value": "web"}]}
    assert draft["document"]["rules"][1]["when"]["all"][1]["value"] == 4990

    await builder_post(client, {"revision": str(draft["revision"]), "action": "add_filter:1",
                                "r1.then.new_filter": "within_distance"})
    draft = await draft_now(client, key)
    assert draft["document"]["rules"][1]["then"]["filters"] == [{"kind": "offers_delivery_mode"},
                                                                {"kind": "within_distance", "km": 100}]
    await builder_post(client, {"revision": str(draft["revision"]), "action": "add_sort:1",
                                "r1.then.new_sort": "stock"})
    draft = await draft_now(client, key)
    assert [s["by"] for s in draft["document"]["rules"][1]["then"]["sorts"]] == ["distance", "priority", "stock"]

    await builder_post(client, {"revision": str(draft["revision"]), "action": "delete_rule:0"})
    draft = await draft_now(client, key)
    assert [r["name"] for r in draft["document"]["rules"]] == ["Big baskets"]
    assert draft["problems"] == []


async def test_saving_the_builder_form_unchanged_keeps_the_document(client) -> None:
    """Posting the form exactly as rendered (the "Save draft" button) changes nothing: every
    widget reads back the value it shows (amounts in major units, lists, ranges, times, filters,
    sorts with bands, split settings, fallbacks, the switch of a disabled rule)."""
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, "RT")
    doc = document(
        rule("a", "Summer in Paris", when={"all": [
            leaf("line.category", "in", ["summer"]),
            {"any": [leaf("destination.postcode", "starts_with", "75"), leaf("order.total", "between", [1000, 4990])]},
            {"not": {"any": [leaf("customer.tags", "has_any", ["vip", "staff"])]}},
            leaf("now.time", "after", "08:30"),
            leaf("now.date", "before", "2027-12-24"),
            leaf("order.delivery_mode", "eq", "ship"),
            leaf("line.sku", "not_in", [c["coat"], "GIFT-CARD"]),
        ]}, types=("store", "warehouse"), filters=[
            {"kind": "include_tags", "tags": ["city"]}, {"kind": "within_distance", "km": 50},
            {"kind": "capacity_left", "min": 2}, {"kind": "exclude_locations", "locations": [c["wh"]]},
        ], sorts=("distance", "priority"), fallback=("split", "ship_to_store", "backorder"), max_shipments=3),
        rule("b", "Rest", types=("warehouse",), filters=[], sorts=("stock",), fallback=("hold",)),
        otherwise="backorder",
    )
    doc["rules"][0]["then"]["sorts"][0]["band"] = 10
    doc["rules"][0]["then"]["split"].update(min_order_value=5000, never_split_line=True)
    doc["rules"][1]["enabled"] = False
    await save_draft(client, key, doc)
    await login(client, tenant.email)

    page = await client.get("/app/rules/draft")
    assert page.status_code == 200
    fields = form_fields(page.text)
    # amounts as the company writes them (a French company: decimal comma)
    assert fields["r0.1.1.value"] == ["10,00"] and fields["r0.1.1.value2"] == ["49,90"]
    assert fields["r0.then.split.min_order_value"] == ["50,00"]
    saved = await client.post("/app/rules/draft", data={**fields, "action": ""}, headers=csrf_headers(client),
                              follow_redirects=False)
    assert saved.status_code == 303, saved.text
    draft = await draft_now(client, key)
    assert draft["revision"] == int(fields["revision"][0]) + 1
    assert draft["document"] == doc
    assert draft["problems"] == []


async def test_builder_shows_an_inline_error_and_keeps_the_invalid_draft(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    await save_draft(client, key, document(rule("big", "Big baskets", when={"all": [leaf("order.total", "gte",
                                                                                          4990)]})))
    await login(client, tenant.email)
    await client.get("/app/rules/draft")
    revision = (await draft_now(client, key))["revision"]

    response = await builder_post(client, {"revision": str(revision), "r0.present": "1", "r0.name": "Big baskets",
                                           "r0.enabled": "on", "r0.0.field": "order.total", "r0.0.op": "gte",
                                           "r0.0.value": "abc"}, htmx=True)
    assert response.status_code == 200
    assert response.text.lstrip().startswith("<form id=\"builder\"")  # the fragment, not a whole page
    assert "<html" not in response.text
    [inline] = re.findall(r'<small class="field-error" id="r0.0-error">(.*?)</small>', response.text, re.S)
    assert "Rule 1 “Big baskets”" in inline and "row 1 (Order total)" in inline and "abc" in inline
    assert 'class="leaf invalid" data-path="r0.0"' in response.text
    assert "1 problem" in response.text
    assert f'name="revision" value="{revision + 1}"' in response.text

    draft = await draft_now(client, key)
    assert draft["revision"] == revision + 1
    assert draft["document"]["rules"][0]["when"]["all"][0]["value"] == "abc"
    [problem] = draft["problems"]
    assert problem["path"] == "rules[0].when.all[0].value"


async def test_builder_with_a_stale_revision_does_not_overwrite(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    await login(client, tenant.email)
    await client.get("/app/rules/draft")
    stale = (await draft_now(client, key))["revision"]
    await save_draft(client, key, big_orders_document())  # someone else saved meanwhile
    current = await draft_now(client, key)

    response = await builder_post(client, {"revision": str(stale), "action": "add_rule"}, htmx=True)
    assert response.status_code == 200
    assert "saved the draft since you opened it" in response.text
    assert "Your last change was not saved." in response.text
    # the fragment shows the draft as it now is, with its revision, so the next post applies
    assert f'name="revision" value="{current["revision"]}"' in response.text
    assert "Big orders from the warehouse" in response.text
    assert await draft_now(client, key) == current

    # without JavaScript (a plain form post) the change is not applied either, and the editor is told
    plain = await builder_post(client, {"revision": str(stale), "action": "delete_rule:0"})
    assert await draft_now(client, key) == current
    shown = await client.get(plain.headers["location"]) if plain.status_code in (302, 303) else plain
    assert "Your last change was not saved." in shown.text, (plain.status_code, plain.headers.get("location"))


async def test_console_publish_schedules_at_local_time(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    await save_draft(client, key, stores_first_document())
    await login(client, tenant.email)
    await client.get("/app/rules/publish")

    scheduled = await post_form(client, "/app/rules/publish", {"when": "later", "from_day": "2027-10-01",
                                                                "from_time": "00:00", "note": "autumn"})
    assert scheduled.status_code == 303, scheduled.text
    assert scheduled.headers["location"] == "/app/rules?done=scheduled"
    [version] = (await overview(client, key))["versions"]
    assert version["status"] == "scheduled"
    assert utc(version["effective_from"]) == datetime(2027, 9, 30, 22, 0, tzinfo=UTC)
    assert version["effective_from_local"] == "2027-10-01T00:00:00+02:00"
    assert version["note"] == "autumn"
    notice = await client.get(scheduled.headers["location"])
    assert "Version scheduled" in notice.text

    past = await post_form(client, "/app/rules/publish", {"when": "later", "from_day": "2020-01-01",
                                                           "from_time": "09:00"})
    assert past.status_code == 422
    assert "A scheduled version starts in the future" in past.text
    assert 'value="2020-01-01"' in past.text  # the form keeps what was typed
    skipped = await post_form(client, "/app/rules/publish", {"when": "later", "from_day": "2027-03-28",
                                                              "from_time": "02:30"})
    assert skipped.status_code == 422
    assert "does not exist in Europe/Paris" in skipped.text
    garbled = await post_form(client, "/app/rules/publish", {"when": "later", "from_day": "tomorrow"})
    assert garbled.status_code == 422
    assert [v["number"] for v in (await overview(client, key))["versions"]] == [1]

    window = await post_form(client, "/app/rules/publish", {"when": "now", "until_day": "2030-01-01",
                                                             "until_time": "00:00"})
    assert window.status_code == 303 and window.headers["location"] == "/app/rules?done=published"
    seen = await overview(client, key)
    assert seen["in_force"] == 2
    assert utc(seen["versions"][0]["effective_to"]) == datetime(2029, 12, 31, 23, 0, tzinfo=UTC)


async def test_console_publish_refuses_an_invalid_draft(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    await login(client, tenant.email)
    await set_invalid_draft(client, tenant)
    form = await client.get("/app/rules/publish")
    assert form.status_code == 200
    assert "can't be published" in form.text
    refused = await post_form(client, "/app/rules/publish", {"when": "now"})
    assert refused.status_code == 422
    assert "Broken rule" in refused.text
    assert (await overview(client, key))["versions"] == []


async def test_console_withdraw_and_rollback(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    await save_draft(client, key, WAREHOUSE_ONLY)
    await publish_ok(client, key)
    await save_draft(client, key, stores_first_document())
    await publish_ok(client, key, effective_from="2028-01-01T00:00:00")
    await login(client, tenant.email)
    await client.get("/app/rules")

    withdrawn = await post_form(client, "/app/rules/versions/2/withdraw")
    assert withdrawn.status_code == 303 and withdrawn.headers["location"] == "/app/rules?done=withdrawn"
    assert {v["number"]: v["status"] for v in (await overview(client, key))["versions"]}[2] == "withdrawn"

    rollback = await post_form(client, "/app/rules/publish", {"when": "now", "source": "2"})
    assert rollback.status_code == 303
    seen = await overview(client, key)
    assert seen["in_force"] == 3
    v3 = await get_json(client, key, f"{RULES}/versions/3")
    assert v3["republished_from"] == 2 and v3["document"] == stores_first_document()

    copied = await post_form(client, "/app/rules/versions/1/to-draft")
    assert copied.status_code == 303
    assert (await draft_now(client, key))["document"] == WAREHOUSE_ONLY


async def test_builder_lists_emptied_by_the_user_are_saved_and_reported(client) -> None:
    """A multi-select left with nothing selected posts no value at all: the draft keeps an empty
    list and the builder says what is missing, rather than failing."""
    tenant = await create_tenant()
    key = tenant.api_key
    rule_with_filter = rule("ch", "Web only", when={"all": [leaf("order.channel", "in", ["web"])]})
    rule_with_filter["then"]["filters"] = [{"kind": "include_locations", "locations": ["WH-1"]}]
    await save_draft(client, key, document(rule_with_filter))
    await login(client, tenant.email)
    await client.get("/app/rules/draft")
    revision = (await draft_now(client, key))["revision"]
    response = await builder_post(client, {
        "revision": str(revision), "r0.present": "1", "r0.name": "Web only", "r0.enabled": "on",
        "r0.0.field": "order.channel", "r0.0.op": "in", "r0.0.present": "1", "r0.then.present": "1",
        "r0.then.type.0": "warehouse", "r0.then.fallback.0": "hold"}, htmx=True)
    assert response.status_code == 200, response.text
    assert "needs at least one value" in response.text
    assert "name at least one location" in response.text
    saved = (await draft_now(client, key))["document"]["rules"][0]
    assert saved["when"] == {"all": [{"field": "order.channel", "op": "in", "value": []}]}
    assert saved["then"]["filters"] == [{"kind": "include_locations", "locations": []}]
