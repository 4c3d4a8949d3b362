"""The usage billing meters, counted again from the orders' own tables: a period's orders routed
(those whose first fulfilment falls in it) and its active locations (a location sent a
fulfilment on a day of the company's calendar, that day counted in the period of its first
fulfilment, as its usage row is). At a period's close this must agree with what the usage rows
say (``core.metering``)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import Date, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.metering import Usage
from orders.models import Fulfilment
from tenants.service import timezone_of

LONGEST_DAY = timedelta(hours=27)  # a local day, clock change included, with room to spare


async def recount(session: AsyncSession, tenant_id: uuid.UUID, start: datetime, end: datetime) -> Usage:
    firsts = (select(func.min(Fulfilment.created_at).label("at")).where(Fulfilment.tenant_id == tenant_id)
              .group_by(Fulfilment.order_id).subquery())
    orders = await session.scalar(select(func.count()).select_from(firsts).where(firsts.c.at >= start,
                                                                                  firsts.c.at < end))
    zone = await timezone_of(session, tenant_id)
    day = cast(func.timezone(zone, Fulfilment.created_at), Date)
    # A day's first fulfilment before ``start`` counts it in the period before: the day's earlier
    # fulfilments are read too (they lie within a day of ``start``).
    days = (select(Fulfilment.location_code, func.min(Fulfilment.created_at).label("at"))
            .where(Fulfilment.tenant_id == tenant_id, Fulfilment.created_at >= start - LONGEST_DAY,
                   Fulfilment.created_at < end)
            .group_by(Fulfilment.location_code, day).subquery())
    row = (await session.execute(select(func.count(func.distinct(days.c.location_code)), func.count())
                                 .select_from(days).where(days.c.at >= start))).one()
    return Usage(orders=int(orders or 0), locations=int(row[0] or 0), location_days=int(row[1] or 0))
