"""Customer records as other domains use them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import ARRAY, String, any_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import bulk, search_keys
from core.db import Prepared, driver, utcnow
from core.ids import uuid7
from core.problems import not_found
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
           "search_keys = excluded.search_keys, updated_at = excluded.updated_at")
# The keys of records whose final name or phone were not those the upsert's keys were made for
# (another transaction filled them in between the read and the upsert): rare.
_REKEY = "UPDATE customers SET search_keys = $3 WHERE tenant_id = $1 AND id = $2"


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
    # What each record will hold once upserted (a blank never overwrites), and so its search keys.
    final = {email: (customers[email].name or wanted[email][0] or "", customers[email].phone or wanted[email][1] or "")
             if email in customers else (wanted[email][0] or "", wanted[email][1] or "") for email in missing}
    rekey: list[CustomerRef] = []
    # In email order, so that two upserts never wait on each other in a cycle.
    for row in await bulk.insert_rows(session, Customer, [
            {"tenant_id": tenant_id, "id": uuid7(), "email": email, "name": final[email][0],
             "phone": final[email][1], "tags": [], "created_at": now, "updated_at": now,
             "search_keys": search_keys.record_keys(tenant_id, name=final[email][0], email=email,
                                                    phone=final[email][1])}
            for email in missing], on_conflict=_UPSERT, returning="id, email, name, phone, tags"):
        customers[row["email"]] = ref = CustomerRef._make(row)
        if (ref.name, ref.phone) != final[ref.email]:
            rekey.append(ref)
    if rekey:
        await (await driver(session)).executemany(_REKEY, [
            (tenant_id, ref.id, search_keys.record_keys(tenant_id, name=ref.name, email=ref.email, phone=ref.phone))
            for ref in rekey])
    return customers


@dataclass(frozen=True)
class CustomerRecord:
    """A customer's record as customer service shows it."""

    id: uuid.UUID
    email: str
    name: str
    phone: str
    tags: list[str]
    created_at: datetime
    updated_at: datetime


async def get_customer(session: AsyncSession, tenant_id: uuid.UUID, customer_id: uuid.UUID) -> CustomerRecord:
    """The company's customer with this id; another company's, or none, is a 404."""
    row = (await session.execute(select(
        Customer.id, Customer.email, Customer.name, Customer.phone, Customer.tags, Customer.created_at,
        Customer.updated_at).where(Customer.tenant_id == tenant_id, Customer.id == customer_id))).first()
    if row is None:
        raise not_found("Customer")
    return CustomerRecord(id=row.id, email=row.email, name=row.name, phone=row.phone, tags=list(row.tags or []),
                          created_at=row.created_at, updated_at=row.updated_at)


SEARCH_CANDIDATES = 200


async def search(session: AsyncSession, tenant_id: uuid.UUID, query_keys: list[list[str]], *,
                 limit: int = SEARCH_CANDIDATES) -> list[CustomerRef]:
    """Customers that have, for every list of ``query_keys`` (``core.search_keys.query_keys``,
    one per word of the query), at least one of its keys: at most ``limit`` of them, in no
    particular order (the caller ranks them). One lookup of the GIN index over the tagged keys."""
    if not query_keys or not all(query_keys):
        return []
    overlaps = " AND ".join(f"search_keys && ${i + 2}::varchar[]" for i in range(len(query_keys)))
    sql = (f"SELECT id, email, name, phone, tags FROM customers WHERE tenant_id = $1 AND {overlaps} "
           f"LIMIT ${len(query_keys) + 2}")
    rows = await (await driver(session)).fetch(sql, tenant_id, *query_keys, limit)
    return [CustomerRef._make(row) for row in rows]
