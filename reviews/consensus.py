"""Consensus among a case's reviewers, and how far to trust each reviewer. Pure computation: no Django.

Three rules turn a case's reviews into a decision or an escalation. Their names equal the values of
`reviews.choices.ConsensusRule` (a test compares them; this module may not import Django):

- majority: the label with the most votes wins; a tie for first place escalates.
- unanimous: every reviewer must give the same label.
- weighted: the label most probably right given who chose what. It is the posterior of the one-coin
  Dawid-Skene model that `estimate_reviewer_reliability` fits: each label starts from its share of the model's
  cases (the class prior) and each vote adds log((K - 1) p / (1 - p)) to its label, for a reviewer of
  estimated accuracy p among K labels (see `reliability_weight`). The outcome says so in words ("two reviewers
  of estimated accuracy 0.91 and 0.88 chose deny and one reviewer of estimated accuracy 0.62 chose approve;
  deny is 35% of this model's reviewed cases; the probability that deny is right is 0.96").

Agreement is the winning label's share of the votes under majority and unanimous, and under the weighted rule
the posterior probability that the winning label is right. A case whose agreement is below the policy's
`min_agreement` goes to an adjudicator. Escalation reasons are written for a compliance officer reading the
case later, and ties are broken in one documented order, never by dict order.
"""

import math
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from scipy.special import betaincinv

MAJORITY = "majority"
UNANIMOUS = "unanimous"
WEIGHTED = "weighted"
CONSENSUS_RULES = (MAJORITY, UNANIMOUS, WEIGHTED)
# An item's id for the reliability estimate, of whatever type the caller uses (the same in answers and gold).
ItemId = TypeVar("ItemId", bound=Hashable)

# A long perfect record must not hand one reviewer an unbounded veto: reliabilities are capped here before
# weighing, so with two labels one reviewer weighs at most ln(19) ~ 2.94, about 3.5 reviewers at 0.7.
RELIABILITY_CEILING = 0.95
# Reviewers without an estimate yet (new, or no gold answered) are presumed trained but unproven.
UNKNOWN_REVIEWER_RELIABILITY = 0.7
# How sure a reviewer's gold record must make us before it bounds their estimate (see the estimator).
GOLD_CREDIBLE_MASS = 0.95
# Shares and weights are sums of floats: a threshold of 2/3 must accept 2 votes of 3, and equal weights must tie.
_TOLERANCE = 1e-9
_NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


@dataclass(frozen=True)
class Vote:
    """One reviewer's label on a case. `weight`, when given, replaces the reliability weight (weighted rule)."""

    reviewer_id: int
    label: str
    weight: float | None = None


@dataclass(frozen=True)
class ConsensusOutcome:
    """What the reviews decided: the label (None when escalated), its agreement, the tally, and why not.

    The tally counts votes per label under majority and unanimous; under the weighted rule it is each label's
    posterior probability. `explanation` says in words how the weighted rule weighed the votes (empty under the
    other rules, whose tally says it all).
    """

    decided: bool
    label: str | None
    agreement: float
    tally: dict[str, float]
    escalation_reason: str
    explanation: str = ""


@dataclass(frozen=True)
class ReliabilityEstimate:
    """Each reviewer's estimated accuracy in (0, 1) and how many answers it rests on, each label's share of the
    cases (the class prior, summing to 1), and whether EM converged."""

    accuracy: dict[int, float]
    answers: dict[int, int]
    class_prior: dict[str, float]
    iterations: int
    converged: bool


def reliability_weight(reliability: float, *, labels: int = 2) -> float:
    """A vote's weight under the weighted rule: ln((K - 1) p / (1 - p)) for accuracy p among K = `labels` labels.

    This is how much the vote multiplies the odds of its label against each other label in the one-coin model
    (the log-odds ln(p / (1 - p)) when K = 2). p is clipped to [1/K, RELIABILITY_CEILING]: a reviewer at or
    below chance counts 0 rather than a negative weight, because a vote that counted against its own label is
    something no reviewer or auditor could follow.
    """
    if not 0.0 <= reliability <= 1.0:
        raise ValueError(f"a reliability is a probability between 0 and 1, not {reliability!r}")
    if labels < 2:
        raise ValueError(f"weighing a vote needs at least two labels to choose from, not {labels!r}")
    clipped = min(max(reliability, 1.0 / labels), RELIABILITY_CEILING)
    # At chance the ratio is 1 up to rounding (2 * (1/3) / (1 - 1/3)): never let it weigh a hair below 0.
    return max(0.0, math.log((labels - 1) * clipped / (1.0 - clipped)))


