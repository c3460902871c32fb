"""The bias audit engine against hand-computed tables, against fairlearn over the raw cases, and its bootstrap's
coverage on simulated populations (no database)."""

import json
import math
from functools import cache, partial

import numpy as np
import pandas as pd
import pytest
import sklearn.metrics as skm
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equal_opportunity_ratio,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)

from audits.fairness import (
    BETWEEN_GROUP_METRICS,
    OverallVerdict,
    Thresholds,
    Verdict,
    audit_fairness,
    audit_inputs_canonical,
    audit_recompute,
    between_group_figures_from_counts,
    bootstrap_intervals,
    review_amplification,
    reviewer_override_directions,
)

COLUMNS = ["sex", "y_true", "y_pred", "count"]

# Hand-computed table. female: TP 12, FN 8, FP 4, TN 16, and 20 cases without a known outcome (6 approved):
# 60 cases, 40 labelled, 22 approved. male: TP 24, FN 6, FP 6, TN 14, 10 unlabelled approved: 60 cases, 50
# labelled, 40 approved.
HAND_CELLS = [
    ("female", "approve", "approve", 12),
    ("female", "approve", "deny", 8),
    ("female", "deny", "approve", 4),
    ("female", "deny", "deny", 16),
    ("female", None, "approve", 6),
    ("female", None, "deny", 14),
    ("male", "approve", "approve", 24),
    ("male", "approve", "deny", 6),
    ("male", "deny", "approve", 6),
    ("male", "deny", "deny", 14),
    ("male", None, "approve", 10),
]


def cells_of(rows, columns=COLUMNS):
    return pd.DataFrame(rows, columns=columns)


def audit(rows, **options):
    options.setdefault("min_group_size", 30)
    return audit_fairness(cells=cells_of(rows), attributes=["sex"], positive_label="approve", **options)


def between(result, metric, scope=0):
    return next(m for m in result.scopes[scope].between_groups if m.metric == metric)


def group(result, label, scope=0):
    return next(g for g in result.scopes[scope].groups if g.label == label)


# Per group


def test_every_per_group_metric_matches_the_hand_computed_table():
    result = audit(HAND_CELLS)
    female, male = group(result, "sex = female"), group(result, "sex = male")

    assert (female.count, female.count_with_ground_truth, female.actual_positives, female.actual_negatives) == (
        60,
        40,
        20,
        20,
    )
    assert female.selection_rate == pytest.approx(22 / 60)
    assert female.accuracy == pytest.approx(28 / 40)
    assert female.true_positive_rate == pytest.approx(12 / 20)
    assert female.false_positive_rate == pytest.approx(4 / 20)
    assert female.false_negative_rate == pytest.approx(8 / 20)
    assert female.precision == pytest.approx(12 / 16)
    assert (male.count, male.count_with_ground_truth, male.actual_positives, male.actual_negatives) == (60, 50, 30, 20)
    assert male.selection_rate == pytest.approx(40 / 60)
    assert male.accuracy == pytest.approx(38 / 50)
    assert male.true_positive_rate == pytest.approx(24 / 30)
    assert male.false_positive_rate == pytest.approx(6 / 20)
    assert male.false_negative_rate == pytest.approx(6 / 30)
    assert male.precision == pytest.approx(24 / 30)
    assert (result.total_count, result.count_with_ground_truth) == (120, 90)


def test_between_group_metrics_match_the_hand_computed_table_and_name_their_groups():
    result = audit(HAND_CELLS)
    expected = {
        # metric: (value, deciding rate, lowest group, highest group)
        "demographic_parity_difference": (40 / 60 - 22 / 60, "selection_rate", "female", "male"),
        "demographic_parity_ratio": ((22 / 60) / (40 / 60), "selection_rate", "female", "male"),
        # TPR differ by 0.2, FPR by 0.1: the TPR decides the difference; ratios 0.75 and 2/3: the FPR the ratio.
        "equalized_odds_difference": (0.8 - 0.6, "true_positive_rate", "female", "male"),
        "equalized_odds_ratio": (0.2 / 0.3, "false_positive_rate", "female", "male"),
        "equal_opportunity_difference": (0.8 - 0.6, "true_positive_rate", "female", "male"),
        "equal_opportunity_ratio": (0.6 / 0.8, "true_positive_rate", "female", "male"),
    }
    for metric, (value, rate, lowest, highest) in expected.items():
        figure = between(result, metric)
        assert figure.value == pytest.approx(value), metric
        assert (figure.rate, figure.lowest_group, figure.highest_group) == (
            rate,
            f"sex = {lowest}",
            f"sex = {highest}",
        ), metric
        assert figure.groups_compared == ["sex = female", "sex = male"]
    assert between(result, "equalized_odds_ratio").lowest_rate == pytest.approx(0.2)
    assert between(result, "equalized_odds_ratio").highest_rate == pytest.approx(0.3)


