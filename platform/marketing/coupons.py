"""Coupon codes: single codes a marketer chooses, and batches of unique generated codes, each tied
to a promotion of the promotions rule set (its draft or a published version).

Codes are compared in upper case, so they are stored so: "summer" typed at the till is "SUMMER".
A batch's codes are drawn with ``secrets`` from an alphabet without look-alikes (no 0/O, 1/I) and
inserted in chunks, in the batch's transaction, with ``ON CONFLICT DO NOTHING``: a code that
already exists is drawn again until the batch has its size.
"""

from __future__ import annotations

import csv
import io
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import bulk, clock
from core.auth import Principal
from core.db import get_database
from core.limits import INT32_MAX
from core.problems import invalid, not_found
from marketing import pricing
from marketing.models import Coupon, CouponBatch, Redemption
from rules import service as rule_sets
from tenants.service import Actor, audit

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # 32 signs: no 0/O, no 1/I
RANDOM_LENGTH = 8  # 32^8: about a trillion codes, so collisions are rare and simply drawn again
CODE_MAX = 40
PREFIX_MAX = 20
NAME_MAX = 100
BATCH_MAX = 100_000
CHUNK = 5_000  # codes per INSERT: one statement of arrays each
EXPORT_CHUNK = 5_000
_CODE = re.compile(r"[A-Z0-9][A-Z0-9_-]*")
_PREFIX = re.compile(r"[A-Z0-9][A-Z0-9_-]*")
CODE_WORDS = "letters, digits, dashes or underscores, starting with a letter or a digit"
_CONFLICT = "ON CONFLICT (tenant_id, code) DO NOTHING"
CSV_HEADER = ("code", "promotion", "max_uses", "uses", "expires_at")

assert len(ALPHABET) == 32 and not set("0O1I") & set(ALPHABET)


def normalise(code: str) -> str:
    """A code as it is stored and compared: trimmed, upper case."""
    return code.strip().upper()


def random_codes(count: int, prefix: str = "") -> set[str]:
    """``count`` codes (fewer when two draws meet, which the caller tops up): the prefix then
    random signs. 32 signs: one random byte's low five bits pick one without bias."""
    raw = secrets.token_bytes(count * RANDOM_LENGTH)
    return {prefix + "".join(ALPHABET[b & 31] for b in raw[i:i + RANDOM_LENGTH])
            for i in range(0, len(raw), RANDOM_LENGTH)}


def code_problem(code: str) -> str | None:
    """What is wrong with a chosen code (already normalised), or None."""
    if not code:
        return "Type a code, or leave it empty to have one made up."
    if len(code) > CODE_MAX:
        return f"A code has at most {CODE_MAX} characters (this one has {len(code)})."
    if not _CODE.fullmatch(code):
        return f"Use {CODE_WORDS}."
    return None


async def promotions_named(session: AsyncSession, principal: Principal) -> dict[str, str]:
    """Every promotion a coupon may belong to: id -> name, from the promotions draft and every
    published version (the draft's names first, then the newest version's)."""
    rule_set = await rule_sets.rule_set_of(session, principal, rule_sets.PROMOTIONS)
    named: dict[str, str] = {}
    documents = [rule_set.draft] + [v.document for v in await rule_sets.versions(session, rule_set)]
    for document in documents:
        promotions = document.get("promotions") if isinstance(document, dict) else None
        for promotion in promotions if isinstance(promotions, list) else []:
            if isinstance(promotion, dict) and isinstance(promotion.get("id"), str):
                named.setdefault(promotion["id"], str(promotion.get("name") or promotion["id"]))
    return named


def _unknown_promotion(promotion_id: str, known: Mapping[str, str]) -> str:
    if not known:
        return "There is no promotion yet: create the promotion first, then its codes."
    return (f"No promotion has the id “{promotion_id[:60]}”: choose one of the promotions of the draft "
            f"or of a published version.")


def _common_problems(*, promotion_id: str, known: Mapping[str, str], max_uses: int | None,
                     expires_at: datetime | None, starts_at: datetime | None = None) -> dict[str, str]:
    errors: dict[str, str] = {}
    if promotion_id not in known:
        errors["promotion_id"] = _unknown_promotion(promotion_id, known)
    if max_uses is not None and not 1 <= max_uses <= INT32_MAX:
        errors["max_uses"] = "The uses per code are a whole number from 1, or empty for no limit."
    now = clock.now()
    if expires_at is not None and expires_at <= now:
        errors["expires_at"] = "The expiry is in the past: choose a later date, or none."
    if starts_at is not None and expires_at is not None and expires_at <= starts_at:
        errors["expires_at"] = "The code expires before it starts: choose an expiry after the start."
    return errors


