"""Promotions at order capture: the discounts applied and shared among the lines, a redemption
recorded for each, and limits exact under concurrency (a single-use code, a per-customer limit
and a budget raced by concurrent captures), given back by a cancellation or a return; the
company's "check" mode and its choice to refuse orders with a code that can't be used."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

from httpx import AsyncClient
from test_orders import API, ORDERS, cancel, capture, get_order, key_with_role, network, order_body, problems_of
from test_refund_ledger import setup, shipped_order
from test_returns import accept_returns, exchange, opened, returning

from factories import bearer, create_tenant, unique

PROMOTIONS = f"{API}/rule-sets/promotions"
REDEMPTIONS = f"{API}/redemptions"
SETTINGS = f"{API}/settings/marketing"


# --- helpers --------------------------------------------------------------------------------------

def promotion(promotion_id: str, name: str, effect: dict[str, Any], **fields: Any) -> dict[str, Any]:
    from rules.promotions import new_promotion

    made = new_promotion(promotion_id, name)
    made["effect"] = effect
    made.update(fields)
    return made


def percent_off(percent: int, target: str = "order", lines: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"kind": "percent_off", "target": target, "percent": percent, "lines": lines}


def amount_off(amount_minor: int, target: str = "order") -> dict[str, Any]:
    return {"kind": "fixed_off", "target": target, "amount_minor": amount_minor, "lines": None}


def limits(total_uses: int | None = None, per_customer: int | None = None,
           budget_minor: int | None = None) -> dict[str, Any]:
    return {"total_uses": total_uses, "per_customer": per_customer, "budget_minor": budget_minor}


async def publish_promotions(client: AsyncClient, key: str, *promotions: dict[str, Any],
                             within_class: str = "priority", **body: Any) -> dict[str, Any]:
    document = {"promotions": list(promotions), "within_class": within_class}
    saved = await client.put(f"{PROMOTIONS}/draft", json={"document": document}, headers=bearer(key))
    assert saved.status_code == 200, saved.text
    published = await client.post(f"{PROMOTIONS}/versions", json=body, headers=bearer(key))
    assert published.status_code == 201, published.text
    return published.json()


async def add_coupon(tenant_id: uuid.UUID, promotion_id: str, code: str | None = None, **values: Any) -> str:
    """A coupon code for the promotion, stored as the coupons console stores them (upper case)."""
    from core.db import get_database
    from marketing.models import Coupon

    code = (code or unique("CODE")).upper()
    async with get_database().transaction(tenant_id=tenant_id) as session:
        session.add(Coupon(tenant_id=tenant_id, code=code, promotion_id=promotion_id, **values))
    return code


async def coupon_uses(tenant_id: uuid.UUID, code: str) -> int:
    from sqlalchemy import select

    from core.db import get_database
    from marketing.models import Coupon

    async with get_database().transaction(tenant_id=tenant_id) as session:
        return int(await session.scalar(select(Coupon.uses).where(Coupon.tenant_id == tenant_id,
                                                                   Coupon.code == code)) or 0)


async def counter(tenant_id: uuid.UUID, promotion_id: str) -> tuple[int, int]:
    """(uses, money given) of a limited promotion."""
    from sqlalchemy import select

    from core.db import get_database
    from marketing.models import PromotionCounter

    async with get_database().transaction(tenant_id=tenant_id) as session:
        row = (await session.execute(select(PromotionCounter.uses, PromotionCounter.given_minor).where(
            PromotionCounter.tenant_id == tenant_id, PromotionCounter.promotion_id == promotion_id))).first()
    return (row.uses, row.given_minor) if row else (0, 0)


async def redemptions(client: AsyncClient, key: str, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(REDEMPTIONS, params=params, headers=bearer(key))
    assert response.status_code == 200, response.text
    return response.json()


async def set_marketing(client: AsyncClient, key: str, **values: Any) -> dict[str, Any]:
    response = await client.put(SETTINGS, json=values, headers=bearer(key))
    assert response.status_code == 200, response.text
    return response.json()


async def racing(make_client: Any, tenant: Any, bodies: list[dict[str, Any]], keys: int = 4) -> list[Any]:
    """Post the orders at the same moment, from separate clients under ``keys`` API keys (so that
    some go in one capture batch and others in concurrent transactions)."""
    tokens = [tenant.api_key] + [await key_with_role(tenant, "admin") for _ in range(keys - 1)]
    clients = [await make_client() for _ in bodies]
    return await asyncio.gather(*(other.post(ORDERS, json=body, headers=bearer(tokens[n % keys]))
                                  for n, (other, body) in enumerate(zip(clients, bodies, strict=True))))


# --- applied and apportioned ---------------------------------------------------------------------------

async def test_promotions_are_applied_at_capture_shared_among_lines_and_recorded(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={})
    shoes = {"field": "line.category", "op": "eq", "value": "shoes"}
    await publish_promotions(
        client, key,
        promotion("p-shoes", "Shoes 20 %", percent_off(20, "lines", shoes), combines_with=["order"]),
        promotion("p-summer", "Summer 10 %", percent_off(10), combines_with=["line"]),
        promotion("p-ship", "Free shipping over 200", {"kind": "free_shipping"},
                  when={"field": "order.total", "op": "gte", "value": 20000}),
    )

    order = await capture(client, key, order_body((c["sku"], 2, 2500), (c["sku2"], 1, 4000), shipping=500))

    # Shoes: 20 % of 50.00 on line 1; then 10 % of what is left (40.00 + 40.00), shared by net.
    assert [(line["discount_minor"], line["order_discount_minor"]) for line in order["lines"]] == [(1000, 400),
                                                                                                 (0, 400)]
    assert (order["subtotal_minor"], order["discount_minor"], order["shipping_fee_minor"],
            order["total_minor"]) == (8000, 800, 500, 7700)
    found = await redemptions(client, key, order_id=order["id"])
    assert sorted((r["promotion_id"], r["promotion_class"], r["amount_minor"], r["lines"]) for r in found) == [
        ("p-shoes", "line", 1000, [{"line_no": 1, "amount_minor": 1000}]),
        ("p-summer", "order", 800, [{"line_no": 1, "amount_minor": 400}, {"line_no": 2, "amount_minor": 400}]),
    ]
    assert {r["order_number"] for r in found} == {order["number"]} and found[0]["rule_version"] == 1
    detail = await get_order(client, key, order["id"])
    received = next(e for e in detail["events"] if e["kind"] == "order.received")
    assert any("Summer 10 %" in note for note in received["data"]["promotions"]), received

    # A channel discount stands, and promotions discount what is left after it.
    discounted = await capture(client, key, order_body((c["sku2"], 1, 4000), discount_minor=1000,
                                                       total_minor=3000))
    assert (discounted["discount_minor"], discounted["total_minor"]) == (1000 + 300, 2700)


# --- limits under concurrency ------------------------------------------------------------------------------

async def test_sixteen_orders_racing_for_a_single_use_code_get_one_discount(client, make_client) -> None:
    tenant = await create_tenant()
    c = await network(client, tenant.api_key, stock={})
    await publish_promotions(client, tenant.api_key,
                             promotion("p-welcome", "Welcome 5 EUR", amount_off(500), coupon=True))
    code = await add_coupon(tenant.tenant_id, "p-welcome", max_uses=1)

    responses = await racing(make_client, tenant, [
        order_body((c["sku"], 1, 2500), coupon_codes=[code.lower()]) for _ in range(16)])

    assert [r.status_code for r in responses] == [201] * 16, [r.text for r in responses]
    assert sorted(r.json()["discount_minor"] for r in responses) == [0] * 15 + [500]
    assert await coupon_uses(tenant.tenant_id, code) == 1
    assert len(await redemptions(client, tenant.api_key, coupon=code)) == 1


async def test_a_per_customer_limit_holds_for_concurrent_orders_of_one_customer(client, make_client) -> None:
    tenant = await create_tenant()
    c = await network(client, tenant.api_key, stock={})
    await publish_promotions(client, tenant.api_key,
                             promotion("p-twice", "Twice 10 %", percent_off(10), limits=limits(per_customer=2)))
    email = f"{unique('twice')}@example.test"
    first = await capture(client, tenant.api_key, order_body((c["sku"], 1, 2500), email=email))
    assert first["discount_minor"] == 250

    # A returning customer sends eight orders at once: one more gets the discount.
    responses = await racing(make_client, tenant, [order_body((c["sku"], 1, 2500), email=email) for _ in range(8)])

    assert [r.status_code for r in responses] == [201] * 8, [r.text for r in responses]
    assert sorted(r.json()["discount_minor"] for r in responses) == [0] * 7 + [250]
    other = await capture(client, tenant.api_key, order_body((c["sku"], 1, 2500)))
    assert other["discount_minor"] == 250
    assert await counter(tenant.tenant_id, "p-twice") == (3, 750)


async def test_a_new_customers_first_orders_racing_for_a_limit_never_deadlock(client, make_client) -> None:
    """The customer's record is made by the first of them: their captures lock it before the
    promotion's counters, as every capture does, so none waits on another in a cycle."""
    tenant = await create_tenant()
    c = await network(client, tenant.api_key, stock={})
    await publish_promotions(client, tenant.api_key,
                             promotion("p-once", "Once 10 %", percent_off(10), limits=limits(per_customer=1)))
    email = f"{unique('newcomer')}@example.test"

    responses = await racing(make_client, tenant, [order_body((c["sku"], 1, 2500), email=email) for _ in range(8)])

    assert [r.status_code for r in responses] == [201] * 8, [r.text for r in responses]
    assert sorted(r.json()["discount_minor"] for r in responses) == [0] * 7 + [250]
    assert await counter(tenant.tenant_id, "p-once") == (1, 250)


