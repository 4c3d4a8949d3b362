"""Customer service's search (GET /api/v1/search, the console's top bar): a misspelt name, a phone
in any format, an email, our order number, the channel's, a postcode; never another company's
customers; a store associate finds their locations' orders only."""

from __future__ import annotations

import re
from typing import Any

from httpx import AsyncClient
from test_orders import (
    by_priority,
    capture,
    member,
    network,
    order_body,
    publish_rules,
    routed_order,
)

from factories import bearer, create_tenant, login, unique

SEARCH = "/api/v1/search"


async def search(client: AsyncClient, key: str, q: str, expect: int = 200) -> dict[str, Any]:
    response = await client.get(SEARCH, params={"q": q}, headers=bearer(key))
    assert response.status_code == expect, response.text
    return response.json()


async def results(client: AsyncClient, q: str) -> str:
    """The top bar's results for ``q`` (htmx), as text."""
    response = await client.get("/app/search", params={"q": q}, headers={"HX-Request": "true"})
    assert response.status_code == 200, response.text
    return response.text


def names(found: dict[str, Any]) -> list[str]:
    return [c["name"] for c in found["customers"]]


def numbers(found: dict[str, Any]) -> list[str]:
    return [o["number"] for o in found["orders"]]


def bought(c: dict[str, str], *, name: str, email: str, phone: str = "", postcode: str = "75001", sku: str = "sku",
           **options: Any) -> dict[str, Any]:
    body = order_body((c[sku], 1, 2500), email=email, **options)
    body["customer"] = {"email": email, "name": name, "phone": phone}
    if "address" in body["delivery"]:
        body["delivery"]["address"]["postcode"] = postcode
        body["delivery"]["address"]["name"] = name
    return body


async def shop(client: AsyncClient, tenant: Any) -> dict[str, Any]:
    """John Smith's order and a few namesakes', all in one company."""
    key = tenant.api_key
    c = await network(client, key)
    john_email = f"{unique('john.smith')}@example.test"
    john = await capture(client, key, bought(c, name="John Smith", email=john_email, phone="+33 6 12 34 56 78",
                                             postcode="69002", external_number=f"SHOP-{unique('n')}"))
    for name in ("Jane Smith", "Johnny Smithers", "Joan Smit", "Jean Dupont"):
        await capture(client, key, bought(c, name=name, email=f"{unique(name.split()[0].lower())}@example.test",
                                          phone="+33 1 00 00 00 00"))
    return {"c": c, "john": john, "email": john_email}


