"""The dashboard's KPI cards: the period's day rows summed, each figure beside the previous
period's and the change between them, in words and in the company's locale.

Pure: the rows come from ``orders.figures``; nothing here reads the database.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from babel import Locale
from babel.numbers import format_decimal, format_percent

from core.locale import format_money
from orders.figures import merge, percentile

if TYPE_CHECKING:
    from orders.figures import DayRow, LocationDayRow, NowCounts


@dataclass(frozen=True)
class Totals:
    """A period's order day rows summed (the orders placed in it, and what became of them)."""

    orders: int = 0
    units: int = 0
    gross_minor: int = 0
    discount_minor: int = 0
    cancelled_orders: int = 0
    cancelled_minor: int = 0
    refunds_minor: int = 0
    cancellation_refunds_minor: int = 0
    goodwill_minor: int = 0
    returned_units: int = 0
    split_orders: int = 0
    backordered_orders: int = 0
    held_orders: int = 0

    @property
    def net_minor(self) -> int:
        """Gross sales less what was cancelled, refunded (the cancellations' refunds are the
        cancelled value already) and given as goodwill."""
        return (self.gross_minor - self.cancelled_minor - (self.refunds_minor - self.cancellation_refunds_minor)
                - self.goodwill_minor)


_SUMMED = tuple(f.name for f in fields(Totals))


def totals(rows: Iterable[DayRow]) -> Totals:
    sums = dict.fromkeys(_SUMMED, 0)
    for row in rows:
        for name in _SUMMED:
            sums[name] += getattr(row, name)
    return Totals(**sums)


@dataclass(frozen=True)
class LocationTotals:
    fulfilments: int = 0
    rejected: int = 0
    done: int = 0
    done_hist: tuple[int, ...] = ()

    def minutes(self, q: float) -> float | None:
        """Minutes from order to shipped (or ready for pickup) at quantile ``q`` of the done ones."""
        return percentile(self.done_hist, q) if self.done else None


def location_totals(rows: Iterable[LocationDayRow], codes: Collection[str] | None = None) -> LocationTotals:
    """The location rows summed, of ``codes`` only when given."""
    chosen = [r for r in rows if codes is None or r.location_code in codes]
    return LocationTotals(sum(r.fulfilments for r in chosen), sum(r.rejected for r in chosen),
                          sum(r.done for r in chosen), merge(r.done_hist for r in chosen))


def ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


# --- words and numbers ---------------------------------------------------------------------------


def count_text(value: int | None, locale: Locale | str) -> str:
    return "—" if value is None else format_decimal(value, locale=locale)


def rate_text(value: float | None, locale: Locale | str) -> str:
    return "—" if value is None else format_percent(round(value, 3), locale=locale, decimal_quantization=False)


