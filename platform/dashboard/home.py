"""What the console's home shows, by role: the company's figures, charts and operations lists
(owners, admins and every role not named below); a store associate's location, its figures and
its queue; customer service's tasks and the day's returns.

Figures come from ``orders.figures`` (day rows kept by a worker, today's read live); this module
gathers them for a period and hands them to ``kpis`` and ``charts``, which are pure.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.numbers import format_decimal, format_percent
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock, dead_letters
from core.auth import Principal
from core.locale import format_money
from core.money import major
from core.problems import not_found
from dashboard import charts, kpis
from dashboard.charts import Chart, Item, Slot
from dashboard.periods import Period
from inventory import catalog, stock_exceptions
from inventory import locations as inventory_locations
from orders import figures, service_tasks
from support import returns

LIST_SIZE = 10
CHART_NAMES = ("orders", "sales", "channels", "locations", "rules", "stockouts")
NO_RULE = "No rule (held, backordered or entered by hand)"
UNCATEGORISED = "Uncategorised"
CHANNEL_NAMES = {"api": "API"}  # the others read as their code, capitalised


# The roles whose home is their own work; every other role's is the company's dashboard.
HOMES = {"store_associate": "store", "customer_service": "service"}


def home_of(principal: Principal) -> str:
    """Which home the principal gets: "store", "service" or "company"."""
    return HOMES.get(principal.role, "company")


class Source:
    """The figures of one period for one company, each read once and only when asked for: the
    home reads them all, a chart's CSV only its own."""

    def __init__(self, session: AsyncSession, principal: Principal, period: Period, now: datetime) -> None:
        self.session = session
        self.principal = principal
        self.period = period
        self.now = now
        self._cache: dict[str, Any] = {}

    @property
    def tenant_id(self) -> Any:
        return self.principal.tenant_id

    @property
    def timezone(self) -> str:
        return self.principal.timezone

    async def _once(self, key: str, load: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = await load()
        return self._cache[key]

    async def _both(self, key: str, read: Callable[..., Any]) -> tuple[list[Any], list[Any]]:
        """The period's rows and the previous period's, cut at the same time of its last day
        while this one is still running; each read once."""
        p, until = self.period, self.period.previous_until(self.now, self.timezone)
        rows = await self._once(key, lambda: read(self.session, self.tenant_id, self.timezone, p.first, p.last))
        previous = await self._once("previous_" + key, lambda: read(
            self.session, self.tenant_id, self.timezone, p.previous_first, p.previous_last, until=until))
        return rows, previous

    async def day_rows(self) -> tuple[list[figures.DayRow], list[figures.DayRow]]:
        return await self._both("days", figures.days)

    async def location_rows(self) -> tuple[list[figures.LocationDayRow], list[figures.LocationDayRow]]:
        return await self._both("locations", figures.location_days)

    async def hours(self) -> tuple[list[figures.HourPoint], list[figures.HourPoint]]:
        """Today's hours so far and those of the day it is compared with."""
        async def load() -> tuple[list[figures.HourPoint], list[figures.HourPoint]]:
            current = await figures.hourly(self.session, self.tenant_id, self.timezone, self.period.first)
            previous = await figures.hourly(self.session, self.tenant_id, self.timezone, self.period.previous_first)
            return current, previous
        result: tuple[list[figures.HourPoint], list[figures.HourPoint]] = await self._once("hours", load)
        return result

    async def promises(self) -> dict[str, int]:
        result: dict[str, int] = await self._once(
            "promises", lambda: inventory_locations.promises(self.session, self.tenant_id))
        return result

    async def kinds(self) -> dict[str, str]:
        result: dict[str, str] = await self._once(
            "kinds", lambda: inventory_locations.kinds(self.session, self.tenant_id))
        return result


# --- the charts ----------------------------------------------------------------------------------


def _memo(fmt: Callable[[int], str]) -> Callable[[int], str]:
    """``fmt`` remembering what it wrote: a chart repeats its figures (zeros, mostly), and each
    figure in words costs tens of microseconds of locale formatting."""
    written: dict[int, str] = {}

    def text(value: int) -> str:
        found = written.get(value)
        if found is None:
            found = written[value] = fmt(value)
        return found
    return text


def _money(principal: Principal) -> Callable[[int], str]:
    locale = locale_of(principal)
    return _memo(lambda minor: format_money(minor, principal.currency, locale))


def _count(principal: Principal) -> Callable[[int], str]:
    locale = locale_of(principal)
    return _memo(lambda value: format_decimal(value, locale=locale))


def locale_of(principal: Principal) -> Locale:
    return _parsed_locale(principal.locale)


@lru_cache(maxsize=64)
def _parsed_locale(name: str) -> Locale:
    return Locale.parse(name)


def _day_slot(day: date) -> Slot:
    return Slot(day.isoformat(), f"{day.day} {day.strftime('%b')}", day.strftime("%a %-d %b %Y"))


def _hour_slots(day: date) -> list[Slot]:
    return [Slot(f"{day.isoformat()} {h:02d}:00", f"{h:02d}:00", f"{day.strftime('%a %-d %b')}, {h:02d}:00")
            for h in range(24)]


def _daily(rows: Iterable[figures.DayRow], days: list[date], value: Callable[[figures.DayRow], int]) -> list[int]:
    sums: dict[date, int] = defaultdict(int)
    for row in rows:
        sums[row.day] += value(row)
    return [sums[day] for day in days]


async def _over_time(source: Source, name: str) -> Chart:
    """Orders ("orders") or gross sales ("sales") by hour today, by day otherwise."""
    p, principal = source.period, source.principal
    is_orders = name == "orders"
    fmt = _count(principal) if is_orders else _money(principal)
    csv_value: Callable[[int], str] = str if is_orders else (lambda minor: major(minor, principal.currency))
    what = "orders" if is_orders else f"gross sales ({principal.currency})"
    title = "Orders over time" if is_orders else "Sales over time"
    if p.hourly:
        current_hours, previous_hours = await source.hours()
        now_hour = source.now.astimezone(ZoneInfo(principal.timezone)).hour
        pick: Callable[[figures.HourPoint], int] = (
            (lambda h: h.orders) if is_orders else (lambda h: h.gross_minor))
        by_hour = {h.hour: pick(h) for h in current_hours}
        before = {h.hour: pick(h) for h in previous_hours}
        current = [by_hour.get(h, 0) for h in range(now_hour + 1)]
        previous = [before.get(h, 0) for h in range(24)]
        slots, previous_slots, slot_name = _hour_slots(p.first), _hour_slots(p.previous_first), "hour"
        current_name, previous_name = "Today", f"{p.previous_first.strftime('%A %-d %b')}"
    else:
        rows, previous_rows = await source.day_rows()
        pick_row: Callable[[figures.DayRow], int] = (
            (lambda r: r.orders) if is_orders else (lambda r: r.gross_minor))
        current = _daily(rows, p.days, pick_row)
        previous = _daily(previous_rows, p.previous_days, pick_row)
        slots, previous_slots = [_day_slot(d) for d in p.days], [_day_slot(d) for d in p.previous_days]
        slot_name, current_name, previous_name = "day", p.label, "Previous period"
    return charts.over_time(name, title, slots, current, previous_slots, previous, what=what, slot_name=slot_name,
                            current_name=current_name, previous_name=previous_name, fmt=fmt, csv_value=csv_value,
                            empty="No orders yet in this period. They show here as soon as they come in.")


def _others(what: str, fmt: Callable[[int], str]) -> Callable[[int, int], Item]:
    return lambda count, total: Item(f"Others ({count})", total, f"{count} others: {fmt(total)} {what}",
                                     ("others", str(total)))


async def _channels(source: Source) -> Chart:
    rows, _ = await source.day_rows()
    by_channel: dict[str, int] = defaultdict(int)
    for row in rows:
        by_channel[row.channel] += row.orders
    fmt = _count(source.principal)
    named = {channel: CHANNEL_NAMES.get(channel, channel.capitalize()) for channel in by_channel}
    items = [Item(named[channel], n, f"{named[channel]}: {fmt(n)} orders", (channel, str(n)))
             for channel, n in sorted(by_channel.items())]
    return charts.bars("channels", "Orders by channel", items, columns=("channel", "orders"), fmt=fmt,
                       others=_others("orders", fmt),
                       empty="No orders yet in this period: each channel's show here as they come in.")


async def _locations(source: Source, codes: frozenset[str] | None = None) -> Chart:
    rows, _ = await source.location_rows()
    done: dict[str, int] = defaultdict(int)
    for row in rows:
        if codes is None or row.location_code in codes:
            done[row.location_code] += row.done
    fmt = _count(source.principal)
    items = [Item(code, n, f"{code}: {fmt(n)} shipped or ready for pickup", (code, str(n)))
             for code, n in sorted(done.items())]
    return charts.bars("locations", "Shipments by location", items, columns=("location", "shipped or ready"),
                       fmt=fmt, others=_others("shipped or ready", fmt),
                       empty="Nothing shipped yet from the orders of this period.")


async def _rules(source: Source) -> Chart:
    rows, _ = await source.day_rows()
    by_rule: dict[str, int] = defaultdict(int)
    for row in rows:
        by_rule[row.rule] += row.orders
    fmt = _count(source.principal)
    items = [Item(rule or NO_RULE, n, f"{rule or NO_RULE}: {fmt(n)} orders", (rule, str(n)))
             for rule, n in sorted(by_rule.items())]
    locale = locale_of(source.principal)
    return charts.shares("rules", "Orders by routing rule", items, what="orders", columns=("rule", "orders"),
                         others=_others("orders", fmt),
                         locale_percent=lambda share: format_percent(round(share, 3), locale=locale,
                                                                     decimal_quantization=False),
                         empty="No orders routed yet in this period: each rule's share shows here.")


async def _stock_outs(source: Source) -> Chart:
    found = await catalog.stock_outs_by_category(source.session, source.tenant_id)
    fmt = _count(source.principal)
    items = [Item(category or UNCATEGORISED, out, f"{category or UNCATEGORISED}: {fmt(out)} of {fmt(skus)} SKUs "
                  "with nothing available", (category, str(out), str(skus))) for category, out, skus in found]
    empty = ("No SKU is out of stock: each category's stock-outs show here." if found else
             "No products yet: add your catalog and stock to see stock-outs by category.")
    return charts.bars("stockouts", "Stock-outs by category", items, columns=("category", "out of stock", "skus"),
                       fmt=fmt, others=_others("SKUs out of stock", fmt), empty=empty)


async def chart(source: Source, name: str) -> Chart:
    """One of the company's charts by name (404 for another)."""
    if name in ("orders", "sales"):
        return await _over_time(source, name)
    if name == "channels":
        return await _channels(source)
    if name == "locations":
        return await _locations(source)
    if name == "rules":
        return await _rules(source)
    if name == "stockouts":
        return await _stock_outs(source)
    raise not_found("Chart")


# --- the homes -----------------------------------------------------------------------------------


@dataclass
class CompanyHome:
    period: Period
    cards: list[kpis.Card]
    charts: list[Chart]
    late: list[figures.LateFulfilment]
    on_hold: list[figures.WaitingOrder]
    backordered: list[figures.WaitingOrder]
    exceptions: list[stock_exceptions.OpenException]
    exceptions_total: int
    stuck: int
    preparing: bool  # past days' figures are being computed for the first time
    now: figures.NowCounts


async def company(session: AsyncSession, principal: Principal, period: Period, now: datetime) -> CompanyHome:
    source = Source(session, principal, period, now)
    tid = principal.tenant_id
    ready = await figures.ensure_started(session, tid, principal.timezone)
    rows, previous_rows = await source.day_rows()
    placed, previous_placed = await source.location_rows()
    kinds = await source.kinds()
    stores = frozenset(code for code, kind in kinds.items() if kind == "store")
    promises = await source.promises()
    counts = await figures.now_counts(session, tid, promises)
    cards = kpis.company_cards(
        kpis.totals(rows), kpis.totals(previous_rows),
        (kpis.location_totals(placed), kpis.location_totals(previous_placed)),
        (kpis.location_totals(placed, stores), kpis.location_totals(previous_placed, stores)),
        counts, currency=principal.currency, locale=locale_of(principal), has_stores=bool(stores))
    exceptions, exceptions_total = await stock_exceptions.open_exceptions(session, tid, LIST_SIZE)
    return CompanyHome(
        period=period, cards=cards, charts=[await chart(source, name) for name in CHART_NAMES],
        late=await figures.late_fulfilments(session, tid, promises, limit=LIST_SIZE),
        on_hold=await figures.waiting_orders(session, tid, "on_hold", limit=LIST_SIZE),
        backordered=await figures.waiting_orders(session, tid, "backordered", limit=LIST_SIZE),
        exceptions=exceptions, exceptions_total=exceptions_total,
        stuck=await dead_letters.stuck_count(session, tid), preparing=not ready, now=counts)


@dataclass
class StoreHome:
    period: Period
    location: str  # the one shown ("" when the associate has none yet)
    locations: list[str]  # theirs, to choose from
    names: dict[str, str] = field(default_factory=dict)
    cards: list[kpis.Card] = field(default_factory=list)
    late: list[figures.LateFulfilment] = field(default_factory=list)
    preparing: bool = False


async def store(session: AsyncSession, principal: Principal, period: Period, location: str) -> StoreHome:
    """A store associate's location: its figures and what is late there. Nothing of any other
    location is read."""
    tid = principal.tenant_id
    active = {loc.code: loc.name for loc in await inventory_locations.active(session, tid)
              if principal.works_at(loc.code)}
    theirs = sorted(active)
    if location and location not in active:
        raise not_found("Location")
    code = location or (theirs[0] if theirs else "")
    home = StoreHome(period, code, theirs, active)
    if not code:
        return home
    here = frozenset({code})
    home.preparing = not await figures.ensure_started(session, tid, principal.timezone)
    current = await figures.location_days(session, tid, principal.timezone, period.first, period.last,
                                          locations=here)
    previous = await figures.location_days(session, tid, principal.timezone, period.previous_first,
                                           period.previous_last, locations=here,
                                           until=period.previous_until(clock.now(), principal.timezone))
    promises = {c: h for c, h in (await inventory_locations.promises(session, tid)).items() if c == code}
    counts = await figures.now_counts(session, tid, promises, locations=here)
    home.cards = kpis.location_cards(kpis.location_totals(current), kpis.location_totals(previous), counts,
                                     locale=locale_of(principal))
    home.late = [f for f in await figures.late_fulfilments(session, tid, promises, locations=here, limit=LIST_SIZE)
                 if f.location_code == code]
    return home


@dataclass
class ServiceHome:
    day: date
    mine: list[service_tasks.TaskRow]
    unassigned: list[service_tasks.TaskRow]
    unassigned_more: bool  # more unassigned tasks than listed
    returns: list[returns.DayReturn]
    returns_total: int
    kinds: dict[str, str]


async def service(session: AsyncSession, principal: Principal, day: date) -> ServiceHome:
    """Customer service: the tasks assigned to them, the open ones nobody has taken, and the
    returns opened on ``day`` (a local day of the company)."""
    mine, _ = await service_tasks.listing(session, principal, assignee="me", limit=LIST_SIZE * 2)
    unassigned, more = await service_tasks.listing(session, principal, assignee="none",
                                                   limit=service_tasks.PAGE_MAX)
    opened, total = await returns.of_day(session, principal, *figures.day_bounds(principal.timezone, day),
                                         limit=LIST_SIZE * 2)
    return ServiceHome(day, mine, unassigned, more is not None, opened, total, service_tasks.KINDS)
