"""The visual builder's side of the draft: documents to editable trees, form posts back to
documents, and the structural edits (add, duplicate, delete, reorder).

The builder shows conditions as groups ("all of", "any of", "none of", "not all of") of
rows; ``not`` nodes of the language become the negative group modes. Every input is named
by its position (``r0.2.1.value`` is the value of the first row in the second group of the
first rule), and every post carries the draft revision it was rendered from, so positions
always refer to the same draft.
"""

from __future__ import annotations

import copy
import re
import secrets
from collections.abc import Callable
from typing import Any, NamedTuple

from core.forms import parse_float, parse_int
from core.locale import money_input, parse_money
from rules.conditions import Problem
from rules.fields import FIELDS, OPERATORS, static_choices, value_type
from rules.routing import FILTERS, SORTS, TERMINAL, new_rule

MODES = {"all": "all of", "any": "any of", "none": "none of", "not_all": "not all of"}
Getter = Callable[[str], str | None]
GetAll = Callable[[str], list[str]]


def major(minor: Any, currency: str, locale: str | None = None) -> str:
    """Minor units as the builder shows them for editing, in the company's locale ("49,90" in
    French, "49.90" in English); anything else as it is, for correction."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        return "" if minor is None else str(minor)
    return money_input(minor, currency, locale)


def to_minor(text: str, currency: str, locale: str | None = None) -> int | str:
    """A typed amount in minor units, as people write it ("59,00 €", "59.00", "1 234,56"); the
    text itself when it is not an amount (the validator says so next to the field)."""
    minor = parse_money(text, currency, locale)
    return text if minor is None else minor


def as_list(value: Any) -> list[Any]:
    """A value the builder shows as a list, whatever a document put there."""
    return list(value) if isinstance(value, list | tuple) else ([] if value in (None, "") else [value])


def as_pair(value: Any) -> tuple[Any, Any]:
    items = as_list(value)
    return (items[0] if items else None, items[1] if len(items) > 1 else None)


# --- documents <-> builder trees ---------------------------------------------------------------

def to_tree(node: dict[str, Any] | None) -> dict[str, Any]:
    """The root group of a rule's condition as the builder shows it."""
    if node is None:
        return {"type": "group", "mode": "all", "children": []}
    tree = _node(node)
    return tree if tree["type"] == "group" else {"type": "group", "mode": "all", "children": [tree]}


def _node(node: dict[str, Any]) -> dict[str, Any]:
    if "all" in node or "any" in node:
        mode = "all" if "all" in node else "any"
        return {"type": "group", "mode": mode, "children": [_node(c) for c in node[mode] if isinstance(c, dict)]}
    if "not" in node and isinstance(node["not"], dict):
        inner = node["not"]
        if "any" in inner or "all" in inner:
            key = "any" if "any" in inner else "all"
            return {"type": "group", "mode": "none" if key == "any" else "not_all",
                    "children": [_node(c) for c in inner[key] if isinstance(c, dict)]}
        return {"type": "group", "mode": "none", "children": [_node(inner)]}
    return {"type": "leaf", "field": node.get("field"), "op": node.get("op"), "value": node.get("value")}


def from_tree(tree: dict[str, Any], path: str, json_path: str, where: dict[str, str]) -> dict[str, Any]:
    """The language node of a builder node; ``where`` maps language paths to builder paths."""
    where[json_path] = path
    if tree["type"] == "leaf":
        return {"field": tree["field"], "op": tree["op"], "value": tree["value"]}
    mode = tree["mode"]
    key = "any" if mode in ("any", "none") else "all"
    inner_path = json_path if mode in ("all", "any") else f"{json_path}.not"
    if inner_path != json_path:
        where[inner_path] = path
    children = [from_tree(child, f"{path}.{i}", f"{inner_path}.{key}[{i}]", where)
                for i, child in enumerate(tree["children"])]
    node = {key: children}
    return node if mode in ("all", "any") else {"not": node}


def root_condition(tree: dict[str, Any], rule_index: int, where: dict[str, str]) -> dict[str, Any] | None:
    """A rule's condition from its root group: an empty root means every order."""
    if not tree["children"]:
        return None
    return from_tree(tree, f"r{rule_index}", f"rules[{rule_index}].when", where)


