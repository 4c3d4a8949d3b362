"""Routing documents in plain words, and what changed between two of them.

The read-only views (a version, the draft for those who don't edit it) and the "what changed"
comparisons use the same sentences, so a change reads exactly as the rule it changes. Amounts
are written by the ``money`` function the page passes (the company's currency and locale), so
this module formats nothing itself and stays free of the web.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rules.builder import MODES, as_list, as_pair, to_tree
from rules.fields import FIELDS, OPERATORS, RELATIVE_DAYS, static_choices
from rules.routing import FALLBACKS, FILTERS, SORT_UNITS, SORTS

Money = Callable[[int], str]
Line = tuple[int, str]  # (depth, words)

_HEADS = {"all": "When all of these hold:", "any": "When any of these holds:",
          "none": "When none of these holds:", "not_all": "When not all of these hold:"}
_LABELS: dict[str, dict[str, str]] = {}


def _label(choices: str | None, value: Any) -> str:
    if choices is None:
        return str(value)
    if choices not in _LABELS:
        _LABELS[choices] = dict(static_choices(choices))
    return _LABELS[choices].get(str(value), str(value))


def _value(node: dict[str, Any], value: Any, money: Money) -> str:
    f = FIELDS[node["field"]]
    if f.type == "money" and isinstance(value, int) and not isinstance(value, bool):
        return money(value)
    if f.type == "text" and isinstance(value, str):
        return f"“{value}”"
    if f.type == "choice":
        return _label(f.choices, value)
    return "—" if value in (None, "") else str(value)


def describe_leaf(node: dict[str, Any], money: Money) -> str:
    """A condition in words: "Order total is at least 59,00 €"."""
    key, op, value = node.get("field"), node.get("op"), node.get("value")
    if key not in FIELDS or op not in OPERATORS:
        return f"{key} {op} {value}"
    label, arity = OPERATORS[op]
    if op in RELATIVE_DAYS:
        return f"{FIELDS[key].label} {label.replace('…', str(value))}"
    if arity == "range":
        low, high = as_pair(value)
        shown = f"{_value(node, low, money)} and {_value(node, high, money)}"
    elif arity == "list":
        items = as_list(value)
        shown = ", ".join(_value(node, v, money) for v in items) if items else "(nothing chosen)"
    else:
        shown = _value(node, value, money)
    return f"{FIELDS[key].label} {label} {shown}"


def _rows(tree: dict[str, Any], money: Money, depth: int) -> list[Line]:
    if tree["type"] == "leaf":
        return [(depth, describe_leaf(tree, money))]
    lines: list[Line] = [(depth, f"{MODES.get(tree['mode'], tree['mode']).capitalize()}:")]
    for child in tree["children"]:
        lines += _rows(child, money, depth + 1)
    return lines


def condition_lines(when: dict[str, Any] | None, money: Money) -> list[Line]:
    """A rule's condition as indented lines, the first saying how they combine."""
    tree = to_tree(when)
    if not tree["children"]:
        return [(0, "Every order (no conditions)")]
    lines: list[Line] = [(0, _HEADS.get(tree["mode"], "When:"))]
    for child in tree["children"]:
        lines += _rows(child, money, 1)
    return lines


def _filter(item: dict[str, Any]) -> str:
    kind = item.get("kind")
    words = FILTERS.get(str(kind), str(kind)).lower()
    if kind in ("include_locations", "exclude_locations"):
        words += f" ({', '.join(map(str, as_list(item.get('locations')))) or 'none chosen'})"
    elif kind in ("include_tags", "exclude_tags"):
        words += f" ({', '.join(map(str, as_list(item.get('tags')))) or 'none chosen'})"
    elif kind == "within_distance":
        words += f" ({item.get('km')} km)"
    elif kind == "capacity_left":
        words += f" (at least {item.get('min')} orders)"
    return words


def _sort(item: dict[str, Any], money: Money) -> str:
    by = str(item.get("by"))
    words = SORTS.get(by, by).lower()
    band = item.get("band")
    if band:
        if by == "shipping_cost" and isinstance(band, int):
            words += f" (in bands of {money(band)})"
        else:
            words += f" (in bands of {band} {SORT_UNITS.get(by, '')})".replace(" )", ")")
    return words


def effect_lines(then: Any, money: Money) -> list[tuple[str, str]]:
    """Where a rule ships from, as (aspect, words) pairs: one per thing a merchandiser sets."""
    if not isinstance(then, dict):
        return [("Ship from", "(not set)")]
    types = [f"{t}s" for t in as_list(then.get("location_types"))]
    filters = [_filter(f) for f in as_list(then.get("filters")) if isinstance(f, dict)]
    sorts = [_sort(s, money) for s in as_list(then.get("sorts")) if isinstance(s, dict)]
    chain = [FALLBACKS.get(str(step), str(step)).lower() for step in as_list(then.get("fallback"))]
    split: dict[str, Any] = then["split"] if isinstance(then.get("split"), dict) else {}
    if "split" in as_list(then.get("fallback")):
        terms = [f"at most {split.get('max_shipments', 1)} shipments"]
        minimum = split.get("min_order_value")
        if isinstance(minimum, int) and not isinstance(minimum, bool) and minimum > 0:
            terms.append(f"orders from {money(minimum)}")
        if split.get("never_split_line"):
            terms.append("never splitting a line")
        chain = [f"{step} ({', '.join(terms)})" if step == FALLBACKS["split"].lower() else step for step in chain]
    return [
        ("Ship from", ", then ".join(types) or "(no location type)"),
        ("Keep only", "; ".join(filters) or "every location of those types"),
        ("Prefer", ", then ".join(sorts) or "no preference (by location code)"),
        ("If no single location has every line", ", then ".join(chain) or "(nothing set)"),
    ]


