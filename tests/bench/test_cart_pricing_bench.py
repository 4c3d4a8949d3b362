"""Cart pricing benchmark: one cart priced against 20 active promotions, compiled once and cached.

The promotions mix every effect kind; some have conditions on lines, the customer, the channel or
the date, one a segment, one a code, some limits. Two thousand distinct 5-line carts from a fixed
seed (some with a code, some customers in the segment) are priced in turn, with full traces and
condition explanations, as the pricing API does (`cart_pricing_us`, and its CPU time), then without
the explanations, as order capture does (`cart_pricing_capture_us`). Medians over batches of 200
carts. Printed as `bench NAME: VALUE UNIT`; nothing here asserts a speed.
"""

from __future__ import annotations

import random
import statistics
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from rules.cache import CompiledCache
from rules.facts import LineFacts, Moment, OrderFacts
from rules.promotions import (
    Allowance,
    Cart,
    CouponState,
    compile_document,
    limited_ids,
    new_promotion,
    price,
    validate_document,
)

SEED = 20261001
SKUS = 500
CARTS = 2000
MOMENT = Moment(datetime(2026, 10, 1, 10, 0, tzinfo=UTC), "Europe/Paris")  # a Thursday
CATEGORIES = ("shoes", "shirts", "trousers", "hats", "bags", "socks", "jackets", "belts")
SEGMENT = "seg-loyal"


def leaf(field: str, op: str, value: Any) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


def _promotion(number: int, name: str, effect: dict[str, Any], **changes: Any) -> dict[str, Any]:
    made = new_promotion(f"p-{number:04x}", name)
    made["effect"] = effect
    made["combines_with"] = ["line", "order", "shipping"]
    made.update(changes)
    return made


def percent(value: int, target: str = "order", lines: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"kind": "percent_off", "target": target, "percent": value, "lines": lines}


def fixed(amount: int, target: str = "order", lines: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"kind": "fixed_off", "target": target, "amount_minor": amount, "lines": lines}


def category(name: str) -> dict[str, Any]:
    return leaf("line.category", "eq", name)


def build_document() -> dict[str, Any]:
    promotions = [
        _promotion(1, "Summer 15 %", percent(15), priority=50, when=leaf("order.total", "gte", 25_000)),
        _promotion(2, "Shoes 20 %", percent(20, "lines", category("shoes")), priority=10),
        _promotion(3, "Free shipping over 60", {"kind": "free_shipping"}, when=leaf("order.total", "gte", 6_000)),
        _promotion(4, "Socks 3 for 2", {"kind": "buy_x_get_y", "buy": {"lines": category("socks"), "quantity": 2},
                                       "get": {"lines": category("socks"), "quantity": 1, "percent": 100},
                                       "max_per_order": 3}),
        _promotion(5, "Spend more, save more", {"kind": "tiered", "tiers": [
            {"min_minor": 5_000, "percent": 5}, {"min_minor": 10_000, "percent": 10},
            {"min_minor": 20_000, "percent": 15}]}, priority=60),
        _promotion(6, "VIP 10 %", percent(10), priority=40, when=leaf("customer.tags", "has", "vip")),
        _promotion(7, "Store €5", fixed(500), channels=["store"], priority=30),
        _promotion(8, "Loyal customers 12 %", percent(12), segment=SEGMENT, priority=20),
        _promotion(9, "Code SAVE10", fixed(1_000), coupon=True, priority=5,
                   limits={"total_uses": 5_000, "per_customer": 1, "budget_minor": None}),
        _promotion(10, "Black Friday 30 %", percent(30), exclusive=True,
                   when=leaf("now.date", "between", ["2026-11-27", "2026-11-30"])),
        _promotion(11, "Weekend 5 %", percent(5), when=leaf("now.weekday", "in", ["sat", "sun"]), priority=70),
        _promotion(12, "Hats €3 off", fixed(300, "lines", category("hats")), priority=20),
        _promotion(13, "First order 10 %", percent(10), when={"all": [
            leaf("customer.orders_count", "eq", 0), leaf("order.channel", "in", ["web", "api"])]}, priority=45),
        _promotion(14, "Marketplace 8 %", percent(8), channels=["marketplace"], priority=35),
        _promotion(15, "Bags 5 % (budget)", percent(5, "lines", category("bags")), priority=30,
                   limits={"total_uses": None, "per_customer": None, "budget_minor": 500_000}),
        _promotion(16, "Belts €2 off (1000 uses)", fixed(200, "lines", category("belts")), priority=40,
                   limits={"total_uses": 1_000, "per_customer": None, "budget_minor": None}),
        _promotion(17, "Old winter sale", percent(25), enabled=False),
        _promotion(18, "Jackets: second at half price", {
            "kind": "buy_x_get_y", "buy": {"lines": category("jackets"), "quantity": 1},
            "get": {"lines": category("jackets"), "quantity": 1, "percent": 50}, "max_per_order": 2}, priority=15),
        _promotion(19, "Free shipping by phone", {"kind": "free_shipping"}, channels=["phone"], priority=10),
        _promotion(20, "Big baskets €20 off", fixed(2_000), priority=55, when={"all": [
            leaf("order.total", "gte", 30_000), leaf("line.category", "in", ["jackets", "shoes"])]}),
    ]
    return {"promotions": promotions, "within_class": "priority"}