def test_accuracy_compares_labels_while_error_rates_compare_favourable_or_not():
    # "refer" and "deny" are both unfavourable: a true negative for the rates, a mistake for accuracy.
    rows = [("female", "refer", "deny", 30), ("female", "approve", "approve", 10), ("male", "deny", "deny", 40)]
    female = group(audit(rows), "sex = female")

    assert female.accuracy == pytest.approx(10 / 40)
    assert (female.true_positive_rate, female.false_positive_rate) == (1.0, 0.0)


def test_intersectional_groups_are_audited_after_each_attribute_alone():
    rows = [
        ("female", "<25", "approve", "approve", 40),
        ("female", "25+", None, "deny", 35),
        ("male", "<25", "deny", "approve", 31),
        ("male", "25+", "approve", "deny", 33),
    ]
    result = audit_fairness(
        cells=cells_of(rows, ["sex", "age_band", "y_true", "y_pred", "count"]),
        attributes=["sex", "age_band"],
        positive_label="approve",
    )

    assert [(s.name, s.intersectional) for s in result.scopes] == [
        ("sex", False),
        ("age_band", False),
        ("sex & age_band", True),
    ]
    intersection = result.scopes[2]
    assert [(g.label, g.count, g.group) for g in intersection.groups] == [
        ("sex = female, age_band = 25+", 35, {"sex": "female", "age_band": "25+"}),
        ("sex = female, age_band = <25", 40, {"sex": "female", "age_band": "<25"}),
        ("sex = male, age_band = 25+", 33, {"sex": "male", "age_band": "25+"}),
        ("sex = male, age_band = <25", 31, {"sex": "male", "age_band": "<25"}),
    ]
    assert between(result, "demographic_parity_difference", scope=2).value == pytest.approx(1.0)


# The small-group rule, missing ground truth, zero denominators


def test_a_small_group_is_shown_but_left_out_of_the_between_group_figures():
    rows = [*HAND_CELLS, ("other", "approve", "deny", 5), ("other", None, "deny", 7)]
    result = audit(rows)
    other = group(result, "sex = other")

    assert (other.count, other.too_small_to_judge, other.selection_rate, other.true_positive_rate) == (
        12,
        True,
        0.0,
        0.0,
    )
    ratio = between(result, "demographic_parity_ratio")
    assert ratio.value == pytest.approx(0.55)
    assert (ratio.groups_compared, ratio.groups_left_out) == (["sex = female", "sex = male"], ["sex = other"])
    assert between(result, "equalized_odds_difference").groups_left_out == ["sex = other"]
    note = "Left out of the between-group figures as too small to judge (fewer than 30 cases): sex = other (12 cases)."
    assert result.scopes[0].notes == [note]
    assert note in result.summary


def test_a_group_with_few_known_outcomes_is_left_out_of_the_error_rate_comparisons_only():
    rows = [*HAND_CELLS, ("other", "approve", "approve", 5), ("other", None, "approve", 35)]
    result = audit(rows)

    assert group(result, "sex = other").too_small_to_judge_error_rates
    assert not group(result, "sex = other").too_small_to_judge
    assert "sex = other" in between(result, "demographic_parity_ratio").groups_compared
    assert between(result, "equal_opportunity_ratio").groups_left_out == ["sex = other"]
    assert result.scopes[0].notes == [
        "Left out of the error-rate comparisons as too small to judge (fewer than 30 cases with a known outcome): "
        "sex = other (5 with a known outcome)."
    ]


