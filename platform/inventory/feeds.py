"""Stock feeds: full snapshots and +/- deltas, from files or the API.

A feed is accepted at once (structure checked, nothing applied) and applied by the
``inventory.apply_feed`` actor in one transaction. Every row is checked first; one bad row
rejects the whole feed with every error listed by row number, and nothing changes. A
snapshot sets on_hand for each SKU it lists at each location it names, and sets to zero
the SKUs it leaves out at those locations. Sending the same feed id twice applies it once.
"""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ARRAY, String, Table, Uuid, any_, bindparam, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from core.auth import Principal
from core.db import utcnow
from core.ids import uuid7
from core.outbox import enqueue
from core.problems import ProblemError, not_found
from inventory.catalog import RowError, csv_rows, decode_upload, json_items
from inventory.models import InventoryFeed, InventoryLevel, Location, Product, StockException
from inventory.schemas import MAX_QUANTITY

MAX_FEED_BYTES = 50 * 1024 * 1024
FEED_COLUMNS = ["sku", "location", "quantity"]
MAX_LISTED_ERRORS = 1000
KINDS = ("snapshot", "delta")

StockArrived = Callable[[AsyncSession, uuid.UUID], None]
# Called in the transaction that applies a feed which changed stock, with the company's id:
# domains above inventory subscribe (orders routes its backorders again) unknown to it.
STOCK_ARRIVED: list[StockArrived] = []


def on_stock_arrived(hook: StockArrived) -> StockArrived:
    STOCK_ARRIVED.append(hook)
    return hook


@dataclass(frozen=True)
class FeedRow:
    row: int
    sku: str
    location: str
    quantity: int


def parse_rows(payload: bytes, content_format: str, kind: str) -> tuple[list[FeedRow], list[RowError]]:
    """Rows and row errors. Structural problems (size, encoding, header, JSON shape) raise,
    since they mean the whole file is unusable."""
    text = decode_upload(payload, limit=MAX_FEED_BYTES)
    raw_rows: list[tuple[int, Any, Any, Any]] = []
    if content_format == "json":
        items = json_items(text, "rows", what="feed",
                           example='{"rows": [{"sku": ..., "location": ..., "quantity": ...}]}')
        for number, item in enumerate(items, start=1):
            if not isinstance(item, dict) or set(item) != set(FEED_COLUMNS):
                raise ProblemError(422, "Invalid feed",
                                   f"Row {number}: each row has exactly the fields sku, location and quantity.")
            raw_rows.append((number, item["sku"], item["location"], item["quantity"]))
    elif content_format == "csv":
        reader = csv.reader(io.StringIO(text))
        lines = csv_rows(reader)
        header = [h.strip().lower() for h in next(lines, [])]
        if header != FEED_COLUMNS:
            raise ProblemError(422, "Wrong header",
                               f"The first line must be exactly: {','.join(FEED_COLUMNS)} (found: {','.join(header)}).")
        for number, cells in enumerate(lines, start=2):
            if not cells or all(not c.strip() for c in cells):
                continue
            if len(cells) != 3:
                raise ProblemError(422, "Wrong number of columns",
                                   f"Row {number} has {len(cells)} columns; every row has sku, location, quantity.")
            raw_rows.append((number, cells[0].strip(), cells[1].strip(), cells[2].strip()))
    else:
        raise ProblemError(422, "Unknown format", "Feeds are CSV or JSON.")
    if kind not in KINDS:
        raise ProblemError(422, "Unknown kind", "A feed is a snapshot or a delta.")

    rows: list[FeedRow] = []
    errors: list[RowError] = []
    seen: dict[tuple[str, str], int] = {}
    for number, sku, location, quantity in raw_rows:
        if not isinstance(sku, str) or not sku:
            errors.append(RowError(number, "sku", "SKU is empty."))
            continue
        if not isinstance(location, str) or not location:
            errors.append(RowError(number, "location", "Location is empty."))
            continue
        try:
            if isinstance(quantity, bool) or (isinstance(quantity, float) and not quantity.is_integer()):
                raise ValueError
            value = int(quantity)
        except (TypeError, ValueError):
            errors.append(RowError(number, "quantity", f"{quantity!r} is not a whole number."))
            continue
        if abs(value) > MAX_QUANTITY:
            errors.append(RowError(number, "quantity", f"{value} is more than {MAX_QUANTITY:,} units."))
            continue
        if kind == "snapshot" and value < 0:
            errors.append(RowError(number, "quantity", f"A snapshot quantity can't be negative ({value})."))
            continue
        key = (sku, location)
        if key in seen:
            errors.append(RowError(number, "sku", f"Duplicate row: {sku} at {location} is also on row {seen[key]}."))
            continue
        seen[key] = number
        rows.append(FeedRow(number, sku, location, value))
    return rows, errors