def editable(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The rules with condition trees, for rendering and editing."""
    rules = []
    for rule in document.get("rules", []):
        rule = copy.deepcopy(rule)
        rule["tree"] = to_tree(rule.get("when"))
        rules.append(rule)
    return rules


def document_of(rules: list[dict[str, Any]], otherwise: str) -> tuple[dict[str, Any], dict[str, str]]:
    where: dict[str, str] = {}
    out = []
    for i, rule in enumerate(rules):
        tree = rule.pop("tree")
        rule["when"] = root_condition(tree, i, where)
        out.append(rule)
    return {"rules": out, "otherwise": otherwise}, where


class Placed(NamedTuple):
    """The problems of a draft, each where the builder shows it."""

    rows: dict[str, str]  # condition row or group (builder path) -> its message, shown in the row
    controls: dict[str, str]  # id of the control at fault -> message (it gets aria-invalid)
    per_rule: dict[int, list[str]]  # problems with no control of their own, by rule (-1: the document)
    links: list[tuple[str, str]]  # (id to jump to, message), in the validator's order


_FILTER_VALUE = re.compile(r"then\.filters\[(\d+)\]\.(locations|tags|km|min)")
_SORT = re.compile(r"then\.sorts\[(\d+)\](\.band)?")
_RULE = re.compile(r"rules\[(\d+)\](?:\.(.*))?")


def effect_control(rule_index: int, rest: str) -> str | None:
    """The builder control of a rule-level path (``then.filters[1].km`` -> ``r0.then.filters.1.km``)."""
    at = f"r{rule_index}"
    if rest == "name":
        return f"{at}.name"
    if rest == "then.location_types":
        return f"{at}.then.type.0"
    if rest == "then.fallback":
        return f"{at}.then.fallback.0"
    if rest in ("then.split.max_shipments", "then.split.min_order_value", "then.split.never_split_line"):
        return f"{at}.{rest}"
    if match := _FILTER_VALUE.fullmatch(rest):
        return f"{at}.then.filters.{match[1]}.{match[2]}"
    if match := _SORT.fullmatch(rest):
        return f"{at}.then.sorts.{match[1]}.{'band' if match[2] else 'by'}"
    return None


def place_problems(problems: list[Problem], where: dict[str, str], *, item: re.Pattern[str] = _RULE,
                   control: Callable[[int, str], str | None] = effect_control, prefix: str = "rule",
                   top: str = "otherwise") -> Placed:
    """Each problem at the control it is about: a condition's field, operator or value, a rule's
    name, a filter's distance, the split threshold... and the rest with its rule. ``item`` finds
    the rule (or promotion) a path is in, ``control`` its control, ``top`` the document-level one."""
    placed = Placed({}, {}, {}, [])
    for problem in problems:
        node_path, suffix = problem.path, ""
        for end in (".value", ".op", ".field"):
            if node_path.endswith(end):
                node_path, suffix = node_path.removesuffix(end), end
                break
        anchor: str | None = None
        if node_path in where:  # a condition row, or a group
            row = where[node_path]
            placed.rows.setdefault(row, problem.message)
            anchor = f"{row}{suffix or '.mode'}"
            placed.controls.setdefault(anchor, problem.message)
        elif match := item.fullmatch(problem.path):
            index = int(match[1])
            anchor = control(index, match[2] or "")
            if anchor is None:
                placed.per_rule.setdefault(index, []).append(problem.message)
                anchor = f"{prefix}-{index}"
            else:
                placed.controls.setdefault(anchor, problem.message)
        elif problem.path == top:
            anchor = top
            placed.controls.setdefault(anchor, problem.message)
        else:
            placed.per_rule.setdefault(-1, []).append(problem.message)
            anchor = "builder"
        placed.links.append((anchor, problem.message))
    return placed


# --- form values ----------------------------------------------------------------------------------

def _default_value(field_key: str, op: str) -> Any:
    field = FIELDS[field_key]
    arity = OPERATORS[op][1]
    one: Any = ""
    if field.type in ("integer", "money"):
        one = 0
    elif field.type == "time":
        one = "12:00"
    elif field.type == "choice" and field.choices:
        choices = static_choices(field.choices)
        one = choices[0][0] if choices else ""
    if arity == "list":
        return [one] if one != "" else []
    if arity == "range":
        return [one, one]
    return one


def new_leaf(field_key: str = "order.channel") -> dict[str, Any]:
    op = FIELDS[field_key].operators[0]
    return {"type": "leaf", "field": field_key, "op": op, "value": _default_value(field_key, op)}


def _scalar(field_key: str, text: str, currency: str, locale: str | None, op: str = "") -> Any:
    kind = value_type(FIELDS[field_key], op)
    text = text.strip()
    if kind == "integer":
        number = parse_int(text)
        return text if number is None else number
    if kind == "money":
        return to_minor(text, currency, locale)
    return text


def _read_leaf(leaf: dict[str, Any], path: str, get: Getter, getall: GetAll, currency: str,
               locale: str | None) -> None:
    field_key = get(f"{path}.field") or leaf["field"]
    op = get(f"{path}.op") or leaf["op"]
    if field_key not in FIELDS:
        leaf.update(field=field_key, op=op)
        return
    field = FIELDS[field_key]
    if field_key != leaf["field"] or op not in field.operators:
        # A new field (or an operator it does not have) starts from that field's defaults.
        op = op if field_key == leaf["field"] and op in field.operators else field.operators[0]
        leaf.update(field=field_key, op=op, value=_default_value(field_key, op))
        return
    arity = OPERATORS[op][1]
    if op != leaf["op"] and OPERATORS[leaf["op"]][1] != arity:
        leaf.update(op=op, value=_default_value(field_key, op))
        return
    leaf["op"] = op
    if arity == "one":
        raw = get(f"{path}.value")
        if raw is not None:
            leaf["value"] = _scalar(field_key, raw, currency, locale, op)
    elif arity == "range":
        low, high = get(f"{path}.value"), get(f"{path}.value2")
        if low is not None and high is not None:
            leaf["value"] = [_scalar(field_key, low, currency, locale), _scalar(field_key, high, currency, locale)]
    elif get(f"{path}.present") is not None:
        values = getall(f"{path}.value")
        if field.type != "choice":  # text and tags are typed as one comma-separated list
            values = [part for value in values for part in value.split(",")]
        leaf["value"] = [_scalar(field_key, v, currency, locale) for v in values if v.strip()]


def _read_group(group: dict[str, Any], path: str, get: Getter, getall: GetAll, currency: str,
                locale: str | None) -> None:
    mode = get(f"{path}.mode")
    if mode in MODES:
        group["mode"] = mode
    for i, child in enumerate(group["children"]):
        child_path = f"{path}.{i}"
        if child["type"] == "group":
            _read_group(child, child_path, get, getall, currency, locale)
        else:
            _read_leaf(child, child_path, get, getall, currency, locale)


def _number(text: str | None, default: Any) -> Any:
    if text is None:
        return default
    text = text.strip()
    whole = parse_int(text)
    if whole is not None:
        return whole
    number = parse_float(text, lo=-1e12, hi=1e12)
    return text if number is None else number


def _read_effect(rule: dict[str, Any], i: int, get: Getter, getall: GetAll, currency: str,
                 locale: str | None) -> None:
    then = rule["then"]
    prefix = f"r{i}.then"
    if get(f"{prefix}.present") is None:
        return
    types = [get(f"{prefix}.type.{k}") or "" for k in range(3)]
    then["location_types"] = list(dict.fromkeys(t for t in types if t))
    for j, item in enumerate(then.get("filters", [])):
        at = f"{prefix}.filters.{j}"
        if item["kind"] in ("include_locations", "exclude_locations"):
            item["locations"] = [v for v in getall(f"{at}.locations") if v]
        elif item["kind"] in ("include_tags", "exclude_tags"):
            item["tags"] = [t.strip() for t in (get(f"{at}.tags") or "").split(",") if t.strip()]
        elif item["kind"] == "within_distance":
            item["km"] = _number(get(f"{at}.km"), item.get("km"))
        elif item["kind"] == "capacity_left":
            item["min"] = _number(get(f"{at}.min"), item.get("min", 1))
    for j, item in enumerate(then.get("sorts", [])):
        at = f"{prefix}.sorts.{j}"
        item["by"] = get(f"{at}.by") or item["by"]
        item["band"] = _number(get(f"{at}.band") or "0", 0)
    split = then.setdefault("split", {})
    split["max_shipments"] = _number(get(f"{prefix}.split.max_shipments"), split.get("max_shipments", 1))
    threshold = get(f"{prefix}.split.min_order_value")
    split["min_order_value"] = to_minor(threshold or "0", currency, locale)
    split["never_split_line"] = get(f"{prefix}.split.never_split_line") is not None
    steps = [get(f"{prefix}.fallback.{k}") or "" for k in range(3)]
    chain: list[str] = []
    for step in steps:
        if step and step not in chain:
            chain.append(step)
            if step in TERMINAL:
                break
    then["fallback"] = chain


def read_form(document: dict[str, Any], get: Getter, getall: GetAll, currency: str,
              locale: str | None = None) -> tuple[list[dict[str, Any]], str]:
    """The draft's rules (as builder trees) with the posted values applied."""
    rules = editable(document)
    for i, rule in enumerate(rules):
        if get(f"r{i}.present") is None:
            continue
        name = get(f"r{i}.name")
        if name is not None:
            rule["name"] = name.strip()
        rule["enabled"] = get(f"r{i}.enabled") is not None
        _read_group(rule["tree"], f"r{i}", get, getall, currency, locale)
        _read_effect(rule, i, get, getall, currency, locale)
    otherwise = get("otherwise") or document.get("otherwise", "hold")
    return rules, otherwise


# --- structural edits ---------------------------------------------------------------------------

def _node_at(rules: list[dict[str, Any]], path: str) -> tuple[dict[str, Any] | None, dict[str, Any], int]:
    """(parent group, node, index in parent) for a builder path such as ``r0.2.1``."""
    head, *rest = path.split(".")
    node = rules[int(head[1:])]["tree"]
    parent, index = None, -1
    for part in rest:
        parent, index = node, int(part)
        node = node["children"][index]
    return parent, node, index


def _move(items: list[Any], index: int, to: int) -> None:
    if 0 <= index < len(items):
        item = items.pop(index)
        items.insert(max(0, min(to, len(items))), item)


def apply_action(rules: list[dict[str, Any]], action: str, get: Getter) -> list[dict[str, Any]]:
    """One structural edit named by the button pressed; an unknown or stale one changes nothing."""
    name, _, arg = action.partition(":")
    try:
        if name == "add_rule":
            rule = new_rule(f"rule_{secrets.token_hex(4)}", f"Rule {len(rules) + 1}")
            rule["tree"] = to_tree(None)
            rules.append(rule)
        elif name == "duplicate_rule":
            twin = copy.deepcopy(rules[int(arg)])
            twin["id"], twin["name"] = f"rule_{secrets.token_hex(4)}", f"{twin['name']} (copy)"[:100]
            rules.insert(int(arg) + 1, twin)
        elif name == "delete_rule":
            del rules[int(arg)]
        elif name == "move_rule":
            position, direction = arg.split(":")
            _move(rules, int(position), int(position) + (1 if direction == "down" else -1))
        elif name == "move_rule_to":
            position, to = arg.split(":")
            _move(rules, int(position), int(to))
        elif name in ("add_condition", "add_group"):
            _, group, _ = _node_at(rules, arg)
            if group["type"] == "group":
                row = new_leaf(get(f"{arg}.new_field") or "order.channel") if name == "add_condition" else {
                    "type": "group", "mode": "any", "children": [new_leaf()]}
                group["children"].append(row)
        elif name == "delete_node":
            parent, _, index = _node_at(rules, arg)
            if parent is not None:
                del parent["children"][index]
        elif name in ("move_node", "move_node_to"):
            path, target = arg.rsplit(":", 1)
            parent, _, index = _node_at(rules, path)
            if parent is not None:
                step = {"down": 1, "up": -1}.get(target)
                _move(parent["children"], index, index + step if step is not None else int(target))
        elif name in ("add_filter", "delete_filter", "add_sort", "delete_sort", "move_sort"):
            _edit_effect(rules, name, arg, get)
    except (ValueError, IndexError, KeyError):
        pass  # a stale position (the page was older than the draft): nothing to do
    return rules


def _edit_effect(rules: list[dict[str, Any]], name: str, arg: str, get: Getter) -> None:
    i, _, rest = arg.partition(":")
    then = rules[int(i)]["then"]
    if name == "add_filter":
        kind = get(f"r{i}.then.new_filter") or ""
        if kind in FILTERS:
            item: dict[str, Any] = {"kind": kind}
            if kind in ("include_locations", "exclude_locations"):
                item["locations"] = []
            elif kind in ("include_tags", "exclude_tags"):
                item["tags"] = []
            elif kind == "within_distance":
                item["km"] = 100
            elif kind == "capacity_left":
                item["min"] = 1
            then.setdefault("filters", []).append(item)
    elif name == "delete_filter":
        del then["filters"][int(rest)]
    elif name == "add_sort":
        used = {s["by"] for s in then.get("sorts", [])}
        by = get(f"r{i}.then.new_sort") or next((s for s in SORTS if s not in used), "")
        if by in SORTS and by not in used:
            then.setdefault("sorts", []).append({"by": by, "band": 0})
    elif name == "delete_sort":
        del then["sorts"][int(rest)]
    elif name == "move_sort":
        j, direction = rest.split(":")
        _move(then["sorts"], int(j), int(j) + (1 if direction == "down" else -1))

