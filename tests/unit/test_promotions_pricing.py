"""The promotions evaluator: each effect with exact integer results, stacking, limits and budgets,
coupon codes, verdicts in words, document validation, and a seeded random check that nothing
ever discounts more than there is. Pure: no database."""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from rules.cache import CompiledCache
from rules.conditions import Context, explain
from rules.facts import LineFacts, Moment, OrderFacts
from rules.promotions import (
    CACHE,
    CLASSES,
    EFFECT_KINDS,
    REASONS,
    Allowance,
    Cart,
    CouponState,
    Pricing,
    compile_document,
    coupon_ids,
    coupon_message,
    empty_document,
    limited_ids,
    new_promotion,
    price,
    promotion_class,
    validate_document,
)

MOMENT = Moment(datetime(2026, 10, 1, 10, 0, tzinfo=UTC), "Europe/Paris")  # a Thursday
EVERYTHING = ["line", "order", "shipping"]


def leaf(field: str, op: str, value: Any) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


def category(name: str) -> dict[str, Any]:
    return leaf("line.category", "eq", name)


def promo(number: int, name: str, effect: dict[str, Any], **changes: Any) -> dict[str, Any]:
    made = new_promotion(f"p-{number}", name)
    made["effect"] = effect
    made["combines_with"] = list(EVERYTHING)
    made.update(changes)
    return made


def percent(value: int, target: str = "order", lines: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"kind": "percent_off", "target": target, "percent": value, "lines": lines}


def fixed(amount: int, target: str = "order", lines: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"kind": "fixed_off", "target": target, "amount_minor": amount, "lines": lines}


FREE_SHIPPING = {"kind": "free_shipping"}


def cart(*lines: tuple[str, int, str, int], own: tuple[int, ...] = (), fee: int = 0, codes: tuple[str, ...] = (),
         segments: frozenset[str] = frozenset(), channel: str = "web", **facts: Any) -> Cart:
    made = tuple(LineFacts(sku, quantity, cat, unit) for sku, quantity, cat, unit in lines)
    order = OrderFacts(made, channel=channel, total_minor=sum(line.quantity * line.unit_price_minor for line in made),
                       **facts)
    return Cart(order, own, fee, codes, "customer-1", segments)


def run(promotions: list[dict[str, Any]], basket: Cart, within: str = "priority", **kw: Any) -> Pricing:
    document = {"promotions": promotions, "within_class": within}
    assert validate_document(document) == []
    return price(compile_document(document), basket, MOMENT, **kw)


def verdicts(pricing: Pricing) -> dict[str, tuple[str, str]]:
    return {v.name: (v.reason, v.message) for v in pricing.trace}


def reasons(pricing: Pricing) -> dict[str, str]:
    return {v.name: v.reason for v in pricing.trace}


SHOES_AND_HAT = cart(("S1", 1, "shoes", 999), ("S2", 1, "shoes", 1001), ("H1", 1, "hats", 500))


# --- each effect, exact integers -----------------------------------------------------------------

def test_percent_off_lines_is_floored_per_line() -> None:
    pricing = run([promo(1, "Shoes 15 %", percent(15, "lines", category("shoes")))], SHOES_AND_HAT)
    # 149.85 -> 149, 150.15 -> 150: each line rounded down on its own.
    assert pricing.line_class_discounts == (149, 150, 0)
    assert pricing.line_discounts == (149, 150, 0)
    assert (pricing.order_discount_minor, pricing.shipping_discount_minor, pricing.total_discount_minor) == (0, 0, 299)
    [applied] = pricing.applied
    assert (applied.klass, applied.amount_minor, applied.line_amounts) == ("line", 299, (149, 150, 0))
    assert pricing.trace[0].message == "Applied: 2.99 EUR off"
    tiny = run([promo(1, "One percent", percent(1, "lines"))], cart(("A", 1, "x", 99)))
    assert verdicts(tiny)["One percent"] == ("nothing_to_discount",
                                             "Nothing to discount: it comes to nothing on what is left of this cart")


def test_percent_off_order_is_floored_once_and_apportioned_exactly() -> None:
    basket = cart(("A", 1, "x", 1000), ("B", 2, "x", 1000), ("C", 1, "x", 3333))
    pricing = run([promo(1, "Ten", percent(10))], basket)
    # 10 % of 6333 = 633.3 -> 633, shared by net: 99.95, 199.9, 333.14 -> 99, 199, 333 + 2 left to the
    # largest remainders (the first two).
    assert pricing.order_discount_minor == 633
    assert pricing.line_discounts == (100, 200, 333)
    assert pricing.line_class_discounts == (0, 0, 0)
    assert pricing.applied[0].line_amounts == (100, 200, 333)
    assert pricing.total_discount_minor == 633