def count_rows(rows: list[FeedRow], errors: list[RowError]) -> int:
    """Data rows in the file, readable or not."""
    return len({r.row for r in rows} | {e.row for e in errors})


def default_feed_id(filename: str, payload: bytes) -> str:
    return f"{filename[:150]}:{hashlib.sha256(payload).hexdigest()[:16]}"


async def accept_feed(session: AsyncSession, principal: Principal, *, external_id: str, kind: str,
                      content_format: str, payload: bytes, source: str,
                      filename: str | None = None) -> tuple[InventoryFeed, bool]:
    """Store the feed and announce its application. Returns (feed, created): a feed id sent
    again returns the first feed and changes nothing."""
    external_id = (external_id or "").strip()
    if not external_id or len(external_id) > 200:
        raise ProblemError(422, "Invalid feed id", "feed_id is 1 to 200 characters.")
    parse_rows(payload, content_format, kind)  # refuse unusable files now; rows are checked when applied
    inserted = await session.scalar(
        pg_insert(InventoryFeed).values(
            tenant_id=principal.tenant_id, id=uuid7(), external_id=external_id, kind=kind, source=source,
            filename=filename, content_format=content_format, payload=payload, status="accepted",
            rows_total=0, rows_changed=0, errors=[], exceptions=0, created_by=principal.label, created_at=utcnow(),
        ).on_conflict_do_nothing(index_elements=["tenant_id", "external_id"]).returning(InventoryFeed.id)
    )
    feed = await session.scalar(select(InventoryFeed).options(undefer(InventoryFeed.payload))
                                .where(InventoryFeed.tenant_id == principal.tenant_id,
                                       InventoryFeed.external_id == external_id))
    assert feed is not None
    if inserted is None:
        if feed.payload != payload or feed.kind != kind:
            raise ProblemError(409, "Feed id already used",
                               f"Feed {external_id!r} was already received with other content. "
                               "Give each new feed a new id.")
        return feed, False
    from inventory.tasks import apply_feed

    enqueue(session, apply_feed, tenant_id=principal.tenant_id, feed_id=str(feed.id))
    return feed, True


async def get_feed(session: AsyncSession, principal: Principal, feed_id: uuid.UUID) -> InventoryFeed:
    feed = await session.scalar(select(InventoryFeed).where(InventoryFeed.tenant_id == principal.tenant_id,
                                                            InventoryFeed.id == feed_id))
    if feed is None:
        raise not_found("Feed")
    return feed


async def list_feeds(session: AsyncSession, principal: Principal, limit: int = 100) -> list[InventoryFeed]:
    return list(await session.scalars(
        select(InventoryFeed).where(InventoryFeed.tenant_id == principal.tenant_id)
        .order_by(InventoryFeed.created_at.desc()).limit(limit)
    ))


async def mark_applying(session: AsyncSession, tenant_id: uuid.UUID, feed_id: uuid.UUID) -> bool:
    """Show progress in the console; False when the feed is already done."""
    done = await session.scalar(
        update(InventoryFeed).where(InventoryFeed.tenant_id == tenant_id, InventoryFeed.id == feed_id,
                                    InventoryFeed.status.in_(("accepted", "applying")))
        .values(status="applying", started_at=utcnow()).returning(InventoryFeed.id)
    )
    return done is not None


async def mark_failed(session: AsyncSession, tenant_id: uuid.UUID, feed_id: uuid.UUID, reason: str) -> None:
    await session.execute(
        update(InventoryFeed).where(InventoryFeed.tenant_id == tenant_id, InventoryFeed.id == feed_id,
                                    InventoryFeed.status.in_(("accepted", "applying")))
        .values(status="failed", finished_at=utcnow(), rows_changed=0,
                errors=[{"row": None, "column": None, "message": f"The feed could not be applied: {reason}"}])
    )


