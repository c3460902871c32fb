"""Consensus among a case's reviewers, and how far to trust each reviewer. Pure computation: no Django.

Three rules turn a case's reviews into a decision or an escalation. Their names equal the values of
`reviews.choices.ConsensusRule` (a test compares them; this module may not import Django):

- majority: the label with the most votes wins; a tie for first place escalates.
- unanimous: every reviewer must give the same label.
- weighted: a majority in which each vote weighs the log-odds of its reviewer's estimated accuracy, so a
  reviewer with a proven record outweighs a coin-flipper (see `reliability_weight`).

Under every rule, agreement is the winning label's share of the (weighted) votes, and a case whose agreement
is below the policy's `min_agreement` goes to an adjudicator. Escalation reasons are written for a compliance
officer reading the case later, and ties are broken in one documented order, never by dict order.
"""

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

MAJORITY = "majority"
UNANIMOUS = "unanimous"
WEIGHTED = "weighted"
CONSENSUS_RULES = (MAJORITY, UNANIMOUS, WEIGHTED)

# A perfect record on a handful of gold cases must not hand one reviewer an unbounded veto: reliabilities are
# capped here before taking log-odds, so one reviewer weighs at most ln(19) ~ 2.94, about 3.5 reviewers at 0.7.
RELIABILITY_CEILING = 0.95
# Reviewers without an estimate yet (new, or no gold answered) are presumed trained but unproven.
UNKNOWN_REVIEWER_RELIABILITY = 0.7
# Shares and weights are sums of floats: a threshold of 2/3 must accept 2 votes of 3, and equal weights must tie.
_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Vote:
    """One reviewer's label on a case. `weight`, when given, replaces the reliability weight (weighted rule)."""

    reviewer_id: int
    label: str
    weight: float | None = None


@dataclass(frozen=True)
class ConsensusOutcome:
    """What the reviews decided: the label (None when escalated), its agreement, the tally, and why not."""

    decided: bool
    label: str | None
    agreement: float
    tally: dict[str, float]
    escalation_reason: str


@dataclass(frozen=True)
class ReliabilityEstimate:
    """Each reviewer's estimated accuracy in (0, 1), how many answers it rests on, and whether EM converged."""

    accuracy: dict[int, float]
    answers: dict[int, int]
    iterations: int
    converged: bool


def reliability_weight(reliability: float) -> float:
    """A vote's weight under the weighted rule: the log-odds ln(p / (1 - p)) of the reviewer's accuracy p.

    p is clipped to [0.5, RELIABILITY_CEILING]: a reviewer at or below chance counts 0 rather than a negative
    weight, because a vote that counted against its own label is something no reviewer or auditor could follow.
    Log-odds is the binary form of the one-coin model's weight; it is used for every label set.
    """
    if not 0.0 <= reliability <= 1.0:
        raise ValueError(f"a reliability is a probability between 0 and 1, not {reliability!r}")
    clipped = min(max(reliability, 0.5), RELIABILITY_CEILING)
    return math.log(clipped / (1.0 - clipped))


