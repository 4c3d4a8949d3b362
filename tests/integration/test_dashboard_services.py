"""What the dashboard reads from inventory, customer service and the kernel: each location's
promise (kept in its form and the API), location kinds, stock-outs per category, open stock
exceptions, the day's returns within a person's reach, and the stuck work to decide on; always
one company's own, never another's."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient
from sqlalchemy import select, update
from test_plain_errors import GOOD_LOCATION, form_field_errors
from test_returns import opened, returning

from core import clock
from core.auth import Principal
from factories import bearer, create_tenant, login, post_form
from inventory_factories import (
    API,
    apply_feeds,
    line_for,
    location_body,
    make_locations,
    make_products,
    product_body,
    reserve,
    send_feed,
    stock_up,
)


def principal(tenant_id: uuid.UUID, *, locations: frozenset[str] | None = None,
              channel: str | None = None) -> Principal:
    role = "store_associate" if locations is not None else "owner"
    return Principal(tenant_id=tenant_id, role=role, label="test", tenant_name="", timezone="Europe/Paris",
                     currency="EUR", locations=locations, channel=channel)


async def in_company(tenant_id: uuid.UUID, read: Any) -> Any:
    """``read(session)`` in the company's own scope, as a page would."""
    from core.db import get_database

    async with get_database().transaction(tenant_id=tenant_id) as session:
        return await read(session)


def problems(response: Any) -> dict[str, str]:
    assert response.status_code == 422, response.text
    return {e["field"]: e["message"] for e in response.json()["errors"]}


# --- a location's promise ----------------------------------------------------------------------------

async def test_a_location_keeps_its_promise_through_the_api_and_refuses_bad_hours(client: AsyncClient) -> None:
    from inventory import locations

    tenant = await create_tenant()
    key = bearer(tenant.api_key)
    created = await client.post(f"{API}/locations", headers=key, json=location_body("WH-P", promise_hours=48))
    assert created.status_code == 201, created.text
    assert created.json()["promise_hours"] == 48
    plain = (await client.post(f"{API}/locations", headers=key, json=location_body("ST-P", kind="store"))).json()
    assert plain["promise_hours"] == 24  # the default: a day

    location_id = created.json()["id"]
    changed = await client.put(f"{API}/locations/{location_id}", headers=key,
                               json=location_body("WH-P", promise_hours=6))
    assert changed.status_code == 200 and changed.json()["promise_hours"] == 6
    assert (await client.get(f"{API}/locations/{location_id}", headers=key)).json()["promise_hours"] == 6

    for typed, words in [(0, "Enter a whole number from 1 to 720."), (721, "Enter a whole number from 1 to 720."),
                         (10**30, "Enter a whole number from 1 to 720."), ("abc", "Enter a whole number."),
                         (12.5, "Enter a whole number."), (None, "Enter a whole number.")]:
        refused = await client.put(f"{API}/locations/{location_id}", headers=key,
                                   json=location_body("WH-P", promise_hours=typed))
        assert problems(refused) == {"promise_hours": words}, typed
        assert problems(await client.post(f"{API}/locations", headers=key,
                                          json=location_body("WH-Q", promise_hours=typed))) == {"promise_hours": words}
    assert (await client.get(f"{API}/locations/{location_id}", headers=key)).json()["promise_hours"] == 6
    assert len((await client.get(f"{API}/locations", headers=key)).json()) == 2

    other = await create_tenant()
    await make_locations(client, other.api_key, location_body("WH-P", promise_hours=720),
                         location_body("MK-O", kind="marketplace"))
    assert await in_company(tenant.tenant_id, lambda s: locations.promises(s, tenant.tenant_id)) == {
        "WH-P": 6, "ST-P": 24}
    assert await in_company(tenant.tenant_id, lambda s: locations.kinds(s, tenant.tenant_id)) == {
        "WH-P": "warehouse", "ST-P": "store"}
    assert await in_company(other.tenant_id, lambda s: locations.promises(s, other.tenant_id)) == {
        "WH-P": 720, "MK-O": 24}


