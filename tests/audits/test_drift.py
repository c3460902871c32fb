"""PSI of recent intake against a stored reference: hand-computed cases, properties, and pandas + scipy on random data.

Every expected PSI below is written out as its terms, sum((a - e) * ln(a / e)) over the buckets, with empty
shares raised to EMPTY_SHARE = 1e-4.
"""

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.special import rel_entr

from audits.drift import (
    BIN,
    CATEGORY,
    CONFIDENCE,
    DRIFTED,
    EMPTY_SHARE,
    MISSING,
    NOT_COMPARED,
    STABLE,
    UNSEEN,
    UNSEEN_LISTED,
    drift_compare,
    drift_reference_build,
    population_stability_index,
)


def one_feature(reference_values, recent_values, *, categorical=False, bins=10, **compare):
    kind = "categorical" if categorical else "numeric"
    other = "numeric" if categorical else "categorical"
    reference = drift_reference_build(**{kind: {"x": reference_values}, other: {}}, bins=bins)
    return drift_compare(reference=reference, features={"x": recent_values}, **compare).features[0]


def shares(result):
    return [(bucket.reference_share, bucket.recent_share) for bucket in result.buckets]


def test_two_bins_give_the_hand_computed_psi():
    # Reference 1..10 in 2 bins: the median 5 splits them 50/50; recent puts 20% at or below 5 and 80% above.
    result = one_feature(list(range(1, 11)), [1, 2, 6, 7, 8, 9, 10, 11, 12, 13], bins=2)

    # (0.2 - 0.5) ln(0.2 / 0.5) + (0.8 - 0.5) ln(0.8 / 0.5) = 0.3 ln 4
    assert result.psi == pytest.approx(0.4158883083, abs=1e-10)
    assert [bucket.upper for bucket in result.buckets] == [5.0, None]
    assert shares(result) == [(0.5, 0.2), (0.5, 0.8)]
    assert (result.reference_n, result.recent_n, result.kind) == (10, 10, "numeric")


def test_an_empty_bin_counts_with_the_stated_epsilon():
    # Quintiles of 1..10 are 2, 4, 6, 8; recent leaves the (6, 8] bin empty and piles up above 8.
    result = one_feature(list(range(1, 11)), [1, 2, 3, 5, 9, 9, 10, 10, 11, 12], bins=5)

    assert [bucket.upper for bucket in result.buckets] == [2.0, 4.0, 6.0, 8.0, None]
    assert [bucket.recent_share for bucket in result.buckets] == [0.2, 0.1, 0.1, 0.0, 0.6]
    # 0 + 0.1 ln 2 + 0.1 ln 2 + (0.0001 - 0.2) ln(0.0001 / 0.2) + 0.4 ln 3
    assert EMPTY_SHARE == 1e-4
    assert result.psi == pytest.approx(2.0974947532, abs=1e-9)
    assert result.buckets[3].contribution == pytest.approx(0.1999 * math.log(2000))


def test_the_psi_of_a_population_against_itself_is_exactly_zero():
    rng = np.random.default_rng(7)
    amounts = [None if rng.random() < 0.1 else round(float(value), -2) for value in rng.lognormal(8, 1, 500)]
    purposes = [rng.choice(["car", "house", "education", None]) for _ in range(500)]
    confidences = rng.uniform(0.5, 1, 500).tolist()
    reference = drift_reference_build(
        numeric={"amount": amounts}, categorical={"purpose": purposes}, confidence=confidences
    )

    report = drift_compare(
        reference=reference, features={"amount": amounts, "purpose": purposes}, confidence=confidences
    )

    assert [feature.psi for feature in report.features] == [0.0, 0.0, 0.0]
    assert (report.verdict, report.max_psi, report.drifted_features) == (STABLE, 0.0, ())


@pytest.mark.parametrize("seed", range(10))
def test_psi_is_symmetric_non_negative_and_zero_only_for_equal_shares(seed):
    rng = np.random.default_rng(seed)
    size = int(rng.integers(2, 12))
    expected = rng.dirichlet(np.ones(size))
    actual = rng.dirichlet(np.ones(size))
    expected[0] = 0.0  # an empty bucket on one side

    forward = population_stability_index(expected=expected, actual=actual)

    assert forward == pytest.approx(population_stability_index(expected=actual, actual=expected), rel=1e-12)
    assert forward > 0
    assert population_stability_index(expected=actual, actual=actual) == 0.0
    assert population_stability_index(expected=[0.0, 1.0], actual=[0.0, 1.0]) == 0.0


