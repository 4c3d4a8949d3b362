"""Customer service's background work: closing returns once their refund has been paid, and
flagging the returns of exchanges that did not come back in time."""

from __future__ import annotations

import uuid
from datetime import timedelta

from core import clock
from core.broker import actor
from core.db import get_database
from core.scheduler import periodic
from core.sweeper import companies_where
from support import returns
from support.models import Return


@actor("support.close_paid_returns", queue="orders", time_limit_ms=300_000)
async def close_paid_returns(tenant_id: str) -> None:
    """Each refunded return of the company in a transaction of its own: closed if its refund was
    paid, left for the next run otherwise."""
    tenant = uuid.UUID(tenant_id)
    async with get_database().transaction(tenant_id=tenant) as session:
        ids = await returns.refunded(session, tenant)
    for return_id in ids:
        async with get_database().transaction(tenant_id=tenant) as session:
            await returns.close_paid(session, returns.system(tenant), return_id)


@actor("support.flag_overdue_returns", queue="orders", time_limit_ms=300_000)
async def flag_overdue_returns(tenant_id: str) -> None:
    tenant = uuid.UUID(tenant_id)
    async with get_database().transaction(tenant_id=tenant) as session:
        ids = await returns.overdue(session, tenant)
    for return_id in ids:
        async with get_database().transaction(tenant_id=tenant) as session:
            await returns.flag_overdue(session, tenant, return_id)


@periodic("support.returns_due", every=timedelta(minutes=5))
async def returns_due_everywhere() -> None:
    """The companies with a refunded return, or an exchange's return overdue, and only those
    (see ``core.sweeper``)."""
    db = get_database()
    for tenant_id in await companies_where(db, Return.__table__, Return.status == "refunded"):
        close_paid_returns.send(tenant_id=str(tenant_id))
    for tenant_id in await companies_where(db, Return.__table__, Return.status == "requested",
                                           Return.expected_by < clock.now()):
        flag_overdue_returns.send(tenant_id=str(tenant_id))
