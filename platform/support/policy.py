"""The company's return policy, as every return and goodwill refund reads it: the window, what
can't be returned, the restocking fee, whether return shipping is refunded, who may override
the window, when a return is refunded, the return reasons, and each role's goodwill limits.
A company that never saved one has ``DEFAULTS``."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec
from babel.numbers import format_decimal
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from core import forms as typed
from core.auth import ROLES, Principal
from core.ids import uuid7
from core.locale import format_money
from core.problems import invalid
from support.models import ReturnPolicy
from support.policy_schemas import GoodwillLimitIO, ReturnSettings
from tenants.service import Actor, audit

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


# --- Settings → Returns, and PUT /api/v1/settings/returns ---------------------------------------

ROLE_NAMES = {"owner": "Owner", "admin": "Admin", "merchandiser": "Merchandiser",
              "customer_service": "Customer service", "marketing": "Marketing",
              "store_associate": "Store associate", "read_only": "Read-only"}
REFUND_ON = {"received": "when the return is received", "inspected": "when the return is inspected"}


def settings_of(policy: Policy) -> ReturnSettings:
    return ReturnSettings(
        window_days=policy.window_days, non_returnable_categories=list(policy.non_returnable_categories),
        restocking_fee_bp=policy.restocking_fee_bp, refund_return_shipping=policy.refund_return_shipping,
        override_roles=list(policy.override_roles), refund_on=policy.refund_on,
        reason_codes=list(policy.reason_codes),
        goodwill_limits={role: GoodwillLimitIO(per_refund=limit.per_refund, per_month=limit.per_month)
                         for role, limit in policy.goodwill_limits.items() if role in GOODWILL_ROLES})


def _items(raw: Mapping[str, Any], field: str, errors: Mapping[str, str]) -> list[tuple[int, str]]:
    """The texts of the list ``field`` the decoder found nothing wrong with, with their places."""
    values = raw.get(field)
    if not isinstance(values, list) or field in errors:
        return []
    return [(i, value) for i, value in enumerate(values) if isinstance(value, str) and f"{field}[{i}]" not in errors]


def problems(raw: Mapping[str, Any]) -> dict[str, str]:
    """Every problem of a return policy as sent (the API's body, or the console's form read into
    the same shape), by field as the API names it: types and ranges, then roles, codes named twice."""
    errors = typed.problems(dict(raw), ReturnSettings)
    for i, role in _items(raw, "override_roles", errors):
        if role not in ROLES:
            errors[f"override_roles[{i}]"] = f"Unknown role {role!r}: choose among {', '.join(ROLES)}."
    if "reason_codes" in raw and raw["reason_codes"] == []:
        errors["reason_codes"] = "Give at least one return reason."
    seen: set[str] = set()
    for i, code in _items(raw, "reason_codes", errors):
        if code in seen:
            errors[f"reason_codes[{i}]"] = f"{code} is listed twice: list each reason once."
        seen.add(code)
    if isinstance(raw.get("goodwill_limits"), dict):
        for role in raw["goodwill_limits"]:
            if role in GOODWILL_ROLES:
                continue
            errors[f"goodwill_limits.{role}"] = (
                f"{ROLE_NAMES[role] if role in ROLE_NAMES else repr(role)} "
                f"{'may not give goodwill' if role in ROLES else 'is not a role'}: goodwill limits are for "
                f"{', '.join(GOODWILL_ROLES)}.")
    return errors


def checked(raw: Mapping[str, Any]) -> ReturnSettings:
    """``raw`` as a return policy, or 422 naming every problem."""
    errors = problems(raw)
    if errors:
        raise invalid(errors, detail="The return policy was not saved: " + next(iter(errors.values())))
    return msgspec.convert(dict(raw), ReturnSettings)


def percent(bp: int, locale: str | None = None) -> str:
    """Basis points as a percent, as people write it: 250 is "2.5" ("2,5" in French)."""
    return str(format_decimal(Decimal(bp) / 100, locale=locale or "en_US"))


def summary(policy: Policy, currency: str) -> dict[str, str]:
    """Each part of the policy in words, for the audit log's before and after."""
    def amount(value: int | None) -> str:
        return "no limit" if value is None else format_money(value, currency)

    limits = {role: policy.goodwill_limit(role) for role in GOODWILL_ROLES}
    return {
        "window": f"{policy.window_days} days to return",
        "non_returnable": "not returnable: " + (", ".join(policy.non_returnable_categories) or "none"),
        "fee": f"restocking fee {percent(policy.restocking_fee_bp)} %",
        "shipping": "return shipping refunded" if policy.refund_return_shipping else "return shipping not refunded",
        "override": "late returns accepted by " + (", ".join(policy.override_roles) or "nobody"),
        "refund_on": "refunded " + REFUND_ON.get(policy.refund_on, policy.refund_on),
        "reasons": "reasons: " + ", ".join(policy.reason_codes),
        **{f"goodwill_{role}": f"goodwill by {role}: {amount(limit.per_refund)} a refund, "
                               f"{amount(limit.per_month)} a month" for role, limit in limits.items()},
    }


async def save(session: AsyncSession, principal: Principal, data: ReturnSettings, *, ip: str | None = None
               ) -> Policy:
    """Store the company's policy (checked by ``checked``), and say what changed in the audit log."""
    await session.execute(insert(ReturnPolicy).values(
        tenant_id=principal.tenant_id, id=uuid7(), window_days=DEFAULTS.window_days, non_returnable_categories=[],
        restocking_fee_bp=0, refund_return_shipping=False, override_roles=list(DEFAULTS.override_roles),
        refund_on=DEFAULTS.refund_on, reason_codes=[], goodwill_limits={}, updated_at=clock.now(),
        updated_by=principal.label).on_conflict_do_nothing(index_elements=["tenant_id"]))
    row = await session.scalar(select(ReturnPolicy).where(ReturnPolicy.tenant_id == principal.tenant_id)
                               .with_for_update())
    assert row is not None  # inserted above, or already there
    before = of_row(row)
    row.window_days = data.window_days
    row.non_returnable_categories = list(dict.fromkeys(c.strip() for c in data.non_returnable_categories
                                                       if c.strip()))
    row.restocking_fee_bp = data.restocking_fee_bp
    row.refund_return_shipping = data.refund_return_shipping
    row.override_roles = [role for role in ROLES if role in data.override_roles]
    row.refund_on = data.refund_on
    row.reason_codes = list(data.reason_codes)
    row.goodwill_limits = {role: {"per_refund": limit.per_refund, "per_month": limit.per_month}
                           for role, limit in data.goodwill_limits.items()}
    row.updated_at, row.updated_by = clock.now(), principal.label
    after = of_row(row)
    old, new = summary(before, principal.currency), summary(after, principal.currency)
    changed = [part for part in new if old[part] != new[part]]
    if changed:
        await audit(session, principal.tenant_id, Actor.of(principal, ip), "settings.returns_changed",
                    target="Return policy", before="; ".join(old[part] for part in changed),
                    after="; ".join(new[part] for part in changed))
    return after
