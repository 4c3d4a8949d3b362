"""Stock per product and location: adjust, reserve, release, all through the ledger.

Reservation is one conditional UPDATE (``... WHERE on_hand - reserved - safety_stock >= qty``),
so two buyers of the last unit can never both win, whatever process they run in. A
multi-line reservation touches its rows in a fixed order (product, then location) so two
orders can't deadlock each other, and is all-or-nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, and_, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import utcnow
from core.ids import uuid7
from core.problems import ProblemError
from orders.models import InventoryLevel, InventoryMovement

levels = cast(Table, InventoryLevel.__table__)
movements = cast(Table, InventoryMovement.__table__)


@dataclass(frozen=True)
class Line:
    product_id: uuid.UUID
    location_id: uuid.UUID
    quantity: int


class InsufficientStock(ProblemError):
    pass


def _movement(tenant_id: uuid.UUID, line: Line, *, on_hand: int = 0, reserved: int = 0, reason: str,
              reference: str | None, actor: str) -> dict[str, object]:

    return {"tenant_id": tenant_id, "id": uuid7(), "product_id": line.product_id, "location_id": line.location_id,
            "on_hand_delta": on_hand, "reserved_delta": reserved, "reason": reason, "reference": reference,
            "actor": actor, "created_at": utcnow()}


def _level_key(tenant_id: uuid.UUID, line: Line):  # type: ignore[no-untyped-def]
    return and_(levels.c.tenant_id == tenant_id, levels.c.product_id == line.product_id,
                levels.c.location_id == line.location_id)


async def ensure_level(session: AsyncSession, tenant_id: uuid.UUID, line: Line) -> None:
    await session.execute(
        pg_insert(levels).values(tenant_id=tenant_id, id=uuid.uuid4(), product_id=line.product_id,
                                 location_id=line.location_id, on_hand=0, reserved=0, safety_stock=0,
                                 updated_at=utcnow())
        .on_conflict_do_nothing(index_elements=["tenant_id", "product_id", "location_id"])
    )


async def adjust(session: AsyncSession, tenant_id: uuid.UUID, line: Line, *, reason: str, actor: str,
                 reference: str | None = None) -> int:
    """Add ``line.quantity`` (negative to remove) to on_hand; refuses to go below zero.
    Returns the new on_hand."""
    await ensure_level(session, tenant_id, line)
    row = (await session.execute(
        update(levels).where(_level_key(tenant_id, line), levels.c.on_hand + line.quantity >= 0)
        .values(on_hand=levels.c.on_hand + line.quantity, updated_at=utcnow())
        .returning(levels.c.on_hand)
    )).first()
    if row is None:
        current = await session.scalar(select(levels.c.on_hand).where(_level_key(tenant_id, line)))
        raise ProblemError(409, "Not enough stock",
                           f"Removing {-line.quantity} would make on hand negative: only {current} on hand.")
    if line.quantity:
        await session.execute(insert(movements), [_movement(tenant_id, line, on_hand=line.quantity, reason=reason,
                                                            reference=reference, actor=actor)])
    return int(row[0])


async def set_safety_stock(session: AsyncSession, tenant_id: uuid.UUID, line: Line) -> None:
    if line.quantity < 0:
        raise ProblemError(422, "Invalid safety stock", "Safety stock can't be negative.")
    await ensure_level(session, tenant_id, line)
    await session.execute(update(levels).where(_level_key(tenant_id, line))
                          .values(safety_stock=line.quantity, updated_at=utcnow()))


async def reserve(session: AsyncSession, tenant_id: uuid.UUID, lines: list[Line], *, reference: str,
                  actor: str) -> None:
    """Reserve every line or none: raises InsufficientStock (the caller's transaction then
    rolls back the lines already reserved)."""
    for line in sorted(lines, key=lambda item: (item.product_id, item.location_id)):
        if line.quantity <= 0:
            raise ProblemError(422, "Invalid quantity", "Quantities to reserve must be positive.")
        won = (await session.execute(
            update(levels)
            .where(_level_key(tenant_id, line),
                   levels.c.on_hand - levels.c.reserved - levels.c.safety_stock >= line.quantity)
            .values(reserved=levels.c.reserved + line.quantity, updated_at=utcnow())
            .returning(levels.c.reserved)
        )).first()
        if won is None:
            raise InsufficientStock(409, "Not enough stock available",
                                    f"Product {line.product_id} at location {line.location_id}: fewer than "
                                    f"{line.quantity} available.")
    await session.execute(insert(movements), [
        _movement(tenant_id, line, reserved=line.quantity, reason="reservation", reference=reference, actor=actor)
        for line in lines
    ])


async def release(session: AsyncSession, tenant_id: uuid.UUID, lines: list[Line], *, reference: str,
                  actor: str, reason: str = "release") -> None:
    for line in sorted(lines, key=lambda item: (item.product_id, item.location_id)):
        done = (await session.execute(
            update(levels).where(_level_key(tenant_id, line), levels.c.reserved >= line.quantity)
            .values(reserved=levels.c.reserved - line.quantity, updated_at=utcnow())
            .returning(levels.c.reserved)
        )).first()
        if done is None:
            raise ProblemError(409, "Nothing to release", "Fewer units are reserved than the release asks for.")
    await session.execute(insert(movements), [
        _movement(tenant_id, line, reserved=-line.quantity, reason=reason, reference=reference, actor=actor)
        for line in lines
    ])


async def available(session: AsyncSession, tenant_id: uuid.UUID, line: Line) -> int:
    row = (await session.execute(
        select(levels.c.on_hand - levels.c.reserved - levels.c.safety_stock).where(_level_key(tenant_id, line))
    )).first()
    return int(row[0]) if row else 0
