"""Inter-rater agreement statistics against textbook values, and the per-reviewer figures (no database)."""

import pytest

from reviews.agreement import (
    MatchRate,
    agreement_with_final,
    cohens_kappa,
    fleiss_kappa,
    krippendorff_alpha_nominal,
    median_time_by_reviewer,
    model_agreement_rate,
    percent_agreement,
    reviewer_accuracy_on_gold,
)

# Wikipedia's Fleiss' kappa example: 10 items, 14 raters each, 5 categories; one row of category counts per
# item. Its worked figures: P = 0.378, P_e = 0.213, kappa = 0.210.
FLEISS_COUNTS = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]
FLEISS_ITEMS = [[category for category, n in zip("ABCDE", row, strict=True) for _ in range(n)] for row in FLEISS_COUNTS]

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C (nominal data, any number of
# observers, missing data): 4 observers (rows) x 12 units (columns); None is a missing value.
KRIPPENDORFF_OBSERVERS = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]
KRIPPENDORFF_UNITS = [list(unit) for unit in zip(*KRIPPENDORFF_OBSERVERS, strict=True)]


# Percent agreement


def test_percent_agreement_is_the_mean_share_of_agreeing_pairs_per_item():
    # Items: 3 of 3 pairs agree (1), 1 of 3 (1/3), 0 of 1 (0); a lone rating and a missing one are not pairs.
    items = [["a", "a", "a"], ["a", "b", "a"], ["a", "b"], ["a"], ["b", None]]

    assert percent_agreement(items) == pytest.approx(4 / 9)


def test_percent_agreement_on_the_fleiss_example_is_its_mean_item_agreement():
    assert percent_agreement(FLEISS_ITEMS) == pytest.approx(0.378, abs=5e-4)


def test_percent_agreement_without_any_pair_is_undefined():
    assert percent_agreement([]) is None
    assert percent_agreement([["a"], [None, "b"]]) is None


# Cohen's kappa


def test_cohens_kappa_matches_the_two_by_two_textbook_example():
    # 50 proposals: both yes 20, A yes B no 5, A no B yes 10, both no 15.
    # p_o = 35/50 = 0.7; A says yes 25/50, B 30/50: p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5; kappa = 0.2 / 0.5 = 0.4.
    pairs = [("yes", "yes")] * 20 + [("yes", "no")] * 5 + [("no", "yes")] * 10 + [("no", "no")] * 15

    assert cohens_kappa(pairs) == pytest.approx(0.4)


def test_cohens_kappa_matches_a_three_label_example_computed_by_hand():
    # 10 cases. Agree: approve 4, deny 2, refer 1 -> p_o = 0.7.
    # A: approve 6, deny 3, refer 1; B: approve 5, deny 3, refer 2.
    # p_e = (6*5 + 3*3 + 1*2) / 100 = 0.41; kappa = (0.7 - 0.41) / (1 - 0.41) = 0.29 / 0.59 = 0.4915.
    pairs = (
        [("approve", "approve")] * 4
        + [("deny", "deny")] * 2
        + [("refer", "refer"), ("approve", "deny"), ("deny", "approve"), ("approve", "refer")]
    )

    assert cohens_kappa(pairs) == pytest.approx(0.29 / 0.59)


def test_cohens_kappa_is_one_for_perfect_agreement_and_negative_for_systematic_disagreement():
    assert cohens_kappa([("a", "a"), ("b", "b"), ("a", "a")]) == pytest.approx(1.0)
    # p_o = 0, p_e = 0.5 * 0.5 + 0.5 * 0.5 = 0.5: kappa = -1.
    assert cohens_kappa([("a", "b"), ("b", "a")]) == pytest.approx(-1.0)


def test_cohens_kappa_skips_incomplete_pairs():
    complete = [("a", "a"), ("a", "b"), ("b", "b")]

    assert cohens_kappa([*complete, ("a", None), (None, "b")]) == cohens_kappa(complete)


def test_cohens_kappa_is_undefined_without_pairs_or_when_everyone_used_one_label():
    assert cohens_kappa([]) is None
    assert cohens_kappa([(None, "a")]) is None
    assert cohens_kappa([("a", "a"), ("a", "a")]) is None


# Fleiss' kappa


def test_fleiss_kappa_matches_the_wikipedia_example():
    # P = 0.37802, P_e = 0.21343: kappa = (0.37802 - 0.21343) / (1 - 0.21343) = 0.20993.
    assert fleiss_kappa(FLEISS_ITEMS) == pytest.approx(0.20993, abs=1e-5)


def test_fleiss_kappa_is_zero_when_agreement_is_what_chance_predicts():
    # P_i = 1/3, 1/3, 1 -> P = 5/9; p_a = 2/3, p_b = 1/3 -> P_e = 4/9 + 1/9 = 5/9; kappa = 0.
    assert fleiss_kappa([["a", "a", "b"], ["a", "b", "b"], ["a", "a", "a"]]) == pytest.approx(0.0)


def test_fleiss_kappa_is_one_for_perfect_agreement():
    assert fleiss_kappa([["a", "a", "a"], ["b", "b", "b"]]) == pytest.approx(1.0)


def test_fleiss_kappa_rejects_items_with_different_numbers_of_ratings():
    with pytest.raises(ValueError, match=r"same number of ratings on every item, got \[2, 3\]"):
        fleiss_kappa([["a", "a", "b"], ["a", "b"]])
    with pytest.raises(ValueError, match="same number of ratings"):
        fleiss_kappa([["a", "a"], ["a", None]])


