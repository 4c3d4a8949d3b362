"""Segments: named conditions over customer fields, kept as conditions (never as lists), so that
whoever uses one (a promotion, a campaign) gets the customers who match it at that moment.
Members are counted and listed by ``customers.segments``; here they are created, renamed,
changed and archived."""

from __future__ import annotations

import uuid
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from core.auth import Principal
from core.problems import FieldError, ProblemError, invalid, not_found
from customers import segments as customer_segments
from marketing.models import Segment
from rules.conditions import Problem
from rules.segments import compile_segment, validate_segment
from tenants.service import Actor, audit

NAME_MAX = 100
DESCRIPTION_MAX = 500
CONDITION = "condition"  # where a condition's problems are reported (their paths start with it)
EMPTY = "Add at least one condition: a segment of every customer is not a segment."


def condition_problems(condition: dict[str, Any] | None) -> list[Problem]:
    """Every problem of a segment's condition, each naming its row; an empty condition is one."""
    if condition is None or condition in ({"all": []}, {"any": []}):
        return [Problem(CONDITION, EMPTY)]
    return validate_segment(condition, CONDITION)


async def _name_taken(session: AsyncSession, tenant_id: uuid.UUID, name: str,
                      segment_id: uuid.UUID | None) -> Segment | None:
    """Another segment of the company with this name, in any case (archived ones too: names stay unique)."""
    stmt = select(Segment).where(Segment.tenant_id == tenant_id, func.lower(Segment.name) == name.lower())
    if segment_id is not None:
        stmt = stmt.where(Segment.id != segment_id)
    return await session.scalar(stmt.limit(1))


async def _check(session: AsyncSession, tenant_id: uuid.UUID, *, name: str, description: str,
                 condition: dict[str, Any] | None, segment_id: uuid.UUID | None = None) -> None:
    """Every problem at once: the name's and description's by field, the condition's by row."""
    errors: list[FieldError] = []
    if not name:
        errors.append(FieldError("name", "Give the segment a name."))
    elif len(name) > NAME_MAX:
        errors.append(FieldError("name", f"A name has at most {NAME_MAX} characters (this one has {len(name)})."))
    elif (other := await _name_taken(session, tenant_id, name, segment_id)) is not None:
        archived = " (archived)" if other.archived_at is not None else ""
        errors.append(FieldError("name", f"A segment named “{other.name}”{archived} already exists: "
                                         f"choose another name."))
    if len(description) > DESCRIPTION_MAX:
        errors.append(FieldError("description", f"A description has at most {DESCRIPTION_MAX} characters."))
    errors += [FieldError(p.path, p.message) for p in condition_problems(condition)]
    if errors:
        raise ProblemError(status=422, title="Invalid segment", errors=errors,
                           detail=errors[0].message + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""))


async def _store(session: AsyncSession, segment: Segment) -> None:
    """Write the segment; a name taken meanwhile by another request is refused like one taken before."""
    try:
        async with session.begin_nested():
            session.add(segment)
            await session.flush()
    except IntegrityError:
        message = f"A segment named “{segment.name}” already exists: choose another name."
        raise invalid({"name": message}, detail=message) from None


async def create_segment(session: AsyncSession, principal: Principal, *, name: str, condition: dict[str, Any] | None,
                         description: str = "") -> Segment:
    name, description = name.strip(), description.strip()
    await _check(session, principal.tenant_id, name=name, description=description, condition=condition)
    now = clock.now()
    segment = Segment(tenant_id=principal.tenant_id, name=name, description=description, condition=condition,
                      created_at=now, created_by=principal.label, updated_at=now, updated_by=principal.label)
    await _store(session, segment)
    await audit(session, principal.tenant_id, Actor.of(principal), "segment.created", target=name)
    return segment


async def update_segment(session: AsyncSession, principal: Principal, segment_id: uuid.UUID, *, name: str,
                         condition: dict[str, Any] | None, description: str = "") -> Segment:
    segment = await get_segment(session, principal.tenant_id, segment_id, lock=True)
    if segment.archived_at is not None:
        raise ProblemError(status=409, title="Segment archived",
                           detail=f"The segment “{segment.name}” is archived: it can't be changed.")
    name, description = name.strip(), description.strip()
    await _check(session, principal.tenant_id, name=name, description=description, condition=condition,
                 segment_id=segment.id)
    assert condition is not None  # refused by _check
    segment.name, segment.description, segment.condition = name, description, condition
    segment.updated_at, segment.updated_by = clock.now(), principal.label
    await _store(session, segment)
    await audit(session, principal.tenant_id, Actor.of(principal), "segment.updated", target=name)
    return segment


async def archive_segment(session: AsyncSession, principal: Principal, segment_id: uuid.UUID) -> Segment:
    """Archive a segment: it is no longer offered; whatever names it keeps its id."""
    segment = await get_segment(session, principal.tenant_id, segment_id, lock=True)
    if segment.archived_at is None:
        segment.archived_at = clock.now()
        segment.updated_at, segment.updated_by = segment.archived_at, principal.label
        await session.flush()
        await audit(session, principal.tenant_id, Actor.of(principal), "segment.archived", target=segment.name)
    return segment


async def get_segment(session: AsyncSession, tenant_id: uuid.UUID, segment_id: uuid.UUID, *,
                      lock: bool = False) -> Segment:
    stmt = select(Segment).where(Segment.tenant_id == tenant_id, Segment.id == segment_id)
    if lock:
        stmt = stmt.with_for_update()
    segment = await session.scalar(stmt)
    if segment is None:
        raise not_found("Segment")
    return segment


async def list_segments(session: AsyncSession, tenant_id: uuid.UUID, *, archived: bool = False) -> list[Segment]:
    """The company's segments by name; archived ones instead when ``archived``."""
    stmt = select(Segment).where(Segment.tenant_id == tenant_id)
    stmt = stmt.where(Segment.archived_at.is_not(None) if archived else Segment.archived_at.is_(None))
    return list(await session.scalars(stmt.order_by(func.lower(Segment.name), Segment.id)))


async def names(session: AsyncSession, tenant_id: uuid.UUID) -> dict[str, str]:
    """id -> name of the segments not archived (what promotions and campaigns may name)."""
    rows = await session.execute(select(Segment.id, Segment.name).where(
        Segment.tenant_id == tenant_id, Segment.archived_at.is_(None)).order_by(func.lower(Segment.name)))
    return {str(segment_id): name for segment_id, name in rows}


async def segments_of(session: AsyncSession, tenant_id: uuid.UUID, customer_id: uuid.UUID, *, timezone: str,
                      currency: str) -> list[Segment]:
    """The company's segments (not archived) the customer is in today, in the company's zone."""
    facts = (await customer_segments.facts_of(session, tenant_id, [customer_id], timezone=timezone,
                                              currency=currency)).get(customer_id)
    if facts is None:
        return []
    today = clock.now().astimezone(ZoneInfo(timezone)).date()
    return [s for s in await list_segments(session, tenant_id) if compile_segment(s.condition)(facts, today)]
