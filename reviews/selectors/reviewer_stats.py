"""Agreement statistics and per-reviewer figures, for the admin dashboards and the weighted consensus rule.

The arithmetic lives in the pure modules `reviews.agreement` and `reviews.consensus`; this module only reads
the rows they need, in one query each, and shapes them. What counts:

- each reviewer's current review of a case (a correction replaces the review it corrects); adjudications are
  final calls, not ratings, and are left out;
- inter-rater agreement, agreement with the final decision and agreement with the model use real cases only:
  gold cases (answered by every reviewer) would swamp them, and they measure accuracy instead;
- a period filters on when the review was given (`since` inclusive, `until` exclusive);
- a fast review (`reviews.agreement.is_fast_review`) is counted on gold and real cases alike: a rubber stamp
  is one wherever it lands.
"""

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from itertools import combinations

from django.db.models import QuerySet

from reviews.agreement import (
    FAST_REVIEW_SECONDS,
    MatchRate,
    agreement_with_final,
    cohens_kappa,
    fast_review_counts,
    fleiss_kappa,
    krippendorff_alpha_nominal,
    median_time_by_reviewer,
    model_agreement_rate,
    percent_agreement,
    reviewer_accuracy_on_gold,
)
from reviews.consensus import ReliabilityEstimate, estimate_reviewer_reliability
from reviews.models import Review

# How many of a model's most recent reviews the reliability estimate rests on: enough for a stable estimate
# of every active reviewer, few enough to run inside the submit that completes a case.
RELIABILITY_WINDOW = 5000


@dataclass(frozen=True)
class ReviewerFigures:
    """One reviewer's quality figures; a MatchRate is None when there was nothing to compare with.

    ``fast_reviews`` counts the reviews given too fast for the case's number of features
    (``reviews.agreement.is_fast_review``): the rubber-stamp signal next to ``model_agreement``.
    """

    reviewer_id: int
    username: str
    reviews: int
    gold_accuracy: MatchRate | None
    agreement_with_final: MatchRate | None
    model_agreement: MatchRate | None
    median_seconds: float | None
    fast_reviews: int


@dataclass(frozen=True)
class PairKappa:
    """Cohen's kappa of two reviewers over the cases both reviewed."""

    reviewer_ids: tuple[int, int]
    items: int
    kappa: float | None


@dataclass(frozen=True)
class AgreementStatistics:
    """Agreement among reviewers on real cases, and each reviewer's figures. None means undefined."""

    items: int
    ratings: int
    percent_agreement: float | None
    fleiss_kappa: float | None
    fleiss_items: int
    fleiss_raters: int
    krippendorff_alpha: float | None
    pairwise_kappa: list[PairKappa]
    reviewers: list[ReviewerFigures]


def current_reviews(
    *, model_id: int | None = None, since: datetime | None = None, until: datetime | None = None
) -> QuerySet[Review]:
    """Each reviewer's current (uncorrected, non-adjudication) reviews, optionally of one model and period."""
    reviews = Review.objects.filter(is_adjudication=False, corrections__isnull=True)
    if model_id is not None:
        reviews = reviews.filter(task__model_id=model_id)
    if since is not None:
        reviews = reviews.filter(created_at__gte=since)
    if until is not None:
        reviews = reviews.filter(created_at__lt=until)
    return reviews


