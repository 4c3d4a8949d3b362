"""Customer records as other domains use them."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ARRAY, String, any_, bindparam, case, or_, select, update
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


class Person(NamedTuple):
    """Someone an order names: consent True or False is recorded, None leaves it as it was."""

    email: str
    name: str = ""
    phone: str = ""
    email_consent: bool | None = None
    sms_consent: bool | None = None


_BY_EMAIL = Prepared(select(Customer.id, Customer.email, Customer.name, Customer.phone, Customer.tags,
                            Customer.email_consent, Customer.sms_consent).where(
    Customer.tenant_id == bindparam("tenant"), Customer.email == any_(bindparam("emails", type_=ARRAY(String)))))

# Whoever wins a race to create a record, the statement returns it; a blank never overwrites.
_UPSERT = ("ON CONFLICT (tenant_id, email) DO UPDATE SET "
           "name = CASE WHEN customers.name = '' THEN excluded.name ELSE customers.name END, "
           "phone = CASE WHEN customers.phone = '' THEN excluded.phone ELSE customers.phone END, "
           "updated_at = excluded.updated_at")


async def find_or_create_many(session: AsyncSession, tenant_id: uuid.UUID,
                              people: Sequence[tuple[str, str, str] | Person]) -> dict[str, CustomerRef]:
    """The customers with these (email, name, phone[, email consent, SMS consent]), by
    normalised email (any case), each created on first sight; a name or phone a record lacks is
    filled in, and never overwritten by a blank; a consent given (True or False) is recorded,
    the later one winning for a person named twice. One read, and for the new or incomplete
    records one upsert and one insert of their search keys; a consent that changes one more
    update."""
    wanted: dict[str, tuple[str, str]] = {}
    consents: dict[str, tuple[bool | None, bool | None]] = {}
    for person in people:
        email, name, phone = person[0], person[1], person[2]
        normalized = email.strip().lower()
        known_name, known_phone = wanted.get(normalized, ("", ""))
        wanted[normalized] = (known_name or name, known_phone or phone)
        if isinstance(person, Person) and (person.email_consent is not None or person.sms_consent is not None):
            known_email, known_sms = consents.get(normalized, (None, None))
            consents[normalized] = (known_email if person.email_consent is None else person.email_consent,
                                    known_sms if person.sms_consent is None else person.sms_consent)
    stored: dict[str, tuple[bool, bool]] = {}
    customers: dict[str, CustomerRef] = {}
    for row in await _BY_EMAIL.fetch(session, tenant=tenant_id, emails=list(wanted)):
        customers[row["email"]] = CustomerRef(row["id"], row["email"], row["name"], row["phone"], row["tags"])
        stored[row["email"]] = (row["email_consent"], row["sms_consent"])
    # A returning customer whose record is complete costs one read, no write.
    missing = sorted(email for email, (name, phone) in wanted.items()
                     if email not in customers or (name and not customers[email].name)
                     or (phone and not customers[email].phone))
    if missing:
        await _upsert(session, tenant_id, missing, wanted, consents, customers, stored)
    changed = {email: given for email, given in consents.items() if _differs(given, stored[email])}
    if changed:
        await _write_consents(session, tenant_id, {customers[email].id: given for email, given in changed.items()})
    return customers


def _differs(given: tuple[bool | None, bool | None], stored: tuple[bool, bool]) -> bool:
    return any(g is not None and g != s for g, s in zip(given, stored, strict=True))


async def _upsert(session: AsyncSession, tenant_id: uuid.UUID, missing: list[str], wanted: dict[str, tuple[str, str]],
                  consents: dict[str, tuple[bool | None, bool | None]], customers: dict[str, CustomerRef],
                  stored: dict[str, tuple[bool, bool]]) -> None:
    """Create the new records (with their consent) and fill in the incomplete ones; ``customers``
    and ``stored`` get the records as they now are."""
    now = utcnow()
    rows = []
    for email in missing:  # in email order, so that two upserts never wait on each other in a cycle
        given_email, given_sms = consents.get(email, (None, None))
        rows.append({"tenant_id": tenant_id, "id": uuid7(), "email": email, "name": wanted[email][0] or "",
                     "phone": wanted[email][1] or "", "tags": [], "created_at": now, "updated_at": now,
                     "email_consent": bool(given_email), "sms_consent": bool(given_sms),
                     "consent_updated_at": now if email in consents else None})
    upserted = []
    for row in await bulk.insert_rows(session, Customer, rows, on_conflict=_UPSERT,
                                      returning="id, email, name, phone, tags, email_consent, sms_consent"):
        upserted.append(CustomerRef(row["id"], row["email"], row["name"], row["phone"], row["tags"]))
        stored[row["email"]] = (row["email_consent"], row["sms_consent"])
    # The keys of the records as they are now (another transaction may have filled a name in
    # meanwhile): a record's keys only grow, those it had already are left as they are. The
    # upsert holds these records' rows until the commit, so no other transaction writes their keys.
    keys = []
    for ref in upserted:
        customers[ref.email] = ref
        keys += [{"tenant_id": tenant_id, "key": key, "customer_id": ref.id}
                 for key in search_keys.record_keys(name=ref.name, email=ref.email, phone=ref.phone)]
    await bulk.insert_rows(session, CustomerSearchKey, keys, on_conflict="ON CONFLICT DO NOTHING")


# Rows are locked in id order first (the CTE is evaluated before the rows it names are updated,
# in its own order), so that two transactions never wait on each other in a cycle.
_LOCKED = "locked AS MATERIALIZED (SELECT c.id FROM customers c WHERE c.tenant_id = $1 " \
          "AND c.id = ANY($2::uuid[]) ORDER BY c.id FOR UPDATE)"

_WRITE_CONSENTS = f"""
    WITH {_LOCKED}
    UPDATE customers c SET email_consent = coalesce(u.email, c.email_consent),
                           sms_consent = coalesce(u.sms, c.sms_consent), consent_updated_at = $5, updated_at = $5
    FROM unnest($2::uuid[], $3::boolean[], $4::boolean[]) AS u(id, email, sms) JOIN locked l ON l.id = u.id
    WHERE c.tenant_id = $1 AND c.id = u.id
