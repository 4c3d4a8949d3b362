"""Issue 4 stock feeds: snapshots and deltas, by JSON and CSV, applied once by the
``inventory.apply_feed`` actor, all-or-nothing, with row-numbered errors."""

from __future__ import annotations

import json

from factories import bearer, create_tenant
from inventory_factories import (
    API,
    apply_feeds,
    feed_status,
    levels,
    line_for,
    location_body,
    make_locations,
    make_products,
    movement_count,
    on_hand,
    reserve,
    send_csv_feed,
    send_feed,
    stock_up,
)
from workers import eventually, running_worker

START = {("A", "WH1"): 10, ("B", "WH1"): 5, ("C", "WH2"): 7, ("A", "WH2"): 3}


async def stocked_tenant(client):
    tenant = await create_tenant()
    await make_locations(client, tenant.api_key, location_body("WH1"), location_body("WH2"))
    await make_products(client, tenant.api_key, "A", "B", "C")
    await stock_up(client, tenant.api_key, START)
    return tenant


async def feeds_of(client, key) -> list[dict]:
    response = await client.get(f"{API}/inventory/feeds", headers=bearer(key))
    assert response.status_code == 200
    return response.json()


async def test_snapshot_sets_listed_skus_and_zeroes_absent_ones_at_named_locations_only(client) -> None:
    tenant = await stocked_tenant(client)
    key = tenant.api_key
    sent = await send_feed(client, key, "snap-1", "snapshot", [("A", "WH1", 4), ("C", "WH1", 6)])
    assert sent.status_code == 202, sent.text
    body = sent.json()
    assert body["status"] == "accepted" and body["feed_id"] == "snap-1" and body["kind"] == "snapshot"
    assert await on_hand(tenant.tenant_id) == START  # accepted, not applied yet

    ran = await apply_feeds(tenant.tenant_id)
    assert ran == [("inventory.apply_feed", {"tenant_id": str(tenant.tenant_id), "feed_id": body["id"]})]
    status = await feed_status(client, key, body["id"])
    assert status["status"] == "applied"
    assert status["rows_total"] == 2
    assert status["rows_changed"] == 3  # A@WH1 10->4, C@WH1 0->6, B@WH1 5->0
    assert status["stock_exceptions"] == 0 and status["errors"] == []
    assert status["finished_at"] is not None
    # WH2 is not named by the snapshot: untouched.
    assert await on_hand(tenant.tenant_id) == {("A", "WH1"): 4, ("C", "WH1"): 6, ("C", "WH2"): 7, ("A", "WH2"): 3}

    moves = (await client.get(f"{API}/inventory/movements", params={"sku": "B", "location": "WH1"},
                              headers=bearer(key))).json()
    assert [(m["on_hand_delta"], m["reason"], m["reference"]) for m in moves] == [
        (-5, "snapshot", "feed snap-1"), (5, "receipt", None)]
    assert await movement_count(tenant.tenant_id) == len(START) + 3


async def test_delta_adds_and_removes_by_csv_and_json(client) -> None:
    tenant = await stocked_tenant(client)
    key = tenant.api_key
    csv_feed = await send_csv_feed(client, key, "delta-1", "delta", "sku,location,quantity\r\nA,WH1,5\r\nC,WH2,-2\r\n")
    assert csv_feed.status_code == 202, csv_feed.text
    json_feed = await send_feed(client, key, "delta-2", "delta", [("B", "WH2", 4), ("A", "WH2", -3)])
    assert json_feed.status_code == 202, json_feed.text
    assert len(await apply_feeds(tenant.tenant_id)) == 2
    for feed in (csv_feed, json_feed):
        status = await feed_status(client, key, feed.json()["id"])
        assert status["status"] == "applied" and status["rows_total"] == 2 and status["rows_changed"] == 2
    assert await on_hand(tenant.tenant_id) == {("A", "WH1"): 15, ("B", "WH1"): 5, ("C", "WH2"): 5, ("B", "WH2"): 4}
    assert await movement_count(tenant.tenant_id) == len(START) + 4
    listed = await feeds_of(client, key)
    assert {f["feed_id"] for f in listed} == {"delta-1", "delta-2"}