def test_order_target_with_lines_discounts_only_their_subtotal() -> None:
    pricing = run([promo(1, "Shoes 10 % of the order", percent(10, "order", category("shoes")))], SHOES_AND_HAT)
    assert pricing.order_discount_minor == 200  # 10 % of 2000, the hat not counted
    assert pricing.line_discounts == (100, 100, 0)


def test_fixed_off_lines_is_per_matching_line_capped_at_its_net() -> None:
    basket = cart(("A", 1, "shoes", 300), ("B", 2, "shoes", 1000), ("C", 1, "hats", 5000))
    pricing = run([promo(1, "5 off shoes", fixed(500, "lines", category("shoes")))], basket)
    assert pricing.line_class_discounts == (300, 500, 0)  # per line total, not per unit
    assert pricing.total_discount_minor == 800


def test_fixed_off_order_is_capped_at_the_subtotal() -> None:
    basket = cart(("A", 1, "shoes", 250), ("B", 1, "hats", 350))
    pricing = run([promo(1, "10 off", fixed(1_000))], basket)
    assert pricing.order_discount_minor == 600
    assert pricing.line_discounts == (250, 350)


def test_free_shipping_takes_the_fee_off_and_needs_one() -> None:
    pricing = run([promo(1, "Free shipping", FREE_SHIPPING)], cart(("A", 1, "x", 1000), fee=490))
    assert (pricing.shipping_discount_minor, pricing.total_discount_minor) == (490, 490)
    assert pricing.line_discounts == (0,)
    assert (pricing.applied[0].klass, pricing.applied[0].shipping_minor, pricing.applied[0].line_amounts) == \
        ("shipping", 490, (0,))
    none = run([promo(1, "Free shipping", FREE_SHIPPING)], cart(("A", 1, "x", 1000)))
    assert verdicts(none)["Free shipping"] == ("nothing_to_discount",
                                               "Nothing to discount: no shipping fee to take off")


def test_the_channels_own_discount_comes_off_first() -> None:
    basket = cart(("A", 2, "x", 1000), ("B", 1, "x", 500), own=(200, 900))
    pricing = run([promo(1, "Half", percent(50, "lines"))], basket)
    assert pricing.line_class_discounts == (900, 0)  # nets 1800 and 0 (never below zero)


def test_buy_x_get_y_cheapest_units_free_at_most_max_per_order() -> None:
    three_for_two = {"kind": "buy_x_get_y", "buy": {"lines": category("socks"), "quantity": 2},
                     "get": {"lines": category("socks"), "quantity": 1, "percent": 100}, "max_per_order": 2}
    basket = cart(("A", 3, "socks", 500), ("B", 2, "socks", 300), ("C", 1, "socks", 100), ("D", 1, "hats", 50))
    pricing = run([promo(1, "3 for 2", three_for_two)], basket)
    # Set 1: buys A, A, gets C (100). Set 2: buys A, B, gets B (300). A third set is over the maximum.
    assert pricing.line_class_discounts == (0, 300, 100, 0)
    once = copy.deepcopy(three_for_two)
    once["max_per_order"] = 1
    assert run([promo(1, "3 for 2", once)], basket).line_class_discounts == (0, 0, 100, 0)


def test_buy_x_get_y_units_bought_are_not_got() -> None:
    second_half = {"kind": "buy_x_get_y", "buy": {"lines": category("jackets"), "quantity": 1},
                   "get": {"lines": category("jackets"), "quantity": 1, "percent": 50}, "max_per_order": 5}
    one = run([promo(1, "Second half price", second_half)], cart(("J", 1, "jackets", 9000)))
    assert verdicts(one)["Second half price"] == (
        "nothing_to_discount", "Nothing to discount: not enough units to buy 1 and get 1")
    two = run([promo(1, "Second half price", second_half)], cart(("J", 1, "jackets", 9000), ("K", 1, "jackets", 7001)))
    assert two.line_class_discounts == (0, 3500)  # half of the cheaper one, rounded down
    # Units of one line, discounted on the line's unit net: 3 units of 1001 -> one set, half a unit.
    three = run([promo(1, "Second half price", second_half)], cart(("J", 3, "jackets", 1001)))
    assert three.line_class_discounts == (500,)


def test_buy_x_get_y_buys_first_what_cannot_be_got() -> None:
    shoes_then_socks = {"kind": "buy_x_get_y", "buy": {"lines": None, "quantity": 1},
                        "get": {"lines": category("shoes"), "quantity": 1, "percent": 100}, "max_per_order": 1}
    # Buy anything, get shoes free: the sock is the unit bought, so the shoe is got.
    pricing = run([promo(1, "Shoes free", shoes_then_socks)], cart(("SH", 1, "shoes", 5000), ("SO", 1, "socks", 500)))
    assert pricing.line_class_discounts == (5000, 0)