@dataclass
class RuleSummary:
    id: str
    name: str
    enabled: bool
    position: int  # from 1, as rules are tried
    when: list[Line]
    then: list[tuple[str, str]]


def summarize(document: dict[str, Any] | None, money: Money) -> list[RuleSummary]:
    out = []
    for i, rule in enumerate((document or {}).get("rules") or []):
        if not isinstance(rule, dict):
            continue
        out.append(RuleSummary(id=str(rule.get("id", i)), name=str(rule.get("name") or f"Rule {i + 1}"),
                               enabled=rule.get("enabled") is not False, position=i + 1,
                               when=condition_lines(rule.get("when") if isinstance(rule.get("when"), dict) else None,
                                                    money),
                               then=effect_lines(rule.get("then"), money)))
    return out


OTHERWISE = {"hold": "held for customer service", "backorder": "backordered"}


def otherwise_words(document: dict[str, Any] | None) -> str:
    value = (document or {}).get("otherwise", "hold")
    return OTHERWISE.get(str(value), str(value))


# --- what changed ---------------------------------------------------------------------------------

@dataclass
class Aspect:
    """One part of a rule, before and after: its condition, or one line of where it ships from."""
    label: str
    before: list[Line]
    after: list[Line]


@dataclass
class RuleChange:
    kind: str  # "added", "removed", "changed"
    rule: RuleSummary  # the rule as it is after (as it was, for a removed one)
    notes: list[str] = field(default_factory=list)  # renamed, turned off, moved
    aspects: list[Aspect] = field(default_factory=list)


@dataclass
class Diff:
    changes: list[RuleChange]
    otherwise: tuple[str, str] | None  # (before, after) when what happens to unmatched orders changed

    @property
    def empty(self) -> bool:
        return not self.changes and self.otherwise is None

    def count(self, kind: str) -> int:
        return sum(1 for c in self.changes if c.kind == kind)


def _moved(before_ids: list[str], after_ids: list[str]) -> set[str]:
    """The rules that changed places among those in both: those outside the longest run that
    kept its order (a rule added on top shifts the others without moving them)."""
    rank = {rid: i for i, rid in enumerate(before_ids)}
    seq = [rid for rid in after_ids if rid in rank]
    # longest increasing subsequence of before-positions, O(n^2): rule sets are small
    best: list[list[str]] = []
    for i, rid in enumerate(seq):
        longest: list[str] = []
        for j in range(i):
            if rank[seq[j]] < rank[rid] and len(best[j]) > len(longest):
                longest = best[j]
        best.append([*longest, rid])
    longest_run: list[str] = []
    for run in best:
        if len(run) > len(longest_run):
            longest_run = run
    kept = set(longest_run)
    return {rid for rid in seq if rid not in kept}


def diff(before: dict[str, Any] | None, after: dict[str, Any] | None, money: Money) -> Diff:
    """What ``after`` changes from ``before``: rules matched by id, each compared in words."""
    old = {r.id: r for r in summarize(before, money)}
    new = summarize(after, money)
    new_ids = {r.id for r in new}
    moved = _moved(list(old), [r.id for r in new])
    changes: list[RuleChange] = []
    for rule in new:
        was = old.get(rule.id)
        if was is None:
            changes.append(RuleChange("added", rule, [f"New rule, at position {rule.position}"]))
            continue
        notes = []
        if was.name != rule.name:
            notes.append(f"Renamed from “{was.name}”")
        if was.enabled != rule.enabled:
            notes.append("Turned on" if rule.enabled else "Turned off: orders skip it")
        if rule.id in moved:
            notes.append(f"Moved to position {rule.position} (was {was.position})")
        aspects = []
        if was.when != rule.when:
            aspects.append(Aspect("When", was.when, rule.when))
        for (label, then_before), (_, then_after) in zip(was.then, rule.then, strict=True):
            if then_before != then_after:
                aspects.append(Aspect(label, [(0, then_before)], [(0, then_after)]))
        if notes or aspects:
            changes.append(RuleChange("changed", rule, notes, aspects))
    for was in old.values():
        if was.id not in new_ids:
            changes.append(RuleChange("removed", was, [f"Was at position {was.position}"]))
    before_otherwise, after_otherwise = otherwise_words(before), otherwise_words(after)
    return Diff(changes, (before_otherwise, after_otherwise) if before_otherwise != after_otherwise else None)

