"""Promotions: the document, its validation, and the cart pricing evaluator.

A document is a list of promotions, each "when <condition>, for these channels, this segment,
with a code or not: <effect>", plus how one promotion is chosen within a class. Its kind gives
each effect a class: line (off matching lines, buy X get Y), order (off the order, tiered
thresholds) or shipping (free shipping).

``price`` is pure: a compiled document, a cart, the moment, and what the service read of coupon
codes and limits (``CouponState``, ``Allowance``) give a ``Pricing`` with a ``Verdict`` for every
promotion, applied or not, in words a merchandiser reads. It consumes nothing; the service does.

Stacking: an eligible exclusive promotion applies alone (the best one for the customer, or the
first by priority with ``within_class="priority"``). Otherwise classes apply in order line →
order → shipping, one promotion per class, chosen by priority (lowest number, then the list's
order) or as the largest discount; a class's choice applies only when it and every promotion
already applied list each other's class in ``combines_with``. One that does not combine falls
through to the next of its class ("not_combinable"); the rest of the class is "outranked".

A ``lines`` condition (line fields only) chooses the lines an effect discounts; on an order
target or tiered thresholds, the lines whose net makes the eligible subtotal (all when empty).

Amounts are integer minor units and never exceed what they discount. Rounding is down (floor):
a line-class percent is floored per line, an order-class percent once on the eligible subtotal,
then apportioned to lines by their net (largest remainder, ``core.money.apportion``). Line-class
promotions discount each line's net after the channel's own discount; order-class ones the net
after line-class promotions; free shipping the shipping fee.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from operator import add
from types import MappingProxyType
from typing import Any

from core import money
from core.limits import INT32_MAX, MONEY_MAX
from rules import cache
from rules.conditions import (
    _LINE_GETTERS,
    _ORDER_GETTERS,
    Context,
    Problem,
    Test,
    _actual,
    compile_condition,
    describe,
    validate,
)
from rules.facts import LineFacts, Moment, OrderFacts
from rules.fields import CHANNELS, FIELDS

CLASSES = ("line", "order", "shipping")
CLASS_NAMES = {"line": "a line promotion", "order": "an order promotion", "shipping": "a shipping promotion"}
EFFECT_KINDS: dict[str, str] = {
    "percent_off": "Percent off",
    "fixed_off": "Amount off",
    "free_shipping": "Free shipping",
    "buy_x_get_y": "Buy X get Y",
    "tiered": "Tiered spend thresholds",
}
WITHIN_CLASS = {"priority": "By priority (lowest number first)", "best": "The best discount for the customer"}
TARGETS = ("order", "lines")
COUPON_PROBLEMS = {
    "unknown": "does not exist",
    "expired": "has expired",
    "not_started": "is not valid yet",
    "exhausted": "has been used the most times allowed",
    "disabled": "is disabled",
    "customer_limit": "was already used by this customer",
}
REASONS = ("applied", "disabled", "condition_false", "channel", "segment", "needs_code", "code_problem",
           "limit_reached", "customer_limit_reached", "budget_spent", "exclusive", "not_combinable", "outranked",
           "nothing_to_discount")
MAX_PROMOTIONS = 200
MAX_TIERS = 20
MAX_PER_ORDER = 1000  # buy X get Y applications in one order
MAX_SET = 1000  # units in one buy or get set
MAX_PRIORITY = 1_000_000
DEFAULT_PRIORITY = 100

_PROMOTION_KEYS = frozenset({"id", "name", "enabled", "priority", "exclusive", "combines_with", "when", "channels",
                             "segment", "coupon", "effect", "limits"})
_EFFECT_KEYS = {
    "percent_off": frozenset({"kind", "target", "percent", "lines"}),
    "fixed_off": frozenset({"kind", "target", "amount_minor", "lines"}),
    "free_shipping": frozenset({"kind"}),
    "buy_x_get_y": frozenset({"kind", "buy", "get", "max_per_order"}),
    "tiered": frozenset({"kind", "tiers", "lines"}),  # lines: which lines make the eligible subtotal
}
_LIMIT_KEYS = ("total_uses", "per_customer", "budget_minor")
_NOT_MET = "Its conditions are not met"
# Bounds of what a compiled version keeps between prices (the cache holds hundreds of versions).
_SAID_MAX = 64  # verdicts per promotion, and explanation lines per condition
_LINES_MEMO_MAX = 2048  # cart lines and which `lines` conditions they match


def empty_document() -> dict[str, Any]:
    return {"promotions": [], "within_class": "priority"}


def new_promotion(promotion_id: str, name: str = "New promotion") -> dict[str, Any]:
    """A promotion as the builder starts it: 10 % off every order, stacking with nothing."""
    return {
        "id": promotion_id, "name": name, "enabled": True, "priority": DEFAULT_PRIORITY, "exclusive": False,
        "combines_with": [], "when": None, "channels": [], "segment": None, "coupon": False,
        "effect": {"kind": "percent_off", "target": "order", "percent": 10, "lines": None},
        "limits": {"total_uses": None, "per_customer": None, "budget_minor": None},
    }


def promotion_class(promotion: dict[str, Any]) -> str:
    """line, order or shipping, from the effect's kind (and target)."""
    effect = promotion.get("effect") or {}
    kind = effect.get("kind")
    if kind == "free_shipping":
        return "shipping"
    if kind == "tiered" or (kind in ("percent_off", "fixed_off") and effect.get("target") == "order"):
        return "order"
    return "line"


def coupon_message(state: CouponState) -> str:
    """A code's problem in words: "Code SAVE15 has expired"; "" for a usable code."""
    if state.problem is None:
        return ""
    return f"Code {state.code} {COUPON_PROBLEMS.get(state.problem, state.problem)}"


