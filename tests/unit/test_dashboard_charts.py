"""The dashboard's pure parts: day rows summed into KPI cards with their comparisons, chart geometry
(lines, bars, shares; nothing to draw, one point) and the charts' figures as CSV."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import pytest

from dashboard import charts, kpis
from dashboard.charts import Item, Slot
from orders.figures import BUCKETS, DayRow, LocationDayRow, NowCounts

DAY = date(2026, 11, 4)
NOW = NowCounts(backordered=2, on_hold=1, pickups_waiting=4, pickups_expiring=1, open_fulfilments=9,
                late_fulfilments=3)


def row(day: date = DAY, channel: str = "web", rule: str = "r1", **figures: int) -> DayRow:
    values = dict.fromkeys(("orders", "units", "gross_minor", "discount_minor", "cancelled_orders", "cancelled_minor",
                            "refunds_minor", "cancellation_refunds_minor", "goodwill_minor", "returned_units",
                            "split_orders", "backordered_orders", "held_orders"), 0)
    values.update(figures)
    return DayRow(day=day, channel=channel, rule=rule, **values)


def hist(**minutes: int) -> tuple[int, ...]:
    """A done histogram with ``count`` fulfilments in the bucket ending at ``m<upper>``."""
    counts = [0] * len(BUCKETS)
    for key, count in minutes.items():
        counts[BUCKETS.index(float(key[1:]))] = count
    return tuple(counts)


def by_key(cards: list[kpis.Card]) -> dict[str, kpis.Card]:
    return {card.key: card for card in cards}


# --- KPI cards ------------------------------------------------------------------------------------


def test_totals_add_up_rows_and_net_sales_take_off_cancellations_refunds_and_goodwill() -> None:
    rows = [row(orders=3, units=5, gross_minor=10_000, cancelled_minor=2_000, refunds_minor=3_500,
                cancellation_refunds_minor=2_000, goodwill_minor=500),
            row(channel="store", rule="", orders=1, units=1, gross_minor=2_000)]
    total = kpis.totals(rows)
    assert (total.orders, total.units, total.gross_minor) == (4, 6, 12_000)
    # The cancellation's refund is the cancelled value already: it is not taken off twice.
    assert total.net_minor == 12_000 - 2_000 - (3_500 - 2_000) - 500
    assert kpis.totals([]).net_minor == 0


def test_company_cards_compare_with_the_previous_period_and_say_whether_the_change_is_welcome() -> None:
    current = kpis.totals([row(orders=12, units=20, gross_minor=60_000, split_orders=3, returned_units=2,
                               backordered_orders=1, held_orders=0, refunds_minor=1_000, goodwill_minor=0)])
    previous = kpis.totals([row(orders=10, units=20, gross_minor=50_000, split_orders=1, returned_units=0,
                                backordered_orders=0, held_orders=2, refunds_minor=2_000, goodwill_minor=0)])
    placed = (kpis.LocationTotals(10, 1, 8, hist(m60=4, m120=4)), kpis.LocationTotals(10, 0, 8, hist(m30=8)))
    stores = (kpis.LocationTotals(4, 1, 2, hist(m60=2)), kpis.LocationTotals(4, 0, 4, hist(m30=4)))
    cards = by_key(kpis.company_cards(current, previous, placed, stores, NOW, currency="EUR", locale="en_US"))

    orders = cards["orders"]
    assert (orders.value, orders.previous) == ("12", "10")
    assert orders.change is not None
    assert (orders.change.direction, orders.change.text, orders.change.tone) == ("up", "+20%", "good")
    assert (cards["gross_sales"].value, cards["gross_sales"].previous) == ("€600.00", "€500.00")
    assert cards["average_basket"].value == "€50.00"
    split = cards["split_rate"]
    assert split.value == "25%" and split.previous == "10%"
    assert split.change is not None and (split.change.text, split.change.tone) == ("+15 pts", "bad")
    # Nothing returned before: the change in points still reads; a count from 0 has none ("—").
    assert cards["return_rate"].change is not None and cards["return_rate"].change.text == "+10 pts"
    assert cards["backorders"].change is None and cards["backorders"].previous == "0"
    assert cards["backorders"].note == "2 backordered now"
    on_hold = cards["on_hold"]
    assert on_hold.change is not None and (on_hold.change.direction, on_hold.change.tone) == ("down", "good")
    assert on_hold.change.text == "\u2212100%"
    refunds = cards["refunds"]
    assert refunds.change is not None and (refunds.change.direction, refunds.change.tone) == ("down", "good")
    assert cards["goodwill"].change is None  # 0 before, 0 now: nothing to compare
    assert cards["store_rejection_rate"].value == "25%"
    assert cards["fulfilment_median"].value == "1 h" and cards["fulfilment_median"].previous == "25 min"
    assert cards["fulfilment_median"].change is not None and cards["fulfilment_median"].change.tone == "bad"
    pickups = cards["pickups"]
    assert (pickups.value, pickups.previous, pickups.note) == ("4", None, "1 expiring within 24 h")


def test_cards_of_an_empty_period_show_dashes_not_errors() -> None:
    empty = kpis.totals([])
    none = kpis.LocationTotals()
    cards = by_key(kpis.company_cards(empty, empty, (none, none), (none, none), NOW, currency="EUR",
                                      locale="fr_FR", has_stores=False))
    assert cards["orders"].value == "0" and cards["orders"].change is None
    assert cards["average_basket"].value == "—" and cards["split_rate"].value == "—"
    assert cards["fulfilment_median"].value == "—"
    assert cards["store_rejection_rate"].note == "no store among your locations"
    assert cards["gross_sales"].value == "0,00\u00a0€"


def test_changes_in_the_companys_locale_and_flat_ones() -> None:
    change = kpis.change(1234, 1000, up_is_good=True, locale="fr_FR")
    assert change is not None and change.text == "+23,4\u00a0%" and change.words == "up, good"
    flat = kpis.change(5, 5, up_is_good=True, locale="en_US")
    assert flat is not None and (flat.direction, flat.text, flat.tone, flat.arrow) == ("flat", "no change",
                                                                                     "neutral", "=")
    neutral = kpis.change(3, 4, up_is_good=None, locale="en_US")
    assert neutral is not None and neutral.tone == "neutral" and neutral.arrow == "▼"
    assert kpis.change(None, 4, up_is_good=True, locale="en_US") is None


@pytest.mark.parametrize(("minutes", "text"), [
    (None, "—"), (0.2, "< 1 min"), (45, "45 min"), (60, "1 h"), (130, "2 h 10 min"), (1440, "1 d"),
    (1440 * 3 + 245, "3 d 4 h"),
])
def test_durations_read_as_people_say_them(minutes: float | None, text: str) -> None:
    assert kpis.duration_text(minutes) == text


def test_location_cards_sum_only_the_chosen_locations() -> None:
    rows = [LocationDayRow(DAY, "ST-1", 5, 1, 3, hist(m30=3)), LocationDayRow(DAY, "WH-1", 50, 0, 40, hist(m600=40))]
    mine = kpis.location_totals(rows, {"ST-1"})
    assert (mine.fulfilments, mine.rejected, mine.done) == (5, 1, 3)
    cards = by_key(kpis.location_cards(mine, kpis.LocationTotals(), NOW, locale="en_US"))
    assert cards["fulfilments"].value == "5" and cards["done"].value == "3"
    assert cards["fulfilment_median"].value == "25 min"
    assert cards["open"].value == "9" and cards["open"].note == "3 late"


# --- charts ---------------------------------------------------------------------------------------


def slots(n: int) -> list[Slot]:
    return [Slot((DAY + timedelta(days=i)).isoformat(), str(i + 1), f"Day {i + 1}") for i in range(n)]


def line(current: list[int], previous: list[int], n: int | None = None) -> charts.Chart:
    n = n if n is not None else max(len(current), len(previous))
    return charts.over_time("orders", "Orders over time", slots(n), current, slots(len(previous)), previous,
                            what="orders", slot_name="day", current_name="This month", previous_name="Previous",
                            fmt=str, csv_value=str, empty="No orders yet in this period.")


def test_a_line_chart_scales_to_a_round_top_and_draws_the_previous_period_under_the_current() -> None:
    chart = line([0, 5, 10, 7], [3, 3, 12, 0])
    previous, current = chart.series
    assert (previous.key, current.key) == ("previous", "current")
    assert [t.text for t in chart.y_ticks] == ["0", "5", "10", "15"]
    bottom, top = chart.axis["bottom"], chart.axis["top"]
    assert current.points[0].y == bottom and current.points[0].x == chart.axis["left"]
    assert current.points[-1].x == chart.axis["right"]
    assert abs(current.points[2].y - (bottom - (bottom - top) * 10 / 15)) <= 0.05  # to a tenth of a pixel
    assert current.points[2].title == "Day 3: 10 orders"
    assert previous.points[2].title == "Day 3: 12 orders"
    assert current.path.count(",") == 4 and not chart.empty
    assert all(chart.axis["left"] + 40 <= p.tip_x <= chart.axis["right"] - 40 for p in current.points)


def test_a_line_chart_with_nothing_says_so_and_one_with_one_point_puts_it_in_the_middle() -> None:
    empty = line([0, 0, 0], [0, 0, 0])
    assert empty.empty == "No orders yet in this period." and empty.summary == empty.empty
    one = line([4], [2])
    [point] = one.series[1].points
    assert point.x == (one.axis["left"] + one.axis["right"]) / 2 and one.empty == ""
    short = line([1, 2], [1, 1, 1, 1], n=2)  # today's hours stop at now; the previous day runs on
    assert len(short.series[1].points) == 2 and len(short.series[0].points) == 4
    assert short.series[1].points[1].x < short.series[0].points[-1].x
    assert short.rows[3] == ("", "", slots(4)[3].key, "1")


def test_nice_scales_use_round_steps() -> None:
    assert charts.nice_scale(0) == (4, 1)
    assert charts.nice_scale(3) == (3, 1)
    assert charts.nice_scale(17) == (20, 5)
    assert charts.nice_scale(123_456) == (150_000, 50_000)


def test_bars_are_largest_first_and_the_many_are_summed_as_others() -> None:
    items = [Item(f"L{i:02d}", i, f"L{i:02d}: {i} shipped", (f"L{i:02d}", str(i))) for i in range(0, 20)]
    chart = charts.bars("locations", "Shipments by location", items, columns=("location", "shipped"), fmt=str,
                        others=lambda count, total: Item(f"Others ({count})", total, f"{count} others", ("", "")),
                        empty="Nothing shipped yet.")
    assert len(chart.bars) == charts.BARS_SHOWN
    assert [b.label for b in chart.bars[:2]] == ["L19", "L18"]
    assert chart.bars[-1].label == "Others (8)" and chart.bars[-1].value == sum(range(1, 9))
    assert chart.bars[0].height > chart.bars[1].height > 0
    assert chart.bars[0].y + chart.bars[0].height == chart.axis["bottom"]
    assert len(chart.rows) == 20  # the CSV lists every location
    assert charts.bars("locations", "x", [Item("A", 0, "A", ("A", "0"))], columns=("l", "n"), fmt=str,
                       others=lambda c, t: Item("", 0, "", ()), empty="Nothing shipped yet.").empty


def test_shares_give_each_rule_its_part_of_the_whole() -> None:
    items = [Item("Stores first", 3, "Stores first: 3 orders", ("st", "3")),
             Item("Warehouse", 1, "Warehouse: 1 orders", ("wh", "1"))]
    chart = charts.shares("rules", "Orders by routing rule", items, what="orders", columns=("rule", "orders"),
                          others=lambda c, t: Item("", 0, "", ()), empty="None yet.",
                          locale_percent=lambda share: f"{share:.0%}")
    first, second = chart.bars
    assert (first.text, second.text) == ("75%", "25%")
    assert first.width == 3 * second.width and first.title == "Stores first: 3 orders: 75% of orders"
    assert chart.columns == ("rule", "orders", "share") and chart.rows[0] == ("st", "3", "0.7500")


def test_csv_has_the_charts_figures_and_never_a_formula() -> None:
    chart = charts.Chart("rules", "Rules", "shares", "", ("rule", "orders"),
                         (("=HYPERLINK(\"http://x\")", "3"), ("-2", "-2"), ("@SUM(A1)", "1"),
                          ("plain, with comma", "4")))
    parsed = list(csv.reader(io.StringIO(charts.csv_text(chart))))
    assert parsed == [["rule", "orders"], ["'=HYPERLINK(\"http://x\")", "3"], ["-2", "-2"], ["'@SUM(A1)", "1"],
                      ["plain, with comma", "4"]]
    assert charts.csv_text(line([1, 2], [3, 4])).splitlines()[:2] == [
        "day,orders,previous day,previous orders", f"{DAY.isoformat()},1,{DAY.isoformat()},3"]


def test_download_names_are_safe() -> None:
    assert charts.filename("orders", "2026-11-01", "2026-11-30") == "orders-2026-11-01-2026-11-30.csv"
    assert charts.filename("sales", "2026-11-04", "2026-11-04") == "sales-2026-11-04.csv"
    assert charts.filename("a/../b\"", "x y", "") == "a-b-x-y.csv"
