"""Segments' pure evaluator: every customer field and operator, relative dates counted back from
today (and "never ordered"), which fields each use may test, validation messages and explanations.
The SQL compiler is checked against this evaluator in tests/integration/test_segment_sql.py."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from rules.conditions import Context, compile_condition, validate
from rules.facts import LineFacts, Moment, OrderFacts
from rules.fields import FIELDS, MAX_DAYS, RELATIVE_DAYS, TYPE_OPERATORS, fields_for, registry
from rules.segments import CustomerFacts, compile_segment, explain_segment, validate_segment

TODAY = date(2026, 10, 1)

ANNA = CustomerFacts(
    id="c-1", tags=frozenset({"vip"}), orders_count=4, lifetime_value_minor=32_000,
    first_order_date=date(2025, 3, 2), last_order_date=date(2026, 8, 15), channels=frozenset({"store", "web"}),
    stores=frozenset({"PAR-1"}), categories=frozenset({"shoes", "hats"}), email_consent=True, sms_consent=False,
)
NEVER = CustomerFacts(id="c-2")  # signed up, never ordered


def leaf(field: str, op: str, value: Any) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


def member(node: dict[str, Any] | None, facts: CustomerFacts = ANNA, today: date = TODAY) -> bool:
    assert validate_segment(node) == [], validate_segment(node)
    return compile_segment(node)(facts, today)


LAST, FIRST = "customer.last_order_date", "customer.first_order_date"
CASES = [
    ("customer.orders_count", "eq", 4, True), ("customer.orders_count", "ne", 4, False),
    ("customer.orders_count", "lt", 5, True), ("customer.orders_count", "lte", 3, False),
    ("customer.orders_count", "gt", 3, True), ("customer.orders_count", "gte", 5, False),
    ("customer.orders_count", "between", [2, 4], True), ("customer.orders_count", "between", [5, 9], False),
    ("customer.lifetime_value", "gte", 30_000, True), ("customer.lifetime_value", "lt", 32_000, False),
    ("customer.lifetime_value", "between", [32_000, 32_000], True), ("customer.lifetime_value", "eq", 32_000, True),
    ("customer.lifetime_value", "ne", 1, True), ("customer.lifetime_value", "lte", 31_999, False),
    ("customer.lifetime_value", "gt", 31_999, True),
    (LAST, "eq", "2026-08-15", True), (LAST, "ne", "2026-08-15", False),
    (LAST, "before", "2026-08-16", True), (LAST, "before", "2026-08-15", False),
    (LAST, "after", "2026-08-14", True), (LAST, "after", "2026-08-15", False),
    (LAST, "on_or_before", "2026-08-15", True), (LAST, "on_or_after", "2026-08-16", False),
    (LAST, "between", ["2026-08-01", "2026-08-31"], True),
    # 1 October back to 15 August is 47 days: the last 47 days include it, the last 46 don't.
    (LAST, "in_last_days", 47, True), (LAST, "in_last_days", 46, False),
    (LAST, "not_in_last_days", 46, True), (LAST, "not_in_last_days", 47, False),
    (FIRST, "in_last_days", 365, False), (FIRST, "not_in_last_days", 365, True), (FIRST, "before", "2025-04-01", True),
    ("customer.channels", "has", "store", True), ("customer.channels", "has", "marketplace", False),
    ("customer.channels", "has_any", ["api", "web"], True), ("customer.channels", "has_all", ["web", "api"], False),
    ("customer.channels", "has_none", ["web"], False), ("customer.channels", "has_none", ["api", "phone"], True),
    ("customer.stores", "has", "PAR-1", True), ("customer.stores", "has_any", ["LYO-1"], False),
    ("customer.categories", "has_all", ["shoes", "hats"], True), ("customer.categories", "has", "bags", False),
    ("customer.tags", "has", "vip", True), ("customer.tags", "has_none", ["vip"], False),
    ("customer.email_consent", "eq", "yes", True), ("customer.email_consent", "ne", "yes", False),
    ("customer.sms_consent", "eq", "no", True), ("customer.sms_consent", "in", ["yes"], False),
    ("customer.sms_consent", "not_in", ["yes"], True), ("customer.email_consent", "not_in", ["yes", "no"], False),
]


@pytest.mark.parametrize(("field", "op", "value", "expected"), CASES, ids=[f"{f}-{o}-{v}" for f, o, v, _ in CASES])
def test_operator(field: str, op: str, value: Any, expected: bool) -> None:
    assert member(leaf(field, op, value)) is expected


def test_the_cases_cover_every_operator_of_every_segment_field() -> None:
    covered = {(f, op) for f, op, _, _ in CASES}
    types_covered = {(FIELDS[f].type, op) for f, op, _, _ in CASES}
    for key, f in fields_for("segments").items():
        for op in f.operators:
            assert (key, op) in covered or (op not in RELATIVE_DAYS and (f.type, op) in types_covered), (key, op)


def test_a_customer_who_never_ordered() -> None:
    """No dates: "not in the last N days" holds, every other date test fails, and a negation of
    one flips it (as the SQL must)."""
    for field in ("customer.last_order_date", "customer.first_order_date"):
        assert member(leaf(field, "not_in_last_days", 0), NEVER)
        assert not member(leaf(field, "in_last_days", MAX_DAYS), NEVER)
        for op, value in (("eq", "2026-10-01"), ("before", "2030-01-01"), ("after", "1990-01-01"),
                          ("on_or_before", "2030-01-01"), ("on_or_after", "1990-01-01"),
                          ("between", ["1990-01-01", "2030-01-01"])):
            assert not member(leaf(field, op, value), NEVER)
            assert member({"not": leaf(field, op, value)}, NEVER)
        assert member(leaf(field, "ne", "2026-10-01"), NEVER)
    assert member(leaf("customer.channels", "has_none", ["web"]), NEVER)
    assert not member(leaf("customer.channels", "has_any", ["web", "store"]), NEVER)
    assert member(leaf("customer.email_consent", "eq", "no"), NEVER)
    assert member(leaf("customer.orders_count", "eq", 0), NEVER)


def test_relative_days_count_back_from_today() -> None:
    ordered_today = CustomerFacts(last_order_date=TODAY)
    assert member(leaf("customer.last_order_date", "in_last_days", 0), ordered_today)
    assert not member(leaf("customer.last_order_date", "in_last_days", 0), ordered_today, date(2026, 10, 2))
    assert member(leaf("customer.last_order_date", "in_last_days", 1), ordered_today, date(2026, 10, 2))
    assert member(leaf("customer.last_order_date", "in_last_days", MAX_DAYS), CustomerFacts(last_order_date=date.min),
                  date(50, 1, 1))  # counting back past the first date there is: every date


def test_the_issues_segment() -> None:
    """Ordered in store in the last 90 days, never online."""
    segment = {"all": [leaf("customer.channels", "has", "store"), leaf("customer.last_order_date", "in_last_days", 90),
                       leaf("customer.channels", "has_none", ["web"])]}
    store_only = CustomerFacts(channels=frozenset({"store"}), last_order_date=date(2026, 9, 1))
    assert member(segment, store_only)
    assert not member(segment, ANNA)  # also bought online
    assert not member(segment, CustomerFacts(channels=frozenset({"store"}), last_order_date=date(2026, 6, 1)))
    assert not member(segment, NEVER)


def test_no_condition_is_every_customer() -> None:
    assert validate_segment(None) == []
    assert compile_segment(None)(NEVER, TODAY)
    assert explain_segment(None, NEVER, TODAY) == ["no conditions: every customer is in it"]


# --- which fields each use may test ------------------------------------------------------------

def test_segments_refuse_order_and_time_fields() -> None:
    problems = validate_segment({"all": [leaf("customer.orders_count", "gte", 1), leaf("order.total", "gte", 5000),
                                         {"any": [leaf("now.date", "after", "2026-01-01"), leaf("x.y", "eq", 1)]}]})
    assert [(p.path, p.message) for p in problems] == [
        ("condition.all[1].field",
         "row 2 (Order total): unknown field 'order.total': it is not a customer field segments can use"),
        ("condition.all[2].any[0].field",
         "row 3.1 (Date): unknown field 'now.date': it is not a customer field segments can use"),
        ("condition.all[2].any[1].field", "row 3.2: unknown field 'x.y'"),
    ]


def test_routing_refuses_segment_fields_and_keeps_its_own() -> None:
    problems = validate({"all": [leaf("customer.tags", "has", "vip"), leaf("customer.lifetime_value", "gte", 1)]})
    assert [(p.path, p.message) for p in problems] == [
        ("when.all[1].field", "row 2 (Lifetime value): unknown field 'customer.lifetime_value': it is not a field "
                              "routing rules can use")]
    assert validate(leaf("customer.lifetime_value", "gte", 1), use="promotions")[0].message.endswith(
        "it is not a field promotions can use")
    assert validate(leaf("customer.orders_count", "gte", 1), use="promotions") == []
    with pytest.raises(ValueError, match="unknown use"):
        validate(leaf("order.total", "gte", 1), use="billing")


def test_relative_days_are_only_for_customers_dates() -> None:
    assert FIELDS["now.date"].operators == TYPE_OPERATORS["date"]
    problem = validate(leaf("now.date", "in_last_days", 7))[0]
    assert problem.path == "when.op" and "does not fit a date field" in problem.message
    assert set(RELATIVE_DAYS) <= set(FIELDS["customer.last_order_date"].operators)


@pytest.mark.parametrize(("node", "fragment"), [
    (leaf("customer.last_order_date", "in_last_days", -1), "needs a number of days from 0 (today) to 36500, not -1"),
    (leaf("customer.last_order_date", "in_last_days", MAX_DAYS + 1), "to 36500, not 36501"),
    (leaf("customer.last_order_date", "not_in_last_days", "90"), "needs a number of days, not '90'"),
    (leaf("customer.first_order_date", "in_last_days", True), "needs a number of days, not True"),
    (leaf("customer.last_order_date", "before", 90), "needs a date as YYYY-MM-DD"),
    (leaf("customer.channels", "has", "fax"), "'fax' is not one of the channels"),
    (leaf("customer.channels", "has_any", ["web", "fax"]), "'fax' is not one of the channels"),
    (leaf("customer.email_consent", "eq", "maybe"), "'maybe' is not one of the consent"),
    (leaf("customer.email_consent", "eq", True), "needs a text value, not True"),
    (leaf("customer.lifetime_value", "gte", 10.5), "needs an amount"),
    (leaf("customer.tags", "has_all", []), "needs at least one value"),
])
def test_bad_segment_values(node: dict[str, Any], fragment: str) -> None:
    problems = validate_segment({"all": [leaf("customer.orders_count", "gte", 1), node]})
    assert len(problems) == 1 and problems[0].path == "condition.all[1].value"
    assert problems[0].message.startswith(f"row 2 ({FIELDS[node['field']].label}): the value ")
    assert fragment in problems[0].message


def test_open_lists_take_any_store_or_category() -> None:
    assert validate_segment(leaf("customer.stores", "has_any", ["ANY-STORE", "x"])) == []
    assert validate_segment(leaf("customer.categories", "has", "whatever")) == []


def test_registry_by_use() -> None:
    routing = registry()
    assert [f["key"] for f in routing] == [key for key, f in FIELDS.items() if "routing" in f.uses]
    assert "customer.lifetime_value" not in {f["key"] for f in routing}
    by_key = {f["key"]: f for f in registry("segments")}
    assert set(by_key) == {"customer.tags", "customer.orders_count", "customer.lifetime_value",
                           "customer.last_order_date", "customer.first_order_date", "customer.channels",
                           "customer.stores", "customer.categories", "customer.email_consent", "customer.sms_consent"}
    ops = {o["op"]: o for o in by_key["customer.last_order_date"]["operators"]}  # type: ignore[attr-defined]
    assert ops["in_last_days"] == {"op": "in_last_days", "label": "is in the last … days", "arity": "one",
                                   "value_type": "integer"}
    assert ops["before"]["value_type"] == "date"
    assert by_key["customer.email_consent"]["choices"] == [{"value": "yes", "label": "Yes"},
                                                          {"value": "no", "label": "No"}]
    assert by_key["customer.channels"]["widget"] == "tags:channels"
    assert by_key["customer.stores"]["widget"] == "tags:locations" and by_key["customer.stores"]["choices"] is None
    assert by_key["customer.tags"]["widget"] == "tags"
    assert len(registry(None)) == len(FIELDS)


# --- routing and promotions still read the order --------------------------------------------------

def test_order_contexts_read_customer_fields_from_the_order() -> None:
    order = OrderFacts(lines=(LineFacts("A", 1),), customer_tags=frozenset({"vip"}), customer_orders_count=2)
    moment = Moment(datetime(2026, 10, 1, 10, tzinfo=UTC), "Europe/Paris")
    assert compile_condition(leaf("customer.orders_count", "eq", 2))(Context(order, moment))
    assert compile_condition(leaf("customer.tags", "has", "vip"))(Context(order, moment))
    # With a customer's facts, the record wins (a segment tested while pricing an order).
    assert compile_condition(leaf("customer.orders_count", "eq", 4))(Context(order, moment, ANNA))


# --- explanations ------------------------------------------------------------------------------

def test_explain_says_why() -> None:
    segment = {"all": [leaf("customer.lifetime_value", "gte", 10_000),
                       leaf("customer.last_order_date", "not_in_last_days", 30),
                       leaf("customer.channels", "has", "web")]}
    assert explain_segment(segment, ANNA, TODAY) == [
        "Lifetime value is at least 100.00 EUR: yes (it is 320.00 EUR)",
        "Last order date is not in the last 30 days: yes (it is 2026-08-15)",
        "Channels ordered from has web: yes (it is [store, web])",
    ]
    assert explain_segment(segment, NEVER, TODAY) == ["Lifetime value is at least 100.00 EUR: no (it is 0.00 EUR)"]
    assert explain_segment(leaf("customer.last_order_date", "in_last_days", 7), NEVER, TODAY) == [
        "Last order date is in the last 7 days: no (it is never)"]
    assert explain_segment(leaf("customer.email_consent", "eq", "yes"), NEVER, TODAY) == [
        "Email consent is yes: no (it is no)"]