"""


async def _write_consents(session: AsyncSession, tenant_id: uuid.UUID,
                          given: dict[uuid.UUID, tuple[bool | None, bool | None]]) -> None:
    ids = sorted(given)
    await (await driver(session)).execute(_WRITE_CONSENTS, tenant_id, ids, [given[i][0] for i in ids],
                                          [given[i][1] for i in ids], utcnow())


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
    # What the customer's orders come to (see ``CustomerStats``), and their marketing consent.
    orders_count: int = 0
    lifetime_value_minor: int = 0
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    channels: list[str] = field(default_factory=list)
    stores: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    email_consent: bool = False
    sms_consent: bool = False
    consent_updated_at: datetime | None = None
    unsubscribed_at: datetime | None = None


_RECORD = (Customer.id, Customer.email, Customer.name, Customer.phone, Customer.tags, Customer.created_at,
           Customer.updated_at, Customer.orders_count, Customer.lifetime_value_minor, Customer.first_order_at,
           Customer.last_order_at, Customer.channels, Customer.stores, Customer.categories, Customer.email_consent,
           Customer.sms_consent, Customer.consent_updated_at, Customer.unsubscribed_at)


def _record(row: Any) -> CustomerRecord:
    return CustomerRecord(id=row.id, email=row.email, name=row.name, phone=row.phone, tags=list(row.tags or []),
                          created_at=row.created_at, updated_at=row.updated_at, orders_count=row.orders_count,
                          lifetime_value_minor=row.lifetime_value_minor, first_order_at=row.first_order_at,
                          last_order_at=row.last_order_at, channels=list(row.channels or []),
                          stores=list(row.stores or []), categories=list(row.categories or []),
                          email_consent=row.email_consent, sms_consent=row.sms_consent,
                          consent_updated_at=row.consent_updated_at, unsubscribed_at=row.unsubscribed_at)


async def get_customer(session: AsyncSession, tenant_id: uuid.UUID, customer_id: uuid.UUID) -> CustomerRecord:
    """The company's customer with this id; another company's, or none, is a 404."""
    row = (await session.execute(select(*_RECORD).where(Customer.tenant_id == tenant_id,
                                                        Customer.id == customer_id))).first()
    if row is None:
        raise not_found("Customer")
    return _record(row)


async def records(session: AsyncSession, tenant_id: uuid.UUID,
                  customer_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, CustomerRecord]:
    """The company's customers among these ids, in one read (others' and unknown ids are left out)."""
    if not customer_ids:
        return {}
    rows = await session.execute(select(*_RECORD).where(Customer.tenant_id == tenant_id,
                                                        Customer.id.in_(list(customer_ids))))
    return {row.id: _record(row) for row in rows}


# --- marketing consent ---------------------------------------------------------------------------


async def set_consent(session: AsyncSession, tenant_id: uuid.UUID, customer_id: uuid.UUID, *,
                      email: bool | None, sms: bool | None) -> None:
    """Record the customer's marketing consent per channel (None: leave it). Consent to email
    given again after an unsubscribe is a new opt-in: the unsubscribe is lifted. 404 for a
    customer that is not the company's."""
    now = utcnow()
    values: dict[str, Any] = {}
    changed = []  # what makes it a change (the time of the consent is when it last changed)
    if email is not None:
        values["email_consent"] = email
        changed.append(Customer.email_consent.is_distinct_from(email))
    if sms is not None:
        values["sms_consent"] = sms
        changed.append(Customer.sms_consent.is_distinct_from(sms))
    if email:
        values["unsubscribed_at"] = None
        changed.append(Customer.unsubscribed_at.is_not(None))
    if not values:
        await get_customer(session, tenant_id, customer_id)  # nothing to record; still a 404 for another's
        return
    values["consent_updated_at"] = case((or_(*changed), now), else_=Customer.consent_updated_at)
    values["updated_at"] = case((or_(*changed), now), else_=Customer.updated_at)
    found = await session.scalar(update(Customer).where(Customer.tenant_id == tenant_id, Customer.id == customer_id)
                                 .values(**values).returning(Customer.id)
                                 .execution_options(synchronize_session=False))
    if found is None:
        raise not_found("Customer")