def test_psi_refuses_shares_that_do_not_pair_up():
    with pytest.raises(ValueError, match="pair up"):
        population_stability_index(expected=[0.5, 0.5], actual=[1.0])


def test_a_constant_column_catches_a_shift_either_way():
    constant = [5] * 10

    up = one_feature(constant, [5] * 8 + [6] * 2)
    down = one_feature(constant, [4] * 2 + [5] * 8)
    same = one_feature(constant, [5] * 10)

    assert [bucket.label for bucket in up.buckets] == ["below 5", "equal to 5", "above 5"]
    assert shares(up) == [(0.0, 0.0), (1.0, 0.8), (0.0, 0.2)]
    assert shares(down) == [(0.0, 0.2), (1.0, 0.8), (0.0, 0.0)]
    # (0.8 - 1) ln 0.8 + (0.2 - 0.0001) ln(0.2 / 0.0001); the bucket empty on both sides adds 0
    assert up.psi == pytest.approx(1.5640491119, abs=1e-9)
    assert down.psi == pytest.approx(up.psi)
    assert same.psi == 0.0


def test_tied_quantiles_collapse_and_a_point_mass_at_the_minimum_keeps_its_own_bin():
    # Quintile edges of six zeros then 1..4 are 0, 0, 0, 2: the duplicates collapse to {0, 2}, and the first bin
    # would hold only the zeros, so values below 0 get a bin of their own.
    reference = drift_reference_build(numeric={"x": [0] * 6 + [1, 2, 3, 4]}, categorical={}, bins=5)
    summary = reference["numeric"]["x"]

    assert summary["edges"] == [math.nextafter(0.0, -math.inf), 0.0, 2.0]
    assert summary["shares"] == [0.0, 0.6, 0.2, 0.2]

    result = drift_compare(reference=reference, features={"x": [-1] * 5 + [0] * 5}).features[0]

    assert [bucket.label for bucket in result.buckets] == ["below 0", "equal to 0", "above 0 up to 2", "above 2"]
    assert [bucket.recent_share for bucket in result.buckets] == [0.5, 0.5, 0.0, 0.0]


def test_categories_unseen_in_the_reference_share_one_bucket():
    result = one_feature(["a"] * 6 + ["b"] * 4, ["a"] * 3 + ["b"] * 5 + ["c", "d"], categorical=True)

    assert [(bucket.kind, bucket.label) for bucket in result.buckets] == [
        (CATEGORY, "a"),
        (CATEGORY, "b"),
        (UNSEEN, "not seen in the reference"),
    ]
    assert shares(result) == [(0.6, 0.3), (0.4, 0.5), (0.0, 0.2)]
    # (0.3 - 0.6) ln 0.5 + (0.5 - 0.4) ln 1.25 + (0.2 - 0.0001) ln(0.2 / 0.0001)
    assert result.psi == pytest.approx(1.7496789110, abs=1e-9)
    assert result.unseen_categories == ("c", "d")


def test_unseen_categories_are_listed_most_frequent_first_and_capped():
    recent = ["a"] * 5 + [f"new{index:02d}" for index in range(15) for _ in range(index + 1)]

    result = one_feature(["a"] * 10, recent, categorical=True)

    assert len(result.unseen_categories) == UNSEEN_LISTED
    assert result.unseen_categories[:2] == ("new14", "new13")


def test_numeric_missing_values_form_their_own_bucket():
    # Reference: 1..8 and two missing; the median of the eight present values, 4, splits them.
    result = one_feature([*range(1, 9), None, None], [1, 2, 5, 6, 7, None, None, None, math.nan, np.nan], bins=2)

    assert [(bucket.kind, bucket.label) for bucket in result.buckets] == [
        (BIN, "at or below 4"),
        (BIN, "above 4"),
        (MISSING, "missing"),
    ]
    assert shares(result) == [(0.4, 0.2), (0.4, 0.3), (0.2, 0.5)]
    # (0.2 - 0.4) ln 0.5 + (0.3 - 0.4) ln 0.75 + (0.5 - 0.2) ln 2.5
    assert result.psi == pytest.approx(0.4422848629, abs=1e-10)