def agreement_statistics(
    *,
    model_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    reviewer_id: int | None = None,
) -> AgreementStatistics:
    """Percent agreement, Fleiss' kappa, Krippendorff's alpha, pairwise Cohen's kappa and reviewer figures.

    With `reviewer_id`, only the cases that reviewer reviewed count, and only their figures are listed.
    Fleiss' kappa needs the same number of ratings on every case: it is computed over the cases with the
    most common number of ratings (at least two), reported as `fleiss_items` and `fleiss_raters`.
    """
    rows = list(
        current_reviews(model_id=model_id, since=since, until=until)
        .order_by("task_id", "reviewer_id")
        .values_list(
            "reviewer_id",
            "reviewer__username",
            "task_id",
            "label",
            "time_spent_seconds",
            "task__prediction__predicted_label",
            "task__prediction__is_gold",
            "task__prediction__gold_label",
            "task__prediction__decision__final_label",
        )
    )
    fast_rows = _fast_reviews(model_id=model_id, since=since, until=until)
    if reviewer_id is not None:
        mine = {task_id for reviewer, _, task_id, *_ in rows if reviewer == reviewer_id}
        rows = [row for row in rows if row[2] in mine]
        fast = [(reviewer, seconds, count) for reviewer, task_id, seconds, count in fast_rows if task_id in mine]
    else:
        fast = [(reviewer, seconds, count) for reviewer, _, seconds, count in fast_rows]

    usernames: dict[int, str] = {}
    real: list[tuple[int, int, str]] = []
    gold_reviews: list[tuple[int, int, str]] = []
    gold: dict[int, str] = {}
    final: dict[int, str] = {}
    model_labels: dict[int, str] = {}
    times: list[tuple[int, float]] = []
    for reviewer, username, task_id, label, seconds, predicted, is_gold, gold_label, final_label in rows:
        usernames[reviewer] = username
        times.append((reviewer, seconds))
        if is_gold:
            gold_reviews.append((reviewer, task_id, label))
            gold[task_id] = gold_label
            continue
        real.append((reviewer, task_id, label))
        model_labels[task_id] = predicted
        if final_label is not None:
            final[task_id] = final_label

    by_item: dict[int, dict[int, str]] = defaultdict(dict)
    for reviewer, task_id, label in real:
        by_item[task_id][reviewer] = label
    items = [list(labels.values()) for labels in by_item.values()]
    rated_counts = Counter(len(ratings) for ratings in items if len(ratings) >= 2)
    fleiss_raters = max(rated_counts, key=lambda count: (rated_counts[count], count)) if rated_counts else 0
    fleiss_items = [ratings for ratings in items if len(ratings) == fleiss_raters]

    listed = sorted(usernames) if reviewer_id is None else [reviewer_id]
    gold_rates = reviewer_accuracy_on_gold(gold_reviews, gold)
    final_rates = agreement_with_final(real, final)
    model_rates = model_agreement_rate(real, model_labels)
    medians = median_time_by_reviewer(times)
    fast_counts = fast_review_counts(fast)
    review_counts = Counter(reviewer for reviewer, *_ in rows)
    return AgreementStatistics(
        items=len(items),
        ratings=len(real),
        percent_agreement=percent_agreement(items),
        fleiss_kappa=fleiss_kappa(fleiss_items) if fleiss_items else None,
        fleiss_items=len(fleiss_items),
        fleiss_raters=fleiss_raters,
        krippendorff_alpha=krippendorff_alpha_nominal(items),
        pairwise_kappa=_pairwise_kappa(by_item, only=reviewer_id),
        reviewers=[
            ReviewerFigures(
                reviewer_id=reviewer,
                username=usernames.get(reviewer, ""),
                reviews=review_counts[reviewer],
                gold_accuracy=gold_rates.get(reviewer),
                agreement_with_final=final_rates.get(reviewer),
                model_agreement=model_rates.get(reviewer),
                median_seconds=medians.get(reviewer),
                fast_reviews=fast_counts.get(reviewer, 0),
            )
            for reviewer in listed
            if reviewer in usernames
        ],
    )


def _fast_reviews(
    *, model_id: int | None, since: datetime | None, until: datetime | None
) -> list[tuple[int, int, int, int]]:
    """(reviewer id, task id, seconds, feature count) of the current reviews faster than FAST_REVIEW_SECONDS.

    Only these few rows load their case's features, to count them; the main query never reads personal data.
    """
    rows = (
        current_reviews(model_id=model_id, since=since, until=until)
        .filter(time_spent_seconds__lt=FAST_REVIEW_SECONDS)
        .values_list("reviewer_id", "task_id", "time_spent_seconds", "task__prediction__features")
    )
    return [
        (reviewer, task_id, seconds, len(features) if isinstance(features, dict) else 0)
        for reviewer, task_id, seconds, features in rows
    ]


def _pairwise_kappa(by_item: dict[int, dict[int, str]], *, only: int | None) -> list[PairKappa]:
    pairs: dict[tuple[int, int], list[tuple[str, str]]] = defaultdict(list)
    for labels in by_item.values():
        for first, second in combinations(sorted(labels), 2):
            if only is None or only in (first, second):
                pairs[first, second].append((labels[first], labels[second]))
    return [
        PairKappa(reviewer_ids=pair, items=len(labelled), kappa=cohens_kappa(labelled))
        for pair, labelled in sorted(pairs.items())
    ]


def reviewer_reliabilities(*, model_id: int, window: int = RELIABILITY_WINDOW) -> ReliabilityEstimate:
    """Each reviewer's estimated accuracy on this model and each label's share of its cases, in one estimate.

    One-coin Dawid-Skene over gold and agreement (`reviews.consensus.estimate_reviewer_reliability`), on the
    model's most recent `window` current reviews. The weighted consensus rule takes both the accuracies and the
    class prior from it; reviewers absent from `accuracy` get the consensus module's default reliability.
    """
    rows = (
        current_reviews(model_id=model_id)
        .order_by("-id")
        .values_list("task_id", "reviewer_id", "label", "task__prediction__is_gold", "task__prediction__gold_label")[
            :window
        ]
    )
    answers: dict[int, list[tuple[int, str]]] = defaultdict(list)
    gold: dict[int, str] = {}
    for task_id, reviewer, label, is_gold, gold_label in rows:
        answers[task_id].append((reviewer, label))
        if is_gold and gold_label:
            gold[task_id] = gold_label
    return estimate_reviewer_reliability(answers, gold=gold)