def test_fewer_than_two_large_groups_cannot_be_judged_and_leave_the_audit_inconclusive():
    result = audit(HAND_CELLS, min_group_size=61)

    assert {m.verdict for m in result.scopes[0].between_groups} == {Verdict.TOO_SMALL_TO_JUDGE}
    assert between(result, "demographic_parity_ratio").value is None
    assert result.verdict == OverallVerdict.INCONCLUSIVE
    assert result.summary[:2] == [
        "The audit is inconclusive: no check could be judged. 2 checks could not be judged.",
        "Across sex, the demographic parity ratio was not judged: fewer than two groups have at least 61 cases.",
    ]


def test_without_ground_truth_only_the_selection_rate_metrics_are_computed():
    rows = [("female", None, "approve", 3998), ("female", None, "deny", 6002), ("male", None, "approve", 50)]
    rows.append(("male", None, "deny", 50))
    result = audit(rows)
    female = group(result, "sex = female")

    assert (female.count_with_ground_truth, female.accuracy, female.true_positive_rate, female.precision) == (
        0,
        None,
        None,
        None,
    )
    assert female.notes == ["No case of this group has a known true outcome: its error rates are not computed."]
    for metric in ("equalized_odds_difference", "equalized_odds_ratio", "equal_opportunity_ratio"):
        assert between(result, metric).verdict == Verdict.NO_GROUND_TRUTH
        assert between(result, metric).value is None
    assert between(result, "equalized_odds_difference").summary == (
        "Across sex, the equalized odds difference could not be computed: no case has a known true outcome."
    )
    assert between(result, "demographic_parity_ratio").value == pytest.approx(0.7996)
    # The judged check failed; the one without ground truth leaves it failed, not inconclusive.
    assert result.verdict == OverallVerdict.FAILED


def test_a_group_without_actual_positives_gets_fairlearns_true_positive_rate_of_zero():
    rows = [*HAND_CELLS, ("other", "deny", "approve", 10), ("other", "deny", "deny", 30)]
    result = audit(rows)
    other = group(result, "sex = other")

    # scikit-learn's normalised confusion matrix turns 0/0 into 0, and fairlearn's rates follow it.
    assert (other.actual_positives, other.true_positive_rate, other.false_negative_rate) == (0, 0.0, 0.0)
    assert other.notes == [
        "No case of this group has the true outcome approve: fairlearn reports its true positive and false "
        "negative rates as 0 (scikit-learn turns 0/0 into 0)."
    ]
    ratio = between(result, "equal_opportunity_ratio")
    assert (ratio.value, ratio.lowest_group, ratio.verdict) == (0.0, "sex = other", Verdict.NO_THRESHOLD)
    assert ratio.notes == [
        "sex = other: no case with the true outcome approve; fairlearn counts the true positive rate of such a "
        "group as 0 (0/0), so this figure reflects that convention rather than a measured rate."
    ]


def test_a_ratio_of_zero_to_zero_is_undefined_as_in_fairlearn():
    rows = [("female", "approve", "deny", 40), ("male", "deny", "deny", 40)]
    result = audit(rows)
    ratio = between(result, "demographic_parity_ratio")

    assert (ratio.value, ratio.verdict) == (None, Verdict.UNDEFINED)
    assert ratio.summary == (
        "Across sex, the demographic parity ratio is undefined: the approve rates of every compared group are 0 "
        "(0/0; fairlearn gives NaN)."
    )
    assert between(result, "demographic_parity_difference").value == 0.0
    # Every TPR and FPR is 0: fairlearn's min() keeps the NaN TPR ratio first in line.
    assert between(result, "equalized_odds_ratio").verdict == Verdict.UNDEFINED
    assert result.verdict == OverallVerdict.PASSED  # the equalized odds difference (0) was the one judged check


# Verdicts and wording


