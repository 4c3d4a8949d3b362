"""The refund ledger: goodwill refunds within what was captured and each line's net, refused
beyond (nothing written), race-safe, idempotent, and cancellations on the same ledger."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

from httpx import AsyncClient
from test_orders import (
    ORDERS,
    act_ok,
    by_priority,
    cancel,
    get_order,
    key_with_role,
    network,
    order_body,
    publish_rules,
    routed_order,
)

from factories import bearer, create_tenant


async def shipped_order(client: AsyncClient, tenant: Any, *lines: tuple[str, int, int], shipping: int = 0,
                        ship: bool = True) -> dict[str, Any]:
    """An order routed to the warehouse and, with ``ship``, shipped (so captured in full)."""
    order = await routed_order(client, tenant, order_body(*lines, shipping=shipping))
    if ship:
        await act_ok(client, tenant.api_key, order["fulfilments"][0]["id"], "accept", "pick", "pack", "ship")
    return await get_order(client, tenant.api_key, order["id"])


async def setup(client: AsyncClient) -> tuple[Any, dict[str, str]]:
    tenant = await create_tenant()
    c = await network(client, tenant.api_key, stock={"sku": {"wh": 100}, "sku2": {"wh": 100}})
    await publish_rules(client, tenant.api_key, by_priority(types=("warehouse",)))
    return tenant, c


def refund(client: AsyncClient, key: str, order_id: str, headers: dict[str, str] | None = None,
           **body: Any) -> Any:
    return client.post(f"{ORDERS}/{order_id}/refunds", json=body, headers={**bearer(key), **(headers or {})})


async def ledger(client: AsyncClient, key: str, order_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"{ORDERS}/{order_id}/refunds", headers=bearer(key))
    assert response.status_code == 200, response.text
    return response.json()


def messages(response: Any) -> dict[str, str]:
    return {e["field"]: e["message"] for e in response.json().get("errors", [])}


async def test_a_goodwill_refund_within_what_was_captured_is_on_the_ledger(client) -> None:
    tenant, c = await setup(client)
    order = await shipped_order(client, tenant, (c["sku"], 2, 2500), (c["sku2"], 1, 900), shipping=500)
    assert order["captured_minor"] == 6400

    response = await refund(client, tenant.api_key, order["id"], amount_minor=1200, reason="Scratched box",
                            lines=[{"line_no": 1, "amount_minor": 1000}], shipping_minor=200)
    assert response.status_code == 201, response.text
    made = response.json()
    assert (made["source"], made["amount_minor"], made["shipping_minor"], made["status"]) == (
        "goodwill", 1200, 200, "sent")
    assert [(line["line_no"], line["amount_minor"]) for line in made["lines"]] == [(1, 1000)]
    assert made["created_by"] and made["reason"] == "Scratched box"

    after = await get_order(client, tenant.api_key, order["id"])
    assert (after["refunded_minor"], after["payment_status"]) == (1200, "partially_refunded")
    assert [(r["id"], r["source"], r["amount_minor"]) for r in await ledger(client, tenant.api_key, order["id"])] == [
        (made["id"], "goodwill", 1200)]


async def test_refunding_beyond_what_was_captured_is_refused_and_changes_nothing(client) -> None:
    tenant, c = await setup(client)
    order = await shipped_order(client, tenant, (c["sku"], 2, 2500))
    assert (await refund(client, tenant.api_key, order["id"], amount_minor=3000, reason="Late")).status_code == 201

    too_much = await refund(client, tenant.api_key, order["id"], amount_minor=2001, reason="Late again")
    assert too_much.status_code == 422
    assert "Only 20,00" in messages(too_much)["amount_minor"] or "Only €20.00" in messages(too_much)["amount_minor"]
    assert (await get_order(client, tenant.api_key, order["id"]))["refunded_minor"] == 3000
    assert len(await ledger(client, tenant.api_key, order["id"])) == 1

    # Every problem at once: no reason, and too much.
    both = await refund(client, tenant.api_key, order["id"], amount_minor=9000, reason="  ")
    assert both.status_code == 422
    assert set(messages(both)) == {"reason", "amount_minor"}


async def test_an_order_not_captured_has_nothing_to_refund(client) -> None:
    tenant, c = await setup(client)
    order = await shipped_order(client, tenant, (c["sku"], 1, 2500), ship=False)
    response = await refund(client, tenant.api_key, order["id"], amount_minor=100, reason="Sorry")
    assert response.status_code == 422
    assert "Nothing was captured" in messages(response)["amount_minor"]


async def test_a_line_never_gets_back_more_than_its_net(client) -> None:
    tenant, c = await setup(client)
    order = await shipped_order(client, tenant, (c["sku"], 1, 2000), (c["sku2"], 1, 3000))
    over = await refund(client, tenant.api_key, order["id"], amount_minor=2500, reason="Damaged",
                        lines=[{"line_no": 1, "amount_minor": 2500}])
    assert over.status_code == 422
    assert "at most" in messages(over)["lines[0].amount_minor"]
    assert await ledger(client, tenant.api_key, order["id"]) == []

    ok = await refund(client, tenant.api_key, order["id"], amount_minor=1500, reason="Damaged",
                      lines=[{"line_no": 1, "amount_minor": 1500}])
    assert ok.status_code == 201, ok.text
    line1 = ok.json()["lines"][0]["order_line_id"]  # a line may be named by its id too
    again = await refund(client, tenant.api_key, order["id"], amount_minor=600, reason="Still damaged",
                         lines=[{"order_line_id": line1, "amount_minor": 600}])
    assert again.status_code == 422  # 500 of its 2000 left
    assert (await get_order(client, tenant.api_key, order["id"]))["refunded_minor"] == 1500

    unknown = await refund(client, tenant.api_key, order["id"], amount_minor=100, reason="x",
                           lines=[{"line_no": 9, "amount_minor": 100}])
    assert unknown.status_code == 422 and "no such line" in messages(unknown)["lines[0].line_no"]


async def test_eight_concurrent_refunds_of_sixty_percent_only_one_succeeds(client, make_client) -> None:
    tenant, c = await setup(client)
    order = await shipped_order(client, tenant, (c["sku"], 4, 2500))
    amount = order["captured_minor"] * 60 // 100
    clients = [await make_client() for _ in range(8)]

    responses = await asyncio.gather(*(refund(other, tenant.api_key, order["id"], amount_minor=amount,
                                              reason=f"Goodwill {i}") for i, other in enumerate(clients)))
    assert sorted(r.status_code for r in responses) == [201] + [422] * 7
    after = await get_order(client, tenant.api_key, order["id"])
    assert after["refunded_minor"] == amount <= after["captured_minor"]
    assert [r["amount_minor"] for r in await ledger(client, tenant.api_key, order["id"])] == [amount]


async def test_a_retried_refund_is_answered_once_and_never_pays_twice(client) -> None:
    tenant, c = await setup(client)
    order = await shipped_order(client, tenant, (c["sku"], 2, 2500))
    key = {"Idempotency-Key": f"refund-{uuid.uuid4()}"}
    first = await refund(client, tenant.api_key, order["id"], key, amount_minor=700, reason="Late")
    second = await refund(client, tenant.api_key, order["id"], key, amount_minor=700, reason="Late")
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json()["id"] == first.json()["id"] and second.headers.get("Idempotent-Replayed") == "true"
    other = await refund(client, tenant.api_key, order["id"], key, amount_minor=800, reason="Late")
    assert other.status_code == 422
    assert (await get_order(client, tenant.api_key, order["id"]))["refunded_minor"] == 700
    assert len(await ledger(client, tenant.api_key, order["id"])) == 1


async def test_another_companys_order_is_not_found_and_roles_are_checked(client) -> None:
    tenant, c = await setup(client)
    order = await shipped_order(client, tenant, (c["sku"], 2, 2500))
    stranger = await create_tenant()
    assert (await refund(client, stranger.api_key, order["id"], amount_minor=100, reason="x")).status_code == 404
    assert (await client.get(f"{ORDERS}/{order['id']}/refunds", headers=bearer(stranger.api_key))).status_code == 404
    for role in ("read_only", "store_associate"):
        key = await key_with_role(tenant, role)
        assert (await refund(client, key, order["id"], amount_minor=100, reason="x")).status_code == 403
    service = await key_with_role(tenant, "customer_service")
    assert (await refund(client, service, order["id"], amount_minor=100, reason="Kind")).status_code == 201
    assert (await get_order(client, tenant.api_key, order["id"]))["refunded_minor"] == 100


async def test_a_cancellation_refund_is_on_the_ledger_with_its_lines(client, owner_engine) -> None:
    from test_order_views import set_payment

    tenant, c = await setup(client)
    order = await routed_order(client, tenant, order_body((c["sku"], 2, 2500), (c["sku2"], 1, 1000), shipping=400))
    # Captured before anything shipped (as a channel may): cancelling gives back what the units were worth.
    await set_payment(owner_engine, tenant.tenant_id, order["id"], captured_minor=6400, payment_status="captured")

    done = await cancel(client, tenant.api_key, order["id"], lines=[{"line_no": 1, "quantity": 1}], reason="Too many")
    assert done.status_code == 200, done.text
    [first] = await ledger(client, tenant.api_key, order["id"])
    assert (first["source"], first["amount_minor"], first["reason"]) == ("cancellation", 2500, "Too many")
    assert [(line["line_no"], line["amount_minor"]) for line in first["lines"]] == [(1, 2500)]

    assert (await refund(client, tenant.api_key, order["id"], amount_minor=300, reason="Sorry",
                         lines=[{"line_no": 2, "amount_minor": 300}])).status_code == 201
    assert (await cancel(client, tenant.api_key, order["id"], reason="Gone")).status_code == 200
    last, goodwill, _ = await ledger(client, tenant.api_key, order["id"])
    assert goodwill["source"] == "goodwill"
    # The rest of what was captured: line 1's other unit, what line 2 had left, and the shipping.
    assert (last["source"], last["amount_minor"], last["shipping_minor"]) == ("cancellation", 3600, 400)
    assert [(line["line_no"], line["amount_minor"]) for line in last["lines"]] == [(1, 2500), (2, 700)]
    after = await get_order(client, tenant.api_key, order["id"])
    assert (after["refunded_minor"], after["payment_status"]) == (6400, "refunded")


async def test_the_console_shows_the_effect_before_refunding_and_lists_the_ledger(client) -> None:
    from factories import login, post_form

    tenant, c = await setup(client)
    order = await shipped_order(client, tenant, (c["sku"], 2, 2500), shipping=900)  # 59,00 € captured
    await login(client, tenant.email)
    url = f"/app/orders/{order['id']}/refund"
    page = (await client.get(f"/app/orders/{order['id']}")).text
    assert "Refund (goodwill)" in page and "No refund yet." in page

    wrong = await post_form(client, url, {"refund_amount": "douze", "refund_reason": ""})
    assert wrong.status_code == 422
    assert "is not an amount" in wrong.text and "Say why the customer gets this refund." in wrong.text
    too_much = await post_form(client, url, {"refund_amount": "60,00", "refund_reason": "Late"})
    assert too_much.status_code == 422 and "can still be refunded" in too_much.text

    review = await post_form(client, url, {"refund_amount": "12,00 €", "refund_reason": "Parcel arrived late"})
    assert review.status_code == 200
    effect = " ".join(review.text.split())
    assert "Refund 12,00 € of 59,00 € captured; 47,00 € left refundable." in effect.replace("\u202f", " ").replace(
        "\xa0", " ")
    assert await ledger(client, tenant.api_key, order["id"]) == []  # nothing done before it is confirmed
    token = re.search(r'name="refund_token" value="([0-9a-f]+)"', review.text).group(1)

    confirmed = {"refund_amount": "12,00", "refund_reason": "Parcel arrived late", "confirm": "1",
                 "refund_token": token}
    done = await post_form(client, url, confirmed)
    assert done.status_code == 303
    again = await post_form(client, url, confirmed)  # a double click, or the form sent again
    assert again.status_code == 303
    [made] = await ledger(client, tenant.api_key, order["id"])
    assert (made["source"], made["amount_minor"], made["reason"]) == ("goodwill", 1200, "Parcel arrived late")
    page = (await client.get(f"/app/orders/{order['id']}")).text
    assert "Parcel arrived late" in page and "goodwill" in page

    viewer = await key_with_role(tenant, "read_only")
    assert (await client.get(f"{ORDERS}/{order['id']}/refunds", headers=bearer(viewer))).status_code == 200