async def test_a_budget_is_never_exceeded_by_concurrent_orders(client, make_client) -> None:
    tenant = await create_tenant()
    c = await network(client, tenant.api_key, stock={})
    await publish_promotions(client, tenant.api_key,
                             promotion("p-budget", "Launch 10 %", percent_off(10), limits=limits(budget_minor=2500)))

    responses = await racing(make_client, tenant, [order_body((c["sku"], 4, 2500)) for _ in range(16)])

    assert [r.status_code for r in responses] == [201] * 16, [r.text for r in responses]
    # 10.00 off each until 25.00 is given: twice in full, once what is left, then nothing.
    assert sorted((r.json()["discount_minor"] for r in responses), reverse=True)[:4] == [1000, 1000, 500, 0]
    given = await redemptions(client, tenant.api_key, promotion_id="p-budget")
    assert sum(r["amount_minor"] for r in given) == 2500 and len(given) == 3
    assert await counter(tenant.tenant_id, "p-budget") == (3, 2500)
    priced = await client.post(f"{API}/pricing", headers=bearer(tenant.api_key),
                               json={"lines": [{"sku": c["sku"], "quantity": 1, "unit_price_minor": 2500}]})
    assert [(v["reason"], v["message"]) for v in priced.json()["trace"]] == [
        ("budget_spent", "Budget spent (25.00 EUR given)")]