def test_the_four_fifths_rule_and_the_equalized_odds_limit_fail_the_hand_table_in_plain_words():
    result = audit(HAND_CELLS)

    assert between(result, "demographic_parity_ratio").verdict == Verdict.FAILED
    assert between(result, "equalized_odds_difference").verdict == Verdict.FAILED
    assert between(result, "demographic_parity_difference").verdict == Verdict.NO_THRESHOLD
    assert result.verdict == OverallVerdict.FAILED
    assert result.summary == [
        "The audit failed: 2 of 2 judged checks failed.",
        "Across sex, cases with sex = female received approve at 55% of the rate of cases with sex = male "
        "(37% against 67%); the four-fifths rule requires at least 80%, so this fails.",
        "Across sex, the true positive rates (the shares of cases whose true outcome is approve that were given "
        "approve) of cases with sex = male (80%) and cases with sex = female (60%) differ by 0.20; at most 0.10 "
        "is allowed, so this fails.",
    ]


def test_configured_thresholds_pass_a_ratio_exactly_at_the_limit_and_judge_other_metrics():
    thresholds = Thresholds(
        demographic_parity_ratio_min=0.55, equalized_odds_difference_max=0.2, equal_opportunity_ratio_min=0.8
    )
    result = audit(HAND_CELLS, thresholds=thresholds)

    assert between(result, "demographic_parity_ratio").verdict == Verdict.PASSED
    assert between(result, "equalized_odds_difference").verdict == Verdict.PASSED
    assert between(result, "equal_opportunity_ratio").verdict == Verdict.FAILED
    assert result.verdict == OverallVerdict.FAILED
    assert between(result, "demographic_parity_ratio").summary == (
        "Across sex, cases with sex = female received approve at 55% of the rate of cases with sex = male "
        "(37% against 67%); at least 55% is required, so this passes."
    )
    assert between(result, "equal_opportunity_ratio").summary == (
        "Across sex, the true positive rate (the share of cases whose true outcome is approve that were given "
        "approve) of cases with sex = female is 75% of that of cases with sex = male (60% against 80%); at least "
        "80% is required, so this fails."
    )


def test_all_judged_checks_passing_passes_the_audit():
    thresholds = Thresholds(demographic_parity_ratio_min=0.5, equalized_odds_difference_max=0.25)
    result = audit(HAND_CELLS, thresholds=thresholds)

    assert result.verdict == OverallVerdict.PASSED
    assert result.summary[0] == "The audit passed: all 2 judged checks passed."


def test_a_failing_ratio_is_never_rounded_up_to_its_threshold_in_words():
    rows = [("female", None, "approve", 3998), ("female", None, "deny", 6002), ("male", None, "approve", 50)]
    rows.append(("male", None, "deny", 50))

    assert between(audit(rows), "demographic_parity_ratio").summary == (
        "Across sex, cases with sex = female received approve at 79.96% of the rate of cases with sex = male "
        "(40% against 50%); the four-fifths rule requires at least 80%, so this fails."
    )


def test_groups_with_equal_rates_are_said_to_be_equal_not_compared_with_themselves():
    rows = [("female", "approve", "approve", 30), ("female", "deny", "deny", 20)]
    rows += [("male", "approve", "approve", 60), ("male", "deny", "deny", 40)]

    result = audit(rows)

    assert between(result, "demographic_parity_ratio").summary == (
        "Across sex, every compared group has the same approve rate (60%), so the demographic parity ratio is "
        "100%; the four-fifths rule requires at least 80%, so this passes."
    )
    assert between(result, "equalized_odds_difference").summary.startswith(
        "Across sex, every compared group has the same "
    )


def test_thresholds_outside_zero_to_one_are_refused():
    with pytest.raises(ValueError, match="demographic_parity_ratio_min"):
        Thresholds(demographic_parity_ratio_min=80)


@pytest.mark.parametrize(
    ("rows", "columns", "message"),
    [
        ([("female", "approve", "approve", 0)], COLUMNS, "greater than 0"),
        ([("female", "approve", "approve", 1.5)], COLUMNS, "integer"),
        ([(None, "approve", "approve", 3)], COLUMNS, "'sex' has missing values"),
        ([("female", "approve", None, 3)], COLUMNS, "'y_pred' has missing values"),
        ([("female", "approve", "approve", 3, "x")], [*COLUMNS, "region"], "exactly the columns"),
        ([], COLUMNS, "no cells"),
    ],
)
def test_it_refuses_malformed_cells(rows, columns, message):
    with pytest.raises(ValueError, match=message):
        audit_fairness(cells=cells_of(rows, columns), attributes=["sex"], positive_label="approve")


