"""Money that cannot overflow and is shared right: amounts of any currency fit 64-bit columns,
an order-level discount is refused when it is more than the lines and is otherwise shared among
them by largest remainder, and captures and refunds are made of line nets, so that what the
customer pays in the end is exactly what they owe for what they kept."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_orders import (
    act_ok,
    by_priority,
    cancel,
    capture,
    get_order,
    network,
    order_body,
    publish_rules,
    routed_order,
)

from core.money import apportion, to_minor
from factories import bearer, create_tenant
from inventory_factories import API, stock_up


@pytest.mark.parametrize(("typed", "currency", "minor"), [
    ("49.90", "EUR", 4990), ("49,9", "EUR", 4990), ("1500", "JPY", 1500), ("-3.5", "EUR", -350),
    ("1.250", "KWD", 1250), ("1,000", "JPY", None), ("1,000", "EUR", None), ("1.5", "JPY", None),
    ("49.999", "EUR", None), ("1.2.3", "EUR", None), ("1e3", "EUR", None), ("", "EUR", None),
    ("99999999999999999", "EUR", None),
])
def test_typed_amounts_are_read_in_the_currency_s_decimals_or_refused(typed: str, currency: str,
                                                                      minor: int | None) -> None:
    """More decimals than the currency has is asked again, never guessed: "1,000" is a thousand
    to one person and one to another."""
    assert to_minor(typed, currency) == minor


@given(amount=st.integers(min_value=0, max_value=10**15),
       weights=st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=30))
def test_apportioned_shares_add_up_and_follow_the_weights(amount: int, weights: list[int]) -> None:
    shares = apportion(amount, weights)
    if sum(weights) == 0:
        assert shares == [0] * len(weights)
        return
    assert sum(shares) == amount
    total = sum(weights)
    for share, weight in zip(shares, weights, strict=True):
        exact = amount * weight / total
        assert exact - 1 < share < exact + 1 and (weight > 0 or share == 0)


def test_apportion_gives_left_over_units_to_the_largest_remainders() -> None:
    assert apportion(100, [100, 100]) == [50, 50]
    assert apportion(10, [1, 1, 1]) == [4, 3, 3]
    assert apportion(2, [1, 2, 3]) == [0, 1, 1]


async def test_a_large_order_in_a_currency_with_small_units_is_stored(client) -> None:
    tenant = await create_tenant(currency="KRW", country="KR")
    key = tenant.api_key
    c = await network(client, key)
    await publish_rules(client, key, by_priority())
    # 30 million won a unit, 800 units: 24 billion minor units, past what 32 bits hold.
    body = order_body((c["sku"], 8, 30_000_000_000 // 10), currency="KRW")
    created = await capture(client, key, body)
    assert created["total_minor"] == 24_000_000_000
    assert (await get_order(client, key, created["id"]))["lines"][0]["unit_price_minor"] == 3_000_000_000


async def test_an_order_discount_beyond_its_lines_is_refused(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key)
    body = order_body((c["sku"], 1, 1000), shipping=500, discount_minor=1200)
    body["total_minor"] = 300
    refused = await client.post(f"{API}/orders", json=body, headers=bearer(key))
    assert refused.status_code == 422, refused.text
    assert any(e["field"] == "discount_minor" and "more than the lines" in e["message"]
               for e in refused.json()["errors"])


async def test_the_order_discount_is_shared_so_a_cancelled_line_takes_its_part(client) -> None:
    """The case that was wrong: lines A=100 and B=100, an order discount of 100, total 100."""
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"wh": 5}, "sku2": {"wh2": 5}})
    await publish_rules(client, key, by_priority(fallback=("split", "hold")))

    def ab() -> dict[str, Any]:
        body = order_body((c["sku"], 1, 100), (c["sku2"], 1, 100), discount_minor=100)
        body["total_minor"] = body["payment"]["authorized_minor"] = 100
        return body

    # B cancelled before anything ships: A costs its half.
    order = await routed_order(client, tenant, ab())
    assert [line["order_discount_minor"] for line in order["lines"]] == [50, 50]
    assert (await cancel(client, key, order["id"], lines=[{"line_no": 2, "quantity": 1}])).status_code == 200
    [a_part] = [f for f in (await get_order(client, key, order["id"]))["fulfilments"] if f["status"] != "cancelled"]
    await act_ok(client, key, a_part["id"], "accept", "pick", "pack", "ship")
    after = await get_order(client, key, order["id"])
    assert (after["captured_minor"], after["refunded_minor"]) == (50, 0)

    # A ships first (the whole 100 is captured), then B is cancelled: 50 comes back, not 100.
    order = await routed_order(client, tenant, ab())
    a_part = next(f for f in order["fulfilments"] if f["lines"][0]["sku"] == c["sku"])
    await act_ok(client, key, a_part["id"], "accept", "pick", "pack", "ship")
    assert (await cancel(client, key, order["id"], lines=[{"line_no": 2, "quantity": 1}])).status_code == 200
    after = await get_order(client, key, order["id"])
    assert (after["captured_minor"], after["refunded_minor"]) == (100, 50)


line = st.tuples(st.integers(min_value=1, max_value=5), st.integers(min_value=1, max_value=10_000),
                 st.integers(min_value=0, max_value=100))


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(first=line, second=line, discount_percent=st.integers(min_value=0, max_value=100),
       shipping=st.integers(min_value=0, max_value=1000), cancel_before=st.integers(min_value=0, max_value=5),
       cancel_after=st.integers(min_value=0, max_value=5))
async def test_what_is_captured_less_refunded_is_what_the_units_that_left_cost(
        client: Any, first: tuple[int, int, int], second: tuple[int, int, int], discount_percent: int,
        shipping: int, cancel_before: int, cancel_after: int) -> None:
    """For any order of two lines shipped from two places: cancel some of the second line before
    the first part ships, ship it (the capture), cancel more of the second line, ship what is
    left. At every step the money held is between 0 and what the customer owes for everything not
    cancelled, and at the end it is exactly what the shipped units and the shipping cost."""
    tenant = await create_tenant()
    c = await network(client, tenant.api_key, stock={})
    await publish_rules(client, tenant.api_key, by_priority(fallback=("split", "hold")))
    await _scenario(client, tenant, c, first, second, discount_percent, shipping, cancel_before, cancel_after)


async def _scenario(client: Any, tenant: Any, c: dict[str, str], first: tuple[int, int, int],
                    second: tuple[int, int, int], discount_percent: int, shipping: int, cancel_before: int,
                    cancel_after: int) -> None:
    key = tenant.api_key
    lines = [(sku, quantity, price) for sku, (quantity, price, _) in zip((c["sku"], c["sku2"]), (first, second),
                                                                        strict=True)]
    body = order_body(*lines, shipping=shipping)
    for i, (_, _, percent) in enumerate((first, second)):
        body["lines"][i]["discount_minor"] = lines[i][1] * lines[i][2] * percent // 100
    subtotal = sum(q * p - body["lines"][i]["discount_minor"] for i, (_, q, p) in enumerate(lines))
    body["discount_minor"] = subtotal * discount_percent // 100
    body["total_minor"] = body["payment"]["authorized_minor"] = subtotal - body["discount_minor"] + shipping
    await stock_up(client, key, {(c["sku"], c["wh"]): first[0], (c["sku2"], c["wh2"]): second[0]})
    order = await routed_order(client, tenant, body)
    assert order["status"] == "routed", order["routing"]

    async def check(final: bool = False) -> None:
        now = await get_order(client, key, order["id"])
        nets = [line["quantity"] * line["unit_price_minor"] - line["discount_minor"] - line["order_discount_minor"]
                for line in now["lines"]]
        assert sum(nets) + shipping == now["total_minor"]
        held = now["captured_minor"] - now["refunded_minor"]
        # What the customer owes for every unit not cancelled (shipped, or still to ship).
        owed = now["total_minor"] - sum(net * line["cancelled"] // line["quantity"]
                                        for net, line in zip(nets, now["lines"], strict=True))
        assert 0 <= held <= owed, (held, owed, now["lines"])
        if final:  # every unit shipped or cancelled: exactly what was kept, or nothing at all
            shipped = sum(line["shipped"] for line in now["lines"])
            assert held == (owed if shipped else 0), (held, owed, now["lines"])

    parts = {f["lines"][0]["sku"]: f for f in order["fulfilments"]}
    first_part, second_part = parts[c["sku"]], parts[c["sku2"]]
    before = min(cancel_before, second[0])
    if before:
        assert (await cancel(client, key, order["id"], lines=[{"line_no": 2, "quantity": before}])).status_code == 200
    await check()
    await act_ok(client, key, first_part["id"], "accept", "pick", "pack", "ship")
    await check()
    after = min(cancel_after, second[0] - before)
    if after:
        assert (await cancel(client, key, order["id"], lines=[{"line_no": 2, "quantity": after}])).status_code == 200
    await check()
    if before + after < second[0]:
        await act_ok(client, key, second_part["id"], "accept", "pick", "pack", "ship")
    await check(final=True)
