"""The deadline a pickup mail gives is one the customer can meet: the store's closing time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import msgspec

from inventory.locations import pickup_deadline
from inventory.schemas import LocationOut

PARIS = ZoneInfo("Europe/Paris")
HOURS = {day: [["10:00", "13:00"], ["14:00", "19:30"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat")}


def _store(hours: dict[str, list[list[str]]]) -> LocationOut:
    return msgspec.convert({"id": str(uuid.uuid4()), "code": "ST-OPERA", "name": "Opéra", "kind": "store",
                            "country": "FR", "timezone": "Europe/Paris", "opening_hours": hours,
                            "created_at": "2026-12-01T00:00:00Z"}, LocationOut, strict=False)


def test_the_window_ends_at_the_stores_closing_time_that_day() -> None:
    saturday_late = datetime(2026, 12, 12, 22, 2, tzinfo=UTC)  # 23:02 in Paris, the store shut at 19:30
    assert pickup_deadline(_store(HOURS), saturday_late, "Europe/Paris") == datetime(2026, 12, 12, 19, 30,
                                                                                     tzinfo=PARIS)


def test_a_window_ending_on_a_closed_day_runs_to_the_next_open_days_closing() -> None:
    sunday = datetime(2026, 12, 13, 9, 0, tzinfo=UTC)
    assert pickup_deadline(_store(HOURS), sunday, "Europe/Paris") == datetime(2026, 12, 14, 19, 30, tzinfo=PARIS)


def test_without_hours_the_window_runs_to_the_end_of_its_day() -> None:
    at = datetime(2026, 12, 12, 9, 0, tzinfo=UTC)
    assert pickup_deadline(_store({}), at, "Europe/Paris") == datetime(2026, 12, 12, 23, 59, tzinfo=PARIS)
    assert pickup_deadline(None, at, "America/New_York") == datetime(2026, 12, 12, 23, 59,
                                                                     tzinfo=ZoneInfo("America/New_York"))