def test_the_result_is_plain_json():
    result = audit(HAND_CELLS, bootstrap_samples=50, seed=1).as_dict()
    text = json.dumps(result, allow_nan=False)

    figure = json.loads(text)["scopes"][0]["between_groups"][1]
    assert (figure["metric"], figure["verdict"], len(figure["interval"])) == ("demographic_parity_ratio", "failed", 2)
    assert json.loads(text)["thresholds"]["demographic_parity_ratio_min"] == 0.8


# Equality with fairlearn over the raw cases


def random_cases(seed):
    """Cases with a rare attribute value, unknown outcomes (30%) and 2 or 3 labels."""
    rng = np.random.default_rng(seed)
    size = int(rng.integers(600, 1500))
    labels = ["approve", "deny", "refer"][: 2 + seed % 2]
    cases = {}
    # About 2% "other": that group and its intersections are small.
    cases["sex"] = rng.choice(["female", "male", "other"], size=size, p=[0.49, 0.49, 0.02])
    bands = ["<25", "25-50", "50+", "70+"][: int(rng.integers(2, 5))]
    cases["age_band"] = rng.choice(bands, size=size, p=rng.dirichlet(np.ones(len(bands)) * 2))
    cases["y_true"] = np.where(rng.random(size) < 0.3, None, rng.choice(labels, size=size)).astype(object)
    cases["y_pred"] = rng.choice(labels, size=size, p=rng.dirichlet(np.ones(len(labels)) * 3))
    return pd.DataFrame(cases)


def aggregated(cases):
    return cases.groupby(list(cases.columns), dropna=False).size().reset_index(name="count")


def fairlearn_over_cases(cases, attributes, min_group_size):
    """Per-group and between-group figures from plain MetricFrames over the cases themselves, no weights."""
    features = cases[list(attributes)]
    by_group = MetricFrame(
        metrics={"selection_rate": partial(selection_rate, pos_label="approve")},
        y_true=cases["y_true"],
        y_pred=cases["y_pred"],
        sensitive_features=features,
    ).by_group
    known = cases[cases["y_true"].notna()]
    truth, guess = (known["y_true"] == "approve").astype(int), (known["y_pred"] == "approve").astype(int)
    rates = MetricFrame(
        metrics={
            "true_positive_rate": true_positive_rate,
            "false_positive_rate": false_positive_rate,
            "false_negative_rate": false_negative_rate,
            "precision": partial(skm.precision_score, zero_division=np.nan),
        },
        y_true=truth,
        y_pred=guess,
        sensitive_features=known[list(attributes)],
    ).by_group
    accuracy = MetricFrame(
        metrics={"accuracy": skm.accuracy_score},
        y_true=known["y_true"].astype(str),
        y_pred=known["y_pred"],
        sensitive_features=known[list(attributes)],
    ).by_group
    # With several features MetricFrame lists every combination of values, also those no case has.
    groups = by_group.join(rates).join(accuracy).dropna(subset=["selection_rate"])
    sizes = features.value_counts()
    large = [key for key, size in sizes.items() if size >= min_group_size]
    known_sizes = known[list(attributes)].value_counts()
    known_large = [key for key, size in known_sizes.items() if size >= min_group_size]
    in_large = pd.Series([tuple(row) in set(large) for row in features.itertuples(index=False)], index=cases.index)
    in_known_large = [tuple(row) in set(known_large) for row in known[list(attributes)].itertuples(index=False)]
    selected = cases[in_large]
    errors = known[in_known_large]
    between = {}
    if len(large) >= 2:
        for metric, function in (
            ("demographic_parity_difference", demographic_parity_difference),
            ("demographic_parity_ratio", demographic_parity_ratio),
        ):
            between[metric] = function(
                selected["y_true"],
                (selected["y_pred"] == "approve").astype(int),
                sensitive_features=selected[list(attributes)],
            )
    if len(known_large) >= 2:
        for metric, function in (
            ("equalized_odds_difference", equalized_odds_difference),
            ("equalized_odds_ratio", equalized_odds_ratio),
            ("equal_opportunity_difference", equal_opportunity_difference),
            ("equal_opportunity_ratio", equal_opportunity_ratio),
        ):
            between[metric] = function(
                (errors["y_true"] == "approve").astype(int),
                (errors["y_pred"] == "approve").astype(int),
                sensitive_features=errors[list(attributes)],
            )
    return groups, between


