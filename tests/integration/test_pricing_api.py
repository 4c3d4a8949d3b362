"""POST /api/v1/pricing: a cart priced with the promotions in force, every promotion in the trace
with the reason it applied or not, every code with its status; nothing consumed; bad input
refused by field; one company's promotions and codes never price another's cart."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from test_orders import API, key_with_role, network, problems_of
from test_promotions_capture import (
    add_coupon,
    amount_off,
    coupon_uses,
    limits,
    percent_off,
    promotion,
    publish_promotions,
)

from factories import bearer, create_tenant

PRICING = f"{API}/pricing"


def cart(*lines: tuple[str, int, int], **body: Any) -> dict[str, Any]:
    return {"lines": [{"sku": s, "quantity": q, "unit_price_minor": p} for s, q, p in lines], **body}


async def test_the_trace_says_why_each_promotion_applied_or_not(client) -> None:
    from core import clock

    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={})
    shoes = {"field": "line.category", "op": "eq", "value": "shoes"}
    await publish_promotions(
        client, key,
        promotion("p-shoes", "Shoes 20 %", percent_off(20, "lines", shoes), combines_with=["order", "shipping"]),
        promotion("p-summer", "Summer 15 %", percent_off(15), priority=10, combines_with=["line", "shipping"],
                  when={"field": "order.total", "op": "gte", "value": 5000}),
        promotion("p-welcome", "Welcome 10 EUR", amount_off(1000), priority=50, combines_with=["line"]),
        promotion("p-ship", "Free shipping with a code", {"kind": "free_shipping"}, coupon=True,
                  combines_with=["line", "order"]),
        promotion("p-market", "Marketplace only", percent_off(5), channels=["marketplace"]),
        promotion("p-big", "Big spenders", percent_off(30), when={"field": "order.total", "op": "gte",
                                                                  "value": 100_000}),
        promotion("p-off", "Switched off", percent_off(50), enabled=False),
    )
    ship_code = await add_coupon(tenant.tenant_id, "p-ship", max_uses=1)
    expired = await add_coupon(tenant.tenant_id, "p-ship", expires_at=clock.now() - timedelta(hours=1))

    response = await client.post(PRICING, headers=bearer(key), json=cart(
        (c["sku"], 2, 2500), (c["sku2"], 1, 4000), shipping_fee_minor=590,
        coupon_codes=[ship_code.lower(), expired, "NOPE"], customer={"email": "nobody@example.test"}))

    assert response.status_code == 200, response.text
    priced = response.json()
    # Shoes: 20 % of 50.00 = 10.00 on line 1; Summer: 15 % of 80.00 = 12.00 shared 6.00 / 6.00.
    assert [(line["line_discount_minor"], line["discount_minor"], line["net_minor"]) for line in priced["lines"]] == [
        (1000, 1600, 3400), (0, 600, 3400)]
    assert (priced["subtotal_minor"], priced["order_discount_minor"], priced["shipping_discount_minor"],
            priced["total_discount_minor"], priced["total_minor"], priced["version"]) == (
        9000, 1200, 590, 2790, 9000 - 2200, 1)
    assert [(a["promotion_id"], a["class"], a["amount_minor"]) for a in priced["applied"]] == [
        ("p-shoes", "line", 1000), ("p-summer", "order", 1200), ("p-ship", "shipping", 590)]
    assert priced["applied"][2]["coupon_code"] == ship_code
    reasons = {v["promotion_id"]: (v["reason"], v["message"]) for v in priced["trace"]}
    assert {k: r for k, (r, _) in reasons.items()} == {
        "p-shoes": "applied", "p-summer": "applied", "p-welcome": "outranked", "p-ship": "applied",
        "p-market": "channel", "p-big": "condition_false", "p-off": "disabled"}
    assert "Summer 15 %" in reasons["p-welcome"][1] and "marketplace" in reasons["p-market"][1]
    big = next(v for v in priced["trace"] if v["promotion_id"] == "p-big")
    assert big["details"], big
    assert [(k["code"], k["status"]) for k in priced["coupons"]] == [
        (ship_code, "valid"), (expired, "expired"), ("NOPE", "unknown")]
    assert priced["coupons"][2]["message"] == "Code NOPE does not exist"

    # Pricing uses nothing up: the single-use code is still unused, and prices the same again.
    assert await coupon_uses(tenant.tenant_id, ship_code) == 0
    again = await client.post(PRICING, headers=bearer(key), json=cart(
        (c["sku"], 2, 2500), (c["sku2"], 1, 4000), shipping_fee_minor=590, coupon_codes=[ship_code]))
    assert again.json()["shipping_discount_minor"] == 590


async def test_a_code_alone_says_what_is_wrong_with_it(client) -> None:
    from core import clock

    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={})
    await publish_promotions(client, key, promotion("p-code", "Code 10 %", percent_off(10), coupon=True,
                                                    limits=limits(total_uses=100)))
    used = await add_coupon(tenant.tenant_id, "p-code", max_uses=1, uses=1)
    later = await add_coupon(tenant.tenant_id, "p-code", starts_at=clock.now() + timedelta(days=3))

    for code, reason, status in ((used, "code_problem", "exhausted"), (later, "code_problem", "not_started"),
                                 (None, "needs_code", None)):
        body = cart((c["sku"], 1, 2500), coupon_codes=[code] if code else [])
        priced = (await client.post(PRICING, headers=bearer(key), json=body)).json()
        assert [v["reason"] for v in priced["trace"]] == [reason], priced
        assert [k["status"] for k in priced["coupons"]] == ([status] if status else [])
        assert priced["total_discount_minor"] == 0


async def test_bad_input_is_refused_by_field(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={})

    unknown = problems_of(await client.post(PRICING, headers=bearer(key), json=cart(
        (c["sku"], 1, 2500), ("NO-SUCH-SKU", 1, 100), ("ALSO-MISSING", 2, 100), channel="telepathy")))
    assert set(unknown) == {"lines[1].sku", "lines[2].sku", "channel"}, unknown
    assert "NO-SUCH-SKU" in unknown["lines[1].sku"]

    for body in (cart((c["sku"] + "\u0000", 1, 2500)),
                 cart((c["sku"], 1, 10**20)),
                 cart((c["sku"], 10**12, 100)),
                 cart((c["sku"], 1, 2500), coupon_codes=[f"CODE{n}" for n in range(11)]),
                 cart((c["sku"], 1, 2500), coupon_codes=["X" * 41]),
                 cart((c["sku"], 1, -5)),
                 cart(),
                 cart((c["sku"], 1, 2500), placed_at="0001-01-01T00:00:00"),
                 {**cart((c["sku"], 1, 2500)), "surprise": True}):
        response = await client.post(PRICING, headers=bearer(key), json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    blank = problems_of(await client.post(PRICING, headers=bearer(key), json=cart((c["sku"], 1, 2500),
                                                                                  coupon_codes=["  "])))
    assert set(blank) == {"coupon_codes[0]"}


async def test_a_channel_key_prices_its_own_channel_and_another_company_sees_nothing(client) -> None:
    first, second = await create_tenant(), await create_tenant()
    c = await network(client, first.api_key, stock={})
    d = await network(client, second.api_key, stock={})
    await publish_promotions(client, first.api_key, promotion("p-a", "A's code", percent_off(10), coupon=True),
                             promotion("p-all", "A for all", percent_off(5)))
    code = await add_coupon(first.tenant_id, "p-a")

    mine = (await client.post(PRICING, headers=bearer(first.api_key), json=cart(
        (c["sku"], 1, 2500), coupon_codes=[code]))).json()
    assert [a["promotion_id"] for a in mine["applied"]] == ["p-a"]

    # B with A's code and A's SKU: an unknown code, an unknown SKU, and no promotion of A's.
    theirs = await client.post(PRICING, headers=bearer(second.api_key), json=cart(
        (d["sku"], 1, 2500), coupon_codes=[code]))
    assert theirs.status_code == 200, theirs.text
    assert (theirs.json()["version"], theirs.json()["applied"], theirs.json()["trace"]) == (None, [], [])
    assert [(k["code"], k["status"]) for k in theirs.json()["coupons"]] == [(code, "unknown")]
    assert "lines[0].sku" in problems_of(await client.post(PRICING, headers=bearer(second.api_key), json=cart(
        (c["sku"], 1, 2500))))
    redemptions = await client.get(f"{API}/redemptions", headers=bearer(second.api_key))
    assert redemptions.status_code == 200 and redemptions.json() == []
    assert (await client.get(f"{API}/rule-sets/promotions/versions", headers=bearer(second.api_key))).json() == []

    intake = await key_with_role(first, "order_intake")
    from core.db import get_database
    from tenants.models import ApiKey

    async with get_database().transaction(tenant_id=first.tenant_id) as session:
        from sqlalchemy import update

        await session.execute(update(ApiKey).where(ApiKey.tenant_id == first.tenant_id, ApiKey.role == "order_intake")
                              .values(channel="store"))
    web = await client.post(PRICING, headers=bearer(intake), json=cart((c["sku"], 1, 2500)))
    assert "channel" in problems_of(web)
    store = await client.post(PRICING, headers=bearer(intake), json=cart((c["sku"], 1, 2500), channel="store"))
    assert store.status_code == 200 and store.json()["total_discount_minor"] == 125


async def test_the_promotions_rule_set_api_checks_documents_against_the_company(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={})
    promotions = f"{API}/rule-sets/promotions"
    absent = {"kind": "buy_x_get_y", "buy": {"lines": {"field": "line.sku", "op": "eq", "value": "GHOST"},
                                             "quantity": 2},
              "get": {"lines": {"field": "line.sku", "op": "eq", "value": c["sku"]}, "quantity": 1, "percent": 100},
              "max_per_order": 1}
    document = {"promotions": [promotion("p-ghost", "Ghost deal", absent),
                               promotion("p-seg", "Members", percent_off(5), segment="no-such-segment",
                                         limits=limits(budget_minor=-1)),
                               promotion("p-" + "x" * 45, "Long id", percent_off(5))],
                "within_class": "priority"}

    checked = (await client.post(f"{promotions}/validate", headers=bearer(key), json={"document": document})).json()
    assert not checked["valid"]
    messages = " | ".join(p["message"] for p in checked["problems"])
    assert "GHOST" in messages and "no-such-segment" in messages and "below zero" in messages, messages
    assert "Promotion 3: its id is longer than 40 characters" in messages
    refused = await client.put(f"{promotions}/draft", headers=bearer(key), json={"document": document})
    assert refused.status_code == 422 and "Ghost deal" in refused.text

    fine = {"promotions": [promotion("p-ok", "Fine", percent_off(5))], "within_class": "best"}
    saved = await client.put(f"{promotions}/draft", headers=bearer(key), json={"document": fine})
    assert saved.status_code == 200, saved.text
    published = await client.post(f"{promotions}/versions", headers={**bearer(key), "Idempotency-Key": "pub-1"},
                                  json={"note": "first"})
    assert published.status_code == 201, published.text
    assert (published.json()["number"], published.json()["promotions"]) == (1, 1)
    replayed = await client.post(f"{promotions}/versions", headers={**bearer(key), "Idempotency-Key": "pub-1"},
                                 json={"note": "first"})
    assert replayed.json()["number"] == 1
    overview = (await client.get(promotions, headers=bearer(key))).json()
    assert (overview["kind"], overview["in_force"]) == ("promotions", 1)
    version = (await client.get(f"{promotions}/versions/1", headers=bearer(key))).json()
    assert version["document"] == fine
    assert (await client.get(f"{promotions}/versions/9", headers=bearer(key))).status_code == 404
    # Routing is a rule set of its own: publishing promotions made no routing version.
    assert (await client.get(f"{API}/rule-sets/routing/versions", headers=bearer(key))).json() == []
    read_only = await key_with_role(tenant, "read_only")
    assert (await client.get(f"{promotions}/draft", headers=bearer(read_only))).status_code == 200
    assert (await client.put(f"{promotions}/draft", headers=bearer(read_only),
                             json={"document": fine})).status_code == 403
