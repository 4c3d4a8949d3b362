"""Rule sets in the database: the draft, publishing, withdrawing, and the version in force.

One rule set per kind and company: ``routing`` (documents of ``rules.routing``) and
``promotions`` (documents of ``rules.promotions``, edited from the marketing console). Every
function takes the kind; routing is the default."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple, Protocol, TypeVar

from sqlalchemy import bindparam, exists, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from core.auth import Principal
from core.db import Prepared
from core.ids import uuid7
from core.problems import FieldError, ProblemError, invalid, not_found
from rules import routing
from rules.conditions import Problem
from rules.models import RuleSet, RuleVersion
from rules.schedule import version_at
from tenants.service import Actor, audit

ROUTING = "routing"
PROMOTIONS = "promotions"
KINDS = {ROUTING: "Routing", PROMOTIONS: "Promotions"}
Validator = Callable[[dict[str, Any]], list[Problem]]
C = TypeVar("C")
C_co = TypeVar("C_co", covariant=True)


class Cache(Protocol[C_co]):
    def peek(self, key: tuple[Any, Any]) -> C_co | None: ...
    def get(self, key: tuple[Any, Any], document: dict[str, Any]) -> C_co: ...


def _empty(kind: str) -> dict[str, Any]:
    if kind == PROMOTIONS:
        return {"promotions": [], "within_class": "priority"}
    return routing.empty_document()


def problems_error(problems: list[Problem]) -> ProblemError:
    """Every problem of a document, each at its path, with the first one as the summary."""
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return ProblemError(status=422, title="Invalid rules", detail=problems[0].message + more,
                        errors=[FieldError(p.path, p.message) for p in problems])


EMPTY_DRAFT = "The draft has no rules yet: add a rule before publishing."


def publish_problems(document: dict[str, Any], source: int | None = None) -> list[Problem]:
    """What stops a routing document from being published: its problems, or having no rule at
    all (a version without rules would hold every order, which no one means to publish)."""
    problems = routing.validate_document(document)
    if not problems and not document.get("rules"):
        message = EMPTY_DRAFT if source is None else f"Version {source} has no rules: there is nothing to publish."
        problems = [Problem("rules", message)]
    return problems


async def routing_set(session: AsyncSession, principal: Principal, *, lock: bool = False) -> RuleSet:
    """The tenant's routing rule set, created empty on first use."""
    return await rule_set_of(session, principal, ROUTING, lock=lock)


async def rule_set_of(session: AsyncSession, principal: Principal, kind: str, *, lock: bool = False) -> RuleSet:
    """The tenant's rule set of this kind, created empty on first use."""
    now = clock.now()
    await session.execute(
        insert(RuleSet).values(tenant_id=principal.tenant_id, id=uuid7(), kind=kind, name=KINDS[kind],
                               draft=_empty(kind), draft_revision=1, draft_updated_at=now,
                               draft_updated_by="", created_at=now)
        .on_conflict_do_nothing(index_elements=["tenant_id", "kind"])
    )
    stmt = select(RuleSet).where(RuleSet.tenant_id == principal.tenant_id, RuleSet.kind == kind)
    if lock:
        stmt = stmt.with_for_update()
    rule_set = await session.scalar(stmt.execution_options(populate_existing=True))
    assert rule_set is not None
    return rule_set


async def versions(session: AsyncSession, rule_set: RuleSet) -> list[RuleVersion]:
    rows = await session.scalars(select(RuleVersion).where(
        RuleVersion.tenant_id == rule_set.tenant_id, RuleVersion.rule_set_id == rule_set.id,
    ).order_by(RuleVersion.number.desc()))
    return list(rows)


async def version(session: AsyncSession, rule_set: RuleSet, number: int) -> RuleVersion:
    found = await session.scalar(select(RuleVersion).where(
        RuleVersion.tenant_id == rule_set.tenant_id, RuleVersion.rule_set_id == rule_set.id,
        RuleVersion.number == number,
    ))
    if found is None:
        raise not_found(f"Version {number}")
    return found


async def save_draft(session: AsyncSession, principal: Principal, document: dict[str, Any], *,
                     revision: int | None = None, kind: str = ROUTING) -> RuleSet:
    """Store the draft as it is, valid or not. ``revision`` is the one the editor started
    from: if someone saved since, nothing is written and the editor is told."""
    rule_set = await rule_set_of(session, principal, kind, lock=True)
    if revision is not None and revision != rule_set.draft_revision:
        raise ProblemError(status=409, title="The draft changed",
                           detail=f"{rule_set.draft_updated_by or 'Someone'} saved the draft since you opened it. "
                                  f"Reload to see their changes.")
    rule_set.draft = document
    rule_set.draft_revision += 1
    rule_set.draft_updated_at = clock.now()
    rule_set.draft_updated_by = principal.label
    await session.flush()
    return rule_set


