"""Routing benchmark: decisions per order against a realistic rule set, with and without the cache.

20 rules (19 conditional, most of which do not match a typical order, then a catch-all), 50
locations across France with stock for a 500-SKU catalogue, and a few thousand distinct 5-line
orders, all from a fixed seed. Printed as `bench NAME: VALUE UNIT`; nothing here asserts a speed.
"""

from __future__ import annotations

import random
import statistics
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from rules.facts import LineFacts, LocationFacts, Moment, OrderFacts, StockSnapshot
from rules.routing import CompiledCache, compile_document, decide, new_rule, validate_document

SEED = 20261001
SKUS = 500
ORDERS = 3000
MOMENT = Moment(datetime(2026, 10, 1, 10, 0, tzinfo=UTC), "Europe/Paris")  # a Thursday
CATEGORIES = ("shoes", "shirts", "trousers", "hats", "bags", "socks", "jackets", "belts", "glass", "ceramics",
              "toys", "furniture")
CITIES = [
    ("Paris", 48.857, 2.352, "75"), ("Lyon", 45.764, 4.836, "69"), ("Marseille", 43.296, 5.370, "13"),
    ("Toulouse", 43.605, 1.444, "31"), ("Nice", 43.710, 7.262, "06"), ("Nantes", 47.218, -1.554, "44"),
    ("Strasbourg", 48.573, 7.752, "67"), ("Montpellier", 43.611, 3.877, "34"), ("Bordeaux", 44.838, -0.579, "33"),
    ("Lille", 50.629, 3.057, "59"), ("Rennes", 48.117, -1.678, "35"), ("Reims", 49.258, 4.032, "51"),
    ("Grenoble", 45.188, 5.724, "38"), ("Dijon", 47.322, 5.041, "21"), ("Angers", 47.478, -0.563, "49"),
    ("Clermont-Ferrand", 45.778, 3.087, "63"), ("Le Havre", 49.494, 0.108, "76"), ("Tours", 47.394, 0.685, "37"),
    ("Limoges", 45.834, 1.261, "87"), ("Amiens", 49.894, 2.296, "80"), ("Perpignan", 42.699, 2.895, "66"),
    ("Metz", 49.119, 6.176, "57"), ("Orléans", 47.903, 1.909, "45"), ("Caen", 49.183, -0.371, "14"),
    ("Brest", 48.390, -4.486, "29"), ("Poitiers", 46.580, 0.340, "86"), ("Pau", 43.295, -0.371, "64"),
    ("Ajaccio", 41.919, 8.739, "20"),
]


def leaf(field: str, op: str, value: Any) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


def _rule(number: int, name: str, when: dict[str, Any] | None, **then: Any) -> dict[str, Any]:
    made = new_rule(f"rule-{number}", name)
    made["when"] = when
    made["then"].update(then)
    return made


