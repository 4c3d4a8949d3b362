"""The routing evaluator: filters, sorts, bands, fallbacks, traces and document validation,
plus property tests over random rule sets, locations and orders. Pure: no database."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, settings, target
from hypothesis import strategies as st

from rules.facts import LineFacts, LocationFacts, Moment, OrderFacts, StockSnapshot
from rules.fields import LOCATION_TYPES
from rules.routing import (
    FILTERS,
    OUTCOMES,
    SORTS,
    TERMINAL,
    CompiledCache,
    Decision,
    compile_document,
    decide,
    distance_km,
    empty_document,
    new_rule,
    validate_document,
)

MOMENT = Moment(datetime(2026, 10, 1, 10, 0, tzinfo=UTC), "Europe/Paris")
PARIS = (48.8566, 2.3522)  # the destination of ORDER
COORDS = {
    "WH-PARIS": (48.90, 2.40),  # ~6 km from the destination
    "WH-LILLE": (50.63, 3.06),  # ~204 km
    "WH-NANTES": (47.218, -1.553),  # ~343 km
    "WH-LYON": (45.76, 4.84),  # ~392 km
    "ST-MARAIS": (48.859, 2.362),  # ~0.8 km
    "ST-NANTES": (47.218, -1.553),  # ~343 km
}
FULL = {"SKU-1": 10, "SKU-2": 10}

ORDER = OrderFacts(
    lines=(LineFacts("SKU-1", 2, "shoes", 4000), LineFacts("SKU-2", 1, "hats", 4500)),
    reference="R-1", total_minor=12_500, country="FR", postcode="75011", latitude=PARIS[0], longitude=PARIS[1],
)


def loc(code: str, stock: dict[str, int] | None = None, **kw: Any) -> LocationFacts:
    kind = "store" if code.startswith("ST-") else "warehouse"
    lat, lon = COORDS.get(code, (None, None))
    defaults: dict[str, Any] = {"kind": kind, "latitude": lat, "longitude": lon, "name": code,
                                "collects": kind == "store"}
    return LocationFacts(code=code, available=dict(FULL if stock is None else stock), **{**defaults, **kw})


def rule(rule_id: str = "r1", name: str = "Default", when: dict[str, Any] | None = None,
         **then: Any) -> dict[str, Any]:
    made = new_rule(rule_id, name)
    made["when"] = when
    made["then"].update(then)
    return made


def route(rules: list[dict[str, Any]], locations: list[LocationFacts], order: OrderFacts = ORDER,
          otherwise: str = "hold") -> Decision:
    document = {"rules": rules, "otherwise": otherwise}
    assert validate_document(document) == []
    return decide(compile_document(document), order, StockSnapshot(tuple(locations)), MOMENT)


def lines(decision: Decision) -> dict[str, dict[str, int]]:
    """What each shipment carries, by location."""
    return {s.location: dict(s.lines) for s in decision.shipments}


def verdicts(decision: Decision, position: int = 1) -> dict[str, str]:
    entry = next(e for e in decision.trace.to_dict() if e["position"] == position)
    return {item["location"]: item["verdict"] for item in entry["locations"]}


def steps(decision: Decision, position: int = 1) -> list[str]:
    return next(e for e in decision.trace.to_dict() if e["position"] == position)["steps"]


def ranked(decision: Decision, position: int = 1) -> list[str]:
    entry = next(e for e in decision.trace.to_dict() if e["position"] == position)
    return [item["location"] for item in entry["locations"] if item["verdict"].startswith("ranked")]


WHOLE = {"SKU-1": 2, "SKU-2": 1}


# --- filters ---------------------------------------------------------------------------------------

def test_without_filters_the_nearest_location_with_every_line_ships() -> None:
    decision = route([rule()], [loc("WH-LYON"), loc("WH-PARIS"), loc("WH-LILLE")])
    assert (decision.outcome, decision.rule, decision.location_codes) == ("fulfil", "Default", ("WH-PARIS",))
    assert lines(decision) == {"WH-PARIS": WHOLE}


def test_include_locations() -> None:
    decision = route([rule(filters=[{"kind": "include_locations", "locations": ["WH-LYON", "WH-LILLE"]}])],
                     [loc("WH-PARIS"), loc("WH-LYON"), loc("WH-LILLE")])
    assert decision.location_codes == ("WH-LILLE",)
    assert verdicts(decision)["WH-PARIS"] == "rejected: not among the locations this rule allows"


def test_include_locations_twice_allows_only_the_locations_in_both() -> None:
    filters = [{"kind": "include_locations", "locations": ["WH-PARIS", "WH-LYON"]},
               {"kind": "include_locations", "locations": ["WH-LILLE", "WH-LYON"]}]
    decision = route([rule(filters=filters)], [loc("WH-PARIS"), loc("WH-LYON"), loc("WH-LILLE")])
    assert decision.location_codes == ("WH-LYON",)
    nothing_in_common = [{"kind": "include_locations", "locations": ["WH-PARIS"]},
                         {"kind": "include_locations", "locations": ["WH-LYON"]},
                         {"kind": "include_locations", "locations": ["WH-LYON"]}]
    decision = route([rule(filters=nothing_in_common)], [loc("WH-PARIS"), loc("WH-LYON")])
    assert (decision.outcome, decision.shipments) == ("hold", ())


def test_exclude_locations() -> None:
    decision = route([rule(filters=[{"kind": "exclude_locations", "locations": ["WH-PARIS"]}])],
                     [loc("WH-PARIS"), loc("WH-LYON")])
    assert decision.location_codes == ("WH-LYON",)
    assert verdicts(decision)["WH-PARIS"] == "rejected: excluded by this rule"


def test_include_tags() -> None:
    decision = route([rule(filters=[{"kind": "include_tags", "tags": ["outlet", "hub"]}])],
                     [loc("WH-PARIS", tags=frozenset({"city"})), loc("WH-LYON", tags=frozenset({"hub", "south"}))])
    assert decision.location_codes == ("WH-LYON",)
    assert verdicts(decision)["WH-PARIS"] == "rejected: has none of the tags this rule requires"


def test_two_include_tags_filters_must_both_be_met() -> None:
    filters = [{"kind": "include_tags", "tags": ["hub"]}, {"kind": "include_tags", "tags": ["north", "east"]}]
    decision = route([rule(filters=filters)], [
        loc("WH-PARIS", tags=frozenset({"hub"})),  # nearest, but not north or east
        loc("WH-LYON", tags=frozenset({"north"})),  # not a hub
        loc("WH-LILLE", tags=frozenset({"hub", "north"})),
    ])
    assert decision.location_codes == ("WH-LILLE",)
    assert verdicts(decision)["WH-PARIS"] == "rejected: has none of the tags this rule requires"
    assert verdicts(decision)["WH-LYON"] == "rejected: has none of the tags this rule requires"


def test_exclude_tags() -> None:
    decision = route([rule(filters=[{"kind": "exclude_tags", "tags": ["closed-sunday", "franchise"]}])],
                     [loc("WH-PARIS", tags=frozenset({"franchise"})), loc("WH-LILLE")])
    assert decision.location_codes == ("WH-LILLE",)
    assert verdicts(decision)["WH-PARIS"] == "rejected: has a tag this rule excludes"


def test_within_distance() -> None:
    locations = [loc("WH-PARIS", {"SKU-1": 2}), loc("WH-LYON"), loc("WH-NOWHERE")]  # no coordinates
    decision = route([rule(filters=[{"kind": "within_distance", "km": 250}])], locations)
    assert decision.outcome == "hold"  # WH-PARIS lacks SKU-2, the others are out of reach
    assert verdicts(decision) == {
        "WH-LYON": "rejected: 392 km away, beyond 250 km",
        "WH-NOWHERE": "rejected: distance unknown (no coordinates)",
        "WH-PARIS": "ranked 1",
    }
    decision = route([rule(filters=[{"kind": "within_distance", "km": 400}])], locations)
    assert decision.location_codes == ("WH-LYON",)


def test_the_tighter_of_two_distance_filters_applies() -> None:
    filters = [{"kind": "within_distance", "km": 100}, {"kind": "within_distance", "km": 500}]
    decision = route([rule(filters=filters)], [loc("WH-LYON")])
    assert decision.outcome == "hold"
    assert verdicts(decision)["WH-LYON"] == "rejected: 392 km away, beyond 100 km"


def test_within_distance_of_an_order_without_coordinates() -> None:
    order = OrderFacts(lines=ORDER.lines, total_minor=ORDER.total_minor)
    decision = route([rule(filters=[{"kind": "within_distance", "km": 1000}])], [loc("WH-PARIS")], order)
    assert decision.outcome == "hold"
    assert verdicts(decision)["WH-PARIS"] == "rejected: distance unknown (no coordinates)"


def test_has_every_line() -> None:
    locations = [loc("WH-PARIS", {"SKU-1": 2}), loc("WH-LILLE", {"SKU-2": 5})]
    assert lines(route([rule()], locations)) == {"WH-PARIS": {"SKU-1": 2}, "WH-LILLE": {"SKU-2": 1}}
    decision = route([rule(filters=[{"kind": "has_every_line"}])], locations)
    assert decision.outcome == "hold"
    assert verdicts(decision) == {"WH-PARIS": "rejected: has 2 of the 3 units",
                                  "WH-LILLE": "rejected: has 1 of the 3 units"}


def test_capacity_left() -> None:
    decision = route([rule(filters=[{"kind": "capacity_left", "min": 5}])],
                     [loc("WH-PARIS", capacity_left=3), loc("WH-LILLE", capacity_left=5), loc("WH-LYON")])
    assert decision.location_codes == ("WH-LILLE",)
    assert verdicts(decision)["WH-PARIS"] == "rejected: daily capacity reached (3 left)"
    assert verdicts(decision)["WH-LYON"] == "ranked 2"  # no limit


def test_offers_delivery_mode_for_shipped_orders() -> None:
    locations = [loc("ST-MARAIS", ships=False), loc("WH-PARIS")]
    stores_first = ["store", "warehouse"]
    decision = route([rule(location_types=stores_first)], locations)  # new_rule() has the filter
    assert decision.location_codes == ("WH-PARIS",)
    assert verdicts(decision)["ST-MARAIS"] == "rejected: does not ship"
    assert route([rule(filters=[], location_types=stores_first)], locations).location_codes == ("ST-MARAIS",)


def test_offers_delivery_mode_for_pickup_orders() -> None:
    order = OrderFacts(lines=ORDER.lines, total_minor=ORDER.total_minor, delivery_mode="pickup",
                       pickup_location="ST-MARAIS")
    decision = route([rule()], [loc("ST-MARAIS", collects=False), loc("WH-PARIS")], order)
    assert decision.outcome == "hold"
    assert verdicts(decision)["ST-MARAIS"] == "rejected: does not offer click & collect"
    decision = route([rule()], [loc("ST-MARAIS", collects=True), loc("WH-PARIS")], order)
    assert decision.shipments[0].location == "ST-MARAIS" and decision.shipments[0].pickup


def test_a_pickup_order_for_an_unknown_store_is_never_shipped_to_the_customer() -> None:
    order = OrderFacts(lines=ORDER.lines, total_minor=ORDER.total_minor, delivery_mode="pickup",
                       pickup_location="ST-CLOSED", latitude=PARIS[0], longitude=PARIS[1])
    decision = route([rule(fallback=["split", "ship_to_store", "hold"])], [loc("ST-MARAIS"), loc("WH-PARIS")], order)
    assert decision.outcome == "hold"
    assert decision.shipments == ()
    assert "pickup store 'ST-CLOSED' is unknown or inactive" in steps(decision)


# --- sorts -------------------------------------------------------------------------------------------

def test_sort_by_distance() -> None:
    decision = route([rule(sorts=[{"by": "distance"}])],
                     [loc("WH-LYON"), loc("WH-LILLE"), loc("WH-NOWHERE"), loc("WH-PARIS")])
    assert ranked(decision) == ["WH-PARIS", "WH-LILLE", "WH-LYON", "WH-NOWHERE"]  # unknown distance last
    assert decision.shipments[0].distance_km == pytest.approx(distance_km(*PARIS, *COORDS["WH-PARIS"]), abs=0.01)


def test_sort_by_stock() -> None:
    order = OrderFacts(lines=(LineFacts("SKU-1", 2), LineFacts("SKU-2", 2)), total_minor=10_000,
                       latitude=PARIS[0], longitude=PARIS[1])
    locations = [loc("WH-PARIS", {"SKU-1": 1}), loc("WH-LILLE", {"SKU-1": 2, "SKU-2": 1}),
                 loc("WH-LYON", {"SKU-2": 9})]
    by_stock = route([rule(sorts=[{"by": "stock"}])], locations, order)
    assert ranked(by_stock) == ["WH-LILLE", "WH-LYON", "WH-PARIS"]  # 3, 2 (of 2 wanted) and 1 units
    assert lines(by_stock) == {"WH-LILLE": {"SKU-1": 2, "SKU-2": 1}, "WH-LYON": {"SKU-2": 1}}
    by_distance = route([rule(sorts=[{"by": "distance"}])], locations, order)
    assert by_distance.outcome == "hold"  # Paris first, then it takes three shipments
    assert "split: needs 3 shipments, the limit is 2" in steps(by_distance)


def test_sort_by_priority() -> None:
    decision = route([rule(sorts=[{"by": "priority"}])],
                     [loc("WH-PARIS", priority=50), loc("WH-LYON", priority=1), loc("WH-LILLE", priority=20)])
    assert ranked(decision) == ["WH-LYON", "WH-LILLE", "WH-PARIS"]
    assert decision.location_codes == ("WH-LYON",)


def test_sort_by_shipping_cost() -> None:
    decision = route([rule(sorts=[{"by": "shipping_cost"}])],
                     [loc("WH-PARIS", shipping_cost_minor=900), loc("WH-LYON"),
                      loc("WH-LILLE", shipping_cost_minor=500)])
    assert ranked(decision) == ["WH-LILLE", "WH-PARIS", "WH-LYON"]  # unknown cost last
    assert decision.shipments[0].shipping_cost_minor == 500


def test_sort_by_capacity_headroom() -> None:
    decision = route([rule(sorts=[{"by": "capacity_headroom"}])],
                     [loc("WH-PARIS", capacity_left=2), loc("WH-LYON", capacity_left=40), loc("WH-LILLE")])
    assert ranked(decision) == ["WH-LILLE", "WH-LYON", "WH-PARIS"]  # no limit first


def test_without_sorts_locations_rank_by_code() -> None:
    decision = route([rule(sorts=[])], [loc("WH-PARIS"), loc("WH-LYON"), loc("WH-LILLE")])
    assert ranked(decision) == ["WH-LILLE", "WH-LYON", "WH-PARIS"]


def test_a_band_lets_the_next_sort_break_ties() -> None:
    locations = [loc("WH-PARIS", priority=90), loc("WH-LILLE", priority=10), loc("WH-LYON", priority=1)]
    plain = route([rule(sorts=[{"by": "distance", "band": 0}, {"by": "priority", "band": 0}])], locations)
    assert ranked(plain) == ["WH-PARIS", "WH-LILLE", "WH-LYON"]
    banded = route([rule(sorts=[{"by": "distance", "band": 250}, {"by": "priority", "band": 0}])], locations)
    # Paris and Lille are both within the first 250 km, so priority decides; Lyon is in the next band.
    assert ranked(banded) == ["WH-LILLE", "WH-PARIS", "WH-LYON"]
    assert banded.location_codes == ("WH-LILLE",)


def test_location_types_are_tiers() -> None:
    locations = [loc("WH-PARIS"), loc("ST-NANTES")]
    stores_first = route([rule(location_types=["store", "warehouse"])], locations)
    assert stores_first.location_codes == ("ST-NANTES",)  # 343 km, but stores come first
    warehouses_first = route([rule(location_types=["warehouse", "store"])], locations)
    assert warehouses_first.location_codes == ("WH-PARIS",)
    only_warehouses = route([rule(location_types=["warehouse"])], [loc("ST-MARAIS"), loc("WH-LYON")])
    assert only_warehouses.location_codes == ("WH-LYON",)
    assert verdicts(only_warehouses)["ST-MARAIS"] == "rejected: a store is not among this rule's location types"


def test_one_shipment_is_preferred_to_a_split() -> None:
    decision = route([rule()], [loc("ST-MARAIS", {"SKU-1": 5}), loc("WH-PARIS", {"SKU-2": 5}), loc("WH-LYON")])
    assert lines(decision) == {"WH-LYON": WHOLE}
    assert steps(decision) == ["WH-LYON has every line: one shipment"]


# --- fallbacks ---------------------------------------------------------------------------------------

SPLIT_STOCK = [loc("WH-PARIS", {"SKU-1": 5}), loc("WH-LILLE", {"SKU-2": 5}), loc("WH-LYON", {"SKU-2": 5})]


def test_split() -> None:
    decision = route([rule()], SPLIT_STOCK)
    assert decision.outcome == "fulfil"
    assert lines(decision) == {"WH-PARIS": {"SKU-1": 2}, "WH-LILLE": {"SKU-2": 1}}
    assert steps(decision) == ["no single location has every line",
                               "split into 2 shipments: WH-PARIS (2 units), WH-LILLE (1 units)"]


def test_split_within_max_shipments() -> None:
    decision = route([rule(split={"max_shipments": 1, "min_order_value": 0, "never_split_line": False})],
                     SPLIT_STOCK)
    assert (decision.outcome, decision.shipments, decision.rule) == ("hold", (), "Default")
    assert decision.reason == "Hold for customer service"
    assert steps(decision)[-2:] == ["split: needs 2 shipments, the limit is 1", "fallback: hold for customer service"]


def test_split_only_above_min_order_value() -> None:
    split = {"max_shipments": 2, "min_order_value": 20_000, "never_split_line": False}
    decision = route([rule(split=split)], SPLIT_STOCK)
    assert decision.outcome == "hold"
    assert "split: the order (12500) is below the split threshold (20000)" in steps(decision)
    split["min_order_value"] = 12_500
    assert route([rule(split=split)], SPLIT_STOCK).outcome == "fulfil"


def test_never_split_line() -> None:
    order = OrderFacts(lines=(LineFacts("SKU-1", 4), LineFacts("SKU-2", 1)), total_minor=9000,
                       latitude=PARIS[0], longitude=PARIS[1])
    locations = [loc("WH-PARIS", {"SKU-1": 2, "SKU-2": 1}), loc("WH-LILLE", {"SKU-1": 2})]
    split = {"max_shipments": 3, "min_order_value": 0, "never_split_line": False}
    assert lines(route([rule(split=split)], locations, order)) == {
        "WH-PARIS": {"SKU-1": 2, "SKU-2": 1}, "WH-LILLE": {"SKU-1": 2}}
    split["never_split_line"] = True
    decision = route([rule(split=split)], locations, order)
    assert decision.outcome == "hold"
    assert "split: the locations this rule allows lack 4 units" in steps(decision)
    # A location with the whole line takes it; the nearer one then ships only what it has whole.
    decision = route([rule(split=split)], [*locations, loc("WH-LYON", {"SKU-1": 4})], order)
    assert lines(decision) == {"WH-PARIS": {"SKU-2": 1}, "WH-LYON": {"SKU-1": 4}}


PICKUP = OrderFacts(lines=ORDER.lines, total_minor=ORDER.total_minor, delivery_mode="pickup",
                    pickup_location="ST-MARAIS", latitude=PARIS[0], longitude=PARIS[1])


def test_pickup_at_a_store_with_every_line() -> None:
    decision = route([rule()], [loc("WH-PARIS"), loc("ST-MARAIS", receives_transfers=True)], PICKUP)
    shipment = decision.shipments[0]
    assert (shipment.location, shipment.pickup, shipment.ship_to_store) == ("ST-MARAIS", True, None)
    assert shipment.distance_km is None and shipment.shipping_cost_minor is None


def test_ship_to_store() -> None:
    locations = [loc("ST-MARAIS", {}, receives_transfers=True), loc("WH-LILLE"),
                 loc("WH-PARIS", shipping_cost_minor=700)]
    decision = route([rule(fallback=["ship_to_store", "hold"])], locations, PICKUP)
    shipment = decision.shipments[0]
    assert (decision.outcome, len(decision.shipments)) == ("fulfil", 1)
    assert (shipment.location, shipment.ship_to_store, shipment.pickup) == ("WH-PARIS", "ST-MARAIS", False)
    assert shipment.lines == WHOLE and shipment.shipping_cost_minor == 700
    # Distances are measured from the pickup store, not from the customer.
    assert shipment.distance_km == pytest.approx(distance_km(*COORDS["ST-MARAIS"], *COORDS["WH-PARIS"]), abs=0.01)
    assert steps(decision) == ["the pickup store does not have every line",
                               "ship to store: WH-PARIS sends every line to ST-MARAIS"]


def test_ship_to_store_needs_a_store_that_receives_transfers() -> None:
    locations = [loc("ST-MARAIS", {}, receives_transfers=False), loc("WH-PARIS")]
    decision = route([rule(fallback=["ship_to_store", "split", "backorder"])], locations, PICKUP)
    assert (decision.outcome, decision.shipments) == ("backorder", ())
    assert "ship to store: only for a pickup order at a store that receives transfers" in steps(decision)
    shipped = route([rule(fallback=["ship_to_store", "hold"])], [loc("WH-PARIS")])
    assert shipped.location_codes == ("WH-PARIS",)  # a shipped order never needs the fallback


def test_split_for_pickup_starts_with_the_store() -> None:
    locations = [loc("WH-PARIS", {"SKU-1": 9, "SKU-2": 9}), loc("ST-MARAIS", {"SKU-1": 2}, receives_transfers=True)]
    decision = route([rule(fallback=["split", "hold"])],
                     [loc("WH-LYON", {"SKU-2": 1}), *locations[1:]], PICKUP)
    assert [(s.location, s.lines, s.pickup, s.ship_to_store) for s in decision.shipments] == [
        ("ST-MARAIS", {"SKU-1": 2}, True, None), ("WH-LYON", {"SKU-2": 1}, False, "ST-MARAIS")]


def test_next_rule() -> None:
    lyon_only = rule("r1", "Lyon only", filters=[{"kind": "include_locations", "locations": ["WH-LYON"]}],
                     fallback=["next_rule"])
    decision = route([lyon_only, rule("r2", "Anywhere")], [loc("WH-LYON", {}), loc("WH-LILLE")])
    assert (decision.outcome, decision.rule, decision.location_codes) == ("fulfil", "Anywhere", ("WH-LILLE",))
    assert steps(decision, 1) == ["no single location has every line", "fallback: try the next rule"]
    assert [e["matched"] for e in decision.trace.to_dict()] == [True, True]


def test_backorder() -> None:
    decision = route([rule(fallback=["split", "backorder"])], [loc("WH-PARIS", {"SKU-1": 1})])
    assert (decision.outcome, decision.rule, decision.shipments) == ("backorder", "Default", ())
    assert decision.reason == "Backorder until stock arrives"


def test_hold() -> None:
    decision = route([rule(fallback=["hold"])], SPLIT_STOCK)  # a split would work, but is not allowed
    assert (decision.outcome, decision.rule, decision.shipments) == ("hold", "Default", ())


@pytest.mark.parametrize("otherwise", OUTCOMES)
def test_otherwise_when_no_rule_matches(otherwise: str) -> None:
    germany = rule("r1", "Germany", when={"field": "destination.country", "op": "eq", "value": "DE"})
    decision = route([germany], [loc("WH-PARIS")], otherwise=otherwise)
    assert (decision.outcome, decision.rule, decision.shipments) == (otherwise, None, ())
    assert decision.reason == "no rule gave a plan"
    trace = decision.trace.to_dict()
    assert trace[0]["matched"] is False
    assert trace[-1]["why"][0].startswith("no rule gave a plan: ")


def test_otherwise_after_the_last_rule_says_next_rule() -> None:
    decision = route([rule(fallback=["next_rule"])], [loc("WH-PARIS", {})], otherwise="backorder")
    assert (decision.outcome, decision.rule) == ("backorder", None)


def test_an_empty_document_holds_every_order() -> None:
    document = empty_document()
    assert validate_document(document) == []
    decision = decide(compile_document(document), ORDER, StockSnapshot((loc("WH-PARIS"),)), MOMENT)
    assert (decision.outcome, decision.shipments) == ("hold", ())


# --- capacity and safety stock ------------------------------------------------------------------------

def test_a_location_without_capacity_is_never_used() -> None:
    decision = route([rule(filters=[])], [loc("WH-PARIS", capacity_left=0), loc("WH-LYON", capacity_left=1)])
    assert decision.location_codes == ("WH-LYON",)
    assert verdicts(decision)["WH-PARIS"] == "rejected: daily capacity reached (0 left)"
    decision = route([rule()], [loc("WH-PARIS", {"SKU-1": 9}, capacity_left=0), loc("WH-LILLE", {"SKU-2": 9}),
                                loc("WH-LYON", {"SKU-1": 9})])
    assert lines(decision) == {"WH-LILLE": {"SKU-2": 1}, "WH-LYON": {"SKU-1": 2}}
    decision = route([rule()], [loc("WH-PARIS", capacity_left=0)])
    assert (decision.outcome, decision.shipments) == ("hold", ())


def test_nothing_beyond_available_is_assigned() -> None:
    # Available is on hand less reserved less safety stock: 5 on hand, 2 kept back -> 3.
    order = OrderFacts(lines=(LineFacts("SKU-1", 5),), total_minor=5000, latitude=PARIS[0], longitude=PARIS[1])
    locations = [loc("WH-PARIS", {"SKU-1": 3}), loc("WH-LILLE", {"SKU-1": 2}), loc("WH-LYON", {"SKU-1": 5})]
    assert lines(route([rule()], locations[:2], order)) == {"WH-PARIS": {"SKU-1": 3}, "WH-LILLE": {"SKU-1": 2}}
    assert route([rule()], locations, order).location_codes == ("WH-LYON",)  # the only one with all 5
    short = OrderFacts(lines=(LineFacts("SKU-1", 6),), total_minor=6000, latitude=PARIS[0], longitude=PARIS[1])
    assert route([rule()], locations[:2], short).shipments == ()


def test_disabled_rules_are_skipped() -> None:
    off = rule("r1", "Lyon only", filters=[{"kind": "include_locations", "locations": ["WH-LYON"]}])
    off["enabled"] = False
    decision = route([off, rule("r2", "Nearest")], [loc("WH-LYON"), loc("WH-PARIS")])
    assert (decision.rule, decision.location_codes) == ("Nearest", ("WH-PARIS",))
    assert [(e["rule"], e["position"]) for e in decision.trace.to_dict()] == [("Nearest", 2)]


# --- traces and decisions as data -----------------------------------------------------------------------

def test_trace_and_decision_as_data() -> None:
    germany = rule("r1", "Germany", when={"field": "destination.country", "op": "eq", "value": "DE"})
    big = rule("r2", "Big orders", when={"field": "order.total", "op": "gte", "value": 10_000},
               sorts=[{"by": "distance", "band": 0}, {"by": "stock", "band": 0}, {"by": "shipping_cost", "band": 0}],
               filters=[{"kind": "offers_delivery_mode"}, {"kind": "exclude_locations", "locations": ["WH-LILLE"]}])
    decision = route([germany, big], [loc("WH-LILLE"), loc("WH-LYON", shipping_cost_minor=450),
                                      loc("WH-PARIS", {"SKU-1": 1}), loc("ST-MARAIS", ships=False)])
    paris_km = round(distance_km(*PARIS, *COORDS["WH-PARIS"]), 1)
    lyon_km = round(distance_km(*PARIS, *COORDS["WH-LYON"]), 1)
    assert decision.to_dict() == {
        "outcome": "fulfil", "rule": "Big orders", "reason": "rule “Big orders”",
        "shipments": [{"location": "WH-LYON", "lines": [{"sku": "SKU-1", "quantity": 2},
                                                        {"sku": "SKU-2", "quantity": 1}],
                       "ship_to_store": None, "pickup": False, "distance_km": lyon_km, "shipping_cost_minor": 450}],
        "trace": [
            {"rule": "Germany", "position": 1, "matched": False,
             "why": ["Destination country is DE: no (it is FR)"], "locations": [], "steps": []},
            {"rule": "Big orders", "position": 2, "matched": True,
             "why": ["Order total is at least 100.00 EUR: yes (it is 125.00 EUR)"],
             "locations": [
                 {"location": "WH-LILLE", "verdict": "rejected: excluded by this rule"},
                 {"location": "ST-MARAIS", "verdict": "rejected: does not ship"},
                 {"location": "WH-PARIS", "verdict": "ranked 1",
                  "scores": {"distance": f"{paris_km} km", "stock": "1 units", "shipping_cost": "unknown"}},
                 {"location": "WH-LYON", "verdict": "ranked 2",
                  "scores": {"distance": f"{lyon_km} km", "stock": "3 units", "shipping_cost": "450 minor units"}},
             ],
             "steps": ["WH-LYON has every line: one shipment"]},
        ],
    }
    assert "trace" not in decision.to_dict(with_trace=False)


def test_trace_scores_for_priority_and_capacity() -> None:
    decision = route([rule(sorts=[{"by": "priority"}, {"by": "capacity_headroom"}])],
                     [loc("WH-PARIS", priority=7, capacity_left=12), loc("WH-LYON", priority=9)])
    scores = [e.get("scores") for e in decision.trace.to_dict()[0]["locations"]]
    assert scores == [{"priority": "7", "capacity_headroom": "12 orders"},
                      {"priority": "9", "capacity_headroom": "no limit"}]


# --- validation -------------------------------------------------------------------------------------------

def problems_of(*rules: dict[str, Any], otherwise: str = "hold") -> list[tuple[str, str]]:
    return [(p.path, p.message) for p in validate_document({"rules": list(rules), "otherwise": otherwise})]


def test_new_rule_is_valid() -> None:
    assert problems_of(new_rule("a"), new_rule("b", "Second")) == []


@pytest.mark.parametrize(("then", "path", "message"), [
    ({"filters": [{"kind": "nearest"}]}, "rules[0].then.filters[0]", "Rule 1 “Paris”, filter 1: unknown filter "
                                                                     "'nearest'"),
    ({"filters": [{"kind": "offers_delivery_mode"}, {"kind": ["nearest"]}]}, "rules[0].then.filters[1]",
     "Rule 1 “Paris”, filter 2: unknown filter ['nearest']"),
    ({"filters": [{"kind": "include_locations", "locations": []}]}, "rules[0].then.filters[0].locations",
     "Rule 1 “Paris”, filter 1 (Only these locations): name at least one location"),
    ({"filters": [{"kind": "exclude_tags", "tags": [" "]}]}, "rules[0].then.filters[0].tags",
     "Rule 1 “Paris”, filter 1 (Not locations tagged): name at least one tag"),
    ({"filters": [{"kind": "within_distance", "km": 0}]}, "rules[0].then.filters[0].km",
     "Rule 1 “Paris”, filter 1 (Within a distance of the destination): the distance is a number of km above 0"),
    ({"filters": [{"kind": "capacity_left", "min": 0}]}, "rules[0].then.filters[0].min",
     "Rule 1 “Paris”, filter 1 (Has daily capacity left): the minimum is a whole number from 1"),
    ({"filters": "all"}, "rules[0].then.filters", "Rule 1 “Paris”: filters must be a list"),
    ({"sorts": [{"by": "distance"}, {"by": "priority"}, {"by": "distance"}]}, "rules[0].then.sorts[2]",
     "Rule 1 “Paris”, sort 3: Nearest to the destination is already a sort of this rule"),
    ({"sorts": [{"by": "weather"}]}, "rules[0].then.sorts[0]", "Rule 1 “Paris”, sort 1: unknown sort 'weather'"),
    ({"sorts": [{"by": {"x": 1}}]}, "rules[0].then.sorts[0]", "Rule 1 “Paris”, sort 1: unknown sort {'x': 1}"),
    ({"sorts": [{"by": "distance", "band": -5}]}, "rules[0].then.sorts[0].band",
     "Rule 1 “Paris”, sort 1 (Nearest to the destination): the band is a number, 0 for none"),
    ({"location_types": []}, "rules[0].then.location_types",
     "Rule 1 “Paris”: choose at least one location type to try"),
    ({"location_types": ["store", "depot"]}, "rules[0].then.location_types",
     "Rule 1 “Paris”: location types are warehouse, store, marketplace, each at most once"),
    ({"location_types": ["store", "store"]}, "rules[0].then.location_types",
     "Rule 1 “Paris”: location types are warehouse, store, marketplace, each at most once"),
    ({"split": {"max_shipments": 0}}, "rules[0].then.split.max_shipments",
     "Rule 1 “Paris”: at most 1 to 20 shipments"),
    ({"split": {"max_shipments": 21}}, "rules[0].then.split.max_shipments",
     "Rule 1 “Paris”: at most 1 to 20 shipments"),
    ({"split": {"max_shipments": 2.5}}, "rules[0].then.split.max_shipments",
     "Rule 1 “Paris”: at most 1 to 20 shipments"),
    ({"split": {"min_order_value": -1}}, "rules[0].then.split.min_order_value",
     "Rule 1 “Paris”: the order value to split above is a whole number of minor units"),
    ({"split": {"min_order_value": "100"}}, "rules[0].then.split.min_order_value",
     "Rule 1 “Paris”: the order value to split above is a whole number of minor units"),
    ({"split": {"never_split_line": "yes"}}, "rules[0].then.split.never_split_line",
     "Rule 1 “Paris”: never split a line is yes or no"),
    ({"split": [2]}, "rules[0].then.split", "Rule 1 “Paris”: split must be an object"),
    ({"fallback": ["hold", "split"]}, "rules[0].then.fallback",
     "Rule 1 “Paris”: the fallback ends with exactly one of next rule, backorder or hold"),
    ({"fallback": ["split", "hold", "backorder"]}, "rules[0].then.fallback",
     "Rule 1 “Paris”: the fallback ends with exactly one of next rule, backorder or hold"),
    ({"fallback": ["split", "split", "hold"]}, "rules[0].then.fallback",
     "Rule 1 “Paris”: the fallback ends with exactly one of next rule, backorder or hold"),
    ({"fallback": ["split"]}, "rules[0].then.fallback",
     "Rule 1 “Paris”: the fallback ends with exactly one of next rule, backorder or hold"),
    ({"fallback": ["retry", "hold"]}, "rules[0].then.fallback",
     "Rule 1 “Paris”: the fallback is a list of steps among split, ship_to_store, next_rule, backorder, hold"),
    ({"fallback": [["split"], "hold"]}, "rules[0].then.fallback",
     "Rule 1 “Paris”: the fallback is a list of steps among split, ship_to_store, next_rule, backorder, hold"),
    ({"fallback": []}, "rules[0].then.fallback",
     "Rule 1 “Paris”: the fallback is a list of steps among split, ship_to_store, next_rule, backorder, hold"),
])
def test_bad_effects(then: dict[str, Any], path: str, message: str) -> None:
    assert problems_of(rule("r1", "Paris", **then)) == [(path, message)]


def test_problems_name_the_rule_by_position_and_name() -> None:
    second = rule("r2", "Stores", split={"max_shipments": 0})
    assert problems_of(rule("r1", "Paris"), second) == [
        ("rules[1].then.split.max_shipments", "Rule 2 “Stores”: at most 1 to 20 shipments")]


def test_duplicate_rule_ids() -> None:
    assert problems_of(rule("same", "A"), rule("same", "B")) == [
        ("rules[1].id", "Rule 2 “B”: each rule needs its own id")]
    assert problems_of(rule("", "A")) == [("rules[0].id", "Rule 1 “A”: each rule needs its own id")]


def test_missing_name() -> None:
    nameless = rule("r1")
    del nameless["name"]
    assert problems_of(nameless) == [("rules[0].name", "Rule 1: give the rule a name of up to 100 characters")]
    assert problems_of(rule("r1", "   ")) == [
        ("rules[0].name", "Rule 1: give the rule a name of up to 100 characters")]
    assert problems_of(rule("r1", "x" * 101))[0][0] == "rules[0].name"


def test_condition_problems_name_the_rule_and_row() -> None:
    when = {"all": [{"field": "destination.country", "op": "eq", "value": "FR"},
                    {"field": "order.units", "op": "gte", "value": "5"}]}
    assert problems_of(rule("r1", "Paris"), rule("r2", "Big", when=when)) == [
        ("rules[1].when.all[1].value",
         "Rule 2 “Big”, condition row 2 (Number of units): the value needs a whole number, not '5'")]


def test_document_level_problems() -> None:
    assert [p.message for p in validate_document([])] == ["A routing document has a list of rules"]
    assert [p.message for p in validate_document({"rules": {}})] == ["A routing document has a list of rules"]
    assert problems_of(rule(), otherwise="split") == [
        ("otherwise", "When no rule applies, the order is held or backordered")]
    assert problems_of("a rule") == [("rules[0]", "Rule 1: a rule is an object with name, when and then")]
    enabled = rule()
    enabled["enabled"] = "yes"
    assert problems_of(enabled) == [("rules[0].enabled", "Rule 1 “Default”: enabled is true or false")]
    assert problems_of({"id": "r1", "name": "No effect"}) == [
        ("rules[0].then", "Rule 1 “No effect”: 'then' must say how to source the order")]
    too_many = {"rules": [new_rule(f"r{i}") for i in range(201)]}
    assert [p.message for p in validate_document(too_many)] == ["At most 200 rules"]


def test_every_problem_is_reported() -> None:
    bad = rule("r1", "Bad", filters=[{"kind": "nope"}], sorts=[{"by": "nope"}], fallback=["hold", "split"])
    assert [path for path, _ in problems_of(bad, rule("r1", ""))] == [
        "rules[0].then.filters[0]", "rules[0].then.sorts[0]", "rules[0].then.fallback", "rules[1].name",
        "rules[1].id"]


# --- the compiled cache --------------------------------------------------------------------------------

def test_compiled_cache() -> None:
    cache = CompiledCache(size=2)
    document = {"rules": [rule()], "otherwise": "hold"}
    first = cache.get(("tenant", 1), document)
    assert cache.get(("tenant", 1), document) is first
    assert (cache.hits, cache.misses) == (1, 1)
    cache.get(("tenant", 2), document)
    cache.get(("tenant", 1), document)  # 1 is now the most recently used
    cache.get(("tenant", 3), document)  # evicts 2
    assert (cache.hits, cache.misses) == (2, 3)
    assert list(cache.entries) == [("tenant", 1), ("tenant", 3)]
    cache.get(("tenant", 2), document)
    assert (cache.hits, cache.misses) == (2, 4)
    assert cache.get(("other tenant", 1), document) is not first
    decision = decide(cache.get(("tenant", 3), document), ORDER, StockSnapshot((loc("WH-PARIS"),)), MOMENT)
    assert decision.location_codes == ("WH-PARIS",)


def test_compiling_leaves_out_disabled_rules() -> None:
    off = rule("r2", "Off")
    off["enabled"] = False
    compiled = compile_document({"rules": [rule("r1", "On"), off, rule("r3", "Also on")]})
    assert [(r.name, r.index) for r in compiled.rules] == [("On", 0), ("Also on", 2)]
    assert compiled.otherwise == "hold"


# --- properties -----------------------------------------------------------------------------------------

SKUS = ("A", "B", "C", "D")
TAGS = ("north", "south", "outlet")
CODES = tuple(f"L{i}" for i in range(7))


# Every SKU with a count (0 included), or only some SKUs listed.
STOCK = st.one_of(st.fixed_dictionaries({sku: st.sampled_from([0, 1, 2, 3, 5, 9]) for sku in SKUS}),
                  st.dictionaries(st.sampled_from(SKUS), st.integers(0, 9)))


@st.composite
def location_sets(draw: st.DrawFn) -> list[LocationFacts]:
    count = draw(st.integers(1, len(CODES)))
    found = []
    for code in CODES[:count]:
        point = draw(st.none() | st.tuples(st.floats(42.0, 51.0), st.floats(-4.0, 8.0)))
        found.append(LocationFacts(
            code=code, kind=draw(st.sampled_from(LOCATION_TYPES)),
            available=draw(STOCK),
            latitude=point[0] if point else None, longitude=point[1] if point else None,
            priority=draw(st.integers(1, 4)), tags=frozenset(draw(st.sets(st.sampled_from(TAGS)))),
            ships=draw(st.booleans()), collects=draw(st.booleans()), receives_transfers=draw(st.booleans()),
            capacity_left=draw(st.sampled_from([None, None, None, 0, 1, 2, 10])),
            shipping_cost_minor=draw(st.none() | st.integers(0, 1000)),
        ))
    return found


@st.composite
def orders(draw: st.DrawFn) -> OrderFacts:
    wanted = draw(st.lists(st.tuples(st.sampled_from(SKUS), st.integers(1, 4)), min_size=1, max_size=6))
    pickup = draw(st.sampled_from([False, False, True]))
    point = draw(st.none() | st.tuples(st.floats(42.0, 51.0), st.floats(-4.0, 8.0)))
    return OrderFacts(
        lines=tuple(LineFacts(sku, qty, "shoes" if sku in "AB" else "hats", 1000) for sku, qty in wanted),
        total_minor=draw(st.integers(0, 40_000)), delivery_mode="pickup" if pickup else "ship",
        pickup_location=draw(st.sampled_from([*CODES, "GONE"])) if pickup else None,
        latitude=point[0] if point else None, longitude=point[1] if point else None,
        customer_tags=frozenset(draw(st.sets(st.sampled_from(("vip", "b2b"))))),
    )


FILTER_ITEMS = st.one_of(
    st.lists(st.sampled_from(CODES), min_size=1, max_size=4).map(
        lambda c: {"kind": "include_locations", "locations": c}),
    st.lists(st.sampled_from(CODES), min_size=1, max_size=3).map(
        lambda c: {"kind": "exclude_locations", "locations": c}),
    st.lists(st.sampled_from(TAGS), min_size=1, max_size=2).map(lambda t: {"kind": "include_tags", "tags": t}),
    st.lists(st.sampled_from(TAGS), min_size=1, max_size=2).map(lambda t: {"kind": "exclude_tags", "tags": t}),
    st.sampled_from([50, 300, 1500]).map(lambda km: {"kind": "within_distance", "km": km}),
    st.just({"kind": "has_every_line"}),
    st.integers(1, 5).map(lambda n: {"kind": "capacity_left", "min": n}),
    st.just({"kind": "offers_delivery_mode"}),
)
CONDITIONS = st.sampled_from([
    None,
    None,
    {"field": "order.total", "op": "gte", "value": 20_000},
    {"field": "order.delivery_mode", "op": "eq", "value": "pickup"},
    {"not": {"field": "line.sku", "op": "eq", "value": "A"}},
    {"any": [{"field": "customer.tags", "op": "has", "value": "vip"},
             {"field": "order.units", "op": "lt", "value": 5}]},
])


@st.composite
def rule_documents(draw: st.DrawFn) -> dict[str, Any]:
    rules = []
    for i in range(draw(st.integers(1, 3))):
        made = new_rule(f"r{i}", f"Rule {i}")
        made["when"] = draw(CONDITIONS)
        made["enabled"] = draw(st.sampled_from([True, True, True, False]))
        then = made["then"]
        then["location_types"] = draw(st.permutations(LOCATION_TYPES))[:draw(st.sampled_from([1, 2, 3, 3, 3]))]
        then["filters"] = draw(st.lists(FILTER_ITEMS, max_size=2))
        then["sorts"] = [{"by": by, "band": draw(st.sampled_from([0, 0, 1, 100]))}
                         for by in draw(st.lists(st.sampled_from(list(SORTS)), max_size=len(SORTS), unique=True))]
        then["split"] = {"max_shipments": draw(st.integers(1, 4)),
                         "min_order_value": draw(st.sampled_from([0, 0, 0, 10_000])),
                         "never_split_line": draw(st.booleans())}
        steps = draw(st.sampled_from([["split"], ["split"], ["ship_to_store", "split"], ["split", "ship_to_store"],
                                      ["ship_to_store"], []]))
        then["fallback"] = [*steps, draw(st.sampled_from(TERMINAL))]
        rules.append(made)
    return {"rules": rules, "otherwise": draw(st.sampled_from(OUTCOMES))}


@st.composite
def split_documents(draw: st.DrawFn) -> dict[str, Any]:
    """One rule that can use every location and splits when it must, so that splits are common."""
    made = new_rule("r0", "Rule 0")
    then = made["then"]
    then["location_types"] = list(draw(st.permutations(LOCATION_TYPES)))
    then["filters"] = draw(st.sampled_from([[], [], [{"kind": "capacity_left", "min": 2}],
                                            [{"kind": "offers_delivery_mode"}]]))
    then["sorts"] = [{"by": by, "band": 0}
                     for by in draw(st.lists(st.sampled_from(list(SORTS)), max_size=len(SORTS), unique=True))]
    then["split"] = {"max_shipments": draw(st.integers(1, 4)), "min_order_value": 0,
                     "never_split_line": draw(st.booleans())}
    then["fallback"] = ["split", draw(st.sampled_from(["backorder", "hold"]))]
    return {"rules": [made], "otherwise": "hold"}


def check_promises(locations: list[LocationFacts], order: OrderFacts, document: dict[str, Any]) -> Decision:
    assert validate_document(document) == []
    snapshot = StockSnapshot(tuple(locations))
    decision = decide(compile_document(document), order, snapshot, MOMENT)
    by_code = {location.code: location for location in locations}
    wanted = order.quantities()

    assert decision.outcome in ("fulfil", *OUTCOMES)
    assert (decision.outcome == "fulfil") == bool(decision.shipments)
    assigned: dict[tuple[str, str], int] = {}
    for shipment in decision.shipments:
        assert all(qty > 0 for qty in shipment.lines.values())
        for sku, qty in shipment.lines.items():
            assigned[shipment.location, sku] = assigned.get((shipment.location, sku), 0) + qty
    # (a) never more than a location has available (after safety stock)
    for (code, sku), qty in assigned.items():
        assert qty <= by_code[code].available.get(sku, 0), (code, sku)
    # (b) never more than ordered, and all of it when fulfilled
    per_sku: dict[str, int] = {}
    for (_, sku), qty in assigned.items():
        per_sku[sku] = per_sku.get(sku, 0) + qty
    assert all(qty <= wanted.get(sku, 0) for sku, qty in per_sku.items())
    if decision.outcome == "fulfil":
        assert per_sku == wanted
    # (c) a split stays within the rule's limit
    if len(decision.shipments) > 1:
        matched = next(r for r in document["rules"] if r["name"] == decision.rule)
        assert len(decision.shipments) <= matched["then"]["split"]["max_shipments"]
        assert order.total_minor >= matched["then"]["split"]["min_order_value"]
    # (d) a location with no capacity left ships nothing
    assert all(by_code[s.location].capacity_left != 0 for s in decision.shipments)
    # each location ships at most once, and a rule's fallback outcome is one of its own steps
    assert len(set(decision.location_codes)) == len(decision.shipments)
    if decision.rule is not None and decision.outcome != "fulfil":
        matched = next(r for r in document["rules"] if r["name"] == decision.rule)
        assert decision.outcome in matched["then"]["fallback"]
    # (e) deterministic: the same inputs give the same decision, and the order of the snapshot does not matter
    again = decide(compile_document(copy.deepcopy(document)), order, StockSnapshot(tuple(locations)), MOMENT)
    assert again.to_dict() == decision.to_dict()
    reversed_snapshot = StockSnapshot(tuple(reversed(locations)))
    shuffled = decide(compile_document(document), order, reversed_snapshot, MOMENT)
    assert shuffled.to_dict(with_trace=False) == decision.to_dict(with_trace=False)
    event(f"{decision.outcome} in {len(decision.shipments)} shipments")
    return decision


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(locations=location_sets(), order=orders(), document=rule_documents())
def test_decisions_keep_their_promises(locations: list[LocationFacts], order: OrderFacts,
                                       document: dict[str, Any]) -> None:
    check_promises(locations, order, document)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(locations=location_sets(), order=orders(), document=split_documents())
def test_splits_keep_their_promises(locations: list[LocationFacts], order: OrderFacts,
                                    document: dict[str, Any]) -> None:
    decision = check_promises(locations, order, document)
    target(float(len(decision.shipments)), label="shipments")  # steer the search towards splits
    if document["rules"][0]["then"]["split"]["never_split_line"]:
        # each SKU comes whole from one location
        for sku in order.quantities():
            assert sum(1 for s in decision.shipments if sku in s.lines) <= 1


@settings(max_examples=100, deadline=None)
@given(locations=location_sets(), order=orders())
def test_a_plain_rule_fulfils_whenever_one_usable_location_has_everything(locations: list[LocationFacts],
                                                                          order: OrderFacts) -> None:
    codes = {location.code for location in locations}
    assume(order.delivery_mode == "ship" or order.pickup_location in codes)
    plain = new_rule("r1", "Plain")
    plain["then"].update(filters=[], location_types=list(LOCATION_TYPES), fallback=["hold"])
    decision = route([plain], locations, order)
    wanted = order.quantities()
    usable = [location for location in locations if location.capacity_left != 0
              and all(location.available.get(sku, 0) >= qty for sku, qty in wanted.items())]
    if order.delivery_mode == "pickup":
        usable = [location for location in usable if location.code == order.pickup_location]
    assert (decision.outcome == "fulfil") == bool(usable)
    if usable:
        assert len(decision.shipments) == 1 and decision.shipments[0].location in {u.code for u in usable}


def test_filter_and_sort_vocabularies_are_all_exercised() -> None:
    """The examples above use every filter and sort; keep this list in step when adding one."""
    assert set(FILTERS) == {"include_locations", "exclude_locations", "include_tags", "exclude_tags",
                            "within_distance", "has_every_line", "capacity_left", "offers_delivery_mode"}
    assert set(SORTS) == {"distance", "stock", "priority", "shipping_cost", "capacity_headroom"}
