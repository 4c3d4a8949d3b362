"""API captures that arrive together are stored together (one transaction for the batch), and
each caller still gets exactly the answer it would have got alone: its new order, the stored
order for a resend, or its own problems, with nothing of a refused order kept."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest
from test_orders import (
    ORDERS,
    ROUTE_MESSAGES,
    by_priority,
    count_rows,
    get_order,
    network,
    order_body,
    problems_of,
    publish_rules,
    stock_of,
)

from factories import bearer, create_tenant, run_outbox_inline, unique


def _spy_on_batches(monkeypatch: Any) -> list[int]:
    """The sizes of the capture batches, to show the requests really went together."""
    from orders import capture

    sizes: list[int] = []
    original = capture.capture_many

    async def spy(session: Any, principal: Any, orders: list[Any]) -> Any:
        sizes.append(len(orders))
        return await original(session, principal, orders)

    monkeypatch.setattr(capture, "capture_many", spy)
    return sizes


async def test_concurrent_captures_each_get_their_own_answer(client, make_client, owner_engine,
                                                             monkeypatch) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"wh": 50}})
    await publish_rules(client, key, by_priority())
    sizes = _spy_on_batches(monkeypatch)
    repeated = unique("MKP")
    shared_email = f"{unique('twice')}@example.test"
    bodies: list[dict[str, Any]] = (
        [order_body((c["sku"], 1, 2500), external_number=unique("WEB")) for _ in range(8)]
        + [order_body((c["sku"], 2, 2500), channel="marketplace", external_number=repeated) for _ in range(3)]
        + [order_body(("NO-SUCH-SKU", 1, 2500)), order_body((c["sku"], 1, 2500), total_minor=1)]
        # one customer, written two ways, in two orders of the same batch
        + [order_body((c["sku"], 1, 2500), email=shared_email),
           order_body((c["sku"], 1, 2500), email=shared_email.upper())]
    )
    clients = [await make_client() for _ in bodies]

    responses = await asyncio.gather(*(other.post(ORDERS, json=body, headers=bearer(key))
                                       for other, body in zip(clients, bodies, strict=True)))

    assert max(sizes) > 1, sizes
    web, repeats, refused, same_customer = responses[:8], responses[8:11], responses[11:13], responses[13:]
    assert [r.status_code for r in web + same_customer] == [201] * 10, [r.text for r in responses]
    assert len({r.json()["id"] for r in web + same_customer}) == 10
    for response, body in zip(web, bodies, strict=False):
        assert response.json()["external_number"] == body["external_number"]
        assert response.json()["status"] == "received" and response.json()["lines"][0]["quantity"] == 1
    assert sorted(r.status_code for r in repeats) == [200, 200, 201]
    assert len({r.json()["id"] for r in repeats}) == 1
    assert [r.status_code for r in refused] == [422, 422]
    assert "lines[0].sku" in problems_of(refused[0]) and "total_minor" in problems_of(refused[1])

    assert await count_rows(owner_engine, "orders", tenant.tenant_id) == 11
    assert await count_rows(owner_engine, "order_lines", tenant.tenant_id) == 11
    assert await count_rows(owner_engine, "outbox_messages", tenant.tenant_id, ROUTE_MESSAGES) == 11
    assert await count_rows(owner_engine, "mail_messages", tenant.tenant_id) == 11
    assert await count_rows(owner_engine, "customers", tenant.tenant_id, f"email = '{shared_email}'") == 1

    await run_outbox_inline(tenant.tenant_id)
    assert (await stock_of(client, key, c["sku"]))[c["wh"]] == (50, 8 + 2 + 2)
    order = await get_order(client, key, repeats[0].json()["id"])
    assert order["status"] == "routed" and order["channel"] == "marketplace"


async def test_companies_capturing_at_the_same_moment_keep_their_own_orders(client, make_client,
                                                                            owner_engine) -> None:
    first, second = await create_tenant(), await create_tenant()
    skus = {}
    for tenant in (first, second):
        c = await network(client, tenant.api_key)
        await publish_rules(client, tenant.api_key, by_priority())
        skus[tenant.tenant_id] = c["sku"]
    number = unique("SAME")  # the same channel number at both companies is two orders
    posts = [(tenant, order_body((skus[tenant.tenant_id], 1, 2500), external_number=f"{number}-{n}"))
             for n in range(5) for tenant in (first, second)]
    clients = [await make_client() for _ in posts]

    responses = await asyncio.gather(*(other.post(ORDERS, json=body, headers=bearer(tenant.api_key))
                                       for other, (tenant, body) in zip(clients, posts, strict=True)))

    assert [r.status_code for r in responses] == [201] * 10, [r.text for r in responses]
    for tenant in (first, second):
        assert await count_rows(owner_engine, "orders", tenant.tenant_id) == 5
        mine = [r.json()["id"] for r, (owner, _) in zip(responses, posts, strict=True) if owner is tenant]
        other = second if tenant is first else first
        for order_id in mine:
            assert (await client.get(f"{ORDERS}/{order_id}", headers=bearer(tenant.api_key))).status_code == 200
            assert (await client.get(f"{ORDERS}/{order_id}", headers=bearer(other.api_key))).status_code == 404


@pytest.mark.parametrize("keyed", [False, True], ids=["plain", "keyed"])
async def test_a_batch_that_fails_in_the_database_fails_only_the_order_at_fault(client, make_client, owner_engine,
                                                                                 monkeypatch, keyed) -> None:
    """An order the checks let through but the database refuses (here, a channel number made
    to collide with a constraint) must not take the other orders of its batch down with it;
    with Idempotency-Keys, the others' answers are stored and the failed one's key stays free."""
    from orders import capture

    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key)
    await publish_rules(client, key, by_priority())
    original = capture._order_row

    def breaking(principal: Any, data: Any, found: Any, customer: Any) -> dict[str, Any]:
        row = original(principal, data, found, customer)
        if data.external_number and data.external_number.startswith("BREAK"):
            row["currency"] = "EURO"  # longer than the column allows: the INSERT fails
        return row

    monkeypatch.setattr(capture, "_order_row", breaking)
    sizes = _spy_on_batches(monkeypatch)
    bodies = [order_body((c["sku"], 1, 2500), external_number=unique("OK")) for _ in range(4)]
    bodies.insert(2, order_body((c["sku"], 1, 2500), external_number=unique("BREAK")))
    clients = [await make_client() for _ in bodies]

    keys = [unique("key") for _ in bodies]

    def headers(n: int) -> dict[str, str]:
        return {**bearer(key), **({"Idempotency-Key": keys[n]} if keyed else {})}

    responses = await asyncio.gather(*(other.post(ORDERS, json=body, headers=headers(n))
                                       for n, (other, body) in enumerate(zip(clients, bodies, strict=True))))

    assert [r.status_code for r in responses] == [201, 201, 500, 201, 201], [r.text for r in responses]
    failed, size = sizes.index(max(sizes)), max(sizes)
    assert size > 1 and sizes[failed + 1:failed + 1 + size] == [1] * size, sizes  # then each went alone
    assert await count_rows(owner_engine, "orders", tenant.tenant_id) == 4
    assert await count_rows(owner_engine, "orders", tenant.tenant_id, "external_number LIKE 'BREAK%'") == 0
    if keyed:
        assert await count_rows(owner_engine, "idempotency_records", tenant.tenant_id, "status_code = 201") == 4
        assert await count_rows(owner_engine, "idempotency_records", tenant.tenant_id) == 4
        again = await client.post(ORDERS, json=bodies[0], headers=headers(0))
        assert (again.status_code, again.headers.get("idempotent-replayed")) == (201, "true")
        assert again.json()["id"] == responses[0].json()["id"]


async def test_a_key_already_in_the_batch_waits_for_the_next_one(client) -> None:
    """Two captures with one key in the same batch: the first is done, the second goes in the
    next batch, where it replays the first's answer."""
    from core.auth import Principal
    from core.group_commit import NEXT_BATCH
    from core.idempotency import Keyed
    from orders.api import _Capture, _capture_batch
    from orders.schemas import OrderIn

    tenant = await create_tenant()
    c = await network(client, tenant.api_key)
    await publish_rules(client, tenant.api_key, by_priority())
    principal = Principal(tenant.tenant_id, "owner", "test", "Test", "Europe/Paris", "EUR")
    data = msgspec.convert(order_body((c["sku"], 1, 2500), external_number=unique("ONE")), OrderIn)
    claim = Keyed("k-1", "digest", "POST", "/api/v1/orders")
    first, second = await _capture_batch(principal, [_Capture(data, claim), _Capture(data, claim)])
    assert second is NEXT_BATCH
    assert first.status_code == 201 and not first.replayed
    [replayed] = await _capture_batch(principal, [_Capture(data, claim)])
    assert (replayed.status_code, replayed.body, replayed.replayed) == (201, first.body, True)


