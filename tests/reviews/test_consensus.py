"""The consensus rules and the reviewer-reliability estimate (pure functions: no database)."""

import itertools
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest
import scipy.stats

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


def test_a_weighted_probability_that_equals_the_threshold_meets_it_despite_float_rounding():
    # Two reviewers at 0.7 against one leave the same odds as one reviewer: 0.7, computed as 0.6999999999999998.
    outcome = resolve_consensus(votes("approve", "approve", "deny"), rule=WEIGHTED, min_agreement=0.7)

    assert outcome.agreement == pytest.approx(0.7)
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


# Weighted: the posterior of the one-coin model


def posterior(prior: dict[str, float], weights: list[tuple[str, float]]) -> dict[str, float]:
    """The posterior written out independently of the module: prior times the exponentiated vote weights."""
    odds = {
        label: share * math.prod(math.exp(weight) for voted, weight in weights if voted == label)
        for label, share in prior.items()
    }
    return {label: value / sum(odds.values()) for label, value in odds.items()}


def test_a_reliable_reviewer_outweighs_a_raw_majority_of_weak_ones():
    reviews = votes("deny", "approve", "approve")
    reliabilities = {1: 0.95, 2: 0.6, 3: 0.6}

    raw = resolve_consensus(reviews, rule=MAJORITY, min_agreement=0.5)
    weighted = resolve_consensus(reviews, rule=WEIGHTED, min_agreement=0.5, reliabilities=reliabilities)

    assert raw.label == "approve"
    assert weighted.label == "deny"
    # Odds of 19 for deny against 1.5 * 1.5 for approve: deny is right with probability 19 / 21.25 = 0.894.
    assert weighted.tally == pytest.approx({"approve": 2.25 / 21.25, "deny": 19 / 21.25})
    assert weighted.agreement == pytest.approx(19 / 21.25)


def test_the_weighted_agreement_is_the_probability_the_label_is_right_and_the_tally_sums_to_one():
    rng = random.Random(17)
    for _ in range(200):
        labels = ("approve", "deny", "refer")[: rng.choice((2, 3))]
        prior = {label: rng.uniform(0.05, 1.0) for label in labels}
        reliabilities = {reviewer: rng.uniform(0.5, 0.95) for reviewer in range(1, 6)}
        reviews = [Vote(reviewer, rng.choice(labels)) for reviewer in range(1, rng.randint(2, 6))]

        outcome = resolve_consensus(
            reviews, rule=WEIGHTED, min_agreement=0.0, reliabilities=reliabilities, class_prior=prior
        )

        total = sum(prior.values())
        expected = posterior(
            {label: share / total for label, share in prior.items()},
            [(vote.label, reliability_weight(reliabilities[vote.reviewer_id], labels=len(labels))) for vote in reviews],
        )
        assert outcome.tally == pytest.approx(expected)
        assert sum(outcome.tally.values()) == pytest.approx(1.0)
        if outcome.decided:
            assert outcome.agreement == pytest.approx(max(expected.values()))
            assert expected[outcome.label] == pytest.approx(max(expected.values()))


def test_the_label_prior_decides_between_equally_reliable_reviewers():
    outcome = resolve_consensus(
        votes("approve", "deny"),
        rule=WEIGHTED,
        min_agreement=0.6,
        reliabilities={1: 0.8, 2: 0.8},
        class_prior={"approve": 0.3, "deny": 0.7},
    )

    assert (outcome.decided, outcome.label, outcome.agreement) == (True, "deny", pytest.approx(0.7))


def test_the_weighted_rule_explains_its_decision_in_words():
    outcome = resolve_consensus(
        votes("deny", "approve", "deny"),
        rule=WEIGHTED,
        min_agreement=0.9,
        reliabilities={1: 0.91, 2: 0.62, 3: 0.88},
        class_prior={"approve": 0.65, "deny": 0.35},
    )

    assert (outcome.decided, outcome.label) == (True, "deny")
    assert outcome.explanation == (
        "two reviewers of estimated accuracy 0.91 and 0.88 chose deny and one reviewer of estimated accuracy 0.62 "
        "chose approve; deny is 35% of this model's reviewed cases; the probability that deny is right is 0.96"
    )