# --- giving back -------------------------------------------------------------------------------------------

async def test_cancelling_an_order_gives_its_code_and_budget_back(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={})
    await publish_promotions(client, key, promotion("p-vip", "VIP 20 %", percent_off(20), coupon=True,
                                                    limits=limits(total_uses=5, budget_minor=100_000)))
    code = await add_coupon(tenant.tenant_id, "p-vip", max_uses=1)
    first = await capture(client, key, order_body((c["sku"], 2, 2500), coupon_codes=[code]))
    assert first["discount_minor"] == 1000
    assert (await coupon_uses(tenant.tenant_id, code), await counter(tenant.tenant_id, "p-vip")) == (1, (1, 1000))
    second = await capture(client, key, order_body((c["sku"], 2, 2500), coupon_codes=[code]))
    assert second["discount_minor"] == 0  # used up

    response = await cancel(client, key, first["id"], reason="Changed mind")
    assert response.status_code == 200, response.text

    assert (await coupon_uses(tenant.tenant_id, code), await counter(tenant.tenant_id, "p-vip")) == (0, (0, 0))
    [given_back] = await redemptions(client, key, order_id=first["id"])
    assert (given_back["given_back_minor"], given_back["use_given_back"]) == (1000, True)
    again = await capture(client, key, order_body((c["sku"], 1, 2500), coupon_codes=[code]))
    assert again["discount_minor"] == 500
    assert await coupon_uses(tenant.tenant_id, code) == 1


