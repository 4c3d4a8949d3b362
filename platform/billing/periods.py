"""Billing periods are calendar months in the company's time zone: each starts at local midnight
on the 1st (the UTC instant moves with daylight saving time, which zoneinfo knows), and a fee
for part of a month is its share by the second.

Every boundary between two periods is a local midnight (a trial's end, an early close too): a
location's active day is one usage fact, so a boundary inside a day would split that day's work
between two periods and lose what comes after it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

MICROSECOND = timedelta(microseconds=1)


def _local_first(year: int, month: int, zone: ZoneInfo) -> datetime:
    # A midnight that a clock change skips (a few zones change at 00:00) is read with the offset
    # before the change, which is the instant the day begins.
    return datetime(year, month, 1, tzinfo=zone).astimezone(UTC)


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def day_start(at: datetime, tz: str) -> datetime:
    """The start (UTC) of the local day that contains ``at``."""
    zone = ZoneInfo(tz)
    return _local_midnight(at.astimezone(zone).date(), zone)


def midnight_on_or_after(at: datetime, tz: str) -> datetime:
    """``at`` rounded up to a local midnight: itself if it is one, else the start of the next day."""
    start = day_start(at, tz)
    if start >= at:
        return start
    zone = ZoneInfo(tz)
    return _local_midnight(at.astimezone(zone).date() + timedelta(days=1), zone)


def trial_end(start: datetime, days: int, tz: str) -> datetime:
    """The end of a trial of ``days`` days from ``start``: the local midnight after the same time of
    day ``days`` later (days of the calendar, whatever the clock changes in between)."""
    zone = ZoneInfo(tz)
    return midnight_on_or_after(start.astimezone(zone) + timedelta(days=days), tz)


def month_start(at: datetime, tz: str) -> datetime:
    """The start (UTC) of the local calendar month that contains ``at``."""
    zone = ZoneInfo(tz)
    local = at.astimezone(zone)
    return _local_first(local.year, local.month, zone)


def next_month_start(at: datetime, tz: str) -> datetime:
    """The start (UTC) of the local calendar month after the one that contains ``at``."""
    zone = ZoneInfo(tz)
    local = at.astimezone(zone)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return _local_first(year, month, zone)


def month_length(at: datetime, tz: str) -> timedelta:
    """The length of the local month that contains ``at`` (October in Paris: 31 days and an hour)."""
    start = month_start(at, tz)
    return next_month_start(start, tz) - start


def share(amount_minor: int, part: timedelta, whole: timedelta) -> int:
    """``amount_minor`` * part / whole, rounded half up, in integers."""
    if whole <= timedelta(0):
        raise ValueError("the whole must be a positive duration")
    numerator = amount_minor * (part // MICROSECOND)
    denominator = whole // MICROSECOND
    return (2 * numerator + denominator) // (2 * denominator)