# --- validation -----------------------------------------------------------------------------

def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _leaves(node: Any, path: str, row: str = "", negated: bool = False,
            ) -> Iterator[tuple[dict[str, Any], str, str, bool]]:
    """The leaves of a valid tree with their path and row as ``conditions.validate`` numbers them."""
    if not isinstance(node, dict):
        return
    for key in ("all", "any"):
        if key in node:
            for i, child in enumerate(node[key]):
                yield from _leaves(child, f"{path}.{key}[{i}]", f"{row}.{i + 1}" if row else str(i + 1), negated)
            return
    if "not" in node:
        yield from _leaves(node["not"], f"{path}.not", row, not negated)
        return
    yield node, path, row or "1", negated


def _condition(node: Any, path: str, where: str) -> list[Problem]:
    return [Problem(p.path, f"{where}, condition {p.message}") for p in validate(node, path, use="promotions")]


def _lines_condition(node: Any, path: str, where: str, what: str, skus: Collection[str] | None,
                     categories: Collection[str] | None) -> list[Problem]:
    """A condition choosing lines: valid, on line fields only, naming only what the catalog has."""
    if node is None:
        return []
    problems = [Problem(p.path, f"{where}, {what}: {p.message}") for p in validate(node, path, use="promotions")]
    if problems:
        return problems
    for leaf, at, row, negated in _leaves(node, path):
        field = FIELDS[leaf["field"]]
        described = f"{where}, {what}: row {row} ({field.label})"
        if not field.key.startswith("line."):
            problems.append(Problem(f"{at}.field", f"{described}: lines are chosen with line fields "
                                                   "(SKU, category, quantity)"))
            continue
        known = skus if field.key == "line.sku" else categories if field.key == "line.category" else None
        if known is None or negated or leaf["op"] not in ("eq", "in"):
            continue
        values = [leaf["value"]] if leaf["op"] == "eq" else leaf["value"]
        missing = [str(v) for v in values if v not in known]
        if missing:
            one, many = ("SKU", "SKUs") if field.key == "line.sku" else ("category", "categories")
            absent = f"{one} {missing[0]} is" if len(missing) == 1 else f"{many} {', '.join(missing)} are"
            problems.append(Problem(f"{at}.value", f"{described}: {absent} not in the catalog, "
                                                   "so this can never apply"))
    return problems


def _percent(value: Any, path: str, where: str) -> list[Problem]:
    if _is_int(value, 1, 100):
        return []
    return [Problem(path, f"{where}: the percent off is a whole number from 1 to 100, not {value!r}")]


def _amount(value: Any, path: str, where: str) -> list[Problem]:
    if _is_int(value, 1, MONEY_MAX):
        return []
    return [Problem(path, f"{where}: the amount off is more than zero, in minor units, not {value!r}")]


def _validate_effect(effect: Any, path: str, where: str, skus: Collection[str] | None,
                     categories: Collection[str] | None) -> list[Problem]:
    kind = effect.get("kind") if isinstance(effect, dict) else None
    if not isinstance(kind, str) or kind not in EFFECT_KINDS:
        return [Problem(path, f"{where}: the effect is one of {', '.join(k.lower() for k in EFFECT_KINDS.values())}")]
    assert isinstance(effect, dict)
    unknown = set(effect) - _EFFECT_KEYS[kind]
    if unknown:
        return [Problem(path, f"{where}: unexpected keys {sorted(unknown)} in a {EFFECT_KINDS[kind].lower()} effect")]
    problems: list[Problem] = []
    if kind in ("percent_off", "fixed_off"):
        if effect.get("target") not in TARGETS:
            problems.append(Problem(f"{path}.target", f"{where}: the discount is off the order or off the "
                                                      "matching lines"))
        if kind == "percent_off":
            problems += _percent(effect.get("percent"), f"{path}.percent", where)
        else:
            problems += _amount(effect.get("amount_minor"), f"{path}.amount_minor", where)
        problems += _lines_condition(effect.get("lines"), f"{path}.lines", where, "lines to discount", skus,
                                     categories)
    elif kind == "buy_x_get_y":
        for part, what in (("buy", "lines to buy"), ("get", "lines to get")):
            item, at = effect.get(part), f"{path}.{part}"
            allowed = {"lines", "quantity"} | ({"percent"} if part == "get" else set())
            if not isinstance(item, dict) or set(item) - allowed:
                problems.append(Problem(at, f"{where}: {what} are an object with {', '.join(sorted(allowed))}"))
                continue
            if not _is_int(item.get("quantity"), 1, MAX_SET):
                problems.append(Problem(f"{at}.quantity", f"{where}: the units to {part} are a whole number "
                                                          f"from 1 to {MAX_SET}"))
            if part == "get":
                problems += _percent(item.get("percent"), f"{at}.percent", where)
            problems += _lines_condition(item.get("lines"), f"{at}.lines", where, what, skus, categories)
        if not _is_int(effect.get("max_per_order", 1), 1, MAX_PER_ORDER):
            problems.append(Problem(f"{path}.max_per_order", f"{where}: at most 1 to {MAX_PER_ORDER} times "
                                                             "per order"))
    elif kind == "tiered":
        problems += _validate_tiers(effect.get("tiers"), f"{path}.tiers", where)
        problems += _lines_condition(effect.get("lines"), f"{path}.lines", where, "lines that count", skus,
                                     categories)
    return problems


