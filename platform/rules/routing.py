"""Routing rule sets: the document, its validation, and the evaluator.

A document is an ordered list of rules, each "when <condition> then <sourcing>", plus what
to do when no rule gives a plan. Sourcing follows the vocabulary OMSs share: candidate
location types in order, filters, then sorts applied in order (optionally banded so a later
sort breaks ties), and a fallback chain for when no single location has every line.

Evaluation is pure: ``decide`` takes a compiled document, the order, a stock snapshot and the
moment, and returns a ``Decision`` with its ``Trace``. Daily capacity and safety stock are
always honoured (the snapshot's ``available`` already has safety stock taken off).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rules import cache
from rules.conditions import Context, Problem, Test, compile_condition, validate
from rules.facts import LocationFacts, Moment, OrderFacts, StockSnapshot
from rules.fields import LOCATION_TYPES

FILTERS = {
    "include_locations": "Only these locations",
    "exclude_locations": "Not these locations",
    "include_tags": "Only locations tagged",
    "exclude_tags": "Not locations tagged",
    "within_distance": "Within a distance of the destination",
    "has_every_line": "Has every line in stock",
    "capacity_left": "Has daily capacity left",
    "offers_delivery_mode": "Offers the order's delivery mode",
}
SORTS = {
    "distance": "Nearest to the destination",
    "stock": "Most units of the order in stock",
    "priority": "Location priority (lowest number first)",
    "shipping_cost": "Cheapest shipping",
    "capacity_headroom": "Most daily capacity left",
}
SORT_UNITS = {"distance": "km", "stock": "units", "priority": "", "shipping_cost": "minor units",
              "capacity_headroom": "orders"}
FALLBACKS = {
    "split": "Split across locations",
    "ship_to_store": "Ship to the pickup store from another location",
    "next_rule": "Try the next rule",
    "backorder": "Backorder until stock arrives",
    "hold": "Hold for customer service",
}
TERMINAL = ("next_rule", "backorder", "hold")
OUTCOMES = ("backorder", "hold")
MAX_RULES = 200
MAX_SHIPMENTS = 20


def new_rule(rule_id: str, name: str = "New rule") -> dict[str, Any]:
    """A rule as the builder starts it: every order, stores then warehouses, nearest first."""
    return {
        "id": rule_id, "name": name, "enabled": True, "when": None,
        "then": {
            "location_types": ["warehouse", "store"],
            "filters": [{"kind": "offers_delivery_mode"}],
            "sorts": [{"by": "distance", "band": 0}, {"by": "priority", "band": 0}],
            "split": {"max_shipments": 2, "min_order_value": 0, "never_split_line": False},
            "fallback": ["split", "hold"],
        },
    }


def empty_document() -> dict[str, Any]:
    return {"rules": [], "otherwise": "hold"}


# --- validation -----------------------------------------------------------------------------

def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_number(value: Any, low: float) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= low


def _strings(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) and v.strip() for v in value)


def _validate_effect(then: Any, path: str, where: str) -> list[Problem]:
    if not isinstance(then, dict):
        return [Problem(path, f"{where}: 'then' must say how to source the order")]
    problems: list[Problem] = []
    types = then.get("location_types")
    if not isinstance(types, list) or not types:
        problems.append(Problem(f"{path}.location_types", f"{where}: choose at least one location type to try"))
    elif any(t not in LOCATION_TYPES for t in types) or len(set(types)) != len(types):
        problems.append(Problem(f"{path}.location_types",
                                f"{where}: location types are {', '.join(LOCATION_TYPES)}, each at most once"))
    filters = then.get("filters", [])
    if not isinstance(filters, list):
        problems.append(Problem(f"{path}.filters", f"{where}: filters must be a list"))
        filters = []
    for i, item in enumerate(filters):
        at, row = f"{path}.filters[{i}]", f"{where}, filter {i + 1}"
        kind = item.get("kind") if isinstance(item, dict) else None
        if not isinstance(kind, str) or kind not in FILTERS:
            problems.append(Problem(at, f"{row}: unknown filter {kind!r}"))
        elif kind in ("include_locations", "exclude_locations") and not _strings(item.get("locations")):
            problems.append(Problem(f"{at}.locations", f"{row} ({FILTERS[kind]}): name at least one location"))
        elif kind in ("include_tags", "exclude_tags") and not _strings(item.get("tags")):
            problems.append(Problem(f"{at}.tags", f"{row} ({FILTERS[kind]}): name at least one tag"))
        elif kind == "within_distance" and not (_is_number(item.get("km"), 0) and item["km"] > 0):
            problems.append(Problem(f"{at}.km", f"{row} ({FILTERS[kind]}): the distance is a number of km above 0"))
        elif kind == "capacity_left" and not _is_int(item.get("min", 1), 1, 1_000_000):
            problems.append(Problem(f"{at}.min", f"{row} ({FILTERS[kind]}): the minimum is a whole number from 1"))
    sorts = then.get("sorts", [])
    if not isinstance(sorts, list):
        problems.append(Problem(f"{path}.sorts", f"{where}: sorts must be a list"))
        sorts = []
    seen: set[str] = set()
    for i, item in enumerate(sorts):
        at, row = f"{path}.sorts[{i}]", f"{where}, sort {i + 1}"
        by = item.get("by") if isinstance(item, dict) else None
        if not isinstance(by, str) or by not in SORTS:
            problems.append(Problem(at, f"{row}: unknown sort {by!r}"))
        elif by in seen:
            problems.append(Problem(at, f"{row}: {SORTS[by]} is already a sort of this rule"))
        elif not _is_number(item.get("band", 0), 0):
            problems.append(Problem(f"{at}.band", f"{row} ({SORTS[by]}): the band is a number, 0 for none"))
        seen.add(str(by))
    split = then.get("split", {})
    if not isinstance(split, dict):
        problems.append(Problem(f"{path}.split", f"{where}: split must be an object"))
    else:
        if not _is_int(split.get("max_shipments", 1), 1, MAX_SHIPMENTS):
            problems.append(Problem(f"{path}.split.max_shipments",
                                    f"{where}: at most 1 to {MAX_SHIPMENTS} shipments"))
        if not _is_int(split.get("min_order_value", 0), 0, 10**12):
            problems.append(Problem(f"{path}.split.min_order_value",
                                    f"{where}: the order value to split above is a whole number of minor units"))
        if not isinstance(split.get("never_split_line", False), bool):
            problems.append(Problem(f"{path}.split.never_split_line", f"{where}: never split a line is yes or no"))
    fallback = then.get("fallback")
    if not isinstance(fallback, list) or not fallback or any(not isinstance(step, str) or step not in FALLBACKS
                                                              for step in fallback):
        problems.append(Problem(f"{path}.fallback",
                                f"{where}: the fallback is a list of steps among {', '.join(FALLBACKS)}"))
    elif fallback[-1] not in TERMINAL or any(step in TERMINAL for step in fallback[:-1]) \
            or len(set(fallback)) != len(fallback):
        problems.append(Problem(f"{path}.fallback",
                                f"{where}: the fallback ends with exactly one of next rule, backorder or hold"))
    return problems


def validate_document(document: Any) -> list[Problem]:
    """Every problem in a routing document, each naming its rule and row."""
    if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
        return [Problem("rules", "A routing document has a list of rules")]
    problems: list[Problem] = []
    rules = document["rules"]
    if len(rules) > MAX_RULES:
        problems.append(Problem("rules", f"At most {MAX_RULES} rules"))
    if document.get("otherwise", "hold") not in OUTCOMES:
        problems.append(Problem("otherwise", "When no rule applies, the order is held or backordered"))
    ids: set[str] = set()
    for i, rule in enumerate(rules):
        path = f"rules[{i}]"
        if not isinstance(rule, dict):
            problems.append(Problem(path, f"Rule {i + 1}: a rule is an object with name, when and then"))
            continue
        name = rule.get("name")
        where = f"Rule {i + 1} “{name}”" if isinstance(name, str) and name.strip() else f"Rule {i + 1}"
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            problems.append(Problem(f"{path}.name", f"{where}: give the rule a name of up to 100 characters"))
        rule_id = rule.get("id")
        if not isinstance(rule_id, str) or not rule_id or rule_id in ids:
            problems.append(Problem(f"{path}.id", f"{where}: each rule needs its own id"))
        ids.add(str(rule_id))
        if not isinstance(rule.get("enabled", True), bool):
            problems.append(Problem(f"{path}.enabled", f"{where}: enabled is true or false"))
        if rule.get("when") is not None:
            problems += [Problem(p.path, f"{where}, condition {p.message}")
                         for p in validate(rule["when"], f"{path}.when")]
        problems += _validate_effect(rule.get("then"), f"{path}.then", where)
    return problems


# --- decisions and traces -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Shipment:
    location: str
    lines: dict[str, int]
    ship_to_store: str | None = None  # a transfer to this pickup store
    pickup: bool = False  # collected where it is
    distance_km: float | None = None
    shipping_cost_minor: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"location": self.location, "lines": [{"sku": s, "quantity": q} for s, q in self.lines.items()],
                "ship_to_store": self.ship_to_store, "pickup": self.pickup,
                "distance_km": None if self.distance_km is None else round(self.distance_km, 1),
                "shipping_cost_minor": self.shipping_cost_minor}


class RuleTrace:
    """What happened under one matched rule: each location considered, then the plan's steps."""

    __slots__ = ("considered", "steps")

    def __init__(self) -> None:
        # (code, why it was rejected, None) or (code, "ranked", raw scores), ranked ones in rank order
        self.considered: list[tuple[str, str, tuple[float, ...] | None]] = []
        self.steps: list[str] = []