def test_the_explanation_says_which_reviewers_were_not_counted_or_counted_at_the_ceiling():
    outcome = resolve_consensus(
        votes("deny", "deny", "approve"),
        rule=WEIGHTED,
        min_agreement=0.5,
        reliabilities={1: 0.31, 2: 0.29, 3: 0.983},
    )

    assert (outcome.decided, outcome.label, outcome.agreement) == (True, "approve", pytest.approx(0.95))
    assert outcome.explanation == (
        "one reviewer of estimated accuracy 0.98 (counted as 0.95, the ceiling) chose approve and two reviewers "
        "of estimated accuracy 0.31 (at or below chance, so not counted) and 0.29 (at or below chance, so not "
        "counted) chose deny; the probability that approve is right is 0.95"
    )
    just_above = resolve_consensus(votes("deny"), rule=WEIGHTED, min_agreement=0.5, reliabilities={1: 0.951})
    assert "0.951 (counted as 0.95, the ceiling)" in just_above.explanation


def test_reviewers_who_agree_are_only_as_certain_as_their_accuracy_allows_once_the_labels_are_known():
    agreed = votes("approve", "approve")

    with_labels = resolve_consensus(agreed, rule=WEIGHTED, min_agreement=0.9, labels=["approve", "deny"])
    without = resolve_consensus(agreed, rule=WEIGHTED, min_agreement=0.9)

    # Two reviewers presumed at 0.7: odds of 0.49 against 0.09 for approve, 0.845.
    assert with_labels.tally == pytest.approx({"approve": 0.49 / 0.58, "deny": 0.09 / 0.58})
    assert (with_labels.decided, with_labels.agreement) == (False, pytest.approx(0.49 / 0.58))
    assert with_labels.escalation_reason.startswith("agreement 0.84 for approve is below the 0.90 required")
    # Without the labels no alternative is known, so agreement is certain: why the service passes the model's.
    assert (without.decided, without.agreement, without.tally) == (True, 1.0, {"approve": 1.0})


@pytest.mark.parametrize("label_count", [2, 3, 4])
def test_one_reviewer_among_equally_likely_labels_is_right_with_the_probability_of_their_accuracy(label_count):
    labels = ["a", "b", "c", "d"][:label_count]
    for accuracy in (0.55, 0.62, 0.8, 0.93):
        outcome = resolve_consensus(
            votes("b"), rule=WEIGHTED, min_agreement=0.0, reliabilities={1: accuracy}, labels=labels
        )

        assert outcome.label == "b"
        assert outcome.agreement == pytest.approx(accuracy)
        assert outcome.tally == pytest.approx(
            {label: accuracy if label == "b" else (1 - accuracy) / (label_count - 1) for label in labels}
        )


def test_the_other_rules_ignore_the_label_prior():
    prior = {"approve": 0.05, "deny": 0.95}
    for rule in (MAJORITY, UNANIMOUS):
        with_prior = resolve_consensus(votes("approve", "approve"), rule=rule, min_agreement=1.0, class_prior=prior)

        assert with_prior == resolve_consensus(votes("approve", "approve"), rule=rule, min_agreement=1.0)
        assert (with_prior.label, with_prior.agreement, with_prior.explanation) == ("approve", 1.0, "")


def test_a_third_label_makes_a_vote_weigh_more_and_lowers_chance():
    # With three labels a wrong answer is split two ways, so a right one is stronger evidence: ln(2 p / (1 - p)).
    assert reliability_weight(0.8, labels=3) == pytest.approx(math.log(8))
    assert reliability_weight(0.8) == pytest.approx(math.log(4))
    # 0.45 is below chance between two labels but above it among three.
    assert reliability_weight(0.45) == 0.0
    assert reliability_weight(0.45, labels=3) == pytest.approx(math.log(0.9 / 0.55))
    assert reliability_weight(1 / 3, labels=3) == 0.0


def test_three_labels_weigh_votes_by_the_multi_label_weight():
    reviews = [Vote(1, "approve"), Vote(2, "deny"), Vote(3, "deny")]
    reliabilities = {1: 0.9, 2: 0.6, 3: 0.6}
    prior = {"approve": 1 / 3, "deny": 1 / 3, "refer": 1 / 3}

    outcome = resolve_consensus(
        reviews, rule=WEIGHTED, min_agreement=0.5, reliabilities=reliabilities, class_prior=prior
    )

    # approve: 2 * 0.9 / 0.1 = 18; deny: (2 * 0.6 / 0.4) ** 2 = 9; refer: 1.
    assert outcome.tally == pytest.approx({"approve": 18 / 28, "deny": 9 / 28, "refer": 1 / 28})
    assert outcome.label == "approve"