async def test_a_resent_order_spends_nothing_more(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={})
    await publish_promotions(client, key, promotion("p-code", "Code 10 %", percent_off(10), coupon=True,
                                                    limits=limits(total_uses=100)))
    code = await add_coupon(tenant.tenant_id, "p-code")  # as many uses as the promotion allows
    body = order_body((c["sku"], 2, 2500), coupon_codes=[code], external_number=unique("WEB"))
    first = await capture(client, key, body)
    again = await capture(client, key, body, expect=200)

    assert again["id"] == first["id"] and first["discount_minor"] == 500
    assert await coupon_uses(tenant.tenant_id, code) == 1
    assert await counter(tenant.tenant_id, "p-code") == (1, 500)
    assert [r["order_id"] for r in await redemptions(client, key, coupon=code)] == [first["id"]]


async def test_a_partial_return_gives_back_its_share_and_the_last_unit_the_rest(client) -> None:
    tenant, c = await setup(client)
    key = tenant.api_key
    await accept_returns(client, key, c["wh"])
    await publish_promotions(client, key, promotion("p-third", "A third off", percent_off(33),
                                                    limits=limits(total_uses=10, budget_minor=10_000)))
    order = await shipped_order(client, tenant, (c["sku"], 3, 2500), (c["sku2"], 1, 4000))
    # 33 % of 115.00 = 37.95, shared by net: 75.00 -> 24.75, 40.00 -> 13.20.
    assert [line["order_discount_minor"] for line in order["lines"]] == [2475, 1320]
    assert await counter(tenant.tenant_id, "p-third") == (1, 3795)

    async def give_back(*lines: tuple[int, int]) -> dict[str, Any]:
        made = await opened(client, key, order["id"], *lines, method="post", location=c["wh"])
        received = await client.post(f"{API}/returns/{made['id']}/receive", json={"location": c["wh"]},
                                     headers=bearer(key))
        assert received.status_code == 200, received.text
        [redemption] = await redemptions(client, key, order_id=order["id"])
        return redemption

    once = await give_back((1, 1))
    assert (once["given_back_minor"], once["use_given_back"]) == (825, False)  # 2475 x 1 / 3
    twice = await give_back((1, 1))
    assert twice["given_back_minor"] == 1650
    assert await counter(tenant.tenant_id, "p-third") == (1, 3795 - 1650)
    last = await give_back((1, 1), (2, 1))
    assert (last["given_back_minor"], last["use_given_back"]) == (3795, True)
    assert await counter(tenant.tenant_id, "p-third") == (0, 0)


# --- settings: check mode, codes that can't be used ------------------------------------------------------------

async def test_check_mode_keeps_the_channels_discounts_and_refuses_more_than_the_promotions_allow(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={})
    await publish_promotions(client, key, promotion("p-ten", "Ten percent", percent_off(10)))
    assert (await set_marketing(client, key, capture_mode="check"))["capture_mode"] == "check"

    too_much = await client.post(ORDERS, headers=bearer(key), json=order_body(
        (c["sku"], 4, 2500), discount_minor=1500, total_minor=8500))
    errors = problems_of(too_much)
    assert "15,00" in errors["discount_minor"] and "10,00" in errors["discount_minor"], errors  # fr_FR

    within = await capture(client, key, order_body((c["sku"], 4, 2500), discount_minor=1000, total_minor=9000))
    assert (within["discount_minor"], within["total_minor"]) == (1000, 9000)  # as the channel sent it
    [recorded] = await redemptions(client, key, order_id=within["id"])
    assert (recorded["promotion_id"], recorded["amount_minor"]) == ("p-ten", 1000)

    # A channel that gave no discount used no promotion: nothing is spent or recorded for it.
    full_price = await capture(client, key, order_body((c["sku"], 4, 2500)))
    assert full_price["discount_minor"] == 0 and not await redemptions(client, key, order_id=full_price["id"])

    await set_marketing(client, key, capture_mode="off")
    untouched = await capture(client, key, order_body((c["sku"], 4, 2500)))
    assert untouched["discount_minor"] == 0 and not await redemptions(client, key, order_id=untouched["id"])


