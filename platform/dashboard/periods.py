"""The dashboard's periods, in local days of the company's time zone, and the period each is
compared with: today with the same weekday last week, this week (Monday to today) with the same
days of the week before, this month (the 1st to today) with the same days of the month before
(clamped to its length), and a chosen range with the range of equal length just before it.

Pure: the caller gives today's local date; nothing here reads the clock or the database.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from core.problems import ProblemError, invalid

KINDS = ("today", "week", "month", "range")
MAX_RANGE_DAYS = 400
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
EARLIEST = date(2000, 1, 1)  # before that, a range is a typo, and its previous range could leave the calendar


@dataclass(frozen=True)
class Period:
    kind: str
    first: date  # local days, both included
    last: date
    previous_first: date
    previous_last: date

    @property
    def hourly(self) -> bool:
        """Today's charts go by the hour, every other period's by the day."""
        return self.kind == "today"

    @property
    def days(self) -> list[date]:
        return _days(self.first, self.last)

    @property
    def previous_days(self) -> list[date]:
        return _days(self.previous_first, self.previous_last)

    @property
    def label(self) -> str:
        return {"today": "Today", "week": "This week", "month": "This month"}.get(
            self.kind, f"{self.first.isoformat()} to {self.last.isoformat()}")

    @property
    def previous_label(self) -> str:
        """What the figures are compared with, in words ("vs Tuesday 3 Nov")."""
        if self.kind == "today":
            return f"same weekday last week ({_day(self.previous_first)})"
        return f"{_day(self.previous_first)} to {_day(self.previous_last)}"

    def previous_until(self, now: datetime, timezone: str) -> datetime | None:
        """Where the previous period's figures stop when this one is still running: its last day
        at the time it is now, so that a morning is compared with a morning (None: whole days)."""
        zone = ZoneInfo(timezone)
        here = now.astimezone(zone)
        if self.last < here.date():
            return None
        return datetime.combine(self.previous_last, here.time(), zone).astimezone(UTC)

    def query(self) -> dict[str, str]:
        """The period as the dashboard's query parameters (links, the live block, CSV downloads)."""
        if self.kind == "range":
            return {"period": "range", "from": self.first.isoformat(), "to": self.last.isoformat()}
        return {"period": self.kind}


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _day(value: date) -> str:
    return f"{calendar.day_abbr[value.weekday()]} {value.day} {calendar.month_abbr[value.month]}"


def today(current: date) -> Period:
    previous = current - timedelta(days=7)
    return Period("today", current, current, previous, previous)


def week(current: date) -> Period:
    monday = current - timedelta(days=current.weekday())
    return Period("week", monday, current, monday - timedelta(days=7), current - timedelta(days=7))


def month(current: date) -> Period:
    """The 1st to today, against the 1st of the month before to the same day, or that month's
    last when it is shorter (31 March: 1 to 28 or 29 February)."""
    before = (current.replace(day=1) - timedelta(days=1)).replace(day=1)
    last = before.replace(day=min(current.day, calendar.monthrange(before.year, before.month)[1]))
    return Period("month", current.replace(day=1), current, before, last)


def chosen(first: date, last: date) -> Period:
    length = (last - first).days + 1
    return Period("range", first, last, first - timedelta(days=length), first - timedelta(days=1))


def resolve(kind: str, start: str, end: str, current: date) -> Period:
    """The period asked for by the query (``period``, ``from``, ``to``), every problem at once."""
    kind = (kind or "today").strip()
    if kind == "today":
        return today(current)
    if kind == "week":
        return week(current)
    if kind == "month":
        return month(current)
    if kind != "range":
        raise _refused({"period": f"Unknown period {kind[:20]!r}: today, week, month or range."})
    errors: dict[str, str] = {}
    first, last = _date(start, "from", "start", errors), _date(end, "to", "end", errors)
    if first is not None and last is not None:
        if first > last:
            errors["to"] = "The end comes before the start: swap the two dates."
        elif (last - first).days + 1 > MAX_RANGE_DAYS:
            errors["to"] = f"A range is {MAX_RANGE_DAYS} days at most: choose a shorter one."
        elif last > current:
            errors["to"] = f"The range ends after today ({current.isoformat()}): choose today at the latest."
    if errors:
        raise _refused(errors)
    assert first is not None and last is not None
    return chosen(first, last)


def _refused(errors: dict[str, str]) -> ProblemError:
    """Every problem in the detail too: a page that shows only the detail says it all."""
    return invalid(errors, "That period can't be shown. " + " ".join(errors.values()))


def _date(text: str, field: str, what: str, errors: dict[str, str]) -> date | None:
    text = (text or "").strip()
    if not text:
        errors[field] = f"Choose the {what} date of the range."
        return None
    try:
        value = date.fromisoformat(text) if _ISO_DATE.fullmatch(text) else None
    except ValueError:  # 2026-02-30
        value = None
    if value is None:
        errors[field] = f"{text[:20]!r} is not a date: write it as YYYY-MM-DD."
        return None
    if value < EARLIEST:
        errors[field] = f"Choose a {what} date from {EARLIEST.isoformat()} on."
        return None
    return value


def problem_messages(problem: ProblemError) -> dict[str, str]:
    """A refused period's problems by field, for the page's form."""
    return {e.field: e.message for e in problem.errors} or {"period": problem.detail}
