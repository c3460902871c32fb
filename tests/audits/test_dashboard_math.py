"""The dashboard's additive daily figures combine into the same alpha as reviews.agreement, and a fair median."""

import bisect
import random
import statistics
from collections import Counter

import pytest

from audits.dashboard_math import (
    MINUTE_BUCKETS,
    AgreementStats,
    histogram_median_minutes,
    histogram_of,
    histograms_merge,
    minutes_bucket,
)
from reviews.agreement import krippendorff_alpha_nominal


@pytest.mark.parametrize("seed", range(20))
def test_alpha_summed_over_days_equals_alpha_over_all_the_cases(seed):
    rng = random.Random(seed)
    labels = ["approve", "deny", "refer"][: rng.randint(2, 3)]
    days = [
        [[rng.choice(labels) for _ in range(rng.randint(1, 4))] for _ in range(rng.randint(0, 30))] for _ in range(7)
    ]
    period = AgreementStats()
    for cases in days:
        day = AgreementStats()
        for ratings in cases:
            day.add_case(Counter(ratings))
        period.merge(day)

    expected = krippendorff_alpha_nominal([ratings for cases in days for ratings in cases])

    if expected is None:
        assert period.alpha() is None
    else:
        assert period.alpha() == pytest.approx(expected)


def test_alpha_is_undefined_without_pairable_ratings_or_with_a_single_label():
    single = AgreementStats()
    single.add_case({"approve": 1})
    assert single.alpha() is None
    unanimous = AgreementStats()
    unanimous.add_case({"approve": 3})
    assert (unanimous.alpha(), unanimous.cases) == (None, 1)


def test_the_median_falls_in_the_right_bucket_and_is_interpolated_within_it():
    minutes = [3, 4, 50, 55, 58, 59, 70, 200, 3000]
    histogram = histograms_merge([histogram_of(minutes[:4]), histogram_of(minutes[4:])])

    median = histogram_median_minutes(histogram)

    assert minutes_bucket(58) == "60"
    assert 45 < median <= 60  # the true median, 58, lies in the 45-60 minute bucket
    assert histogram_median_minutes({}) is None
    assert histogram_median_minutes(histogram_of([10_000, 20_000])) == 5760  # the open bucket's lower bound


def test_an_even_count_whose_middle_times_lie_buckets_apart_gets_a_median_between_them():
    # The median of half a minute and 4,000 minutes is 2,000.25; reading only the first bucket gave 1.0.
    median = histogram_median_minutes(histogram_of([0.5, 4000]))

    # Each middle time at the centre of its bucket: (0.5 + 3600) / 2, off by less than the mean of widths 1 and 1440.
    assert median == pytest.approx(1800.25)
    assert abs(median - 2000.25) < (1 + 1440) / 2


def bucket_width(minutes: float) -> float:
    """The width of the bucket holding `minutes`, written out from the bucket bounds."""
    index = bisect.bisect_left(MINUTE_BUCKETS, minutes)
    return MINUTE_BUCKETS[index] - (MINUTE_BUCKETS[index - 1] if index else 0)


@pytest.mark.parametrize("seed", range(200))
def test_the_median_is_off_by_less_than_the_width_of_its_middle_times_buckets(seed):
    rng = random.Random(seed)
    # Times spread over every bucket (log-uniform from seconds to four days), some repeated, split over days.
    minutes = [round(10 ** rng.uniform(-1.5, 3.76), rng.choice((0, 1, 3))) or 0.5 for _ in range(rng.randint(1, 80))]
    minutes += rng.sample(minutes, rng.randint(0, len(minutes) // 4))
    cut = rng.randint(0, len(minutes))
    histogram = histograms_merge([histogram_of(minutes[:cut]), histogram_of(minutes[cut:])])

    median = histogram_median_minutes(histogram)

    ordered = sorted(minutes)
    middle = ordered[(len(ordered) - 1) // 2 : len(ordered) // 2 + 1]
    assert statistics.median(minutes) == pytest.approx(sum(middle) / len(middle))
    allowed = sum(bucket_width(value) for value in middle) / len(middle)
    assert abs(median - statistics.median(minutes)) < allowed
    assert abs(median - statistics.median(minutes)) <= max(bucket_width(value) for value in middle)
