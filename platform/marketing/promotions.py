"""The promotions rule set (``rules`` kind "promotions"): checked against the company's segments
and catalog when published, and the version in force at a time with its compiled form.

The draft, versions and schedule are ``rules.service``'s, shared with routing; what this module
adds is what a promotions document is checked against and its cache of compiled versions."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal
from inventory import catalog
from marketing.models import Redemption, Segment
from rules import promotions as pure
from rules import service as rules
from rules.conditions import Problem

KIND = rules.PROMOTIONS
# Counters, coupons and redemptions name a promotion by its id in columns this long.
PROMOTION_ID_MAX: int = Redemption.__table__.c.promotion_id.type.length  # type: ignore[attr-defined]


class Version(Protocol):
    """A published promotions version, as pricing and the redemptions name it."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def number(self) -> int: ...
    @property
    def effective_from(self) -> datetime: ...
    @property
    def effective_to(self) -> datetime | None: ...


async def segment_names(session: AsyncSession, tenant_id: uuid.UUID) -> dict[str, str]:
    """The company's segments a promotion may name (not archived): id (as text) -> name."""
    rows = await session.execute(select(Segment.id, Segment.name).where(
        Segment.tenant_id == tenant_id, Segment.archived_at.is_(None)).order_by(Segment.name))
    return {str(row.id): row.name for row in rows}


def named_skus(document: Any) -> set[str]:
    """Every SKU a document's conditions name (``line.sku`` leaves, wherever they are)."""
    found: set[str] = set()
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("field") == "line.sku":
                value = node.get("value")
                values = value if isinstance(value, list) else [value]
                found.update(v for v in values if isinstance(v, str))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


async def validator(session: AsyncSession, tenant_id: uuid.UUID,
                    document: Any = None) -> Callable[[dict[str, Any]], list[Problem]]:
    """What stops a promotions document: its own problems, a segment that is not the company's
    (or archived), a SKU or category absent from the catalog. Given the document to check, only
    the SKUs it names are looked up; else the whole catalog's are read."""
    segments = await segment_names(session, tenant_id)
    categories = await catalog.categories(session, tenant_id)
    if document is None:
        skus: set[str] = await catalog.all_skus(session, tenant_id)
    else:
        skus = set(await catalog.product_refs(session, tenant_id, named_skus(document)))

    def check(candidate: dict[str, Any]) -> list[Problem]:
        found = pure.validate_document(candidate, segments=segments, skus=skus, categories=categories)
        listed = candidate.get("promotions") if isinstance(candidate, dict) else None
        for i, promotion in enumerate(listed if isinstance(listed, list) else []):
            promotion_id = promotion.get("id") if isinstance(promotion, dict) else None
            if isinstance(promotion_id, str) and len(promotion_id) > PROMOTION_ID_MAX:
                found.append(Problem(f"promotions[{i}].id", f"Promotion {i + 1}: its id is longer than "
                                                            f"{PROMOTION_ID_MAX} characters"))
        return found
    return check


async def problems(session: AsyncSession, tenant_id: uuid.UUID, document: Any) -> list[Problem]:
    """Every problem of a promotions document, in this company (segments and catalog)."""
    return (await validator(session, tenant_id, document))(document)


async def in_force_at(session: AsyncSession, tenant_id: uuid.UUID, moments: list[datetime],
                      ) -> Sequence[tuple[Version | None, pure.CompiledPromotions | None]]:
    """For each moment, the promotions version in force then and its compiled form (one query)."""
    return await rules.in_force_at(session, tenant_id, KIND, moments, pure.CACHE)


async def in_force(session: AsyncSession, tenant_id: uuid.UUID,
                   at: datetime) -> tuple[Version | None, pure.CompiledPromotions | None]:
    """The promotions version in force at ``at`` and its compiled form."""
    return (await in_force_at(session, tenant_id, [at]))[0]


async def rule_set(session: AsyncSession, principal: Principal) -> Any:
    """The company's promotions rule set (its draft), created empty on first use."""
    return await rules.rule_set_of(session, principal, KIND)


async def save_draft(session: AsyncSession, principal: Principal, document: dict[str, Any], *,
                     revision: int | None = None) -> Any:
    """Store the promotions draft as it is, valid or not (see ``rules.service.save_draft``)."""
    return await rules.save_draft(session, principal, document, revision=revision, kind=KIND)


async def publish(session: AsyncSession, principal: Principal, *, source: int | None = None,
                  effective_from: datetime | None = None, effective_to: datetime | None = None,
                  note: str = "", ip: str | None = None) -> Any:
    """Publish the promotions draft (or republish version ``source``) from ``effective_from``,
    refused with every problem named when the document does not hold in this company. Audited
    as rules are ("rules.published", "promotions vN")."""
    rule_set = await rules.rule_set_of(session, principal, KIND)
    document = rule_set.draft if source is None else (await rules.version(session, rule_set, source)).document
    check = await validator(session, principal.tenant_id, document)
    return await rules.publish(session, principal, source=source, effective_from=effective_from,
                               effective_to=effective_to, note=note, ip=ip, kind=KIND, validator=check)


async def withdraw(session: AsyncSession, principal: Principal, number: int, *, ip: str | None = None) -> Any:
    """Withdraw a scheduled promotions version before it takes effect."""
    return await rules.withdraw(session, principal, number, ip=ip, kind=KIND)


async def overview(session: AsyncSession, principal: Principal) -> tuple[Any, list[Any], Any]:
    """The promotions rule set, its versions (newest first) and the version in force now."""
    return await rules.overview(session, principal, KIND)