async def test_the_location_form_asks_for_the_promise_and_tells_a_bad_one_beside_it(client: AsyncClient) -> None:
    tenant = await create_tenant()
    await login(client, tenant.email)
    blank = await client.get("/app/locations/new")
    assert "Promise: hours to ship or have ready for pickup" in blank.text
    assert "A fulfilment not shipped or ready within this time shows as late on the dashboard." in blank.text
    assert re.search(r'name="promise_hours"[^>]*value="24"', blank.text)
    assert 'min="1" max="720"' in blank.text

    for typed, words in [("abc", "Enter a whole number of hours from 1 to 720, such as 24."),
                         ("9" * 5000, "Enter a whole number of hours from 1 to 720, such as 24."),
                         ("0", "Enter a whole number from 1 to 720."),
                         ("99999999999", "Enter a whole number from 1 to 720.")]:
        page = await post_form(client, "/app/locations/new", dict(GOOD_LOCATION, promise_hours=typed))
        assert page.status_code == 422
        assert form_field_errors(page.text) == {"promise_hours": words}, typed
    assert (await client.get(f"{API}/locations", headers=bearer(tenant.api_key))).json() == []

    saved = await post_form(client, "/app/locations/new", dict(GOOD_LOCATION, promise_hours=" 36 "))
    assert saved.status_code == 303, saved.text
    [location] = (await client.get(f"{API}/locations", headers=bearer(tenant.api_key))).json()
    assert location["promise_hours"] == 36
    edit = await client.get(f"/app/locations/{location['id']}")
    assert re.search(r'name="promise_hours"[^>]*value="36"', edit.text)
    # Left empty, it is the default again.
    resaved = await post_form(client, f"/app/locations/{location['id']}", dict(GOOD_LOCATION, promise_hours=""))
    assert resaved.status_code == 303, resaved.text
    assert (await client.get(f"{API}/locations/{location['id']}",
                             headers=bearer(tenant.api_key))).json()["promise_hours"] == 24


# --- stock-outs by category ----------------------------------------------------------------------------

async def test_stock_outs_count_active_skus_with_nothing_available_at_an_active_location(client: AsyncClient) -> None:
    from inventory import catalog

    tenant = await create_tenant()
    key = tenant.api_key
    await make_locations(client, key, location_body("WH-1"), location_body("WH-SHUT"))
    products = [product_body("SHOE-OK", category="shoes"), product_body("SHOE-RESERVED", category="shoes"),
                product_body("SHOE-NONE", category="shoes"), product_body("COAT-SAFE", category="coats"),
                product_body("COAT-OLD", category="coats", status="inactive"),
                product_body("BARE-SHUT", category=None), product_body("BARE-OK", category=None),
                product_body("HAT-OK", category="hats")]
    imported = await client.post(f"{API}/products/import", headers=bearer(key), json={"products": products})
    assert imported.status_code == 200, imported.text
    await stock_up(client, key, {("SHOE-OK", "WH-1"): 3, ("SHOE-RESERVED", "WH-1"): 2, ("COAT-SAFE", "WH-1"): 4,
                                 ("BARE-SHUT", "WH-SHUT"): 9, ("BARE-OK", "WH-1"): 1, ("HAT-OK", "WH-1"): 1})
    assert await reserve(tenant.tenant_id, await line_for(tenant.tenant_id, "SHOE-RESERVED", "WH-1", 2))
    safety = await client.put(f"{API}/inventory/safety-stock", headers=bearer(key),
                              json={"sku": "COAT-SAFE", "location": "WH-1", "safety_stock": 4})
    assert safety.status_code == 200, safety.text
    [shut] = [loc for loc in (await client.get(f"{API}/locations", headers=bearer(key))).json()
              if loc["code"] == "WH-SHUT"]
    paused = await client.put(f"{API}/locations/{shut['id']}", headers=bearer(key),
                              json=location_body("WH-SHUT", status="paused"))
    assert paused.status_code == 200, paused.text

    other = await create_tenant()
    await make_locations(client, other.api_key, location_body("WH-1"))
    await make_products(client, other.api_key, "SHOE-X", "SHOE-Y")  # category shoes, no stock anywhere

    # Shoes: one reserved in full, one never stocked. Coats: all of it safety stock (the inactive
    # one is not for sale, so not counted). No category: stock only at a paused warehouse.
    assert await in_company(tenant.tenant_id, lambda s: catalog.stock_outs_by_category(s, tenant.tenant_id)) == [
        ("shoes", 2, 3), ("", 1, 2), ("coats", 1, 1), ("hats", 0, 1)]
    assert await in_company(other.tenant_id, lambda s: catalog.stock_outs_by_category(s, other.tenant_id)) == [
        ("shoes", 2, 2)]


# --- open stock exceptions ----------------------------------------------------------------------------

async def _exception_at(client: AsyncClient, tenant: Any, sku: str, at: datetime) -> None:
    """A delta feed applied at ``at`` that takes on hand below what is reserved."""
    feed = await send_feed(client, tenant.api_key, f"count-{sku}", "delta", [(sku, "WH-1", -3)])
    assert feed.status_code == 202, feed.text
    with clock.frozen_at(at):
        assert await apply_feeds(tenant.tenant_id)


