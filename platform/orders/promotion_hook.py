"""Where order capture, cancellation and returns reach promotions without importing marketing
(a higher layer): marketing registers an implementation of ``Promotions`` at import, and the
orders domain calls it through ``hook()``. With nothing registered, orders behave as they did
before promotions existed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal


@dataclass(frozen=True)
class PricingLine:
    line_no: int
    sku: str
    category: str | None
    quantity: int
    unit_price_minor: int
    discount_minor: int  # the channel's own line discount


@dataclass(frozen=True)
class PricingRequest:
    """An order as the channel sent it, before promotions, with the ids it will be stored under."""

    order_id: uuid.UUID
    order_number: str
    customer_id: uuid.UUID
    channel: str
    currency: str
    lines: tuple[PricingLine, ...]
    shipping_fee_minor: int
    discount_minor: int  # the channel's order discount
    coupon_codes: tuple[str, ...]  # normalised: stripped, upper case
    delivery_mode: str
    country: str | None
    postcode: str | None
    pickup_location: str | None
    customer_tags: tuple[str, ...]
    placed_at: datetime


@dataclass(frozen=True)
class PricingOutcome:
    """What promotions do to one order; the empty outcome changes nothing."""

    line_discounts: tuple[int, ...] = ()  # line-class discount per line: added to the line's discount_minor
    order_discount_minor: int = 0  # order-class discount: added to the order's discount (apportioned to lines)
    shipping_discount_minor: int = 0  # taken off the shipping fee
    refusal: dict[str, str] | None = None  # {field: message}: the order is refused with these problems
    notes: tuple[str, ...] = ()  # words for the order's timeline ("Summer 15 %: -12.00 EUR")


class Promotions(Protocol):
    async def price(self, session: AsyncSession, principal: Principal,
                    requests: list[PricingRequest]) -> list[PricingOutcome]:
        """One outcome per request, in the same order. Consumes limits and records redemptions in
        the caller's transaction."""
        ...

    async def release(self, session: AsyncSession, tenant_id: uuid.UUID, order_ids: list[uuid.UUID]) -> None:
        """Undo ``price`` for orders that were not stored after all (refused, or a resend that
        lost the insert to the order already stored)."""
        ...

    async def give_back(self, session: AsyncSession, tenant_id: uuid.UUID, order_id: uuid.UUID, *,
                        units: dict[int, int], whole: bool) -> None:
        """``units`` (line number -> units) were cancelled or returned just now: their share of
        the order's discounts goes back to the budgets, and with ``whole`` (nothing of the order
        is kept) its uses too."""
        ...


_registered: list[Promotions] = []


def register(hook: Promotions) -> None:
    """Install the implementation (the last one registered wins)."""
    _registered[:] = [hook]


def hook() -> Promotions | None:
    return _registered[0] if _registered else None