async def test_same_feed_twice_is_applied_once(client) -> None:
    from core.broker import COROUTINES

    tenant = await stocked_tenant(client)
    key = tenant.api_key
    rows = [("A", "WH1", 2), ("B", "WH1", 1)]
    first = await send_feed(client, key, "delta-once", "delta", rows)
    assert first.status_code == 202
    again = await send_feed(client, key, "delta-once", "delta", rows)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]

    assert len(await apply_feeds(tenant.tenant_id)) == 1  # one feed, one job
    expected = {**START, ("A", "WH1"): 12, ("B", "WH1"): 6}
    assert await on_hand(tenant.tenant_id) == expected
    moves = await movement_count(tenant.tenant_id)

    # Redeliveries of the job, after the feed was applied.
    for _ in range(2):
        await COROUTINES["inventory.apply_feed"](tenant_id=str(tenant.tenant_id), feed_id=first.json()["id"])
    # And the same feed sent once more after it was applied.
    third = await send_feed(client, key, "delta-once", "delta", rows)
    assert third.status_code == 200 and third.json()["status"] == "applied"
    assert await apply_feeds(tenant.tenant_id) == []
    assert await on_hand(tenant.tenant_id) == expected
    assert await movement_count(tenant.tenant_id) == moves

    other_content = await send_feed(client, key, "delta-once", "delta", [("A", "WH1", 3)])
    assert other_content.status_code == 409
    assert "delta-once" in other_content.json()["detail"]
    other_kind = await send_feed(client, key, "delta-once", "snapshot", rows)
    assert other_kind.status_code == 409
    assert len(await feeds_of(client, key)) == 1
    assert await on_hand(tenant.tenant_id) == expected


async def test_same_csv_feed_twice_is_applied_once(client) -> None:
    tenant = await stocked_tenant(client)
    body = "sku,location,quantity\nA,WH1,-4\n"
    first = await send_csv_feed(client, tenant.api_key, "csv-once", "delta", body)
    second = await send_csv_feed(client, tenant.api_key, "csv-once", "delta", body)
    assert (first.status_code, second.status_code) == (202, 200)
    assert first.json()["id"] == second.json()["id"]
    await apply_feeds(tenant.tenant_id)
    assert (await on_hand(tenant.tenant_id))[("A", "WH1")] == 6


async def test_two_concurrent_runs_of_the_job_apply_the_feed_once(client) -> None:
    import asyncio

    from core.broker import COROUTINES

    tenant = await stocked_tenant(client)
    sent = await send_feed(client, tenant.api_key, "race", "delta", [("A", "WH1", 1)])
    job = COROUTINES["inventory.apply_feed"]
    await asyncio.gather(*[job(tenant_id=str(tenant.tenant_id), feed_id=sent.json()["id"]) for _ in range(3)])
    assert (await on_hand(tenant.tenant_id))[("A", "WH1")] == 11
    assert await movement_count(tenant.tenant_id) == len(START) + 1


async def test_bad_rows_reject_the_whole_feed_with_every_error_by_row(client) -> None:
    tenant = await stocked_tenant(client)
    key = tenant.api_key
    before_levels, before_moves = await levels(tenant.tenant_id), await movement_count(tenant.tenant_id)
    body = ("sku,location,quantity\n"
            "A,WH1,3\n"        # row 2: fine
            "ZZZ,WH1,1\n"      # row 3: unknown SKU
            "B,NOPE,1\n"       # row 4: unknown location
            "B,WH1,-1\n"       # row 5: negative in a snapshot
            "C,WH2,12a\n"      # row 6: malformed number
            "A,WH1,5\n"        # row 7: duplicate of row 2
            "C,WH1,2\n")       # row 8: fine
    sent = await send_csv_feed(client, key, "bad-1", "snapshot", body)
    assert sent.status_code == 202, sent.text
    await apply_feeds(tenant.tenant_id)
    status = await feed_status(client, key, sent.json()["id"])
    assert status["status"] == "rejected"
    assert status["rows_changed"] == 0
    errors = [(e["row"], e["column"]) for e in status["errors"]]
    assert errors == [(3, "sku"), (4, "location"), (5, "quantity"), (6, "quantity"), (7, "sku")]
    by_row = {e["row"]: e["message"] for e in status["errors"]}
    assert "ZZZ" in by_row[3] and "NOPE" in by_row[4] and "-1" in by_row[5] and "12a" in by_row[6]
    assert "row 2" in by_row[7]
    assert await levels(tenant.tenant_id) == before_levels
    assert await movement_count(tenant.tenant_id) == before_moves