def test_tiered_takes_the_highest_tier_reached() -> None:
    tiered = {"kind": "tiered", "tiers": [{"min_minor": 5_000, "percent": 5},
                                          {"min_minor": 20_000, "amount_minor": 2_500},
                                          {"min_minor": 10_000, "percent": 10}]}
    found = {}
    for subtotal in (4_999, 5_000, 15_000, 19_999, 25_000):
        pricing = run([promo(1, "Spend more", tiered)], cart(("A", 1, "x", subtotal)))
        found[subtotal] = pricing.order_discount_minor
        if subtotal == 4_999:
            assert verdicts(pricing)["Spend more"] == (
                "nothing_to_discount",
                "Nothing to discount: the spend (49.99 EUR) is below the lowest threshold (50.00 EUR)")
    assert found == {4_999: 0, 5_000: 250, 15_000: 1_500, 19_999: 1_999, 25_000: 2_500}


# --- stacking ---------------------------------------------------------------------------------------

def test_one_per_class_by_priority_then_list_order() -> None:
    promotions = [promo(1, "Ten", percent(10), priority=20), promo(2, "Five", percent(5), priority=10),
                  promo(3, "Also five", percent(5), priority=10)]
    pricing = run(promotions, cart(("A", 1, "x", 10_000)))
    assert [a.name for a in pricing.applied] == ["Five"]
    assert verdicts(pricing) == {
        "Ten": ("outranked", "Outranked by Five (priority 10 comes before 20)"),
        "Five": ("applied", "Applied: 5.00 EUR off"),
        "Also five": ("outranked", "Outranked by Five (same priority, earlier in the list)"),
    }


def test_best_for_the_customer_within_a_class() -> None:
    promotions = [promo(1, "Ten", percent(10), priority=20), promo(2, "Fifteen off", fixed(1_500), priority=10)]
    pricing = run(promotions, cart(("A", 1, "x", 10_000)), within="best")
    assert verdicts(pricing) == {"Ten": ("outranked", "Outranked by Fifteen off, a larger discount"),
                                 "Fifteen off": ("applied", "Applied: 15.00 EUR off")}
    cheaper = run(promotions, cart(("A", 1, "x", 20_000)), within="best")
    assert [a.name for a in cheaper.applied] == ["Ten"]


def test_classes_stack_line_then_order_then_shipping_on_what_is_left() -> None:
    promotions = [promo(1, "Free shipping", FREE_SHIPPING), promo(2, "Ten", percent(10)),
                  promo(3, "Shoes 20 %", percent(20, "lines", category("shoes")))]
    pricing = run(promotions, cart(("S", 1, "shoes", 1_000), ("H", 1, "hats", 1_000), fee=500))
    assert [a.name for a in pricing.applied] == ["Shoes 20 %", "Ten", "Free shipping"]
    # The order's 10 % is of what the line promotion left: 800 + 1000.
    assert pricing.line_class_discounts == (200, 0)
    assert pricing.order_discount_minor == 180
    assert pricing.line_discounts == (280, 100)
    assert (pricing.shipping_discount_minor, pricing.total_discount_minor) == (500, 880)


def test_combines_with_is_needed_both_ways() -> None:
    line = promo(1, "Shoes 20 %", percent(20, "lines", category("shoes")), combines_with=["order"])
    order = promo(2, "Summer 15 %", percent(15), combines_with=[])
    basket = cart(("S", 1, "shoes", 1_000), ("H", 1, "hats", 1_000))
    pricing = run([line, order], basket)
    assert verdicts(pricing)["Summer 15 %"] == ("not_combinable",
                                                "Not combinable with Shoes 20 % (a line promotion)")
    order["combines_with"] = ["line"]
    line["combines_with"] = ["shipping"]
    assert reasons(run([line, order], basket))["Summer 15 %"] == "not_combinable"
    line["combines_with"] = ["order"]
    assert [a.name for a in run([line, order], basket).applied] == ["Shoes 20 %", "Summer 15 %"]


def test_a_class_falls_through_to_the_next_that_combines() -> None:
    line = promo(1, "Shoes 20 %", percent(20, "lines", category("shoes")), combines_with=["order"])
    loner = promo(2, "Loner", percent(30), priority=1, combines_with=[])
    social = promo(3, "Social", percent(10), priority=5, combines_with=["line"])
    later = promo(4, "Later", percent(5), priority=9, combines_with=["line"])
    pricing = run([line, loner, social, later], cart(("S", 1, "shoes", 1_000)))
    assert reasons(pricing) == {"Shoes 20 %": "applied", "Loner": "not_combinable", "Social": "applied",
                                "Later": "outranked"}


