"""The threshold recommendation: the exact bound against scipy's binomtest, a known error curve, and the workload."""

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from audits.thresholds import (
    DEFAULT_BAND_EDGES,
    DEFAULT_GRID,
    clopper_pearson_upper,
    minimum_labelled_cases,
    threshold_recommend,
)


def two_sided_exact_high(errors, n, confidence_level):
    return binomtest(errors, n).proportion_ci(confidence_level=confidence_level, method="exact").high


def known_error_curve():
    """1,000 labelled cases at each confidence 0.50, 0.51, ... 0.99, of which 2 x (100 - 100c) are errors.

    At or above t = i / 100 there are 1000 (100 - i) cases and (100 - i)(101 - i) errors: a rate of (101 - i) / 1000.
    """
    labelled = []
    for i in range(50, 100):
        errors = 2 * (100 - i)
        labelled += [(i / 100, True)] * errors + [(i / 100, False)] * (1000 - errors)
    return labelled


def recommend(labelled=(), **overrides):
    arguments = {
        "labelled": labelled,
        "recent_confidences": [],
        "recent_days": 14,
        "reviewer_capacity_per_day": 100,
        "reviews_per_case": 1,
        "current_threshold": 0.9,
    }
    return threshold_recommend(**{**arguments, **overrides})


@pytest.mark.parametrize("seed", range(5))
def test_the_one_sided_bound_is_the_upper_end_of_scipys_two_sided_exact_interval_at_twice_the_risk(seed):
    rng = np.random.default_rng(seed)
    for _ in range(40):
        n = int(rng.integers(1, 3000))
        errors = int(rng.integers(0, n + 1)) if rng.random() < 0.5 else int(rng.binomial(n, 0.02))
        level = float(rng.choice([0.8, 0.9, 0.95, 0.99]))

        bound = clopper_pearson_upper(errors=errors, n=n, confidence_level=level)

        # One-sided at 95% = the upper end of the two-sided 90% interval: both leave 5% above.
        assert bound == pytest.approx(two_sided_exact_high(errors, n, 2 * level - 1), rel=1e-9)


def test_the_bound_with_no_error_is_one_minus_alpha_to_the_power_one_over_n():
    # 1 - 0.05 ** (1 / n), worked out by hand
    assert clopper_pearson_upper(errors=0, n=1) == pytest.approx(0.95)
    assert clopper_pearson_upper(errors=0, n=10) == pytest.approx(0.2588655508931, rel=1e-9)
    assert clopper_pearson_upper(errors=0, n=148) == pytest.approx(0.0200379516891, rel=1e-9)
    assert clopper_pearson_upper(errors=0, n=149) == pytest.approx(0.0199048162207, rel=1e-9)
    assert clopper_pearson_upper(errors=0, n=30, confidence_level=0.99) == pytest.approx(1 - 0.01 ** (1 / 30))


def test_the_bound_is_one_when_every_case_is_an_error_and_undefined_without_cases():
    assert clopper_pearson_upper(errors=7, n=7) == 1.0
    assert clopper_pearson_upper(errors=0, n=0) is None


@pytest.mark.parametrize(
    ("errors", "n", "level"), [(3, 2, 0.95), (-1, 5, 0.95), (0, -1, 0.95), (1, 5, 1.0), (1, 5, 0.0)]
)
def test_it_refuses_an_impossible_count_or_level(errors, n, level):
    with pytest.raises(ValueError):
        clopper_pearson_upper(errors=errors, n=n, confidence_level=level)


def test_the_bound_grows_with_errors_and_confidence_and_shrinks_with_more_cases():
    by_errors = [clopper_pearson_upper(errors=k, n=200) for k in range(0, 201, 5)]
    by_cases = [clopper_pearson_upper(errors=3, n=n) for n in range(3, 2000, 50)]
    by_level = [clopper_pearson_upper(errors=3, n=200, confidence_level=level) for level in (0.5, 0.8, 0.9, 0.95, 0.99)]

    assert by_errors == sorted(by_errors) and len(set(by_errors)) == len(by_errors)
    assert by_cases == sorted(by_cases, reverse=True)
    assert by_level == sorted(by_level)


def test_the_bound_covers_the_true_error_rate_at_least_as_often_as_promised():
    rng = np.random.default_rng(42)
    rate, n = 0.02, 300
    draws = rng.binomial(n, rate, 2000)

    covered = np.mean([clopper_pearson_upper(errors=int(k), n=n) >= rate for k in draws])

    assert covered >= 0.95


