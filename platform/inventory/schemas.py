"""API input and output types for locations, products, inventory and feeds."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from core.limits import CODE_MESSAGE, CODE_PATTERN, COUNTRY_MESSAGE, QUANTITY_MAX, TIMEZONE_MESSAGE, Money

Code = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=CODE_PATTERN, extra={"message": CODE_MESSAGE})]
# Stock figures are 32-bit in the database; a billion units anywhere is a typo, not stock.
MAX_QUANTITY = QUANTITY_MAX
NonNegative = Annotated[int, msgspec.Meta(ge=0, le=MAX_QUANTITY)]
Quantity = Annotated[int, msgspec.Meta(ge=-MAX_QUANTITY, le=MAX_QUANTITY)]


class LocationIn(msgspec.Struct, forbid_unknown_fields=True):
    code: Code
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    kind: Literal["warehouse", "store", "marketplace"]
    country: Annotated[str, msgspec.Meta(min_length=2, max_length=2, extra={"message": COUNTRY_MESSAGE})]
    timezone: Annotated[str, msgspec.Meta(min_length=1, max_length=64, extra={"message": TIMEZONE_MESSAGE})]
    address_line1: Annotated[str, msgspec.Meta(max_length=200)] = ""
    city: Annotated[str, msgspec.Meta(max_length=100)] = ""
    postcode: Annotated[str, msgspec.Meta(max_length=20)] = ""
    latitude: Annotated[float, msgspec.Meta(ge=-90, le=90)] | None = None
    longitude: Annotated[float, msgspec.Meta(ge=-180, le=180)] | None = None
    opening_hours: dict[str, list[list[str]]] = {}
    ships_to_customers: bool = False
    click_and_collect: bool = False
    ship_from_store: bool = False
    receives_transfers: bool = False
    accepts_returns: bool = False
    daily_capacity: NonNegative | None = None
    shipping_cost_minor: Money | None = None
    priority: Annotated[int, msgspec.Meta(ge=-1_000_000, le=1_000_000)] = 100
    # Hours from a fulfilment's creation to shipped or ready for pickup; past them it shows as late.
    promise_hours: Annotated[int, msgspec.Meta(ge=1, le=720)] = 24  # 30 days at most, as the column's CHECK
    tags: Annotated[list[Annotated[str, msgspec.Meta(min_length=1, max_length=50)]], msgspec.Meta(max_length=50)] = []
    status: Literal["active", "paused"] = "active"


class LocationOut(LocationIn, kw_only=True):
    id: uuid.UUID
    created_at: datetime


# A product's attributes: free key/value pairs ("colour": "navy"), bounded so that every one can be
# shown and edited in the console.
MAX_ATTRIBUTES = 50
ATTRIBUTE_KEY_MAX = 64
ATTRIBUTE_VALUE_MAX = 500
PRODUCT_STATUSES = ("active", "inactive")  # inactive: not for sale in new orders; placed ones go on
AttributeKey = Annotated[str, msgspec.Meta(min_length=1, max_length=ATTRIBUTE_KEY_MAX)]


def attribute_problem(key: str, value: Any) -> str | None:
    """What is wrong with one attribute's value, in plain words, or None."""
    size = len(value) if isinstance(value, str) else len(msgspec.json.encode(value))
    if size > ATTRIBUTE_VALUE_MAX:
        return f"Attribute {key[:ATTRIBUTE_KEY_MAX]!r} is longer than {ATTRIBUTE_VALUE_MAX} characters."
    return None


class ProductIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: Code
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
    price_minor: Money
    category: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    brand: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    currency: Annotated[str, msgspec.Meta(max_length=3, pattern="^[A-Za-z]{3}$")] | None = None
    weight_grams: NonNegative | None = None
    attributes: Annotated[dict[AttributeKey, Any], msgspec.Meta(max_length=MAX_ATTRIBUTES)] = {}
    status: Literal["active", "inactive"] = "active"

    def __post_init__(self) -> None:
        for key, value in self.attributes.items():
            if problem := attribute_problem(key, value):
                raise ValueError(problem)


class ProductOut(msgspec.Struct):
    id: uuid.UUID
    sku: str
    name: str
    price_minor: int
    currency: str
    category: str | None
    brand: str | None
    weight_grams: int | None
    attributes: dict[str, Any]
    status: str


class ProductImport(msgspec.Struct, forbid_unknown_fields=True):
    products: list[ProductIn]


class ImportResult(msgspec.Struct):
    created: int
    updated: int


class FeedRowIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: str
    location: str
    quantity: int | str  # checked row by row, so a bad value is a row error like in CSV


class FeedIn(msgspec.Struct, forbid_unknown_fields=True):
    feed_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    kind: Literal["snapshot", "delta"]
    rows: list[FeedRowIn]


class FeedOut(msgspec.Struct):
    id: uuid.UUID
    feed_id: str
    kind: str
    status: str
    rows_total: int
    rows_changed: int
    stock_exceptions: int
    errors: list[dict[str, Any]]
    created_at: datetime
    finished_at: datetime | None


class LevelOut(msgspec.Struct):
    location: str
    on_hand: int
    reserved: int
    safety_stock: int
    available: int


class StockOut(msgspec.Struct):
    sku: str
    levels: list[LevelOut]
    total_available: int


class MovementOut(msgspec.Struct):
    id: uuid.UUID
    sku: str
    location: str
    on_hand_delta: int
    reserved_delta: int
    safety_stock_delta: int
    reason: str
    reference: str | None
    actor: str
    created_at: datetime


Ref = Annotated[str, msgspec.Meta(max_length=64)]  # a SKU or location code to look up


class AdjustmentIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: Ref
    location: Ref
    quantity: Quantity
    reason: Literal["receipt", "adjustment", "damage", "count", "return"] = "adjustment"
    reference: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class SafetyStockIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: Ref
    location: Ref
    safety_stock: NonNegative


class LocationAvailability(msgspec.Struct):
    location: str
    name: str
    kind: str
    available: int
    ships_to_customers: bool  # the location's own "ships to customers" capability
    click_and_collect: bool
    open_now: bool | None = None
    ship_from_store: bool = False  # a store sending online orders to customers' homes
    distance_km: float | None = None


class SkuAvailability(msgspec.Struct):
    sku: str
    total_available: int
    deliverable: bool
    locations: list[LocationAvailability]
    pickup_today: list[str]
