"""Customer records as other domains use them."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import utcnow
from core.ids import uuid7
from marketing.models import Customer


async def find_or_create(session: AsyncSession, tenant_id: uuid.UUID, *, email: str, name: str = "",
                         phone: str = "") -> Customer:
    """The customer with this email (any case), created on first sight; a name or phone the
    record lacks is filled in, and never overwritten by a blank."""
    now = utcnow()
    normalized = email.strip().lower()
    await session.execute(
        insert(Customer).values(tenant_id=tenant_id, id=uuid7(), email=normalized, name=name, phone=phone,
                                tags=[], created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=[Customer.tenant_id, Customer.email])
    )
    customer = await session.scalar(select(Customer).where(Customer.tenant_id == tenant_id,
                                                           Customer.email == normalized))
    assert customer is not None
    if name and not customer.name:
        customer.name = name
    if phone and not customer.phone:
        customer.phone = phone
    return customer