def resolve_consensus(
    votes: Iterable[Vote],
    *,
    rule: str,
    min_agreement: float,
    reliabilities: Mapping[int, float] | None = None,
    class_prior: Mapping[str, float] | None = None,
    labels: Collection[str] | None = None,
) -> ConsensusOutcome:
    """Decide a case from its reviews under `rule`, or say in words why it goes to an adjudicator.

    Pass each reviewer's current review once (a correction replaces the review it corrects); a reviewer who
    appears twice is a ValueError, as are an unknown rule and a `min_agreement` outside [0, 1]. Majority and
    unanimous count each vote as 1 and ignore `Vote.weight`, `reliabilities`, `class_prior` and `labels`.

    The weighted rule decides the label with the highest posterior probability, and its agreement is that
    probability, compared with `min_agreement`. Pass `reliabilities` and `class_prior` from one
    `ReliabilityEstimate`, and `labels`, the labels a reviewer could choose (the model's labels). The posterior
    spans `labels`, the labels of `class_prior` and the labels voted for; K is their number (at least 2). A vote
    weighs `Vote.weight` when given, else `reliability_weight` of `reliabilities[reviewer_id]`
    (UNKNOWN_REVIEWER_RELIABILITY for a reviewer without one) among K labels. Without a class prior every label
    is equally likely a priori; a label missing from the prior gets the share of its rarest label, and shares
    are renormalised. Without `labels`, a label no one chose and the prior does not know is left out, so two
    reviewers who agree on a new model's first case would be certain: pass them. The weighted rule escalates
    when no vote carries weight, on a tie, and when the most probable label is one no reviewer chose (it could
    lead only on its share of cases, which no one could defend).
    `ConsensusOutcome.explanation` names each reviewer's estimated accuracy, and says where the rule counted it
    otherwise: not at all at or below chance, as RELIABILITY_CEILING above it.

    The tally lists labels alphabetically; ties are never broken arbitrarily: they escalate.
    """
    if rule not in CONSENSUS_RULES:
        raise ValueError(f"unknown consensus rule {rule!r}; expected one of {', '.join(CONSENSUS_RULES)}")
    if not 0.0 <= min_agreement <= 1.0:
        raise ValueError(f"min_agreement is a share between 0 and 1, not {min_agreement!r}")
    votes = list(votes)
    _require_one_vote_per_reviewer(votes)
    if not votes:
        return _escalated(0.0, {}, "no reviews were submitted")
    if rule == WEIGHTED:
        return _weighted_outcome(
            votes,
            min_agreement=min_agreement,
            reliabilities=reliabilities or {},
            class_prior=class_prior,
            labels=labels or (),
        )

    counts: dict[str, int] = {}
    for vote in votes:
        counts[vote.label] = counts.get(vote.label, 0) + 1
    tally = {label: float(counts[label]) for label in sorted(counts)}
    # Most votes first, then alphabetical: the one order used for reasons, so the same votes read the same.
    ranked = sorted(tally.items(), key=lambda label_votes: (-label_votes[1], label_votes[0]))
    top_label, top_votes = ranked[0]
    leaders = [label for label, count in ranked if count == top_votes]
    agreement = top_votes / len(votes)

    if rule == UNANIMOUS and len(ranked) > 1:
        split = ", ".join(f"{count:g} {label}" for label, count in ranked)
        return _escalated(
            agreement, tally, f"reviewers disagreed ({split}) and this policy requires a unanimous decision"
        )
    if len(leaders) > 1:
        counts_in_words = "-".join(f"{count:g}" for _, count in ranked)
        labels = _join([label for label, _ in ranked])
        return _escalated(
            agreement, tally, f"reviewers split {counts_in_words} between {labels} (majority needs a clear winner)"
        )
    if agreement + _TOLERANCE < min_agreement:
        return _escalated(agreement, tally, _below_required(agreement, min_agreement, top_label))
    return ConsensusOutcome(decided=True, label=top_label, agreement=agreement, tally=tally, escalation_reason="")


