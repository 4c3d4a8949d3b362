"""The team settings' ``Directory`` (see ``tenants.directory``): locations are inventory's, and
channels the ones an order may come from."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from inventory import locations
from rules.fields import CHANNELS
from tenants.directory import Directory


class OrdersDirectory(Directory):
    async def locations(self, session: AsyncSession, tenant_id: uuid.UUID) -> list[tuple[str, str]]:
        return [(loc.code, f"{loc.code} — {loc.name}") for loc in await locations.active(session, tenant_id)]

    def channels(self) -> tuple[str, ...]:
        return CHANNELS


DIRECTORY = OrdersDirectory()
