"""The dashboard's charts as geometry for server-rendered SVG (the Jinja macros in
``dashboard/_charts.html`` draw it), and each chart's figures as CSV.

Pure: figures in, coordinates and text out. Every point and bar carries its figure in words
(the SVG ``<title>`` and the label shown on hover), and every chart its rows for the download.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

WIDTH = 640
HEIGHT = 220
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 28  # room for the axes' labels
X_TICKS = 8  # at most, on a time axis
BARS_SHOWN = 12  # the largest; the rest are summed as one bar ("Others"), and listed in the CSV
LABEL_CHARS = 14  # a bar's label under it, cut; its title has it whole
SHARE_LABEL = 200  # width of the labels column of a horizontal bar chart
SHARE_ROW = 28


@dataclass(frozen=True)
class Slot:
    """One step of a time axis: its CSV key ("2026-11-03", "14:00"), its axis label and its name
    in a point's title."""

    key: str
    tick: str
    title: str


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    value: int
    title: str  # the figure in words: the SVG <title>, shown on hover
    tip_x: float  # where the hover label sits, kept inside the drawing


@dataclass(frozen=True)
class Series:
    key: str  # "current" or "previous": its CSS class
    name: str  # in the legend
    points: tuple[Point, ...]

    @property
    def path(self) -> str:
        return " ".join(f"{p.x},{p.y}" for p in self.points)


@dataclass(frozen=True)
class Tick:
    at: float
    text: str


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # under the bar, or left of it (cut to fit)
    value: int
    text: str  # the figure, shown on hover (or beside a horizontal bar)
    title: str


@dataclass(frozen=True)
class Chart:
    name: str
    title: str
    kind: str  # "line", "bars" or "shares"
    empty: str  # what to say instead of a chart with nothing in it ("" when there is something)
    columns: tuple[str, ...]  # the CSV's header
    rows: tuple[tuple[str, ...], ...]  # the CSV's rows: the chart's figures
    width: int = WIDTH
    height: int = HEIGHT
    series: tuple[Series, ...] = ()
    bars: tuple[Bar, ...] = ()
    y_ticks: tuple[Tick, ...] = ()
    x_ticks: tuple[Tick, ...] = ()
    summary: str = ""  # the chart in one sentence, for screen readers
    axis: dict[str, float] = field(default_factory=dict)  # left, right, top, bottom of the plot area


def nice_scale(largest: float) -> tuple[int, int]:
    """The axis' top and step: a round step (1, 2 or 5 times a power of ten, never under 1) with
    about four steps up to at least ``largest``."""
    if largest <= 0:
        return 4, 1
    raw = largest / 4
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(1, int(step))
    return step * math.ceil(largest / step), step


def _y_ticks(top: int, step: int, fmt: Callable[[int], str]) -> tuple[Tick, ...]:
    plot = HEIGHT - TOP - BOTTOM
    return tuple(Tick(round(HEIGHT - BOTTOM - plot * v / top, 1), fmt(v)) for v in range(0, top + 1, step))


def _axis() -> dict[str, float]:
    return {"left": LEFT, "right": WIDTH - RIGHT, "top": TOP, "bottom": HEIGHT - BOTTOM}


def _tip_x(x: float) -> float:
    return round(min(max(x, LEFT + 40), WIDTH - RIGHT - 40), 1)


def over_time(name: str, title: str, slots: Sequence[Slot], current: Sequence[int], previous_slots: Sequence[Slot],
              previous: Sequence[int], *, what: str, slot_name: str, current_name: str, previous_name: str,
              fmt: Callable[[int], str], csv_value: Callable[[int], str], empty: str) -> Chart:
    """A line over the period's slots and a second one, dashed in the drawing, over the previous
    period's, slot by slot (the first day with the first day). ``current`` may stop short of the
    slots (today's hours after now are not drawn)."""
    count = max(len(slots), len(previous_slots), 1)
    top, step = nice_scale(max([*current, *previous, 0]))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x_of(i: int) -> float:
        return round(LEFT + (plot_w * i / (count - 1) if count > 1 else plot_w / 2), 1)

    def points(values: Sequence[int], named: Sequence[Slot]) -> tuple[Point, ...]:
        return tuple(Point(x_of(i), round(HEIGHT - BOTTOM - plot_h * v / top, 1), v,
                           f"{named[i].title}: {fmt(v)} {what}", _tip_x(x_of(i))) for i, v in enumerate(values))

    every = max(1, math.ceil(count / X_TICKS))
    axis_slots = slots if len(slots) >= len(previous_slots) else previous_slots
    x_ticks = tuple(Tick(x_of(i), axis_slots[i].tick) for i in range(0, len(axis_slots), every))
    columns = (slot_name, what, f"previous {slot_name}", f"previous {what}")
    rows = tuple((slots[i].key if i < len(slots) else "", csv_value(current[i]) if i < len(current) else "",
                  previous_slots[i].key if i < len(previous_slots) else "",
                  csv_value(previous[i]) if i < len(previous) else "") for i in range(count))
    nothing = not any(current) and not any(previous)
    summary = (f"{title}: {fmt(sum(current))} {what} in the period, {fmt(sum(previous))} in the previous one"
               if not nothing else empty)
    return Chart(name, title, "line", empty if nothing else "", columns, rows,
                 series=(Series("previous", previous_name, points(previous, previous_slots)),
                         Series("current", current_name, points(current, slots))),
                 y_ticks=_y_ticks(top, step, fmt), x_ticks=x_ticks, summary=summary, axis=_axis())


