"""Stock per product and location: adjust, reserve, release, all through the ledger.

Reservation is one conditional UPDATE (``... WHERE on_hand - reserved - safety_stock >= qty``),
so two buyers of the last unit can never both win, whatever process they run in. A
multi-line reservation touches its rows in a fixed order (product, then location) so two
orders can't deadlock each other, and is all-or-nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, and_, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Prepared, utcnow
from core.ids import uuid7
from core.problems import ProblemError
from inventory.models import InventoryLevel, InventoryMovement
from inventory.schemas import MAX_QUANTITY

levels = cast(Table, InventoryLevel.__table__)
movements = cast(Table, InventoryMovement.__table__)


@dataclass(frozen=True)
class Line:
    product_id: uuid.UUID
    location_id: uuid.UUID
    quantity: int


class InsufficientStock(ProblemError):
    pass


# The ledger stores each movement's reason as a code (the API gives it as such); the console shows
# what it means. Every reason written anywhere is here: adjustments (receipt ... count, as the API
# and the product page take them), safety stock, the order's reservations and their ends, the
# expiry of uncollected pickups, and feeds (their kind).
REASON_LABELS: dict[str, str] = {
    "receipt": "Received",
    "return": "Returned",
    "return_written_off": "Returned damaged, written off",
    "damage": "Damaged or lost",
    "adjustment": "Correction",
    "count": "Counted",
    "safety_stock": "Safety stock",
    "reservation": "Reserved for an order",
    "release": "Reservation released",
    "shipped": "Shipped",
    "collected": "Collected by the customer",
    "cancelled": "Order cancelled",
    "rejected": "Rejected by the location",
    "expired": "Pickup not collected",
    "restock": "Back in stock (pickup not collected)",
    "snapshot": "Stock feed: full count",
    "delta": "Stock feed: change",
}


def reason_label(reason: str) -> str:
    """A movement's reason in words ("damage": "Damaged or lost"); a code not known here as itself,
    in words too ("some_code": "Some code")."""
    return REASON_LABELS.get(reason) or reason.replace("_", " ").capitalize()


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
                 reference: str | None = None, keep_reserved: bool = False) -> int:
    """Add ``line.quantity`` (negative to remove) to on_hand; refuses to go below zero, and with
    ``keep_reserved`` to remove units that orders hold (on hand left below reserved). Returns the
    new on_hand."""
    if abs(line.quantity) > MAX_QUANTITY:
        raise ProblemError(422, "Invalid quantity", f"A quantity is at most {MAX_QUANTITY:,} units.")
    await ensure_level(session, tenant_id, line)
    floor = levels.c.reserved if keep_reserved and line.quantity < 0 else 0
    row = (await session.execute(
        update(levels).where(_level_key(tenant_id, line), levels.c.on_hand + line.quantity >= floor,
                             levels.c.on_hand + line.quantity <= MAX_QUANTITY)
        .values(on_hand=levels.c.on_hand + line.quantity, updated_at=utcnow())
        .returning(levels.c.on_hand)
    )).first()
    if row is None:
        current = (await session.execute(select(levels.c.on_hand, levels.c.reserved)
                                         .where(_level_key(tenant_id, line)))).one()
        on_hand, reserved = int(current[0]), int(current[1])
        if on_hand + line.quantity > MAX_QUANTITY:
            raise ProblemError(422, "Invalid quantity",
                               f"That would make {on_hand + line.quantity:,} on hand; the most is {MAX_QUANTITY:,}.")
        if on_hand + line.quantity < 0:
            raise ProblemError(409, "Not enough stock",
                               f"Removing {-line.quantity} would make on hand negative: only {on_hand} on hand.")
        raise ProblemError(409, "Stock reserved for orders",
                           f"Removing {-line.quantity} would leave less on hand than is reserved for orders: "
                           f"{on_hand} on hand, {reserved} reserved, so at most {max(0, on_hand - reserved)} "
                           "can be removed. Cancel or re-route those orders first.")
    if line.quantity:
        await session.execute(insert(movements), [_movement(tenant_id, line, on_hand=line.quantity, reason=reason,
                                                            reference=reference, actor=actor)])
    return int(row[0])


async def count(session: AsyncSession, tenant_id: uuid.UUID, line: Line, *, actor: str,
                reference: str | None = None, keep_reserved: bool = True) -> int:
    """A stock count: on_hand becomes ``line.quantity``, the units counted. The ledger records the
    difference under the reason "count", a count that found the figure right included. With
    ``keep_reserved``, a count that takes on hand down below what is reserved for orders is
    refused. Returns the difference."""
    if not 0 <= line.quantity <= MAX_QUANTITY:
        raise ProblemError(422, "Invalid quantity", f"A count is 0 to {MAX_QUANTITY:,} units.")
    await ensure_level(session, tenant_id, line)
    on_hand, reserved = (await session.execute(
        select(levels.c.on_hand, levels.c.reserved).where(_level_key(tenant_id, line)).with_for_update())).one()
    if keep_reserved and line.quantity < reserved and line.quantity < on_hand:
        raise ProblemError(409, "Stock reserved for orders",
                           f"You counted {line.quantity}, but {reserved} are reserved for orders here. "
                           "Cancel or re-route those orders first, then record the count.")
    difference = line.quantity - int(on_hand)
    await session.execute(update(levels).where(_level_key(tenant_id, line))
                          .values(on_hand=line.quantity, updated_at=utcnow()))
    await session.execute(insert(movements), [_movement(tenant_id, line, on_hand=difference, reason="count",
                                                        reference=reference, actor=actor)])
    return difference


async def set_safety_stock(session: AsyncSession, tenant_id: uuid.UUID, line: Line, *, actor: str) -> None:
    """Set safety stock to ``line.quantity``; the ledger records the change like any other."""
    if not 0 <= line.quantity <= MAX_QUANTITY:
        raise ProblemError(422, "Invalid safety stock", f"Safety stock is 0 to {MAX_QUANTITY:,} units.")
    await ensure_level(session, tenant_id, line)
    before = await session.scalar(select(levels.c.safety_stock).where(_level_key(tenant_id, line)).with_for_update())
    if before == line.quantity:
        return
    await session.execute(update(levels).where(_level_key(tenant_id, line))
                          .values(safety_stock=line.quantity, updated_at=utcnow()))
    movement = _movement(tenant_id, line, reason="safety_stock", reference=None, actor=actor)
    movement["safety_stock_delta"] = line.quantity - int(before or 0)
    await session.execute(insert(movements), [movement])


# One round trip for the whole reservation: the levels are locked in a fixed order (product,
# then location) so that two orders can't deadlock each other, each is taken only if enough is
# available, and when every one was, each reserved line writes its ledger entry.
_RESERVE = Prepared(text("""
    WITH wanted AS (
        SELECT * FROM unnest(CAST(:products AS uuid[]), CAST(:locations AS uuid[]), CAST(:quantities AS int[]))
            AS w(product_id, location_id, qty)
    ), entries AS (
        SELECT * FROM unnest(CAST(:e_products AS uuid[]), CAST(:e_locations AS uuid[]), CAST(:e_quantities AS int[]),
                             CAST(:e_movements AS uuid[]), CAST(:e_references AS text[]))
            AS e(product_id, location_id, qty, movement_id, reference)
    ), locked AS (
        SELECT l.product_id, l.location_id FROM inventory_levels l
        JOIN wanted w ON w.product_id = l.product_id AND w.location_id = l.location_id
        WHERE l.tenant_id = :tenant
        ORDER BY l.product_id, l.location_id
        FOR UPDATE OF l
    ), won AS (
        UPDATE inventory_levels l
        SET reserved = l.reserved + w.qty, updated_at = now()
        FROM wanted w, (SELECT count(*) FROM locked) AS ready
        WHERE l.tenant_id = :tenant AND l.product_id = w.product_id AND l.location_id = w.location_id
          AND l.on_hand - l.reserved - l.safety_stock >= w.qty
        RETURNING 1
    ), logged AS (
        INSERT INTO inventory_movements (tenant_id, id, product_id, location_id, on_hand_delta, reserved_delta,
                                         reason, reference, actor, created_at)
        SELECT :tenant, e.movement_id, e.product_id, e.location_id, 0, e.qty, 'reservation', e.reference, :actor, now()
        FROM entries e
        WHERE (SELECT count(*) FROM won) = :levels
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM won) AS won
"""))


async def reserve(session: AsyncSession, tenant_id: uuid.UUID, lines: list[Line], *, reference: str,
                  actor: str, references: list[str] | None = None) -> None:
    """Reserve every line or none: raises InsufficientStock, and the caller's transaction then
    rolls back the lines already reserved. ``references``, one per line, name each line's order
    in the ledger when one reservation serves several orders."""
    if any(line.quantity <= 0 for line in lines):
        raise ProblemError(422, "Invalid quantity", "Quantities to reserve must be positive.")
    if not lines:
        return
    merged: dict[tuple[uuid.UUID, uuid.UUID], int] = {}
    for line in lines:
        merged[(line.product_id, line.location_id)] = merged.get((line.product_id, line.location_id), 0) + line.quantity
    keys = sorted(merged)
    [row] = await _RESERVE.fetch(
        session, tenant=tenant_id, actor=actor, levels=len(keys),
        products=[p for p, _ in keys], locations=[loc for _, loc in keys], quantities=[merged[k] for k in keys],
        e_products=[line.product_id for line in lines], e_locations=[line.location_id for line in lines],
        e_quantities=[line.quantity for line in lines], e_movements=[uuid7() for _ in lines],
        e_references=references or [reference] * len(lines))
    if row["won"] < len(keys):
        raise InsufficientStock(409, "Not enough stock available",
                                f"Fewer units are available than {reference} needs at one of its locations.")


async def release(session: AsyncSession, tenant_id: uuid.UUID, lines: list[Line], *, reference: str,
                  actor: str, reason: str = "release") -> None:
    """Reserved units go back to being available (a cancellation, a rejection)."""
    await _unreserve(session, tenant_id, lines, leaving=False, reference=reference, actor=actor, reason=reason)


async def consume(session: AsyncSession, tenant_id: uuid.UUID, lines: list[Line], *, reference: str,
                  actor: str, reason: str = "shipped") -> None:
    """Reserved units leave the building (shipped or collected): on hand and reserved both go down."""
    await _unreserve(session, tenant_id, lines, leaving=True, reference=reference, actor=actor, reason=reason)


async def _unreserve(session: AsyncSession, tenant_id: uuid.UUID, lines: list[Line], *, leaving: bool,
                     reference: str, actor: str, reason: str) -> None:
    """Take units off reserved (and off on hand too when they leave), every line or none."""
    if any(line.quantity <= 0 for line in lines):
        raise ProblemError(422, "Invalid quantity", "Quantities must be positive.")
    for line in sorted(lines, key=lambda item: (item.product_id, item.location_id)):
        conditions = [_level_key(tenant_id, line), levels.c.reserved >= line.quantity]
        values: dict[str, Any] = {"reserved": levels.c.reserved - line.quantity, "updated_at": utcnow()}
        if leaving:
            conditions.append(levels.c.on_hand >= line.quantity)
            values["on_hand"] = levels.c.on_hand - line.quantity
        done = (await session.execute(update(levels).where(*conditions).values(**values)
                                      .returning(levels.c.reserved))).first()
        if done is None:
            raise ProblemError(409, "Stock not reserved", "Fewer units are reserved here than this takes.")
    await session.execute(insert(movements), [
        _movement(tenant_id, line, on_hand=-line.quantity if leaving else 0, reserved=-line.quantity, reason=reason,
                  reference=reference, actor=actor)
        for line in lines
    ])


async def available(session: AsyncSession, tenant_id: uuid.UUID, line: Line) -> int:
    row = (await session.execute(
        select(levels.c.on_hand - levels.c.reserved - levels.c.safety_stock).where(_level_key(tenant_id, line))
    )).first()
    return int(row[0]) if row else 0
