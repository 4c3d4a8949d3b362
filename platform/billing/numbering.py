"""Invoice and credit note numbers: one continuous series per issuing entity, series and year.

The number is taken in the transaction that issues the document, from the counter row, locked
until that transaction ends: a rollback gives the number back (nothing was issued), and no two
transactions can hold the same number. A PostgreSQL sequence would leave gaps on rollback.
The issue time is read once the lock is held, so numbers follow the order of issue times.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from billing import config
from billing.models import InvoiceCounter
from core import clock

SERIES = ("INV", "CN")


def _year(at: datetime, timezone: str) -> int:
    return at.astimezone(ZoneInfo(timezone)).year


async def take_number(session: AsyncSession, series: str) -> tuple[str, int, int, datetime]:
    """(number, year, sequence, issued_at), e.g. ("INV-2026-000123", 2026, 123, ...)."""
    if series not in SERIES:
        raise ValueError(f"unknown series {series!r}")
    issuer = config.issuer()
    year = _year(clock.now(), issuer.timezone)
    while True:
        await session.execute(insert(InvoiceCounter).values(issuer=issuer.code, series=series, year=year,
                                                            last_number=0).on_conflict_do_nothing())
        # The UPDATE takes the row's lock, held until this transaction commits or rolls back.
        sequence = int((await session.execute(
            update(InvoiceCounter)
            .where(InvoiceCounter.issuer == issuer.code, InvoiceCounter.series == series, InvoiceCounter.year == year)
            .values(last_number=InvoiceCounter.last_number + 1)
            .returning(InvoiceCounter.last_number))).scalar_one())
        issued_at = clock.now()
        if _year(issued_at, issuer.timezone) == year:
            return f"{series}-{year}-{sequence:06d}", year, sequence, issued_at
        # The year turned while this transaction waited for the lock: the number taken is given
        # back (undone) and the new year's series is used.
        await session.execute(
            update(InvoiceCounter)
            .where(InvoiceCounter.issuer == issuer.code, InvoiceCounter.series == series, InvoiceCounter.year == year)
            .values(last_number=InvoiceCounter.last_number - 1))
        year = _year(issued_at, issuer.timezone)