@dataclass(slots=True)
class Trace:
    context: Context
    tried: list[tuple[CompiledRule, RuleTrace | None]] = field(default_factory=list)  # None: did not match
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> list[dict[str, Any]]:
        """The trace in words: each rule tried, why it matched or not, each location and its score."""
        from rules.conditions import explain

        out: list[dict[str, Any]] = []
        for rule, rule_trace in self.tried:
            locations = []
            position = 0
            sorts = [by for by, _ in rule.sorts]
            for code, verdict, raw in rule_trace.considered if rule_trace else ():
                entry: dict[str, Any] = {"location": code, "verdict": verdict}
                if raw is not None:
                    position += 1
                    entry["verdict"] = f"ranked {position}"
                    entry["scores"] = {by: _score_text(by, value) for by, value in zip(sorts, raw, strict=True)}
                locations.append(entry)
            out.append({"rule": rule.name, "position": rule.index + 1, "matched": rule_trace is not None,
                        "why": explain(rule.when, self.context), "locations": locations,
                        "steps": rule_trace.steps if rule_trace else []})
        if self.notes:
            out.append({"rule": None, "position": None, "matched": None, "why": self.notes, "locations": [],
                        "steps": []})
        return out


def _score_text(by: str, value: float) -> str:
    if value in (math.inf, -math.inf):
        return "unknown" if by in ("distance", "shipping_cost") else "no limit"
    if by in ("stock", "capacity_headroom"):
        value = -value
    if isinstance(value, float):
        value = round(value, 1)
    unit = SORT_UNITS[by]
    return f"{value} {unit}".strip()


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: str  # fulfil | backorder | hold
    rule: str | None
    shipments: tuple[Shipment, ...]
    reason: str
    trace: Trace

    @property
    def location_codes(self) -> tuple[str, ...]:
        return tuple(s.location for s in self.shipments)

    def to_dict(self, *, with_trace: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {"outcome": self.outcome, "rule": self.rule, "reason": self.reason,
                                "shipments": [s.to_dict() for s in self.shipments]}
        if with_trace:
            data["trace"] = self.trace.to_dict()
        return data


# --- the evaluator ----------------------------------------------------------------------------

def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 6371.0 * 2 * math.asin(math.sqrt(min(1.0, a)))


class _Origin:
    """Great-circle distances in km from one point (the destination, or the pickup store),
    inf when either end has no coordinates."""

    __slots__ = ("cache", "cos_lat", "geo", "lon", "sin_lat")

    def __init__(self, lat: float | None, lon: float | None, geo: dict[str, tuple[float, float, float]]) -> None:
        self.geo = geo if lat is not None and lon is not None else {}
        self.sin_lat = math.sin(math.radians(lat or 0.0))
        self.cos_lat = math.cos(math.radians(lat or 0.0))
        self.lon = math.radians(lon or 0.0)
        self.cache: dict[str, float] = {}

    def to(self, loc: LocationFacts) -> float:
        known = self.cache.get(loc.code)
        if known is None:
            point = self.geo.get(loc.code)
            if point is None:
                known = math.inf
            else:
                sin_lat, cos_lat, lon = point
                cosine = self.sin_lat * sin_lat + self.cos_lat * cos_lat * math.cos(lon - self.lon)
                known = 6371.0 * math.acos(max(-1.0, min(1.0, cosine)))
            self.cache[loc.code] = known
        return known


def _fillable(loc: LocationFacts, wanted: dict[str, int]) -> int:
    available = loc.available
    units = 0
    for sku, qty in wanted.items():
        have = available.get(sku, 0)
        units += have if have < qty else qty
    return units



def _has_all(loc: LocationFacts, wanted: dict[str, int]) -> bool:
    available = loc.available
    for sku, qty in wanted.items():  # noqa: SIM110 (hot path: a plain loop beats all() with a generator)
        if available.get(sku, 0) < qty:
            return False
    return True


class CompiledRule:
    __slots__ = ("exclude_codes", "exclude_tags", "fallback", "include_codes", "include_tags", "index", "max_km",
                 "max_shipments", "min_capacity", "min_split_value", "name", "needs_every_line", "never_split_line",
                 "offers_mode", "sorts", "test", "types", "when")

    def __init__(self, index: int, rule: dict[str, Any]) -> None:
        then = rule["then"]
        self.index = index
        self.name: str = rule["name"]
        self.when: dict[str, Any] | None = rule.get("when")
        self.test: Test = compile_condition(self.when)
        self.types = {kind: tier for tier, kind in enumerate(then["location_types"])}
        self.include_codes: frozenset[str] | None = None
        self.exclude_codes: frozenset[str] = frozenset()
        self.include_tags: tuple[frozenset[str], ...] = ()  # each filter: at least one of its tags
        self.exclude_tags: frozenset[str] = frozenset()
        self.max_km: float | None = None
        self.needs_every_line = False
        self.min_capacity = 1
        self.offers_mode = False
        for item in then.get("filters", []):
            kind = item["kind"]
            if kind == "include_locations":
                codes = frozenset(item["locations"])
                self.include_codes = codes if self.include_codes is None else self.include_codes & codes
            elif kind == "exclude_locations":
                self.exclude_codes |= frozenset(item["locations"])
            elif kind == "include_tags":
                self.include_tags += (frozenset(item["tags"]),)
            elif kind == "exclude_tags":
                self.exclude_tags |= frozenset(item["tags"])
            elif kind == "within_distance":
                self.max_km = float(item["km"]) if self.max_km is None else min(self.max_km, float(item["km"]))
            elif kind == "has_every_line":
                self.needs_every_line = True
            elif kind == "capacity_left":
                self.min_capacity = max(self.min_capacity, int(item.get("min", 1)))
            elif kind == "offers_delivery_mode":
                self.offers_mode = True
        self.sorts: tuple[tuple[str, float], ...] = tuple((s["by"], float(s.get("band") or 0))
                                                          for s in then.get("sorts", []))
        split = then.get("split", {})
        self.max_shipments: int = split.get("max_shipments", 1)
        self.min_split_value: int = split.get("min_order_value", 0)
        self.never_split_line: bool = split.get("never_split_line", False)
        self.fallback: tuple[str, ...] = tuple(then["fallback"])

    # Ranking: who may ship this order under this rule, best first.
    def _rejection(self, loc: LocationFacts, wanted: dict[str, int], km: float,
                   pickup_store: str | None) -> str | None:
        if loc.kind not in self.types:
            return f"rejected: a {loc.kind} is not among this rule's location types"
        if loc.capacity_left is not None and loc.capacity_left < self.min_capacity:
            return f"rejected: daily capacity reached ({loc.capacity_left} left)"
        if self.include_codes is not None and loc.code not in self.include_codes:
            return "rejected: not among the locations this rule allows"
        if loc.code in self.exclude_codes:
            return "rejected: excluded by this rule"
        if self.include_tags and any(tags.isdisjoint(loc.tags) for tags in self.include_tags):
            return "rejected: has none of the tags this rule requires"
        if self.exclude_tags and not self.exclude_tags.isdisjoint(loc.tags):
            return "rejected: has a tag this rule excludes"
        if self.offers_mode:
            if loc.code == pickup_store and not loc.collects:
                return "rejected: does not offer click & collect"
            if loc.code != pickup_store and not loc.ships:
                return "rejected: does not ship"
        if self.max_km is not None:
            if km == math.inf:
                return "rejected: distance unknown (no coordinates)"
            if km > self.max_km:
                return f"rejected: {km:.0f} km away, beyond {self.max_km:g} km"
        if self.needs_every_line and not _has_all(loc, wanted):
            return f"rejected: has {_fillable(loc, wanted)} of the {sum(wanted.values())} units"
        return None

    def _key(self, loc: LocationFacts, wanted: dict[str, int], km: float,
             ) -> tuple[tuple[Any, ...], tuple[float, ...]]:
        """The sort key (banded scores, then the code for a stable order) and the raw scores."""
        key: list[Any] = [self.types[loc.kind]]
        raw: list[float] = []
        for by, band in self.sorts:
            value: float
            if by == "distance":
                value = km
            elif by == "stock":
                value = -_fillable(loc, wanted)
            elif by == "priority":
                value = loc.priority
            elif by == "shipping_cost":
                value = math.inf if loc.shipping_cost_minor is None else loc.shipping_cost_minor
            else:
                value = -math.inf if loc.capacity_left is None else -loc.capacity_left
            raw.append(value)
            key.append(value // band if band and value != math.inf and value != -math.inf else value)
        key.append(loc.code)
        return tuple(key), tuple(raw)

    def rank(self, order: OrderFacts, wanted: dict[str, int], snapshot: StockSnapshot, origin: _Origin,
             pickup_store: str | None, trace: RuleTrace) -> list[LocationFacts]:
        scored: list[tuple[tuple[Any, ...], tuple[float, ...], LocationFacts]] = []
        considered = trace.considered
        uses_distance = self.max_km is not None or any(by == "distance" for by, _ in self.sorts)
        for loc in snapshot.locations:
            km = origin.to(loc) if uses_distance else math.inf
            reason = self._rejection(loc, wanted, km, pickup_store)
            if reason is None:
                key, raw = self._key(loc, wanted, km)
                scored.append((key, raw, loc))
            else:
                considered.append((loc.code, reason, None))
        scored.sort()  # keys end with the unique location code, so ties never reach the rest
        considered.extend((loc.code, "ranked", raw) for _, raw, loc in scored)
        return [loc for _, _, loc in scored]

    def plan(self, order: OrderFacts, wanted: dict[str, int], snapshot: StockSnapshot,
             trace: RuleTrace, whole: Trace) -> Decision | None:
        """The plan under this rule, an outcome of its fallback, or None to try the next rule."""
        pickup = order.delivery_mode == "pickup"
        store = snapshot.by_code.get(order.pickup_location or "") if pickup else None
        if pickup and store is None:
            trace.steps.append(f"pickup store {order.pickup_location!r} is unknown or inactive")
        origin = (_Origin(store.latitude, store.longitude, snapshot.geo) if store
                  else _Origin(order.latitude, order.longitude, snapshot.geo))
        ranked = self.rank(order, wanted, snapshot, origin, store.code if store else None, trace)
        # A pickup order is collected at its store, or sent there: never shipped to the customer instead.
        primary = [loc for loc in ranked if store is not None and loc.code == store.code] if pickup else ranked
        for loc in primary:
            if _has_all(loc, wanted):
                trace.steps.append(f"{loc.code} has every line: one shipment")
                return self._decision(whole, (self._shipment(loc, wanted, origin, store),))
        trace.steps.append("no single location has every line" if not pickup else
                           "the pickup store does not have every line")
        for step in self.fallback:
            if step == "split":
                if pickup and store is None:
                    trace.steps.append("split: a pickup order needs its store")
                    continue
                shipments = self._split(order, wanted, ranked, primary if pickup else [], origin, store, trace)
                if shipments:
                    return self._decision(whole, shipments)
            elif step == "ship_to_store":
                if store is None or not store.receives_transfers:
                    trace.steps.append("ship to store: only for a pickup order at a store that receives transfers")
                    continue
                for loc in ranked:
                    if loc.code != store.code and _has_all(loc, wanted):
                        trace.steps.append(f"ship to store: {loc.code} sends every line to {store.code}")
                        return self._decision(whole, (self._shipment(loc, wanted, origin, store),))
                trace.steps.append("ship to store: no other location has every line")
            elif step == "next_rule":
                trace.steps.append("fallback: try the next rule")
                return None
            else:
                trace.steps.append(f"fallback: {FALLBACKS[step].lower()}")
                return Decision(step, self.name, (), FALLBACKS[step], whole)
        return None

    def _shipment(self, loc: LocationFacts, lines: dict[str, int], origin: _Origin,
                  store: LocationFacts | None) -> Shipment:
        at_store = store is not None and loc.code == store.code
        return Shipment(location=loc.code, lines=dict(lines), ship_to_store=store.code if store and not at_store
                        else None, pickup=at_store, distance_km=None if at_store else _finite(origin.to(loc)),
                        shipping_cost_minor=None if at_store else loc.shipping_cost_minor)

    def _split(self, order: OrderFacts, wanted: dict[str, int], ranked: list[LocationFacts],
               first: list[LocationFacts], origin: _Origin, store: LocationFacts | None,
               trace: RuleTrace) -> tuple[Shipment, ...]:
        if order.total_minor < self.min_split_value:
            trace.steps.append(f"split: the order ({order.total_minor}) is below the split threshold "
                               f"({self.min_split_value})")
            return ()
        remaining = dict(wanted)
        shipments: list[Shipment] = []
        sources = first + [loc for loc in ranked if loc not in first]
        for loc in sources:
            take: dict[str, int] = {}
            for sku, qty in remaining.items():
                have = loc.available.get(sku, 0)
                if have >= qty or (have > 0 and not self.never_split_line):
                    take[sku] = min(have, qty)
            if not take:
                continue
            if store is not None and loc.code != store.code and not store.receives_transfers:
                continue
            shipments.append(self._shipment(loc, take, origin, store))
            for sku, qty in take.items():
                remaining[sku] -= qty
                if not remaining[sku]:
                    del remaining[sku]
            if not remaining:
                break
        if remaining:
            trace.steps.append(f"split: the locations this rule allows lack {sum(remaining.values())} units")
            return ()
        if len(shipments) > self.max_shipments:
            trace.steps.append(f"split: needs {len(shipments)} shipments, the limit is {self.max_shipments}")
            return ()
        trace.steps.append(f"split into {len(shipments)} shipments: "
                           + ", ".join(f"{s.location} ({sum(s.lines.values())} units)" for s in shipments))
        return tuple(shipments)

    def _decision(self, whole: Trace, shipments: tuple[Shipment, ...]) -> Decision:
        return Decision("fulfil", self.name, shipments, f"rule “{self.name}”", whole)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class CompiledRouting:
    rules: tuple[CompiledRule, ...]
    otherwise: str
    fields: frozenset[str] = frozenset()  # the fields its conditions read: facts that cost a query are skipped


def _fields_of(node: Any) -> set[str]:
    if not isinstance(node, dict):
        return set()
    if "field" in node:
        return {str(node["field"])}
    found: set[str] = set()
    for key in ("all", "any"):
        for child in node.get(key, ()):
            found |= _fields_of(child)
    return found | _fields_of(node.get("not"))


def compile_document(document: dict[str, Any]) -> CompiledRouting:
    """A valid document, ready to decide; disabled rules are left out."""
    enabled = [(i, rule) for i, rule in enumerate(document["rules"]) if rule.get("enabled", True)]
    return CompiledRouting(tuple(CompiledRule(i, rule) for i, rule in enabled), document.get("otherwise", "hold"),
                           frozenset().union(*(_fields_of(rule.get("when")) for _, rule in enabled)))


def decide(routing: CompiledRouting, order: OrderFacts, snapshot: StockSnapshot, moment: Moment) -> Decision:
    """Where this order ships from, and why."""
    context = Context(order, moment)
    trace = Trace(context)
    wanted = order.quantities()
    for rule in routing.rules:
        if not rule.test(context):
            trace.tried.append((rule, None))
            continue
        rule_trace = RuleTrace()
        trace.tried.append((rule, rule_trace))
        decision = rule.plan(order, wanted, snapshot, rule_trace, trace)
        if decision is not None:
            return decision
    trace.notes.append("no rule gave a plan: " + FALLBACKS[routing.otherwise].lower())
    return Decision(routing.otherwise, None, (), "no rule gave a plan", trace)


class CompiledCache(cache.CompiledCache[CompiledRouting]):
    """Compiled routing versions by (tenant, version): versions are immutable, so entries never go stale."""

    def __init__(self, size: int = 512) -> None:
        super().__init__(compile_document, size)


CACHE = CompiledCache()
