"""Segments over the customers table: a segment's condition (``rules.segments``) compiled to a
WHERE clause, and the customers it holds counted, previewed and listed.

The SQL must say exactly what the pure evaluator says, customer for customer:
- every leaf is a definite true or false, never NULL, so that ``not`` negates it exactly (a
  customer who never ordered has no last order date: "is not in the last 30 days" holds,
  "is before 1 May" does not, and "not (is before 1 May)" does);
- local dates are compared as the UTC instants of local midnights in the company's zone
  (``last_order_at >= <midnight 90 days ago>``), which keeps ``ix_customers_last_order`` usable.
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Text,
    Uuid,
    and_,
    any_,
    bindparam,
    cast,
    false,
    func,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY as PG_ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from customers.models import Customer
from rules.conditions import days_before, parse_value
from rules.fields import FIELDS
from rules.segments import CustomerFacts

_NUMBERS = {"customer.orders_count": Customer.orders_count,
            "customer.lifetime_value": Customer.lifetime_value_minor}
_DATES = {"customer.last_order_date": Customer.last_order_at, "customer.first_order_date": Customer.first_order_at}
_TAGS = {"customer.tags": Customer.tags, "customer.channels": Customer.channels, "customer.stores": Customer.stores,
         "customer.categories": Customer.categories}
_CONSENTS = {"customer.email_consent": Customer.email_consent, "customer.sms_consent": Customer.sms_consent}


def _start_of(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant local ``day`` begins. A midnight a clock change skips is read with the
    offset before the change, which is the instant the day begins."""
    try:
        return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
    except OverflowError:  # the first days of year 1, east of Greenwich
        return datetime.min.replace(tzinfo=UTC)


def _end_of(day: date, zone: ZoneInfo) -> datetime | None:
    """The instant the day after ``day`` begins; None after the last day there is."""
    return None if day == date.max else _start_of(day + timedelta(days=1), zone)


def _date_leaf(column: Any, op: str, value: Any, today: date, zone: ZoneInfo) -> ColumnElement[bool]:
    known = column.is_not(None)

    def since(day: date) -> ColumnElement[bool]:  # on or after the day
        return and_(known, column >= _start_of(day, zone))

    def until(day: date) -> ColumnElement[bool]:  # on or before the day
        end = _end_of(day, zone)
        return known if end is None else and_(known, column < end)

    if op == "in_last_days":
        return since(days_before(today, value))
    if op == "not_in_last_days":
        return not_(since(days_before(today, value)))
    if op == "eq":
        return and_(since(value), until(value))
    if op == "ne":
        return not_(and_(since(value), until(value)))
    if op == "on_or_after":
        return since(value)
    if op == "after":
        return false() if value == date.max else since(value + timedelta(days=1))
    if op == "on_or_before":
        return until(value)
    if op == "before":
        return false() if value == date.min else until(value - timedelta(days=1))
    if op == "between":
        low, high = value
        return and_(since(low), until(high))
    raise ValueError(op)


_COMPARISONS = {"eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "lte": operator.le, "gt": operator.gt,
                "gte": operator.ge}


