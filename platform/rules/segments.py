"""Segments: a condition over what is known of a customer, in the condition language, with the
fields whose ``uses`` include "segments" (``rules.fields``).

The pure evaluator here is the reference: ``customers.segments`` compiles the same tree to SQL
over the customers table and must agree with it customer for customer (the integration tests
check it on random trees). Dates are local dates in the company's time zone; relative dates
("in the last 90 days") count back from ``today``, also local.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from rules.conditions import Context, Problem, compile_condition, explain, validate
from rules.facts import Moment, OrderFacts

USE = "segments"


@dataclass(frozen=True, slots=True)
class CustomerFacts:
    id: str | None = None
    tags: frozenset[str] = frozenset()
    orders_count: int = 0
    lifetime_value_minor: int = 0
    first_order_date: date | None = None  # in the company's zone; None: never ordered
    last_order_date: date | None = None
    channels: frozenset[str] = frozenset()
    stores: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    email_consent: bool = False
    sms_consent: bool = False
    currency: str = "EUR"


# Segments test no order and no moment (their fields are refused): these only fill the context.
_NO_ORDER = OrderFacts(lines=())
_NO_MOMENT = Moment(datetime(2000, 1, 1, tzinfo=UTC), "UTC")


def validate_segment(condition: Any, path: str = "condition") -> list[Problem]:
    """Every problem of a segment's condition; ``None`` (no condition: every customer) has none."""
    if condition is None:
        return []
    return validate(condition, path, use=USE)


def compile_segment(condition: dict[str, Any] | None) -> Callable[[CustomerFacts, date], bool]:
    """A valid condition as a test of (a customer's facts, today's date in the company's zone)."""
    test = compile_condition(condition)

    def member(facts: CustomerFacts, today: date) -> bool:
        return test(Context(_NO_ORDER, _NO_MOMENT, facts, today))
    return member


def explain_segment(condition: dict[str, Any] | None, facts: CustomerFacts, today: date) -> list[str]:
    """Why the customer is in the segment or not, one line per condition that decided it."""
    if condition is None:
        return ["no conditions: every customer is in it"]
    return explain(condition, Context(_NO_ORDER, _NO_MOMENT, facts, today))