def test_an_exclusive_promotion_applies_alone() -> None:
    promotions = [promo(1, "Shoes 20 %", percent(20, "lines", category("shoes"))),
                  promo(2, "Black Friday", percent(30), exclusive=True, priority=50),
                  promo(3, "Free shipping", FREE_SHIPPING),
                  promo(4, "Other exclusive", fixed(100), exclusive=True, priority=60),
                  promo(5, "Hats 10 %", percent(10, "lines", category("hats")))]
    pricing = run(promotions, cart(("S", 1, "shoes", 1_000), fee=500))
    assert [a.name for a in pricing.applied] == ["Black Friday"]
    assert pricing.total_discount_minor == 300
    assert verdicts(pricing) == {
        "Shoes 20 %": ("exclusive", "Not applied: Black Friday applies alone (exclusive)"),
        "Black Friday": ("applied", "Applied: 3.00 EUR off"),
        "Free shipping": ("exclusive", "Not applied: Black Friday applies alone (exclusive)"),
        "Other exclusive": ("exclusive", "Not applied: Black Friday applies alone (exclusive)"),
        "Hats 10 %": ("exclusive", "Not applied: Black Friday applies alone (exclusive)"),  # not worked out
    }
    # The best for the customer among exclusive ones, with within_class "best".
    assert [a.name for a in run(promotions, cart(("S", 1, "shoes", 100)), within="best").applied] == \
        ["Other exclusive"]


def test_an_exclusive_promotion_with_nothing_to_discount_blocks_nothing() -> None:
    promotions = [promo(1, "Hats only", percent(50, "lines", category("hats")), exclusive=True),
                  promo(2, "Ten", percent(10))]
    pricing = run(promotions, cart(("S", 1, "shoes", 1_000)))
    assert reasons(pricing) == {"Hats only": "nothing_to_discount", "Ten": "applied"}


# --- eligibility: disabled, channel, segment, conditions ----------------------------------------------------

def test_every_promotion_has_a_verdict_in_the_documents_order() -> None:
    when = {"all": [leaf("order.total", "gte", 50_000), leaf("customer.tags", "has", "vip")]}
    promotions = [promo(1, "Off", percent(10), enabled=False),
                  promo(2, "Store only", percent(10), channels=["store", "phone"]),
                  promo(3, "Loyal", percent(10), segment="seg-1"),
                  promo(4, "Big VIP", percent(10), when=when),
                  promo(5, "Open", percent(5))]
    basket = cart(("A", 1, "x", 10_000), customer_tags=frozenset({"vip"}))
    pricing = run(promotions, basket)
    assert [v.name for v in pricing.trace] == ["Off", "Store only", "Loyal", "Big VIP", "Open"]
    assert verdicts(pricing) == {
        "Off": ("disabled", "Disabled"),
        "Store only": ("channel", "Not for the web channel (only phone, store)"),
        "Loyal": ("segment", "Customer not in segment seg-1"),
        "Big VIP": ("condition_false", "Its conditions are not met"),
        "Open": ("applied", "Applied: 5.00 EUR off"),
    }
    big = pricing.trace[3]
    assert big.details == tuple(explain(when, Context(basket.facts, MOMENT)))
    assert big.details == ("Order total is at least 500.00 EUR: no (it is 100.00 EUR)",)
    assert all(v.details == () for v in pricing.trace if v.reason != "condition_false")
    quiet = run(promotions, basket, explained=False)
    assert quiet.trace[3].details == () and quiet.trace[3].reason == "condition_false"
    member = run(promotions, cart(("A", 1, "x", 10_000), segments=frozenset({"seg-1"})))
    assert reasons(member)["Loyal"] == "applied"


def test_explanations_match_the_condition_language() -> None:
    rng = random.Random(7)
    fields = [leaf("order.total", "gte", 5_000), leaf("order.channel", "in", ["web", "store"]),
              leaf("customer.tags", "has", "vip"), leaf("line.category", "eq", "shoes"),
              leaf("now.weekday", "in", ["sat", "sun"]), leaf("customer.orders_count", "lt", 2),
              leaf("line.sku", "starts_with", "S")]

    def tree(depth: int) -> dict[str, Any]:
        if depth == 0 or rng.random() < 0.4:
            return copy.deepcopy(rng.choice(fields))
        kind = rng.choice(["all", "any", "not"])
        if kind == "not":
            return {"not": tree(depth - 1)}
        return {kind: [tree(depth - 1) for _ in range(rng.randint(1, 3))]}

    checked = 0
    for _ in range(300):
        when = tree(3)
        basket = cart(*[(rng.choice(["S1", "T2"]), 1, rng.choice(["shoes", "hats"]), rng.randint(100, 9000))
                        for _ in range(rng.randint(1, 3))], channel=rng.choice(["web", "phone"]),
                      customer_tags=frozenset(rng.sample(["vip", "b2b"], rng.randint(0, 2))),
                      customer_orders_count=rng.randint(0, 3))
        compiled = compile_document({"promotions": [promo(1, "P", percent(10), when=when)]})
        for _ in range(2):  # the second time from what the first one kept
            verdict = price(compiled, basket, MOMENT).trace[0]
            if verdict.reason == "condition_false":
                assert verdict.details == tuple(explain(when, Context(basket.facts, MOMENT)))
                checked += 1
    assert checked > 100


