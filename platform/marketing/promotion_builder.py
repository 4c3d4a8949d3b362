"""The promotions builder's side of the draft: documents to editable promotions, form posts back
to documents, the structural edits, problems placed at their controls, and promotions in words.

A promotion's own inputs are named ``p{i}.…`` (``p0.effect.percent``). Its condition trees are
shown and read by the routing builder (``rules.builder`` and the row macros of
``rules/_macros.html``), each numbered ``r{4i + slot}``: slot 0 is the promotion's condition,
1 the lines an effect discounts, 2 the lines to buy, 3 the lines to get. Routing's form reading
and structural edits address trees by that number, so conditions behave exactly as routing's.
Every post carries the draft revision it was rendered from, so positions refer to the same draft.
"""

from __future__ import annotations

import copy
import re
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from core.forms import parse_int
from rules import builder
from rules.builder import GetAll, Getter, Placed, as_list, from_tree, to_minor, to_tree
from rules.fields import FIELDS, static_choices
from rules.promotions import CLASS_NAMES, CLASSES, EFFECT_KINDS, new_promotion, promotion_class
from rules.summary import Aspect, Diff, Line, RuleChange, RuleSummary, condition_lines

SLOTS = ("when", "lines", "buy", "get")
LINE_SLOTS = ("lines", "buy", "get")
TARGETS = {"order": "the order", "lines": "the matching lines"}
WITHIN_WORDS = {"priority": "the one with the highest priority (lowest number)",
                "best": "the best one for the customer (the largest discount)"}
Money = Callable[[int], str]


def tree_number(index: int, slot: str) -> int:
    return 4 * index + SLOTS.index(slot)


def tree_path(index: int, slot: str) -> str:
    """The builder path of one of a promotion's condition trees (``r5`` is promotion 1's lines)."""
    return f"r{tree_number(index, slot)}"


def _condition(node: Any) -> dict[str, Any] | None:
    return node if isinstance(node, dict) else None


def _part(effect: dict[str, Any], key: str) -> dict[str, Any]:
    value = effect.get(key)
    return value if isinstance(value, dict) else {}


def klass(promotion: dict[str, Any]) -> str:
    """The class of a promotion as the evaluator gives it, also while its effect is being edited."""
    effect = promotion.get("effect")
    return promotion_class({"effect": effect if isinstance(effect, dict) else {}})


# --- documents <-> editable promotions ----------------------------------------------------------