def _weighted_outcome(
    votes: Sequence[Vote],
    *,
    min_agreement: float,
    reliabilities: Mapping[int, float],
    class_prior: Mapping[str, float] | None,
    labels: Collection[str],
) -> ConsensusOutcome:
    voted = {vote.label for vote in votes}
    prior = _label_prior(class_prior, voted | set(labels))
    label_count = max(len(prior), 2)
    evidence: dict[str, list[float]] = {label: [] for label in prior}
    for vote in votes:
        evidence[vote.label].append(_vote_weight(vote, reliabilities, label_count))
    # fsum is exactly rounded, so the posterior does not depend on the order the reviews arrived in.
    log_posterior = {label: math.log(share) + math.fsum(evidence[label]) for label, share in prior.items()}
    peak = max(log_posterior.values())
    relative = {label: math.exp(value - peak) for label, value in log_posterior.items()}
    total = math.fsum(relative.values())
    tally = {label: relative[label] / total for label in sorted(relative)}
    ranked = sorted(tally, key=lambda label: (-log_posterior[label], label))
    top_label = ranked[0]
    leaders = sorted(label for label in ranked if log_posterior[label] >= peak - _TOLERANCE)
    agreement = tally[top_label]
    evidence_in_words = _evidence_in_words(
        votes,
        ranked,
        reliabilities,
        labels=label_count,
        prior_share=prior[top_label] if class_prior else None,
        top_label=top_label,
    )

    if not any(weight > 0 for weights in evidence.values() for weight in weights):
        return _escalated(
            0.0,
            tally,
            "no vote carries any weight (every reviewer's estimated accuracy is at or below chance)",
            explanation=evidence_in_words,
        )
    if len(leaders) > 1:
        explanation = (
            f"{evidence_in_words}; {_join(leaders)} are equally likely, at {_probability_in_words(agreement)} each"
        )
        reason = (
            f"reliability-weighted votes tied between {_join(leaders)} at probability "
            f"{_probability_in_words(agreement)} each (the weighted rule needs a clear winner): {evidence_in_words}"
        )
        return _escalated(agreement, tally, reason, explanation=explanation)
    shown = _probability_in_words(agreement)
    explanation = f"{evidence_in_words}; the probability that {top_label} is right is {shown}"
    if top_label not in voted:
        reason = (
            f"the most probable label, {top_label} (probability {shown}), is one no "
            f"reviewer chose: it leads only on its share of this model's cases ({evidence_in_words})"
        )
        return _escalated(agreement, tally, reason, explanation=explanation)
    if agreement + _TOLERANCE < min_agreement:
        reason = f"{_below_required(agreement, min_agreement, top_label)}: {evidence_in_words}"
        return _escalated(agreement, tally, reason, explanation=explanation)
    return ConsensusOutcome(
        decided=True,
        label=top_label,
        agreement=agreement,
        tally=tally,
        escalation_reason="",
        explanation=explanation,
    )


def _label_prior(class_prior: Mapping[str, float] | None, known: Collection[str]) -> dict[str, float]:
    """Each label's prior share, alphabetically: the class prior's, or every known label's equally."""
    if not class_prior:
        return {label: 1.0 / len(known) for label in sorted(known)}
    for label, share in class_prior.items():
        if not (math.isfinite(share) and share > 0):
            raise ValueError(f"the share of label {label!r} must be a positive number, not {share!r}")
    # A label the estimate has not seen is at most as common as the rarest label it has seen.
    rarest = min(class_prior.values())
    shares = {label: class_prior.get(label, rarest) for label in sorted(set(class_prior) | set(known))}
    total = math.fsum(shares.values())
    return {label: share / total for label, share in shares.items()}