# --- limits, budgets and codes ------------------------------------------------------------------------------

LIMITED = {"total_uses": 500, "per_customer": 1, "budget_minor": 50_000}


def test_limits_reached_and_budget_spent() -> None:
    promotions = [promo(1, "Summer 15 %", percent(15), limits=dict(LIMITED))]
    basket = cart(("A", 1, "x", 10_000))
    cases = {
        Allowance(uses_left=0): ("limit_reached", "Usage limit reached (500 uses)"),
        Allowance(customer_uses_left=0): ("customer_limit_reached",
                                          "This customer has used it the most times allowed (1 per customer)"),
        Allowance(budget_left_minor=0): ("budget_spent", "Budget spent (500.00 EUR given)"),
        Allowance(uses_left=3, customer_uses_left=1, budget_left_minor=10_000): ("applied", "Applied: 15.00 EUR off"),
    }
    for allowance, expected in cases.items():
        pricing = run(promotions, basket, allowances={"p-1": allowance})
        assert verdicts(pricing)["Summer 15 %"] == expected
        assert pricing.total_discount_minor == (1_500 if expected[0] == "applied" else 0)


def test_the_budget_left_caps_the_amount_without_exceeding_any_line() -> None:
    promotions = [promo(1, "Half", percent(50, "lines"), limits={"budget_minor": 100_000})]
    basket = cart(("A", 1, "x", 1_000), ("B", 1, "x", 3_000), ("C", 1, "x", 1))
    pricing = run(promotions, basket, allowances={"p-1": Allowance(budget_left_minor=999)})
    assert pricing.total_discount_minor == 999
    assert pricing.line_class_discounts == (250, 749, 0)  # in proportion to 500, 1500, 0
    assert pricing.trace[0].message == "Applied: 9.99 EUR off (capped at what is left of its budget)"
    # Without an allowance, the document's limits are taken whole: the budget still caps.
    small = run([promo(1, "Half", percent(50, "lines"), limits={"budget_minor": 700})], basket)
    assert small.total_discount_minor == 700
    shipping = run([promo(1, "Free shipping", FREE_SHIPPING, limits={"budget_minor": 300})],
                   cart(("A", 1, "x", 1_000), fee=490))
    assert (shipping.shipping_discount_minor, shipping.applied[0].shipping_minor) == (300, 300)


def test_coupon_promotions_need_a_usable_code_of_their_own() -> None:
    promotions = [promo(1, "SAVE15", percent(15), coupon=True), promo(2, "Other code", fixed(100), coupon=True)]
    basket = cart(("A", 1, "x", 10_000))
    assert verdicts(run(promotions, basket))["SAVE15"] == ("needs_code", "Needs a coupon code")
    coupons = {"SAVE15": CouponState("SAVE15", "p-1", "expired", "c-1"),
               "SAVE15B": CouponState("SAVE15B", "p-1", None, "c-2"),
               "OTHER": CouponState("OTHER", "p-2", "exhausted", "c-3")}
    expired = run(promotions, cart(("A", 1, "x", 10_000), codes=("SAVE15", "NOPE", "OTHER")), coupons=coupons)
    assert verdicts(expired) == {"SAVE15": ("code_problem", "Code SAVE15 has expired"),
                                 "Other code": ("code_problem", "Code OTHER has been used the most times allowed")}
    assert [(s.code, s.problem) for s in expired.coupons] == [("SAVE15", "expired"), ("NOPE", "unknown"),
                                                              ("OTHER", "exhausted")]
    # A usable code of its own, even after one with a problem; a code never unlocks another's promotion.
    good = run(promotions, cart(("A", 1, "x", 10_000), codes=("SAVE15", "SAVE15B", "SAVE15B")), coupons=coupons)
    [applied] = good.applied
    assert (applied.name, applied.coupon_code, applied.coupon_id, applied.amount_minor) == \
        ("SAVE15", "SAVE15B", "c-2", 1_500)
    assert verdicts(good)["SAVE15"] == ("applied", "Applied with code SAVE15B: 15.00 EUR off")
    assert reasons(good)["Other code"] == "needs_code"
    assert [s.code for s in good.coupons] == ["SAVE15", "SAVE15B"]