def test_the_fewest_labelled_cases_that_can_qualify_follow_the_closed_form():
    assert minimum_labelled_cases() == 149  # ln 0.05 / ln 0.98 = 148.3
    assert clopper_pearson_upper(errors=0, n=148) >= 0.02 > clopper_pearson_upper(errors=0, n=149)
    for target, level in [(0.01, 0.95), (0.05, 0.9), (0.001, 0.99), (0.3, 0.5)]:
        needed = minimum_labelled_cases(target_error_rate=target, confidence_level=level)
        assert needed == math.floor(math.log(1 - level) / math.log(1 - target)) + 1
        assert clopper_pearson_upper(errors=0, n=needed, confidence_level=level) < target
        if needed > 1:
            assert clopper_pearson_upper(errors=0, n=needed - 1, confidence_level=level) >= target


def test_it_recommends_the_lowest_threshold_whose_bound_is_under_the_target_on_a_known_error_curve():
    result = recommend(known_error_curve())

    # At 0.82: 342 errors in 18,000 (1.9%); at 0.83: 306 in 17,000 (1.8%). Only the second bound is under 2%.
    assert two_sided_exact_high(342, 18_000, 0.9) > 0.02 > two_sided_exact_high(306, 17_000, 0.9)
    assert result.recommended_threshold == 0.83
    at = {candidate.threshold: candidate for candidate in result.candidates}
    assert (at[0.82].n, at[0.82].errors, at[0.82].qualifies) == (18_000, 342, False)
    assert (at[0.83].n, at[0.83].errors, at[0.83].qualifies) == (17_000, 306, True)
    assert at[0.83].error_rate == pytest.approx(0.018)
    assert result.reason == (
        "0.83 is the lowest threshold whose 95% upper bound on the error rate of automatic decisions "
        "(1.98%; 306 errors in 17,000 labelled cases) is under 2%"
    )
    assert (result.recommended.n, result.recommended.errors) == (17_000, 306)


def test_every_candidate_matches_a_count_made_with_numpy_and_a_bound_from_binomtest():
    rng = np.random.default_rng(5)
    confidences = np.round(rng.uniform(0.3, 1, 3000), 3)
    wrong = rng.random(3000) < 0.3 * (1 - confidences)
    recent = rng.uniform(0.3, 1, 500)

    result = recommend(list(zip(confidences.tolist(), wrong.tolist(), strict=True)), recent_confidences=recent.tolist())

    for candidate in result.candidates:
        above = confidences >= candidate.threshold
        n, errors = int(above.sum()), int(wrong[above].sum())
        assert (candidate.n, candidate.errors) == (n, errors)
        assert candidate.error_upper_bound == pytest.approx(two_sided_exact_high(errors, n, 0.9), rel=1e-9)
        assert candidate.automation_rate == pytest.approx(np.mean(recent >= candidate.threshold))
        assert candidate.qualifies == (candidate.error_upper_bound < 0.02)
    qualifying = [candidate.threshold for candidate in result.candidates if candidate.qualifies]
    assert result.recommended_threshold == (qualifying[0] if qualifying else None)


def test_a_small_flawless_sample_does_not_over_automate():
    result = recommend([(0.99, False)] * 100)

    assert result.recommended_threshold is None
    assert result.recommended is None
    assert result.reason == (
        "no threshold recommended: too few labelled cases (100 at or above 0.50); even with no error, "
        "the 95% upper bound stays at or above 2% below 149 cases"
    )


def test_no_threshold_qualifies_without_labelled_cases():
    result = recommend([])

    assert result.recommended_threshold is None
    assert result.reason.startswith("no threshold recommended: there are no labelled cases")
    assert result.current.error_sentence == (
        "at 0.90, no labelled case is at or above the threshold, so its error rate is unknown"
    )


def test_no_threshold_qualifies_when_every_band_errs_too_often_and_the_reason_names_the_best_one():
    labelled = [(0.6, True)] * 50 + [(0.6, False)] * 950 + [(0.97, True)] * 10 + [(0.97, False)] * 490

    result = recommend(labelled)

    assert result.recommended_threshold is None
    assert [candidate.n for candidate in result.candidates[-2:]] == [0, 0]  # nobody at 0.98 or 0.99: no bound
    best = min(result.candidates[:-2], key=lambda candidate: candidate.error_upper_bound)
    assert (best.threshold, best.errors, best.n) == (0.61, 10, 500)
    assert result.reason == (
        "no threshold recommended: none keeps the 95% upper bound on the error rate under 2%; the lowest is "
        f"{best.error_upper_bound * 100:.1f}% at 0.61 (10 errors in 500 labelled cases)"
    )


