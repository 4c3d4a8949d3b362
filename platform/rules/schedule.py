"""Which version is in force when, and local dates and times in the tenant's time zone.

Versions are looked up by time, never switched by a job: the version in force at T is the
newest (highest number) published version whose window [effective_from, effective_to)
contains T and that was not withdrawn. A version with an end date therefore overlays the
open-ended one before it and hands back when it ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Generic, Protocol, TypeVar
from zoneinfo import ZoneInfo


class Windowed(Protocol):
    @property
    def number(self) -> int: ...
    @property
    def effective_from(self) -> datetime: ...
    @property
    def effective_to(self) -> datetime | None: ...
    @property
    def cancelled_at(self) -> datetime | None: ...


V = TypeVar("V", bound=Windowed)


def covers(version: Windowed, at: datetime) -> bool:
    return (version.cancelled_at is None and version.effective_from <= at
            and (version.effective_to is None or at < version.effective_to))


def version_at(versions: list[V], at: datetime) -> V | None:
    best: V | None = None
    for version in versions:
        if covers(version, at) and (best is None or version.number > best.number):
            best = version
    return best


def applies_after(version: Windowed, versions: list[V], now: datetime) -> bool:
    """Whether ``version`` will be the one in force at some time after ``now``: its window
    may be covered for good by a newer version (then it never applies)."""
    if version.cancelled_at is not None or (version.effective_to is not None and version.effective_to <= now):
        return False
    start, end = max(version.effective_from, now), version.effective_to
    # Who is in force only changes at a window's edge, so the edges inside this window are enough.
    instants = {start} | {t for v in versions for t in (v.effective_from, v.effective_to)
                          if t is not None and start < t and (end is None or t < end)}
    for instant in instants:
        winner = version_at(versions, instant)
        if winner is not None and winner.number == version.number:
            return True
    return False


def status(version: Windowed, versions: list[V], now: datetime) -> str:
    """in force; scheduled (takes effect later); returns later (overlaid now by a version with an
    end date); overridden (a newer version covers its whole window: it will never apply);
    withdrawn; or past."""
    if version.cancelled_at is not None:
        return "withdrawn"
    in_force = version_at(versions, now)
    if in_force is not None and in_force.number == version.number:
        return "in force"
    if applies_after(version, versions, now):
        return "scheduled" if version.effective_from > now else "returns later"
    if version.effective_from > now:
        return "overridden"
    return "past"


@dataclass(frozen=True)
class Period(Generic[V]):
    start: datetime
    end: datetime | None
    version: V | None


def upcoming(versions: list[V], now: datetime, limit: int = 20) -> list[Period[V]]:
    """From now on, which version applies when: one period per change."""
    edges = sorted({now} | {t for v in versions if v.cancelled_at is None
                            for t in (v.effective_from, v.effective_to) if t is not None and t > now})
    periods: list[Period[V]] = []
    for start, end in zip(edges, [*edges[1:], None], strict=True):
        version = version_at(versions, start)
        if periods and (periods[-1].version is version):
            periods[-1] = Period(periods[-1].start, end, version)
        else:
            periods.append(Period(start, end, version))
    return periods[:limit]


class LocalTimeError(ValueError):
    pass


def local_to_utc(day: date, at: time, timezone: str) -> datetime:
    """A wall-clock date and time in ``timezone`` as a UTC instant.

    A time skipped by a daylight-saving change (02:30 on the last Sunday of March in Paris)
    is refused; a time that happens twice (02:30 on the last Sunday of October) is the first.
    """
    zone = ZoneInfo(timezone)
    local = datetime.combine(day, at).replace(tzinfo=zone, fold=0)
    instant = local.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
        raise LocalTimeError(f"{day.isoformat()} {at.strftime('%H:%M')} does not exist in {timezone}: "
                             f"the clocks change that night")
    return instant