async def unsubscribe(session: AsyncSession, tenant_id: uuid.UUID, customer_id: uuid.UUID) -> None:
    """No more marketing email, at once: consent withdrawn and the unsubscribe's time kept (the
    first one, when the link is followed twice). 404 for a customer that is not the company's."""
    now = utcnow()
    first = Customer.unsubscribed_at.is_(None)
    found = await session.scalar(update(Customer).where(Customer.tenant_id == tenant_id, Customer.id == customer_id)
                                 .values(email_consent=False,
                                         unsubscribed_at=case((first, now), else_=Customer.unsubscribed_at),
                                         consent_updated_at=case((first | Customer.email_consent, now),
                                                                 else_=Customer.consent_updated_at),
                                         updated_at=case((first | Customer.email_consent, now),
                                                         else_=Customer.updated_at))
                                 .returning(Customer.id).execution_options(synchronize_session=False))
    if found is None:
        raise not_found("Customer")


# --- what the customer's orders come to ---------------------------------------------------------


@dataclass(frozen=True)
class CustomerStats:
    """What segments test of a customer's orders. ``orders_count``: orders not wholly
    cancelled; ``lifetime_value_minor``: their totals less what the units cancelled or returned
    were worth (and the shipping of a wholly cancelled order); the dates, channels, stores
    (pickup stores) and categories are those of every order placed, cancelled or not."""

    orders_count: int = 0
    lifetime_value_minor: int = 0
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    channels: frozenset[str] = frozenset()
    stores: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PlacedOrder:
    """A new order, as its customer's figures count it."""

    customer_id: uuid.UUID
    placed_at: datetime
    total_minor: int
    channel: str
    store: str | None  # the pickup store's code
    categories: tuple[str, ...]