def _validate_tiers(tiers: Any, path: str, where: str) -> list[Problem]:
    if not isinstance(tiers, list) or not tiers or len(tiers) > MAX_TIERS:
        return [Problem(path, f"{where}: give 1 to {MAX_TIERS} tiers, each a minimum spend and its discount")]
    problems: list[Problem] = []
    minimums: set[int] = set()
    for k, tier in enumerate(tiers):
        at, row = f"{path}[{k}]", f"{where}, tier {k + 1}"
        if not isinstance(tier, dict) or set(tier) not in ({"min_minor", "percent"}, {"min_minor", "amount_minor"}):
            problems.append(Problem(at, f"{row}: a tier is a minimum spend with a percent or an amount off"))
            continue
        minimum = tier["min_minor"]
        if not _is_int(minimum, 0, MONEY_MAX):
            problems.append(Problem(f"{at}.min_minor", f"{row}: the minimum spend is an amount in minor units, "
                                                       "zero or more"))
        elif minimum in minimums:
            problems.append(Problem(f"{at}.min_minor", f"{row}: another tier has the same minimum spend"))
        else:
            minimums.add(minimum)
        if "percent" in tier:
            problems += _percent(tier["percent"], f"{at}.percent", row)
        else:
            problems += _amount(tier["amount_minor"], f"{at}.amount_minor", row)
    return problems


def _validate_limits(limits: Any, path: str, where: str) -> list[Problem]:
    if limits is None:
        return []
    if not isinstance(limits, dict) or set(limits) - set(_LIMIT_KEYS):
        return [Problem(path, f"{where}: limits are total uses, uses per customer and a budget")]
    problems: list[Problem] = []
    for key, label, high in (("total_uses", "the total number of uses", INT32_MAX),
                             ("per_customer", "the uses per customer", INT32_MAX),
                             ("budget_minor", "the budget", MONEY_MAX)):
        value = limits.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            message = f"{label} is a whole number, or empty for no limit"
        elif value < 0:
            message = f"{label} cannot be below zero"
        elif value == 0:
            message = f"{label} is zero, so it would never apply: leave it empty for no limit, or disable it"
        elif value > high:
            message = f"{label} is more than the platform stores ({high})"
        else:
            continue
        problems.append(Problem(f"{path}.{key}", f"{where}: {message}"))
    return problems


def _listed(value: Any, allowed: Collection[str], path: str, where: str, what: str) -> list[Problem]:
    if isinstance(value, list) and all(isinstance(v, str) and v in allowed for v in value) \
            and len(set(value)) == len(value):
        return []
    return [Problem(path, f"{where}: {what} are among {', '.join(allowed)}, each at most once")]


def _validate_promotion(promotion: Any, i: int, ids: dict[str, int], segments: Mapping[str, str] | None,
                        skus: Collection[str] | None, categories: Collection[str] | None) -> list[Problem]:
    path = f"promotions[{i}]"
    if not isinstance(promotion, dict):
        return [Problem(path, f"Promotion {i + 1}: a promotion is an object with a name, conditions and an effect")]
    name = promotion.get("name")
    where = f"Promotion {i + 1} ({name.strip()})" if isinstance(name, str) and name.strip() else f"Promotion {i + 1}"
    problems: list[Problem] = []
    unknown = set(promotion) - _PROMOTION_KEYS
    if unknown:
        problems.append(Problem(path, f"{where}: unexpected keys {sorted(unknown)}"))
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        problems.append(Problem(f"{path}.name", f"{where}: give the promotion a name of up to 100 characters"))
    promotion_id = promotion.get("id")
    if not isinstance(promotion_id, str) or not promotion_id.strip() or len(promotion_id) > 64:
        problems.append(Problem(f"{path}.id", f"{where}: each promotion needs its own id (up to 64 characters)"))
    elif promotion_id in ids:
        problems.append(Problem(f"{path}.id", f"{where}: the id {promotion_id!r} is already promotion "
                                              f"{ids[promotion_id] + 1}'s"))
    else:
        ids[promotion_id] = i
    for key, label in (("enabled", "enabled"), ("exclusive", "exclusive"), ("coupon", "needs a code")):
        if not isinstance(promotion.get(key, key == "enabled"), bool):
            problems.append(Problem(f"{path}.{key}", f"{where}: {label} is yes or no"))
    if not _is_int(promotion.get("priority", DEFAULT_PRIORITY), 0, MAX_PRIORITY):
        problems.append(Problem(f"{path}.priority", f"{where}: the priority is a whole number from 0 to "
                                                    f"{MAX_PRIORITY} (lower applies first)"))
    problems += _listed(promotion.get("combines_with", []), CLASSES, f"{path}.combines_with", where,
                        "the classes it combines with")
    problems += _listed(promotion.get("channels", []), CHANNELS, f"{path}.channels", where, "channels")
    segment = promotion.get("segment")
    if segment is not None and (not isinstance(segment, str) or not segment.strip()):
        problems.append(Problem(f"{path}.segment", f"{where}: the segment is a segment's id, or empty for everyone"))
    elif segment is not None and segments is not None and segment not in segments:
        problems.append(Problem(f"{path}.segment", f"{where}: segment {segment} does not exist (was it deleted?)"))
    if promotion.get("when") is not None:
        problems += _condition(promotion["when"], f"{path}.when", where)
    problems += _validate_effect(promotion.get("effect"), f"{path}.effect", where, skus, categories)
    problems += _validate_limits(promotion.get("limits"), f"{path}.limits", where)
    return problems


