"""The company's marketing settings: how order capture treats promotions, and whether an order
with an unusable coupon code is refused. A company that never saved them has the defaults."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from core.auth import Principal
from core.db import Prepared
from core.problems import invalid
from marketing.models import CAPTURE_MODES, MarketingSettings
from tenants.service import Actor, audit

MODE_LABELS = {
    "apply": "Apply promotions to captured orders",
    "check": "Check the channel's discounts against the promotions",
    "off": "Leave captured orders as the channel sent them",
}


@dataclass(frozen=True)
class Settings:
    capture_mode: str = "apply"
    refuse_invalid_coupons: bool = False
    updated_at: datetime | None = None
    updated_by: str = ""


DEFAULTS = Settings()

# Read with every capture batch that has promotions to price: a prepared statement.
_SETTINGS = Prepared(select(MarketingSettings.capture_mode, MarketingSettings.refuse_invalid_coupons,
                            MarketingSettings.updated_at, MarketingSettings.updated_by)
                     .where(MarketingSettings.tenant_id == bindparam("tenant")))


async def get_settings(session: AsyncSession, tenant_id: uuid.UUID) -> Settings:
    rows = await _SETTINGS.fetch(session, tenant=tenant_id)
    if not rows:
        return DEFAULTS
    return Settings(*rows[0])


async def save_settings(session: AsyncSession, principal: Principal, *, capture_mode: str,
                        refuse_invalid_coupons: bool, ip: str | None = None) -> Settings:
    """Store the settings (refused with the reason when the mode is unknown); a change is audited."""
    if capture_mode not in CAPTURE_MODES:
        message = f"Unknown mode {capture_mode!r}: use one of {', '.join(CAPTURE_MODES)}."
        raise invalid({"capture_mode": message}, detail=message)
    before = await get_settings(session, principal.tenant_id)
    if (before.capture_mode, before.refuse_invalid_coupons) == (capture_mode, refuse_invalid_coupons) \
            and before.updated_at is not None:
        return before
    now = clock.now()
    values = {"capture_mode": capture_mode, "refuse_invalid_coupons": refuse_invalid_coupons,
              "updated_at": now, "updated_by": principal.label}
    await session.execute(insert(MarketingSettings).values(tenant_id=principal.tenant_id, **values)
                          .on_conflict_do_update(index_elements=["tenant_id"], set_=values))
    await audit(session, principal.tenant_id, Actor.of(principal, ip), "marketing.settings_changed",
                target=f"capture {before.capture_mode} → {capture_mode}",
                refuse_invalid_coupons=refuse_invalid_coupons)
    return Settings(capture_mode, refuse_invalid_coupons, now, principal.label)
