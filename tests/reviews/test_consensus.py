"""The consensus rules and the reviewer-reliability estimate (pure functions: no database)."""

import itertools
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest

from reviews.choices import ConsensusRule
from reviews.consensus import (
    CONSENSUS_RULES,
    MAJORITY,
    RELIABILITY_CEILING,
    UNANIMOUS,
    UNKNOWN_REVIEWER_RELIABILITY,
    WEIGHTED,
    ConsensusOutcome,
    Vote,
    estimate_reviewer_reliability,
    reliability_weight,
    resolve_consensus,
)


def votes(*labels: str) -> list[Vote]:
    """Reviewers 1, 2, 3... voting the given labels in order."""
    return [Vote(reviewer_id=index, label=label) for index, label in enumerate(labels, start=1)]


def synthetic_answers(seed: int, true_accuracy: dict[int, float], *, items: int, per_item: int, labels: tuple):
    """Answers drawn from the one-coin model itself: a wrong answer is one of the other labels, uniformly."""
    rng = random.Random(seed)
    answers, truth = {}, {}
    for item in range(items):
        truth[item] = rng.choice(labels)
        answers[item] = [
            (
                reviewer,
                truth[item]
                if rng.random() < true_accuracy[reviewer]
                else rng.choice([label for label in labels if label != truth[item]]),
            )
            for reviewer in rng.sample(sorted(true_accuracy), per_item)
        ]
    return answers, truth


def test_the_rule_names_are_the_routing_policy_choices():
    assert (MAJORITY, UNANIMOUS, WEIGHTED) == (ConsensusRule.MAJORITY, ConsensusRule.UNANIMOUS, ConsensusRule.WEIGHTED)
    assert set(CONSENSUS_RULES) == set(ConsensusRule.values)


