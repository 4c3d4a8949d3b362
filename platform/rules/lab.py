"""What the routing rules console needs from the domains that hold the data.

Rules sit below inventory and orders, so they can't read locations, stock or past orders. The
builder's choices (locations, categories), the simulation of a sample order and the replay of
recent orders are done where that data lives (``orders.simulation``), and the assembly hands
that implementation to the rules controllers as their ``routing_lab`` dependency.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from typing import Any, NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal
from rules.schemas import SampleOrder


class LocationChoice(NamedTuple):
    code: str
    name: str
    click_and_collect: bool


class BuilderChoices(NamedTuple):
    locations: list[LocationChoice]
    categories: list[str]


class RoutingLab(ABC):
    @abstractmethod
    async def choices(self, session: AsyncSession, tenant_id: uuid.UUID) -> BuilderChoices:
        """The company's active locations and product categories, for the builder's pickers."""

    @abstractmethod
    async def simulate(self, session: AsyncSession, principal: Principal, sample: SampleOrder, *,
                       version: int | None = None) -> dict[str, Any]:
        """The sample order (its ``at`` given with an offset) under the draft, or ``version``,
        and under the version in force, with both traces."""

    @abstractmethod
    async def replay(self, session: AsyncSession, principal: Principal, *, days: int, limit: int,
                     version: int | None = None, traces: int = 20) -> dict[str, Any]:
        """The company's orders of the last ``days`` (at most ``limit``) under the draft, or
        ``version``, and under the version in force now, with totals and a per-order diff."""
