"""The condition language: JSON trees of ``all`` / ``any`` / ``not`` over registry fields.

A leaf is ``{"field": "order.total", "op": "gte", "value": 5000}``. ``validate`` reports every
problem with the node it sits on; ``compile_condition`` turns a valid tree into a plain
function of the facts, and ``explain`` says, leaf by leaf, why it held or not.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from core import money
from core.limits import INT32_MAX, MONEY_MAX
from rules.facts import LineFacts, Moment, OrderFacts
from rules.fields import FIELDS, MAX_DAYS, OPERATORS, RELATIVE_DAYS, USES, Field, allowed_values

if TYPE_CHECKING:
    from rules.segments import CustomerFacts

MAX_LIST = 1000
MAX_DEPTH = 8  # groups inside groups: deeper than any person builds, and safe to recurse through
MAX_NODES = 500  # groups and conditions in one rule's tree
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a document: ``path`` locates the node, ``message`` says it in words."""

    path: str
    message: str


class Context:
    """An order and the moment it is judged at; for segments, a customer and today's date
    (in the company's time zone), which relative dates count back from."""

    __slots__ = ("customer", "moment", "order", "today")

    def __init__(self, order: OrderFacts, moment: Moment, customer: CustomerFacts | None = None,
                 today: date | None = None) -> None:
        self.order = order
        self.moment = moment
        self.customer = customer
        self.today: date = moment.date if today is None else today


Test = Callable[[Context], bool]

_ORDER_GETTERS: dict[str, Callable[[Context], Any]] = {
    "order.channel": lambda c: c.order.channel,
    "order.total": lambda c: c.order.total_minor,
    "order.currency": lambda c: c.order.currency,
    "order.delivery_mode": lambda c: c.order.delivery_mode,
    "order.lines_count": lambda c: len(c.order.lines),
    "order.units": lambda c: c.order.units,
    "order.pickup_location": lambda c: c.order.pickup_location,
    "destination.country": lambda c: c.order.country,
    "destination.postcode": lambda c: c.order.postcode,
    # A customer's own record when there is one (segments), else what the order says of them.
    "customer.tags": lambda c: c.order.customer_tags if c.customer is None else c.customer.tags,
    "customer.orders_count": lambda c: c.order.customer_orders_count if c.customer is None
    else c.customer.orders_count,
    "customer.lifetime_value": lambda c: None if c.customer is None else c.customer.lifetime_value_minor,
    "customer.last_order_date": lambda c: None if c.customer is None else c.customer.last_order_date,
    "customer.first_order_date": lambda c: None if c.customer is None else c.customer.first_order_date,
    "customer.channels": lambda c: None if c.customer is None else c.customer.channels,
    "customer.stores": lambda c: None if c.customer is None else c.customer.stores,
    "customer.categories": lambda c: None if c.customer is None else c.customer.categories,
    "customer.email_consent": lambda c: None if c.customer is None else _yes_no(c.customer.email_consent),
    "customer.sms_consent": lambda c: None if c.customer is None else _yes_no(c.customer.sms_consent),
    "now.date": lambda c: c.moment.date,
    "now.weekday": lambda c: c.moment.weekday,
    "now.time": lambda c: c.moment.time,
}
_LINE_GETTERS: dict[str, Callable[[LineFacts], Any]] = {
    "line.sku": lambda line: line.sku,
    "line.category": lambda line: line.category,
    "line.quantity": lambda line: line.quantity,
}
# On line fields a negative operator means "no line matches the positive one".
_NEGATIONS = {"ne": "eq", "not_in": "in"}


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def days_before(today: date, days: int) -> date:
    """The first day of "the last ``days`` days" (0: today); the earliest date when that is before it."""
    try:
        return today - timedelta(days=days)
    except OverflowError:
        return date.min


def _relative_test(get: Callable[[Context], Any], op: str, days: int) -> Test:
    """In the last ``days`` days: on or after ``days_before(today, days)``; not in them: before
    it, or no date at all. One is exactly the other's negation."""
    if op == "in_last_days":
        return lambda c: (value := get(c)) is not None and value >= days_before(c.today, days)
    return lambda c: (value := get(c)) is None or value < days_before(c.today, days)


