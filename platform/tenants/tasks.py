"""Periodic housekeeping fanned out per tenant."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from core.db import get_database
from core.scheduler import periodic
from core.tasks import purge_expired
from tenants.models import Tenant


@periodic("maintenance.purge", every=timedelta(hours=1))
async def purge_all_tenants() -> None:
    async with get_database().transaction() as session:
        tenant_ids = list(await session.scalars(select(Tenant.id)))
    for tenant_id in tenant_ids:
        purge_expired.send(tenant_id=str(tenant_id))
