"""Fulfilment times from histograms: quantiles interpolated inside their bucket, histograms of
several days and locations added up, and the buckets themselves."""

from __future__ import annotations

import math
from bisect import bisect_right

import pytest

from orders.figures import BUCKETS, merge, percentile


def hist(**at: int) -> list[int]:
    """A histogram with counts in the buckets whose upper bounds are given (``b60=3``: 3 in the
    bucket ending at 60 minutes; ``inf=1``: 1 in the last)."""
    counts = [0] * len(BUCKETS)
    for name, count in at.items():
        bound = math.inf if name == "inf" else int(name[1:])
        counts[BUCKETS.index(bound)] = count
    return counts


def bucket_of(minutes: float) -> int:
    return bisect_right(BUCKETS[:-1], minutes)


def test_buckets_rise_from_minutes_to_a_month_and_end_open() -> None:
    assert len(BUCKETS) == 32
    assert list(BUCKETS) == sorted(BUCKETS) and len(set(BUCKETS)) == len(BUCKETS)
    assert BUCKETS[0] == 5 and BUCKETS[-2] == 43200 and math.isinf(BUCKETS[-1])
    assert bucket_of(0) == 0 and bucket_of(4.9) == 0 and bucket_of(5) == 1  # a bucket holds its lower bound
    assert bucket_of(24 * 60) == BUCKETS.index(1800) and bucket_of(10**9) == len(BUCKETS) - 1


def test_an_empty_histogram_has_no_quantile() -> None:
    assert percentile([0] * len(BUCKETS), 0.5) is None
    assert percentile([], 0.9) is None


def test_quantiles_are_interpolated_inside_their_bucket() -> None:
    # Ten fulfilments between 60 and 90 minutes: the median is half way, p90 nine tenths in.
    ten = hist(b90=10)
    assert percentile(ten, 0.5) == pytest.approx(75)
    assert percentile(ten, 0.9) == pytest.approx(87)
    assert percentile(ten, 0) == pytest.approx(60)
    assert percentile(ten, 1) == pytest.approx(90)
    # Three quick ones (under 5 minutes) and one slow one: the median is among the quick ones.
    mixed = hist(b5=3, b1440=1)
    assert percentile(mixed, 0.5) == pytest.approx(5 * 2 / 3)
    assert 1200 <= percentile(mixed, 0.9) <= 1440  # type: ignore[operator]


def test_the_open_last_bucket_gives_its_lower_bound() -> None:
    assert percentile(hist(inf=4), 0.5) == 43200
    assert percentile(hist(b60=1, inf=1), 0.9) == 43200


def test_a_quantile_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        percentile(hist(b60=1), 1.5)


def test_histograms_add_up_bucket_by_bucket() -> None:
    days = [hist(b5=1, b60=2), hist(b60=1, inf=3), [1, 1]]
    total = merge(days)
    assert len(total) == len(BUCKETS)
    assert total[0] == 2 and total[1] == 1
    assert total[BUCKETS.index(60)] == 3 and total[-1] == 3
    assert sum(total) == 9
    assert merge([]) == (0,) * len(BUCKETS)
    assert percentile(total, 0.5) == percentile(list(total), 0.5)