def test_coupon_messages() -> None:
    words = {problem: coupon_message(CouponState("X1", "p-1", problem))
             for problem in ("unknown", "expired", "not_started", "exhausted", "disabled", "customer_limit")}
    assert words == {"unknown": "Code X1 does not exist", "expired": "Code X1 has expired",
                     "not_started": "Code X1 is not valid yet",
                     "exhausted": "Code X1 has been used the most times allowed", "disabled": "Code X1 is disabled",
                     "customer_limit": "Code X1 was already used by this customer"}
    assert coupon_message(CouponState("X1", "p-1")) == ""


def test_limited_and_coupon_ids() -> None:
    promotions = [promo(1, "A", percent(5), limits={"total_uses": 3}), promo(2, "B", percent(5), coupon=True),
                  promo(3, "C", percent(5), enabled=False, limits={"budget_minor": 100}), promo(4, "D", percent(5))]
    compiled = compile_document({"promotions": promotions})
    assert limited_ids(compiled) == {"p-1"}  # enabled ones only: the service locks their counters
    assert coupon_ids(compiled) == {"p-2"}


# --- nothing ever exceeds what it discounts ---------------------------------------------------------------

def _random_promotion(rng: random.Random, number: int) -> dict[str, Any]:
    lines = rng.choice([None, category("shoes"), category("hats"), leaf("line.quantity", "gte", 2)])
    kind = rng.choice(list(EFFECT_KINDS))
    if kind == "percent_off":
        effect = percent(rng.choice([1, 15, 33, 99, 100]), rng.choice(["order", "lines"]), lines)
    elif kind == "fixed_off":
        effect = fixed(rng.choice([1, 499, 5_000, 100_000]), rng.choice(["order", "lines"]), lines)
    elif kind == "free_shipping":
        effect = FREE_SHIPPING
    elif kind == "buy_x_get_y":
        effect = {"kind": kind, "buy": {"lines": lines, "quantity": rng.randint(1, 3)},
                  "get": {"lines": rng.choice([None, category("hats")]), "quantity": rng.randint(1, 2),
                          "percent": rng.choice([50, 100])}, "max_per_order": rng.randint(1, 4)}
    else:
        effect = {"kind": kind, "tiers": [{"min_minor": m, rng.choice(["percent", "amount_minor"]): rng.randint(1, 100)}
                                          for m in rng.sample([0, 1_000, 5_000, 20_000], rng.randint(1, 3))]}
    return promo(number, f"P{number}", effect, priority=rng.randint(1, 5), exclusive=rng.random() < 0.1,
                 combines_with=rng.sample(list(CLASSES), rng.randint(0, 3)),
                 limits={"budget_minor": rng.choice([None, None, 50, 5_000])})


def test_nothing_ever_exceeds_what_it_discounts() -> None:
    rng = random.Random(20261001)
    for _ in range(400):
        promotions = [_random_promotion(rng, n) for n in range(rng.randint(1, 8))]
        document = {"promotions": promotions, "within_class": rng.choice(["priority", "best"])}
        assert validate_document(document) == []
        compiled = compile_document(document)
        for _ in range(5):
            raw = [(f"S{i}", rng.randint(1, 5), rng.choice(["shoes", "hats", "socks"]), rng.randint(0, 20_000))
                   for i in range(rng.randint(1, 6))]
            own = tuple(rng.choice([0, 0, 50, 10**6]) for _ in raw)
            basket = cart(*raw, own=own, fee=rng.choice([0, 490]))
            allowances = {p["id"]: Allowance(budget_left_minor=rng.randint(0, 3_000)) for p in promotions
                          if p["limits"]["budget_minor"] and rng.random() < 0.5}  # the service's, for limited ones
            pricing = price(compiled, basket, MOMENT, allowances=allowances)
            nets = [max(0, q * u - d) for (_, q, _, u), d in zip(raw, own, strict=True)]
            assert len(pricing.trace) == len(promotions)
            assert all(v.reason in REASONS and v.applied == (v.reason == "applied") for v in pricing.trace)
            assert {a.promotion_id for a in pricing.applied} == {v.promotion_id for v in pricing.trace if v.applied}
            assert len({a.klass for a in pricing.applied}) == len(pricing.applied)  # one per class
            assert all(0 <= d <= n for d, n in zip(pricing.line_discounts, nets, strict=True))
            assert all(0 <= c <= d for c, d in zip(pricing.line_class_discounts, pricing.line_discounts, strict=True))
            assert 0 <= pricing.shipping_discount_minor <= basket.shipping_fee_minor
            assert sum(pricing.line_discounts) == sum(pricing.line_class_discounts) + pricing.order_discount_minor
            assert pricing.total_discount_minor == sum(pricing.line_discounts) + pricing.shipping_discount_minor
            for applied in pricing.applied:
                assert all(isinstance(a, int) and a >= 0 for a in applied.line_amounts)
                assert applied.amount_minor == sum(applied.line_amounts) + applied.shipping_minor > 0
                budget = allowances.get(applied.promotion_id)
                if budget is not None:
                    assert applied.amount_minor <= (budget.budget_left_minor or 0)
                else:  # no allowance: the document's budget, whole
                    whole = next(p["limits"]["budget_minor"] for p in promotions if p["id"] == applied.promotion_id)
                    assert whole is None or applied.amount_minor <= whole
            if any(a.promotion_id in {p["id"] for p in promotions if p["exclusive"]} for a in pricing.applied):
                assert len(pricing.applied) == 1