async def coupon_problems(session: AsyncSession, principal: Principal, *, promotion_id: str,
                          code: str | None = None, max_uses: int | None = None, starts_at: datetime | None = None,
                          expires_at: datetime | None = None) -> dict[str, str]:
    """Every problem of a code to create, by field (the code's being taken is found when inserting it)."""
    known = await promotions_named(session, principal)
    errors = _common_problems(promotion_id=promotion_id, known=known, max_uses=max_uses, expires_at=expires_at,
                              starts_at=starts_at)
    chosen = normalise(code) if code is not None and code.strip() else None
    if chosen is not None and (problem := code_problem(chosen)):
        errors["code"] = problem
    return errors


async def batch_problems(session: AsyncSession, principal: Principal, *, promotion_id: str, count: int | None,
                         prefix: str = "", max_uses: int | None = None, expires_at: datetime | None = None,
                         name: str = "") -> dict[str, str]:
    """Every problem of a batch to create, by field (``count`` None: already refused by the caller)."""
    known = await promotions_named(session, principal)
    errors = _common_problems(promotion_id=promotion_id, known=known, max_uses=max_uses, expires_at=expires_at)
    if count is not None and not 1 <= count <= BATCH_MAX:
        errors["count"] = f"A batch has from 1 to {BATCH_MAX:,} codes."
    prefix = normalise(prefix)
    if len(prefix) > PREFIX_MAX:
        errors["prefix"] = f"A prefix has at most {PREFIX_MAX} characters (this one has {len(prefix)})."
    elif prefix and not _PREFIX.fullmatch(prefix):
        errors["prefix"] = f"Use {CODE_WORDS}."
    name = name.strip()
    if len(name) > NAME_MAX:
        errors["name"] = f"A name has at most {NAME_MAX} characters (this one has {len(name)})."
    return errors


def _raise(errors: dict[str, str]) -> None:
    if errors:
        raise invalid(errors, detail=next(iter(errors.values())))


async def create_coupon(session: AsyncSession, principal: Principal, *, promotion_id: str, code: str | None = None,
                        max_uses: int | None = None, starts_at: datetime | None = None,
                        expires_at: datetime | None = None) -> Coupon:
    """One code for a promotion: the one given (refused if the company already has it, in any
    case) or one made up."""
    _raise(await coupon_problems(session, principal, promotion_id=promotion_id, code=code, max_uses=max_uses,
                                 starts_at=starts_at, expires_at=expires_at))
    chosen = normalise(code) if code is not None and code.strip() else None
    row: dict[str, Any] = {"tenant_id": principal.tenant_id, "promotion_id": promotion_id, "batch_id": None,
                           "max_uses": max_uses, "starts_at": starts_at, "expires_at": expires_at,
                           "created_by": principal.label}
    for _ in range(1 if chosen is not None else 5):
        row["code"] = chosen if chosen is not None else next(iter(random_codes(1)))
        inserted = await bulk.insert_rows(session, Coupon, [dict(row)], on_conflict=_CONFLICT, returning="id")
        if inserted:
            await audit(session, principal.tenant_id, Actor.of(principal), "coupon.created", target=row["code"],
                        promotion_id=promotion_id)
            return await _coupon_by_id(session, principal.tenant_id, inserted[0]["id"])
    raise invalid({"code": f"The code {row['code']} already exists: choose another one."},
                  detail=f"The code {row['code']} already exists.")