def test_a_stricter_target_or_a_higher_confidence_never_lowers_the_recommendation():
    labelled = known_error_curve()

    def threshold(**arguments):
        recommended = recommend(labelled, **arguments).recommended_threshold
        return math.inf if recommended is None else recommended

    by_target = [threshold(target_error_rate=target) for target in (0.05, 0.02, 0.01, 0.005, 0.001)]
    by_level = [threshold(confidence_level=level) for level in (0.5, 0.9, 0.99, 0.999)]

    assert by_target == sorted(by_target)
    assert by_target[-1] == math.inf  # no 1% band in this curve is clean enough for a 0.1% target
    assert by_level == sorted(by_level)


def test_the_automation_rate_and_the_labelled_cases_fall_as_the_threshold_rises():
    rng = np.random.default_rng(8)
    labelled = [(float(c), bool(w)) for c, w in zip(rng.uniform(0, 1, 400), rng.random(400) < 0.1, strict=True)]

    result = recommend(labelled, recent_confidences=[*rng.uniform(0, 1, 300).tolist(), None, None])

    rates = [candidate.automation_rate for candidate in result.candidates]
    counts = [candidate.n for candidate in result.candidates]
    assert rates == sorted(rates, reverse=True)
    assert counts == sorted(counts, reverse=True)
    assert result.candidates[0].threshold == 0.5 and result.candidates[-1].threshold == 0.99
    assert [candidate.threshold for candidate in result.candidates] == list(DEFAULT_GRID)


def test_the_workload_sentence_does_the_arithmetic():
    # 1,000 recent cases in 10 days = 100 a day; 60% at or above 0.90 are decided automatically, 5% of those
    # QA-sampled: 40 + 3 = 43 cases a day to review, 2 reviews each = 86 reviews a day against 50 done, so
    # (86 - 50) / 2 = 18 more cases a day than the team decides.
    recent = [0.95] * 600 + [0.5] * 390 + [None] * 10

    grows = recommend(
        [],
        recent_confidences=recent,
        recent_days=10,
        reviewer_capacity_per_day=50,
        reviews_per_case=2,
        qa_sample_rate=0.05,
    )

    point = grows.current
    assert (point.automation_rate, point.cases_per_day) == (0.6, 100)
    assert point.review_cases_per_day == pytest.approx(43)
    assert point.reviews_needed_per_day == pytest.approx(86)
    assert point.queue_growth_per_day == pytest.approx(18)
    assert point.workload_sentence == (
        "at 0.90 the queue grows by about 18 cases a day beyond what the team decides "
        "(86 reviews needed a day against 50 done)"
    )
    assert point.error_sentence.endswith("; 60% of recent cases would be decided automatically")

    room = recommend(
        [],
        recent_confidences=recent,
        recent_days=10,
        reviewer_capacity_per_day=120,
        reviews_per_case=2,
        qa_sample_rate=0.05,
    ).current
    assert room.queue_growth_per_day == pytest.approx(-17)
    assert room.workload_sentence == (
        "at 0.90 the team has room for about 17 more cases a day (86 reviews needed a day against 120 done)"
    )

    even = recommend(
        [],
        recent_confidences=recent,
        recent_days=10,
        reviewer_capacity_per_day=86.6,
        reviews_per_case=2,
        qa_sample_rate=0.05,
    ).current
    assert even.workload_sentence == (
        "at 0.90 the review load about matches what the team decides (86 reviews needed a day against 86.6 done)"
    )


def test_the_brief_example_reads_as_promised():
    # 200 cases a day, 40% above 0.90; 1 review each: 120 reviewed a day, the team does 0: +120 a day.
    recent = [0.95] * 40 + [0.7] * 60

    result = recommend([], recent_confidences=recent * 28, recent_days=14, reviewer_capacity_per_day=0)

    assert result.current.workload_sentence.startswith(
        "at 0.90 the queue grows by about 120 cases a day beyond what the team decides"
    )