def validate_document(document: Any, *, segments: Mapping[str, str] | None = None,
                      skus: Collection[str] | None = None, categories: Collection[str] | None = None,
                      ) -> list[Problem]:
    """Every problem in a promotions document, each at its path, naming its promotion by number and
    name. ``segments`` (id → name), ``skus`` and ``categories``, when given, are what exists: a
    promotion naming anything else is refused, since it could never apply."""
    if not isinstance(document, dict) or not isinstance(document.get("promotions"), list):
        return [Problem("promotions", "A promotions document has a list of promotions")]
    problems: list[Problem] = []
    unknown = set(document) - {"promotions", "within_class"}
    if unknown:
        problems.append(Problem("document", f"Unexpected keys {sorted(unknown)}"))
    if document.get("within_class", "priority") not in WITHIN_CLASS:
        problems.append(Problem("within_class", "Within a class, one promotion applies: the first by priority, "
                                                "or the best for the customer"))
    promotions = document["promotions"]
    if len(promotions) > MAX_PROMOTIONS:
        problems.append(Problem("promotions", f"At most {MAX_PROMOTIONS} promotions"))
    ids: dict[str, int] = {}
    for i, promotion in enumerate(promotions):
        problems += _validate_promotion(promotion, i, ids, segments, skus, categories)
    return problems


# --- what the evaluator takes and gives -----------------------------------------------------

@dataclass(frozen=True, slots=True)
class Cart:
    facts: OrderFacts
    line_discounts: tuple[int, ...] = ()  # the channel's own discount per line (net = unit price * quantity - this)
    shipping_fee_minor: int = 0
    coupon_codes: tuple[str, ...] = ()  # normalised upper case
    customer_id: str | None = None
    segments: frozenset[str] = frozenset()  # ids of the segments the customer is in


@dataclass(frozen=True, slots=True)
class CouponState:
    """A code as the service found it. ``problem`` None: usable; else a key of COUPON_PROBLEMS."""

    code: str
    promotion_id: str | None
    problem: str | None = None
    coupon_id: str | None = None


@dataclass(frozen=True, slots=True)
class Allowance:
    """What is left of a promotion's limits; None = no limit."""

    uses_left: int | None = None
    customer_uses_left: int | None = None
    budget_left_minor: int | None = None


@dataclass(frozen=True, slots=True)
class Applied:
    promotion_id: str
    name: str
    klass: str
    amount_minor: int
    line_amounts: tuple[int, ...]  # per cart line; zeros for the shipping class
    shipping_minor: int
    coupon_code: str | None = None
    coupon_id: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    promotion_id: str
    name: str
    applied: bool
    reason: str  # one of REASONS
    message: str
    details: tuple[str, ...] = ()  # rules.conditions.explain lines, for condition_false


@dataclass(frozen=True, slots=True)
class Pricing:
    line_discounts: tuple[int, ...]  # per line: promotions' line-class + order-class share
    line_class_discounts: tuple[int, ...]  # per line: line-class only
    order_discount_minor: int
    shipping_discount_minor: int
    total_discount_minor: int
    applied: tuple[Applied, ...]
    trace: tuple[Verdict, ...]
    coupons: tuple[CouponState, ...]


# --- compiled form --------------------------------------------------------------------------

class _Why:
    """``conditions.explain`` of one tree, made fast: its groups' tests compiled once, and each
    explanation kept by the values the tree read (a cart's channel, tags or day are met again and
    again), so that most carts cost one look-up. It reads the values with the condition language's
    own (private) getters and words them with its ``describe`` and ``_actual``; a unit test holds
    its lines equal to ``explain``'s."""

    __slots__ = ("reads", "root", "said", "verdict_of")

    def __init__(self, node: dict[str, Any], verdict_of: Callable[[tuple[str, ...]], Verdict]) -> None:
        self.reads: list[Callable[[Context], Any]] = []
        self.root = self._build(node)
        self.verdict_of = verdict_of
        self.said: dict[tuple[Any, ...], Verdict] = {}

    def _build(self, node: dict[str, Any]) -> tuple[Any, ...]:
        for key in ("all", "any"):
            if key in node:
                return (key, tuple((compile_condition(child), self._build(child)) for child in node[key]))
        if "not" in node:
            return ("not", self._build(node["not"]))
        field = node["field"]
        get = _ORDER_GETTERS.get(field)
        if get is None:
            get_line = _LINE_GETTERS[field]

            def get(c: Context) -> tuple[Any, ...]:
                return tuple([get_line(line) for line in c.order.lines])
        self.reads.append(get)
        return ("leaf", node, compile_condition(node), {})

    def verdict(self, c: Context) -> Verdict:
        """The condition_false verdict with its explanation, one line per leaf that decided it."""
        try:
            key = (c.order.currency, *[read(c) for read in self.reads])
            found = self.said.get(key)
        except TypeError:  # a value that cannot be a key
            return self.verdict_of(tuple(self._lines(self.root, c)))
        if found is None:
            if len(self.said) >= _SAID_MAX:
                self.said.clear()
            found = self.said[key] = self.verdict_of(tuple(self._lines(self.root, c)))
        return found

    def _lines(self, built: tuple[Any, ...], c: Context) -> list[str]:
        kind = built[0]
        if kind == "leaf":  # worded as conditions.explain words it, the test and the words made once
            _, node, test, described = built
            currency = c.order.currency
            words = described.get(currency)
            if words is None:
                words = described[currency] = describe(node, currency)
            return [f"{words}: {'yes' if test(c) else 'no'} (it is {_actual(node, c)})"]
        if kind == "not":
            return [f"not ({line})" for line in self._lines(built[1], c)]
        lines: list[str] = []
        for test, child in built[1]:
            lines += self._lines(child, c)
            if test(c) != (kind == "all"):
                break
        return lines


