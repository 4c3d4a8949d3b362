"""Goodwill requests in the API: what a refund above its asker's limit answers (202), and the
requests as listed, approved and declined."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec


class GoodwillWaitingOut(msgspec.Struct):
    """The answer to a goodwill refund above its asker's limit: nothing is refunded yet."""

    status: str  # "waiting_approval"
    request_id: uuid.UUID
    order_id: uuid.UUID
    amount_minor: int
    currency: str
    reason: str
    requested_by: str
    detail: str  # why it waits, in words


class GoodwillRequestOut(msgspec.Struct):
    id: uuid.UUID
    order_id: uuid.UUID
    status: str  # waiting | approved | declined
    amount_minor: int
    currency: str
    shipping_minor: int
    lines: list[dict[str, Any]]  # [{line_no, amount_minor}]
    reason: str
    requested_by: str
    requested_role: str
    created_at: datetime
    decided_by: str | None
    decision_note: str | None
    decided_at: datetime | None
    refund_id: uuid.UUID | None  # the refund made when it was approved


class DeclineIn(msgspec.Struct, forbid_unknown_fields=True):
    note: Annotated[str, msgspec.Meta(max_length=1000, extra={"message": "Keep the note under 1,000 characters."})]