def _predicate(op: str, value: Any) -> Callable[[Any], bool]:
    """The test of one operator against a parsed value; None never matches (except negations)."""
    if op == "eq":
        return lambda v: v == value
    if op == "ne":
        return lambda v: v != value
    if op in ("in", "has_any"):
        values = frozenset(value)
        if op == "in":
            return lambda v: v in values
        return lambda v: v is not None and not values.isdisjoint(v)
    if op == "not_in":
        values = frozenset(value)
        return lambda v: v not in values
    if op == "starts_with":
        return lambda v: v is not None and str(v).startswith(value)
    if op == "contains":
        needle = value.casefold()
        return lambda v: v is not None and needle in str(v).casefold()
    if op in ("lt", "before"):
        return lambda v: v is not None and v < value
    if op == "lte" or op == "on_or_before":
        return lambda v: v is not None and v <= value
    if op in ("gt", "after"):
        return lambda v: v is not None and v > value
    if op == "gte" or op == "on_or_after":
        return lambda v: v is not None and v >= value
    if op == "between":
        low, high = value
        return lambda v: v is not None and low <= v <= high
    if op == "has":
        return lambda v: v is not None and value in v
    if op == "has_all":
        values = frozenset(value)
        return lambda v: v is not None and values <= v
    if op == "has_none":
        values = frozenset(value)
        return lambda v: v is None or values.isdisjoint(v)
    raise ValueError(op)


def _leaf_test(field: Field, op: str, value: Any) -> Test:
    if field.key in _ORDER_GETTERS:
        get = _ORDER_GETTERS[field.key]
        if op in RELATIVE_DAYS:
            return _relative_test(get, op, value)
        predicate = _predicate(op, value)
        return lambda c: predicate(get(c))
    get_line = _LINE_GETTERS[field.key]
    if op in _NEGATIONS:
        positive = _predicate(_NEGATIONS[op], value)
        return lambda c: not any(positive(get_line(line)) for line in c.order.lines)
    predicate = _predicate(op, value)
    return lambda c: any(predicate(get_line(line)) for line in c.order.lines)


# --- validation ---------------------------------------------------------------------------

def _parse_scalar(field: Field, raw: Any) -> Any:
    """The value as the evaluator compares it, or raise ValueError with the reason."""
    kind = field.type
    if kind in ("integer", "money"):
        if isinstance(raw, bool) or not isinstance(raw, int):
            if kind == "money":
                raise ValueError(f"needs an amount, not {raw!r}: write it like 49,90 or 49.90 "
                                 "(through the API, in minor units: 4990)")
            raise ValueError(f"needs a whole number, not {raw!r}")
        bound = MONEY_MAX if kind == "money" else INT32_MAX  # what the columns it is compared with hold
        if not -bound <= raw <= bound:
            raise ValueError(f"is too large: at most {bound:,} in either direction")
        return raw
    if kind == "date":
        if isinstance(raw, str) and len(raw) == 10:
            try:
                return date.fromisoformat(raw)
            except ValueError:
                pass
        raise ValueError(f"needs a date as YYYY-MM-DD, not {raw!r}")
    if kind == "time":
        if not isinstance(raw, str) or not _TIME.match(raw):
            raise ValueError(f"needs a time of day as HH:MM, not {raw!r}")
        return raw
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError(f"needs a text value, not {raw!r}")
    if len(raw) > 200:
        raise ValueError("is longer than 200 characters")
    if kind in ("choice", "tags") and field.choices:
        allowed = allowed_values(field.choices)
        if allowed is not None and raw not in allowed:
            raise ValueError(f"{raw!r} is not one of the {field.choices.replace('_', ' ')}")
    return raw