@dataclass(frozen=True)
class Item:
    """One bar's figure: its label, value, title (the figure in words) and CSV row."""

    label: str
    value: int
    title: str
    row: tuple[str, ...]


def _shown(items: Sequence[Item], others: Callable[[int, int], Item]) -> list[Item]:
    """The largest bars first, the ones past ``BARS_SHOWN`` summed into one."""
    ordered = sorted(items, key=lambda item: (-item.value, item.label))
    if len(ordered) <= BARS_SHOWN:
        return ordered
    rest = ordered[BARS_SHOWN - 1:]
    return [*ordered[:BARS_SHOWN - 1], others(len(rest), sum(item.value for item in rest))]


def bars(name: str, title: str, items: Sequence[Item], *, columns: tuple[str, ...], fmt: Callable[[int], str],
         others: Callable[[int, int], Item], empty: str) -> Chart:
    """Vertical bars, largest first."""
    shown = _shown([item for item in items if item.value], others)
    top, step = nice_scale(max([item.value for item in shown] + [0]))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    band = plot_w / max(len(shown), 1)
    width = min(band * 0.6, 56)
    drawn = tuple(Bar(round(LEFT + i * band + (band - width) / 2, 1), round(HEIGHT - BOTTOM - height, 1),
                      round(width, 1), round(height, 1), _cut(item.label), item.value, fmt(item.value), item.title)
                  for i, item in enumerate(shown) for height in (plot_h * item.value / top,))
    summary = "; ".join(item.title for item in shown) if shown else empty
    return Chart(name, title, "bars", "" if shown else empty, columns, tuple(item.row for item in items),
                 bars=drawn, y_ticks=_y_ticks(top, step, fmt), summary=summary, axis=_axis())


def shares(name: str, title: str, items: Sequence[Item], *, what: str, columns: tuple[str, ...],
           others: Callable[[int, int], Item], empty: str, locale_percent: Callable[[float], str]) -> Chart:
    """Horizontal bars, one a row, each the share of the whole (the label left, the % right)."""
    whole = sum(item.value for item in items)
    shown = _shown([item for item in items if item.value], others)
    bar_w = WIDTH - SHARE_LABEL - 70
    drawn = tuple(Bar(SHARE_LABEL, 6 + i * SHARE_ROW, round(bar_w * item.value / whole, 1), SHARE_ROW - 10,
                      _cut(item.label, 28), item.value, locale_percent(item.value / whole),
                      f"{item.title}: {locale_percent(item.value / whole)} of {what}")
                  for i, item in enumerate(shown))
    rows = tuple((*item.row, f"{item.value / whole:.4f}" if whole else "") for item in items)
    summary = "; ".join(bar.title for bar in drawn) if drawn else empty
    return Chart(name, title, "shares", "" if drawn else empty, (*columns, "share"), rows,
                 height=max(len(drawn), 1) * SHARE_ROW + 8, bars=drawn, summary=summary,
                 axis={"left": SHARE_LABEL, "right": SHARE_LABEL + bar_w, "top": 0, "bottom": 0})


def _cut(text: str, chars: int = LABEL_CHARS) -> str:
    return text if len(text) <= chars else text[:chars - 1] + "…"


# --- CSV ------------------------------------------------------------------------------------------

_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def csv_text(chart: Chart) -> str:
    """The chart's figures as CSV. A text cell a spreadsheet would run as a formula (a rule named
    "=HYPERLINK(...)") is quoted with an apostrophe first; numbers stay numbers."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(chart.columns)
    for row in chart.rows:
        writer.writerow(["'" + cell if cell.startswith(_FORMULA) and not _NUMBER.fullmatch(cell) else cell
                         for cell in row])
    return out.getvalue()


def filename(name: str, first: str, last: str) -> str:
    """``orders-2026-11-01-2026-11-30.csv``: letters, digits and dashes only."""
    stem = "-".join(part for part in (name, first, last if last != first else "") if part)
    return re.sub(r"[^A-Za-z0-9]+", "-", stem).strip("-") + ".csv"