async def test_rejected_feed_counts_every_row_of_the_file(client) -> None:
    """rows_total is the number of data rows received (7 here), bad ones included."""
    tenant = await stocked_tenant(client)
    body = "sku,location,quantity\nA,WH1,3\nZZZ,WH1,1\nB,NOPE,1\nB,WH1,-1\nC,WH2,12a\nA,WH1,5\nC,WH1,2\n"
    sent = await send_csv_feed(client, tenant.api_key, "bad-count", "snapshot", body)
    await apply_feeds(tenant.tenant_id)
    status = await feed_status(client, tenant.api_key, sent.json()["id"])
    assert status["status"] == "rejected"
    assert status["rows_total"] == 7


async def test_bad_rows_in_a_json_delta_are_listed_by_row(client) -> None:
    tenant = await stocked_tenant(client)
    key = tenant.api_key
    before_levels, before_moves = await levels(tenant.tenant_id), await movement_count(tenant.tenant_id)
    sent = await send_feed(client, key, "bad-json", "delta", [
        ("A", "WH1", 1), ("A", "WH1", 2), ("Q", "WH9", 1), ("B", "WH1", 1)])
    assert sent.status_code == 202
    await apply_feeds(tenant.tenant_id)
    status = await feed_status(client, key, sent.json()["id"])
    assert status["status"] == "rejected"
    assert [(e["row"], e["column"]) for e in status["errors"]] == [(2, "sku"), (3, "sku"), (3, "location")]
    assert await levels(tenant.tenant_id) == before_levels
    assert await movement_count(tenant.tenant_id) == before_moves


