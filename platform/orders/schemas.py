"""API input and output types for orders and fulfilments.

Types are checked by the decoder; values (known SKUs, totals, pickup stores...) by ``orders.capture``,
which lists every problem at once.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from core.limits import COUNTRY_MESSAGE, CURRENCY_MESSAGE, Int32, SignedMoney

Text = Annotated[str, msgspec.Meta(max_length=200)]


class AddressIn(msgspec.Struct, forbid_unknown_fields=True):
    country: Annotated[str, msgspec.Meta(min_length=2, max_length=2, extra={"message": COUNTRY_MESSAGE})]
    name: Text = ""
    line1: Text = ""
    city: Annotated[str, msgspec.Meta(max_length=100)] = ""
    postcode: Annotated[str, msgspec.Meta(max_length=20)] = ""
    latitude: Annotated[float, msgspec.Meta(ge=-90, le=90)] | None = None
    longitude: Annotated[float, msgspec.Meta(ge=-180, le=180)] | None = None


class CustomerIn(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(min_length=3, max_length=320)]
    name: Text = ""
    phone: Annotated[str, msgspec.Meta(max_length=40)] = ""
    # Marketing consent given with the order: true or false is recorded, none leaves it as it was.
    email_consent: bool | None = None
    sms_consent: bool | None = None


class OrderLineIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    quantity: Int32
    unit_price_minor: SignedMoney
    discount_minor: SignedMoney = 0


class DeliveryIn(msgspec.Struct, forbid_unknown_fields=True):
    mode: Annotated[str, msgspec.Meta(max_length=20)]  # ship | pickup (click & collect) | ship_to_store
    address: AddressIn | None = None
    pickup_location: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class PaymentIn(msgspec.Struct, forbid_unknown_fields=True):
    authorized_minor: SignedMoney
    provider: Literal["external", "stripe"] = "external"
    method: Annotated[str, msgspec.Meta(max_length=40)] = "card"
    reference: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class OrderIn(msgspec.Struct, forbid_unknown_fields=True):
    channel: Annotated[str, msgspec.Meta(max_length=20)]
    currency: Annotated[str, msgspec.Meta(min_length=3, max_length=3, extra={"message": CURRENCY_MESSAGE})]
    lines: Annotated[list[OrderLineIn], msgspec.Meta(max_length=500)]
    customer: CustomerIn
    delivery: DeliveryIn
    total_minor: SignedMoney
    external_number: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    shipping_fee_minor: SignedMoney = 0
    discount_minor: SignedMoney = 0
    payment: PaymentIn | None = None
    placed_at: datetime | None = None
    # The customer's language for their mails ("fr", "fr-BE"); one without a catalog, or none,
    # gets the company's default.
    language: Annotated[str, msgspec.Meta(max_length=35, description=(
        "The customer's language for their mails, as a two-letter code (fr, en; fr-BE is read as fr). "
        "A language the mails are not written in falls back to the company's"))] | None = None
    coupon_codes: Annotated[list[Annotated[str, msgspec.Meta(max_length=40)]], msgspec.Meta(
        max_length=10, description="Coupon codes the customer entered (any case; at most 10)")] = []


class OrderLineOut(msgspec.Struct):
    id: uuid.UUID  # as returns and refunds name it (order_line_id)
    line_no: int
    sku: str
    name: str
    quantity: int
    unit_price_minor: int
    discount_minor: int
    order_discount_minor: int  # the line's share of the order's discount
    allocated: int
    shipped: int
    cancelled: int
    returned: int


class FulfilmentLineOut(msgspec.Struct):
    sku: str
    quantity: int


class FulfilmentOut(msgspec.Struct):
    id: uuid.UUID
    number: str
    location: str
    kind: str
    ship_to_store: str | None
    status: str
    reason: str | None
    lines: list[FulfilmentLineOut]
    created_at: datetime
    updated_at: datetime
    carrier: str | None = None  # a code of GET /carriers, or "other"
    carrier_name: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None  # the carrier's tracking page for the parcel
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None


class OrderEventOut(msgspec.Struct):
    id: uuid.UUID
    kind: str
    from_status: str | None
    to_status: str | None
    actor: str
    reason: str | None
    data: dict[str, Any]
    created_at: datetime


class OrderOut(msgspec.Struct):
    id: uuid.UUID
    number: str
    channel: str
    external_number: str | None
    status: str
    hold_reason: str | None
    currency: str
    subtotal_minor: int
    discount_minor: int
    shipping_fee_minor: int
    total_minor: int
    delivery_mode: str
    pickup_location: str | None
    customer_email: str | None
    customer_name: str | None
    payment_status: str
    authorized_minor: int
    captured_minor: int
    refunded_minor: int
    routing_version: int | None
    placed_at: datetime
    lines: list[OrderLineOut]
    fulfilments: list[FulfilmentOut]
    events: list[OrderEventOut] | None = None
    routing: dict[str, Any] | None = None
    language: str | None = None  # the customer's, for their mails (none: the company's)


class OrderSummaryOut(msgspec.Struct):
    id: uuid.UUID
    number: str
    channel: str
    external_number: str | None
    status: str
    total_minor: int
    currency: str
    delivery_mode: str
    customer_email: str | None
    placed_at: datetime


class OrderPage(msgspec.Struct):
    orders: list[OrderSummaryOut]
    next_cursor: str | None


class CancelIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""
    lines: Annotated[list[CancelLineIn], msgspec.Meta(max_length=500)] | None = None  # none: the whole order


class CancelLineIn(msgspec.Struct, forbid_unknown_fields=True):
    line_no: Int32
    quantity: Int32


class FulfilmentActionIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(max_length=500, description="Why (required to reject)")] = ""
    carrier: Annotated[str, msgspec.Meta(
        max_length=40, description="Shipping: a carrier code of GET /carriers, or 'other'")] | None = None
    tracking_number: Annotated[str, msgspec.Meta(
        max_length=100, description="Shipping: letters, digits and dashes (spaces are taken out); required with a "
                                    "listed carrier")] | None = None
    tracking_url: Annotated[str, msgspec.Meta(
        max_length=500, description="Shipping with carrier 'other': its tracking page, http(s)")] | None = None
    delivered_at: Annotated[datetime, msgspec.Meta(
        description="Delivering: when the parcel arrived (default now; without offset, the company's time)")] \
        | None = None


class CarrierOut(msgspec.Struct):
    code: str
    name: str
    countries: list[str]
    tracking_url: str | None  # {number} stands for the tracking number


class TrackingEventIn(msgspec.Struct, forbid_unknown_fields=True):
    carrier: Annotated[str, msgspec.Meta(max_length=40, description="The carrier code the parcel shipped with")]
    tracking_number: Annotated[str, msgspec.Meta(max_length=100)]
    status: Literal["delivered", "in_transit", "exception"]
    occurred_at: Annotated[datetime, msgspec.Meta(
        description="When it happened (default now; without offset, the company's time)")] | None = None
    detail: Annotated[str, msgspec.Meta(max_length=500, description="The carrier's words, for the timeline")] = ""


class TrackingEventOut(msgspec.Struct):
    changed: bool  # False: the same news was recorded before, nothing changed
    fulfilments: list[FulfilmentOut]


class PickListLineOut(msgspec.Struct):
    sku: str
    name: str
    quantity: int
    bin: str | None
    fulfilments: list[str]


class PickListOut(msgspec.Struct):
    location: str
    fulfilments: list[str]
    lines: list[PickListLineOut]


class OrderSettings(msgspec.Struct, forbid_unknown_fields=True):
    pickup_window_days: Int32


class StripeAccountIn(msgspec.Struct, forbid_unknown_fields=True):
    secret_key: Annotated[str, msgspec.Meta(max_length=300)]


class RefundLineIn(msgspec.Struct, forbid_unknown_fields=True):
    """A part of a refund given back on one line, named by its number or its id."""

    amount_minor: SignedMoney
    line_no: Int32 | None = None
    order_line_id: uuid.UUID | None = None


class RefundIn(msgspec.Struct, forbid_unknown_fields=True):
    """A goodwill refund: ``amount_minor`` in all, of which ``lines`` and ``shipping_minor`` say
    what goes to which line and to shipping (optional; the rest is on the order as a whole)."""

    amount_minor: SignedMoney
    reason: Annotated[str, msgspec.Meta(max_length=500, extra={
        "message": "Say in at most 500 characters why the customer gets this refund."})]
    lines: Annotated[list[RefundLineIn], msgspec.Meta(max_length=500)] | None = None
    shipping_minor: SignedMoney = 0


class RefundLineOut(msgspec.Struct):
    order_line_id: uuid.UUID
    line_no: int
    sku: str
    amount_minor: int


class RefundOut(msgspec.Struct):
    id: uuid.UUID
    order_id: uuid.UUID
    source: str  # cancellation | return | exchange | goodwill | shipping
    amount_minor: int
    currency: str
    shipping_minor: int
    lines: list[RefundLineOut]
    provider: str  # external | stripe
    status: str  # pending | sent | failed | abandoned
    reason: str
    created_by: str
    created_at: datetime
    sent_at: datetime | None