async def test_an_agent_finds_john_smith_however_he_is_typed(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    made = await shop(client, tenant)
    john = made["john"]

    # A misspelt name (a transposition in each word) finds him first; nobody two typos away is found.
    misspelt = await search(client, key, "Jhon Smtih")
    assert names(misspelt)[0] == "John Smith"
    assert "Jean Dupont" not in names(misspelt)
    # His order comes with him, linked to his record.
    assert numbers(misspelt)[0] == john["number"]
    assert misspelt["orders"][0]["customer_name"] == "John Smith"
    # As it is typed: the start of a word is enough.
    assert "John Smith" in names(await search(client, key, "john smi"))

    # His phone number, however it is written.
    for phone in ("+33 6 12 34 56 78", "06.12.34.56.78", "0612345678"):
        found = await search(client, key, phone)
        assert names(found) == ["John Smith"], phone
        assert numbers(found) == [john["number"]], phone
    # His email, in any case: his record and the orders placed with it.
    found = await search(client, key, made["email"].upper())
    assert [c["email"] for c in found["customers"]] == [made["email"]]
    assert found["customers"][0]["orders_count"] == 1
    assert numbers(found) == [john["number"]]

    # Our order number (in lower case, without its "O-" too), the channel's, the postcode.
    for q in (john["number"], john["number"].lower(), john["number"][2:]):
        assert numbers(await search(client, key, q)) == [john["number"]], q
    channel = await search(client, key, john["external_number"])
    assert numbers(channel) == [john["number"]]
    assert channel["orders"][0]["external_number"] == john["external_number"]
    assert numbers(await search(client, key, "69002")) == [john["number"]]
    assert {o["status"] for o in channel["orders"]} == {"received"}
    assert channel["orders"][0]["total_minor"] == 2500 and channel["orders"][0]["currency"] == "EUR"

    # Nothing for what matches nothing, or nothing at all.
    assert await search(client, key, "Zebulon Quartermaine") == {"customers": [], "orders": []}
    assert await search(client, key, "   ") == {"customers": [], "orders": []}
    assert await search(client, key, "") == {"customers": [], "orders": []}


async def test_a_name_and_phone_filled_in_by_a_later_order_are_searchable(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key)
    email = f"{unique('ada')}@example.test"
    await capture(client, key, bought(c, name="", email=email))  # first seen with an email only
    assert (await search(client, key, "Lovelace"))["customers"] == []
    await capture(client, key, bought(c, name="Ada Lovelace", email=email, phone="07 98 76 54 32"))
    assert names(await search(client, key, "Ada Lovleace")) == ["Ada Lovelace"]
    assert names(await search(client, key, "+33 7 98 76 54 32")) == ["Ada Lovelace"]
    # A later order with another name changes nothing: the record keeps its first.
    await capture(client, key, bought(c, name="Augusta King", email=email, phone="0611111111"))
    assert names(await search(client, key, "Augusta King")) == []
    assert names(await search(client, key, "Ada Lovelace")) == ["Ada Lovelace"]


async def test_another_company_s_customers_and_orders_are_never_found(client) -> None:
    a, b = await create_tenant(), await create_tenant()
    made = await shop(client, a)
    other = await network(client, b.api_key)
    theirs = await capture(client, b.api_key, bought(other, name="John Smith", email=made["email"],
                                                     phone="+33 6 12 34 56 78", postcode="69002"))

    for q in ("John Smith", "Jhon Smtih", "0612345678", made["email"], "69002"):
        mine, its = await search(client, a.api_key, q), await search(client, b.api_key, q)
        assert theirs["id"] not in {o["id"] for o in mine["orders"]}, q
        assert made["john"]["id"] not in {o["id"] for o in its["orders"]}, q
        assert not {c["id"] for c in mine["customers"]} & {c["id"] for c in its["customers"]}, q
    assert names(await search(client, b.api_key, "Jhon Smtih")) == ["John Smith"]  # B's own, alone
    assert numbers(await search(client, a.api_key, theirs["number"])) == []
    assert numbers(await search(client, b.api_key, made["john"]["number"])) == []


async def test_a_store_associate_finds_only_their_locations_orders(client, make_client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"wh": 10, "store": 5}, "sku2": {"wh": 10}})
    await publish_rules(client, key, by_priority("Click and collect", types=("store", "warehouse")))
    email = f"{unique('sam')}@example.test"
    pickup = await routed_order(client, tenant, bought(c, name="Sam Collector", email=email, pickup=c["store"]))
    home = await routed_order(client, tenant, bought(c, name="Sam Collector", email=email, postcode="13001",
                                                       sku="sku2"))
    assert home["fulfilments"][0]["location"] == c["wh"]

    associate = await make_client()
    await login(associate, await member(tenant.tenant_id, "store_associate", [c["store"]]))
    page = await associate.get("/app/search", params={"q": email})
    assert page.status_code == 200
    assert pickup["number"] in page.text and home["number"] not in page.text
    assert re.search(r'href="/app/customers/[0-9a-f-]{36}">Sam Collector</a>', page.text)
    for q in (home["number"], "13001"):
        assert "Nothing found" in await results(associate, q), q
    found = await results(associate, "Sam Colector")
    assert pickup["number"] in found and home["number"] not in found and "1 order" in found

    # An associate of a location none of Sam's orders went through finds neither Sam nor his orders.
    elsewhere = await make_client()
    await login(elsewhere, await member(tenant.tenant_id, "store_associate", [c["wh2"]]))
    for q in ("Sam Collector", email, pickup["number"]):
        assert "Nothing found" in await results(elsewhere, q), q
    # The warehouse's associate finds the order the warehouse ships.
    warehouse = await make_client()
    await login(warehouse, await member(tenant.tenant_id, "store_associate", [c["wh"]]))
    found = await results(warehouse, email)
    assert home["number"] in found and pickup["number"] not in found


async def test_the_top_bar_results_and_the_page_of_results(client) -> None:
    tenant = await create_tenant()
    made = await shop(client, tenant)
    await login(client, tenant.email)

    # The top bar is on every console page, with its list of results closed.
    home = (await client.get("/app")).text
    assert 'id="top-search-input"' in home and 'role="combobox"' in home and 'hx-get="/app/search"' in home

    partial = await client.get("/app/search", params={"q": "jhon smtih"}, headers={"HX-Request": "true"})
    assert partial.status_code == 200
    assert "<html" not in partial.text  # the results alone, for the list under the box
    options = re.findall(r'<a role="option" id="(top-search-[co]\d+)"[^>]*\s+href="([^"]+)"', partial.text)
    assert options[0][1].startswith("/app/customers/")
    assert ("/app/orders/" + made["john"]["id"]) in [href for _, href in options]
    assert len({i for i, _ in options}) == len(options)  # each option its own id, for aria-activedescendant
    assert re.search(r'id="top-search-customers"[^>]*>Customers<', partial.text)
    assert re.search(r'id="top-search-orders"[^>]*>Orders<', partial.text)

    nothing = await client.get("/app/search", params={"q": "Zebulon"}, headers={"HX-Request": "true"})
    assert "Nothing found for “Zebulon”" in nothing.text and 'role="option"' not in nothing.text
    blank = await client.get("/app/search", params={"q": ""}, headers={"HX-Request": "true"})
    assert 'role="option"' not in blank.text and "Nothing found" not in blank.text

    # Opened without htmx (Enter with nothing chosen): a page, the query still in the box.
    full = await client.get("/app/search", params={"q": made["email"]})
    assert full.status_code == 200 and "<html" in full.text and "<h1>Search</h1>" in full.text
    assert f'value="{made["email"]}"' in full.text
    assert made["john"]["number"] in full.text and f'href="/app/orders/{made["john"]["id"]}"' in full.text


