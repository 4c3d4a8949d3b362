"""The company's return policy, as every return and goodwill refund reads it: the window, what
can't be returned, the restocking fee, whether return shipping is refunded, who may override
the window, when a return is refunded, the return reasons, and each role's goodwill limits.
A company that never saved one has ``DEFAULTS``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from support.models import ReturnPolicy

REASON_CODES = ("changed_mind", "too_small", "too_large", "damaged", "defective", "wrong_item",
                "not_as_described", "arrived_late")
# Roles that may give goodwill at all; the others never can, whatever the settings say.
GOODWILL_ROLES = ("owner", "admin", "customer_service", "store_associate")


@dataclass(frozen=True)
class GoodwillLimit:
    per_refund: int | None  # minor units; None: no limit
    per_month: int | None


@dataclass(frozen=True)
class Policy:
    window_days: int = 30
    non_returnable_categories: tuple[str, ...] = ()
    restocking_fee_bp: int = 0
    refund_return_shipping: bool = False
    override_roles: tuple[str, ...] = ("owner", "admin")
    refund_on: str = "inspected"  # received | inspected
    reason_codes: tuple[str, ...] = REASON_CODES
    goodwill_limits: dict[str, GoodwillLimit] = field(default_factory=lambda: {
        "owner": GoodwillLimit(None, None),
        "admin": GoodwillLimit(None, None),
        "customer_service": GoodwillLimit(5_000, 50_000),
        "store_associate": GoodwillLimit(0, 0),
    })

    def goodwill_limit(self, role: str) -> GoodwillLimit:
        """What a role may give alone; a role the company never set (or one that may not give
        goodwill) may give nothing without approval."""
        if role not in GOODWILL_ROLES:
            return GoodwillLimit(0, 0)
        return self.goodwill_limits.get(role, GoodwillLimit(0, 0))

    def may_override_window(self, role: str) -> bool:
        return role in self.override_roles

    def restocking_fee(self, amount_minor: int) -> int:
        """The fee kept on a refund of ``amount_minor``, rounded half down in the customer's favour."""
        return (amount_minor * self.restocking_fee_bp) // 10_000


DEFAULTS = Policy()


def _limits(raw: dict[str, object]) -> dict[str, GoodwillLimit]:
    limits = dict(DEFAULTS.goodwill_limits)
    for role, value in raw.items():
        if isinstance(value, dict):
            per_refund, per_month = value.get("per_refund"), value.get("per_month")
            limits[role] = GoodwillLimit(per_refund if isinstance(per_refund, int) else None,
                                         per_month if isinstance(per_month, int) else None)
    return limits


def of_row(row: ReturnPolicy | None) -> Policy:
    if row is None:
        return DEFAULTS
    return Policy(window_days=row.window_days, non_returnable_categories=tuple(row.non_returnable_categories),
                  restocking_fee_bp=row.restocking_fee_bp, refund_return_shipping=row.refund_return_shipping,
                  override_roles=tuple(row.override_roles), refund_on=row.refund_on,
                  reason_codes=tuple(row.reason_codes) or REASON_CODES, goodwill_limits=_limits(row.goodwill_limits))


async def current(session: AsyncSession, tenant_id: uuid.UUID) -> Policy:
    row = await session.scalar(select(ReturnPolicy).where(ReturnPolicy.tenant_id == tenant_id))
    return of_row(row)