def build_document() -> dict[str, Any]:
    dc_only = {"location_types": ["warehouse"]}
    rules = [
        _rule(1, "Germany and Austria", leaf("destination.country", "in", ["DE", "AT"]), **dc_only,
              filters=[{"kind": "include_tags", "tags": ["east"]}]),
        _rule(2, "Benelux", leaf("destination.country", "in", ["BE", "NL", "LU"]), **dc_only,
              filters=[{"kind": "include_tags", "tags": ["north"]}, {"kind": "capacity_left", "min": 5}]),
        _rule(3, "Iberia", leaf("destination.country", "in", ["ES", "PT"]), **dc_only,
              sorts=[{"by": "shipping_cost", "band": 0}, {"by": "distance", "band": 0}]),
        _rule(4, "Italy", leaf("destination.country", "eq", "IT"), fallback=["split", "backorder"]),
        _rule(5, "Marketplace", leaf("order.channel", "eq", "marketplace"), **dc_only,
              sorts=[{"by": "stock", "band": 0}, {"by": "priority", "band": 0}],
              split={"max_shipments": 1, "min_order_value": 0, "never_split_line": True}),
        _rule(6, "B2B customers", leaf("customer.tags", "has", "b2b"), **dc_only,
              filters=[{"kind": "has_every_line"}], fallback=["hold"]),
        _rule(7, "Large phone orders", {"all": [leaf("order.channel", "eq", "phone"),
                                                leaf("order.total", "gte", 50_000)]},
              sorts=[{"by": "priority", "band": 0}], fallback=["split", "hold"]),
        _rule(8, "Furniture", leaf("line.category", "eq", "furniture"), **dc_only,
              filters=[{"kind": "include_tags", "tags": ["bulky"]}], fallback=["next_rule"]),
        _rule(9, "Very large orders", leaf("order.total", "gte", 300_000), fallback=["hold"]),
        _rule(10, "VIP in Paris", {"all": [leaf("customer.tags", "has", "vip"),
                                           leaf("destination.postcode", "starts_with", "75")]},
              location_types=["store", "warehouse"],
              filters=[{"kind": "offers_delivery_mode"}, {"kind": "within_distance", "km": 30}],
              fallback=["split", "next_rule"]),
        _rule(11, "Weekend pickups", {"all": [leaf("now.weekday", "in", ["sat", "sun"]),
                                              leaf("order.delivery_mode", "eq", "pickup")]},
              fallback=["ship_to_store", "hold"]),
        _rule(12, "Corsica", {"all": [leaf("destination.country", "eq", "FR"),
                                      leaf("destination.postcode", "starts_with", "20")]},
              filters=[{"kind": "include_locations", "locations": ["ST-AJACCIO-1", "WH-MARSEILLE"]}],
              fallback=["split", "backorder"]),
        _rule(13, "Overseas", leaf("destination.postcode", "starts_with", "97"), **dc_only, fallback=["hold"]),
        _rule(14, "Staff", leaf("customer.tags", "has_any", ["staff", "press"]), fallback=["hold"]),
        _rule(15, "Store channel", {"all": [leaf("order.channel", "eq", "store"),
                                            {"not": leaf("order.delivery_mode", "eq", "pickup")}]},
              location_types=["store"], fallback=["split", "next_rule"]),
        _rule(16, "Black Friday", leaf("now.date", "between", ["2026-11-27", "2026-11-30"]),
              sorts=[{"by": "capacity_headroom", "band": 0}, {"by": "distance", "band": 0}]),
        _rule(17, "Fragile and small", {"all": [leaf("line.category", "in", ["glass", "ceramics"]),
                                                leaf("order.total", "lt", 5_000)]}, **dc_only),
        _rule(18, "Bulk", leaf("order.units", "gte", 40), **dc_only, fallback=["backorder"]),
        _rule(19, "First big order", {"all": [leaf("customer.orders_count", "eq", 0),
                                              leaf("order.total", "gte", 150_000),
                                              {"any": [leaf("order.channel", "eq", "web"),
                                                       leaf("order.channel", "eq", "api")]}]},
              filters=[{"kind": "offers_delivery_mode"}, {"kind": "has_every_line"}], fallback=["next_rule"]),
        _rule(20, "Everything else", None,
              filters=[{"kind": "offers_delivery_mode"}, {"kind": "exclude_tags", "tags": ["closed"]}],
              sorts=[{"by": "distance", "band": 50}, {"by": "priority", "band": 0}],
              split={"max_shipments": 3, "min_order_value": 0, "never_split_line": False},
              fallback=["ship_to_store", "split", "backorder"]),
    ]
    return {"rules": rules, "otherwise": "hold"}


def build_catalogue(rng: random.Random) -> list[tuple[str, str, int]]:
    """(sku, category, unit price in cents)"""
    return [(f"SKU-{i:04d}", rng.choices(CATEGORIES, weights=[12, 12, 10, 8, 8, 10, 6, 6, 3, 3, 4, 1])[0],
             rng.randrange(500, 20_000, 10)) for i in range(SKUS)]


def build_locations(rng: random.Random, catalogue: list[tuple[str, str, int]]) -> list[LocationFacts]:
    locations = []
    for city, lat, lon, _ in CITIES[:10]:
        tags = {"north" if lat > 47 else "south", "east" if lon > 4 else "west"}
        if rng.random() < 0.4:
            tags.add("bulky")
        locations.append(LocationFacts(
            code=f"WH-{city.upper()}", kind="warehouse", name=f"{city} DC", country="FR", latitude=lat,
            longitude=lon, priority=rng.choice([10, 20, 30]), tags=frozenset(tags),
            available={sku: rng.randint(0, 60) for sku, _, _ in catalogue if rng.random() < 0.8},
            capacity_left=rng.choice([None, None, 400, 1200, 0]), shipping_cost_minor=rng.randrange(400, 900, 10)))
    for i in range(40):
        city, lat, lon, _ = CITIES[i % len(CITIES)]
        number = sum(1 for c in CITIES[:i % len(CITIES)] if c[0] == city) + i // len(CITIES) + 1
        locations.append(LocationFacts(
            code=f"ST-{city.upper().replace(' ', '-')}-{number}", kind="store", name=f"{city} store {number}",
            country="FR", latitude=lat + rng.uniform(-0.05, 0.05), longitude=lon + rng.uniform(-0.05, 0.05),
            priority=rng.choice([50, 60, 70]), tags=frozenset({"closed"} if rng.random() < 0.05 else ()),
            available={sku: rng.randint(1, 6) for sku, _, _ in catalogue if rng.random() < 0.25},
            ships=rng.random() < 0.5, collects=True, receives_transfers=rng.random() < 0.6,
            capacity_left=rng.choice([None, 0, 5, 20, 40]),
            shipping_cost_minor=rng.choice([None, rng.randrange(600, 1200, 10)])))
    return locations