def _parse_days(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ValueError(f"needs a number of days, not {raw!r}")
    if not 0 <= raw <= MAX_DAYS:
        raise ValueError(f"needs a number of days from 0 (today) to {MAX_DAYS}, not {raw}")
    return raw


def parse_value(field: Field, op: str, raw: Any) -> Any:
    if op in RELATIVE_DAYS:
        return _parse_days(raw)
    arity = OPERATORS[op][1]
    if arity == "one":
        return _parse_scalar(field, raw)
    if not isinstance(raw, list):
        raise ValueError("needs a list of values" if arity == "list" else "needs two values: from and to")
    if arity == "range":
        if len(raw) != 2:
            raise ValueError("needs two values: from and to")
        low, high = (_parse_scalar(field, v) for v in raw)
        if low > high:
            raise ValueError("starts after it ends: give the lower value first")
        return (low, high)
    if not raw:
        raise ValueError("needs at least one value")
    if len(raw) > MAX_LIST:
        raise ValueError(f"has more than {MAX_LIST} values")
    return tuple(_parse_scalar(field, v) for v in raw)


def _describe(row: str, node: Any) -> str:
    if isinstance(node, dict) and isinstance(node.get("field"), str) and node["field"] in FIELDS:
        return f"row {row} ({FIELDS[node['field']].label})"
    return f"row {row}"


_USE_WORDS = {"routing": "a field routing rules can use", "promotions": "a field promotions can use",
              "segments": "a customer field segments can use"}


def validate(node: Any, path: str = "when", row: str = "", use: str = "routing") -> list[Problem]:
    """Every problem in a condition tree. ``row`` numbers nodes as the builder shows them
    ("2.1" is the first row inside the second); ``use`` says whose fields the tree may test
    (``rules.fields.USES``)."""
    if use not in USES:
        raise ValueError(f"unknown use {use!r}")
    # The whole tree (no row yet): its size first, without recursing into it.
    if not row and (problem := _too_big(node, path)):
        return [problem]
    if not isinstance(node, dict):
        return [Problem(path, f"{_describe(row or '1', node)}: a condition is an object with all, any, not "
                              f"or field")]
    groups = [key for key in ("all", "any", "not") if key in node]
    if groups:
        key = groups[0]
        extra = set(node) - {key}
        if len(groups) > 1 or extra:
            return [Problem(path, f"{_describe(row or 'group', node)}: a group has only one key ({key}), "
                                  f"found {sorted(node)}")]
        if key == "not":
            return validate(node["not"], f"{path}.not", row, use)
        children = node[key]
        if not isinstance(children, list) or not children:
            where = f"group {row}" if row else "the top group"
            return [Problem(path, f"{where} ({key}) is empty: add a condition or remove the group")]
        problems: list[Problem] = []
        for i, child in enumerate(children):
            problems += validate(child, f"{path}.{key}[{i}]", f"{row}.{i + 1}" if row else str(i + 1), use)
        return problems
    where = _describe(row or "1", node)
    name = node.get("field")
    if not isinstance(name, str) or name not in FIELDS:
        return [Problem(f"{path}.field", f"{where}: unknown field {name!r}")]
    if use not in FIELDS[name].uses:
        return [Problem(f"{path}.field", f"{where}: unknown field {name!r}: it is not {_USE_WORDS[use]}")]
    unknown = set(node) - {"field", "op", "value"}
    if unknown:
        return [Problem(path, f"{where}: unexpected keys {sorted(unknown)}")]
    field = FIELDS[name]
    op = node.get("op")
    if op not in field.operators:
        allowed = ", ".join(f"{o} ({OPERATORS[o][0]})" for o in field.operators)
        return [Problem(f"{path}.op", f"{where}: operator {op!r} does not fit a {field.type} field; use {allowed}")]
    if "value" not in node:
        return [Problem(f"{path}.value", f"{where}: needs a value")]
    try:
        parse_value(field, op, node["value"])
    except ValueError as error:
        return [Problem(f"{path}.value", f"{where}: the value {error}")]
    return []


def _too_big(root: Any, path: str) -> Problem | None:
    stack, nodes = [(root, 1)], 0
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            return Problem(path, f"Conditions are nested more than {MAX_DEPTH} levels deep: simplify the groups")
        if nodes > MAX_NODES:
            return Problem(path, f"More than {MAX_NODES} conditions and groups in one rule: split it")
        if isinstance(node, dict):
            for key in ("all", "any"):
                if isinstance(node.get(key), list):
                    stack += [(child, depth + 1) for child in node[key]]
            if "not" in node:
                stack.append((node["not"], depth + 1))
    return None


# --- compilation and explanation ------------------------------------------------------------

def compile_condition(node: dict[str, Any] | None) -> Test:
    """A valid tree as a function of the facts; ``None`` (no conditions) is always true."""
    if node is None:
        return lambda c: True
    if "all" in node:
        tests = tuple(compile_condition(child) for child in node["all"])
        if len(tests) == 1:
            return tests[0]

        def all_of(c: Context) -> bool:
            for test in tests:  # noqa: SIM110 (a plain loop is faster than all() over a generator)
                if not test(c):
                    return False
            return True
        return all_of
    if "any" in node:
        tests = tuple(compile_condition(child) for child in node["any"])

        def any_of(c: Context) -> bool:
            for test in tests:  # noqa: SIM110 (a plain loop is faster than any() over a generator)
                if test(c):
                    return True
            return False
        return any_of
    if "not" in node:
        inner = compile_condition(node["not"])
        return lambda c: not inner(c)
    field = FIELDS[node["field"]]
    return _leaf_test(field, node["op"], parse_value(field, node["op"], node["value"]))


def _show(value: Any, currency: str | None = None) -> str:
    """A value as people read it; amounts in major units when the currency is known."""
    if isinstance(value, tuple | list | frozenset | set):
        # Numbers in numeric order (by str, a range [5, 10] read "[10, 5]"); None sorts before the rest.
        ordered = sorted(value, key=lambda v: (v is not None, type(v).__name__, v if v is not None else 0))
        return "[" + ", ".join(_show(v, currency) for v in ordered) + "]"
    if currency and isinstance(value, int) and not isinstance(value, bool):
        return f"{money.major(value, currency)} {currency}"
    return str(value)


def describe(node: dict[str, Any], currency: str | None = None) -> str:
    """A leaf in words: "Order total is at least 50.00 EUR" (minor units without a currency),
    "Last order date is in the last 90 days"."""
    field = FIELDS[node["field"]]
    if node["op"] in RELATIVE_DAYS:
        return f"{field.label} {OPERATORS[node['op']][0].replace('…', str(node['value']))}"
    shown = currency if field.type == "money" else None
    return f"{field.label} {OPERATORS[node['op']][0]} {_show(node['value'], shown)}"


def _currency(c: Context) -> str:
    return c.order.currency if c.customer is None else c.customer.currency


def _actual(node: dict[str, Any], c: Context) -> str:
    field = FIELDS[node["field"]]
    currency = _currency(c) if field.type == "money" else None
    if node["field"] in _ORDER_GETTERS:
        value = _ORDER_GETTERS[node["field"]](c)
        return "never" if value is None and field.type == "date" else _show(value, currency)
    get_line = _LINE_GETTERS[node["field"]]
    return _show([get_line(line) for line in c.order.lines])


def explain(node: dict[str, Any] | None, c: Context) -> list[str]:
    """Why the tree holds or not for these facts, one line per leaf that decided it."""
    if node is None:
        return ["no conditions: applies to every order"]
    if "all" in node or "any" in node:
        key = "all" if "all" in node else "any"
        lines: list[str] = []
        for child in node[key]:
            held = compile_condition(child)(c)
            lines += explain(child, c)
            if held != (key == "all"):
                break
        return lines
    if "not" in node:
        return [f"not ({line})" for line in explain(node["not"], c)]
    held = compile_condition(node)(c)
    return [f"{describe(node, _currency(c))}: {'yes' if held else 'no'} (it is {_actual(node, c)})"]