def _text_array(values: Iterable[str]) -> str | None:
    """A set of strings as PostgreSQL's array text (arrays of arrays can't travel through unnest)."""
    return bulk._pg_array(sorted(values))


def _union(column: str) -> str:
    return (f"{column} = ARRAY(SELECT DISTINCT x FROM unnest(c.{column} || u.{column}::varchar[]) AS x "
            f"WHERE x IS NOT NULL ORDER BY x)")


_RECORD_ORDERS = f"""
    WITH {_LOCKED}
    UPDATE customers c SET orders_count = c.orders_count + u.orders,
                           lifetime_value_minor = c.lifetime_value_minor + u.value,
                           first_order_at = least(c.first_order_at, u.first_at),
                           last_order_at = greatest(c.last_order_at, u.last_at),
                           {_union("channels")}, {_union("stores")}, {_union("categories")}
    FROM unnest($2::uuid[], $3::integer[], $4::bigint[], $5::timestamptz[], $6::timestamptz[], $7::text[],
                $8::text[], $9::text[]) AS u(id, orders, value, first_at, last_at, channels, stores, categories)
    JOIN locked l ON l.id = u.id
    WHERE c.tenant_id = $1 AND c.id = u.id
"""


async def record_orders(session: AsyncSession, tenant_id: uuid.UUID, orders: Sequence[PlacedOrder]) -> None:
    """Count new orders in their customers' figures: one statement for all of them."""
    if not orders:
        return
    per: dict[uuid.UUID, list[PlacedOrder]] = {}
    for order in orders:
        per.setdefault(order.customer_id, []).append(order)
    ids = sorted(per)
    groups = [per[i] for i in ids]
    await (await driver(session)).execute(
        _RECORD_ORDERS, tenant_id, ids, [len(g) for g in groups], [sum(o.total_minor for o in g) for g in groups],
        [min(o.placed_at for o in g) for g in groups], [max(o.placed_at for o in g) for g in groups],
        [_text_array({o.channel for o in g}) for g in groups],
        [_text_array({o.store for o in g if o.store}) for g in groups],
        [_text_array({c for o in g for c in o.categories}) for g in groups])


async def lock(session: AsyncSession, tenant_id: uuid.UUID, customer_ids: Collection[uuid.UUID]) -> None:
    """Lock these customers' records in id order, the order every writer of their figures takes:
    a capture that locks other rows (a promotion's counters) first takes these, so that two captures
    for the same customers never wait on each other in a cycle."""
    await session.execute(select(Customer.id).where(Customer.tenant_id == tenant_id, Customer.id.in_(
        sorted(customer_ids))).order_by(Customer.id).with_for_update())


async def adjust(session: AsyncSession, tenant_id: uuid.UUID, customer_id: uuid.UUID, *, value_minor: int,
                 orders: int) -> None:
    """Add ``value_minor`` to the customer's lifetime value and ``orders`` to their order count
    (negative: units cancelled or returned, an order wholly cancelled)."""
    if not value_minor and not orders:
        return
    await session.execute(update(Customer).where(Customer.tenant_id == tenant_id, Customer.id == customer_id)
                          .values(lifetime_value_minor=Customer.lifetime_value_minor + value_minor,
                                  orders_count=Customer.orders_count + orders)
                          .execution_options(synchronize_session=False))


async def stats_of(session: AsyncSession, tenant_id: uuid.UUID,
                   customer_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, CustomerStats]:
    """The figures stored on these customers (those of the company)."""
    rows = await session.execute(select(
        Customer.id, Customer.orders_count, Customer.lifetime_value_minor, Customer.first_order_at,
        Customer.last_order_at, Customer.channels, Customer.stores, Customer.categories,
    ).where(Customer.tenant_id == tenant_id, Customer.id.in_(list(customer_ids))))
    return {row.id: CustomerStats(row.orders_count, row.lifetime_value_minor, row.first_order_at, row.last_order_at,
                                  frozenset(row.channels or ()), frozenset(row.stores or ()),
                                  frozenset(row.categories or ())) for row in rows}


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