def same(engine_value, reference):
    if engine_value is None:
        return reference is None or math.isnan(reference)
    return math.isclose(engine_value, reference, rel_tol=0, abs_tol=1e-12)


@cache
def random_audit(seed):
    cases = random_cases(seed)
    cells = aggregated(cases)
    return cases, cells, audit_fairness(cells=cells, attributes=["sex", "age_band"], positive_label="approve")


@pytest.mark.parametrize("seed", range(4))
def test_every_metric_equals_a_plain_metricframe_over_the_raw_cases(seed):
    cases, _, result = random_audit(seed)

    assert [s.name for s in result.scopes] == ["sex", "age_band", "sex & age_band"]
    for scope in result.scopes:
        groups, between_groups = fairlearn_over_cases(cases, scope.attributes, min_group_size=30)
        assert len(scope.groups) == len(groups)
        for figures in scope.groups:
            key = tuple(figures.group.values())
            reference = groups.loc[key if len(key) > 1 else key[0]]
            for metric in groups.columns:
                assert same(getattr(figures, metric), reference[metric]), (scope.name, key, metric)
        for figure in scope.between_groups:
            if figure.metric in between_groups:
                assert same(figure.value, between_groups[figure.metric]), (scope.name, figure.metric)
            else:
                assert figure.verdict == Verdict.TOO_SMALL_TO_JUDGE
    # Some intersections are small, so the small-group rule was exercised in the comparison.
    assert any(g.too_small_to_judge for g in result.scopes[2].groups)


@pytest.mark.parametrize("seed", range(4))
def test_the_bootstraps_count_formulas_give_exactly_fairlearns_figures(seed):
    _, cells, result = random_audit(seed)
    formulas = between_group_figures_from_counts(cells=cells, attributes=["sex", "age_band"], positive_label="approve")

    for scope in result.scopes:
        for figure in scope.between_groups:
            assert formulas[scope.name][figure.metric] == figure.value, (scope.name, figure.metric)


# Bootstrap


def test_the_bootstrap_is_seeded():
    _, cells, _ = random_audit(0)
    options = {"cells": cells, "attributes": ["sex", "age_band"], "positive_label": "approve", "samples": 200}

    assert bootstrap_intervals(**options, seed=5) == bootstrap_intervals(**options, seed=5)
    assert bootstrap_intervals(**options, seed=5) != bootstrap_intervals(**options, seed=6)


def test_the_bootstrap_resamples_cases_so_ten_times_the_cases_narrow_the_interval_about_threefold():
    cells = cells_of(HAND_CELLS)
    bigger = cells.assign(count=cells["count"] * 10)
    options = {"attributes": ["sex"], "positive_label": "approve", "samples": 2000, "seed": 3}

    width, narrower = (
        np.subtract(*bootstrap_intervals(cells=table, **options)["sex"]["demographic_parity_difference"][::-1])
        for table in (cells, bigger)
    )
    assert 2.6 < width / narrower < 3.8  # sqrt(10) = 3.16


def test_the_audit_carries_the_intervals_into_its_figures_and_sentences():
    result = audit(HAND_CELLS, bootstrap_samples=500, seed=2)
    ratio = between(result, "demographic_parity_ratio")

    low, high = ratio.interval
    assert low < ratio.value < high
    assert f"95% confidence interval {low:.0%} to {high:.0%}" in ratio.summary


# Populations with known group rates: share, base rate of approve, true positive rate, false positive rate.
POPULATION = {"a": (0.5, 0.5, 0.80, 0.30), "b": (0.3, 0.4, 0.60, 0.15), "c": (0.2, 0.6, 0.70, 0.22)}


