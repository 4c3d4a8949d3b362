"""Set-based inserts and deferred rows (core.bulk), on the real schema under row-level security."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from asyncpg import PostgresError
from sqlalchemy import func, select

from factories import create_tenant


def _location(tenant_id: uuid.UUID, code: str, **overrides: Any) -> dict[str, Any]:
    return {"tenant_id": tenant_id, "code": code, "name": f"Store {code}", "kind": "store", "country": "FR",
            "timezone": "Europe/Paris", "latitude": 48.85, "longitude": 2.35, **overrides}


async def test_rows_of_any_count_go_in_with_their_defaults_arrays_and_json() -> None:
    from core.bulk import insert_rows
    from core.db import get_database
    from inventory.models import Location

    tenant = await create_tenant()
    rows = [_location(tenant.tenant_id, f"S-{n}", tags=["north", 'a "quoted", {odd} tag\\'],
                      opening_hours={"mon": [["09:00", "18:00"]]}) for n in range(3)]
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        await insert_rows(session, Location, rows[:1])
        await insert_rows(session, Location, rows[1:])  # another count, the same statement
    # The Python defaults were written into the caller's dicts: what was stored.
    assert all(isinstance(row["id"], uuid.UUID) and row["status"] == "active" and row["priority"] == 100
               for row in rows)
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        stored = {loc.code: loc for loc in await session.scalars(select(Location))}
    assert sorted(stored) == ["S-0", "S-1", "S-2"]
    store = stored["S-1"]
    assert (store.id, store.tags, store.opening_hours, store.status, store.ships_to_customers) == (
        rows[1]["id"], ["north", 'a "quoted", {odd} tag\\'], {"mon": [["09:00", "18:00"]]}, "active", False)
    assert store.created_at == rows[1]["created_at"]


async def test_conflicts_and_returning() -> None:
    from core.bulk import insert_rows
    from core.db import get_database
    from inventory.models import Location

    tenant = await create_tenant()
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        await insert_rows(session, Location, [_location(tenant.tenant_id, "S-1")])
        returned = await insert_rows(session, Location, [_location(tenant.tenant_id, "S-1"),
                                                         _location(tenant.tenant_id, "S-2")],
                                     on_conflict="ON CONFLICT (tenant_id, code) DO NOTHING", returning="code")
    assert [row["code"] for row in returned] == ["S-2"]


async def test_a_value_too_long_is_refused_not_cut() -> None:
    """The database refuses it (bulk statements raise asyncpg's errors), and nothing is stored."""
    from core.bulk import insert_rows
    from core.db import get_database
    from inventory.models import Location

    tenant = await create_tenant()
    with pytest.raises(PostgresError, match="too long"):
        async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
            await insert_rows(session, Location, [_location(tenant.tenant_id, "S-1", country="FRA")])
    with pytest.raises(PostgresError, match="too long"):
        async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
            await insert_rows(session, Location, [_location(tenant.tenant_id, "S-2", tags=["x" * 51])])
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        assert await session.scalar(select(func.count()).select_from(Location)) == 0


async def test_rows_of_another_company_are_refused_by_row_level_security() -> None:
    from core.bulk import insert_rows
    from core.db import get_database
    from inventory.models import Location

    tenant, other = await create_tenant(), await create_tenant()
    with pytest.raises(PostgresError, match="row-level security"):
        async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
            await insert_rows(session, Location, [_location(other.tenant_id, "S-1")])


async def _mail_count(tenant_id: uuid.UUID) -> int:
    from core.db import get_database
    from core.models import MailMessage

    async with get_database().transaction(tenant_id=tenant_id) as session:
        return int(await session.scalar(select(func.count()).select_from(MailMessage)) or 0)


def _mail(tenant_id: uuid.UUID, n: int) -> dict[str, Any]:
    return {"tenant_id": tenant_id, "to_address": f"m{n}@example.test", "subject": f"Mail {n}", "body_text": "Hi",
            "kind": "test"}


async def test_deferred_rows_are_seen_by_the_next_statement_and_kept_at_commit() -> None:
    from core.bulk import defer
    from core.db import get_database
    from core.models import MailMessage

    tenant = await create_tenant()
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        rows = [_mail(tenant.tenant_id, n) for n in range(3)]
        for row in rows:
            defer(session, MailMessage, row)
        assert all(isinstance(row["id"], uuid.UUID) and row["status"] == "queued" for row in rows)
        seen = sorted((await session.scalars(select(MailMessage.subject))).all())
        assert seen == ["Mail 0", "Mail 1", "Mail 2"]
        defer(session, MailMessage, _mail(tenant.tenant_id, 3))  # left for the commit
    assert await _mail_count(tenant.tenant_id) == 4


async def test_deferred_rows_go_with_a_rollback_or_a_close() -> None:
    from core.bulk import defer
    from core.db import get_database
    from core.models import MailMessage

    tenant = await create_tenant()
    with pytest.raises(RuntimeError, match="changed my mind"):
        async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
            defer(session, MailMessage, _mail(tenant.tenant_id, 1))
            raise RuntimeError("changed my mind")
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        defer(session, MailMessage, _mail(tenant.tenant_id, 2))
        await session.execute(select(1))  # written...
        await session.rollback()  # ...and rolled back
    # Never written, then the session closed: used again, it doesn't carry them into its next transaction.
    session = get_database().session(tenant_id=tenant.tenant_id)
    await session.begin()
    defer(session, MailMessage, _mail(tenant.tenant_id, 3))
    await session.close()
    await session.begin()
    await session.commit()
    await session.close()
    assert await _mail_count(tenant.tenant_id) == 0


async def test_a_statement_on_the_driver_connection_sees_what_is_pending() -> None:
    """As with any statement through the session: deferred rows and new ORM objects are
    written first."""
    from core.bulk import defer
    from core.db import driver, get_database
    from core.models import MailMessage

    tenant = await create_tenant()
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        defer(session, MailMessage, _mail(tenant.tenant_id, 1))
        session.add(MailMessage(**_mail(tenant.tenant_id, 2)))
        connection = await driver(session)
        assert await connection.fetchval("SELECT count(*) FROM mail_messages") == 2
        await session.rollback()
    assert await _mail_count(tenant.tenant_id) == 0


async def test_parents_are_written_before_their_children() -> None:
    """Deferred rows naming a row deferred in the same batch (a fulfilment line, its fulfilment)
    go in whatever order they were deferred."""
    from core.bulk import defer
    from core.db import get_database
    from orders.models import Fulfilment, FulfilmentLine

    tenant = await create_tenant()
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        order_id = await _order(session, tenant.tenant_id)
        fulfilment_id = uuid.uuid4()
        defer(session, FulfilmentLine, {"tenant_id": tenant.tenant_id, "fulfilment_id": fulfilment_id,
                                        "order_line_id": uuid.uuid4(), "sku": "X", "product_id": uuid.uuid4(),
                                        "quantity": 1})
        defer(session, Fulfilment, {"tenant_id": tenant.tenant_id, "id": fulfilment_id, "order_id": order_id,
                                    "number": "F-1", "location_id": uuid.uuid4(), "location_code": "WH",
                                    "kind": "ship"})
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        assert await session.scalar(select(FulfilmentLine.fulfilment_id)) == fulfilment_id


async def _order(session: Any, tenant_id: uuid.UUID) -> uuid.UUID:
    from core.bulk import insert_rows
    from orders.models import Order

    row = {"tenant_id": tenant_id, "number": "O-1", "channel": "web", "currency": "EUR", "total_minor": 0,
           "delivery_mode": "ship"}
    await insert_rows(session, Order, [row])
    return uuid.UUID(str(row["id"]))


async def test_deferred_rows_may_not_cross_a_savepoint() -> None:
    """Written inside the savepoint, they would be lost with its rollback: refused, unless written first."""
    from core.bulk import defer, write_deferred
    from core.db import get_database
    from core.models import MailMessage

    tenant = await create_tenant()
    with pytest.raises(RuntimeError, match="deferred rows are pending"):
        async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
            defer(session, MailMessage, _mail(tenant.tenant_id, 1))
            await session.begin_nested()
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        defer(session, MailMessage, _mail(tenant.tenant_id, 2))
        await write_deferred(session)
        savepoint = await session.begin_nested()
        defer(session, MailMessage, _mail(tenant.tenant_id, 3))
        await savepoint.rollback()
    assert await _mail_count(tenant.tenant_id) == 1
