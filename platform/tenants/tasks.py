"""Periodic housekeeping fanned out per tenant."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import dramatiq

from core.db import get_database
from core.scheduler import periodic
from core.tasks import purge_expired
from tenants.service import tenant_ids


async def send_to_every_tenant(actor: dramatiq.Actor[Any, Any]) -> None:
    """One message per company: periodic work runs in each tenant's own scope."""
    async with get_database().transaction() as session:
        tenants = await tenant_ids(session)
    for tenant_id in tenants:
        actor.send(tenant_id=str(tenant_id))


@periodic("maintenance.purge", every=timedelta(hours=1))
async def purge_all_tenants() -> None:
    await send_to_every_tenant(purge_expired)