async def publish(session: AsyncSession, principal: Principal, *, source: int | None = None,
                  effective_from: datetime | None = None, effective_to: datetime | None = None,
                  note: str = "", ip: str | None = None, kind: str = ROUTING,
                  validator: Validator | None = None) -> RuleVersion:
    """Publish the draft (or republish version ``source``, a rollback) as a new immutable
    version in force from ``effective_from`` (now when None) until ``effective_to``.
    ``validator`` says what stops a document of this kind (routing's own check by default)."""
    rule_set = await rule_set_of(session, principal, kind, lock=True)
    document = rule_set.draft if source is None else (await version(session, rule_set, source)).document
    problems = validator(document) if validator is not None else publish_problems(document, source)
    if problems:
        raise problems_error(problems)
    now = clock.now()
    errors: dict[str, str] = {}
    if effective_from is not None and effective_from <= now:
        errors["effective_from"] = "A scheduled version starts in the future: choose a later time, or publish now."
    start = effective_from or now
    if effective_to is not None and effective_to <= start:
        errors["effective_to"] = "The end is before the start: choose an end after the version takes effect."
    if len(note) > 500:
        errors["note"] = "Keep the note under 500 characters."
    if errors:
        raise invalid(errors, detail=next(iter(errors.values())))
    number = (await session.scalar(select(func.coalesce(func.max(RuleVersion.number), 0)).where(
        RuleVersion.tenant_id == rule_set.tenant_id, RuleVersion.rule_set_id == rule_set.id)) or 0) + 1
    published = RuleVersion(
        tenant_id=rule_set.tenant_id, id=uuid7(), rule_set_id=rule_set.id, number=number, document=document,
        effective_from=start, effective_to=effective_to, republished_from=source, note=note.strip(),
        published_at=now, published_by=principal.label,
    )
    session.add(published)
    await audit(session, principal.tenant_id, Actor.of(principal, ip), "rules.published", target=f"{kind} v{number}",
                effective_from=start.isoformat(), effective_to=effective_to.isoformat() if effective_to else None,
                republished_from=source)
    await session.flush()
    return published


async def withdraw(session: AsyncSession, principal: Principal, number: int, *, ip: str | None = None,
                   kind: str = ROUTING) -> RuleVersion:
    """Withdraw a scheduled version before it takes effect; one in force is replaced by publishing."""
    rule_set = await rule_set_of(session, principal, kind, lock=True)
    found = await version(session, rule_set, number)
    if found.cancelled_at is not None:
        return found
    if found.effective_from <= clock.now():
        raise ProblemError(status=409, title="Already in effect",
                           detail=f"Version {number} has taken effect: publish another version to replace it.")
    found.cancelled_at = clock.now()
    found.cancelled_by = principal.label
    await audit(session, principal.tenant_id, Actor.of(principal, ip), "rules.withdrawn", target=f"{kind} v{number}")
    await session.flush()
    return found


async def has_published(session: AsyncSession, tenant_id: uuid.UUID, kind: str = ROUTING) -> bool:
    return bool(await session.scalar(select(exists().where(
        RuleVersion.tenant_id == tenant_id, RuleSet.tenant_id == RuleVersion.tenant_id,
        RuleSet.id == RuleVersion.rule_set_id, RuleSet.kind == kind))))


class VersionRef(NamedTuple):
    """A published version as evaluation names it: which one, and its window."""

    id: uuid.UUID
    number: int
    effective_from: datetime
    effective_to: datetime | None
    cancelled_at: datetime | None


# The versions of a kind whose windows touch [first, last]: on every routing and capture batch, so
# one prepared statement with no ORM objects.
_WINDOWS = Prepared(
    select(RuleVersion.id, RuleVersion.number, RuleVersion.effective_from, RuleVersion.effective_to,
           RuleVersion.cancelled_at)
    .join(RuleSet, (RuleSet.tenant_id == RuleVersion.tenant_id) & (RuleSet.id == RuleVersion.rule_set_id))
    .where(RuleVersion.tenant_id == bindparam("tenant"), RuleSet.kind == bindparam("kind"),
           RuleVersion.cancelled_at.is_(None), RuleVersion.effective_from <= bindparam("last"),
           RuleVersion.effective_to.is_(None) | (RuleVersion.effective_to > bindparam("first"))))


async def routing_in_force(session: AsyncSession, tenant_id: uuid.UUID, at: datetime,
                           ) -> tuple[VersionRef | None, routing.CompiledRouting | None]:
    """The routing version in force at ``at`` and its compiled form."""
    return (await routing_in_force_at(session, tenant_id, [at]))[0]


async def routing_in_force_at(session: AsyncSession, tenant_id: uuid.UUID, moments: list[datetime],
                              ) -> list[tuple[VersionRef | None, routing.CompiledRouting | None]]:
    """For each moment, the routing version in force then and its compiled form."""
    return await in_force_at(session, tenant_id, ROUTING, moments, routing.CACHE)


async def in_force_at(session: AsyncSession, tenant_id: uuid.UUID, kind: str, moments: list[datetime],
                      cache: Cache[C]) -> list[tuple[VersionRef | None, C | None]]:
    """For each moment, the version of this kind in force then and its compiled form, with one
    read of the versions whose windows touch those moments. Compiled forms are cached (versions
    never change), so a version's document is read only the first time."""
    if not moments:
        return []
    first, last = min(moments), max(moments)
    candidates = [VersionRef(*row) for row in await _WINDOWS.fetch(session, tenant=tenant_id, kind=kind,
                                                                    first=first, last=last)]
    compiled: dict[uuid.UUID, C] = {}
    found: list[tuple[VersionRef | None, C | None]] = []
    for at in moments:
        version = version_at(candidates, at)
        if version is None:
            found.append((None, None))
            continue
        if version.id not in compiled:
            key = (tenant_id, version.id)
            cached = cache.peek(key)
            if cached is None:
                document = await session.scalar(select(RuleVersion.document).where(
                    RuleVersion.tenant_id == tenant_id, RuleVersion.id == version.id))
                cached = cache.get(key, document or {})
            compiled[version.id] = cached
        found.append((version, compiled[version.id]))
    return found


async def overview(session: AsyncSession, principal: Principal, kind: str = ROUTING,
                   ) -> tuple[RuleSet, list[RuleVersion], RuleVersion | None]:
    """The rule set of this kind, its versions (newest first) and the version in force now."""
    rule_set = await rule_set_of(session, principal, kind)
    all_versions = await versions(session, rule_set)
    return rule_set, all_versions, version_at(all_versions, clock.now())