async def create_batch(session: AsyncSession, principal: Principal, *, promotion_id: str, count: int,
                       prefix: str = "", max_uses: int | None = None, expires_at: datetime | None = None,
                       name: str = "") -> CouponBatch:
    """``count`` unique new codes for a promotion, all in this transaction (1 to 100,000)."""
    _raise(await batch_problems(session, principal, promotion_id=promotion_id, count=count, prefix=prefix,
                                max_uses=max_uses, expires_at=expires_at, name=name))
    known = await promotions_named(session, principal)
    prefix, name = normalise(prefix), name.strip()
    batch = CouponBatch(tenant_id=principal.tenant_id, promotion_id=promotion_id, prefix=prefix, size=count,
                        name=name or f"{count:,} codes for {known[promotion_id]}"[:NAME_MAX],
                        max_uses=max_uses, expires_at=expires_at, created_by=principal.label)
    session.add(batch)
    await session.flush()
    now = clock.now()
    made = 0
    while made < count:
        codes = random_codes(min(CHUNK, count - made), prefix)
        rows = [{"tenant_id": principal.tenant_id, "code": code, "promotion_id": promotion_id,
                 "batch_id": batch.id, "max_uses": max_uses, "expires_at": expires_at, "created_at": now,
                 "created_by": principal.label} for code in codes]
        made += len(await bulk.insert_rows(session, Coupon, rows, on_conflict=_CONFLICT, returning="id"))
    await audit(session, principal.tenant_id, Actor.of(principal), "coupon_batch.created", target=batch.name,
                promotion_id=promotion_id, size=count)
    return batch


@dataclass(frozen=True)
class BatchSummary:
    batch: CouponBatch
    codes: int
    uses: int
    disabled: int


async def list_batches(session: AsyncSession, tenant_id: uuid.UUID, *, limit: int = 200) -> list[BatchSummary]:
    """The newest batches with how many codes they hold, how often they were used, how many are off."""
    figures = (select(Coupon.batch_id, func.count().label("codes"), func.coalesce(func.sum(Coupon.uses), 0)
                      .label("uses"), func.count(Coupon.disabled_at).label("disabled"))
               .where(Coupon.tenant_id == tenant_id, Coupon.batch_id.is_not(None))
               .group_by(Coupon.batch_id).subquery())
    rows = await session.execute(
        select(CouponBatch, figures.c.codes, figures.c.uses, figures.c.disabled)
        .outerjoin(figures, figures.c.batch_id == CouponBatch.id)
        .where(CouponBatch.tenant_id == tenant_id).order_by(CouponBatch.id.desc()).limit(limit))
    return [BatchSummary(batch, codes or 0, uses or 0, disabled or 0) for batch, codes, uses, disabled in rows]


async def batch_summary(session: AsyncSession, tenant_id: uuid.UUID, batch_id: uuid.UUID) -> BatchSummary:
    batch = await get_batch(session, tenant_id, batch_id)
    codes, uses, disabled = (await session.execute(
        select(func.count(), func.coalesce(func.sum(Coupon.uses), 0), func.count(Coupon.disabled_at))
        .where(Coupon.tenant_id == tenant_id, Coupon.batch_id == batch_id))).one()
    return BatchSummary(batch, codes, uses, disabled)


async def get_batch(session: AsyncSession, tenant_id: uuid.UUID, batch_id: uuid.UUID) -> CouponBatch:
    batch = await session.scalar(select(CouponBatch).where(CouponBatch.tenant_id == tenant_id,
                                                           CouponBatch.id == batch_id))
    if batch is None:
        raise not_found("Coupon batch")
    return batch


async def batch_codes(session: AsyncSession, tenant_id: uuid.UUID, batch_id: uuid.UUID, *, after: str = "",
                      limit: int = 100) -> list[Coupon]:
    """A page of a batch's codes in code order, after the code ``after``."""
    stmt = select(Coupon).where(Coupon.tenant_id == tenant_id, Coupon.batch_id == batch_id)
    if after:
        stmt = stmt.where(Coupon.code > normalise(after))
    return list(await session.scalars(stmt.order_by(Coupon.code).limit(limit)))


async def single_codes(session: AsyncSession, tenant_id: uuid.UUID, *, limit: int = 200) -> list[Coupon]:
    """The newest codes made one by one (not in a batch)."""
    return list(await session.scalars(
        select(Coupon).where(Coupon.tenant_id == tenant_id, Coupon.batch_id.is_(None))
        .order_by(Coupon.id.desc()).limit(limit)))