class _Promotion:
    """One promotion, ready to price: tests compiled, numbers read, fixed verdicts made once."""

    __slots__ = ("budget", "buy_quantity", "buy_slot", "channels", "channels_text", "combines", "coupon", "enabled",
                 "exclusive", "get_percent", "get_quantity", "get_slot", "id", "index", "kind", "klass", "limited",
                 "lines_slot", "max_per_order", "name", "off_amount", "per_customer", "percent", "pile", "priority",
                 "said", "segment", "target", "test", "tiers", "total_uses", "verdicts", "when", "why")

    def __init__(self, index: int, promotion: dict[str, Any], slot: Any) -> None:
        effect = promotion["effect"]
        limits = promotion.get("limits") or {}
        self.index = index
        self.id: str = promotion["id"]
        self.name: str = promotion["name"].strip()
        self.enabled: bool = promotion.get("enabled", True)
        self.priority: int = promotion.get("priority", DEFAULT_PRIORITY)
        self.exclusive: bool = promotion.get("exclusive", False)
        self.klass = promotion_class(promotion)
        self.pile = 3 if self.exclusive else CLASSES.index(self.klass)  # where price() puts it when eligible
        self.combines = frozenset(promotion.get("combines_with", ()))
        self.when: dict[str, Any] | None = promotion.get("when")
        self.test: Test = compile_condition(self.when)
        self.why = None if self.when is None else _Why(self.when, partial(
            Verdict, self.id, self.name, False, "condition_false", _NOT_MET))
        self.channels = frozenset(promotion.get("channels", ()))
        self.channels_text = ", ".join(sorted(self.channels))
        self.segment: str | None = promotion.get("segment")
        self.coupon: bool = promotion.get("coupon", False)
        self.total_uses: int | None = limits.get("total_uses")
        self.per_customer: int | None = limits.get("per_customer")
        self.budget: int | None = limits.get("budget_minor")
        self.limited = any(limits.get(key) is not None for key in _LIMIT_KEYS)
        self.kind: str = effect["kind"]
        self.target: str = effect.get("target", "lines")
        self.percent: int = effect.get("percent", 0)
        self.off_amount: int = effect.get("amount_minor", 0)
        self.lines_slot: int = slot(effect.get("lines"))
        buy, get = effect.get("buy") or {}, effect.get("get") or {}
        self.buy_slot: int = slot(buy.get("lines"))
        self.get_slot: int = slot(get.get("lines"))
        self.buy_quantity: int = buy.get("quantity", 1)
        self.get_quantity: int = get.get("quantity", 1)
        self.get_percent: int = get.get("percent", 100)
        self.max_per_order: int = effect.get("max_per_order", 1)
        # Highest minimum first: the first tier reached is the one that applies.
        self.tiers: tuple[tuple[int, int, int], ...] = tuple(sorted(
            ((t["min_minor"], t.get("percent", 0), t.get("amount_minor", 0)) for t in effect.get("tiers", ())),
            reverse=True))
        uses = f" ({self.total_uses} uses)" if self.total_uses else ""
        per_customer = f" ({self.per_customer} per customer)" if self.per_customer else ""
        fixed = {
            "disabled": "Disabled",
            "condition_false": _NOT_MET,
            "segment": f"Customer not in segment {self.segment}",
            "needs_code": "Needs a coupon code",
            "limit_reached": f"Usage limit reached{uses}",
            "customer_limit_reached": f"This customer has used it the most times allowed{per_customer}",
        }
        self.verdicts = {reason: Verdict(self.id, self.name, False, reason, message)
                         for reason, message in fixed.items()}
        self.said: dict[tuple[str, Any], Verdict] = {}

    def verdict(self, reason: str, message: str, details: tuple[str, ...] = ()) -> Verdict:
        return Verdict(self.id, self.name, False, reason, message, details)

    def applied_verdict(self, amount: int, code: str | None, capped: bool, currency: str) -> Verdict:
        """"Applied with code X: 12.00 EUR off", made once per amount (fixed amounts and shipping
        fees recur)."""
        key = ("applied", (amount, code, capped, currency))
        found = self.said.get(key)
        if found is None:
            if len(self.said) >= _SAID_MAX:
                self.said.clear()
            with_code = f" with code {code}" if code else ""
            but = " (capped at what is left of its budget)" if capped else ""
            found = self.said[key] = Verdict(self.id, self.name, True, "applied",
                                             f"Applied{with_code}: {_money(amount, currency)} off{but}")
        return found

    def verdict_of(self, reason: str, key: Any, words: Callable[..., str], *args: Any) -> Verdict:
        """The verdict for this reason and key, its message ``words(*args)``, made once: verdicts
        are immutable, and most depend only on this promotion and another one or the channel
        (making them anew is a good part of a price's time)."""
        found = self.said.get((reason, key))
        if found is None:
            if len(self.said) >= _SAID_MAX:
                self.said.clear()
            found = self.said[reason, key] = Verdict(self.id, self.name, False, reason, words(*args))
        return found


class CompiledPromotions:
    """A document compiled once per version: its promotions in the list's order (disabled ones
    too, for the trace) and the distinct `lines` conditions, each tested once per line per cart."""

    __slots__ = ("best", "by_channel", "coupon_ids", "limited_ids", "line_memo", "line_tests", "promotions",
                 "ranked")

    def __init__(self, document: dict[str, Any]) -> None:
        keys: dict[str, int] = {}
        tests: list[Test] = []

        def slot(node: dict[str, Any] | None) -> int:
            if node is None:
                return -1  # every line
            key = json.dumps(node, sort_keys=True)
            if key not in keys:
                keys[key] = len(tests)
                tests.append(compile_condition(node))
            return keys[key]

        self.promotions = tuple(_Promotion(i, p, slot) for i, p in enumerate(document.get("promotions", ())))
        self.ranked = tuple(sorted(self.promotions, key=lambda p: (p.priority, p.index)))
        self.line_tests = tuple(tests)
        self.line_memo: dict[LineFacts, tuple[bool, ...]] = {}
        self.best = document.get("within_class", "priority") == "best"
        self.limited_ids = frozenset(p.id for p in self.promotions if p.limited and p.enabled)
        self.coupon_ids = frozenset(p.id for p in self.promotions if p.coupon)
        self.by_channel: dict[str, tuple[tuple[Verdict | None, ...], tuple[_Promotion, ...]]] = {}

    def for_channel(self, channel: str) -> tuple[tuple[Verdict | None, ...], tuple[_Promotion, ...]]:
        """The verdicts known from the channel alone (disabled, not for this channel), by position,
        and the promotions left to judge in priority order: made once per channel."""
        found = self.by_channel.get(channel)
        if found is None:
            trace: list[Verdict | None] = [None] * len(self.promotions)
            left = []
            for p in self.ranked:
                if not p.enabled:
                    trace[p.index] = p.verdicts["disabled"]
                elif p.channels and channel not in p.channels:
                    trace[p.index] = p.verdict("channel", f"Not for the {channel} channel (only {p.channels_text})")
                else:
                    left.append(p)
            if len(self.by_channel) >= len(CHANNELS) * 4:
                self.by_channel.clear()
            found = self.by_channel[channel] = (tuple(trace), tuple(left))
        return found


