"""The return policy as the API reads and writes it (``GET``/``PUT /api/v1/settings/returns``).
Types are checked by the decoder; what spans the company (known roles, codes named twice) by
``support.policy.problems``, which names every problem at once."""

from __future__ import annotations

from typing import Annotated

import msgspec

from core.limits import MONEY_MAX

LIMIT_MESSAGE = "Give an amount of zero or more in minor units (5000 for 50.00), or null for no limit."
REASON_CODE_PATTERN = r"^[a-z0-9][a-z0-9_]{0,39}$"
REASON_CODE_MESSAGE = "Use lowercase letters, digits and underscores (at most 40), such as too_small."

Limit = Annotated[int, msgspec.Meta(ge=0, le=MONEY_MAX, extra={"message": LIMIT_MESSAGE})]
ReasonCode = Annotated[str, msgspec.Meta(pattern=REASON_CODE_PATTERN, extra={"message": REASON_CODE_MESSAGE})]
Category = Annotated[str, msgspec.Meta(min_length=1, max_length=100, extra={
    "message": "Name a category in 1 to 100 characters."})]
Role = Annotated[str, msgspec.Meta(max_length=32)]


class GoodwillLimitIO(msgspec.Struct, forbid_unknown_fields=True):
    """What one role may refund as goodwill without approval: per refund, and per agent in a
    calendar month (the company's time zone); null is no limit."""

    per_refund: Limit | None
    per_month: Limit | None


class ReturnSettings(msgspec.Struct, forbid_unknown_fields=True):
    """The company's return policy, every field given (a role left out of ``goodwill_limits``
    has the default limits)."""

    window_days: Annotated[int, msgspec.Meta(ge=0, le=3650, extra={
        "message": "Give a whole number of days from 0 to 3,650."})]  # from delivery or collection
    non_returnable_categories: Annotated[list[Category], msgspec.Meta(max_length=500)]
    restocking_fee_bp: Annotated[int, msgspec.Meta(ge=0, le=10_000, extra={
        "message": "Give the fee in hundredths of a percent, from 0 to 10,000 (250 is 2.5 %)."})]
    refund_return_shipping: bool
    override_roles: Annotated[list[Role], msgspec.Meta(max_length=20)]  # may accept a return after the window
    refund_on: Annotated[str, msgspec.Meta(pattern="^(received|inspected)$", extra={
        "message": "Choose received or inspected."})]
    reason_codes: Annotated[list[ReasonCode], msgspec.Meta(min_length=1, max_length=50, extra={
        "message": "Give from 1 to 50 reason codes."})]
    goodwill_limits: Annotated[dict[Role, GoodwillLimitIO], msgspec.Meta(max_length=20)]
