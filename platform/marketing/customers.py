"""Customer records as other domains use them."""

from __future__ import annotations

import uuid

from sqlalchemy import case, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import utcnow
from core.ids import uuid7
from marketing.models import Customer


async def find_or_create(session: AsyncSession, tenant_id: uuid.UUID, *, email: str, name: str = "",
                         phone: str = "") -> Customer:
    """The customer with this email (any case), created on first sight; a name or phone the
    record lacks is filled in, and never overwritten by a blank."""
    normalized = email.strip().lower()
    customer = await session.scalar(select(Customer).where(Customer.tenant_id == tenant_id,
                                                           Customer.email == normalized))
    if customer is not None and (customer.name or not name) and (customer.phone or not phone):
        return customer  # a returning customer whose record is complete: one read, no write
    now = utcnow()
    fresh = insert(Customer).values(tenant_id=tenant_id, id=uuid7(), email=normalized, name=name, phone=phone,
                                    tags=[], created_at=now, updated_at=now)
    # One statement whoever wins a race to create the record: it always returns the row.
    upsert = fresh.on_conflict_do_update(
        index_elements=[Customer.tenant_id, Customer.email],
        set_={"name": case((Customer.name == "", fresh.excluded.name), else_=Customer.name),
              "phone": case((Customer.phone == "", fresh.excluded.phone), else_=Customer.phone),
              "updated_at": now},
    ).returning(Customer)
    created: Customer | None = await session.scalar(upsert, execution_options={"populate_existing": True})
    assert created is not None
    return created
