"""The field registry: every field a condition may test, with its type, label, operators
and value widget. The validator, the compiler and the visual builder are all driven by it,
so adding a field here is all it takes to offer it everywhere.

``line.*`` fields are true when *any* line of the order matches.
"""

from __future__ import annotations

from dataclasses import dataclass

import pycountry

CHANNELS = ("web", "store", "marketplace", "api", "phone")
DELIVERY_MODES = ("ship", "pickup")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LOCATION_TYPES = ("warehouse", "store", "marketplace")

# Operators: (code, label, arity) where arity is "one" value, a "list" of values or a "range" [low, high].
OPERATORS: dict[str, tuple[str, str]] = {
    "eq": ("is", "one"),
    "ne": ("is not", "one"),
    "in": ("is one of", "list"),
    "not_in": ("is none of", "list"),
    "starts_with": ("starts with", "one"),
    "contains": ("contains", "one"),
    "lt": ("is less than", "one"),
    "lte": ("is at most", "one"),
    "gt": ("is more than", "one"),
    "gte": ("is at least", "one"),
    "between": ("is between", "range"),
    "before": ("is before", "one"),
    "after": ("is after", "one"),
    "on_or_before": ("is on or before", "one"),
    "on_or_after": ("is on or after", "one"),
    "has": ("has", "one"),
    "has_any": ("has any of", "list"),
    "has_all": ("has all of", "list"),
    "has_none": ("has none of", "list"),
}

TYPE_OPERATORS: dict[str, tuple[str, ...]] = {
    "text": ("eq", "ne", "in", "not_in", "starts_with", "contains"),
    "choice": ("eq", "ne", "in", "not_in"),
    "integer": ("eq", "ne", "lt", "lte", "gt", "gte", "between"),
    "money": ("eq", "ne", "lt", "lte", "gt", "gte", "between"),
    "date": ("eq", "ne", "before", "after", "on_or_before", "on_or_after", "between"),
    "time": ("before", "after", "between"),
    "tags": ("has", "has_any", "has_all", "has_none"),
}


@dataclass(frozen=True, slots=True)
class Field:
    key: str
    label: str
    type: str  # a key of TYPE_OPERATORS
    group: str
    choices: str | None = None  # name of a choice list, see ``static_choices`` and the builder
    help: str = ""

    @property
    def operators(self) -> tuple[str, ...]:
        return TYPE_OPERATORS[self.type]

    @property
    def widget(self) -> str:
        """What the builder shows for a value: the type, or the choice list for choices."""
        return f"choice:{self.choices}" if self.type == "choice" else self.type


FIELDS: dict[str, Field] = {f.key: f for f in (
    Field("order.channel", "Channel", "choice", "Order", "channels"),
    Field("order.total", "Order total", "money", "Order", help="In minor units (cents) of the order's currency."),
    Field("order.currency", "Currency", "choice", "Order", "currencies"),
    Field("order.delivery_mode", "Delivery mode", "choice", "Order", "delivery_modes"),
    Field("order.lines_count", "Number of lines", "integer", "Order"),
    Field("order.units", "Number of units", "integer", "Order"),
    Field("order.pickup_location", "Pickup store", "choice", "Order", "locations"),
    Field("destination.country", "Destination country", "choice", "Destination", "countries"),
    Field("destination.postcode", "Destination postcode", "text", "Destination"),
    Field("line.sku", "Line SKU", "text", "Lines", help="True when any line matches."),
    Field("line.category", "Line category", "choice", "Lines", "categories", help="True when any line matches."),
    Field("line.quantity", "Line quantity", "integer", "Lines", help="True when any line matches."),
    Field("customer.tags", "Customer tags", "tags", "Customer"),
    Field("customer.orders_count", "Customer's previous orders", "integer", "Customer"),
    Field("now.date", "Date", "date", "Time", help="In the company's time zone."),
    Field("now.weekday", "Weekday", "choice", "Time", "weekdays", help="In the company's time zone."),
    Field("now.time", "Time of day", "time", "Time", help="In the company's time zone, HH:MM."),
)}

# Choice lists whose values are fixed; "categories" and "locations" come from the tenant's data.
OPEN_CHOICES = ("categories", "locations")


def static_choices(name: str) -> list[tuple[str, str]]:
    """(value, label) pairs of a fixed choice list."""
    if name == "channels":
        return [(c, c.capitalize()) for c in CHANNELS]
    if name == "delivery_modes":
        return [("ship", "Ship to the customer"), ("pickup", "Pickup in store")]
    if name == "weekdays":
        return [(d, d.capitalize()) for d in WEEKDAYS]
    if name == "countries":
        return sorted(((c.alpha_2, f"{c.name} ({c.alpha_2})") for c in pycountry.countries), key=lambda p: p[1])
    if name == "currencies":
        return sorted((c.alpha_3, f"{c.alpha_3} — {c.name}") for c in pycountry.currencies)
    return []


_STATIC_VALUES: dict[str, frozenset[str]] = {}


def allowed_values(name: str) -> frozenset[str] | None:
    """The values a fixed choice list allows; None for the tenant's open lists."""
    if name in OPEN_CHOICES:
        return None
    if name not in _STATIC_VALUES:
        _STATIC_VALUES[name] = frozenset(v for v, _ in static_choices(name))
    return _STATIC_VALUES[name]


def registry() -> list[dict[str, object]]:
    """The registry as data, for the API and the builder."""
    return [
        {"key": f.key, "label": f.label, "type": f.type, "group": f.group, "widget": f.widget, "help": f.help,
         "operators": [{"op": op, "label": OPERATORS[op][0], "arity": OPERATORS[op][1]} for op in f.operators],
         "choices": None if f.choices is None or f.choices in OPEN_CHOICES
         else [{"value": v, "label": label} for v, label in static_choices(f.choices)]}
        for f in FIELDS.values()
    ]