def _csv_line(values: tuple[Any, ...]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue()


async def export_csv(tenant_id: uuid.UUID, batch_id: uuid.UUID) -> AsyncIterator[str]:
    """The batch's codes as CSV (code,promotion,max_uses,uses,expires_at), a chunk at a time from
    one snapshot. Runs after the request's own transaction has ended, so it opens its own: check
    the batch is the caller's before streaming this."""
    yield _csv_line(CSV_HEADER)
    after = ""
    async with get_database().transaction(tenant_id=tenant_id) as session:
        while True:
            rows = (await session.execute(
                select(Coupon.code, Coupon.promotion_id, Coupon.max_uses, Coupon.uses, Coupon.expires_at)
                .where(Coupon.tenant_id == tenant_id, Coupon.batch_id == batch_id, Coupon.code > after)
                .order_by(Coupon.code).limit(EXPORT_CHUNK))).all()
            if not rows:
                return
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            for code, promotion_id, max_uses, uses, expires_at in rows:
                writer.writerow((code, promotion_id, "" if max_uses is None else max_uses, uses,
                                 expires_at.isoformat() if expires_at else ""))
            yield out.getvalue()
            after = rows[-1][0]


async def _coupon_by_id(session: AsyncSession, tenant_id: uuid.UUID, coupon_id: uuid.UUID) -> Coupon:
    coupon = await session.scalar(select(Coupon).where(Coupon.tenant_id == tenant_id, Coupon.id == coupon_id)
                                  .execution_options(populate_existing=True))
    if coupon is None:
        raise not_found("Coupon")
    return coupon


async def get_coupon(session: AsyncSession, tenant_id: uuid.UUID, coupon_id: uuid.UUID) -> Coupon:
    return await _coupon_by_id(session, tenant_id, coupon_id)


async def coupon_by_code(session: AsyncSession, tenant_id: uuid.UUID, code: str) -> Coupon:
    """A code as typed, in any case."""
    coupon = await session.scalar(select(Coupon).where(Coupon.tenant_id == tenant_id,
                                                       Coupon.code == normalise(code)[:CODE_MAX]))
    if coupon is None:
        raise not_found("Coupon")
    return coupon


def status(coupon: Coupon, now: datetime | None = None) -> str:
    """disabled, expired, used up, not started, or active."""
    now = now or clock.now()
    if coupon.disabled_at is not None:
        return "disabled"
    if coupon.expires_at is not None and coupon.expires_at <= now:
        return "expired"
    if coupon.max_uses is not None and coupon.uses >= coupon.max_uses:
        return "used up"
    if coupon.starts_at is not None and coupon.starts_at > now:
        return "not started"
    return "active"


async def disable_coupon(session: AsyncSession, principal: Principal, coupon: Coupon) -> Coupon:
    """Turn a code off: orders can't use it any more (those placed keep their discount)."""
    if coupon.disabled_at is None:
        coupon.disabled_at = clock.now()
        await audit(session, principal.tenant_id, Actor.of(principal), "coupon.disabled", target=coupon.code)
        await session.flush()
    return coupon


async def disable_batch(session: AsyncSession, principal: Principal, batch_id: uuid.UUID) -> int:
    """Turn off every code of a batch still on; how many were turned off."""
    batch = await get_batch(session, principal.tenant_id, batch_id)
    result = await session.execute(
        update(Coupon).where(Coupon.tenant_id == principal.tenant_id, Coupon.batch_id == batch.id,
                             Coupon.disabled_at.is_(None))
        .values(disabled_at=clock.now()).execution_options(synchronize_session=False))
    changed = int(getattr(result, "rowcount", 0) or 0)
    await audit(session, principal.tenant_id, Actor.of(principal), "coupon_batch.disabled", target=batch.name,
                codes=changed)
    return changed


async def redemptions(session: AsyncSession, tenant_id: uuid.UUID, coupon: Coupon, *,
                      limit: int = 100) -> list[Redemption]:
    """The orders that used the code, newest first."""
    return list(await pricing.redemptions_of(session, tenant_id, coupon_id=coupon.id, limit=limit))


@dataclass(frozen=True)
class Totals:
    batches: int
    codes: int
    active: int  # not turned off, not expired, not used up
    uses: int


async def totals(session: AsyncSession, tenant_id: uuid.UUID) -> Totals:
    """The company's codes in figures, for the marketing home page."""
    now = clock.now()
    active = ((Coupon.disabled_at.is_(None)) & ((Coupon.expires_at.is_(None)) | (Coupon.expires_at > now))
              & ((Coupon.max_uses.is_(None)) | (Coupon.uses < Coupon.max_uses)))
    codes, live, uses = (await session.execute(
        select(func.count(), func.count().filter(active), func.coalesce(func.sum(Coupon.uses), 0))
        .where(Coupon.tenant_id == tenant_id))).one()
    batches = await session.scalar(select(func.count()).select_from(CouponBatch)
                                   .where(CouponBatch.tenant_id == tenant_id))
    return Totals(int(batches or 0), int(codes), int(live), int(uses))
