"""API input and output types of the changes customer service makes to an order
(``orders.amendments``): the pickup store, the delivery address, mails sent again, notes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

from orders.amendments import NOTE_MAX, REASON_MAX

Reason = Annotated[str, msgspec.Meta(max_length=REASON_MAX, description="Why (required): it goes on the order's "
                                                                        "timeline and in the audit log")]


class PickupStoreIn(msgspec.Struct, forbid_unknown_fields=True):
    location_code: Annotated[str, msgspec.Meta(max_length=64)]
    reason: Reason = ""


class DeliveryAddressIn(msgspec.Struct, forbid_unknown_fields=True):
    line1: Annotated[str, msgspec.Meta(max_length=200)] = ""
    postcode: Annotated[str, msgspec.Meta(max_length=20)] = ""
    city: Annotated[str, msgspec.Meta(max_length=100)] = ""
    country: Annotated[str, msgspec.Meta(max_length=2)] = ""
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    latitude: Annotated[float, msgspec.Meta(ge=-90, le=90)] | None = None
    longitude: Annotated[float, msgspec.Meta(ge=-180, le=180)] | None = None
    reason: Reason = ""


class NoteIn(msgspec.Struct, forbid_unknown_fields=True):
    body: Annotated[str, msgspec.Meta(max_length=NOTE_MAX)] = ""


class ResendIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: Reason = ""


class ReleasedUnitsOut(msgspec.Struct):
    sku: str
    quantity: int


class ReleasedOut(msgspec.Struct):
    fulfilment_id: uuid.UUID
    number: str
    location: str  # where the reservation was released
    kind: str  # pickup | transfer
    status: str  # before it was cancelled
    lines: list[ReleasedUnitsOut]


class PickupStoreChangeOut(msgspec.Struct):
    order_id: uuid.UUID
    number: str
    status: str  # received: routing picks again
    before: str
    after: str
    released: list[ReleasedOut]


class AddressOut(msgspec.Struct):
    name: str
    line1: str
    postcode: str
    city: str
    country: str


class DeliveryAddressChangeOut(msgspec.Struct):
    order_id: uuid.UUID
    number: str
    before: AddressOut
    after: AddressOut
    fulfilments: list[str]  # numbers of the fulfilments that keep going, to the new address


class NoteOut(msgspec.Struct):
    id: uuid.UUID
    order_id: uuid.UUID
    body: str
    author: str
    created_at: datetime


class MailOut(msgspec.Struct):
    id: uuid.UUID
    kind: str
    label: str
    subject: str
    to: str
    status: str  # queued | sent | failed
    created_at: datetime
    sent_at: datetime | None
    resend_of: uuid.UUID | None