async def test_bad_queries_and_narrow_keys(client) -> None:
    from test_orders import key_with_role

    tenant = await create_tenant()
    await shop(client, tenant)
    too_long = await client.get(SEARCH, params={"q": "x" * 201}, headers=bearer(tenant.api_key))
    assert too_long.status_code == 422 and "q" in too_long.text and "200" in too_long.text, too_long.text
    assert (await client.get(SEARCH, params={"q": "John\x00Smith"}, headers=bearer(tenant.api_key))).status_code == 422
    # Signs and scripts a query may hold are searched, not choked on.
    for q in ("%", "_", "'; DROP TABLE customers; --", "{}", "\\", "🙂", "Σμίθ", "@", "+", "O-"):
        assert set(await search(client, tenant.api_key, q)) == {"customers", "orders"}, q
    intake = await key_with_role(tenant, "order_intake")
    assert (await client.get(SEARCH, params={"q": "John"}, headers=bearer(intake))).status_code == 403
    assert (await client.get(SEARCH, params={"q": "John"})).status_code == 401


async def test_keys_follow_what_the_record_holds_when_another_order_filled_it_first(monkeypatch) -> None:
    """Two captures of one new customer at the same moment: the second read the record before the
    first filled in the name, and its upsert keeps the first's name. The keys are those of the name
    kept, not of the one the second capture brought."""
    from core.db import get_database
    from core.search_keys import phone_key, query_keys
    from customers import service

    tenant = await create_tenant()
    email = f"{unique('race')}@example.test"
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        await service.find_or_create_many(session, tenant.tenant_id, [(email, "", "")])
    fetch = service._BY_EMAIL.fetch
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        stale = await fetch(session, tenant=tenant.tenant_id, emails=[email])  # read before the other fills it
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        await service.find_or_create_many(session, tenant.tenant_id, [(email, "Grace Hopper", "")])

    async def read_before(*args: Any, **kwargs: Any) -> Any:
        return stale

    monkeypatch.setattr(service._BY_EMAIL, "fetch", read_before)
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        kept = await service.find_or_create_many(session, tenant.tenant_id, [(email, "Ada Byron", "0612345678")])
    assert (kept[email].name, kept[email].phone) == ("Grace Hopper", "0612345678")
    monkeypatch.undo()
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        def found(q: str) -> Any:
            return service.search(session, tenant.tenant_id, query_keys(q, typos=False))

        assert [c.email for c in await found("Grace Hopper")] == [email]
        assert await found("Ada Byron") == []
        by_phone = await service.search(session, tenant.tenant_id, [[phone_key("06 12 34 56 78")]])
        assert [c.email for c in by_phone] == [email]


async def test_the_search_reads_the_keys_index_as_the_app_role(owner_engine) -> None:
    """Under row-level security PostgreSQL uses an index only for a leakproof comparison: the
    search's plan, as the app role in a company with thousands of customers, reads the keys on
    their primary key (tenant_id, key, customer_id), never the whole table."""
    import json

    from sqlalchemy import text

    from core.db import driver, get_database
    from core.search_keys import query_keys
    from customers import service

    tenant = await create_tenant()
    first, last = ["Ada", "Grace", "Alan", "Edsger", "Barbara"], ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov"]
    people = [(f"p{n}@example.test", f"{first[n % 5]} {last[n // 5 % 5]}", f"06{n:08d}") for n in range(2000)]
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        await service.find_or_create_many(session, tenant.tenant_id, people)
    async with owner_engine.connect() as conn:
        await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(
            text("ANALYZE customer_search_keys"))

    def scans(node: dict[str, Any]) -> list[tuple[str, str | None]]:
        found = [(node["Node Type"], node.get("Index Name"))] if node.get("Relation Name") == "customer_search_keys" \
            else []
        return found + [scan for child in node.get("Plans", []) for scan in scans(child)]

    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        q = query_keys("grace hoper")
        plan = await (await driver(session)).fetchval("EXPLAIN (FORMAT JSON) " + service._SEARCH,
                                                      *service.search_arguments(tenant.tenant_id, q))
        found = await service.search(session, tenant.tenant_id, q)
    used = scans((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"])
    assert used and all(kind in ("Index Only Scan", "Index Scan") and index == "pk_customer_search_keys"
                        for kind, index in used), used
    assert len(found) == 80 and {c.name for c in found} == {"Grace Hopper"}