def population_truth():
    selection = {g: base * tpr + (1 - base) * fpr for g, (_, base, tpr, fpr) in POPULATION.items()}
    tprs = {g: figures[2] for g, figures in POPULATION.items()}
    fprs = {g: figures[3] for g, figures in POPULATION.items()}

    def spread(rates):
        return max(rates.values()) - min(rates.values())

    def ratio(rates):
        return min(rates.values()) / max(rates.values())

    return {
        "demographic_parity_difference": spread(selection),
        "demographic_parity_ratio": ratio(selection),
        "equalized_odds_difference": max(spread(tprs), spread(fprs)),
        "equalized_odds_ratio": min(ratio(tprs), ratio(fprs)),
        "equal_opportunity_difference": spread(tprs),
        "equal_opportunity_ratio": ratio(tprs),
    }


def sample_cells(rng, size):
    """Draw cases from the population (30% with an unknown outcome) and aggregate them into cells."""
    names = list(POPULATION)
    members = rng.choice(len(names), size=size, p=[POPULATION[g][0] for g in names])
    base, tpr, fpr = (np.array([POPULATION[g][i] for g in names])[members] for i in (1, 2, 3))
    positive = rng.random(size) < base
    approved = rng.random(size) < np.where(positive, tpr, fpr)
    known = rng.random(size) < 0.7
    cases = pd.DataFrame(
        {
            "group": np.array(names)[members],
            "y_true": np.where(known, np.where(positive, "approve", "deny"), None),
            "y_pred": np.where(approved, "approve", "deny"),
        }
    )
    return aggregated(cases)


def test_the_95_percent_intervals_hold_the_population_value_in_93_to_97_percent_of_400_runs():
    truth = population_truth()
    rng = np.random.default_rng(0)
    held = dict.fromkeys(truth, 0)
    runs = 400
    for run in range(runs):
        intervals = bootstrap_intervals(
            cells=sample_cells(rng, 2000), attributes=["group"], positive_label="approve", samples=400, seed=run
        )["group"]
        for metric, value in truth.items():
            low, high = intervals[metric]
            held[metric] += low <= value <= high

    coverage = {metric: count / runs for metric, count in held.items()}
    assert set(coverage) == set(BETWEEN_GROUP_METRICS)
    assert all(0.93 <= share <= 0.97 for share in coverage.values()), coverage


# Canonical inputs


def test_canonical_inputs_do_not_depend_on_row_order_or_how_cells_were_split():
    cells = cells_of(HAND_CELLS)
    shuffled = cells.sample(frac=1, random_state=4)
    split = pd.concat([shuffled, cells_of([("male", None, "approve", 1)])]).reset_index(drop=True)
    split.loc[split["y_true"].isna() & (split["sex"] == "male") & (split["count"] == 10), "count"] = 9
    options = {"attributes": ["sex"], "positive_label": "approve", "bootstrap_samples": 100, "seed": 7}

    canonical = audit_inputs_canonical(cells=cells, **options)
    assert audit_inputs_canonical(cells=split, **options) == canonical
    assert canonical["columns"] == ["sex", "y_true", "y_pred", "count"]
    assert canonical["cells"][:3] == [
        ["female", None, "approve", 6],
        ["female", None, "deny", 14],
        ["female", "approve", "approve", 12],
    ]
    assert canonical["thresholds"]["equalized_odds_difference_max"] == 0.1
    assert (canonical["min_group_size"], canonical["confidence_level"]) == (30, 0.95)


def test_an_audit_recomputed_from_its_stored_inputs_gives_the_same_result():
    options = {"attributes": ["sex"], "positive_label": "approve", "bootstrap_samples": 200, "seed": 9}
    cells = cells_of(HAND_CELLS)
    stored = json.loads(json.dumps(audit_inputs_canonical(cells=cells, **options)))

    original = audit_fairness(cells=cells, **options).as_dict()
    assert audit_recompute(inputs=stored).as_dict() == original


# Amplification and overrides

