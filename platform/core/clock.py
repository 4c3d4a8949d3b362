"""The one clock: every read of the current time goes through ``now()``.

Tests (and the simulator) set it with ``frozen_at`` so that schedules, such as a routing
version that takes effect at midnight on 1 October in the tenant's time zone, can be checked
without waiting for the date.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

_frozen: datetime | None = None


def now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return _frozen if _frozen is not None else datetime.now(UTC)


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