async def apply(session: AsyncSession, tenant_id: uuid.UUID, feed_id: uuid.UUID) -> InventoryFeed | None:
    """Check every row, then apply all of them or none, in the caller's transaction."""
    feed = await session.scalar(select(InventoryFeed).options(undefer(InventoryFeed.payload))
                                .where(InventoryFeed.tenant_id == tenant_id, InventoryFeed.id == feed_id)
                                .with_for_update())
    if feed is None or feed.status not in ("accepted", "applying"):
        return feed
    try:
        rows, errors = parse_rows(feed.payload, feed.content_format, feed.kind)
    except ProblemError as problem:
        return _finish(feed, [RowError(0, None, problem.detail)], rows_total=0)
    rows_total = count_rows(rows, errors)
    feed.rows_total = rows_total

    skus = {r.sku for r in rows}
    codes = {r.location for r in rows}
    product_ids = dict((await session.execute(
        select(Product.sku, Product.id).where(Product.tenant_id == tenant_id,
                                              Product.sku == any_(bindparam("skus", list(skus), ARRAY(String))))
    )).all()) if skus else {}
    location_ids = dict((await session.execute(
        select(Location.code, Location.id).where(Location.tenant_id == tenant_id,
                                                 Location.code == any_(bindparam("codes", list(codes),
                                                                                 ARRAY(String))))
    )).all()) if codes else {}
    for r in rows:
        if r.sku not in product_ids:
            errors.append(RowError(r.row, "sku", f"Unknown SKU {r.sku!r}."))
        if r.location not in location_ids:
            errors.append(RowError(r.row, "location", f"Unknown location {r.location!r}."))
    if errors:
        return _finish(feed, errors, rows_total=rows_total)

    targets: dict[tuple[uuid.UUID, uuid.UUID], tuple[int, int]] = {
        (product_ids[r.sku], location_ids[r.location]): (r.quantity, r.row) for r in rows
    }
    touched_locations = sorted({location_ids[c] for c in codes})
    checkpoint = await session.begin_nested()
    # Levels the feed creates exist (at zero) before the lock below, so a first receipt
    # committed meanwhile is read and kept, never overwritten.
    await _create_missing_levels(session, tenant_id, list(targets))
    level_table = cast(Table, InventoryLevel.__table__)
    current = {
        (p, loc): (on_hand, reserved)
        for p, loc, on_hand, reserved in (await session.execute(
            select(level_table.c.product_id, level_table.c.location_id, level_table.c.on_hand,
                   level_table.c.reserved)
            .where(level_table.c.tenant_id == tenant_id,
                   level_table.c.location_id == any_(bindparam("locations", touched_locations, ARRAY(Uuid))))
            .order_by(level_table.c.product_id, level_table.c.location_id)
            .with_for_update()
        ))
    }
    new_on_hand: dict[tuple[uuid.UUID, uuid.UUID], int] = {}
    if feed.kind == "snapshot":
        for key, (on_hand, _) in current.items():
            if key not in targets and on_hand != 0:
                new_on_hand[key] = 0  # left out of the snapshot at a location it names
        for key, (quantity, _) in targets.items():
            new_on_hand[key] = quantity
    else:
        for key, (quantity, row) in targets.items():
            before = current.get(key, (0, 0))[0]
            if before + quantity < 0:
                errors.append(RowError(row, "quantity", f"Removing {-quantity} would make on hand negative: "
                                                        f"only {before} on hand."))
            elif before + quantity > MAX_QUANTITY:
                errors.append(RowError(row, "quantity", f"Adding {quantity} to {before} is more than "
                                                        f"{MAX_QUANTITY:,} units."))
            new_on_hand[key] = before + quantity
    if errors:
        await checkpoint.rollback()
        return _finish(feed, errors, rows_total=rows_total)
    await checkpoint.commit()

    now = utcnow()
    changed = [(key, value) for key, value in new_on_hand.items() if value != current.get(key, (0, 0))[0]]
    await _write_changes(session, tenant_id, [
        (uuid7(), uuid7(), p, loc, value, value - current.get((p, loc), (0, 0))[0]) for (p, loc), value in changed
    ], reason=feed.kind, reference=f"feed {feed.external_id}"[:200], actor=feed.created_by)
    conflicts = [(key, value, current[key][1]) for key, value in changed
                 if key in current and value < current[key][1]]
    if conflicts:
        await session.execute(insert(cast(Table, StockException.__table__)), [
            {"tenant_id": tenant_id, "id": uuid7(), "product_id": p, "location_id": loc,
             "kind": "on_hand_below_reserved", "feed_id": feed.id, "created_at": now,
             "message": f"Feed {feed.external_id} set on hand to {value} while {reserved} are reserved."[:500]}
            for (p, loc), value, reserved in conflicts
        ])
    feed.rows_changed = len(changed)
    feed.exceptions = len(conflicts)
    return _finish(feed, [], rows_total=rows_total)