def test_an_empty_cart_has_nothing_to_discount() -> None:
    promotions = [promo(1, "Shoes", percent(10, "lines", category("shoes"))), promo(2, "Ten", percent(10)),
                  promo(3, "3 for 2", {"kind": "buy_x_get_y", "buy": {"lines": category("socks"), "quantity": 2},
                                       "get": {"lines": None, "quantity": 1, "percent": 100}, "max_per_order": 1}),
                  promo(4, "Tiers", {"kind": "tiered", "tiers": [{"min_minor": 0, "percent": 5}]})]
    pricing = run(promotions, cart())
    assert set(reasons(pricing).values()) == {"nothing_to_discount"}
    assert (pricing.line_discounts, pricing.total_discount_minor) == ((), 0)


# --- the document, its validation and its cache --------------------------------------------------------------

def test_documents_as_the_builder_starts_them_are_valid() -> None:
    assert validate_document(empty_document()) == []
    made = new_promotion("p-1")
    assert validate_document({"promotions": [made], "within_class": "priority"}) == []
    assert promotion_class(made) == "order"
    assert [promotion_class({"effect": e}) for e in (percent(5, "lines"), fixed(5), FREE_SHIPPING,
                                                    {"kind": "buy_x_get_y"}, {"kind": "tiered"})] == \
        ["line", "order", "shipping", "line", "order"]


def messages(document: dict[str, Any], **kw: Any) -> dict[str, str]:
    return {p.path: p.message for p in validate_document(document, **kw)}


def test_validation_names_the_promotion_and_refuses_bad_numbers() -> None:
    promotions = [promo(1, "Zero", percent(0)), promo(2, "Summer 15 %", percent(101)),
                  promo(1, "Twin", fixed(-5), limits={"budget_minor": -1, "total_uses": -2, "per_customer": 0})]
    assert messages({"promotions": promotions}) == {
        "promotions[0].effect.percent": "Promotion 1 (Zero): the percent off is a whole number from 1 to 100, not 0",
        "promotions[1].effect.percent": "Promotion 2 (Summer 15 %): the percent off is a whole number from 1 to 100, "
                                        "not 101",
        "promotions[2].id": "Promotion 3 (Twin): the id 'p-1' is already promotion 1's",
        "promotions[2].effect.amount_minor": "Promotion 3 (Twin): the amount off is more than zero, in minor units, "
                                             "not -5",
        "promotions[2].limits.total_uses": "Promotion 3 (Twin): the total number of uses cannot be below zero",
        "promotions[2].limits.per_customer": "Promotion 3 (Twin): the uses per customer is zero, so it would never "
                                             "apply: leave it empty for no limit, or disable it",
        "promotions[2].limits.budget_minor": "Promotion 3 (Twin): the budget cannot be below zero",
    }


def test_validation_refuses_what_does_not_exist() -> None:
    buy_absent = {"kind": "buy_x_get_y", "buy": {"lines": leaf("line.sku", "in", ["SKU-1", "SKU-9"]), "quantity": 1},
                  "get": {"lines": {"all": [leaf("line.quantity", "gte", 1), category("gloves")]}, "quantity": 1,
                          "percent": 100}, "max_per_order": 1}
    promotions = [promo(1, "Loyal", percent(10), segment="seg-gone"), promo(2, "B1G1", buy_absent),
                  promo(3, "Not shoes", percent(10, "lines", {"not": leaf("line.sku", "eq", "SKU-404")}))]
    found = messages({"promotions": promotions}, segments={"seg-1": "Loyal"}, skus={"SKU-1", "SKU-2"},
                     categories={"shoes"})
    assert found == {
        "promotions[0].segment": "Promotion 1 (Loyal): segment seg-gone does not exist (was it deleted?)",
        "promotions[1].effect.buy.lines.value": "Promotion 2 (B1G1), lines to buy: row 1 (Line SKU): SKU SKU-9 is not "
                                                "in the catalog, so this can never apply",
        "promotions[1].effect.get.lines.all[1].value": "Promotion 2 (B1G1), lines to get: row 2 (Line category): "
                                                       "category gloves is not in the catalog, so this can never "
                                                       "apply",
    }
    caps = promo(1, "Caps", percent(5, "lines", leaf("line.category", "in", ["caps", "cap"])))
    two = messages({"promotions": [caps]}, categories={"shoes"})
    assert two == {"promotions[0].effect.lines.value": "Promotion 1 (Caps), lines to discount: row 1 (Line category): "
                                                       "categories caps, cap are not in the catalog, so this can "
                                                       "never apply"}
    # Without the catalog or the segments, nothing is said of them.
    assert messages({"promotions": promotions}) == {}


