"""API input and output types."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec


class TenantOut(msgspec.Struct):
    id: uuid.UUID
    name: str
    country: str
    currency: str
    timezone: str


class WhoAmI(msgspec.Struct):
    tenant: TenantOut
    role: str
    authenticated_as: str


class MemberOut(msgspec.Struct):
    id: uuid.UUID
    user_id: uuid.UUID
    email: str
    name: str
    role: str
    joined_at: datetime
    locations: list[str] = []  # a store associate's


WEB_ADDRESS = "Enter a web address such as https://example.com/oms-events."
LocationCodes = Annotated[list[Annotated[str, msgspec.Meta(max_length=64)]], msgspec.Meta(max_length=500)]


class InvitationCreate(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(max_length=320)]
    role: Annotated[str, msgspec.Meta(max_length=30)] = "read_only"
    locations: LocationCodes = []  # required for a store associate: where they work


class InvitationOut(msgspec.Struct):
    id: uuid.UUID
    email: str
    role: str
    locations: list[str]
    created_at: datetime
    expires_at: datetime


class AuditEventOut(msgspec.Struct):
    id: uuid.UUID
    action: str
    actor: str
    target: str | None
    ip: str | None
    created_at: datetime
    details: dict[str, object]


class EndpointIn(msgspec.Struct, forbid_unknown_fields=True):
    url: Annotated[str, msgspec.Meta(min_length=8, max_length=2000, extra={"message": WEB_ADDRESS})]
    description: Annotated[str, msgspec.Meta(max_length=200)] = ""
    events: Annotated[list[Annotated[str, msgspec.Meta(max_length=60)]], msgspec.Meta(max_length=50)] = []  # none: all