async def test_keyed_captures_go_together_and_each_key_keeps_its_meaning(client, make_client, owner_engine,
                                                                         monkeypatch) -> None:
    """Idempotency-Keys in one batch: each new key captures once and stores its answer; a key
    sent twice at once captures once and the other request replays it; a key reused with
    another body is refused; a refused order stores nothing under its key, which can then
    carry the corrected order; a key answered before is replayed."""
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"wh": 50}})
    await publish_rules(client, key, by_priority())
    earlier = order_body((c["sku"], 1, 2500), external_number=unique("OLD"))
    first = await client.post(ORDERS, json=earlier, headers={**bearer(key), "Idempotency-Key": "k-old"})
    assert first.status_code == 201
    sizes = _spy_on_batches(monkeypatch)
    twice = order_body((c["sku"], 1, 2500), external_number=unique("TWICE"))
    bad = order_body(("NO-SUCH-SKU", 1, 2500), external_number=unique("BAD"))
    sends: list[tuple[str | None, dict[str, Any]]] = [
        *[(f"k-new-{n}", order_body((c["sku"], 1, 2500), external_number=unique("NEW"))) for n in range(4)],
        ("k-twice", twice), ("k-twice", twice),
        ("k-old", earlier),  # answered before: replayed
        ("k-new-0", order_body((c["sku"], 2, 2500), external_number=unique("OTHER"))),  # another body
        ("k-bad", bad),
        (None, order_body((c["sku"], 1, 2500), external_number=unique("PLAIN"))),
    ]
    clients = [await make_client() for _ in sends]

    def headers(idempotency_key: str | None) -> dict[str, str]:
        return {**bearer(key), **({"Idempotency-Key": idempotency_key} if idempotency_key else {})}

    responses = await asyncio.gather(*(other.post(ORDERS, json=body, headers=headers(k))
                                       for other, (k, body) in zip(clients, sends, strict=True)))

    assert max(sizes) > 1, sizes
    new, twins, old, reused, refused, plain = responses[:4], responses[4:6], responses[6], responses[7], \
        responses[8], responses[9]
    assert [r.status_code for r in new[1:]] == [201] * 3
    assert sorted(r.status_code for r in twins) == [201, 201]
    assert len({r.json()["id"] for r in twins}) == 1
    assert sorted(r.headers.get("idempotent-replayed", "") for r in twins) == ["", "true"]
    assert (old.status_code, old.json()["id"], old.headers["idempotent-replayed"]) == (201, first.json()["id"],
                                                                                      "true")
    new0, other0 = new[0], reused  # k-new-0 with two bodies: whichever came first is captured
    assert sorted([new0.status_code, other0.status_code]) == [201, 422]
    assert "Idempotency-Key reused" in (new0 if new0.status_code == 422 else other0).text
    assert refused.status_code == 422 and "lines[0].sku" in problems_of(refused)
    assert plain.status_code == 201
    # Nothing was kept under the refused order's key: the corrected order goes through with it.
    fixed = {**bad, "lines": [{"sku": c["sku"], "quantity": 1, "unit_price_minor": 2500}]}
    retried = await client.post(ORDERS, json=fixed, headers=headers("k-bad"))
    assert retried.status_code == 201 and "idempotent-replayed" not in retried.headers
    assert await count_rows(owner_engine, "orders", tenant.tenant_id) == 1 + 4 + 1 + 1 + 1
    assert await count_rows(owner_engine, "idempotency_records", tenant.tenant_id) == 1 + 4 + 1 + 1
    assert await count_rows(owner_engine, "idempotency_records", tenant.tenant_id, "status_code = 0") == 0