def compile_document(document: dict[str, Any]) -> CompiledPromotions:
    """A valid document, ready to price."""
    return CompiledPromotions(document)


def limited_ids(compiled: CompiledPromotions) -> frozenset[str]:
    """Enabled promotions with any limit: the service reads (and locks) their counters."""
    return compiled.limited_ids


def coupon_ids(compiled: CompiledPromotions) -> frozenset[str]:
    """Promotions that need one of their codes."""
    return compiled.coupon_ids


CACHE: cache.CompiledCache[CompiledPromotions] = cache.CompiledCache(compile_document)


# --- pricing --------------------------------------------------------------------------------

_NO_COUPONS: Mapping[str, CouponState] = MappingProxyType({})
_NO_ALLOWANCES: Mapping[str, Allowance] = MappingProxyType({})


def _money(minor: int, currency: str) -> str:
    """An amount as ``conditions.explain`` shows one: "12.50 EUR"."""
    places = money.exponent(currency)
    if places and minor >= 0:
        whole, part = divmod(minor, 10**places)
        return f"{whole}.{part:0{places}d} {currency}"
    return f"{money.major(minor, currency)} {currency}"


class _Lines:
    """Which cart lines each distinct `lines` condition matches, worked out when first asked.

    Each line's tests run on a context whose order has that one line. `lines` conditions read
    only line fields, so a line's results depend on the line alone: the compiled version keeps
    them by line (bounded), and a catalog's lines, met again and again, are tested once."""

    __slots__ = ("columns", "compiled", "moment", "order")

    def __init__(self, compiled: CompiledPromotions, order: OrderFacts, moment: Moment) -> None:
        self.compiled = compiled
        self.order = order
        self.moment = moment
        self.columns: list[tuple[bool, ...]] | None = None  # per condition, per line

    def matches(self, slot: int) -> tuple[bool, ...] | None:
        """Per line, whether it matches; None when every line does."""
        if slot < 0:
            return None
        columns = self.columns
        if columns is None:
            rows = [self._row(line) for line in self.order.lines]
            columns = self.columns = list(zip(*rows, strict=True)) if rows else [()] * len(self.compiled.line_tests)
        return columns[slot]

    def _row(self, line: LineFacts) -> tuple[bool, ...]:
        memo = self.compiled.line_memo
        row = memo.get(line)
        if row is None:
            context = Context(OrderFacts((line,), currency=self.order.currency), self.moment)
            row = tuple(test(context) for test in self.compiled.line_tests)
            if len(memo) >= _LINES_MEMO_MAX:
                memo.clear()
            memo[line] = row
        return row