def _conditions(promotion: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
    """A promotion's conditions by slot."""
    effect = promotion["effect"] if isinstance(promotion.get("effect"), dict) else {}
    return {"when": _condition(promotion.get("when")), "lines": _condition(effect.get("lines")),
            "buy": _condition(_part(effect, "buy").get("lines")), "get": _condition(_part(effect, "get").get("lines"))}


def _promotions(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in document.get("promotions") or [] if isinstance(p, dict)]


def editable(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The promotions with their condition trees (``trees``: slot -> builder tree)."""
    promotions = []
    for promotion in _promotions(document):
        promotion = copy.deepcopy(promotion)
        if not isinstance(promotion.get("effect"), dict):
            promotion["effect"] = {}
        promotion["trees"] = {slot: to_tree(node) for slot, node in _conditions(promotion).items()}
        promotions.append(promotion)
    return promotions


def _from_tree(tree: dict[str, Any], path: str, json_path: str, where: dict[str, str]) -> dict[str, Any] | None:
    where[json_path] = path  # an empty tree's problems ("choose the lines") show at its group
    return from_tree(tree, path, json_path, where) if tree["children"] else None


def document_of(promotions: list[dict[str, Any]], within_class: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The document of edited promotions, and where each condition path is in the builder."""
    where: dict[str, str] = {}
    out = []
    for i, promotion in enumerate(promotions):
        promotion = copy.deepcopy(promotion)
        trees = promotion.pop("trees")
        at = f"promotions[{i}]"
        promotion["when"] = _from_tree(trees["when"], tree_path(i, "when"), f"{at}.when", where)
        effect = promotion.get("effect") or {}
        kind = effect.get("kind")
        if kind in ("percent_off", "fixed_off", "tiered"):
            counted = kind == "tiered" or effect.get("target") == "lines"
            effect["lines"] = (_from_tree(trees["lines"], tree_path(i, "lines"), f"{at}.effect.lines", where)
                               if counted else None)
        elif kind == "buy_x_get_y":
            for slot in ("buy", "get"):
                part = effect.setdefault(slot, {})
                if isinstance(part, dict):
                    part["lines"] = _from_tree(trees[slot], tree_path(i, slot), f"{at}.effect.{slot}.lines", where)
        out.append(promotion)
    return {"promotions": out, "within_class": within_class}, where


def default_effect(kind: str, before: dict[str, Any] | None = None) -> dict[str, Any]:
    """A new effect of this kind, keeping what carries over from the one it replaces."""
    before = before or {}
    percent = before.get("percent") if isinstance(before.get("percent"), int) else 10
    target = before.get("target") if before.get("target") in TARGETS else "order"
    if kind == "percent_off":
        return {"kind": kind, "target": target, "percent": percent, "lines": None}
    if kind == "fixed_off":
        return {"kind": kind, "target": target, "amount_minor": 1000, "lines": None}
    if kind == "free_shipping":
        return {"kind": kind}
    if kind == "buy_x_get_y":
        return {"kind": kind, "buy": {"lines": None, "quantity": 2},
                "get": {"lines": None, "quantity": 1, "percent": 100}, "max_per_order": 1}
    return {"kind": "tiered", "tiers": [{"min_minor": 5000, "percent": 5}, {"min_minor": 10000, "percent": 10}],
            "lines": None}


# --- form values ---------------------------------------------------------------------------------

def _int(text: str | None, default: Any) -> Any:
    """A typed whole number; the text itself when it is not one (the validator says so)."""
    if text is None:
        return default
    number = parse_int(text)
    return text.strip() if number is None else number


def _optional_int(text: str | None, default: Any) -> Any:
    if text is None:
        return default
    return None if not text.strip() else _int(text, default)


def _money(text: str | None, default: Any, currency: str, locale: str | None, *, optional: bool = False) -> Any:
    if text is None:
        return default
    if optional and not text.strip():
        return None
    return to_minor(text.strip(), currency, locale)


def _read_effect(effect: dict[str, Any], at: str, get: Getter, currency: str, locale: str | None) -> dict[str, Any]:
    kind = get(f"{at}.kind") or effect.get("kind")
    if kind != effect.get("kind") and kind in EFFECT_KINDS:
        return default_effect(str(kind), effect)  # a new kind starts from its defaults
    if kind in ("percent_off", "fixed_off"):
        target = get(f"{at}.target")
        if target in TARGETS:
            effect["target"] = target
        if kind == "percent_off":
            effect["percent"] = _int(get(f"{at}.percent"), effect.get("percent"))
        else:
            effect["amount_minor"] = _money(get(f"{at}.amount"), effect.get("amount_minor"), currency, locale)
    elif kind == "buy_x_get_y":
        buy, got = effect.setdefault("buy", {}), effect.setdefault("get", {})
        buy["quantity"] = _int(get(f"{at}.buy.quantity"), buy.get("quantity"))
        got["quantity"] = _int(get(f"{at}.get.quantity"), got.get("quantity"))
        got["percent"] = _int(get(f"{at}.get.percent"), got.get("percent"))
        effect["max_per_order"] = _int(get(f"{at}.max_per_order"), effect.get("max_per_order"))
    elif kind == "tiered":
        tiers = []
        for j, tier in enumerate(as_list(effect.get("tiers"))):
            tier = dict(tier) if isinstance(tier, dict) else {}
            prefix = f"{at}.tiers.{j}"
            minimum = _money(get(f"{prefix}.min"), tier.get("min_minor"), currency, locale)
            how = get(f"{prefix}.kind") or ("amount" if "amount_minor" in tier else "percent")
            typed = get(f"{prefix}.value")  # read in the unit chosen with it
            if how == "amount":
                tiers.append({"min_minor": minimum,
                              "amount_minor": _money(typed, tier.get("amount_minor", 0), currency, locale)})
            else:
                tiers.append({"min_minor": minimum, "percent": _int(typed, tier.get("percent", 0))})
        effect["tiers"] = tiers
    return effect


def _read_promotion(promotion: dict[str, Any], i: int, get: Getter, getall: GetAll, currency: str,
                    locale: str | None) -> None:
    at = f"p{i}"
    name = get(f"{at}.name")
    if name is not None:
        promotion["name"] = name.strip()
    promotion["enabled"] = get(f"{at}.enabled") is not None
    promotion["priority"] = _int(get(f"{at}.priority"), promotion.get("priority", 100))
    promotion["exclusive"] = get(f"{at}.exclusive") is not None
    promotion["channels"] = list(dict.fromkeys(c for c in getall(f"{at}.channels") if c))
    promotion["segment"] = get(f"{at}.segment") or None
    promotion["coupon"] = get(f"{at}.coupon") is not None
    promotion["effect"] = _read_effect(promotion.get("effect") or {}, f"{at}.effect", get, currency, locale)
    own = klass(promotion)  # its own class always stacks with itself: only the others are offered
    chosen = set(getall(f"{at}.combines_with"))
    promotion["combines_with"] = [c for c in CLASSES if c in chosen and c != own]
    limits = promotion["limits"] if isinstance(promotion.get("limits"), dict) else {}
    promotion["limits"] = {
        "total_uses": _optional_int(get(f"{at}.limits.total_uses"), limits.get("total_uses")),
        "per_customer": _optional_int(get(f"{at}.limits.per_customer"), limits.get("per_customer")),
        "budget_minor": _money(get(f"{at}.limits.budget"), limits.get("budget_minor"), currency, locale,
                               optional=True),
    }


def read_form(document: dict[str, Any], get: Getter, getall: GetAll, currency: str,
              locale: str | None = None) -> tuple[list[dict[str, Any]], str]:
    """The draft's promotions (with their trees) with the posted values applied, and the rule
    within a class."""
    promotions = editable(document)
    # The condition rows, read by routing's builder: one routing "rule" per tree, numbered as above.
    shaped = {"rules": [{"when": node, "then": {}} for promotion in _promotions(document)
                        for node in _conditions(promotion).values()]}
    read, _ = builder.read_form(shaped, get, getall, currency, locale)
    for i, promotion in enumerate(promotions):
        for slot in SLOTS:
            promotion["trees"][slot] = read[tree_number(i, slot)]["tree"]
        if get(f"p{i}.present") is not None:
            _read_promotion(promotion, i, get, getall, currency, locale)
    within = get("within_class")
    within_class = within if within in WITHIN_WORDS else str(document.get("within_class") or "priority")
    return promotions, within_class


# --- structural edits ------------------------------------------------------------------------------

_NODE_ACTIONS = ("add_condition", "add_group", "delete_node", "move_node", "move_node_to")


def _move(items: list[Any], index: int, to: int) -> None:
    if 0 <= index < len(items):
        item = items.pop(index)
        items.insert(max(0, min(to, len(items))), item)


def new_editable(name: str) -> dict[str, Any]:
    promotion = new_promotion(f"p-{secrets.token_hex(6)}", name)
    promotion["trees"] = {slot: to_tree(None) for slot in SLOTS}
    return promotion


def _node_action(promotions: list[dict[str, Any]], name: str, arg: str, action: str, get: Getter) -> None:
    """A condition edit, done by routing's builder on the trees in place."""
    number = int(arg.split(".", 1)[0].split(":", 1)[0][1:])
    slot = SLOTS[number % 4]
    trees = [{"tree": promotion["trees"][s]} for promotion in promotions for s in SLOTS]
    if slot not in LINE_SLOTS:
        builder.apply_action(trees, action, get)
        return
    # Lines' conditions test lines: a row added without a chosen field tests the SKU.
    picked = get(f"{arg}.new_field")
    builder.apply_action(trees, action, lambda key: (picked or "line.sku") if key == f"{arg}.new_field"
                         else get(key))
    group = _group_at(trees[number]["tree"], arg) if name == "add_group" else None
    if group is not None and group["children"] and group["children"][-1]["type"] == "group":
        group["children"][-1]["children"] = [builder.new_leaf("line.sku")]


def _group_at(tree: dict[str, Any], path: str) -> dict[str, Any] | None:
    node = tree
    for part in path.split(".")[1:]:
        children = node.get("children") or []
        index = int(part)
        if not 0 <= index < len(children):
            return None
        node = children[index]
    return node if node.get("type") == "group" else None


def apply_action(promotions: list[dict[str, Any]], action: str, get: Getter) -> list[dict[str, Any]]:
    """One structural edit named by the button pressed; an unknown or stale one changes nothing."""
    name, _, arg = action.partition(":")
    try:
        if name == "add_promotion":
            promotions.append(new_editable(f"Promotion {len(promotions) + 1}"))
        elif name == "duplicate_promotion":
            twin = copy.deepcopy(promotions[int(arg)])
            twin["id"], twin["name"] = f"p-{secrets.token_hex(6)}", f"{twin.get('name', '')} (copy)"[:100]
            promotions.insert(int(arg) + 1, twin)
        elif name == "delete_promotion":
            del promotions[int(arg)]
        elif name in ("move_promotion", "move_promotion_to"):
            position, target = arg.split(":")
            step = {"down": 1, "up": -1}.get(target)
            _move(promotions, int(position), int(position) + step if step is not None else int(target))
        elif name == "add_tier":
            effect = promotions[int(arg)]["effect"]
            tiers = effect.setdefault("tiers", [])
            last = tiers[-1] if tiers and isinstance(tiers[-1], dict) else {}
            minimum = last.get("min_minor")
            start = minimum * 2 if isinstance(minimum, int) and minimum > 0 else 5000
            tiers.append({"min_minor": start, "percent": 5})
        elif name == "delete_tier":
            position, tier = arg.split(":")
            del promotions[int(position)]["effect"]["tiers"][int(tier)]
        elif name in _NODE_ACTIONS:
            _node_action(promotions, name, arg, action, get)
    except (ValueError, IndexError, KeyError, TypeError, AttributeError):
        pass  # a stale position (the page was older than the draft): nothing to do
    return promotions


# --- problems at their controls ------------------------------------------------------------------------

_PROMOTION = re.compile(r"promotions\[(\d+)\](?:\.(.*))?")
_TIER = re.compile(r"effect\.tiers\[(\d+)\](?:\.(min_minor|percent|amount_minor))?")
_CONTROLS = {
    "name": "name", "priority": "priority", "segment": "segment", "channels": "channels",
    "combines_with": "combines_with", "coupon": "coupon", "exclusive": "exclusive",
    "effect": "effect.kind", "effect.kind": "effect.kind", "effect.target": "effect.target",
    "effect.percent": "effect.percent", "effect.amount_minor": "effect.amount",
    "effect.buy.quantity": "effect.buy.quantity", "effect.get.quantity": "effect.get.quantity",
    "effect.get.percent": "effect.get.percent", "effect.max_per_order": "effect.max_per_order",
    "limits.total_uses": "limits.total_uses", "limits.per_customer": "limits.per_customer",
    "limits.budget_minor": "limits.budget",
}


def control_of(index: int, rest: str) -> str | None:
    """The builder control of a promotion-level path (``effect.percent`` -> ``p0.effect.percent``)."""
    if rest in _CONTROLS:
        return f"p{index}.{_CONTROLS[rest]}"
    if rest.startswith("channels["):
        return f"p{index}.channels"
    if rest.startswith("combines_with["):
        return f"p{index}.combines_with"
    if match := _TIER.fullmatch(rest):
        return f"p{index}.effect.tiers.{match[1]}.{'min' if match[2] == 'min_minor' else 'value'}"
    return None


def place_problems(problems: list[Any], where: dict[str, str]) -> Placed:
    """Each problem at the control it is about: a condition row's field, operator or value (as
    routing places them), a promotion's percent or budget... and the rest with its promotion."""
    return builder.place_problems(problems, where, item=_PROMOTION, control=control_of, prefix="promotion",
                                  top="within_class")


def promotion_fields() -> dict[str, Any]:
    """The fields a promotion's condition may test (the registry says which fields each use has)."""
    return {key: f for key, f in FIELDS.items() if "promotions" in f.uses}


# --- promotions in words ----------------------------------------------------------------------------

def _lines_words(node: Any, money: Money) -> str:
    lines = condition_lines(_condition(node), money)
    if len(lines) == 1:
        return "every line"
    head = "lines matching all of" if lines[0][1].startswith("When all") else "lines matching any of"
    if lines[0][1].startswith(("When none", "When not all")):
        head = "lines matching none of" if "none" in lines[0][1] else "lines not matching all of"
    return f"{head}: " + "; ".join(text for _, text in lines[1:])


def _number(value: Any) -> str:
    return str(value) if value not in (None, "") else "—"


def effect_words(effect: Any, money: Money) -> str:
    """An effect in words: "15 % off the order", "Buy 2, get 1 at 100 % off (at most once per order)"."""
    if not isinstance(effect, dict):
        return "(not set)"
    kind = effect.get("kind")
    amount = effect.get("amount_minor")
    if kind == "percent_off":
        what = "the order" if effect.get("target") != "lines" else _lines_words(effect.get("lines"), money)
        return f"{_number(effect.get('percent'))} % off {what}"
    if kind == "fixed_off":
        shown = money(amount) if isinstance(amount, int) else _number(amount)
        if effect.get("target") == "lines":
            return f"{shown} off each of the {_lines_words(effect.get('lines'), money)}"
        return f"{shown} off the order"
    if kind == "free_shipping":
        return "Free shipping"
    if kind == "buy_x_get_y":
        buy, got = _part(effect, "buy"), _part(effect, "get")
        times = effect.get("max_per_order")
        return (f"Buy {_number(buy.get('quantity'))} ({_lines_words(buy.get('lines'), money)}), "
                f"get {_number(got.get('quantity'))} ({_lines_words(got.get('lines'), money)}) "
                f"at {_number(got.get('percent'))} % off, at most {_number(times)} "
                f"time{'s' if times != 1 else ''} per order")
    if kind == "tiered":
        steps = []
        for tier in as_list(effect.get("tiers")):
            if not isinstance(tier, dict):
                continue
            minimum = tier.get("min_minor")
            start = money(minimum) if isinstance(minimum, int) else _number(minimum)
            if "amount_minor" in tier:
                off = money(tier["amount_minor"]) if isinstance(tier["amount_minor"], int) else _number(
                    tier["amount_minor"])
            else:
                off = f"{_number(tier.get('percent'))} %"
            steps.append(f"from {start}: {off} off")
        counted = "" if effect.get("lines") is None else f" (counting {_lines_words(effect.get('lines'), money)})"
        return f"Spend tiers{counted}: " + ("; ".join(steps) or "(none)")
    return f"(unknown effect {kind})"


def audience_words(promotion: dict[str, Any], segments: Mapping[str, str]) -> str:
    parts = []
    channels = [dict(static_choices("channels")).get(str(c), str(c)) for c in as_list(promotion.get("channels"))]
    parts.append(f"on {', '.join(channels)}" if channels else "on every channel")
    segment = promotion.get("segment")
    if segment:
        parts.append(f"customers in “{segments.get(str(segment), str(segment))}”")
    if promotion.get("coupon"):
        parts.append("with one of its coupon codes")
    return "; ".join(parts)


def limits_words(limits: Any, money: Money) -> str:
    limits = limits if isinstance(limits, dict) else {}
    parts = []
    if limits.get("total_uses") is not None:
        parts.append(f"{limits['total_uses']} uses in all")
    if limits.get("per_customer") is not None:
        parts.append(f"{limits['per_customer']} per customer")
    budget = limits.get("budget_minor")
    if budget is not None:
        parts.append(f"a budget of {money(budget) if isinstance(budget, int) else budget}")
    return ", ".join(parts) or "no limit"


def stacking_words(promotion: dict[str, Any]) -> str:
    words = f"priority {_number(promotion.get('priority', 100))}, {CLASS_NAMES[klass(promotion)]}"
    if promotion.get("exclusive"):
        return words + ": exclusive, applies alone"
    others = [str(c) for c in as_list(promotion.get("combines_with"))]
    if not others:
        return words + ": combines with no other class"
    return words + f": combines with {' and '.join(others)} promotions"


def summarize(document: dict[str, Any] | None, money: Money, segments: Mapping[str, str]) -> list[RuleSummary]:
    """Each promotion in words, in the shape routing's summaries and "what changed" lists use."""
    out = []
    for i, promotion in enumerate((document or {}).get("promotions") or []):
        if not isinstance(promotion, dict):
            continue
        when: list[Line] = condition_lines(_condition(promotion.get("when")), money)
        out.append(RuleSummary(
            id=str(promotion.get("id", i)), name=str(promotion.get("name") or f"Promotion {i + 1}"),
            enabled=promotion.get("enabled") is not False, position=i + 1, when=when,
            then=[("Gives", effect_words(promotion.get("effect"), money)),
                  ("For", audience_words(promotion, segments)),
                  ("Limits", limits_words(promotion.get("limits"), money)),
                  ("Stacking", stacking_words(promotion))]))
    return out


def within_words(document: dict[str, Any] | None) -> str:
    return WITHIN_WORDS.get(str((document or {}).get("within_class") or "priority"), WITHIN_WORDS["priority"])


def within_change(before: dict[str, Any] | None, after: dict[str, Any] | None) -> tuple[str, str] | None:
    """(before, after) in words when the rule within a class changed."""
    was, now = within_words(before), within_words(after)
    return (was, now) if was != now else None


def diff(before: dict[str, Any] | None, after: dict[str, Any] | None, money: Money,
         segments: Mapping[str, str]) -> Diff:
    """What ``after`` changes from ``before``: promotions matched by id, compared in words (the
    rule within a class is ``within_change``'s)."""
    old = {s.id: s for s in summarize(before, money, segments)}
    new = summarize(after, money, segments)
    new_ids = {s.id for s in new}
    changes: list[RuleChange] = []
    for promotion in new:
        was = old.get(promotion.id)
        if was is None:
            changes.append(RuleChange("added", promotion, ["New promotion"]))
            continue
        notes = []
        if was.name != promotion.name:
            notes.append(f"Renamed from “{was.name}”")
        if was.enabled != promotion.enabled:
            notes.append("Turned on" if promotion.enabled else "Turned off: it applies to nothing")
        aspects = [Aspect("When", was.when, promotion.when)] if was.when != promotion.when else []
        for (label, then_before), (_, then_after) in zip(was.then, promotion.then, strict=True):
            if then_before != then_after:
                aspects.append(Aspect(label, [(0, then_before)], [(0, then_after)]))
        if notes or aspects:
            changes.append(RuleChange("changed", promotion, notes, aspects))
    for was in old.values():
        if was.id not in new_ids:
            changes.append(RuleChange("removed", was, [f"Was promotion {was.position}"]))
    return Diff(changes, None)
