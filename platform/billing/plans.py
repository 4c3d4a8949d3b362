"""Plans as data: which version of a plan is in force when, and what a quantity of a metered
dimension costs under a plan's graduated tiers.

A dimension's spec is ``{"included": n, "tiers": [{"up_to": n or None, "unit_minor": p}, ...]}``:
the first ``included`` units are in the base fee; then each tier prices the units up to its
``up_to`` (counted from the first unit, not from the tier's start) at its unit price; the last
tier has no ``up_to``. Everything is integer arithmetic, exact at any volume.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.models import Plan
from core import clock

DIMENSIONS = {"orders": "Orders routed", "locations": "Active locations"}  # billed, in invoice order


async def plan_version(session: AsyncSession, code: str, at: datetime) -> Plan | None:
    """The version of plan ``code`` in force at ``at``: the highest one effective by then."""
    return await session.scalar(select(Plan).where(Plan.code == code, Plan.effective_from <= at)
                                .order_by(Plan.version.desc()).limit(1))


async def plan_by_id(session: AsyncSession, plan_id: uuid.UUID) -> Plan | None:
    return await session.get(Plan, plan_id)


def is_retired(plan: Plan, at: datetime) -> bool:
    return plan.retired_at is not None and plan.retired_at <= at


async def plans_on_offer(session: AsyncSession) -> list[Plan]:
    """Each plan's version in force now, unless retired, in the pricing page's order."""
    now = clock.now()
    latest = (select(Plan.code, func.max(Plan.version).label("version"))
              .where(Plan.effective_from <= now).group_by(Plan.code).subquery())
    rows = await session.scalars(
        select(Plan).join(latest, (Plan.code == latest.c.code) & (Plan.version == latest.c.version))
        .where(or_(Plan.retired_at.is_(None), Plan.retired_at > now))
        .order_by(Plan.position, Plan.code))
    return list(rows)


async def default_plan(session: AsyncSession, at: datetime) -> Plan:
    """What a new sign-up starts on (and where a retired plan's companies move)."""
    code = await session.scalar(select(Plan.code).where(Plan.is_default, Plan.effective_from <= at)
                                .order_by(Plan.effective_from.desc(), Plan.version.desc()).limit(1))
    plan = await plan_version(session, code, at) if code else None
    if plan is None:
        raise LookupError("no default plan is in force: seed one (migration 0019 does)")
    return plan


def segment(plan: Plan, at: datetime) -> dict[str, Any]:
    """A period's record of a plan in force from ``at`` (``BillingPeriod.plans``)."""
    return {"plan_id": str(plan.id), "code": plan.code, "version": plan.version, "from": at.isoformat()}


# --- pricing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TierCharge:
    label: str  # "included", "501 to 5000", "5001 and above"
    quantity: int
    unit_minor: int
    amount_minor: int


def _bands(spec: dict[str, Any]) -> list[tuple[int, int | None, int]]:
    """(first unit, last unit or None, unit price) of each band with room, in order: the included
    units at 0, then each tier beyond what the bands before it cover."""
    included = max(0, int(spec.get("included") or 0))
    bands: list[tuple[int, int | None, int]] = [(1, included, 0)] if included else []
    covered = included
    for tier in spec.get("tiers") or []:
        up_to = tier.get("up_to")
        last = None if up_to is None else int(up_to)
        if last is not None and last <= covered:
            continue  # a tier wholly inside what is included or priced already
        bands.append((covered + 1, last, int(tier["unit_minor"])))
        if last is None:
            break
        covered = last
    return bands


def _label(first: int, last: int | None) -> str:
    return f"{first} and above" if last is None else f"{first} to {last}"


def charges(spec: dict[str, Any], quantity: int) -> list[TierCharge]:
    """What ``quantity`` units cost, band by band: the included units first (at 0, shown whenever
    the plan includes some), then each tier the quantity reaches."""
    found: list[TierCharge] = []
    included = max(0, int(spec.get("included") or 0))
    if included:
        found.append(TierCharge("included", min(quantity, included), 0, 0))
    for first, last, unit in _bands(spec)[1 if included else 0:]:
        if quantity < first:
            break
        units = (quantity if last is None else min(quantity, last)) - first + 1
        found.append(TierCharge(_label(first, last), units, unit, units * unit))
    return found


def until_next_tier(spec: dict[str, Any], quantity: int) -> tuple[int, int] | None:
    """After ``quantity`` units: how many more cost the current unit price, and the unit price
    after them; None when the price never changes again."""
    bands = _bands(spec)
    for index, (_, last, unit) in enumerate(bands):
        if last is not None and quantity >= last:
            continue
        for _, later_last, later_unit in bands[index + 1:]:
            if later_unit != unit:
                assert last is not None
                return last - quantity, later_unit
            if later_last is None:
                return None
            last = later_last
        return None
    return None


def price(spec: dict[str, Any], quantity: int) -> int:
    return sum(charge.amount_minor for charge in charges(spec, quantity))