def test_it_gives_both_operating_points_and_says_when_the_current_threshold_is_the_recommended_one():
    labelled = known_error_curve()
    recent = [i / 100 for i in range(50, 100)] * 20

    moved = recommend(labelled, recent_confidences=recent, current_threshold=0.9)
    kept = recommend(labelled, recent_confidences=recent, current_threshold=0.83)

    assert (moved.current.threshold, moved.recommended.threshold) == (0.9, 0.83)
    assert moved.current.automation_rate == pytest.approx(0.2)
    assert moved.recommended.automation_rate == pytest.approx(0.34)
    assert moved.sentences == (
        moved.reason,
        moved.current.error_sentence,
        moved.current.workload_sentence,
        moved.recommended.error_sentence,
        moved.recommended.workload_sentence,
    )
    assert kept.sentences[-1] == "the current threshold, 0.83, is the recommended one"


def test_a_current_threshold_off_the_grid_is_evaluated_as_it_is():
    result = recommend(known_error_curve(), current_threshold=0.875)

    # Confidences 0.88 .. 0.99: 12,000 cases, 12 x 13 = 156 errors.
    assert (result.current.threshold, result.current.n, result.current.errors) == (0.875, 12_000, 156)
    assert result.current.error_upper_bound == pytest.approx(two_sided_exact_high(156, 12_000, 0.9))


def test_the_bands_give_the_reliability_chart_and_put_each_edge_in_the_band_it_opens():
    labelled = [(0.3, False), (0.5, True), (0.54, False), (0.55, False), (0.95, True), (1.0, False), (1.0, False)]

    bands = {(band.lower, band.upper): band for band in recommend(labelled).bands}

    assert list(bands) == list(itertools.pairwise(DEFAULT_BAND_EDGES))
    assert (bands[0.0, 0.5].n, bands[0.0, 0.5].accuracy) == (1, 1.0)
    assert (bands[0.5, 0.55].n, bands[0.5, 0.55].errors) == (2, 1)
    assert bands[0.5, 0.55].mean_confidence == pytest.approx(0.52)
    assert bands[0.55, 0.6].n == 1
    assert (bands[0.95, 1.0].n, bands[0.95, 1.0].errors) == (3, 1)
    assert bands[0.95, 1.0].accuracy == pytest.approx(2 / 3)
    assert bands[0.6, 0.65].n == 0
    assert bands[0.6, 0.65].error_rate is bands[0.6, 0.65].accuracy is bands[0.6, 0.65].mean_confidence is None


def test_the_bands_match_a_pandas_groupby_on_random_data():
    rng = np.random.default_rng(9)
    confidences = rng.uniform(0.2, 1, 2000)
    wrong = rng.random(2000) < (1 - confidences) / 2

    bands = recommend(list(zip(confidences.tolist(), wrong.tolist(), strict=True))).bands

    frame = pd.DataFrame({"confidence": confidences, "wrong": wrong})
    frame["band"] = pd.cut(frame.confidence, list(DEFAULT_BAND_EDGES), right=False)
    grouped = frame.groupby("band", observed=False).agg(
        n=("wrong", "size"), errors=("wrong", "sum"), mean_confidence=("confidence", "mean")
    )
    assert [band.n for band in bands] == grouped.n.tolist()
    assert [band.errors for band in bands] == grouped.errors.tolist()
    assert [band.mean_confidence for band in bands] == pytest.approx(grouped.mean_confidence.tolist())
    assert [band.accuracy for band in bands] == pytest.approx((1 - grouped.errors / grouped.n).tolist())
    for band in bands:
        assert band.error_upper_bound == pytest.approx(two_sided_exact_high(band.errors, band.n, 0.9))


def test_the_recommendation_is_plain_json():
    result = recommend(known_error_curve(), recent_confidences=[0.5, 0.9, None])

    plain = result.as_dict()

    assert json.loads(json.dumps(plain, allow_nan=False)) == plain
    assert isinstance(plain["candidates"], list) and isinstance(plain["sentences"], list)
    assert plain["current"] == result.current.as_dict()


@pytest.mark.parametrize(
    "overrides",
    [
        {"labelled": [(1.2, False)]},
        {"labelled": [(math.nan, False)]},
        {"recent_confidences": [-0.1]},
        {"current_threshold": 2},
        {"target_error_rate": 0},
        {"confidence_level": 1},
        {"qa_sample_rate": 1.5},
        {"recent_days": 0},
        {"reviews_per_case": 0},
        {"reviewer_capacity_per_day": -1},
        {"grid": [0.9, 0.8]},
        {"grid": []},
        {"band_edges": [0.0, 0.5]},
    ],
)
def test_it_refuses_input_it_cannot_reason_about(overrides):
    with pytest.raises(ValueError):
        recommend(**{"labelled": [(0.9, False)], **overrides})
