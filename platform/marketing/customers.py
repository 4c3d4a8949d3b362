"""Customer records as other domains use them."""

from __future__ import annotations

import uuid

from sqlalchemy import case, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import utcnow
from core.ids import uuid7
from marketing.models import Customer


async def find_or_create_many(session: AsyncSession, tenant_id: uuid.UUID,
                              people: list[tuple[str, str, str]]) -> dict[str, Customer]:
    """The customers with these (email, name, phone), by normalised email (any case), each
    created on first sight; a name or phone a record lacks is filled in, and never overwritten
    by a blank. One read, and one upsert for the new or incomplete records."""
    wanted: dict[str, tuple[str, str]] = {}
    for email, name, phone in people:
        normalized = email.strip().lower()
        known_name, known_phone = wanted.get(normalized, ("", ""))
        wanted[normalized] = (known_name or name, known_phone or phone)
    customers = {c.email: c for c in await session.scalars(select(Customer).where(
        Customer.tenant_id == tenant_id, Customer.email.in_(list(wanted))))}
    # A returning customer whose record is complete costs one read, no write.
    missing = sorted(email for email, (name, phone) in wanted.items()
                     if email not in customers or (name and not customers[email].name)
                     or (phone and not customers[email].phone))
    if not missing:
        return customers
    now = utcnow()
    fresh = insert(Customer).values([
        dict(tenant_id=tenant_id, id=uuid7(), email=email, name=wanted[email][0], phone=wanted[email][1], tags=[],
             created_at=now, updated_at=now) for email in missing])
    # One statement whoever wins a race to create a record: it always returns the rows, in
    # email order so that two of them never wait on each other in a cycle.
    upsert = fresh.on_conflict_do_update(
        index_elements=[Customer.tenant_id, Customer.email],
        set_={"name": case((Customer.name == "", fresh.excluded.name), else_=Customer.name),
              "phone": case((Customer.phone == "", fresh.excluded.phone), else_=Customer.phone),
              "updated_at": now},
    ).returning(Customer)
    for customer in await session.scalars(upsert, execution_options={"populate_existing": True}):
        customers[customer.email] = customer
    return customers