def build_carts(rng: random.Random) -> list[Cart]:
    catalogue = [(f"SKU-{i:04d}", rng.choice(CATEGORIES), rng.randrange(500, 15_000, 10)) for i in range(SKUS)]
    carts: list[Cart] = []
    for number in range(CARTS):
        picked = rng.sample(catalogue, 5)
        lines = tuple(LineFacts(sku, rng.choice([1, 1, 1, 2, 3]), cat, unit) for sku, cat, unit in picked)
        tags = frozenset(tag for tag, share in (("vip", 0.1), ("staff", 0.02)) if rng.random() < share)
        facts = OrderFacts(
            lines=lines, reference=f"C-{number:05d}",
            channel=rng.choices(["web", "store", "marketplace", "phone", "api"], weights=[80, 8, 6, 4, 2])[0],
            total_minor=sum(line.quantity * line.unit_price_minor for line in lines), country="FR",
            customer_tags=tags, customer_orders_count=rng.choice([0, 0, 1, 2, 5, 12]))
        carts.append(Cart(
            facts=facts, line_discounts=tuple(rng.choice([0, 0, 0, 100]) for _ in lines),
            shipping_fee_minor=rng.choice([0, 490, 690]),
            coupon_codes=("SAVE10",) if rng.random() < 0.2 else (), customer_id=f"c-{number}",
            segments=frozenset({SEGMENT}) if rng.random() < 0.3 else frozenset()))
    return carts


def _median_per_call(batches: list[tuple[float, int]]) -> float:
    return statistics.median(seconds / calls * 1e6 for seconds, calls in batches)


def test_bench_cart_pricing() -> None:
    rng = random.Random(SEED)
    document = build_document()
    assert validate_document(document, segments={SEGMENT: "Loyal"}) == []
    carts = build_carts(rng)
    cache = CompiledCache(compile_document)
    key = ("bench-tenant", "bench-version")
    compiled = cache.get(key, document)
    coupons = {"SAVE10": CouponState("SAVE10", "p-0009", None, "coupon-1")}
    allowances = {pid: Allowance(uses_left=500, customer_uses_left=1, budget_left_minor=400_000)
                  for pid in limited_ids(compiled)}
    for cart in carts[:200]:  # warm up
        price(cache.get(key, document), cart, MOMENT, coupons=coupons, allowances=allowances)

    wall: list[tuple[float, int]] = []
    cpu: list[tuple[float, int]] = []
    capture: list[tuple[float, int]] = []
    batch = 200
    for _ in range(5):
        for start in range(0, len(carts), batch):
            chunk = carts[start:start + batch]
            started, started_cpu = time.perf_counter(), time.process_time()
            for cart in chunk:
                price(cache.get(key, document), cart, MOMENT, coupons=coupons, allowances=allowances)
            wall.append((time.perf_counter() - started, len(chunk)))
            cpu.append((time.process_time() - started_cpu, len(chunk)))
            started = time.perf_counter()
            for cart in chunk:
                price(cache.get(key, document), cart, MOMENT, coupons=coupons, allowances=allowances,
                      explained=False)
            capture.append((time.perf_counter() - started, len(chunk)))
    assert cache.misses == 1

    applied: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    discounted = 0
    for cart in carts:
        pricing = price(compiled, cart, MOMENT, coupons=coupons, allowances=allowances)
        assert len(pricing.trace) == 20
        discounted += pricing.total_discount_minor > 0
        applied.update(a.name for a in pricing.applied)
        reasons.update(v.reason for v in pricing.trace)

    print(f"\ncart pricing bench: {len(document['promotions'])} promotions, {len(carts)} carts of 5 lines; "
          f"{discounted} carts discounted; applied {dict(applied.most_common())}; verdicts {dict(reasons)}")
    print(f"bench cart_pricing_us: {_median_per_call(wall):.1f} us")
    print(f"bench cart_pricing_cpu_us: {_median_per_call(cpu):.1f} us")
    print(f"bench cart_pricing_capture_us: {_median_per_call(capture):.1f} us")
