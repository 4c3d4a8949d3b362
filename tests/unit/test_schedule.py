"""Which rule version is in force when, and wall-clock times in a tenant's time zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time

import pytest

from rules.schedule import LocalTimeError, local_to_utc, status, upcoming, version_at


@dataclass(frozen=True)
class Version:
    number: int
    effective_from: datetime
    effective_to: datetime | None = None
    cancelled_at: datetime | None = None


def at(day: str, hour: int = 0) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


EVERYDAY = Version(1, at("2026-01-01"))
BLACK_FRIDAY = Version(2, at("2026-11-27"), at("2026-11-30"))


def test_nothing_is_in_force_before_the_first_version() -> None:
    assert version_at([EVERYDAY, BLACK_FRIDAY], at("2025-12-31", 23)) is None
    assert version_at([], at("2026-06-01")) is None


def test_a_version_with_an_end_overlays_the_open_ended_one_and_hands_back() -> None:
    versions = [BLACK_FRIDAY, EVERYDAY]
    assert version_at(versions, at("2026-01-01")) is EVERYDAY  # the start is inclusive
    assert version_at(versions, at("2026-11-26", 23)) is EVERYDAY
    assert version_at(versions, at("2026-11-27")) is BLACK_FRIDAY
    assert version_at(versions, at("2026-11-29", 23)) is BLACK_FRIDAY
    assert version_at(versions, at("2026-11-30")) is EVERYDAY  # the end is exclusive
    assert version_at(versions, at("2027-06-01")) is EVERYDAY


def test_the_newest_version_covering_the_time_wins() -> None:
    summer = Version(3, at("2026-06-01"))  # published after Black Friday, open-ended
    versions = [EVERYDAY, BLACK_FRIDAY, summer]
    assert version_at(versions, at("2026-05-31", 23)) is EVERYDAY
    assert version_at(versions, at("2026-11-28")) is summer  # it outranks the older Black Friday version
    late_friday = Version(4, at("2026-11-27"), at("2026-11-30"))
    assert version_at([*versions, late_friday], at("2026-11-28")) is late_friday
    assert version_at([*versions, late_friday], at("2026-11-30")) is summer


def test_withdrawn_versions_are_ignored() -> None:
    withdrawn = Version(2, at("2026-11-27"), at("2026-11-30"), cancelled_at=at("2026-11-01"))
    assert version_at([EVERYDAY, withdrawn], at("2026-11-28")) is EVERYDAY
    assert version_at([Version(1, at("2026-01-01"), cancelled_at=at("2026-01-02"))], at("2026-06-01")) is None


def test_status() -> None:
    now = at("2026-11-28")
    versions = [EVERYDAY, BLACK_FRIDAY, Version(3, at("2026-12-01")), Version(4, at("2026-12-24"),
                                                                             cancelled_at=at("2026-11-20"))]
    # Everyday is overlaid by Black Friday now, and has its last day on 30 November before version 3.
    assert [status(v, versions, now) for v in versions] == ["returns later", "in force", "scheduled", "withdrawn"]
    later = at("2026-12-02")
    assert [status(v, versions, later) for v in versions] == ["past", "past", "in force", "withdrawn"]
    assert status(EVERYDAY, versions, at("2025-06-01")) == "scheduled"


def test_an_overlaid_version_returns_later() -> None:
    versions = [EVERYDAY, BLACK_FRIDAY]
    assert [status(v, versions, at("2026-11-28")) for v in versions] == ["returns later", "in force"]
    assert [status(v, versions, at("2026-12-01")) for v in versions] == ["in force", "past"]


def test_a_scheduled_version_covered_by_a_newer_one_never_applies() -> None:
    october = Version(2, at("2026-10-01"))
    now_open_ended = Version(3, at("2026-06-01"))  # published later, no end: it outranks October for good
    versions = [EVERYDAY, october, now_open_ended]
    assert status(october, versions, at("2026-06-02")) == "overridden"
    assert status(now_open_ended, versions, at("2026-06-02")) == "in force"
    ends_first = Version(3, at("2026-06-01"), at("2026-11-01"))  # ends after October starts: October applies then
    assert status(october, [EVERYDAY, october, ends_first], at("2026-06-02")) == "scheduled"


def periods(versions: list[Version], now: datetime) -> list[tuple[datetime, datetime | None, int | None]]:
    return [(p.start, p.end, p.version.number if p.version else None) for p in upcoming(versions, now)]


def test_upcoming_periods() -> None:
    now = at("2026-11-01")
    assert periods([EVERYDAY, BLACK_FRIDAY], now) == [
        (now, at("2026-11-27"), 1), (at("2026-11-27"), at("2026-11-30"), 2), (at("2026-11-30"), None, 1)]
    assert periods([EVERYDAY, BLACK_FRIDAY], at("2026-11-28")) == [
        (at("2026-11-28"), at("2026-11-30"), 2), (at("2026-11-30"), None, 1)]
    assert periods([EVERYDAY, BLACK_FRIDAY], at("2026-12-01")) == [(at("2026-12-01"), None, 1)]


def test_upcoming_before_any_version_and_with_withdrawn_ones() -> None:
    now = at("2025-12-01")
    assert periods([EVERYDAY], now) == [(now, at("2026-01-01"), None), (at("2026-01-01"), None, 1)]
    withdrawn = Version(2, at("2026-11-27"), at("2026-11-30"), cancelled_at=at("2026-11-01"))
    assert periods([EVERYDAY, withdrawn], at("2026-11-02")) == [(at("2026-11-02"), None, 1)]
    assert periods([], now) == [(now, None, None)]


def test_upcoming_merges_periods_of_the_same_version() -> None:
    now = at("2026-11-01")
    newer = Version(3, at("2026-11-15"))  # outranks Black Friday, so its dates change nothing
    assert periods([EVERYDAY, BLACK_FRIDAY, newer], now) == [(now, at("2026-11-15"), 1), (at("2026-11-15"), None, 3)]


def test_upcoming_is_limited() -> None:
    weekends = [Version(i + 2, at(f"2027-01-{2 * i + 1:02d}"), at(f"2027-01-{2 * i + 2:02d}")) for i in range(10)]
    everything = upcoming([EVERYDAY, *weekends], at("2026-12-01"), limit=50)
    assert len(everything) == 21  # until the first weekend, then each weekend and the weekday after it
    assert everything[-1].end is None and everything[-1].version is EVERYDAY
    assert upcoming([EVERYDAY, *weekends], at("2026-12-01")) == everything[:20]
    assert upcoming([EVERYDAY, *weekends], at("2026-12-01"), limit=5) == everything[:5]


@pytest.mark.parametrize(("day", "wall", "utc"), [
    (date(2026, 10, 1), time(0, 0), datetime(2026, 9, 30, 22, 0, tzinfo=UTC)),  # summer time, UTC+2
    (date(2026, 12, 1), time(0, 0), datetime(2026, 11, 30, 23, 0, tzinfo=UTC)),  # winter time, UTC+1
    (date(2026, 3, 29), time(1, 59), datetime(2026, 3, 29, 0, 59, tzinfo=UTC)),  # just before the change
    (date(2026, 3, 29), time(3, 0), datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),  # just after it
    (date(2026, 10, 25), time(2, 30), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),  # twice: the first one
    (date(2026, 10, 25), time(3, 30), datetime(2026, 10, 25, 2, 30, tzinfo=UTC)),
])
def test_local_to_utc_in_paris(day: date, wall: time, utc: datetime) -> None:
    assert local_to_utc(day, wall, "Europe/Paris") == utc


def test_a_skipped_local_time_is_refused() -> None:
    with pytest.raises(LocalTimeError, match="2026-03-29 02:30 does not exist in Europe/Paris"):
        local_to_utc(date(2026, 3, 29), time(2, 30), "Europe/Paris")
    with pytest.raises(LocalTimeError):
        local_to_utc(date(2026, 3, 8), time(2, 15), "America/New_York")
    assert issubclass(LocalTimeError, ValueError)


def test_local_to_utc_elsewhere() -> None:
    assert local_to_utc(date(2026, 7, 1), time(9, 0), "America/New_York") == datetime(2026, 7, 1, 13, 0, tzinfo=UTC)
    assert local_to_utc(date(2026, 7, 1), time(9, 0), "UTC") == datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
    assert local_to_utc(date(2026, 1, 1), time(0, 0), "Asia/Kolkata") == datetime(2025, 12, 31, 18, 30, tzinfo=UTC)