async def test_an_unknown_or_expired_code_is_refused_only_when_the_company_asks(client) -> None:
    from core import clock

    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={})
    await publish_promotions(client, key, promotion("p-code", "Code 10 %", percent_off(10), coupon=True))
    expired = await add_coupon(tenant.tenant_id, "p-code", expires_at=clock.now() - timedelta(days=1))

    kept = await capture(client, key, order_body((c["sku"], 1, 2500), coupon_codes=[expired, "NO-SUCH-CODE"]))
    assert kept["discount_minor"] == 0
    detail = await get_order(client, key, kept["id"])
    notes = next(e for e in detail["events"] if e["kind"] == "order.received")["data"]["promotions"]
    assert f"Code {expired} has expired" in notes and "Code NO-SUCH-CODE does not exist" in notes

    settings = await set_marketing(client, key, refuse_invalid_coupons=True)
    assert (settings["capture_mode"], settings["refuse_invalid_coupons"]) == ("apply", True)
    refused = await client.post(ORDERS, headers=bearer(key), json=order_body(
        (c["sku"], 1, 2500), coupon_codes=[expired, "no-such-code"]))
    message = problems_of(refused)["coupon_codes"]
    assert "has expired" in message and "NO-SUCH-CODE does not exist" in message
    assert (await capture(client, key, order_body((c["sku"], 1, 2500))))["discount_minor"] == 0


async def test_marketing_settings_are_admins_to_change(client) -> None:
    tenant = await create_tenant()
    read_only = await key_with_role(tenant, "read_only")
    assert (await client.get(SETTINGS, headers=bearer(read_only))).json() == {
        "capture_mode": "apply", "refuse_invalid_coupons": False, "updated_at": None, "updated_by": ""}
    refused = await client.put(SETTINGS, json={"capture_mode": "check"}, headers=bearer(read_only))
    assert refused.status_code == 403
    bad = await client.put(SETTINGS, json={"capture_mode": "sometimes"}, headers=bearer(tenant.api_key))
    assert bad.status_code == 422


async def test_an_exchanges_replacement_is_priced_as_agreed_with_no_promotion(client) -> None:
    """The replacement is paid by the goods coming back: a promotion in force since must not
    discount it, nor count it as a use."""
    tenant, c, order = await returning(client)
    key = tenant.api_key
    await publish_promotions(client, key, promotion("p-all", "Everything 10 %", percent_off(10),
                                                    limits=limits(total_uses=100)))

    made = await exchange(client, key, order["id"], [(1, 1)], [(c["sku"], 1)])

    assert made.status_code == 201, made.text
    replacement = await get_order(client, key, made.json()["replacement_order_id"])
    assert (replacement["discount_minor"], replacement["total_minor"]) == (0, 2500)
    assert await redemptions(client, key, order_id=replacement["id"]) == []
    assert await counter(tenant.tenant_id, "p-all") == (0, 0)


async def test_an_order_from_before_a_budget_gives_back_nothing_it_did_not_take(client) -> None:
    """An order discounted while the promotion had no limit, cancelled after a budget was added,
    must not free budget the order never spent."""
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={})
    await publish_promotions(client, key, promotion("p-open", "Open 10 %", percent_off(10)))
    before = await capture(client, key, order_body((c["sku"], 1, 2500)))
    assert before["discount_minor"] == 250
    await publish_promotions(client, key, promotion("p-open", "Open 10 %", percent_off(10),
                                                    limits=limits(budget_minor=500)))
    after = await capture(client, key, order_body((c["sku"], 1, 2500)))
    assert after["discount_minor"] == 250 and await counter(tenant.tenant_id, "p-open") == (1, 250)

    assert (await cancel(client, key, before["id"])).status_code == 200

    assert await counter(tenant.tenant_id, "p-open") == (1, 250)
