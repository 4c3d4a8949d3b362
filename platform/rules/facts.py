"""What the rules see: an order, the time it is judged at, and the locations with their stock.

Plain data with no I/O, so that production, simulation and benchmarks feed the same
evaluator. ``rules.snapshot`` builds these from the database.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from rules.fields import WEEKDAYS


@dataclass(frozen=True, slots=True)
class LineFacts:
    sku: str
    quantity: int
    category: str | None = None
    unit_price_minor: int = 0


@dataclass(frozen=True, slots=True)
class OrderFacts:
    lines: tuple[LineFacts, ...]
    reference: str = "sample"
    channel: str = "web"
    currency: str = "EUR"
    total_minor: int = 0
    delivery_mode: str = "ship"
    country: str | None = None
    postcode: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    pickup_location: str | None = None
    customer_tags: frozenset[str] = frozenset()
    customer_orders_count: int = 0
    placed_at: datetime | None = None

    @property
    def units(self) -> int:
        return sum(line.quantity for line in self.lines)

    def quantities(self) -> dict[str, int]:
        """Units wanted per SKU (lines of the same SKU added up)."""
        wanted: dict[str, int] = {}
        for line in self.lines:
            wanted[line.sku] = wanted.get(line.sku, 0) + line.quantity
        return wanted


@dataclass(frozen=True, slots=True)
class LocationFacts:
    code: str
    kind: str
    available: dict[str, int]  # per SKU: on hand - reserved - safety stock, never below 0
    name: str = ""
    country: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    priority: int = 100
    tags: frozenset[str] = frozenset()
    ships: bool = True  # ships to customers (warehouse) or ships from store
    collects: bool = False  # click & collect
    receives_transfers: bool = False
    capacity_left: int | None = None  # orders it can still take today; None: no limit
    shipping_cost_minor: int | None = None


@dataclass(frozen=True, slots=True)
class StockSnapshot:
    locations: tuple[LocationFacts, ...]
    taken_at: datetime | None = None
    by_code: dict[str, LocationFacts] = field(default_factory=dict, compare=False)
    # Per location with coordinates: sin and cos of the latitude and the longitude, in radians.
    geo: dict[str, tuple[float, float, float]] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.by_code:  # made by ``replacing``: the indexes are already there
            return
        self.by_code.update({loc.code: loc for loc in self.locations})
        for loc in self.locations:
            if loc.latitude is not None and loc.longitude is not None:
                lat = math.radians(loc.latitude)
                self.geo[loc.code] = (math.sin(lat), math.cos(lat), math.radians(loc.longitude))


    def replacing(self, changed: dict[str, LocationFacts]) -> StockSnapshot:
        """The same snapshot with some locations' facts replaced (same codes and places)."""
        by_code = {**self.by_code, **changed}
        return StockSnapshot(tuple(by_code[loc.code] for loc in self.locations), self.taken_at, by_code, self.geo)


class Moment:
    """The time a rule is judged at, in the tenant's time zone (``now.*`` fields)."""

    __slots__ = ("date", "local", "time", "weekday")

    def __init__(self, at: datetime, timezone: str) -> None:
        self.local = at.astimezone(ZoneInfo(timezone))
        self.date: date = self.local.date()
        self.weekday = WEEKDAYS[self.local.weekday()]
        self.time = f"{self.local.hour:02d}:{self.local.minute:02d}"