def test_categorical_missing_values_form_their_own_bucket_apart_from_a_category_called_missing():
    result = one_feature(
        ["x"] * 7 + ["missing", None, math.nan], ["x"] * 4 + ["missing"] + [None] * 5, categorical=True
    )

    assert [(bucket.kind, bucket.label) for bucket in result.buckets] == [
        (CATEGORY, "x"),
        (CATEGORY, "missing"),
        (MISSING, "missing"),
    ]
    assert shares(result) == [(0.7, 0.4), (0.1, 0.1), (0.2, 0.5)]
    # (0.4 - 0.7) ln(4 / 7) + 0 + (0.5 - 0.2) ln 2.5
    assert result.psi == pytest.approx(0.4427719559, abs=1e-10)
    assert "more cases with x missing" in result.sentence


def test_categories_are_compared_by_their_text():
    result = one_feature([1, np.int64(1), True, "b"], ["1", 1, np.bool_(True), np.str_("b")], categorical=True)

    assert sorted(bucket.label for bucket in result.buckets) == ["1", "b", "true"]
    assert result.psi == 0.0


def test_the_reference_is_plain_json_and_compares_the_same_after_a_round_trip_with_reordered_keys():
    rng = np.random.default_rng(3)
    reference = drift_reference_build(
        numeric={"amount": rng.normal(5000, 1500, 300).tolist(), "age": rng.integers(18, 80, 300).tolist()},
        categorical={"purpose": rng.choice(["car", "house", "tv"], 300).tolist()},
        confidence=rng.uniform(0.5, 1, 300).tolist(),
    )
    recent = {
        "amount": rng.normal(6000, 1500, 200).tolist(),
        "age": rng.integers(18, 60, 200).tolist(),
        "purpose": rng.choice(["car", "house", "boat"], 200).tolist(),
    }
    recent_confidence = rng.uniform(0.4, 1, 200).tolist()

    def reversed_keys(value):
        # PostgreSQL's jsonb does not keep the order of keys.
        if isinstance(value, dict):
            return {key: reversed_keys(value[key]) for key in reversed(list(value))}
        return value

    stored = json.loads(json.dumps(reference, allow_nan=False))

    assert stored == reference
    assert drift_compare(
        reference=reversed_keys(stored), features=recent, confidence=recent_confidence
    ) == drift_compare(reference=reference, features=recent, confidence=recent_confidence)