async def test_unusable_files_are_refused_at_once_and_store_nothing(client) -> None:
    tenant = await stocked_tenant(client)
    key = tenant.api_key
    before_levels = await levels(tenant.tenant_id)

    wrong_header = await send_csv_feed(client, key, "h-1", "delta", "sku,loc,qty\nA,WH1,1\n")
    assert wrong_header.status_code == 422
    assert wrong_header.headers["content-type"].startswith("application/problem+json")
    assert "sku,location,quantity" in wrong_header.json()["detail"]

    latin1 = "sku,location,quantity\nCAFÉ,WH1,1\n".encode("latin-1")
    bad_encoding = await send_csv_feed(client, key, "enc-1", "delta", latin1)
    assert bad_encoding.status_code == 422
    assert "UTF-8" in bad_encoding.json()["detail"]

    columns = await send_csv_feed(client, key, "cols-1", "delta", "sku,location,quantity\nA,WH1\n")
    assert columns.status_code == 422 and "Row 2" in columns.json()["detail"]

    no_id = await send_csv_feed(client, key, "", "delta", "sku,location,quantity\nA,WH1,1\n")
    assert no_id.status_code == 422
    bad_kind = await send_csv_feed(client, key, "kind-1", "weekly", "sku,location,quantity\nA,WH1,1\n")
    assert bad_kind.status_code == 422

    for json_body in (
        {"feed_id": "j-1", "kind": "snapshot", "rows": [{"sku": "A", "location": "WH1"}]},  # missing quantity
        {"feed_id": "j-3", "kind": "snapshot", "rows": [{"sku": "A", "location": "WH1", "quantity": 1, "x": 1}]},
        {"feed_id": "j-4", "kind": "weekly", "rows": []},
        {"kind": "delta", "rows": []},
        {"feed_id": "j-6", "kind": "delta", "rows": {"sku": "A"}},
    ):
        response = await client.post(f"{API}/inventory/feeds", json=json_body, headers=bearer(key))
        assert response.status_code == 422, (json_body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    not_json = await client.post(f"{API}/inventory/feeds", content=b"{not json", headers={
        **bearer(key), "Content-Type": "application/json"})
    assert not_json.status_code == 422

    assert await feeds_of(client, key) == []
    assert await apply_feeds(tenant.tenant_id) == []

    # a malformed number is a row error, in JSON as in CSV: the feed is received, then rejected
    malformed = await client.post(f"{API}/inventory/feeds", headers=bearer(key), json={
        "feed_id": "j-2", "kind": "snapshot", "rows": [{"sku": "A", "location": "WH1", "quantity": "12a"}]})
    assert malformed.status_code == 202
    await apply_feeds(tenant.tenant_id)
    rejected = (await client.get(f"{API}/inventory/feeds/{malformed.json()['id']}", headers=bearer(key))).json()
    assert rejected["status"] == "rejected"
    assert [(e["row"], e["column"]) for e in rejected["errors"]] == [(1, "quantity")]
    assert await levels(tenant.tenant_id) == before_levels


async def test_oversized_feed_is_refused_with_413(client) -> None:
    from inventory.feeds import MAX_FEED_BYTES

    tenant = await stocked_tenant(client)
    line = b"A,WH1,1\n"
    body = b"sku,location,quantity\n" + line * (MAX_FEED_BYTES // len(line) + 1)
    response = await send_csv_feed(client, tenant.api_key, "big-1", "delta", body)
    assert response.status_code == 413, response.text[:300]
    assert "MB" in response.json()["detail"]
    assert await feeds_of(client, tenant.api_key) == []


async def test_snapshot_below_reserved_is_applied_and_flagged(client) -> None:
    from sqlalchemy import select

    from core.db import get_database
    from inventory.models import StockException

    tenant = await stocked_tenant(client)
    key = tenant.api_key
    assert await reserve(tenant.tenant_id, await line_for(tenant.tenant_id, "A", "WH1", 6))
    sent = await send_feed(client, key, "count-1", "snapshot", [("A", "WH1", 4), ("B", "WH1", 5)])
    await apply_feeds(tenant.tenant_id)
    status = await feed_status(client, key, sent.json()["id"])
    assert status["status"] == "applied"
    assert status["stock_exceptions"] == 1
    assert status["rows_changed"] == 1
    assert (await levels(tenant.tenant_id))[("A", "WH1")] == (4, 6, 0)
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        exceptions = list(await session.scalars(select(StockException)
                                                .where(StockException.tenant_id == tenant.tenant_id)))
    assert len(exceptions) == 1
    assert exceptions[0].kind == "on_hand_below_reserved"
    assert str(exceptions[0].feed_id) == sent.json()["id"]
    assert "4" in exceptions[0].message and "6" in exceptions[0].message
    availability = (await client.get(f"{API}/availability", params={"sku": "A"}, headers=bearer(key))).json()[0]
    assert {loc["location"]: loc["available"] for loc in availability["locations"]} == {"WH1": 0, "WH2": 3}
    assert availability["total_available"] == 3


async def test_delta_that_would_go_negative_is_rejected_with_the_current_figure(client) -> None:
    tenant = await stocked_tenant(client)
    key = tenant.api_key
    before_levels, before_moves = await levels(tenant.tenant_id), await movement_count(tenant.tenant_id)
    sent = await send_feed(client, key, "oversell", "delta", [("B", "WH1", 1), ("A", "WH2", -5)])
    await apply_feeds(tenant.tenant_id)
    status = await feed_status(client, key, sent.json()["id"])
    assert status["status"] == "rejected"
    assert [(e["row"], e["column"]) for e in status["errors"]] == [(2, "quantity")]
    assert "only 3 on hand" in status["errors"][0]["message"]
    assert await levels(tenant.tenant_id) == before_levels
    assert await movement_count(tenant.tenant_id) == before_moves


async def test_a_real_worker_applies_the_feed(client) -> None:
    tenant = await stocked_tenant(client)
    key = tenant.api_key
    sent = await send_csv_feed(client, key, "worker-1", "snapshot", "sku,location,quantity\nA,WH2,9\n")
    assert sent.status_code == 202

    async def applied() -> bool:
        return (await feed_status(client, key, sent.json()["id"]))["status"] == "applied"

    async with running_worker():
        await eventually(applied, what="the worker applying the feed")
    assert await on_hand(tenant.tenant_id) == {("A", "WH1"): 10, ("B", "WH1"): 5, ("A", "WH2"): 9}
    # A late inline run of the same message changes nothing.
    await apply_feeds(tenant.tenant_id)
    assert await on_hand(tenant.tenant_id) == {("A", "WH1"): 10, ("B", "WH1"): 5, ("A", "WH2"): 9}
    assert json.loads(json.dumps(await feed_status(client, key, sent.json()["id"])))["rows_changed"] == 2


async def test_a_quantity_too_large_for_the_database_rejects_the_feed_instead_of_crashing(client) -> None:
    """A row error like any other: the job must finish and the feed must not stay 'applying'."""
    from core.broker import COROUTINES

    tenant = await stocked_tenant(client)
    key = tenant.api_key
    before_levels = await levels(tenant.tenant_id)
    sent = await send_csv_feed(client, key, "huge-1", "delta", "sku,location,quantity\nA,WH1,1\nB,WH1,99999999999\n")
    assert sent.status_code in (202, 422), sent.text
    if sent.status_code == 202:
        crashed = None
        try:
            await COROUTINES["inventory.apply_feed"](tenant_id=str(tenant.tenant_id), feed_id=sent.json()["id"])
        except Exception as exc:  # the bug: the job raises and the feed stays 'applying'
            crashed = exc
        status = await feed_status(client, key, sent.json()["id"])
        assert crashed is None and status["status"] == "rejected", (repr(crashed), status)
        assert [(e["row"], e["column"]) for e in status["errors"]] == [(3, "quantity")]
    assert await levels(tenant.tenant_id) == before_levels


async def test_a_stock_exception_shows_on_the_inventory_page_until_resolved(client) -> None:
    import re
    import uuid as uuid_module

    from core.db import get_database
    from factories import bearer, create_tenant, login, post_form, run_outbox_inline
    from inventory import ledger

    tenant = await create_tenant()
    key = bearer(tenant.api_key)
    location = (await client.post("/api/v1/locations", headers=key, json={
        "code": "WH1", "name": "Main", "kind": "warehouse", "country": "FR", "timezone": "Europe/Paris"})).json()
    product = (await client.post("/api/v1/products", headers=key,
                                 json={"sku": "SKU-X", "name": "X", "price_minor": 100})).json()
    await client.post("/api/v1/inventory/adjustments", headers=key,
                      json={"sku": "SKU-X", "location": "WH1", "quantity": 5})
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        await ledger.reserve(session, tenant.tenant_id, [ledger.Line(
            uuid_module.UUID(product["id"]), uuid_module.UUID(location["id"]), 3)], reference="o-1", actor="t")
    await client.post("/api/v1/inventory/feeds", headers=key, json={
        "feed_id": "count-1", "kind": "snapshot", "rows": [{"sku": "SKU-X", "location": "WH1", "quantity": 1}]})
    await run_outbox_inline(tenant.tenant_id)

    await login(client, tenant.email)
    page = await client.get("/app/inventory")
    assert "1 stock exception" in page.text
    assert "set on hand to 1 while 3 are reserved" in page.text
    exception_id = re.search(r"/app/inventory/exceptions/([0-9a-f-]{36})/resolve", page.text).group(1)
    resolved = await post_form(client, f"/app/inventory/exceptions/{exception_id}/resolve")
    assert resolved.status_code == 303
    assert "stock exception" not in (await client.get("/app/inventory")).text