class _Offer:
    """An eligible promotion's discount on the current figures, before one is chosen. Its share
    per line is worked out only for the one that applies (``shares``)."""

    __slots__ = ("amount", "budget_left", "capped", "code", "promotion", "shared", "shipping", "split", "weights")

    def __init__(self, promotion: _Promotion, code: CouponState | None, budget_left: int | None) -> None:
        self.promotion = promotion
        self.code = code
        self.budget_left = budget_left
        self.amount = 0
        self.shipping = 0
        self.weights: list[int] | None = None  # per line: its amount, or (split) what the amount is shared by
        self.split = False
        self.shared: list[int] | None = None
        self.capped = False

    def shares(self) -> list[int] | None:
        """Per line, its part of the amount (apportioned by largest remainder); None for shipping."""
        if self.shared is None and self.weights is not None:
            self.shared = money.apportion(self.amount, self.weights) if self.split else self.weights
        return self.shared

    def work_out(self, net: list[int], fee: int, lines: _Lines, currency: str) -> Verdict | None:
        """Its amount on these nets and shipping fee; a verdict when there is nothing to discount."""
        p = self.promotion
        kind = p.kind
        if kind == "free_shipping":
            if fee <= 0:
                return _nothing(p, "no shipping fee to take off")
            self.amount = self.shipping = fee
        elif kind == "buy_x_get_y":
            amounts = _buy_x_get_y(p, net, lines)
            if amounts is None:
                return _nothing(p, f"not enough units to buy {p.buy_quantity} and get {p.get_quantity}")
            self.weights = amounts
            self.amount = sum(amounts)
        else:
            matches = lines.matches(p.lines_slot)
            if matches is None:
                eligible = net
            elif True in matches:
                eligible = [n if m else 0 for n, m in zip(net, matches, strict=True)]
            else:
                return _nothing(p, "no line matches")
            if p.klass == "line":
                if kind == "percent_off":
                    percent = p.percent
                    self.weights = [n * percent // 100 for n in eligible]
                else:
                    off = p.off_amount
                    self.weights = [n if n < off else off for n in eligible]
                self.amount = sum(self.weights)
            else:
                subtotal = sum(eligible)
                if kind == "percent_off":
                    amount = subtotal * p.percent // 100
                elif kind == "fixed_off":
                    amount = min(p.off_amount, subtotal)
                else:
                    tier = next((t for t in p.tiers if t[0] <= subtotal), None)
                    if tier is None:
                        return p.verdict("nothing_to_discount", f"Nothing to discount: the spend "
                                         f"({_money(subtotal, currency)}) is below the lowest threshold "
                                         f"({_money(p.tiers[-1][0], currency)})")
                    amount = subtotal * tier[1] // 100 if tier[1] else min(tier[2], subtotal)
                self.weights = eligible
                self.split = True
                self.amount = amount
        if self.amount <= 0:
            return _nothing(p, "it comes to nothing on what is left of this cart")
        budget_left = self.budget_left
        if budget_left is not None and self.amount > budget_left:
            # Shared in proportion to what it would have given: no line gets more than that.
            self.capped = self.split = True
            self.amount = budget_left
            if self.weights is None:
                self.shipping = budget_left
        return None


def _nothing(p: _Promotion, why: str) -> Verdict:
    return p.verdict_of("nothing_to_discount", why, "Nothing to discount: {}".format, why)


def _buy_x_get_y(p: _Promotion, net: list[int], lines: _Lines) -> list[int] | None:
    """Per line, the discount on the units got: for each full set bought, the cheapest get-units
    left (units bought are not got), at most max_per_order sets. Buy units are taken first from
    lines that cannot be got, then the dearest; a line's got units are discounted on its unit net."""
    order_lines = lines.order.lines
    count = len(order_lines)
    quantities = [line.quantity for line in order_lines]
    buy = lines.matches(p.buy_slot) or (True,) * count
    get = lines.matches(p.get_slot) or (True,) * count
    # Not even one set: said without sorting anything (the usual case for most carts).
    if sum(q for q, b in zip(quantities, buy, strict=True) if b) < p.buy_quantity \
            or sum(q for q, g in zip(quantities, get, strict=True) if g) < p.get_quantity \
            or sum(q for q, b, g in zip(quantities, buy, get, strict=True) if b or g) < p.buy_quantity + p.get_quantity:
        return None
    # Cheapest unit first (unit net, then line order).
    cheap = sorted(range(count), key=lambda i: (net[i] / quantities[i] if quantities[i] else 0, i))
    dear = cheap[::-1]
    gettable = [i for i in cheap if get[i]]
    buyable = [i for i in dear if buy[i] and not get[i]] + [i for i in dear if buy[i] and get[i]]
    left = list(quantities)
    got = [0] * count
    sets = 0
    while sets < p.max_per_order:
        taken: list[tuple[int, int]] = []
        need = p.buy_quantity
        for i in buyable:
            if need and left[i]:
                k = min(need, left[i])
                left[i] -= k
                need -= k
                taken.append((i, k))
        want = p.get_quantity
        if not need:
            for i in gettable:
                if want and left[i]:
                    k = min(want, left[i])
                    left[i] -= k
                    want -= k
                    taken.append((i, -k))
        if need or want:
            for i, k in taken:
                left[i] += abs(k)
            break
        for i, k in taken:
            if k < 0:
                got[i] -= k
        sets += 1
    if not sets:
        return None
    percent = p.get_percent
    return [net[i] * got[i] * percent // (100 * quantities[i]) if got[i] else 0 for i in range(count)]


def _code_for(p: _Promotion, states: tuple[CouponState, ...]) -> tuple[CouponState | None, CouponState | None]:
    """(the first usable code of this promotion, else the first of its codes with a problem)."""
    problem = None
    for state in states:
        if state.promotion_id == p.id:
            if state.problem is None:
                return state, None
            if problem is None:
                problem = state
    return None, problem


def _limits(p: _Promotion, allowances: Mapping[str, Allowance], currency: str,
            ) -> tuple[Verdict | None, int | None]:
    """A verdict when a limit is reached, else what is left of the budget (None: no budget)."""
    allowance = allowances.get(p.id)
    if allowance is None:
        uses, per_customer, budget = p.total_uses, p.per_customer, p.budget
    else:
        uses, per_customer, budget = allowance.uses_left, allowance.customer_uses_left, allowance.budget_left_minor
    if uses is not None and uses <= 0:
        return p.verdicts["limit_reached"], None
    if per_customer is not None and per_customer <= 0:
        return p.verdicts["customer_limit_reached"], None
    if budget is not None and budget <= 0:
        given = f" ({_money(p.budget, currency)} given)" if p.budget else ""
        return p.verdict_of("budget_spent", currency, "Budget spent{}".format, given), None
    return None, budget


def _choose(offers: list[_Offer], net: list[int], fee: int, lines: _Lines, currency: str, best: bool,
            trace: list[Verdict | None], applied: list[_Offer]) -> _Offer | None:
    """The offer that applies among these (one class, or the exclusive ones), given in priority
    order: the first (or the largest) that has something to discount on these figures and
    combines with everything applied. The others' verdicts go into ``trace``; by priority, those
    after the winner are outranked whatever they would give, so they are not worked out."""
    if best:
        worked = []
        for offer in offers:
            verdict = offer.work_out(net, fee, lines, currency)
            if verdict is None:
                worked.append(offer)
            else:
                trace[offer.promotion.index] = verdict
        worked.sort(key=lambda o: -o.amount)  # stable: equal amounts stay in priority order
        offers = worked
    winner: _Offer | None = None
    for offer in offers:
        p = offer.promotion
        if winner is not None:
            w = winner.promotion
            larger = best and winner.amount > offer.amount
            trace[p.index] = p.verdict_of("outranked", (w.index, larger), _outranked, w, p, larger)
            continue
        if not best and (verdict := offer.work_out(net, fee, lines, currency)) is not None:
            trace[p.index] = verdict
            continue
        if _combines(offer, applied, trace):
            winner = offer
    return winner


def _combines(offer: _Offer, applied: list[_Offer], trace: list[Verdict | None]) -> bool:
    """Whether it and every promotion applied list each other's class; if not, its verdict says
    which one it clashes with."""
    p = offer.promotion
    for other in applied:
        a = other.promotion
        if p.klass not in a.combines or a.klass not in p.combines:
            trace[p.index] = p.verdict_of("not_combinable", a.index, "Not combinable with {} ({})".format,
                                          a.name, CLASS_NAMES[a.klass])
            return False
    return True


def _outranked(w: _Promotion, p: _Promotion, larger: bool) -> str:
    if larger:
        return f"Outranked by {w.name}, a larger discount"
    if w.priority < p.priority:
        return f"Outranked by {w.name} (priority {w.priority} comes before {p.priority})"
    return f"Outranked by {w.name} (same priority, earlier in the list)"


def price(compiled: CompiledPromotions, cart: Cart, moment: Moment, *,
          coupons: Mapping[str, CouponState] = _NO_COUPONS, allowances: Mapping[str, Allowance] = _NO_ALLOWANCES,
          explained: bool = True) -> Pricing:
    """The cart's discounts under these promotions, with a verdict for each. ``coupons`` are the
    service's findings by code (a code not there is unknown); ``allowances`` what is left of each
    limited promotion's limits (a promotion not there has its limits whole). ``explained=False``
    leaves out the condition explanations (``Verdict.details``), which only a person reads."""
    facts = cart.facts
    count = len(facts.lines)
    own = cart.line_discounts
    if len(own) < count:
        own += (0,) * (count - len(own))
    net0 = [owed if (owed := line.unit_price_minor * line.quantity - discount) > 0 else 0
            for line, discount in zip(facts.lines, own, strict=False)]  # discounts past the lines: ignored
    fee0 = max(0, cart.shipping_fee_minor)
    currency = facts.currency
    segments = cart.segments
    context = Context(facts, moment)
    lines = _Lines(compiled, facts, moment)
    states = tuple(coupons.get(code) or CouponState(code, None, "unknown") for code in dict.fromkeys(cart.coupon_codes))

    # Who may apply at all; the others' verdicts. In priority order, so each class's list is ranked.
    known, left = compiled.for_channel(facts.channel)
    trace = list(known)
    pending: tuple[list[_Offer], ...] = ([], [], [], [])  # line, order, shipping, exclusive
    for p in left:
        if p.segment is not None and p.segment not in segments:
            trace[p.index] = p.verdicts["segment"]
            continue
        code = None
        if p.coupon:
            code, problem = _code_for(p, states)
            if code is None:
                trace[p.index] = p.verdicts["needs_code"] if problem is None else \
                    p.verdict_of("code_problem", problem, coupon_message, problem)
                continue
        if p.when is not None and not p.test(context):
            trace[p.index] = p.why.verdict(context) if explained and p.why is not None \
                else p.verdicts["condition_false"]
            continue
        budget_left = None
        if p.limited:
            verdict, budget_left = _limits(p, allowances, currency)
            if verdict is not None:
                trace[p.index] = verdict
                continue
        pending[p.pile].append(_Offer(p, code, budget_left))

    # Stacking: an exclusive one alone, else one per class in order, each on what the last left.
    applied: list[_Offer] = []
    exclusives = pending[3]
    winner = _choose(exclusives, net0, fee0, lines, currency, compiled.best, trace, applied) if exclusives else None
    if winner is not None:
        applied.append(winner)
        w = winner.promotion
        for offer in (*exclusives, *pending[0], *pending[1], *pending[2]):
            p = offer.promotion
            verdict = trace[p.index]
            if offer is not winner and (verdict is None or verdict.reason == "outranked"):
                trace[p.index] = p.verdict_of("exclusive", w.index, "Not applied: {} applies alone (exclusive)".format,
                                              w.name)
    else:
        net, fee = net0, fee0
        for offers in pending[:3]:
            if offers and (chosen := _choose(offers, net, fee, lines, currency, compiled.best, trace, applied)):
                applied.append(chosen)
                shares = chosen.shares()
                if shares is not None:
                    net = [n - a for n, a in zip(net, shares, strict=True)]
                fee -= chosen.shipping
    return _pricing(applied, trace, states, count, currency)


def _pricing(applied: list[_Offer], trace: list[Verdict | None], states: tuple[CouponState, ...], count: int,
             currency: str) -> Pricing:
    results: list[Applied] = []
    line_class = line_total = (0,) * count
    line_minor = order_minor = shipping_minor = 0
    for offer in applied:
        p = offer.promotion
        code = offer.code
        klass = p.klass
        if klass == "shipping":
            amounts: tuple[int, ...] = (0,) * count
            shipping_minor += offer.shipping
        else:
            amounts = tuple(offer.shares() or ())
            line_total = tuple(map(add, line_total, amounts))
            if klass == "line":
                line_class = tuple(map(add, line_class, amounts))
                line_minor += offer.amount
            else:
                order_minor += offer.amount
        results.append(Applied(p.id, p.name, klass, offer.amount, amounts, offer.shipping,
                               code.code if code else None, code.coupon_id if code else None))
        trace[p.index] = p.applied_verdict(offer.amount, code.code if code else None, offer.capped, currency)
    return Pricing(line_total, line_class, order_minor, shipping_minor, line_minor + order_minor + shipping_minor,
                   tuple(results), tuple(trace), states)  # type: ignore[arg-type]  # every promotion has a verdict
