"""Customer records as other domains use them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ARRAY, String, any_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import bulk, search_keys
from core.db import Prepared, driver, utcnow
from core.ids import uuid7
from core.problems import not_found
from customers.models import Customer, CustomerSearchKey


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
    by a blank. One read, and for the new or incomplete records one upsert and one insert of
    their search keys."""
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
    upserted = [CustomerRef._make(row) for row in await bulk.insert_rows(session, Customer, [
        # In email order, so that two upserts never wait on each other in a cycle.
        {"tenant_id": tenant_id, "id": uuid7(), "email": email, "name": wanted[email][0] or "",
         "phone": wanted[email][1] or "", "tags": [], "created_at": now, "updated_at": now}
        for email in missing], on_conflict=_UPSERT, returning="id, email, name, phone, tags")]
    # The keys of the records as they are now (another transaction may have filled a name in
    # meanwhile): a record's keys only grow, those it had already are left as they are. The
    # upsert holds these records' rows until the commit, so no other transaction writes their keys.
    keys = []
    for ref in upserted:
        customers[ref.email] = ref
        keys += [{"tenant_id": tenant_id, "key": key, "customer_id": ref.id}
                 for key in search_keys.record_keys(name=ref.name, email=ref.email, phone=ref.phone)]
    await bulk.insert_rows(session, CustomerSearchKey, keys, on_conflict="ON CONFLICT DO NOTHING")
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

FEW = 500  # keys read of a word before it counts as a common one

# The customers that have, for every word of the query, one of its keys. Every key is read on the
# primary key of customer_search_keys (tenant_id, key, customer_id), by text equality, which is
# leakproof and so usable under row-level security. Each word's keys are first counted up to FEW:
# when one word is that rare, its customers are the candidates, each checked for the other words
# with one probe of the index per key; when every word is common, all their keys are read and
# grouped by customer.
_SEARCH = """
    WITH q AS MATERIALIZED (SELECT key, word FROM unnest($2::text[], $3::int[]) AS q(key, word)),
    rarest AS MATERIALIZED (
        SELECT w.word, (SELECT count(*) FROM (SELECT FROM q JOIN customer_search_keys k
                                              ON k.tenant_id = $1 AND k.key = q.key
                                              WHERE q.word = w.word LIMIT $6) AS s) AS n
        FROM generate_series(0, $4 - 1) AS w(word) ORDER BY n LIMIT 1),
    found AS (
        (SELECT DISTINCT k.customer_id FROM rarest r JOIN q ON q.word = r.word
         JOIN customer_search_keys k ON k.tenant_id = $1 AND k.key = q.key
         WHERE r.n < $6 AND NOT EXISTS (
             SELECT FROM generate_series(0, $4 - 1) AS other(word) WHERE other.word <> r.word AND NOT EXISTS (
                 SELECT FROM q AS o JOIN customer_search_keys ok
                 ON ok.tenant_id = $1 AND ok.key = o.key AND ok.customer_id = k.customer_id
                 WHERE o.word = other.word))
         LIMIT $5)
        UNION ALL
        (SELECT matched.customer_id
         FROM (SELECT DISTINCT k.customer_id, q.word FROM q
               JOIN customer_search_keys k ON k.tenant_id = $1 AND k.key = q.key
               WHERE (SELECT n FROM rarest) >= $6) AS matched
         GROUP BY matched.customer_id HAVING count(*) = $4
         LIMIT $5))
    SELECT c.id, c.email, c.name, c.phone, c.tags
    FROM found JOIN customers c ON c.tenant_id = $1 AND c.id = found.customer_id
"""


def search_arguments(tenant_id: uuid.UUID, query_keys: list[list[str]], limit: int = SEARCH_CANDIDATES) -> list[Any]:
    """``_SEARCH``'s arguments for these keys (one list per word of the query)."""
    pairs = {(key, word) for word, keys in enumerate(query_keys) for key in keys}
    return [tenant_id, [key for key, _ in pairs], [word for _, word in pairs], len(query_keys), limit, FEW]


async def search(session: AsyncSession, tenant_id: uuid.UUID, query_keys: list[list[str]], *,
                 limit: int = SEARCH_CANDIDATES) -> list[CustomerRef]:
    """Customers that have, for every list of ``query_keys`` (``core.search_keys.query_keys``,
    one per word of the query), at least one of its keys: at most ``limit`` of them, in no
    particular order (the caller ranks them). One statement on the keys' index."""
    if not query_keys or not all(query_keys):
        return []
    rows = await (await driver(session)).fetch(_SEARCH, *search_arguments(tenant_id, query_keys, limit))
    return [CustomerRef._make(row) for row in rows]
