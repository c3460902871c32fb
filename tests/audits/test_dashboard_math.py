"""The dashboard's additive daily figures combine into the same alpha as reviews.agreement, and a fair median."""

import random
from collections import Counter

import pytest

from audits.dashboard_math import (
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