async def _create_missing_levels(session: AsyncSession, tenant_id: uuid.UUID,
                                 keys: list[tuple[uuid.UUID, uuid.UUID]]) -> None:
    if not keys:
        return
    await session.execute(text(
        "CREATE TEMPORARY TABLE feed_keys (level_id uuid, product_id uuid, location_id uuid) ON COMMIT DROP"
    ))
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
        "feed_keys", records=[(uuid7(), p, loc) for p, loc in keys],
        columns=["level_id", "product_id", "location_id"],
    )
    await session.execute(text("""
        INSERT INTO inventory_levels (tenant_id, id, product_id, location_id, on_hand, reserved, safety_stock,
                                      updated_at)
        SELECT :tenant, level_id, product_id, location_id, 0, 0, 0, now() FROM feed_keys
        ON CONFLICT (tenant_id, product_id, location_id) DO NOTHING
    """), {"tenant": tenant_id})
    await session.execute(text("DROP TABLE feed_keys"))


async def _write_changes(session: AsyncSession, tenant_id: uuid.UUID,
                         records: list[tuple[uuid.UUID, uuid.UUID, uuid.UUID, uuid.UUID, int, int]], *,
                         reason: str, reference: str, actor: str) -> None:
    """Set on_hand and write the ledger for many levels at once.

    The changes are COPYed into a temporary table (COPY FROM can't target a table under
    row-level security), then applied by two set-based statements that RLS checks as usual.
    """
    if not records:
        return
    await session.execute(text(
        "CREATE TEMPORARY TABLE feed_changes (level_id uuid, movement_id uuid, product_id uuid, "
        "location_id uuid, on_hand integer, delta integer) ON COMMIT DROP"
    ))
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
        "feed_changes", records=records,
        columns=["level_id", "movement_id", "product_id", "location_id", "on_hand", "delta"],
    )
    params = {"tenant": tenant_id, "reason": reason, "reference": reference, "actor": actor}
    await session.execute(text("""
        INSERT INTO inventory_levels (tenant_id, id, product_id, location_id, on_hand, reserved, safety_stock,
                                      updated_at)
        SELECT :tenant, level_id, product_id, location_id, on_hand, 0, 0, now() FROM feed_changes
        ON CONFLICT (tenant_id, product_id, location_id)
        DO UPDATE SET on_hand = EXCLUDED.on_hand, updated_at = EXCLUDED.updated_at
    """), params)
    await session.execute(text("""
        INSERT INTO inventory_movements (tenant_id, id, product_id, location_id, on_hand_delta, reserved_delta,
                                         reason, reference, actor, created_at)
        SELECT :tenant, movement_id, product_id, location_id, delta, 0, :reason, :reference, :actor, now()
        FROM feed_changes
    """), params)
    await session.execute(text("DROP TABLE feed_changes"))


def _finish(feed: InventoryFeed, errors: list[RowError], *, rows_total: int) -> InventoryFeed:
    feed.rows_total = rows_total
    feed.status = "rejected" if errors else "applied"
    errors.sort(key=lambda e: e.row)
    listed = [e.as_dict() for e in errors[:MAX_LISTED_ERRORS]]
    if len(errors) > MAX_LISTED_ERRORS:
        listed.append({"row": None, "column": None,
                       "message": f"… and {len(errors) - MAX_LISTED_ERRORS} more errors."})
    feed.errors = listed
    if errors:
        feed.rows_changed = 0
    feed.finished_at = utcnow()
    return feed


async def last_stock_arrival(session: AsyncSession, tenant_id: uuid.UUID) -> datetime | None:
    """When the company's latest feed that changed stock was applied."""
    found: datetime | None = await session.scalar(
        select(InventoryFeed.finished_at).where(InventoryFeed.tenant_id == tenant_id, InventoryFeed.status == "applied",
                                                InventoryFeed.rows_changed > 0)
        .order_by(InventoryFeed.created_at.desc()).limit(1))
    return found