def estimate_reviewer_reliability(
    answers: Mapping[ItemId, Sequence[tuple[int, str]]],
    *,
    gold: Mapping[ItemId, str] | None = None,
    prior_accuracy: float = UNKNOWN_REVIEWER_RELIABILITY,
    prior_strength: float = 2.0,
    max_iterations: int = 100,
    tolerance: float = 1e-6,
) -> ReliabilityEstimate:
    """Estimate each reviewer's accuracy and each label's share with the one-coin Dawid-Skene model, fitted by EM.

    Input: `answers` maps an item id to its (reviewer_id, label) answers; `gold` maps the ids of gold items
    (known answer) to that answer.

    Model: each item i has an unknown true label z_i drawn from class proportions pi over the K labels seen
    (answers and gold). Reviewer r answers an item correctly with probability p_r, whatever the item, and
    otherwise picks one of the K - 1 wrong labels uniformly: P(l | z = k) = p_r if l == k else
    (1 - p_r) / (K - 1). Given p and pi, the posterior of z_i is proportional to pi_k times the product of
    its answers' likelihoods (E-step; the weighted consensus rule computes the same posterior for one case).
    Given the posteriors, p_r is the expected share of r's answers that are correct, smoothed by a Beta prior
    with mean `prior_accuracy` and weight `prior_strength` answers, so that every estimate lies strictly in
    (0, 1) and a reviewer with three answers stays near the prior; pi is the mean posterior of the non-gold
    items, smoothed by `prior_strength` items spread evenly over the labels (M-step). Gold items are chosen
    by people rather than drawn from the cases, so they do not count towards pi.

    Gold anchors the estimate twice. On a gold item the posterior is clamped to the known answer. And each
    reviewer's gold record bounds their accuracy, because the clamp alone is too weak when gold is a small
    part of the work: EM's own posteriors then confirm a pair who always answer "deny". For each true label
    of the gold items a reviewer answered, the Beta posterior of their accuracy on those items (the same
    prior) gives a central GOLD_CREDIBLE_MASS credible interval, and the estimate is kept inside every one of
    them. The one-coin model says a reviewer is as accurate whatever the true label, so an honest reviewer's
    estimate seldom meets a bound (in simulation it costs well under a tenth of a point of consensus
    accuracy); a reviewer who always answers "deny" has a perfect record on gold deny cases and none on the
    others, and is held below the upper bound of that worst label (where intervals do not overlap, the
    lowest upper bound wins). With 5-10% gold this exposes colluders that EM alone rates above honest
    reviewers until gold is 30% of the work.

    EM starts from the vote shares of each item (majority vote) and stops when no accuracy or share moves by
    more than `tolerance`, or after `max_iterations` (then `converged` is False). Without gold and with
    `prior_strength` near 0 its fixed point is that of crowd-kit's OneCoinDawidSkene. Non-gold items with
    fewer than two answers are left out: nobody contradicts the single answer, so counting it would let a
    reviewer confirm their own accuracy. Reviewers with no counted answer are absent from the result (the
    weighted rule then uses UNKNOWN_REVIEWER_RELIABILITY). The computation is deterministic: labels and
    reviewers are indexed in sorted order and items in the mapping's order.
    """
    gold = gold or {}
    if not 0.0 < prior_accuracy < 1.0:
        raise ValueError(f"prior_accuracy must be strictly between 0 and 1, not {prior_accuracy!r}")
    if prior_strength <= 0 or max_iterations < 1 or tolerance <= 0:
        raise ValueError("prior_strength and tolerance must be positive and max_iterations at least 1")
    items = [
        (item, list(item_answers))
        for item, item_answers in answers.items()
        if len(item_answers) >= 2 or (item in gold and item_answers)
    ]
    for item, item_answers in items:
        if len({reviewer for reviewer, _ in item_answers}) != len(item_answers):
            raise ValueError(f"item {item!r} has two answers from one reviewer; pass only each reviewer's latest")
    if not items:
        return ReliabilityEstimate(accuracy={}, answers={}, class_prior={}, iterations=0, converged=True)

    labels = sorted(
        {label for _, item_answers in items for _, label in item_answers}
        | {gold[item] for item, _ in items if item in gold}
    )
    reviewers = sorted({reviewer for _, item_answers in items for reviewer, _ in item_answers})
    label_index = {label: index for index, label in enumerate(labels)}
    reviewer_index = {reviewer: index for index, reviewer in enumerate(reviewers)}
    item_of = np.array([i for i, (_, item_answers) in enumerate(items) for _ in item_answers])
    reviewer_of = np.array([reviewer_index[r] for _, item_answers in items for r, _ in item_answers])
    label_of = np.array([label_index[label] for _, item_answers in items for _, label in item_answers])
    gold_of_item = np.array([label_index[gold[item]] if item in gold else -1 for item, _ in items])
    gold_rows = np.flatnonzero(gold_of_item >= 0)
    real_rows = np.flatnonzero(gold_of_item < 0)
    n_items, n_labels, n_reviewers = len(items), len(labels), len(reviewers)
    wrong_choices = max(n_labels - 1, 1)
    chance = 1.0 / (wrong_choices + 1)
    answered = np.bincount(reviewer_of, minlength=n_reviewers).astype(float)
    prior_right = prior_accuracy * prior_strength
    lowest, highest = _gold_bounds(
        reviewer_of=reviewer_of,
        label_of=label_of,
        gold_label_of=gold_of_item[item_of],
        reviewers=n_reviewers,
        labels=n_labels,
        prior_right=prior_right,
        prior_wrong=prior_strength - prior_right,
    )

    def clamp_gold(posterior: np.ndarray) -> np.ndarray:
        posterior[gold_rows] = 0.0
        posterior[gold_rows, gold_of_item[gold_rows]] = 1.0
        return posterior

    def m_step(posterior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        correct_mass = np.bincount(reviewer_of, weights=posterior[item_of, label_of], minlength=n_reviewers)
        # The smoothed share is the maximum of a concave likelihood in p_r: clipping it into the gold bounds
        # is the maximum within them, so EM still climbs.
        accuracy = np.clip((prior_right + correct_mass) / (prior_strength + answered), lowest, highest)
        class_prior = (posterior[real_rows].sum(axis=0) + prior_strength / n_labels) / (len(real_rows) + prior_strength)
        return accuracy, class_prior

    posterior = np.zeros((n_items, n_labels))
    np.add.at(posterior, (item_of, label_of), 1.0)
    posterior = clamp_gold(posterior / posterior.sum(axis=1, keepdims=True))
    accuracy, class_prior = m_step(posterior)
    converged, iterations = False, 0
    while not converged and iterations < max_iterations:
        iterations += 1
        # An answer from a reviewer at or below chance is no evidence, as in the weighted rule: read as evidence
        # against itself, a colluder's constant "deny" held below chance by gold would turn every case to approve.
        weighing = np.maximum(accuracy, chance)
        log_right, log_wrong = np.log(weighing), np.log((1.0 - weighing) / wrong_choices)
        log_posterior = np.tile(np.log(class_prior), (n_items, 1))
        log_posterior += np.bincount(item_of, weights=log_wrong[reviewer_of], minlength=n_items)[:, None]
        np.add.at(log_posterior, (item_of, label_of), (log_right - log_wrong)[reviewer_of])
        posterior = np.exp(log_posterior - log_posterior.max(axis=1, keepdims=True))
        posterior = clamp_gold(posterior / posterior.sum(axis=1, keepdims=True))
        new_accuracy, new_class_prior = m_step(posterior)
        converged = bool(
            max(np.max(np.abs(new_accuracy - accuracy)), np.max(np.abs(new_class_prior - class_prior))) < tolerance
        )
        accuracy, class_prior = new_accuracy, new_class_prior

    return ReliabilityEstimate(
        accuracy={reviewer: float(accuracy[index]) for reviewer, index in reviewer_index.items()},
        answers={reviewer: int(answered[index]) for reviewer, index in reviewer_index.items()},
        class_prior={label: float(class_prior[index]) for label, index in label_index.items()},
        iterations=iterations,
        converged=converged,
    )


def _gold_bounds(
    *,
    reviewer_of: np.ndarray,
    label_of: np.ndarray,
    gold_label_of: np.ndarray,
    reviewers: int,
    labels: int,
    prior_right: float,
    prior_wrong: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Per reviewer, the accuracies their gold record leaves credible: (0, 1) for one who answered no gold."""
    lowest, highest = np.zeros(reviewers), np.ones(reviewers)
    tail = (1.0 - GOLD_CREDIBLE_MASS) / 2
    for true_label in range(labels):
        on_gold = gold_label_of == true_label
        seen = np.bincount(reviewer_of[on_gold], minlength=reviewers)
        right = np.bincount(
            reviewer_of[on_gold], weights=(label_of[on_gold] == true_label).astype(float), minlength=reviewers
        )
        a, b = prior_right + right, prior_wrong + seen - right
        lowest = np.where(seen > 0, np.maximum(lowest, betaincinv(a, b, tail)), lowest)
        highest = np.where(seen > 0, np.minimum(highest, betaincinv(a, b, 1.0 - tail)), highest)
    return np.minimum(lowest, highest), highest


def _require_one_vote_per_reviewer(votes: Sequence[Vote]) -> None:
    seen: set[int] = set()
    for vote in votes:
        if vote.reviewer_id in seen:
            raise ValueError(f"reviewer {vote.reviewer_id} voted twice; pass only each reviewer's current review")
        seen.add(vote.reviewer_id)


def _vote_weight(vote: Vote, reliabilities: Mapping[int, float], labels: int) -> float:
    if vote.weight is not None:
        if not (math.isfinite(vote.weight) and vote.weight >= 0):
            raise ValueError(f"reviewer {vote.reviewer_id}'s vote weight must be a finite number >= 0")
        return vote.weight
    return reliability_weight(reliabilities.get(vote.reviewer_id, UNKNOWN_REVIEWER_RELIABILITY), labels=labels)


def _evidence_in_words(
    votes: Sequence[Vote],
    ranked: Sequence[str],
    reliabilities: Mapping[int, float],
    *,
    labels: int,
    prior_share: float | None,
    top_label: str,
) -> str:
    """Who chose what, most probable label first, and the leading label's share of cases when one was given."""
    groups = []
    for label in ranked:
        chosen = [vote for vote in votes if vote.label == label]
        if not chosen:
            continue
        rated = [vote.reviewer_id for vote in chosen if vote.weight is None]
        known = sorted((reliabilities[reviewer] for reviewer in rated if reviewer in reliabilities), reverse=True)
        unproven = sum(reviewer not in reliabilities for reviewer in rated)
        accuracies = [_accuracy_in_words(accuracy, labels=labels) for accuracy in known]
        accuracies += [f"{UNKNOWN_REVIEWER_RELIABILITY:.2f} (presumed, no record yet)"] * unproven
        weights = sorted((vote.weight for vote in chosen if vote.weight is not None), reverse=True)
        details = []
        if accuracies:
            details.append(f"of estimated accuracy {_join(accuracies)}")
        if weights:
            details.append(f"with set vote weight {_join([f'{weight:g}' for weight in weights])}")
        who = f"{_count_in_words(len(chosen))} reviewer{'s' if len(chosen) > 1 else ''}"
        groups.append(f"{who} {' and '.join(details)} chose {label}")
    words = _join(groups)
    if prior_share is not None:
        words += f"; {top_label} is {_percent_in_words(prior_share)} of this model's reviewed cases"
    return words


def _accuracy_in_words(accuracy: float, *, labels: int) -> str:
    """An estimated accuracy, and how the rule counted it where it departs from the estimate (see the weight)."""
    if accuracy <= 1.0 / labels:
        return f"{accuracy:.2f} (at or below chance, so not counted)"
    if accuracy > RELIABILITY_CEILING:
        shown, _ = _distinct_decimals(accuracy, RELIABILITY_CEILING)
        return f"{shown} (counted as {RELIABILITY_CEILING:.2f}, the ceiling)"
    return f"{accuracy:.2f}"


def _escalated(agreement: float, tally: dict[str, float], reason: str, *, explanation: str = "") -> ConsensusOutcome:
    return ConsensusOutcome(
        decided=False,
        label=None,
        agreement=agreement,
        tally=tally,
        escalation_reason=reason,
        explanation=explanation,
    )


def _below_required(agreement: float, required: float, label: str) -> str:
    shown_agreement, shown_required = _distinct_decimals(agreement, required)
    return f"agreement {shown_agreement} for {label} is below the {shown_required} required"


def _join(labels: Sequence[str]) -> str:
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} and {labels[-1]}"


def _count_in_words(count: int) -> str:
    return _NUMBER_WORDS[count] if count < len(_NUMBER_WORDS) else str(count)


def _probability_in_words(probability: float) -> str:
    """Two decimals, but never "1.00" for a probability short of certainty, nor "0.00" above zero."""
    shown = f"{probability:.2f}"
    if shown == "1.00" and probability < 1.0:
        return "above 0.99"
    if shown == "0.00" and probability > 0.0:
        return "below 0.01"
    return shown


def _percent_in_words(share: float) -> str:
    shown = f"{share * 100:.0f}%"
    if shown == "100%" and share < 1.0:
        return "over 99%"
    if shown == "0%" and share > 0.0:
        return "under 1%"
    return shown


def _distinct_decimals(shown: float, required: float) -> tuple[str, str]:
    """Two decimals, or more when two decimals would print a share below the threshold as equal to it."""
    for decimals in range(2, 7):
        pair = (f"{shown:.{decimals}f}", f"{required:.{decimals}f}")
        if pair[0] != pair[1]:
            return pair
    return pair