def test_a_reviewer_at_chance_counts_for_nothing_and_one_below_chance_is_not_counted_against_their_label():
    reviews = votes("approve", "approve", "deny")
    reliabilities = {1: 0.5, 2: 0.2, 3: 0.8}

    outcome = resolve_consensus(reviews, rule=WEIGHTED, min_agreement=0.75, reliabilities=reliabilities)

    # Only reviewer 3 counts: read against their label, reviewer 2's approve would have made deny 0.94.
    assert (outcome.decided, outcome.label, outcome.agreement) == (True, "deny", pytest.approx(0.8))
    assert outcome.tally == pytest.approx({"approve": 0.2, "deny": 0.8})


def test_unknown_reviewers_get_the_default_so_two_against_one_are_as_sure_as_one_reviewer():
    outcome = resolve_consensus(votes("approve", "deny", "approve"), rule=WEIGHTED, min_agreement=0.5)

    assert outcome.tally == pytest.approx({"approve": UNKNOWN_REVIEWER_RELIABILITY, "deny": 0.3})
    assert (outcome.label, outcome.agreement) == ("approve", pytest.approx(UNKNOWN_REVIEWER_RELIABILITY))
    assert "0.70 (presumed, no record yet)" in outcome.explanation


def test_a_perfect_record_is_capped_so_no_reviewer_gets_an_unbounded_veto():
    assert reliability_weight(1.0) == reliability_weight(RELIABILITY_CEILING) == pytest.approx(math.log(19))
    reviews = votes("deny", "approve", "approve", "approve", "approve")
    reliabilities = {1: 1.0, 2: 0.7, 3: 0.7, 4: 0.7, 5: 0.7}

    outcome = resolve_consensus(reviews, rule=WEIGHTED, min_agreement=0.5, reliabilities=reliabilities)

    assert outcome.label == "approve"


def test_an_explicit_vote_weight_replaces_the_reliability():
    reviews = [Vote(1, "deny", weight=3.0), Vote(2, "approve", weight=1.0)]

    outcome = resolve_consensus(reviews, rule=WEIGHTED, min_agreement=0.5, reliabilities={2: 0.99})

    assert (outcome.label, outcome.agreement) == ("deny", pytest.approx(1 / (1 + math.exp(-2))))
    assert outcome.explanation.startswith("one reviewer with set vote weight 3 chose deny")


def test_equally_reliable_reviewers_who_disagree_escalate():
    outcome = resolve_consensus(votes("deny", "approve"), rule=WEIGHTED, min_agreement=0.5)

    assert (outcome.decided, outcome.agreement) == (False, 0.5)
    assert outcome.escalation_reason == (
        "reliability-weighted votes tied between approve and deny at probability 0.50 each (the weighted rule "
        "needs a clear winner): one reviewer of estimated accuracy 0.70 (presumed, no record yet) chose approve and "
        "one reviewer of estimated accuracy 0.70 (presumed, no record yet) chose deny"
    )


def test_weighted_votes_that_all_weigh_nothing_escalate():
    outcome = resolve_consensus(
        votes("approve", "deny"), rule=WEIGHTED, min_agreement=0.5, reliabilities={1: 0.5, 2: 0.3}
    )

    assert (outcome.decided, outcome.agreement) == (False, 0.0)
    assert outcome.escalation_reason == (
        "no vote carries any weight (every reviewer's estimated accuracy is at or below chance)"
    )


def test_a_label_no_reviewer_chose_is_never_decided_on_its_share_of_cases_alone():
    outcome = resolve_consensus(
        votes("approve", "refer"),
        rule=WEIGHTED,
        min_agreement=0.5,
        reliabilities={1: 0.55, 2: 0.55},
        class_prior={"approve": 0.05, "deny": 0.9, "refer": 0.05},
    )

    assert (outcome.decided, outcome.label) == (False, None)
    assert outcome.tally["deny"] == outcome.agreement == pytest.approx(max(outcome.tally.values()))
    assert outcome.escalation_reason.startswith(
        "the most probable label, deny (probability 0.79), is one no reviewer chose: it leads only on its share"
    )