def resolve_consensus(
    votes: Iterable[Vote],
    *,
    rule: str,
    min_agreement: float,
    reliabilities: Mapping[int, float] | None = None,
) -> ConsensusOutcome:
    """Decide a case from its reviews under `rule`, or say in words why it goes to an adjudicator.

    Pass each reviewer's current review once (a correction replaces the review it corrects); a reviewer who
    appears twice is a ValueError, as are an unknown rule and a `min_agreement` outside [0, 1]. Majority and
    unanimous count each vote as 1 and ignore `Vote.weight`. The weighted rule uses `Vote.weight` when given,
    else `reliability_weight` of `reliabilities[reviewer_id]`, else of UNKNOWN_REVIEWER_RELIABILITY.
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

    tally = _tally(votes, rule, reliabilities or {})
    total = math.fsum(tally.values())
    if total <= _TOLERANCE:
        return _escalated(
            0.0, tally, "no vote carries any weight (every reviewer's estimated accuracy is at or below chance)"
        )
    # Most weight first, then alphabetical: the one order used for reasons, so the same votes read the same.
    ranked = sorted(tally.items(), key=lambda label_weight: (-label_weight[1], label_weight[0]))
    top_label, top_weight = ranked[0]
    leaders = sorted(label for label, weight in ranked if weight >= top_weight - _TOLERANCE)
    agreement = top_weight / total

    if rule == UNANIMOUS and len(ranked) > 1:
        split = ", ".join(f"{weight:g} {label}" for label, weight in ranked)
        return _escalated(
            agreement, tally, f"reviewers disagreed ({split}) and this policy requires a unanimous decision"
        )
    if len(leaders) > 1:
        if rule == WEIGHTED:
            reason = (
                f"reliability-weighted votes tied at {top_weight:.2f} between {_join(leaders)} "
                "(the weighted majority needs a clear winner)"
            )
        else:
            counts = "-".join(f"{weight:g}" for _, weight in ranked)
            labels = _join([label for label, _ in ranked])
            reason = f"reviewers split {counts} between {labels} (majority needs a clear winner)"
        return _escalated(agreement, tally, reason)
    if agreement + _TOLERANCE < min_agreement:
        shown_agreement, shown_required = _distinct_decimals(agreement, min_agreement)
        return _escalated(
            agreement, tally, f"agreement {shown_agreement} for {top_label} is below the {shown_required} required"
        )
    return ConsensusOutcome(decided=True, label=top_label, agreement=agreement, tally=tally, escalation_reason="")


def estimate_reviewer_reliability(
    answers: Mapping[Hashable, Sequence[tuple[int, str]]],
    *,
    gold: Mapping[Hashable, str] | None = None,
    prior_accuracy: float = UNKNOWN_REVIEWER_RELIABILITY,
    prior_strength: float = 2.0,
    max_iterations: int = 100,
    tolerance: float = 1e-6,
) -> ReliabilityEstimate:
    """Estimate each reviewer's accuracy with the one-coin Dawid-Skene model, fitted by EM.

    Input: `answers` maps an item id to its (reviewer_id, label) answers; `gold` maps the ids of gold items
    (known answer) to that answer.

    Model: each item i has an unknown true label z_i drawn from class proportions pi over the K labels seen
    (answers and gold). Reviewer r answers an item correctly with probability p_r, whatever the item, and
    otherwise picks one of the K - 1 wrong labels uniformly: P(l | z = k) = p_r if l == k else
    (1 - p_r) / (K - 1). Given p and pi, the posterior of z_i is proportional to pi_k times the product of
    its answers' likelihoods (E-step); on a gold item it is clamped to the known answer, which is what
    anchors the estimate when a colluding or confused majority is wrong. Given the posteriors, p_r is the
    expected share of r's answers that are correct, smoothed by a Beta prior with mean `prior_accuracy` and
    weight `prior_strength` answers, so that every estimate lies strictly in (0, 1) and a reviewer with three
    answers stays near the prior; pi is the Laplace-smoothed mean posterior (M-step).

    EM starts from the vote shares of each item (majority vote) and stops when no accuracy moves by more than
    `tolerance`, or after `max_iterations` (then `converged` is False). Non-gold items with fewer than two
    answers are left out: nobody contradicts the single answer, so counting it would let a reviewer confirm
    their own accuracy. Reviewers with no counted answer are absent from the result (the weighted rule then
    uses UNKNOWN_REVIEWER_RELIABILITY). The computation is deterministic: labels and reviewers are indexed in
    sorted order and items in the mapping's order.
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
        return ReliabilityEstimate(accuracy={}, answers={}, iterations=0, converged=True)

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
    gold_rows = np.array([i for i, (item, _) in enumerate(items) if item in gold], dtype=int)
    gold_cols = np.array([label_index[gold[item]] for item, _ in items if item in gold], dtype=int)
    n_items, n_labels = len(items), len(labels)
    wrong_choices = max(n_labels - 1, 1)
    answered = np.bincount(reviewer_of, minlength=len(reviewers)).astype(float)
    prior_right = prior_accuracy * prior_strength

    def clamp_gold(posterior: np.ndarray) -> np.ndarray:
        posterior[gold_rows] = 0.0
        posterior[gold_rows, gold_cols] = 1.0
        return posterior

    def m_step(posterior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        correct_mass = np.bincount(reviewer_of, weights=posterior[item_of, label_of], minlength=len(reviewers))
        accuracy = (prior_right + correct_mass) / (prior_strength + answered)
        class_prior = (posterior.sum(axis=0) + 1.0) / (n_items + n_labels)
        return accuracy, class_prior

    posterior = np.zeros((n_items, n_labels))
    np.add.at(posterior, (item_of, label_of), 1.0)
    posterior = clamp_gold(posterior / posterior.sum(axis=1, keepdims=True))
    accuracy, class_prior = m_step(posterior)
    converged, iterations = False, 0
    while not converged and iterations < max_iterations:
        iterations += 1
        log_right, log_wrong = np.log(accuracy), np.log((1.0 - accuracy) / wrong_choices)
        log_posterior = np.tile(np.log(class_prior), (n_items, 1))
        log_posterior += np.bincount(item_of, weights=log_wrong[reviewer_of], minlength=n_items)[:, None]
        np.add.at(log_posterior, (item_of, label_of), (log_right - log_wrong)[reviewer_of])
        posterior = np.exp(log_posterior - log_posterior.max(axis=1, keepdims=True))
        posterior = clamp_gold(posterior / posterior.sum(axis=1, keepdims=True))
        new_accuracy, class_prior = m_step(posterior)
        converged = bool(np.max(np.abs(new_accuracy - accuracy)) < tolerance)
        accuracy = new_accuracy

    return ReliabilityEstimate(
        accuracy={reviewer: float(accuracy[index]) for reviewer, index in reviewer_index.items()},
        answers={reviewer: int(answered[index]) for reviewer, index in reviewer_index.items()},
        iterations=iterations,
        converged=converged,
    )


def _require_one_vote_per_reviewer(votes: Sequence[Vote]) -> None:
    seen: set[int] = set()
    for vote in votes:
        if vote.reviewer_id in seen:
            raise ValueError(f"reviewer {vote.reviewer_id} voted twice; pass only each reviewer's current review")
        seen.add(vote.reviewer_id)


def _tally(votes: Sequence[Vote], rule: str, reliabilities: Mapping[int, float]) -> dict[str, float]:
    weights: dict[str, list[float]] = {}
    for vote in votes:
        weights.setdefault(vote.label, []).append(_vote_weight(vote, reliabilities) if rule == WEIGHTED else 1.0)
    # fsum is exactly rounded, so the tally does not depend on the order the reviews arrived in.
    return {label: math.fsum(weights[label]) for label in sorted(weights)}


def _vote_weight(vote: Vote, reliabilities: Mapping[int, float]) -> float:
    if vote.weight is not None:
        if not (math.isfinite(vote.weight) and vote.weight >= 0):
            raise ValueError(f"reviewer {vote.reviewer_id}'s vote weight must be a finite number >= 0")
        return vote.weight
    return reliability_weight(reliabilities.get(vote.reviewer_id, UNKNOWN_REVIEWER_RELIABILITY))


def _escalated(agreement: float, tally: dict[str, float], reason: str) -> ConsensusOutcome:
    return ConsensusOutcome(decided=False, label=None, agreement=agreement, tally=tally, escalation_reason=reason)


def _join(labels: Sequence[str]) -> str:
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} and {labels[-1]}"


def _distinct_decimals(shown: float, required: float) -> tuple[str, str]:
    """Two decimals, or more when two decimals would print a share below the threshold as equal to it."""
    for decimals in range(2, 7):
        pair = (f"{shown:.{decimals}f}", f"{required:.{decimals}f}")
        if pair[0] != pair[1]:
            return pair
    return pair
