"""Customer service's search, as the agent types: one box for an order number (ours or the
channel's), an email, a phone number in any format, a postcode or a name with typos.

What the query looks like decides which lookups run, each an indexed one:

- no spaces: our order number (``O-1A2B3C4D5E``, also typed without ``O-`` or in lower case)
  and the channel's, exactly;
- an email: the customer with that email and the orders placed with it; while it is being
  typed (no domain yet), or when no customer has it (another domain?), its words as a name's;
- a phone number (digits and the signs numbers are written with, six digits or more): the
  customers with that number (``core.search_keys``: its last nine digits);
- a postcode (short, with a digit): the newest orders delivered there;
- words: the customers whose name or email has every word, as typed or as the start of a
  word; only when fewer than a page are found that way, again with one typo allowed per word.

Customers are then ranked by how close their name (or email) is to the query (rapidfuzz), and
the orders of the best of them follow the orders found by number. A store associate finds the
orders of their locations only (``orders.queries.reach``), and the customers of those orders.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz import fuzz
from sqlalchemy.ext.asyncio import AsyncSession

from core import search_keys
from core.auth import Principal
from customers import service as customers
from orders import search as orders

MAX_QUERY = 200  # characters of the query that count
SHOWN = 8  # of each group
MIN_SCORE = 50  # a customer found with a typo allowed, but further than this from the query, is not shown
CLOSE = 70  # a customer this close to the query (and as close as the best) brings their recent orders
_ORDER_NUMBER = re.compile(r"(?:O-)?[0-9A-F]{10}")
_POSTCODE = re.compile(r"[A-Z0-9][A-Z0-9 \-]{1,8}[A-Z0-9]")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@dataclass(frozen=True)
class CustomerHit:
    id: uuid.UUID
    name: str
    email: str
    phone: str
    orders: int  # within the reader's reach
    score: float


@dataclass(frozen=True)
class Results:
    query: str
    customers: list[CustomerHit] = field(default_factory=list)
    orders: list[orders.OrderHit] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.customers and not self.orders


def clean(q: str) -> str:
    """The query as searched: spaces collapsed, at most ``MAX_QUERY`` characters."""
    return " ".join(q.split())[:MAX_QUERY].strip()


def order_numbers(q: str) -> list[str]:
    upper = q.upper()
    numbers = [upper]
    if _ORDER_NUMBER.fullmatch(upper) and not upper.startswith("O-"):
        numbers.append("O-" + upper)
    return numbers


def postcodes(q: str) -> list[str]:
    """The ways a postcode may have been stored (as typed, in capitals, with or without its space)."""
    upper = q.upper()
    if not _POSTCODE.fullmatch(upper) or not any(c.isdigit() for c in upper) or upper.count(" ") > 1:
        return []
    variants = {q, upper, upper.replace(" ", "")}
    if " " not in upper and len(upper) >= 5 and any(c.isalpha() for c in upper):
        variants.add(upper[:-3] + " " + upper[-3:])  # a British postcode typed without its space
    return sorted(variants)


def _score(words: list[str], customer: customers.CustomerRef) -> float:
    """How close a customer is to the query's words (0 to 100, rapidfuzz's weighted ratio on the
    name or the email's local part), and up to 5 more for words found as they are (Smith before
    Smithers)."""
    query = " ".join(words)
    name = search_keys.tokens(customer.name)
    local = search_keys.email_tokens(customer.email)
    close = max(fuzz.WRatio(query, " ".join(name)) if name else 0.0,
                fuzz.WRatio(query, " ".join(local)) if local else 0.0)
    exact = len(set(words) & (set(name) | set(local)))
    return close + 5 * exact / len(words)


async def _customers_by_words(session: AsyncSession, principal: Principal, q: str) -> list[tuple[float, Any]]:
    tenant = principal.tenant_id
    found = {c.id: c for c in await customers.search(session, tenant, search_keys.query_keys(q, typos=False))}
    if len(found) < SHOWN:
        for c in await customers.search(session, tenant, search_keys.query_keys(q, typos=True)):
            found.setdefault(c.id, c)
    words = search_keys.tokens(q)[:search_keys.MAX_QUERY_TOKENS]
    ranked = [(_score(words, c), c) for c in found.values()]
    return [(score, c) for score, c in ranked if score >= MIN_SCORE]


async def search(session: AsyncSession, principal: Principal, q: str, *, shown: int = SHOWN) -> Results:
    """The customers and orders the query finds, each group at most ``shown``, best first."""
    q = clean(q)
    if not q:
        return Results(q)
    tenant = principal.tenant_id
    spaced = " " in q
    has_letters = any(c.isalpha() for c in q)
    email = q.lower() if _EMAIL.fullmatch(q) else ""
    phone = search_keys.looks_like_phone(q)

    ranked: list[tuple[float, Any]] = []
    if email:
        ranked = [(100.0, c) for c in await customers.search(session, tenant, [[search_keys.email_key(email)]])]
    if phone and (key := search_keys.phone_key(q)):
        ranked += [(100.0, c) for c in await customers.search(session, tenant, [[key]])]
    if not ranked and has_letters:
        words = q.partition("@")[0] if "@" in q else q  # an email being typed (or unknown): its words
        ranked = await _customers_by_words(session, principal, words)
    ranked.sort(key=lambda item: (-item[0], item[1].name.casefold(), item[1].email))

    limited = principal.locations is not None or principal.channel is not None
    considered = ranked[:shown * 4 if limited else shown]
    counts = await orders.counts_for_customers(session, principal, [c.id for _, c in considered])
    hits = [CustomerHit(c.id, c.name, c.email, c.phone, counts.get(c.id, 0), score) for score, c in considered
            if not limited or counts.get(c.id)][:shown]

    found = await orders.lookup(session, principal, numbers=order_numbers(q) if not spaced else (),
                                external_numbers=[q] if not spaced else (), emails=[email] if email else (),
                                postcodes=postcodes(q), limit=shown)
    # The orders of the best customers (the best, and those as good): found by who they are.
    best = hits[0].score if hits else 0.0
    close = [hit.id for hit in hits if hit.score >= max(CLOSE, best - 5) and hit.orders][:3]
    if len(found) < shown and close:
        seen = {hit.id for hit in found}
        found += [hit for hit in await orders.recent_for_customers(session, principal, close, limit=shown)
                  if hit.id not in seen]
    return Results(q, hits, found[:shown])
