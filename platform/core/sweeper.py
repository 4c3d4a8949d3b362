"""The scheduler's sweeps across companies, as the sweeper role.

Periodic work must cost nothing for a company with nothing to do. So a sweep first asks which
companies have work due, in one statement over every company, as a role that may read a few
columns of the due rows and nothing else (``core.roles``, and the migrations' policies); then it
acts in each of those companies' own scope. What the kernel keeps for a while (relayed outbox
rows, idempotency records, re-drives) it purges the same way, in batches, across companies.
"""

from __future__ import annotations

import uuid
from typing import Any, cast

from sqlalchemy import FromClause, Table, delete, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Database
from core.settings import get_settings

PURGE_BATCH = 5000


async def become_sweeper(session: AsyncSession) -> None:
    """The rest of the session's transaction runs as the sweeper role."""
    await session.execute(text(f'SET LOCAL ROLE "{get_settings().sweeper_db_role}"'))


async def companies_where(db: Database, table: FromClause, *conditions: Any) -> list[uuid.UUID]:
    """The companies with rows of ``table`` meeting ``conditions`` (which the sweeper's policy on
    that table must let it see)."""
    async with db.transaction() as session:
        await become_sweeper(session)
        return list(await session.scalars(select(table.c.tenant_id).where(*conditions).distinct()))


async def purge(db: Database, table: FromClause, *conditions: Any) -> int:
    """Delete the rows meeting ``conditions`` in every company, a batch per transaction; returns
    how many went."""
    total = 0
    while True:
        async with db.transaction() as session:
            await become_sweeper(session)
            batch = select(table.c.tenant_id, table.c.id).where(*conditions).limit(PURGE_BATCH)
            result = await session.execute(delete(cast(Table, table)).where(
                tuple_(table.c.tenant_id, table.c.id).in_(batch)))
        deleted = int(result.rowcount or 0)  # type: ignore[attr-defined]
        total += deleted
        if deleted < PURGE_BATCH:
            return total
