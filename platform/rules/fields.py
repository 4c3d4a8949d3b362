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
    "in_last_days": ("is in the last … days", "one"),
    "not_in_last_days": ("is not in the last … days", "one"),
}
# Relative to today in the company's time zone; their value is a number of days, 0..MAX_DAYS.
# "not in the last" also holds when there is no date at all (a customer who never ordered).
RELATIVE_DAYS = ("in_last_days", "not_in_last_days")
MAX_DAYS = 36_500

# What a field may be used in: routing rules, promotions' conditions, segments of customers.
USES = ("routing", "promotions", "segments")
ORDER_USES = frozenset({"routing", "promotions"})

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
    uses: frozenset[str] = ORDER_USES
    extra_operators: tuple[str, ...] = ()  # beyond its type's, such as RELATIVE_DAYS on customers' dates

    @property
    def operators(self) -> tuple[str, ...]:
        return TYPE_OPERATORS[self.type] + self.extra_operators

    @property
    def widget(self) -> str:
        """What the builder shows for a value: the type, or the choice list for choices (and for
        tags drawn from one, "tags:channels")."""
        if self.choices is not None and self.type in ("choice", "tags"):
            return f"{self.type}:{self.choices}"
        return self.type


def value_type(field: Field, op: str) -> str:
    """The type of the value an operator takes on this field: a number of days for RELATIVE_DAYS."""
    return "integer" if op in RELATIVE_DAYS else field.type


_EVERY_USE = frozenset(USES)
_SEGMENTS = frozenset({"segments"})


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
    Field("customer.tags", "Customer tags", "tags", "Customer", uses=_EVERY_USE),
    Field("customer.orders_count", "Customer's previous orders", "integer", "Customer", uses=_EVERY_USE),
    Field("now.date", "Date", "date", "Time", help="In the company's time zone."),
    Field("now.weekday", "Weekday", "choice", "Time", "weekdays", help="In the company's time zone."),
    Field("now.time", "Time of day", "time", "Time", help="In the company's time zone, HH:MM."),
    # What segments test of a customer: kept up to date by their orders (see customers.models).
    Field("customer.lifetime_value", "Lifetime value", "money", "Customer", uses=_SEGMENTS,
          help="What their orders came to, less what was cancelled or returned; in minor units."),
    Field("customer.last_order_date", "Last order date", "date", "Customer", uses=_SEGMENTS,
          extra_operators=RELATIVE_DAYS, help="In the company's time zone; empty when they never ordered."),
    Field("customer.first_order_date", "First order date", "date", "Customer", uses=_SEGMENTS,
          extra_operators=RELATIVE_DAYS, help="In the company's time zone; empty when they never ordered."),
    Field("customer.channels", "Channels ordered from", "tags", "Customer", "channels", uses=_SEGMENTS),
    Field("customer.stores", "Stores ordered from", "tags", "Customer", "locations", uses=_SEGMENTS,
          help="Stores they bought in or collected from."),
    Field("customer.categories", "Categories bought", "tags", "Customer", "categories", uses=_SEGMENTS),
    Field("customer.email_consent", "Email consent", "choice", "Customer", "consent", uses=_SEGMENTS,
          help="Agreed to receive marketing emails."),
    Field("customer.sms_consent", "SMS consent", "choice", "Customer", "consent", uses=_SEGMENTS,
          help="Agreed to receive marketing text messages."),
)}


def fields_for(use: str) -> dict[str, Field]:
    """The fields a routing rule, a promotion or a segment may test, in registry order."""
    if use not in USES:
        raise ValueError(f"unknown use {use!r}")
    return {key: f for key, f in FIELDS.items() if use in f.uses}


# Choice lists whose values are fixed; "categories" and "locations" come from the tenant's data.
OPEN_CHOICES = ("categories", "locations")


def static_choices(name: str) -> list[tuple[str, str]]:
    """(value, label) pairs of a fixed choice list."""
    if name == "channels":
        return [(c, c.capitalize()) for c in CHANNELS]
    if name == "delivery_modes":
        return [("ship", "Ship to the customer"), ("pickup", "Pickup in store")]
    if name == "consent":
        return [("yes", "Yes"), ("no", "No")]
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


def registry(use: str | None = "routing") -> list[dict[str, object]]:
    """The registry as data, for the API and the builder: the fields of one use (routing's by
    default), or every field with ``use=None``."""
    chosen = FIELDS if use is None else fields_for(use)
    return [
        {"key": f.key, "label": f.label, "type": f.type, "group": f.group, "widget": f.widget, "help": f.help,
         "operators": [{"op": op, "label": OPERATORS[op][0], "arity": OPERATORS[op][1],
                        "value_type": value_type(f, op)} for op in f.operators],
         "choices": None if f.choices is None or f.choices in OPEN_CHOICES
         else [{"value": v, "label": label} for v, label in static_choices(f.choices)],
         "uses": sorted(f.uses)}
        for f in chosen.values()
    ]
