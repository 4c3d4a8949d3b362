"""Locations: warehouses, stores and marketplaces' warehouses, with what each can do."""

from __future__ import annotations

import re
import uuid
import zoneinfo
from collections.abc import Collection
from datetime import datetime, time, timedelta
from typing import Any

import msgspec
import pycountry
from sqlalchemy import case, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core import validation
from core.auth import Principal
from core.problems import ProblemError, invalid, not_found
from inventory.models import Location
from inventory.schemas import LocationIn, LocationOut

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def check_location(data: LocationIn) -> dict[str, str]:
    errors: dict[str, str] = {}
    if pycountry.countries.get(alpha_2=data.country.upper()) is None:
        errors["country"] = f"Unknown country {data.country!r}: use a two-letter ISO code."
    if problem := validation.check_timezone(data.timezone):  # "Europe" is a folder, not a zone
        errors["timezone"] = problem
    if (data.latitude is None) != (data.longitude is None):
        errors["latitude"] = "Give both latitude and longitude, or neither."
    for day, ranges in data.opening_hours.items():
        if day not in DAYS:
            errors["opening_hours"] = f"Unknown day {day!r}: use {', '.join(DAYS)}."
            continue
        for window in ranges:
            if len(window) != 2 or not all(_HHMM.match(t) for t in window) or window[0] >= window[1]:
                errors["opening_hours"] = f"{day}: each opening window is [\"HH:MM\", \"HH:MM\"], opening first."
    return errors


def is_open(location: Location | LocationOut, at: datetime) -> bool | None:
    """Whether the location is open at ``at`` in its own time zone; None without hours."""
    if not location.opening_hours:
        return None
    local = at.astimezone(zoneinfo.ZoneInfo(location.timezone))
    now = local.strftime("%H:%M")
    return any(start <= now < end for start, end in location.opening_hours.get(DAYS[local.weekday()], []))


def opens_today(location: Location | LocationOut, at: datetime) -> bool:
    """Open at some point later today (local time), or open hours unknown."""
    if not location.opening_hours:
        return True
    local = at.astimezone(zoneinfo.ZoneInfo(location.timezone))
    now = local.strftime("%H:%M")
    return any(now < end for _, end in location.opening_hours.get(DAYS[local.weekday()], []))


def pickup_deadline(location: Location | LocationOut | None, at: datetime, timezone: str) -> datetime:
    """When a customer can last collect at ``location`` a parcel given a window ending at ``at``:
    the store's closing time that day, or of its next open day when it is closed then; the end
    of that day (in ``timezone``, the company's) when its hours are unknown. A deadline at 23:02
    at a store that shuts at 19:30 would tell a customer they have hours they don't."""
    zone = zoneinfo.ZoneInfo(location.timezone if location is not None else timezone)
    local = at.astimezone(zone)
    hours = (location.opening_hours or {}) if location is not None else {}
    for offset in range(8 if hours else 0):
        day = (local + timedelta(days=offset)).date()
        closing = max((end for _, end in hours.get(DAYS[day.weekday()], [])), default=None)
        if closing:
            hour, minute = (int(part) for part in closing.split(":"))
            return datetime.combine(day, time(hour, minute), tzinfo=zone)
    return datetime.combine(local.date(), time(23, 59), tzinfo=zone)


def to_out(location: Location) -> LocationOut:
    fields = {f: getattr(location, f) for f in LocationIn.__struct_fields__}
    return LocationOut(id=location.id, created_at=location.created_at, **fields)


# A location as other domains read it: every field of LocationOut, no ORM object.
_COLUMNS = [getattr(Location, name) for name in LocationOut.__struct_fields__]


async def active(session: AsyncSession, tenant_id: uuid.UUID) -> list[LocationOut]:
    """The company's active locations, by code."""
    rows = await session.execute(select(*_COLUMNS).where(Location.tenant_id == tenant_id,
                                                         Location.status == "active").order_by(Location.code))
    return [LocationOut(**row._mapping) for row in rows]


async def by_codes(session: AsyncSession, tenant_id: uuid.UUID, codes: Collection[str]) -> dict[str, LocationOut]:
    """The locations (active or paused) with these codes, by code; unknown codes are left out."""
    if not codes:
        return {}
    rows = await session.execute(select(*_COLUMNS).where(Location.tenant_id == tenant_id,
                                                         Location.code.in_(list(codes))))
    return {row.code: LocationOut(**row._mapping) for row in rows}


async def promises(session: AsyncSession, tenant_id: uuid.UUID) -> dict[str, int]:
    """Every location's promise (active or paused, for what is already there): code -> hours to
    ship or have ready for pickup."""
    rows = await session.execute(select(Location.code, Location.promise_hours).where(Location.tenant_id == tenant_id))
    return {code: hours for code, hours in rows}


async def kinds(session: AsyncSession, tenant_id: uuid.UUID) -> dict[str, str]:
    """Every location's kind: code -> warehouse, store or marketplace."""
    rows = await session.execute(select(Location.code, Location.kind).where(Location.tenant_id == tenant_id))
    return {code: kind for code, kind in rows}


async def list_locations(session: AsyncSession, principal: Principal, *, status: str | None = None) -> list[Location]:
    # Warehouses first, then stores, then marketplaces; by code within each.
    kind_order = case({"warehouse": 0, "store": 1}, value=Location.kind, else_=2)
    stmt = select(Location).where(Location.tenant_id == principal.tenant_id).order_by(kind_order, Location.code)
    if status:
        stmt = stmt.where(Location.status == status)
    return list(await session.scalars(stmt))


async def get_location(session: AsyncSession, principal: Principal, location_id: uuid.UUID) -> Location:
    location = await session.scalar(
        select(Location).where(Location.tenant_id == principal.tenant_id, Location.id == location_id)
    )
    if location is None:
        raise not_found("Location")
    return location


async def location_by_code(session: AsyncSession, principal: Principal, code: str) -> Location:
    location = await session.scalar(select(Location).where(Location.tenant_id == principal.tenant_id,
                                                           Location.code == code))
    if location is None:
        raise not_found(f"Location {code!r}")
    return location


async def save_location(session: AsyncSession, principal: Principal, data: LocationIn,
                        location: Location | None = None) -> Location:
    if errors := check_location(data):
        raise invalid(errors)
    values: dict[str, Any] = msgspec.structs.asdict(data)
    values["country"] = data.country.upper()
    if location is None:
        location = Location(tenant_id=principal.tenant_id, **values)
        session.add(location)
    else:
        for key, value in values.items():
            setattr(location, key, value)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise invalid({"code": f"A location with code {data.code!r} already exists."}) from None
    return location


async def set_status(session: AsyncSession, principal: Principal, location_id: uuid.UUID, status: str) -> Location:
    location = await get_location(session, principal, location_id)
    if status not in ("active", "paused"):
        raise ProblemError(422, "Invalid status", "Status is active or paused.")
    location.status = status
    return location