def duration_text(minutes: float | None) -> str:
    """Minutes as people read a wait: "45 min", "2 h 10 min", "3 d 4 h"."""
    if minutes is None:
        return "—"
    whole = round(minutes)
    if whole < 1:
        return "< 1 min"
    days, rest = divmod(whole, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {mins} min" if mins else f"{hours} h"
    return f"{mins} min"


MINUS = "\u2212"


@dataclass(frozen=True)
class Change:
    direction: str  # "up", "down" or "flat"
    text: str  # "+12 %", "-3 pts" (a minus sign, U+2212)
    tone: str  # "good", "bad" or "neutral": whether the change is welcome

    @property
    def arrow(self) -> str:
        return {"up": "▲", "down": "▼"}.get(self.direction, "=")

    @property
    def words(self) -> str:
        """What the arrow and colour say, for screen readers."""
        moved = {"up": "up", "down": "down"}.get(self.direction, "unchanged")
        return moved + {"good": ", good", "bad": ", worse"}.get(self.tone, "")


def change(current: float | None, previous: float | None, *, up_is_good: bool | None, locale: Locale | str,
           points: bool = False) -> Change | None:
    """The change from the previous period: relative (%), or in percentage points for a rate
    (``points``). None when there is nothing to compare with (no previous figure, or 0)."""
    if current is None or previous is None or (not points and previous == 0):
        return None
    if points:
        delta = round((current - previous) * 100, 1)
        magnitude = format_decimal(abs(delta), format="#,##0.#", locale=locale) + " pts"
    else:
        delta = round((current - previous) / abs(previous), 3)  # from a negative figure, up is still up
        magnitude = format_percent(abs(delta), locale=locale, decimal_quantization=False)
    if delta == 0:
        return Change("flat", "no change", "neutral")
    direction = "up" if delta > 0 else "down"
    tone = "neutral" if up_is_good is None else "good" if (direction == "up") == up_is_good else "bad"
    return Change(direction, ("+" if delta > 0 else MINUS) + magnitude, tone)


@dataclass(frozen=True)
class Card:
    key: str
    label: str
    value: str
    previous: str | None = None  # None: a figure of now, with nothing to compare
    change: Change | None = None  # None beside a previous figure: "—" (the previous was 0)
    note: str = ""


def _card(key: str, label: str, current: float | None, previous: float | None, text: Callable[[float | None], str],
          *, up_is_good: bool | None, locale: Locale | str, points: bool = False, note: str = "") -> Card:
    return Card(key, label, text(current), text(previous),
                change(current, previous, up_is_good=up_is_good, locale=locale, points=points), note)


def company_cards(current: Totals, previous: Totals, fulfilled: tuple[LocationTotals, LocationTotals],
                  stores: tuple[LocationTotals, LocationTotals], now: NowCounts, *, currency: str,
                  locale: Locale | str, has_stores: bool = True) -> list[Card]:
    """Every KPI of the full dashboard. ``fulfilled`` and ``stores``: the location totals of the
    period and the previous one, at every location and at the stores."""

    def money(minor: float | None) -> str:
        return format_money(None if minor is None else round(minor), currency, locale)

    def count(value: float | None) -> str:
        return count_text(None if value is None else int(value), locale)

    def rate(value: float | None) -> str:
        return rate_text(value, locale)

    cur_done, prev_done = fulfilled
    cur_store, prev_store = stores
    pickups_note = f"{count_text(now.pickups_expiring, locale)} expiring within 24 h"
    return [
        _card("orders", "Orders", current.orders, previous.orders, count, up_is_good=True, locale=locale),
        _card("gross_sales", "Gross sales", current.gross_minor, previous.gross_minor, money, up_is_good=True,
              locale=locale),
        _card("net_sales", "Net sales", current.net_minor, previous.net_minor, money, up_is_good=True,
              locale=locale, note="after cancellations, refunds and goodwill"),
        _card("average_basket", "Average basket", _per(current.gross_minor, current.orders),
              _per(previous.gross_minor, previous.orders), money, up_is_good=True, locale=locale),
        _card("units", "Units", current.units, previous.units, count, up_is_good=True, locale=locale),
        _card("split_rate", "Split rate", ratio(current.split_orders, current.orders),
              ratio(previous.split_orders, previous.orders), rate, up_is_good=False, locale=locale, points=True,
              note="orders sent in two parcels or more"),
        _card("backorders", "Backorders", current.backordered_orders, previous.backordered_orders, count,
              up_is_good=False, locale=locale, note=f"{count_text(now.backordered, locale)} backordered now"),
        _card("on_hold", "Orders on hold", current.held_orders, previous.held_orders, count, up_is_good=False,
              locale=locale, note=f"{count_text(now.on_hold, locale)} on hold now"),
        _card("fulfilment_median", "Fulfilment time (median)", cur_done.minutes(0.5), prev_done.minutes(0.5),
              duration_text, up_is_good=False, locale=locale, note="order to shipped or ready for pickup"),
        _card("fulfilment_p90", "Fulfilment time (90th percentile)", cur_done.minutes(0.9), prev_done.minutes(0.9),
              duration_text, up_is_good=False, locale=locale, note="9 in 10 orders are this fast or faster"),
        _card("store_rejection_rate", "Store rejection rate", ratio(cur_store.rejected, cur_store.fulfilments),
              ratio(prev_store.rejected, prev_store.fulfilments), rate, up_is_good=False, locale=locale, points=True,
              note="fulfilments stores refused" if has_stores else "no store among your locations"),
        Card("pickups", "Pickups waiting", count_text(now.pickups_waiting, locale), note=pickups_note),
        _card("return_rate", "Return rate", ratio(current.returned_units, current.units),
              ratio(previous.returned_units, previous.units), rate, up_is_good=False, locale=locale, points=True,
              note="units returned of units ordered"),
        _card("refunds", "Refunds", current.refunds_minor, previous.refunds_minor, money, up_is_good=False,
              locale=locale, note="cancellations and returns"),
        _card("goodwill", "Goodwill", current.goodwill_minor, previous.goodwill_minor, money, up_is_good=False,
              locale=locale, note="refunds made as a gesture"),
    ]


def location_cards(current: LocationTotals, previous: LocationTotals, now: NowCounts, *,
                   locale: Locale | str) -> list[Card]:
    """A store associate's figures: their locations' fulfilments only."""

    def count(value: float | None) -> str:
        return count_text(None if value is None else int(value), locale)

    return [
        _card("fulfilments", "Fulfilments", current.fulfilments, previous.fulfilments, count, up_is_good=None,
              locale=locale, note="of the orders placed in the period"),
        _card("done", "Shipped or ready", current.done, previous.done, count, up_is_good=True, locale=locale),
        _card("rejected", "Rejected", current.rejected, previous.rejected, count, up_is_good=False, locale=locale),
        _card("fulfilment_median", "Fulfilment time (median)", current.minutes(0.5), previous.minutes(0.5),
              duration_text, up_is_good=False, locale=locale, note="order to shipped or ready for pickup"),
        _card("fulfilment_p90", "Fulfilment time (90th percentile)", current.minutes(0.9), previous.minutes(0.9),
              duration_text, up_is_good=False, locale=locale),
        Card("open", "Open now", count_text(now.open_fulfilments, locale),
             note=f"{count_text(now.late_fulfilments, locale)} late"),
        Card("pickups", "Pickups waiting", count_text(now.pickups_waiting, locale),
             note=f"{count_text(now.pickups_expiring, locale)} expiring within 24 h"),
    ]


def _per(total: int, count: int) -> float | None:
    return total / count if count else None

