"""API output types of ``GET /api/v1/customers/{id}``: the customer with their history.

Amounts are integer minor units with their currency; times carry the company's time zone offset."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec


class CustomerRecordOut(msgspec.Struct):
    id: uuid.UUID
    email: str
    name: str
    phone: str
    tags: list[str]
    since: datetime  # when the record was created: the customer's first order


class StoreUseOut(msgspec.Struct):
    code: str
    name: str
    orders: int


class CurrencyFiguresOut(msgspec.Struct):
    currency: str
    orders_count: int  # placed in this currency, replacements of exchanges aside
    cancelled_count: int
    lifetime_value_minor: int  # net of refunds: see orders.history
    refunded_minor: int
    average_basket_minor: int | None  # over the orders not cancelled


class FiguresOut(msgspec.Struct):
    currency: str  # the company's
    orders_count: int
    cancelled_count: int
    lifetime_value_minor: int
    refunded_minor: int
    average_basket_minor: int | None
    first_order_at: datetime | None
    last_order_at: datetime | None
    stores: list[StoreUseOut]
    other_currencies: list[CurrencyFiguresOut]  # orders in other currencies, added up on their own
    # Set for a store associate: the figures (and everything else) count only the orders at these locations.
    limited_to_locations: list[str] | None


class CustomerOrderOut(msgspec.Struct):
    id: uuid.UUID
    number: str
    channel: str
    external_number: str | None
    status: str
    placed_at: datetime
    currency: str
    total_minor: int
    captured_minor: int
    refunded_minor: int
    delivery_mode: str
    pickup_location: str | None
    exchange_for: uuid.UUID | None


class CustomerOrdersOut(msgspec.Struct):
    total: int  # every order of the customer the caller may see
    items: list[CustomerOrderOut]  # the newest, at most 50


class CustomerReturnOut(msgspec.Struct):
    id: uuid.UUID
    number: str
    status: str
    method: str
    order_id: uuid.UUID
    order_number: str
    lines_count: int
    units: int
    refunded_minor: int
    currency: str | None
    created_at: datetime
    received_at: datetime | None
    refunded_at: datetime | None


class CustomerRefundOut(msgspec.Struct):
    id: uuid.UUID
    order_id: uuid.UUID
    order_number: str
    source: str
    amount_minor: int
    currency: str
    status: str
    reason: str
    created_by: str
    created_at: datetime


class ExchangeOut(msgspec.Struct):
    original_order_id: uuid.UUID | None
    original_order_number: str | None
    replacement_order_id: uuid.UUID
    replacement_order_number: str
    replacement_status: str
    placed_at: datetime
    currency: str
    total_minor: int


class CustomerNoteOut(msgspec.Struct):
    id: uuid.UUID
    about: str  # customer | order
    body: str
    author: str
    created_at: datetime
    order_id: uuid.UUID | None
    order_number: str | None


class CustomerTaskOut(msgspec.Struct):
    id: uuid.UUID
    order_id: uuid.UUID
    order_number: str
    kind: str
    title: str
    detail: str
    occurrences: int
    assigned_to: str | None
    opened_at: datetime


class TimelineEntryOut(msgspec.Struct):
    at: datetime
    kind: str
    title: str
    text: str
    actor: str
    order_id: uuid.UUID | None
    order_number: str | None


class CustomerOut(msgspec.Struct):
    record: CustomerRecordOut
    figures: FiguresOut
    orders: CustomerOrdersOut
    returns: list[CustomerReturnOut]
    refunds: list[CustomerRefundOut]
    exchanges: list[ExchangeOut]
    notes: list[CustomerNoteOut]
    open_tasks: list[CustomerTaskOut]
    timeline: list[TimelineEntryOut]  # newest first, at most 100 entries