async def _company_with_exceptions(client: AsyncClient, skus: list[str], start: datetime) -> Any:
    tenant = await create_tenant()
    await make_locations(client, tenant.api_key, location_body("WH-1"))
    await make_products(client, tenant.api_key, *skus)
    await stock_up(client, tenant.api_key, {(sku, "WH-1"): 5 for sku in skus})
    for n, sku in enumerate(skus):
        assert await reserve(tenant.tenant_id, await line_for(tenant.tenant_id, sku, "WH-1", 4), reference=sku)
        await _exception_at(client, tenant, sku, start + timedelta(minutes=n))
    return tenant


async def test_open_stock_exceptions_newest_first_with_where_to_resolve_them(client: AsyncClient) -> None:
    from inventory import availability
    from inventory.stock_exceptions import open_exceptions

    start = datetime.now(UTC) - timedelta(hours=1)
    tenant = await _company_with_exceptions(client, ["A-1", "B-2", "C/3"], start)
    other = await _company_with_exceptions(client, ["A-1"], start + timedelta(minutes=30))

    shown, total = await in_company(tenant.tenant_id, lambda s: open_exceptions(s, tenant.tenant_id))
    assert total == 3
    assert [(e.sku, e.location_code, e.kind) for e in shown] == [
        ("C/3", "WH-1", "on_hand_below_reserved"), ("B-2", "WH-1", "on_hand_below_reserved"),
        ("A-1", "WH-1", "on_hand_below_reserved")]
    assert shown[0].message == "Feed count-C/3 set on hand to 2 while 4 are reserved."
    assert shown[0].created_at == start + timedelta(minutes=2)
    assert shown[0].link == "/app/inventory?sku=C%2F3"

    # Resolved where the stock page resolves them: gone from the list and the count.
    await in_company(tenant.tenant_id, lambda s: availability.resolve_exception(
        s, principal(tenant.tenant_id), shown[1].id))
    shown, total = await in_company(tenant.tenant_id, lambda s: open_exceptions(s, tenant.tenant_id, limit=1))
    assert total == 2 and [e.sku for e in shown] == ["C/3"]

    await login(client, tenant.email)
    page = await client.get(shown[0].link)
    assert page.status_code == 200 and "2 stock exceptions" in page.text
    assert "Feed count-C/3 set on hand to 2 while 4 are reserved." in page.text

    theirs, their_total = await in_company(other.tenant_id, lambda s: open_exceptions(s, other.tenant_id))
    assert their_total == 1 and [e.created_at for e in theirs] == [start + timedelta(minutes=30)]
    assert await in_company(tenant.tenant_id, lambda s: open_exceptions(s, other.tenant_id)) == ([], 0)


# --- the day's returns -------------------------------------------------------------------------------

async def test_the_days_returns_newest_first_within_reach(client: AsyncClient) -> None:
    from support import returns

    tenant, c, order = await returning(client)
    key = tenant.api_key
    day = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    made = {}
    for label, at, line, location in [("before", day - timedelta(seconds=1), (1, 1), c["wh"]),
                                      ("first", day, (1, 1), c["store"]),
                                      ("later", day + timedelta(hours=5), (2, 1), c["wh"])]:
        with clock.frozen_at(at):
            made[label] = await opened(client, key, order["id"], line, method="post", location=location)
    other, other_c, other_order = await returning(client)
    with clock.frozen_at(day + timedelta(hours=1)):
        await opened(client, other.api_key, other_order["id"], (1, 1), method="post", location=other_c["wh"])

    async def of_day(who: Principal, **options: Any) -> Any:
        return await in_company(who.tenant_id, lambda s: returns.of_day(s, who, day, day + timedelta(days=1),
                                                                         **options))

    listed, total = await of_day(principal(tenant.tenant_id))
    assert total == 2
    assert [(r.number, r.order_number, r.order_id, r.status, r.method, r.expected_location, r.created_at)
            for r in listed] == [
        (made["later"]["number"], order["number"], uuid.UUID(order["id"]), "requested", "post", c["wh"],
         day + timedelta(hours=5)),
        (made["first"]["number"], order["number"], uuid.UUID(order["id"]), "requested", "post", c["store"], day)]
    assert [str(r.id) for r in listed] == [made["later"]["id"], made["first"]["id"]]

    shown, total = await of_day(principal(tenant.tenant_id), limit=1)
    assert total == 2 and [r.number for r in shown] == [made["later"]["number"]]
    # A store associate sees the returns expected at their store; an order-intake key those of its channel.
    at_store, total = await of_day(principal(tenant.tenant_id, locations=frozenset({c["store"]})))
    assert total == 1 and [r.number for r in at_store] == [made["first"]["number"]]
    assert await of_day(principal(tenant.tenant_id, locations=frozenset({c["wh2"]}))) == ([], 0)
    assert (await of_day(principal(tenant.tenant_id, channel="web")))[1] == 2
    assert await of_day(principal(tenant.tenant_id, channel="phone")) == ([], 0)
    # The other company's return, opened within the day, is theirs alone.
    assert [r.order_number for r in (await of_day(principal(other.tenant_id)))[0]] == [other_order["number"]]


