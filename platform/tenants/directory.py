"""What the team and API-key settings offer to choose from without owning it: the company's
locations (a store associate works at some of them) and the sales channels (an order-intake key
takes one channel's orders).

Tenants sit below the domains that hold these, so the assembly hands the settings pages an
implementation (``orders.directory``) as their ``directory`` dependency.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod

from sqlalchemy.ext.asyncio import AsyncSession


class Directory(ABC):
    @abstractmethod
    async def locations(self, session: AsyncSession, tenant_id: uuid.UUID) -> list[tuple[str, str]]:
        """The company's locations as (code, label), by code."""

    @abstractmethod
    def channels(self) -> tuple[str, ...]:
        """The sales channels an order may come from."""