def test_the_modules_import_without_django():
    script = (
        "import sys, reviews.consensus, reviews.agreement; "
        "loaded = sorted(name for name in sys.modules if name.split('.')[0] == 'django'); "
        "sys.exit(f'django modules loaded: {loaded}' if loaded else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# Majority


def test_a_clear_majority_decides_with_its_share_as_agreement():
    outcome = resolve_consensus(votes("approve", "deny", "approve"), rule=MAJORITY, min_agreement=0.5)

    assert outcome == ConsensusOutcome(
        decided=True, label="approve", agreement=2 / 3, tally={"approve": 2.0, "deny": 1.0}, escalation_reason=""
    )


def test_a_single_review_decides_with_full_agreement():
    outcome = resolve_consensus(votes("deny"), rule=MAJORITY, min_agreement=1.0)

    assert (outcome.decided, outcome.label, outcome.agreement) == (True, "deny", 1.0)


def test_a_tie_escalates_with_a_reason_a_compliance_officer_can_read():
    outcome = resolve_consensus(votes("deny", "approve"), rule=MAJORITY, min_agreement=0.5)

    assert (outcome.decided, outcome.label, outcome.agreement) == (False, None, 0.5)
    assert outcome.escalation_reason == "reviewers split 1-1 between approve and deny (majority needs a clear winner)"


def test_a_tie_for_first_place_escalates_even_with_a_third_label():
    outcome = resolve_consensus(votes("refer", "deny", "approve", "deny", "approve"), rule=MAJORITY, min_agreement=0)

    assert not outcome.decided
    assert outcome.escalation_reason == (
        "reviewers split 2-2-1 between approve, deny and refer (majority needs a clear winner)"
    )
    assert list(outcome.tally) == ["approve", "deny", "refer"]


@pytest.mark.parametrize("rule", CONSENSUS_RULES)
def test_the_outcome_does_not_depend_on_the_order_reviews_arrived_in(rule):
    # Added in some orders, the log-odds of 0.55, 0.6 and 0.7 differ in the last bit: the tally must not.
    reviews = [*votes("approve", "approve", "approve", "deny", "deny"), Vote(reviewer_id=9, label="refer")]
    reliabilities = {1: 0.55, 2: 0.6, 3: 0.7, 4: 0.8, 5: 0.85}

    outcomes = [
        resolve_consensus(order, rule=rule, min_agreement=0.3, reliabilities=reliabilities)
        for order in itertools.permutations(reviews)
    ]

    assert all(outcome == outcomes[0] for outcome in outcomes)
    assert list(outcomes[0].tally) == ["approve", "deny", "refer"]


def test_a_winner_below_the_minimum_agreement_escalates():
    outcome = resolve_consensus(votes("approve", "deny", "approve", "refer"), rule=MAJORITY, min_agreement=0.67)

    assert (outcome.decided, outcome.label, outcome.agreement) == (False, None, 0.5)
    assert outcome.escalation_reason == "agreement 0.50 for approve is below the 0.67 required"


def test_two_votes_of_three_meet_a_threshold_of_exactly_two_thirds():
    outcome = resolve_consensus(votes("approve", "approve", "deny"), rule=MAJORITY, min_agreement=2 / 3)

    assert (outcome.decided, outcome.label) == (True, "approve")


def test_a_weighted_share_that_equals_the_threshold_meets_it_despite_float_rounding():
    # (0.1 + 0.7) / (0.1 + 0.7 + 0.2) is 0.7999999999999999 in floating point.
    reviews = [Vote(1, "approve", weight=0.1), Vote(2, "approve", weight=0.7), Vote(3, "deny", weight=0.2)]

    outcome = resolve_consensus(reviews, rule=WEIGHTED, min_agreement=0.8)

    assert (outcome.decided, outcome.label) == (True, "approve")


def test_the_reason_never_prints_a_share_below_the_threshold_as_equal_to_it():
    outcome = resolve_consensus(votes("approve", "approve", "deny"), rule=MAJORITY, min_agreement=0.67)

    assert outcome.escalation_reason == "agreement 0.667 for approve is below the 0.670 required"


def test_majority_counts_every_vote_once_whatever_its_weight():
    reviews = [Vote(1, "deny", weight=10.0), Vote(2, "approve", weight=0.1), Vote(3, "approve", weight=0.1)]

    outcome = resolve_consensus(reviews, rule=MAJORITY, min_agreement=0.5)

    assert (outcome.label, outcome.tally) == ("approve", {"approve": 2.0, "deny": 1.0})


@pytest.mark.parametrize("rule", CONSENSUS_RULES)
def test_no_reviews_escalate_rather_than_decide(rule):
    outcome = resolve_consensus([], rule=rule, min_agreement=0.5)

    assert outcome == ConsensusOutcome(
        decided=False, label=None, agreement=0.0, tally={}, escalation_reason="no reviews were submitted"
    )


def test_it_rejects_two_votes_from_one_reviewer():
    with pytest.raises(ValueError, match="reviewer 1 voted twice"):
        resolve_consensus([Vote(1, "approve"), Vote(1, "deny")], rule=MAJORITY, min_agreement=0.5)


@pytest.mark.parametrize(("rule", "min_agreement"), [("plurality", 0.5), (MAJORITY, 1.5), (MAJORITY, -0.1)])
def test_it_rejects_an_unknown_rule_or_an_impossible_threshold(rule, min_agreement):
    with pytest.raises(ValueError):
        resolve_consensus(votes("approve"), rule=rule, min_agreement=min_agreement)


# Unanimous


def test_unanimous_reviews_decide():
    outcome = resolve_consensus(votes("deny", "deny", "deny"), rule=UNANIMOUS, min_agreement=1.0)

    assert (outcome.decided, outcome.label, outcome.agreement, outcome.tally) == (True, "deny", 1.0, {"deny": 3.0})


def test_one_dissent_breaks_unanimity_even_when_the_majority_is_clear():
    outcome = resolve_consensus(votes("approve", "deny", "approve"), rule=UNANIMOUS, min_agreement=0.5)

    assert (outcome.decided, outcome.label, outcome.agreement) == (False, None, 2 / 3)
    assert outcome.escalation_reason == (
        "reviewers disagreed (2 approve, 1 deny) and this policy requires a unanimous decision"
    )


# Weighted


def test_a_reliable_reviewer_outweighs_a_raw_majority_of_weak_ones():
    reviews = votes("deny", "approve", "approve")
    reliabilities = {1: 0.95, 2: 0.6, 3: 0.6}

    raw = resolve_consensus(reviews, rule=MAJORITY, min_agreement=0.5)
    weighted = resolve_consensus(reviews, rule=WEIGHTED, min_agreement=0.5, reliabilities=reliabilities)

    assert raw.label == "approve"
    assert weighted.label == "deny"
    # ln(0.95/0.05) = ln 19 = 2.944 against 2 * ln(0.6/0.4) = 2 * 0.405 = 0.811.
    assert weighted.tally == pytest.approx({"approve": 2 * math.log(1.5), "deny": math.log(19)})
    assert weighted.agreement == pytest.approx(math.log(19) / (math.log(19) + 2 * math.log(1.5)))


def test_a_reviewer_at_chance_counts_for_nothing_and_one_below_chance_is_not_counted_against_their_label():
    reviews = votes("approve", "approve", "deny")
    reliabilities = {1: 0.5, 2: 0.2, 3: 0.8}

    outcome = resolve_consensus(reviews, rule=WEIGHTED, min_agreement=0.9, reliabilities=reliabilities)

    assert (outcome.decided, outcome.label, outcome.agreement) == (True, "deny", 1.0)
    assert outcome.tally == {"approve": 0.0, "deny": pytest.approx(math.log(4))}


def test_unknown_reviewers_get_the_prior_so_weighted_without_estimates_is_a_plain_majority():
    outcome = resolve_consensus(votes("approve", "deny", "approve"), rule=WEIGHTED, min_agreement=0.5)

    prior_weight = math.log(UNKNOWN_REVIEWER_RELIABILITY / (1 - UNKNOWN_REVIEWER_RELIABILITY))
    assert outcome.tally == pytest.approx({"approve": 2 * prior_weight, "deny": prior_weight})
    assert (outcome.label, outcome.agreement) == ("approve", pytest.approx(2 / 3))


def test_a_perfect_record_is_capped_so_no_reviewer_gets_an_unbounded_veto():
    assert reliability_weight(1.0) == reliability_weight(RELIABILITY_CEILING) == pytest.approx(math.log(19))
    reviews = votes("deny", "approve", "approve", "approve", "approve")
    reliabilities = {1: 1.0, 2: 0.7, 3: 0.7, 4: 0.7, 5: 0.7}

    outcome = resolve_consensus(reviews, rule=WEIGHTED, min_agreement=0.5, reliabilities=reliabilities)

    assert outcome.label == "approve"


def test_an_explicit_vote_weight_replaces_the_reliability():
    reviews = [Vote(1, "deny", weight=3.0), Vote(2, "approve", weight=1.0)]

    outcome = resolve_consensus(reviews, rule=WEIGHTED, min_agreement=0.5, reliabilities={2: 0.99})

    assert (outcome.label, outcome.agreement, outcome.tally) == ("deny", 0.75, {"approve": 1.0, "deny": 3.0})


def test_equally_reliable_reviewers_who_disagree_escalate():
    outcome = resolve_consensus(votes("deny", "approve"), rule=WEIGHTED, min_agreement=0.5)

    assert not outcome.decided
    assert outcome.escalation_reason == (
        "reliability-weighted votes tied at 0.85 between approve and deny (the weighted majority needs a clear winner)"
    )


def test_weighted_votes_that_all_weigh_nothing_escalate():
    outcome = resolve_consensus(
        votes("approve", "deny"), rule=WEIGHTED, min_agreement=0.5, reliabilities={1: 0.5, 2: 0.3}
    )

    assert (outcome.decided, outcome.agreement) == (False, 0.0)
    assert outcome.escalation_reason == (
        "no vote carries any weight (every reviewer's estimated accuracy is at or below chance)"
    )


def test_a_weighted_winner_below_the_minimum_agreement_escalates():
    outcome = resolve_consensus(
        votes("deny", "approve"), rule=WEIGHTED, min_agreement=0.8, reliabilities={1: 0.8, 2: 0.7}
    )

    # ln 4 / (ln 4 + ln(7/3)) = 1.386 / 2.234 = 0.62.
    assert outcome.agreement == pytest.approx(math.log(4) / (math.log(4) + math.log(7 / 3)))
    assert outcome.escalation_reason == "agreement 0.62 for deny is below the 0.80 required"


@pytest.mark.parametrize(
    ("reviews", "reliabilities"),
    [
        ([Vote(1, "deny", weight=-1.0)], {}),
        ([Vote(1, "deny", weight=math.nan)], {}),
        (votes("deny"), {1: 1.2}),
        (votes("deny"), {1: math.nan}),
    ],
)
def test_it_rejects_negative_weights_and_reliabilities_that_are_not_probabilities(reviews, reliabilities):
    with pytest.raises(ValueError):
        resolve_consensus(reviews, rule=WEIGHTED, min_agreement=0.5, reliabilities=reliabilities)


# Reviewer reliability (one-coin Dawid-Skene)


def test_it_recovers_each_reviewers_accuracy_and_finds_the_bad_one():
    true_accuracy = {1: 0.92, 2: 0.88, 3: 0.85, 4: 0.8, 5: 0.4}
    answers, _ = synthetic_answers(7, true_accuracy, items=300, per_item=3, labels=("approve", "deny", "refer"))

    estimate = estimate_reviewer_reliability(answers)

    assert estimate.converged
    assert estimate.accuracy == pytest.approx(true_accuracy, abs=0.06)
    assert min(estimate.accuracy, key=estimate.accuracy.get) == 5
    assert sum(estimate.answers.values()) == 900


def test_gold_cases_pin_the_truth_when_a_colluding_majority_is_wrong():
    # Reviewers 2 and 3 are wrong 70% of the time on a yes/no question; majority vote sides with them.
    true_accuracy = {1: 0.9, 2: 0.3, 3: 0.3}
    answers, truth = synthetic_answers(3, true_accuracy, items=200, per_item=3, labels=("approve", "deny"))
    gold = {item: truth[item] for item in range(0, 200, 5)}

    without_gold = estimate_reviewer_reliability(answers)
    with_gold = estimate_reviewer_reliability(answers, gold=gold)

    assert without_gold.accuracy[1] < 0.5 < without_gold.accuracy[2]
    assert with_gold.accuracy == pytest.approx(true_accuracy, abs=0.08)


def test_a_reviewer_seen_only_on_gold_gets_their_smoothed_gold_record():
    gold = {"g1": "approve", "g2": "deny", "g3": "approve", "g4": "deny"}
    answers = {"g1": [(7, "approve")], "g2": [(7, "deny")], "g3": [(7, "approve")], "g4": [(7, "approve")]}

    estimate = estimate_reviewer_reliability(answers, gold=gold, prior_accuracy=0.7, prior_strength=2.0)

    # 3 of 4 right, Beta prior of 2 answers at 0.7: (1.4 + 3) / (2 + 4) = 0.7333.
    assert estimate.accuracy == {7: pytest.approx(4.4 / 6)}
    assert estimate.answers == {7: 4}


def test_estimates_stay_strictly_between_zero_and_one():
    answers = {item: [(1, "approve"), (2, "approve")] for item in range(50)}

    estimate = estimate_reviewer_reliability(answers)

    assert all(0 < accuracy < 1 for accuracy in estimate.accuracy.values())
    assert estimate.accuracy[1] == pytest.approx((0.7 * 2 + 50) / (2 + 50), abs=1e-3)


def test_unanswered_and_single_answer_items_do_not_count():
    answers = {1: [(1, "approve"), (2, "approve")], 2: [(3, "deny")], 3: []}

    estimate = estimate_reviewer_reliability(answers)

    assert set(estimate.accuracy) == {1, 2}


def test_the_estimate_is_deterministic_and_does_not_depend_on_item_order():
    answers, _ = synthetic_answers(11, {1: 0.9, 2: 0.7, 3: 0.6}, items=80, per_item=2, labels=("a", "b", "c"))
    reversed_answers = {item: list(reversed(answers[item])) for item in reversed(list(answers))}

    first = estimate_reviewer_reliability(answers)

    assert estimate_reviewer_reliability(answers) == first
    assert estimate_reviewer_reliability(reversed_answers).accuracy == pytest.approx(first.accuracy, abs=1e-9)


def test_it_stops_after_max_iterations_and_says_it_did_not_converge():
    answers, _ = synthetic_answers(5, {1: 0.9, 2: 0.6, 3: 0.55}, items=100, per_item=3, labels=("a", "b"))

    capped = estimate_reviewer_reliability(answers, max_iterations=1)
    full = estimate_reviewer_reliability(answers, max_iterations=500)

    assert (capped.iterations, capped.converged) == (1, False)
    assert full.converged
    assert 1 < full.iterations < 500


def test_no_usable_items_give_an_empty_estimate():
    assert estimate_reviewer_reliability({}).accuracy == {}
    assert estimate_reviewer_reliability({1: [(1, "approve")]}).accuracy == {}


def test_it_rejects_two_answers_from_one_reviewer_on_one_item():
    with pytest.raises(ValueError, match="two answers from one reviewer"):
        estimate_reviewer_reliability({"case-1": [(1, "approve"), (1, "deny")]})


@pytest.mark.parametrize(
    "options", [{"prior_accuracy": 1.0}, {"prior_strength": 0}, {"max_iterations": 0}, {"tolerance": 0}]
)
def test_it_rejects_settings_that_cannot_converge_or_smooth(options):
    with pytest.raises(ValueError):
        estimate_reviewer_reliability({1: [(1, "a"), (2, "a")]}, **options)


def test_estimated_reliabilities_feed_the_weighted_rule_and_outvote_the_bad_reviewer():
    true_accuracy = {1: 0.9, 2: 0.3, 3: 0.3}
    answers, truth = synthetic_answers(3, true_accuracy, items=200, per_item=3, labels=("approve", "deny"))
    estimate = estimate_reviewer_reliability(answers, gold={item: truth[item] for item in range(0, 200, 5)})

    outcome = resolve_consensus(
        votes("deny", "approve", "approve"), rule=WEIGHTED, min_agreement=0.5, reliabilities=estimate.accuracy
    )

    assert (outcome.decided, outcome.label, outcome.agreement) == (True, "deny", 1.0)