# --- stuck work ------------------------------------------------------------------------------------------

async def _fail(tenant_id: uuid.UUID, note: str) -> None:
    from core.dead_letters import record_failure

    await record_failure(message_id=uuid.uuid4().hex, actor_name="mail.send", queue_name="default",
                         kwargs={"tenant_id": str(tenant_id), "note": note}, error="boom", retries=3)


async def _given_up(client: AsyncClient, tenant: Any, feed_id: str, *, gave_up: bool = True,
                    applied: bool = False) -> None:
    """A stock feed the re-drives sent ``MAX_REDRIVES`` times (and gave up on, with ``gave_up``);
    with ``applied``, a worker got to it in the end."""
    from core import redrive
    from core.ids import uuid7
    from core.models import Redrive

    sent = await send_feed(client, tenant.api_key, feed_id, "delta", [("SKU-S", "WH-S", 1)])
    assert sent.status_code == 202, sent.text
    now = clock.now()

    async def write(session: Any) -> None:
        session.add(Redrive(tenant_id=tenant.tenant_id, id=uuid7(), kind="inventory.feeds",
                            item_id=uuid.UUID(sent.json()["id"]), count=redrive.MAX_REDRIVES,
                            first_at=now - timedelta(hours=2), last_at=now - timedelta(hours=1),
                            gave_up_at=now if gave_up else None))

    await in_company(tenant.tenant_id, write)
    if applied:
        assert await apply_feeds(tenant.tenant_id)


async def _stuck_company(client: AsyncClient, *, failed: int, given_up: int) -> Any:
    """A company with ``failed`` failed jobs and ``given_up`` feeds left for a person; and, not
    stuck, a feed re-driven that a worker applied in the end, and one the re-drives still try."""
    tenant = await create_tenant()
    await make_locations(client, tenant.api_key, location_body("WH-S"))
    await make_products(client, tenant.api_key, "SKU-S")
    await _given_up(client, tenant, "done-at-last", applied=True)
    await _given_up(client, tenant, "still-trying", gave_up=False)
    for n in range(failed):
        await _fail(tenant.tenant_id, f"job {n}")
    for n in range(given_up):
        await _given_up(client, tenant, f"stuck-{n}")
    return tenant


async def test_stuck_work_counts_what_the_stuck_work_page_asks_a_person_to_decide(client: AsyncClient) -> None:
    from core.dead_letters import stuck_count
    from core.models import FailedJob

    tenant = await _stuck_company(client, failed=3, given_up=2)
    other = await _stuck_company(client, failed=1, given_up=1)

    async def settle(session: Any) -> None:
        jobs = list(await session.scalars(select(FailedJob.id).where(FailedJob.tenant_id == tenant.tenant_id)
                                          .order_by(FailedJob.failed_at)))
        await session.execute(update(FailedJob).where(FailedJob.id == jobs[0]).values(status="retried"))
        await session.execute(update(FailedJob).where(FailedJob.id == jobs[1]).values(status="discarded"))

    assert await in_company(tenant.tenant_id, lambda s: stuck_count(s, tenant.tenant_id)) == 5
    await in_company(tenant.tenant_id, settle)  # one job retried, another discarded: no longer stuck
    assert await in_company(tenant.tenant_id, lambda s: stuck_count(s, tenant.tenant_id)) == 3
    assert await in_company(other.tenant_id, lambda s: stuck_count(s, other.tenant_id)) == 2

    # The page shows the same things to decide on: one job to retry, two feeds to send again.
    await login(client, tenant.email)
    page = await client.get("/app/settings/stuck-work")
    assert page.status_code == 200
    assert len(re.findall(r'/retry"', page.text)) + len(re.findall(r'/send"', page.text)) == 3
