"""API input and output types of marketing: pricing a cart, the marketing settings, redemptions.

Types and bounds are checked by the decoder (a NUL character, a number beyond ``core.limits`` or
an eleventh coupon code is refused there, by field); what needs the database (known SKUs, the
channel a key may use) by ``marketing.pricing``, which lists every problem at once."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec

from core.limits import COUNTRY_MESSAGE, LINE_QUANTITY_MAX, Money

MAX_CODES = 10
MAX_LINES = 500

Code = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
CouponCode = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]


class CartLineIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: Code
    quantity: Annotated[int, msgspec.Meta(ge=1, le=LINE_QUANTITY_MAX)]
    unit_price_minor: Money
    discount_minor: Money = 0  # the shop's own discount on the line, if any


class CartCustomerIn(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(min_length=3, max_length=320)]


class CartDeliveryIn(msgspec.Struct, forbid_unknown_fields=True):
    mode: Literal["ship", "pickup", "ship_to_store"] = "ship"
    country: Annotated[str, msgspec.Meta(min_length=2, max_length=2, extra={"message": COUNTRY_MESSAGE})] | None = None
    postcode: Annotated[str, msgspec.Meta(max_length=20)] | None = None
    pickup_location: Code | None = None


class CartIn(msgspec.Struct, forbid_unknown_fields=True):
    """A cart to price: nothing is consumed, no code is used up."""

    lines: Annotated[list[CartLineIn], msgspec.Meta(min_length=1, max_length=MAX_LINES)]
    channel: Annotated[str, msgspec.Meta(min_length=1, max_length=20)] = "web"
    customer: CartCustomerIn | None = None
    coupon_codes: Annotated[list[CouponCode], msgspec.Meta(max_length=MAX_CODES)] = []
    shipping_fee_minor: Money = 0
    delivery: CartDeliveryIn | None = None
    placed_at: datetime | None = None  # price as if then (default now); without offset: the company's time


class PricedLineOut(msgspec.Struct):
    line_no: int
    sku: str
    quantity: int
    unit_price_minor: int
    amount_minor: int  # unit price * quantity, less the shop's own discount
    discount_minor: int  # promotions: the line's own discount and its share of the order's
    line_discount_minor: int  # promotions' line-class discount only
    net_minor: int


class AppliedOut(msgspec.Struct):
    promotion_id: str
    name: str
    klass: str = msgspec.field(name="class")  # line | order | shipping
    amount_minor: int
    line_amounts: list[int]
    shipping_minor: int
    coupon_code: str | None


class VerdictOut(msgspec.Struct):
    promotion_id: str
    name: str
    applied: bool
    reason: str
    message: str
    details: list[str]


class CouponOut(msgspec.Struct):
    code: str
    status: str  # "valid", or what is wrong: unknown, expired, not_started, exhausted, disabled, customer_limit
    promotion_id: str | None
    message: str


class PricingOut(msgspec.Struct):
    currency: str
    version: int | None  # the promotions version in force at placed_at
    placed_at: datetime
    lines: list[PricedLineOut]
    subtotal_minor: int  # the lines before promotions
    order_discount_minor: int
    shipping_fee_minor: int
    shipping_discount_minor: int
    total_discount_minor: int
    total_minor: int  # subtotal - promotions' discounts + shipping - its discount
    applied: list[AppliedOut]
    trace: list[VerdictOut]
    coupons: list[CouponOut]


class MarketingSettingsIn(msgspec.Struct, forbid_unknown_fields=True):
    capture_mode: Literal["apply", "check", "off"] = "apply"
    refuse_invalid_coupons: bool = False


class MarketingSettingsOut(msgspec.Struct):
    capture_mode: str
    refuse_invalid_coupons: bool
    updated_at: datetime | None
    updated_by: str


class RedemptionOut(msgspec.Struct):
    id: uuid.UUID
    order_id: uuid.UUID
    order_number: str
    customer_id: uuid.UUID | None
    promotion_id: str
    promotion_name: str
    promotion_class: str
    rule_version: int | None
    coupon_code: str | None
    amount_minor: int
    currency: str
    shipping_minor: int
    given_back_minor: int
    use_given_back: bool
    lines: list[dict[str, int]]
    created_at: datetime