def test_validation_of_conditions_keys_and_shapes() -> None:
    promotions = [
        promo(1, "Bad when", percent(10), when={"all": [leaf("order.total", "gte", 100), leaf("order.nope", "eq", 1)]}),
        promo(2, "Segments field", percent(10), when=leaf("customer.lifetime_value", "gte", 100)),
        promo(3, "Order field on lines", percent(10, "lines", leaf("order.channel", "eq", "web"))),
        {**promo(4, "Extra", FREE_SHIPPING), "colour": "red"},
        promo(5, "Tiers", {"kind": "tiered", "tiers": [{"min_minor": 100, "percent": 5},
                                                      {"min_minor": 100, "amount_minor": 50}, {"min_minor": 1}]}),
        promo(6, "", {"kind": "half_off"}, channels=["web", "web"], combines_with=["everything"], priority=-1),
    ]
    found = messages({"promotions": promotions, "within_class": "random", "extra": 1})
    assert found == {
        "document": "Unexpected keys ['extra']",
        "within_class": "Within a class, one promotion applies: the first by priority, or the best for the customer",
        "promotions[0].when.all[1].field": "Promotion 1 (Bad when), condition row 2: unknown field 'order.nope'",
        "promotions[1].when.field": "Promotion 2 (Segments field), condition row 1 (Lifetime value): unknown field "
                                    "'customer.lifetime_value': it is not a field promotions can use",
        "promotions[2].effect.lines.field": "Promotion 3 (Order field on lines), lines to discount: row 1 (Channel): "
                                            "lines are chosen with line fields (SKU, category, quantity)",
        "promotions[3]": "Promotion 4 (Extra): unexpected keys ['colour']",
        "promotions[4].effect.tiers[1].min_minor": "Promotion 5 (Tiers), tier 2: another tier has the same minimum "
                                                   "spend",
        "promotions[4].effect.tiers[2]": "Promotion 5 (Tiers), tier 3: a tier is a minimum spend with a percent or "
                                         "an amount off",
        "promotions[5].name": "Promotion 6: give the promotion a name of up to 100 characters",
        "promotions[5].priority": "Promotion 6: the priority is a whole number from 0 to 1000000 (lower applies "
                                  "first)",
        "promotions[5].combines_with": "Promotion 6: the classes it combines with are among line, order, shipping, "
                                       "each at most once",
        "promotions[5].channels": "Promotion 6: channels are among web, store, marketplace, api, phone, each at "
                                  "most once",
        "promotions[5].effect": "Promotion 6: the effect is one of percent off, amount off, free shipping, buy x "
                                "get y, tiered spend thresholds",
    }
    assert messages([]) == {"promotions": "A promotions document has a list of promotions"}  # type: ignore[arg-type]


@pytest.mark.parametrize("document", [
    {"promotions": [promo(1, "P", {"kind": "buy_x_get_y", "buy": {"lines": None, "quantity": 0},
                                   "get": {"lines": None, "quantity": 1, "percent": 100}, "max_per_order": 0})]},
    {"promotions": [promo(1, "P", {"kind": "buy_x_get_y", "buy": "two", "get": {"quantity": 1, "percent": 0}})]},
])
def test_buy_x_get_y_shapes_are_checked(document: dict[str, Any]) -> None:
    assert validate_document(document)
    assert all(p.message.startswith("Promotion 1 (P)") for p in validate_document(document))


def test_the_compiled_cache_is_shared_with_routings_kind() -> None:
    document = {"promotions": [promo(1, "Ten", percent(10))], "within_class": "priority"}
    first = CACHE.get(("tenant", "v1"), document)
    assert CACHE.get(("tenant", "v1"), document) is first
    assert CACHE.peek(("tenant", "v1")) is first and CACHE.peek(("tenant", "v2")) is None
    small: CompiledCache[Any] = CompiledCache(compile_document, size=1)
    small.get(("t", 1), document)
    small.get(("t", 2), document)
    assert list(small.entries) == [("t", 2)] and (small.hits, small.misses) == (0, 2)
    assert price(first, cart(("A", 1, "x", 1_000)), MOMENT).total_discount_minor == 100