def _number_leaf(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    if op == "between":
        return and_(column >= value[0], column <= value[1])
    result: ColumnElement[bool] = _COMPARISONS[op](column, value)
    return result


def _tags_leaf(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    # As text[]: the columns are varchar(n)[], and a value longer than n must not match its prefix.
    tags = cast(column, PG_ARRAY(Text))
    values = [value] if op == "has" else list(dict.fromkeys(value))
    wanted = bindparam(None, values, type_=PG_ARRAY(Text))
    result: ColumnElement[bool]
    if op in ("has", "has_all"):
        result = tags.contains(wanted)
    elif op == "has_any":
        result = tags.overlap(wanted)
    elif op == "has_none":
        result = not_(tags.overlap(wanted))
    else:
        raise ValueError(op)
    return result


def _consent_leaf(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    # The pure evaluator reads a consent as "yes" or "no": the values that hold, as booleans.
    chosen = {value} if op in ("eq", "ne") else set(value)
    holds = {answer == "yes" for answer in chosen}
    if op in ("ne", "not_in"):
        holds = {True, False} - holds
    if holds == {True, False}:
        return true()
    if not holds:
        return false()
    result: ColumnElement[bool] = column.is_(True) if True in holds else column.is_(False)
    return result


def segment_clause(condition: dict[str, Any] | None, *, today: date, timezone: str) -> ColumnElement[bool]:
    """A valid segment condition (``rules.segments.validate_segment``) as a WHERE clause over
    ``customers``; ``today`` is the local date relative dates count back from."""
    zone = ZoneInfo(timezone)

    def clause(node: dict[str, Any]) -> ColumnElement[bool]:
        if "all" in node:
            return and_(true(), *(clause(child) for child in node["all"]))
        if "any" in node:
            return or_(false(), *(clause(child) for child in node["any"]))
        if "not" in node:
            return not_(clause(node["not"]))
        key, op = node["field"], node["op"]
        value = parse_value(FIELDS[key], op, node["value"])
        if key in _NUMBERS:
            return _number_leaf(_NUMBERS[key], op, value)
        if key in _DATES:
            return _date_leaf(_DATES[key], op, value, today, zone)
        if key in _TAGS:
            return _tags_leaf(_TAGS[key], op, value)
        if key in _CONSENTS:
            return _consent_leaf(_CONSENTS[key], op, value)
        raise ValueError(f"{key} is not a segment field")

    return true() if condition is None else clause(condition)


def _today(timezone: str) -> date:
    return clock.now().astimezone(ZoneInfo(timezone)).date()


@dataclass(frozen=True)
class Member:
    id: uuid.UUID
    email: str
    name: str
    orders_count: int
    lifetime_value_minor: int
    last_order_at: datetime | None


_MEMBER_COLUMNS = (Customer.id, Customer.email, Customer.name, Customer.orders_count, Customer.lifetime_value_minor,
                   Customer.last_order_at)


async def count(session: AsyncSession, tenant_id: uuid.UUID, condition: dict[str, Any] | None, *,
                timezone: str) -> int:
    """How many of the company's customers are in the segment today."""
    where = segment_clause(condition, today=_today(timezone), timezone=timezone)
    found = await session.scalar(select(func.count()).select_from(Customer).where(
        Customer.tenant_id == tenant_id, where))
    return int(found or 0)


async def preview(session: AsyncSession, tenant_id: uuid.UUID, condition: dict[str, Any] | None, *,
                  timezone: str, limit: int = 20) -> list[Member]:
    """A few members, those who ordered last first (then those who never did)."""
    where = segment_clause(condition, today=_today(timezone), timezone=timezone)
    rows = await session.execute(select(*_MEMBER_COLUMNS).where(Customer.tenant_id == tenant_id, where).order_by(
        Customer.last_order_at.desc().nulls_last(), Customer.id).limit(limit))
    return [Member(*row) for row in rows]


async def members(session: AsyncSession, tenant_id: uuid.UUID, condition: dict[str, Any] | None, *,
                  timezone: str, reachable: bool = False, after: uuid.UUID | None = None,
                  limit: int = 1000) -> list[Member]:
    """The segment's members by id, a page at a time: those after ``after``. ``reachable``: only
    those who agreed to marketing emails and have not unsubscribed."""
    where = [Customer.tenant_id == tenant_id,
             segment_clause(condition, today=_today(timezone), timezone=timezone)]
    if reachable:
        where += [Customer.email_consent.is_(True), Customer.unsubscribed_at.is_(None)]
    if after is not None:
        where.append(Customer.id > after)
    rows = await session.execute(select(*_MEMBER_COLUMNS).where(*where).order_by(Customer.id).limit(limit))
    return [Member(*row) for row in rows]


async def facts_of(session: AsyncSession, tenant_id: uuid.UUID, customer_ids: Iterable[uuid.UUID], *,
                   timezone: str, currency: str = "EUR") -> dict[uuid.UUID, CustomerFacts]:
    """What segments test of these customers (those of the company that exist), dates local."""
    ids = list(dict.fromkeys(customer_ids))
    if not ids:
        return {}
    zone = ZoneInfo(timezone)
    rows = await session.execute(select(
        Customer.id, Customer.tags, Customer.orders_count, Customer.lifetime_value_minor, Customer.first_order_at,
        Customer.last_order_at, Customer.channels, Customer.stores, Customer.categories, Customer.email_consent,
        Customer.sms_consent,
    ).where(Customer.tenant_id == tenant_id, Customer.id == any_(bindparam("ids", ids, type_=ARRAY(Uuid)))))

    def local(at: datetime | None) -> date | None:
        return None if at is None else at.astimezone(zone).date()

    return {row.id: CustomerFacts(
        id=str(row.id), tags=frozenset(row.tags or ()), orders_count=row.orders_count,
        lifetime_value_minor=row.lifetime_value_minor, first_order_date=local(row.first_order_at),
        last_order_date=local(row.last_order_at), channels=frozenset(row.channels or ()),
        stores=frozenset(row.stores or ()), categories=frozenset(row.categories or ()),
        email_consent=row.email_consent, sms_consent=row.sms_consent, currency=currency,
    ) for row in rows}
