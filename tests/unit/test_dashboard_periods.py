"""The dashboard's periods: which local days each covers and which days it is compared with, a
month against a shorter one, weeks from Monday, days of a DST change, and refused ranges."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from core.problems import ProblemError
from dashboard.periods import MAX_RANGE_DAYS, Period, resolve
from orders.figures import day_bounds, local_today


def days(period: Period) -> tuple[date, date, date, date]:
    return period.first, period.last, period.previous_first, period.previous_last


def test_today_is_compared_with_the_same_weekday_last_week() -> None:
    wednesday = date(2026, 11, 4)
    period = resolve("today", "", "", wednesday)
    assert days(period) == (wednesday, wednesday, date(2026, 10, 28), date(2026, 10, 28))
    assert period.hourly and period.previous_first.weekday() == wednesday.weekday()
    assert resolve("", "", "", wednesday) == period  # today unless asked otherwise
    assert "Wed 28 Oct" in period.previous_label


@pytest.mark.parametrize(("current", "monday"), [
    (date(2026, 11, 2), date(2026, 11, 2)),  # a Monday: a week of one day
    (date(2026, 11, 8), date(2026, 11, 2)),  # a Sunday: the whole week
    (date(2027, 1, 1), date(2026, 12, 28)),  # a week across the new year
])
def test_this_week_runs_from_monday_and_is_compared_with_the_same_days_before(current: date, monday: date) -> None:
    period = resolve("week", "", "", current)
    assert days(period) == (monday, current, monday - timedelta(days=7), current - timedelta(days=7))
    assert period.first.weekday() == 0 and not period.hourly
    assert len(period.days) == len(period.previous_days)


@pytest.mark.parametrize(("current", "previous"), [
    (date(2026, 3, 31), (date(2026, 2, 1), date(2026, 2, 28))),  # clamped to February's length
    (date(2028, 3, 30), (date(2028, 2, 1), date(2028, 2, 29))),  # a leap year
    (date(2026, 1, 15), (date(2025, 12, 1), date(2025, 12, 15))),  # across the new year
    (date(2026, 5, 31), (date(2026, 4, 1), date(2026, 4, 30))),
    (date(2026, 7, 1), (date(2026, 6, 1), date(2026, 6, 1))),
])
def test_this_month_is_compared_with_the_same_days_of_the_month_before(current: date,
                                                                       previous: tuple[date, date]) -> None:
    period = resolve("month", "", "", current)
    assert (period.first, period.last) == (current.replace(day=1), current)
    assert (period.previous_first, period.previous_last) == previous


def test_a_range_is_compared_with_the_range_of_equal_length_just_before() -> None:
    period = resolve("range", "2026-10-10", "2026-10-19", date(2026, 11, 4))
    assert days(period) == (date(2026, 10, 10), date(2026, 10, 19), date(2026, 9, 30), date(2026, 10, 9))
    assert len(period.days) == len(period.previous_days) == 10
    assert period.query() == {"period": "range", "from": "2026-10-10", "to": "2026-10-19"}
    one = resolve("range", "2026-11-04", "2026-11-04", date(2026, 11, 4))
    assert days(one) == (date(2026, 11, 4), date(2026, 11, 4), date(2026, 11, 3), date(2026, 11, 3))


def problems(kind: str, start: str, end: str) -> dict[str, str]:
    with pytest.raises(ProblemError) as refused:
        resolve(kind, start, end, date(2026, 11, 4))
    assert refused.value.status == 422
    return {e.field: e.message for e in refused.value.errors}


def test_bad_periods_are_refused_in_plain_words_every_problem_at_once() -> None:
    assert problems("year", "", "") == {"period": "Unknown period 'year': today, week, month or range."}
    assert set(problems("range", "", "")) == {"from", "to"}
    both = problems("range", "2026-02-30", "yesterday")
    assert "'2026-02-30' is not a date" in both["from"] and "'yesterday' is not a date" in both["to"]
    assert "YYYY-MM-DD" in both["from"]
    assert "swap" in problems("range", "2026-10-10", "2026-10-01")["to"]
    too_long = problems("range", "2025-01-01", "2026-10-01")
    assert str(MAX_RANGE_DAYS) in too_long["to"]
    assert "after today" in problems("range", "2026-11-01", "2026-11-05")["to"]
    assert "2000-01-01" in problems("range", "0001-01-01", "0001-01-02")["from"]
    assert "not a date" in problems("range", "2026-W45-1", "2026-11-04")["from"]  # ISO weeks are not asked for
    assert resolve("range", "2025-10-01", "2026-11-04", date(2026, 11, 4)).kind == "range"  # 400 days fit


def bounds(period: Period, timezone: str) -> tuple[datetime, datetime]:
    """The instants a period's local days begin and end, as the figures read them."""
    return day_bounds(timezone, period.first)[0], day_bounds(timezone, period.last)[1]


def test_days_of_a_dst_change_are_local_days_of_23_and_25_hours() -> None:
    spring = resolve("range", "2026-03-29", "2026-03-29", date(2026, 11, 4))
    start, end = bounds(spring, "Europe/Paris")
    assert start == datetime(2026, 3, 28, 23, 0, tzinfo=UTC) and end - start == timedelta(hours=23)
    autumn = resolve("range", "2026-10-25", "2026-10-25", date(2026, 11, 4))
    start, end = bounds(autumn, "Europe/Paris")
    assert start == datetime(2026, 10, 24, 22, 0, tzinfo=UTC) and end - start == timedelta(hours=25)
    week = resolve("week", "", "", date(2026, 3, 29))  # Monday 23 to Sunday 29 March
    start, end = bounds(week, "Europe/Paris")
    assert end - start == timedelta(days=7, hours=-1)


def test_today_is_the_companys_local_day() -> None:
    late_in_utc = datetime(2026, 11, 4, 23, 30, tzinfo=UTC)
    assert local_today("Europe/Paris", late_in_utc) == date(2026, 11, 5)
    assert local_today("America/New_York", late_in_utc) == date(2026, 11, 4)
    assert local_today("Pacific/Kiritimati", late_in_utc) == date(2026, 11, 5)