def test_fleiss_kappa_rejects_items_with_a_single_rating():
    with pytest.raises(ValueError, match="at least two ratings"):
        fleiss_kappa([["a"], ["b"]])


def test_fleiss_kappa_is_undefined_without_items_or_when_every_rating_is_one_label():
    assert fleiss_kappa([]) is None
    assert fleiss_kappa([["a", "a"], ["a", "a"]]) is None


# Krippendorff's alpha (nominal)


def test_krippendorffs_alpha_matches_his_nominal_example_with_missing_data():
    # Unit 12 has a single value and is not pairable: n = 40 pairable values, n_c = 9, 13, 10, 5, 3.
    # Disagreeing pairs: unit 2 (2,2,3,2) 6/3 = 2, unit 6 (1,2,3,4) 12/3 = 4, unit 8 (1,1,2,1) 6/3 = 2: 8.
    # sum_{c != k} n_c n_k = 40^2 - (81 + 169 + 100 + 25 + 9) = 1216; alpha = 1 - 39 * 8 / 1216 = 0.743.
    alpha = krippendorff_alpha_nominal(KRIPPENDORFF_UNITS)

    assert alpha == pytest.approx(1 - 39 * 8 / 1216)
    assert round(alpha, 3) == 0.743


def test_krippendorffs_alpha_matches_the_wikipedia_example():
    # 3 coders x 15 units with many missing values (Wikipedia, "Krippendorff's alpha"): nominal alpha = 0.691.
    coders = [
        [None, None, None, None, None, 3, 4, 1, 2, 1, 1, 3, 3, None, 3],
        [1, None, 2, 1, 3, 3, 4, 3, None, None, None, None, None, None, None],
        [None, None, 2, 1, 3, 4, 4, None, 2, 1, 1, 3, 3, None, 4],
    ]

    assert krippendorff_alpha_nominal(zip(*coders, strict=True)) == pytest.approx(0.691358, abs=1e-6)


def test_krippendorffs_alpha_on_a_small_example_computed_by_hand():
    # Values a a | a b | b b | b b: n = 8, n_a = 3, n_b = 5; the one disagreeing unit adds o_ab = o_ba = 1.
    # alpha = 1 - (8 - 1) * 2 / (2 * 3 * 5) = 1 - 14/30 = 0.5333.
    assert krippendorff_alpha_nominal([["a", "a"], ["a", "b"], ["b", "b"], ["b", "b"]]) == pytest.approx(16 / 30)


def test_krippendorffs_alpha_ignores_units_with_fewer_than_two_values():
    padded = [*KRIPPENDORFF_UNITS, ["x"], [None, "y", None], []]

    assert krippendorff_alpha_nominal(padded) == krippendorff_alpha_nominal(KRIPPENDORFF_UNITS)


def test_krippendorffs_alpha_is_one_for_perfect_agreement_with_varying_numbers_of_raters():
    assert krippendorff_alpha_nominal([["a", "a"], ["b", "b", "b"], ["c", None, "c"]]) == pytest.approx(1.0)


def test_krippendorffs_alpha_is_undefined_without_pairable_values_or_variation():
    assert krippendorff_alpha_nominal([]) is None
    assert krippendorff_alpha_nominal([["a"], ["b", None]]) is None
    assert krippendorff_alpha_nominal([["a", "a"], ["a", "a", "a"]]) is None


# Per-reviewer figures

REVIEWS = [
    (2, "case-1", "approve"),
    (1, "case-1", "approve"),
    (1, "case-2", "deny"),
    (1, "case-3", "approve"),
    (2, "case-3", "deny"),
    (3, "case-9", "deny"),
]


def test_accuracy_on_gold_counts_only_gold_cases():
    gold = {"case-1": "approve", "case-3": "deny"}

    assert reviewer_accuracy_on_gold(REVIEWS, gold) == {
        1: MatchRate(matched=1, total=2),
        2: MatchRate(matched=2, total=2),
    }
    assert reviewer_accuracy_on_gold(REVIEWS, gold)[1].rate == 0.5


def test_agreement_with_final_ignores_undecided_cases_and_lists_reviewers_by_id():
    finals = {"case-1": "approve", "case-2": "approve", "case-9": "deny"}

    rates = agreement_with_final(REVIEWS, finals)

    assert list(rates) == [1, 2, 3]
    assert rates == {1: MatchRate(1, 2), 2: MatchRate(1, 1), 3: MatchRate(1, 1)}


def test_model_agreement_rate_flags_a_reviewer_who_always_agrees_with_the_model():
    model_labels = {"case-1": "approve", "case-2": "deny", "case-3": "approve", "case-9": "approve"}

    rates = model_agreement_rate(REVIEWS, model_labels)

    assert {reviewer: rate.rate for reviewer, rate in rates.items()} == {1: 1.0, 2: 0.5, 3: 0.0}


def test_per_reviewer_figures_are_empty_without_matching_cases():
    assert reviewer_accuracy_on_gold(REVIEWS, {}) == {}
    assert agreement_with_final([], {"case-1": "approve"}) == {}


def test_median_time_is_per_reviewer_and_averages_the_middle_two_of_an_even_count():
    times = [(2, 30), (1, 50), (1, 10), (2, 90), (1, 20), (2, 40), (2, 400)]

    assert median_time_by_reviewer(times) == {1: 20, 2: 65}
    assert median_time_by_reviewer([]) == {}
