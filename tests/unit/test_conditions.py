"""The condition language: every operator of every field type, line and time semantics,
nesting, validation messages and explanations. Pure: no database is touched."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from rules.conditions import Context, Problem, compile_condition, explain, validate
from rules.facts import LineFacts, Moment, OrderFacts
from rules.fields import FIELDS, TYPE_OPERATORS

# Thursday 1 October 2026, 12:00 in Paris (UTC+2).
NOON_PARIS = datetime(2026, 10, 1, 10, 0, tzinfo=UTC)

ORDER = OrderFacts(
    lines=(LineFacts("SKU-1", 2, "shoes", 4000), LineFacts("SKU-2", 1, "hats", 4500)),
    reference="R-1", channel="web", currency="EUR", total_minor=12_500, delivery_mode="ship",
    country="FR", postcode="75011", customer_tags=frozenset({"vip", "b2b"}), customer_orders_count=3,
)


def holds(node: dict[str, Any] | None, order: OrderFacts = ORDER, at: datetime = NOON_PARIS,
          timezone: str = "Europe/Paris") -> bool:
    if node is not None:
        assert validate(node) == [], validate(node)
    return compile_condition(node)(Context(order, Moment(at, timezone)))


def leaf(field: str, op: str, value: Any) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


# --- every operator of every type ---------------------------------------------------------------

CASES = [
    # text: destination.postcode is "75011"
    ("destination.postcode", "eq", "75011", True),
    ("destination.postcode", "eq", "75012", False),
    ("destination.postcode", "ne", "75012", True),
    ("destination.postcode", "ne", "75011", False),
    ("destination.postcode", "in", ["69001", "75011"], True),
    ("destination.postcode", "in", ["69001", "13001"], False),
    ("destination.postcode", "not_in", ["69001"], True),
    ("destination.postcode", "not_in", ["69001", "75011"], False),
    ("destination.postcode", "starts_with", "75", True),
    ("destination.postcode", "starts_with", "69", False),
    ("destination.postcode", "contains", "501", True),
    ("destination.postcode", "contains", "999", False),
    # choice: channel "web", country "FR", delivery mode "ship", currency "EUR"
    ("order.channel", "eq", "web", True),
    ("order.channel", "eq", "store", False),
    ("order.channel", "ne", "store", True),
    ("order.channel", "ne", "web", False),
    ("order.channel", "in", ["store", "web"], True),
    ("order.channel", "in", ["store", "phone"], False),
    ("order.channel", "not_in", ["store", "phone"], True),
    ("order.channel", "not_in", ["web"], False),
    ("destination.country", "eq", "FR", True),
    ("destination.country", "in", ["DE", "BE"], False),
    ("order.delivery_mode", "eq", "ship", True),
    ("order.currency", "ne", "EUR", False),
    # integer: 2 lines, 3 units, 3 previous orders
    ("order.lines_count", "eq", 2, True),
    ("order.lines_count", "eq", 3, False),
    ("order.lines_count", "ne", 3, True),
    ("order.lines_count", "ne", 2, False),
    ("order.units", "lt", 4, True),
    ("order.units", "lt", 3, False),
    ("order.units", "lte", 3, True),
    ("order.units", "lte", 2, False),
    ("order.units", "gt", 2, True),
    ("order.units", "gt", 3, False),
    ("order.units", "gte", 3, True),
    ("order.units", "gte", 4, False),
    ("customer.orders_count", "between", [3, 10], True),
    ("customer.orders_count", "between", [0, 3], True),
    ("customer.orders_count", "between", [4, 10], False),
    # money: total 12,500 cents
    ("order.total", "eq", 12_500, True),
    ("order.total", "eq", 12_501, False),
    ("order.total", "ne", 12_501, True),
    ("order.total", "ne", 12_500, False),
    ("order.total", "lt", 12_501, True),
    ("order.total", "lt", 12_500, False),
    ("order.total", "lte", 12_500, True),
    ("order.total", "lte", 12_499, False),
    ("order.total", "gt", 12_499, True),
    ("order.total", "gt", 12_500, False),
    ("order.total", "gte", 12_500, True),
    ("order.total", "gte", 12_501, False),
    ("order.total", "between", [10_000, 12_500], True),
    ("order.total", "between", [12_501, 20_000], False),
    # date: 2026-10-01 in Paris
    ("now.date", "eq", "2026-10-01", True),
    ("now.date", "eq", "2026-10-02", False),
    ("now.date", "ne", "2026-10-02", True),
    ("now.date", "ne", "2026-10-01", False),
    ("now.date", "before", "2026-10-02", True),
    ("now.date", "before", "2026-10-01", False),
    ("now.date", "after", "2026-09-30", True),
    ("now.date", "after", "2026-10-01", False),
    ("now.date", "on_or_before", "2026-10-01", True),
    ("now.date", "on_or_before", "2026-09-30", False),
    ("now.date", "on_or_after", "2026-10-01", True),
    ("now.date", "on_or_after", "2026-10-02", False),
    ("now.date", "between", ["2026-09-28", "2026-10-01"], True),
    ("now.date", "between", ["2026-10-02", "2026-10-31"], False),
    # time: 12:00 in Paris
    ("now.time", "before", "12:01", True),
    ("now.time", "before", "12:00", False),
    ("now.time", "after", "11:59", True),
    ("now.time", "after", "12:00", False),
    ("now.time", "between", ["09:00", "12:00"], True),
    ("now.time", "between", ["12:01", "18:00"], False),
    ("now.weekday", "eq", "thu", True),
    ("now.weekday", "in", ["sat", "sun"], False),
    # tags: {"vip", "b2b"}
    ("customer.tags", "has", "vip", True),
    ("customer.tags", "has", "new", False),
    ("customer.tags", "has_any", ["new", "vip"], True),
    ("customer.tags", "has_any", ["new", "staff"], False),
    ("customer.tags", "has_all", ["vip", "b2b"], True),
    ("customer.tags", "has_all", ["vip", "new"], False),
    ("customer.tags", "has_none", ["new", "staff"], True),
    ("customer.tags", "has_none", ["new", "b2b"], False),
]


@pytest.mark.parametrize(("field", "op", "value", "expected"), CASES,
                         ids=[f"{f}-{o}-{v}" for f, o, v, _ in CASES])
def test_operator(field: str, op: str, value: Any, expected: bool) -> None:
    assert holds(leaf(field, op, value)) is expected


def test_the_cases_cover_every_operator_of_every_type() -> None:
    covered = {(FIELDS[f].type, op) for f, op, _, _ in CASES}
    wanted = {(kind, op) for kind, ops in TYPE_OPERATORS.items() for op in ops}
    assert wanted - covered == set()


def test_contains_ignores_case() -> None:
    assert holds(leaf("line.sku", "contains", "sku-2"))
    assert holds(leaf("destination.postcode", "contains", "501"), OrderFacts(lines=(), postcode="75011"))


def test_a_missing_value_matches_only_negative_operators() -> None:
    bare = OrderFacts(lines=(LineFacts("SKU-1", 1),))  # no country, postcode or pickup store
    assert not holds(leaf("destination.country", "eq", "FR"), bare)
    assert not holds(leaf("destination.country", "in", ["FR", "DE"]), bare)
    assert not holds(leaf("destination.postcode", "starts_with", "75"), bare)
    assert not holds(leaf("destination.postcode", "contains", "75"), bare)
    assert not holds(leaf("order.pickup_location", "eq", "ST-1"), bare)
    assert holds(leaf("destination.country", "ne", "FR"), bare)
    assert holds(leaf("destination.country", "not_in", ["FR"]), bare)
    assert holds(leaf("customer.tags", "has_none", ["vip"]), bare)
    assert not holds(leaf("customer.tags", "has_any", ["vip"]), bare)


# --- line.* fields -------------------------------------------------------------------------------

@pytest.mark.parametrize(("node", "expected"), [
    (leaf("line.category", "eq", "hats"), True),  # the second line
    (leaf("line.category", "eq", "bags"), False),
    (leaf("line.category", "in", ["bags", "shoes"]), True),
    (leaf("line.sku", "starts_with", "SKU-"), True),
    (leaf("line.sku", "eq", "SKU-3"), False),
    (leaf("line.quantity", "gte", 2), True),  # the first line
    (leaf("line.quantity", "gt", 2), False),
    (leaf("line.quantity", "lt", 2), True),  # the second line
    (leaf("line.quantity", "between", [3, 9]), False),
    # Negative operators mean "no line matches", not "some line does not match":
    (leaf("line.category", "ne", "shoes"), False),
    (leaf("line.category", "ne", "bags"), True),
    (leaf("line.category", "not_in", ["bags", "hats"]), False),
    (leaf("line.category", "not_in", ["bags", "toys"]), True),
    (leaf("line.quantity", "ne", 1), False),
    (leaf("line.quantity", "ne", 5), True),
    (leaf("line.sku", "not_in", ["SKU-9"]), True),
])
def test_line_fields(node: dict[str, Any], expected: bool) -> None:
    assert holds(node) is expected


def test_line_fields_on_lines_without_a_category() -> None:
    order = OrderFacts(lines=(LineFacts("SKU-1", 1), LineFacts("SKU-2", 1, "hats")))
    assert holds(leaf("line.category", "eq", "hats"), order)
    assert not holds(leaf("line.category", "ne", "hats"), order)
    assert holds(leaf("line.category", "ne", "shoes"), order)


# --- now.* in the tenant's time zone ---------------------------------------------------------------

def test_now_fields_are_local_to_the_tenant() -> None:
    late = datetime(2026, 9, 30, 23, 30, tzinfo=UTC)  # 01:30 on Thursday 1 October in Paris
    assert holds(leaf("now.date", "eq", "2026-10-01"), at=late)
    assert holds(leaf("now.weekday", "eq", "thu"), at=late)
    assert holds(leaf("now.time", "between", ["01:00", "02:00"]), at=late)
    assert holds(leaf("now.date", "eq", "2026-09-30"), at=late, timezone="UTC")
    assert holds(leaf("now.weekday", "eq", "wed"), at=late, timezone="UTC")
    assert holds(leaf("now.time", "after", "23:00"), at=late, timezone="UTC")
    assert not holds(leaf("now.date", "eq", "2026-10-01"), at=late, timezone="America/New_York")


def test_moment_in_winter_time() -> None:
    moment = Moment(datetime(2026, 12, 31, 23, 5, tzinfo=UTC), "Europe/Paris")
    assert (moment.date.isoformat(), moment.weekday, moment.time) == ("2027-01-01", "fri", "00:05")


# --- nesting -------------------------------------------------------------------------------------

YES = leaf("order.total", "gte", 10_000)
NO = leaf("destination.country", "eq", "DE")


@pytest.mark.parametrize(("node", "expected"), [
    ({"all": [YES, YES]}, True),
    ({"all": [YES, NO]}, False),
    ({"all": [YES]}, True),
    ({"all": [NO]}, False),
    ({"any": [NO, YES]}, True),
    ({"any": [NO, NO]}, False),
    ({"any": [NO]}, False),
    ({"not": YES}, False),
    ({"not": NO}, True),
    ({"not": {"not": YES}}, True),
    ({"all": [YES, {"any": [NO, {"not": NO}]}]}, True),
    ({"all": [YES, {"any": [NO, {"not": YES}]}]}, False),
    ({"any": [{"all": [YES, NO]}, {"all": [YES, {"not": NO}]}]}, True),
    ({"not": {"any": [NO, {"all": [YES, NO]}]}}, True),
], ids=str)
def test_groups(node: dict[str, Any], expected: bool) -> None:
    assert holds(node) is expected


def test_no_condition_holds_for_every_order() -> None:
    assert holds(None)
    assert holds(None, OrderFacts(lines=()))


# --- validation ----------------------------------------------------------------------------------

def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, problems
    return problems[0]


def test_a_valid_tree_has_no_problems() -> None:
    assert validate({"all": [YES, {"any": [NO, {"not": leaf("customer.tags", "has", "vip")}]}]}) == []


def test_unknown_field() -> None:
    problem = only(validate({"all": [YES, leaf("order.colour", "eq", "red")]}))
    assert problem.path == "when.all[1].field"
    assert problem.message == "row 2: unknown field 'order.colour'"


def test_a_field_that_is_not_a_string_is_unknown() -> None:
    problem = only(validate({"all": [YES, {"field": ["order.total"], "op": "eq", "value": 1}]}))
    assert problem.path == "when.all[1].field"
    assert "unknown field ['order.total']" in problem.message


def test_operator_not_fitting_the_type_names_the_row_and_field() -> None:
    problem = only(validate({"all": [YES, {"any": [leaf("order.total", "contains", "5")]}]}))
    assert problem.path == "when.all[1].any[0].op"
    assert problem.message.startswith("row 2.1 (Order total): operator 'contains' does not fit a money field; use ")
    assert "gte (is at least)" in problem.message and "between (is between)" in problem.message


@pytest.mark.parametrize(("field", "op"), [
    ("customer.tags", "eq"), ("now.time", "eq"), ("order.channel", "lt"), ("destination.postcode", "has"),
    ("now.date", "gt"), ("order.units", "before"), ("order.total", None),
])
def test_operators_are_limited_to_their_type(field: str, op: str | None) -> None:
    problem = only(validate({"field": field, "op": op, "value": "x"}))
    assert problem.path == "when.op"
    assert f"does not fit a {FIELDS[field].type} field" in problem.message


@pytest.mark.parametrize(("node", "fragment"), [
    (leaf("order.total", "gte", "50.00"), "not '50.00'"),
    (leaf("order.total", "gte", 50.5), "not 50.5"),
    (leaf("order.total", "between", [0, "100"]), "not '100'"),
    (leaf("order.units", "gte", "2"), "the value needs a whole number, not '2'"),
    (leaf("order.units", "gte", True), "the value needs a whole number, not True"),
    (leaf("order.channel", "eq", "fax"), "the value 'fax' is not one of the channels"),
    (leaf("destination.country", "eq", "XX"), "the value 'XX' is not one of the countries"),
    (leaf("order.currency", "in", ["EUR", "EURO"]), "the value 'EURO' is not one of the currencies"),
    (leaf("destination.postcode", "eq", 75011), "the value needs a text value, not 75011"),
    (leaf("destination.postcode", "eq", "   "), "the value needs a text value"),
    (leaf("line.sku", "eq", "x" * 201), "the value is longer than 200 characters"),
    (leaf("order.channel", "in", "web"), "the value needs a list of values"),
    (leaf("order.channel", "in", []), "the value needs at least one value"),
    (leaf("line.sku", "in", ["a"] * 1001), "the value has more than 1000 values"),
    (leaf("customer.tags", "has_all", "vip"), "the value needs a list of values"),
    (leaf("now.date", "eq", "2026-13-01"), "the value needs a date as YYYY-MM-DD, not '2026-13-01'"),
    (leaf("now.date", "eq", "01/10/2026"), "the value needs a date as YYYY-MM-DD"),
    (leaf("now.date", "eq", "20261001"), "the value needs a date as YYYY-MM-DD"),
    (leaf("now.time", "after", "24:00"), "the value needs a time of day as HH:MM, not '24:00'"),
    (leaf("now.time", "after", "9:30"), "the value needs a time of day as HH:MM"),
    (leaf("now.time", "between", ["09:00", "9:60"]), "the value needs a time of day as HH:MM"),
    (leaf("order.total", "between", [5000, 1000]), "the value starts after it ends: give the lower value first"),
    (leaf("now.date", "between", ["2026-12-01", "2026-11-01"]), "the value starts after it ends"),
    (leaf("now.time", "between", ["18:00", "09:00"]), "the value starts after it ends"),
    (leaf("order.total", "between", [1000]), "the value needs two values: from and to"),
    (leaf("order.total", "between", 1000), "the value needs two values: from and to"),
])
def test_bad_values(node: dict[str, Any], fragment: str) -> None:
    problem = only(validate({"all": [YES, node]}))
    assert problem.path == "when.all[1].value"
    label = FIELDS[node["field"]].label
    assert problem.message.startswith(f"row 2 ({label}): ")
    assert fragment in problem.message


def test_a_money_value_is_in_minor_units() -> None:
    problem = only(validate(leaf("order.total", "gte", 49.9)))
    assert problem.path == "when.value"
    assert problem.message.startswith("row 1 (Order total): the value needs ")
    assert "minor units" in problem.message


def test_a_leaf_needs_a_value_and_no_other_keys() -> None:
    problem = only(validate({"field": "order.total", "op": "gte"}))
    assert (problem.path, problem.message) == ("when.value", "row 1 (Order total): needs a value")
    problem = only(validate({**YES, "note": "x"}))
    assert (problem.path, problem.message) == ("when", "row 1 (Order total): unexpected keys ['note']")


def test_empty_groups() -> None:
    problem = only(validate({"all": []}))
    assert (problem.path, problem.message) == (
        "when", "the top group (all) is empty: add a condition or remove the group")
    problem = only(validate({"all": [YES, {"any": []}]}))
    assert (problem.path, problem.message) == (
        "when.all[1]", "group 2 (any) is empty: add a condition or remove the group")
    problem = only(validate({"any": [YES, {"all": [NO, {"all": "nothing"}]}]}))
    assert problem.path == "when.any[1].all[1]"
    assert problem.message.startswith("group 2.2 (all) is empty")


def test_malformed_nodes() -> None:
    problem = only(validate({"all": [YES], "any": [NO]}))
    assert "a group has only one key" in problem.message
    problem = only(validate({"all": [YES, "order.total > 5"]}))
    assert problem.path == "when.all[1]"
    assert problem.message == "row 2: a condition is an object with all, any, not or field"


def test_not_keeps_the_row_and_extends_the_path() -> None:
    problem = only(validate({"all": [YES, {"not": leaf("order.units", "gte", "x")}]}))
    assert problem.path == "when.all[1].not.value"
    assert problem.message == "row 2 (Number of units): the value needs a whole number, not 'x'"


def test_every_problem_is_reported() -> None:
    problems = validate({"all": [leaf("order.total", "gte", "x"), {"any": [leaf("nope", "eq", 1), NO]},
                                 {"any": []}]}, path="rules[3].when")
    assert [p.path for p in problems] == ["rules[3].when.all[0].value", "rules[3].when.all[1].any[0].field",
                                          "rules[3].when.all[2]"]
    assert [p.message.split(":")[0] for p in problems] == [
        "row 1 (Order total)", "row 2.1", "group 3 (any) is empty"]


# --- explanations --------------------------------------------------------------------------------

def why(node: dict[str, Any] | None, order: OrderFacts = ORDER) -> list[str]:
    return explain(node, Context(order, Moment(NOON_PARIS, "Europe/Paris")))


def test_explain_a_leaf() -> None:
    assert why(YES) == ["Order total is at least 100.00 EUR: yes (it is 125.00 EUR)"]
    assert why(NO) == ["Destination country is DE: no (it is FR)"]


def test_explain_stops_at_the_leaf_that_decided() -> None:
    channel = leaf("order.channel", "in", ["web", "store"])
    assert why({"all": [YES, NO, channel]}) == [
        "Order total is at least 100.00 EUR: yes (it is 125.00 EUR)",
        "Destination country is DE: no (it is FR)",
    ]
    assert why({"any": [NO, channel, YES]}) == [
        "Destination country is DE: no (it is FR)",
        "Channel is one of [store, web]: yes (it is web)",
    ]
    assert why({"all": [YES, channel]}) == [
        "Order total is at least 100.00 EUR: yes (it is 125.00 EUR)",
        "Channel is one of [store, web]: yes (it is web)",
    ]


def test_explain_not_lines_and_tags() -> None:
    assert why({"not": NO}) == ["not (Destination country is DE: no (it is FR))"]
    assert why(leaf("line.category", "ne", "shoes")) == ["Line category is not shoes: no (it is [hats, shoes])"]
    assert why(leaf("customer.tags", "has_all", ["vip", "new"])) == [
        "Customer tags has all of [new, vip]: no (it is [b2b, vip])"]
    assert why(leaf("now.time", "between", ["09:00", "17:30"])) == [
        "Time of day is between [09:00, 17:30]: yes (it is 12:00)"]


def test_explain_ranges_low_to_high() -> None:
    assert why(leaf("order.units", "between", [2, 10])) == ["Number of units is between [2, 10]: yes (it is 3)"]
    assert why(leaf("order.total", "between", [5000, 20_000])) == [
        "Order total is between [50.00 EUR, 200.00 EUR]: yes (it is 125.00 EUR)"]
    order = OrderFacts(lines=(LineFacts("SKU-1", 12), LineFacts("SKU-2", 9)))
    assert why(leaf("line.quantity", "gt", 10), order) == ["Line quantity is more than 10: yes (it is [9, 12])"]


def test_explain_nested_groups() -> None:
    node = {"all": [YES, {"any": [NO, {"not": leaf("customer.tags", "has", "vip")}]}]}
    assert why(node) == [
        "Order total is at least 100.00 EUR: yes (it is 125.00 EUR)",
        "Destination country is DE: no (it is FR)",
        "not (Customer tags has vip: yes (it is [b2b, vip]))",
    ]


def test_explain_without_conditions() -> None:
    assert why(None) == ["no conditions: applies to every order"]
