"""Customer records as other domains use them."""

from __future__ import annotations

import uuid
from typing import NamedTuple

from sqlalchemy import ARRAY, String, any_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import bulk
from core.db import Prepared, utcnow
from core.ids import uuid7
from customers.models import Customer


class CustomerRef(NamedTuple):
    """What an order copies from its customer's record."""

    id: uuid.UUID
    email: str
    name: str
    phone: str
    tags: list[str]


_BY_EMAIL = Prepared(select(Customer.id, Customer.email, Customer.name, Customer.phone, Customer.tags).where(
    Customer.tenant_id == bindparam("tenant"), Customer.email == any_(bindparam("emails", type_=ARRAY(String)))))

# Whoever wins a race to create a record, the statement returns it; a blank never overwrites.
_UPSERT = ("ON CONFLICT (tenant_id, email) DO UPDATE SET "
           "name = CASE WHEN customers.name = '' THEN excluded.name ELSE customers.name END, "
           "phone = CASE WHEN customers.phone = '' THEN excluded.phone ELSE customers.phone END, "
           "updated_at = excluded.updated_at")


async def find_or_create_many(session: AsyncSession, tenant_id: uuid.UUID,
                              people: list[tuple[str, str, str]]) -> dict[str, CustomerRef]:
    """The customers with these (email, name, phone), by normalised email (any case), each
    created on first sight; a name or phone a record lacks is filled in, and never overwritten
    by a blank. One read, and one upsert for the new or incomplete records."""
    wanted: dict[str, tuple[str, str]] = {}
    for email, name, phone in people:
        normalized = email.strip().lower()
        known_name, known_phone = wanted.get(normalized, ("", ""))
        wanted[normalized] = (known_name or name, known_phone or phone)
    customers = {row["email"]: CustomerRef._make(row)
                 for row in await _BY_EMAIL.fetch(session, tenant=tenant_id, emails=list(wanted))}
    # A returning customer whose record is complete costs one read, no write.
    missing = sorted(email for email, (name, phone) in wanted.items()
                     if email not in customers or (name and not customers[email].name)
                     or (phone and not customers[email].phone))
    if not missing:
        return customers
    now = utcnow()
    # In email order, so that two upserts never wait on each other in a cycle.
    for row in await bulk.insert_rows(session, Customer, [
            {"tenant_id": tenant_id, "id": uuid7(), "email": email, "name": wanted[email][0] or "",
             "phone": wanted[email][1] or "", "tags": [], "created_at": now, "updated_at": now}
            for email in missing], on_conflict=_UPSERT, returning="id, email, name, phone, tags"):
        customers[row["email"]] = CustomerRef._make(row)
    return customers
