"""API input and output types for returns. Types are checked by the decoder; values (units the
customer has, the policy, the location) by ``support.returns``, which names every problem at once."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec

from core.limits import Int32

Code = Annotated[str, msgspec.Meta(max_length=64)]
# A return keeps one note: what was said when it was opened, then the inspection's or the
# cancellation's words after it (never both), within its 1,000-character column.
OPENING_NOTE_MAX = 500
LATER_NOTE_MAX = 400
Note = Annotated[str, msgspec.Meta(max_length=OPENING_NOTE_MAX, extra={"message": "Keep it under 500 characters."})]
LaterNote = Annotated[str, msgspec.Meta(max_length=LATER_NOTE_MAX, extra={
    "message": "Keep it under 400 characters."})]


class ReturnLineIn(msgspec.Struct, forbid_unknown_fields=True):
    quantity: Int32
    reason_code: Annotated[str, msgspec.Meta(max_length=40)]
    line_no: Int32 | None = None
    order_line_id: uuid.UUID | None = None


class ReturnIn(msgspec.Struct, forbid_unknown_fields=True):
    """A return of some units of an order's lines: in store, or by post (a return label is
    made), expected at ``location`` (any location that accepts returns may receive it)."""

    order_id: uuid.UUID
    lines: Annotated[list[ReturnLineIn], msgspec.Meta(max_length=500)]
    method: Literal["in_store", "post"] = "post"
    location: Code = ""  # expected at; the company's first location accepting returns when blank
    note: Note = ""
    override_window: bool = False  # past the return window: only roles the policy allows


class ReceiveIn(msgspec.Struct, forbid_unknown_fields=True):
    location: Code


class InspectLineIn(msgspec.Struct, forbid_unknown_fields=True):
    condition: Literal["resellable", "damaged"]
    line_no: Int32 | None = None
    return_line_id: uuid.UUID | None = None
    refund: bool = True  # a line damaged by the customer may be kept without a refund


class InspectIn(msgspec.Struct, forbid_unknown_fields=True):
    lines: Annotated[list[InspectLineIn], msgspec.Meta(max_length=500)]
    note: LaterNote = ""


class CancelReturnIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: LaterNote


class ReturnLineOut(msgspec.Struct):
    id: uuid.UUID
    order_line_id: uuid.UUID
    line_no: int
    sku: str
    name: str
    quantity: int
    reason_code: str
    condition: str | None
    refund_minor: int


class ReturnOut(msgspec.Struct):
    id: uuid.UUID
    number: str
    order_id: uuid.UUID
    order_number: str
    customer_id: uuid.UUID | None
    status: str
    method: str
    expected_location: str
    received_location: str | None
    label_reference: str | None
    note: str
    window_overridden: bool
    refund_id: uuid.UUID | None
    refunded_minor: int
    restocking_fee_minor: int
    lines: list[ReturnLineOut]
    opened_by: str
    opened_via: str
    received_by: str | None
    inspected_by: str | None
    created_at: datetime
    received_at: datetime | None
    inspected_at: datetime | None
    refunded_at: datetime | None
    closed_at: datetime | None
    cancelled_at: datetime | None
    exchange_order_id: uuid.UUID | None = None


class ReturnPage(msgspec.Struct):
    items: list[ReturnOut]
    next_cursor: str | None


class ReplacementIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    quantity: Int32


class ExchangeIn(msgspec.Struct, forbid_unknown_fields=True):
    """Some units of the order come back (a return), and ``replacement`` goes out instead: the
    same product in another variant or another product, at today's price, as a new order linked
    to this one. It ships when the return is received, or at once with ``ship_now`` (the return
    is then expected within the return window). A replacement that costs more is charged the
    difference (confirm with ``charge_difference``); one that costs less has the difference
    refunded when the goods come back."""

    lines: Annotated[list[ReturnLineIn], msgspec.Meta(max_length=500)]
    replacement: Annotated[list[ReplacementIn], msgspec.Meta(max_length=100)]
    method: Literal["in_store", "post"] = "post"
    location: Code = ""
    note: Note = ""
    override_window: bool = False
    ship_now: bool = False
    charge_difference: bool = False


class ExchangeOut(msgspec.Struct):
    return_: ReturnOut = msgspec.field(name="return")
    replacement_order_id: uuid.UUID
    replacement_order_number: str
    returned_value_minor: int  # what the units coming back are worth
    replacement_total_minor: int
    difference_minor: int  # above 0: charged to the customer; below 0: refunded when the goods come back