# Reviewed cases: female, model approve 40 of 100, final 52 of 100; male 80 of 100 both times.
REVIEWED = [
    ("female", "approve", "approve", 35),
    ("female", "approve", "deny", 5),
    ("female", "deny", "approve", 17),
    ("female", "deny", "deny", 43),
    ("male", "approve", "approve", 75),
    ("male", "approve", "deny", 5),
    ("male", "deny", "approve", 5),
    ("male", "deny", "deny", 15),
]


def amplification(rows, columns=("sex", "model_label", "final_label", "count")):
    return review_amplification(cells=cells_of(rows, list(columns)), attributes=["sex"], positive_label="approve")


def test_review_that_raises_the_lowest_rate_narrows_the_gap():
    scope = amplification(REVIEWED).scopes[0]

    female = next(g for g in scope.groups if g.label == "sex = female")
    assert (female.count, female.model_selection_rate, female.final_selection_rate) == (100, 0.4, 0.52)
    assert (scope.ratio_before, scope.ratio_after) == (pytest.approx(0.5), pytest.approx(0.65))
    assert (scope.difference_before, scope.difference_after) == (pytest.approx(0.4), pytest.approx(0.28))
    assert (scope.lowest_group_before, scope.highest_group_after) == ("sex = female", "sex = male")
    assert scope.direction == "narrowed"
    assert scope.summary == (
        "Across sex, review raised sex = female's approve rate from 50% to 65% of sex = male's: it narrowed the gap."
    )


def test_review_that_lowers_the_lowest_rate_widens_the_gap():
    scope = amplification(REVIEWED, columns=("sex", "final_label", "model_label", "count")).scopes[0]

    assert scope.direction == "widened"
    assert scope.summary == (
        "Across sex, review lowered sex = female's approve rate from 65% to 50% of sex = male's: it widened the gap."
    )


def test_review_that_changes_no_rate_leaves_the_gap_unchanged():
    rows = [(sex, "approve", "approve", n) for sex, n in (("female", 40), ("male", 80))]
    rows += [(sex, "deny", "deny", n) for sex, n in (("female", 60), ("male", 20))]
    scope = amplification(rows).scopes[0]

    assert scope.direction == "unchanged"
    assert scope.summary == "Across sex, review left sex = female's approve rate at 50% of sex = male's."


def test_reviewer_overrides_are_counted_per_direction_and_group():
    rows = [
        ("r1", "female", "approve", "deny", 2),
        ("r1", "female", "deny", "approve", 6),
        ("r1", "female", "approve", "approve", 8),
        ("r1", "female", "deny", "deny", 4),
        ("r1", "male", "approve", "deny", 5),
        ("r1", "male", "approve", "approve", 5),
        ("r1", "male", "deny", "deny", 10),
        ("r2", "female", "approve", "approve", 3),
        ("r2", "female", "deny", "deny", 3),
        ("r2", "male", "approve", "deny", 1),
        ("r2", "male", "deny", "approve", 1),
    ]
    cells = cells_of(rows, ["reviewer", "sex", "model_label", "review_label", "count"])
    first, second = reviewer_override_directions(cells=cells, attributes=["sex"], positive_label="approve")

    female, male = first.scopes["sex"]
    assert first.reviewer == "r1"
    assert (female.reviews, female.model_positive, female.positive_to_negative, female.negative_to_positive) == (
        20,
        10,
        2,
        6,
    )
    assert (female.positive_to_negative_rate, female.negative_to_positive_rate) == (0.2, 0.6)
    assert (female.net_selection_change, female.direction) == (0.2, "towards positive")
    assert female.summary == (
        "On sex = female, reviewer r1 changed 2 of 10 model approve labels away from approve and 6 of 10 other "
        "labels to approve: net +20 percentage points of approve rate, towards approve."
    )
    assert (male.positive_to_negative_rate, male.negative_to_positive_rate) == (0.5, 0.0)
    assert (male.net_selection_change, male.direction) == (-0.25, "away from positive")
    assert [g.direction for g in second.scopes["sex"]] == ["no overrides", "balanced"]
    assert json.dumps([reviewer.as_dict() for reviewer in (first, second)], allow_nan=False)
