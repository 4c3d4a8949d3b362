"""The one clock: every read of the current time goes through ``now()``.

Tests (and the simulator) set it with ``frozen_at`` so that schedules, such as a routing
version that takes effect at midnight on 1 October in the tenant's time zone, can be checked
without waiting for the date.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

_frozen: datetime | None = None
# End-to-end tests move the clock of running servers and workers: ``OMS_CLOCK_SHIFT_FILE`` names
# a file holding seconds to add to the real time. Unset (as in production), it costs nothing.
_SHIFT_FILE = os.environ.get("OMS_CLOCK_SHIFT_FILE")
_shift: tuple[float, timedelta] = (-1.0, timedelta())


def _shifted() -> timedelta:
    global _shift
    assert _SHIFT_FILE is not None
    try:
        path = Path(_SHIFT_FILE)
        changed = path.stat().st_mtime
        if changed != _shift[0]:
            _shift = (changed, timedelta(seconds=float(path.read_text().strip() or 0)))
    except (OSError, ValueError):
        return timedelta()
    return _shift[1]


def now() -> datetime:
    """The current time, timezone-aware in UTC."""
    if _frozen is not None:
        return _frozen
    if _SHIFT_FILE:
        return datetime.now(UTC) + _shifted()
    return datetime.now(UTC)


@contextmanager
def frozen_at(at: datetime) -> Iterator[None]:
    """Hold the clock at ``at`` (aware) for the duration of the block."""
    global _frozen
    if at.tzinfo is None:
        raise ValueError("the clock is set with an aware datetime")
    previous, _frozen = _frozen, at.astimezone(UTC)
    try:
        yield
    finally:
        _frozen = previous