def test_a_voted_label_the_prior_has_not_seen_gets_the_rarest_share():
    outcome = resolve_consensus(
        votes("refer", "deny"),
        rule=WEIGHTED,
        min_agreement=0.0,
        reliabilities={1: 0.8, 2: 0.8},
        class_prior={"approve": 0.8, "deny": 0.2},
    )

    # refer gets deny's 0.2, then shares are renormalised over 1.2; both voted labels weigh ln 8 with three labels.
    assert outcome.tally == pytest.approx(
        posterior(
            {"approve": 0.8 / 1.2, "deny": 0.2 / 1.2, "refer": 0.2 / 1.2},
            [("refer", math.log(8)), ("deny", math.log(8))],
        )
    )
    assert not outcome.decided and "tied between deny and refer" in outcome.escalation_reason


def test_a_weighted_winner_below_the_minimum_agreement_escalates():
    outcome = resolve_consensus(
        votes("deny", "approve"), rule=WEIGHTED, min_agreement=0.8, reliabilities={1: 0.8, 2: 0.7}
    )

    # Odds of 4 for deny against 7/3 for approve: 4 / (4 + 7/3) = 12/19 = 0.63.
    assert outcome.agreement == pytest.approx(12 / 19)
    assert outcome.escalation_reason == (
        "agreement 0.63 for deny is below the 0.80 required: one reviewer of estimated accuracy 0.80 chose deny "
        "and one reviewer of estimated accuracy 0.70 chose approve"
    )


@pytest.mark.parametrize(
    ("reviews", "reliabilities", "class_prior"),
    [
        ([Vote(1, "deny", weight=-1.0)], {}, None),
        ([Vote(1, "deny", weight=math.nan)], {}, None),
        (votes("deny"), {1: 1.2}, None),
        (votes("deny"), {1: math.nan}, None),
        (votes("deny"), {}, {"deny": 0.0, "approve": 1.0}),
        (votes("deny"), {}, {"deny": math.nan, "approve": 0.5}),
    ],
)
def test_it_rejects_negative_weights_and_reliabilities_or_shares_that_are_not_probabilities(
    reviews, reliabilities, class_prior
):
    with pytest.raises(ValueError):
        resolve_consensus(
            reviews, rule=WEIGHTED, min_agreement=0.5, reliabilities=reliabilities, class_prior=class_prior
        )


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


def test_the_estimate_gives_each_labels_share_of_the_real_cases():
    agreed = {item: [(1, "approve"), (2, "approve")] for item in range(45)}
    agreed |= {item: [(1, "deny"), (2, "deny")] for item in range(45, 60)}
    # Gold cases are picked by people, not drawn from the cases: their labels do not move the shares.
    gold_cases = {f"g{n}": [(1, "deny"), (2, "deny")] for n in range(30)}

    estimate = estimate_reviewer_reliability(agreed | gold_cases, gold={item: "deny" for item in gold_cases})

    # 45 of 60 approve, smoothed by one case per label (a prior of two cases): 46 / 62.
    assert estimate.class_prior == pytest.approx({"approve": 46 / 62, "deny": 16 / 62}, abs=1e-3)


def test_a_gold_record_bounds_the_estimate_however_much_the_reviewer_agrees_with_others():
    # Reviewers 1 and 2 always say approve and always agree; reviewer 1 also said approve to 12 gold deny cases.
    answers = {item: [(1, "approve"), (2, "approve")] for item in range(200)}
    answers |= {f"g{n}": [(1, "approve")] for n in range(12)}
    gold = {f"g{n}": "deny" for n in range(12)}

    estimate = estimate_reviewer_reliability(answers, gold=gold)

    # 0 right of 12 on gold deny cases, with the Beta(1.4, 0.6) prior: 97.5% of Beta(1.4, 12.6) lies below.
    assert estimate.accuracy[1] == pytest.approx(scipy.stats.beta.ppf(0.975, 1.4, 12.6), abs=1e-9)
    assert estimate.accuracy[1] < 0.5 < 0.95 < estimate.accuracy[2]


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
        votes("deny", "approve", "approve"),
        rule=WEIGHTED,
        min_agreement=0.9,
        reliabilities=estimate.accuracy,
        class_prior=estimate.class_prior,
    )

    # Reviewers 2 and 3 are estimated below chance, so their votes weigh nothing: reviewer 1 alone against the
    # label shares.
    first, shares = estimate.accuracy[1], estimate.class_prior
    assert estimate.accuracy[2] < 0.5 and estimate.accuracy[3] < 0.5
    assert (outcome.decided, outcome.label) == (True, "deny")
    assert outcome.agreement == pytest.approx(
        first * shares["deny"] / (first * shares["deny"] + (1 - first) * shares["approve"])
    )