@pytest.mark.parametrize("seed", range(12))
def test_numeric_psi_matches_numpy_quantiles_and_binning_and_scipy_relative_entropy(seed):
    rng = np.random.default_rng(seed)
    bins = int(rng.integers(2, 15))
    reference_values = np.round(rng.lognormal(8, 1, int(rng.integers(20, 400))), -2)
    reference_values[rng.random(reference_values.size) < 0.05] = np.nan
    if seed % 3 == 0:
        reference_values[: reference_values.size // 2] = 0.0  # a point mass at the minimum
    recent_values = np.round(rng.lognormal(8.3, 1.2, int(rng.integers(1, 400))), -2) - (200 if seed % 2 else 0)
    recent_values[rng.random(recent_values.size) < 0.1] = np.nan

    result = one_feature(reference_values.tolist(), recent_values.tolist(), bins=bins)

    present = reference_values[~np.isnan(reference_values)]
    edges = sorted(set(np.quantile(present, np.arange(1, bins) / bins, method="inverted_cdf").tolist()))
    if edges[0] == present.min():
        edges.insert(0, math.nextafter(edges[0], -math.inf))
    with_missing = bool(np.isnan(reference_values).any() or np.isnan(recent_values).any())

    def bucket_shares(values):
        series = pd.Series(values)
        # right=True: bin i holds edges[i - 1] < x <= edges[i]
        counts = np.bincount(np.digitize(series.dropna(), edges, right=True), minlength=len(edges) + 1)
        missing = [int(series.isna().sum())] if with_missing else []
        return [count / series.size for count in [*counts.tolist(), *missing]]

    expected = np.maximum(bucket_shares(reference_values), EMPTY_SHARE)
    actual = np.maximum(bucket_shares(recent_values), EMPTY_SHARE)
    independent = float(np.sum(rel_entr(actual, expected) + rel_entr(expected, actual)))

    assert [bucket.upper for bucket in result.buckets if bucket.kind == BIN] == [*edges, None]
    assert [bucket.reference_share for bucket in result.buckets] == pytest.approx(bucket_shares(reference_values))
    assert [bucket.recent_share for bucket in result.buckets] == pytest.approx(bucket_shares(recent_values))
    assert result.psi == pytest.approx(independent, rel=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_categorical_psi_matches_pandas_shares_and_scipy_relative_entropy(seed):
    rng = np.random.default_rng(100 + seed)
    categories = ["car", "house", "education", "tv", "boat", "holiday"]
    reference_values = rng.choice(categories[:4], int(rng.integers(10, 300)), p=rng.dirichlet(np.ones(4))).tolist()
    recent_values = rng.choice(categories, int(rng.integers(1, 300)), p=rng.dirichlet(np.ones(6))).tolist()

    result = one_feature(reference_values, recent_values, categorical=True)

    reference_shares = pd.Series(reference_values).value_counts(normalize=True)
    recent_shares = pd.Series(recent_values).value_counts(normalize=True)
    seen = list(reference_shares.index)
    expected = [reference_shares[category] for category in seen]
    actual = [recent_shares.get(category, 0.0) for category in seen]
    unseen_share = float(recent_shares[~recent_shares.index.isin(seen)].sum())
    if unseen_share:
        expected.append(0.0)
        actual.append(unseen_share)
    clipped_e = np.maximum(expected, EMPTY_SHARE)
    clipped_a = np.maximum(actual, EMPTY_SHARE)

    assert result.psi == pytest.approx(float(np.sum(rel_entr(clipped_a, clipped_e) + rel_entr(clipped_e, clipped_a))))
    assert sorted(bucket.recent_share for bucket in result.buckets) == pytest.approx(sorted(actual))


def test_a_drifted_feature_is_told_in_words_with_the_range_most_cases_moved_to():
    reference = drift_reference_build(numeric={"credit_amount": [100 * i for i in range(1, 101)]}, categorical={})

    report = drift_compare(
        reference=reference, features={"credit_amount": [130 * i for i in range(1, 101)]}, noun="applications"
    )

    assert report.sentences == (
        "credit_amount shifted (PSI 0.30 > 0.25): more applications above 9,000 "
        "(31% of recent applications vs 10% in the reference)",
    )
    assert (report.verdict, report.drifted_features) == (DRIFTED, ("credit_amount",))


def test_neighbouring_bins_that_moved_the_same_way_are_told_as_one_range():
    # Quintile edges 2, 4, 6, 8; recent moves every case to 4 or below.
    result = one_feature(list(range(1, 11)), [1, 1, 1, 1, 1, 2, 3, 4, 4, 4], bins=5)

    assert [bucket.recent_share for bucket in result.buckets] == [0.6, 0.4, 0.0, 0.0, 0.0]
    # (0.6 - 0.2) ln 3 + (0.4 - 0.2) ln 2 + 3 x (0.0001 - 0.2) ln(0.0001 / 0.2) = 5.1363
    assert result.psi == pytest.approx(0.4 * math.log(3) + 0.2 * math.log(2) + 3 * 0.1999 * math.log(2000))
    assert result.sentence == (
        "x shifted (PSI 5.14 > 0.25): more cases at or below 4 (100% of recent cases vs 40% in the reference)"
    )


def test_the_threshold_is_an_argument_and_the_psi_is_printed_precisely_enough_near_it():
    values = list(range(1, 11))
    recent = [1, 2, 6, 7, 8, 9, 10, 11, 12, 13]  # PSI 0.3 ln 4 = 0.41589

    assert one_feature(values, recent, bins=2, threshold=0.5).sentence == "x stable (PSI 0.42 <= 0.5)"
    assert one_feature(values, recent, bins=2, threshold=0.42).sentence == "x stable (PSI 0.416 <= 0.42)"
    drifted = one_feature(values, recent, bins=2, threshold=0.1)
    assert drifted.drifted
    assert drifted.sentence.startswith("x shifted (PSI 0.42 > 0.1): more cases above 5 (80% of recent cases vs 50%")


def test_the_confidence_is_compared_like_a_numeric_feature_and_told_as_such():
    # Confidences 0.50..0.99, twice each: the deciles are 0.54, 0.59, ... 0.94.
    reference = drift_reference_build(numeric={}, categorical={}, confidence=[i / 100 for i in range(50, 100)] * 2)

    report = drift_compare(reference=reference, features={}, confidence=[0.52] * 90 + [0.97] * 10)

    (confidence,) = report.features
    assert (confidence.name, confidence.kind) == (CONFIDENCE, CONFIDENCE)
    assert reference["confidence"]["edges"] == [i / 100 for i in range(54, 95, 5)]
    assert confidence.sentence.startswith("the model's confidence shifted (PSI ")
    assert confidence.sentence.endswith(
        "more cases with a confidence at or below 0.54 (90% of recent cases vs 10% in the reference)"
    )


def test_features_without_recent_values_or_without_a_reference_are_not_compared():
    reference = drift_reference_build(numeric={"amount": [1, 2, 3]}, categorical={"purpose": ["car"]})

    report = drift_compare(reference=reference, features={"purpose": [], "colour": ["red"]})

    assert [(feature.name, feature.psi, feature.drifted) for feature in report.features] == [
        ("amount", None, False),
        ("purpose", None, False),
    ]
    assert (report.verdict, report.max_psi) == (NOT_COMPARED, None)
    assert report.features_without_reference == ("colour",)
    assert report.sentences == (
        "amount: no recent values, so not compared",
        "purpose: no recent values, so not compared",
        "colour: not in the reference, so not compared",
    )


def test_a_reference_without_cases_is_not_compared():
    reference = drift_reference_build(numeric={"amount": []}, categorical={"purpose": []})

    report = drift_compare(reference=reference, features={"amount": [1.0], "purpose": ["car"]})

    assert [feature.psi for feature in report.features] == [None, None]
    assert report.features[0].sentence == "amount: no cases in the reference, so not compared"


def test_an_all_missing_reference_column_still_compares_its_missing_share():
    result = one_feature([None] * 4, [None, None, 3.0, 4.0])

    assert shares(result) == [(0.0, 0.5), (1.0, 0.5)]
    # (0.5 - 0.0001) ln(0.5 / 0.0001) + (0.5 - 1) ln 0.5
    assert result.psi == pytest.approx(0.4999 * math.log(5000) + 0.5 * math.log(2))


def test_the_report_is_plain_json():
    rng = np.random.default_rng(11)
    reference = drift_reference_build(
        numeric={"amount": rng.normal(0, 1, 50).tolist()},
        categorical={"purpose": rng.choice(["a", "b"], 50).tolist()},
        confidence=rng.uniform(0.5, 1, 50).tolist(),
    )
    report = drift_compare(
        reference=reference,
        features={"amount": rng.normal(2, 1, 50).tolist(), "purpose": ["c"] * 50},
        confidence=rng.uniform(0.5, 1, 50).tolist(),
    )

    plain = report.as_dict()

    assert json.loads(json.dumps(plain, allow_nan=False)) == plain
    assert isinstance(plain["features"], list) and isinstance(plain["features"][0]["buckets"], list)
    assert plain["features"][0] == report.features[0].as_dict()


@pytest.mark.parametrize(
    ("build", "message"),
    [
        ({"numeric": {"x": ["1"]}, "categorical": {}}, "not a number"),
        ({"numeric": {"x": [True]}, "categorical": {}}, "not a number"),
        ({"numeric": {"x": [math.inf]}, "categorical": {}}, "not a finite number"),
        ({"numeric": {"x": [1]}, "categorical": {}, "bins": 1}, "at least 2"),
        ({"numeric": {"x": [1]}, "categorical": {"x": ["a"]}}, "both numeric and categorical"),
        ({"numeric": {}, "categorical": {"x": [["a"]]}}, "not a category"),
    ],
)
def test_it_refuses_values_it_cannot_bin(build, message):
    with pytest.raises(ValueError, match=message):
        drift_reference_build(**build)


def test_it_refuses_an_unknown_reference_format_and_a_threshold_of_zero():
    reference = drift_reference_build(numeric={"x": [1, 2]}, categorical={})

    with pytest.raises(ValueError, match="format"):
        drift_compare(reference={**reference, "format": 2}, features={})
    with pytest.raises(ValueError, match="above 0"):
        drift_compare(reference=reference, features={}, threshold=0)
