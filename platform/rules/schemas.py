"""API input types of the rule sets: drafts, publishing, and the sample orders and replays a
simulation takes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from core.limits import Count, Money, Number

MAX_REPLAY_ORDERS = 10_000
MAX_REPLAY_DAYS = 90

Code = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Short = Annotated[str, msgspec.Meta(max_length=200)]


class SampleLine(msgspec.Struct, forbid_unknown_fields=True):
    sku: Code
    quantity: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
    category: Short | None = None
    unit_price_minor: Money | None = None


class SampleOrder(msgspec.Struct, forbid_unknown_fields=True):
    lines: Annotated[list[SampleLine], msgspec.Meta(min_length=1, max_length=100)]
    channel: Short = "web"
    currency: Annotated[str, msgspec.Meta(max_length=3, pattern="^[A-Z]{3}$")] | None = None
    total_minor: Money | None = None
    delivery_mode: Literal["ship", "pickup"] = "ship"
    country: Annotated[str, msgspec.Meta(max_length=2, pattern="^[A-Za-z]{2}$")] | None = None
    postcode: Annotated[str, msgspec.Meta(max_length=20)] | None = None
    latitude: Annotated[float, msgspec.Meta(ge=-90, le=90)] | None = None
    longitude: Annotated[float, msgspec.Meta(ge=-180, le=180)] | None = None
    pickup_location: Code | None = None
    customer_tags: Annotated[list[Short], msgspec.Meta(max_length=50)] = []
    customer_orders_count: Count = 0
    at: datetime | None = None  # judge the order as if placed then (default: now)


class SimulateIn(msgspec.Struct, forbid_unknown_fields=True):
    order: SampleOrder
    version: Number | None = None  # a published version to try instead of the draft


class ReplayIn(msgspec.Struct, forbid_unknown_fields=True):
    days: Annotated[int, msgspec.Meta(ge=1, le=MAX_REPLAY_DAYS)] = 7
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_REPLAY_ORDERS)] = 1000
    version: Number | None = None
    traces: Annotated[int, msgspec.Meta(ge=0, le=200)] = 20


class DraftIn(msgspec.Struct, forbid_unknown_fields=True):
    document: dict[str, Any]
    revision: Number | None = None  # the revision you started from: a newer draft is not overwritten


class PublishIn(msgspec.Struct, forbid_unknown_fields=True):
    effective_from: datetime | None = None  # default now; a time without offset is in the company's time zone
    effective_to: datetime | None = None
    source_version: Number | None = None  # republish this version (a rollback) instead of the draft
    note: Annotated[str, msgspec.Meta(max_length=500)] = ""