def build_orders(rng: random.Random, catalogue: list[tuple[str, str, int]], stores: list[str]) -> list[OrderFacts]:
    popularity = [1 / (i + 1) ** 0.6 for i in range(len(catalogue))]
    orders: list[OrderFacts] = []
    seen: set[tuple[Any, ...]] = set()
    while len(orders) < ORDERS:
        picked: set[int] = set()
        while len(picked) < 5:
            picked.add(rng.choices(range(len(catalogue)), weights=popularity)[0])
        lines = tuple(LineFacts(catalogue[i][0], rng.choice([1, 1, 1, 2, 3]), catalogue[i][1], catalogue[i][2])
                      for i in sorted(picked))
        country = rng.choices(["FR", "DE", "BE", "ES", "IT"], weights=[92, 3, 2, 2, 1])[0]
        city, lat, lon, department = rng.choice(CITIES)
        pickup = country == "FR" and rng.random() < 0.15
        key = (tuple((line.sku, line.quantity) for line in lines), country, city, pickup)
        if key in seen:
            continue
        seen.add(key)
        tags = {tag for tag, share in (("vip", 0.1), ("b2b", 0.03), ("staff", 0.01)) if rng.random() < share}
        orders.append(OrderFacts(
            lines=lines, reference=f"B-{len(orders):05d}",
            channel=rng.choices(["web", "store", "marketplace", "phone", "api"], weights=[80, 8, 6, 4, 2])[0],
            total_minor=sum(line.quantity * line.unit_price_minor for line in lines),
            delivery_mode="pickup" if pickup else "ship", country=country,
            postcode=f"{department}{rng.randint(0, 999):03d}", latitude=lat + rng.uniform(-0.3, 0.3),
            longitude=lon + rng.uniform(-0.3, 0.3), pickup_location=rng.choice(stores) if pickup else None,
            customer_tags=frozenset(tags), customer_orders_count=rng.choice([0, 0, 1, 2, 5, 12])))
    return orders


def _median_per_call(batches: list[tuple[float, int]]) -> float:
    """Median over the batches of microseconds per call."""
    return statistics.median(seconds / calls * 1e6 for seconds, calls in batches)


def test_bench_routing_decisions() -> None:
    rng = random.Random(SEED)
    document = build_document()
    assert validate_document(document) == []
    catalogue = build_catalogue(rng)
    locations = build_locations(rng, catalogue)
    snapshot = StockSnapshot(tuple(locations))
    orders = build_orders(rng, catalogue, [loc.code for loc in locations if loc.kind == "store"])
    assert len(locations) == 50 and len({loc.code for loc in locations}) == 50 and len(orders) == ORDERS

    # Compilation alone.
    compiles: list[tuple[float, int]] = []
    for _ in range(30):
        started = time.perf_counter()
        for _ in range(20):
            compile_document(document)
        compiles.append((time.perf_counter() - started, 20))

    # Decisions with the compiled version from the cache, as production does.
    cache = CompiledCache()
    key = ("bench-tenant", "bench-version")
    for order in orders[:200]:  # warm up
        decide(cache.get(key, document), order, snapshot, MOMENT)
    cached: list[tuple[float, int]] = []
    batch = 500
    outcomes: Counter[str] = Counter()
    rules: Counter[str | None] = Counter()
    shipments: Counter[int] = Counter()
    for _ in range(3):
        for start in range(0, len(orders), batch):
            chunk = orders[start:start + batch]
            started = time.perf_counter()
            for order in chunk:
                decision = decide(cache.get(key, document), order, snapshot, MOMENT)
            cached.append((time.perf_counter() - started, len(chunk)))
    for order in orders:
        decision = decide(cache.get(key, document), order, snapshot, MOMENT)
        outcomes[decision.outcome] += 1
        rules[decision.rule] += 1
        shipments[len(decision.shipments)] += 1
    assert cache.misses == 1

    # Cold: compile and decide each time, no cache.
    cold: list[tuple[float, int]] = []
    cold_batch = 100
    for start in range(0, 1000, cold_batch):
        chunk = orders[start:start + cold_batch]
        started = time.perf_counter()
        for order in chunk:
            cold_decision = decide(compile_document(document), order, snapshot, MOMENT)
        cold.append((time.perf_counter() - started, len(chunk)))
    # The cache changes nothing but the time it takes.
    for order in orders[:100]:
        assert decide(compile_document(document), order, snapshot, MOMENT).to_dict() == \
            decide(cache.get(key, document), order, snapshot, MOMENT).to_dict()
    assert cold_decision.outcome in ("fulfil", "backorder", "hold")

    catch_all = rules["Everything else"]
    print(f"\nrouting bench: {len(document['rules'])} rules, {len(locations)} locations, {SKUS} SKUs, "
          f"{len(orders)} orders of 5 lines; outcomes {dict(outcomes)}; catch-all decided {catch_all}; "
          f"shipments per order {dict(sorted(shipments.items()))}")
    print(f"bench routing_decision_us: {_median_per_call(cached):.1f} us")
    print(f"bench routing_decision_cold_us: {_median_per_call(cold):.1f} us")
    print(f"bench routing_compile_us: {_median_per_call(compiles):.1f} us")
