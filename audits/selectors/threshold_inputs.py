"""What the auto-decide threshold recommendation (``audits.thresholds``) is computed from, for one model.

Four queries whatever the volume: the routing policy, the labelled cases (one row each), the recent intake
(counts only, aggregated in the database) and the reviewers' output (one count).

- Labelled cases: the model's cases a human decided (QA samples and reviewed cases, decision by consensus or
  adjudication) over the last ``labelled_days``, gold cases left out. The model was wrong when the reported
  outcome, where there is one, or else the human final label differs from its label.
- Recent intake: the model's cases (not gold) received over the last ``days``. The threshold is only ever
  compared with the auto-decide cut points (the grid and the current threshold), so the database counts the
  cases at or above each cut point and ``ThresholdInputs.recent_confidences`` stands each case in by the cut
  point just below it: every automation rate and review load the recommendation computes is exact, without
  reading one row per case.
- Labels with a threshold of their own (the policy's ``label_thresholds``) do not follow the auto-decide
  threshold: their labelled cases are left out of the error rates, and their recent cases count as decided
  automatically (at or above their own threshold) or reviewed (below it) whatever the auto-decide threshold.
- Capacity: reviews given on this model's cases over the last ``CAPACITY_DAYS`` (each reviewer's current
  review of a real case, as ``reviews.selectors.reviewer_stats.current_reviews`` counts them), per day.
- Reviews per case: the policy's reviews required, or its risk tier's default, as the router plans them.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from itertools import repeat

from django.db.models import BooleanField, Case, Count, F, Q, Value, When
from django.utils import timezone

from audits.selectors.dashboard import HUMAN_SOURCES
from audits.thresholds import DEFAULT_GRID
from models_registry.models import MLModel
from reviews.models import Prediction, RoutingPolicy
from reviews.routing import PolicySnapshot, review_plan
from reviews.selectors.policies import routing_policy_effective
from reviews.selectors.reviewer_stats import current_reviews

RECENT_DAYS = 14
LABELLED_DAYS = 90
CAPACITY_DAYS = 14


@dataclass(frozen=True)
class ThresholdInputs:
    """One model's labelled cases, recent intake, reviewers' capacity and reviews per case.

    ``cut_points`` ascend; ``recent_at_or_above[i]`` counts the recent cases of auto-decide labels whose
    confidence is at least ``cut_points[i]``. ``recent_auto_by_own_threshold`` are recent cases of labels with their own
    threshold that meet it; the rest of ``recent_total`` is never decided automatically (no usable confidence,
    or below a label's own threshold).
    """

    model: MLModel
    policy: RoutingPolicy
    labelled: list[tuple[float, bool]]
    cut_points: tuple[float, ...]
    recent_total: int
    recent_at_or_above: tuple[int, ...]
    recent_usable: int
    recent_auto_by_own_threshold: int
    reviews_given: int
    reviews_per_case: int
    days: int
    labelled_days: int
    capacity_days: int = CAPACITY_DAYS

    @property
    def current_threshold(self) -> float:
        return self.policy.auto_decide_threshold

    @property
    def labels_with_own_threshold(self) -> tuple[str, ...]:
        return tuple(sorted(self.policy.label_thresholds or {}))

    @property
    def reviewer_capacity_per_day(self) -> float:
        return self.reviews_given / self.capacity_days

    def recent_confidences(self) -> Iterator[float | None]:
        """A confidence per recent case, each the cut point at or below its own (see the module docstring)."""
        yield from repeat(0.0, self.recent_usable - self.recent_at_or_above[0])
        for index, cut in enumerate(self.cut_points):
            above_next = self.recent_at_or_above[index + 1] if index + 1 < len(self.cut_points) else 0
            yield from repeat(cut, self.recent_at_or_above[index] - above_next)
        yield from repeat(1.0, self.recent_auto_by_own_threshold)
        never_automatic = self.recent_total - self.recent_usable - self.recent_auto_by_own_threshold
        yield from repeat(None, never_automatic)


# A stored confidence outside [0, 1] (or NaN, which PostgreSQL sorts above every number) is never decided
# automatically: the router sends it to review.
USABLE_CONFIDENCE = Q(confidence__gte=0, confidence__lte=1)


def threshold_inputs(
    *,
    model: MLModel,
    days: int = RECENT_DAYS,
    labelled_days: int = LABELLED_DAYS,
    grid: Sequence[float] = DEFAULT_GRID,
) -> ThresholdInputs:
    """The inputs of ``audits.thresholds.threshold_recommend`` for ``model``: recent intake over ``days``,
    labelled cases over ``labelled_days``, capacity over the last two weeks; ``grid`` is the recommendation's."""
    now = timezone.now()
    policy = routing_policy_effective(model.pk)
    policy.model = model
    own_thresholds = dict(policy.label_thresholds or {})

    model_wrong = Case(
        When(Q(outcome_label="") & Q(decision__final_label=F("predicted_label")), then=Value(False)),
        When(~Q(outcome_label="") & Q(outcome_label=F("predicted_label")), then=Value(False)),
        default=Value(True),
        output_field=BooleanField(),
    )
    follows_default = USABLE_CONFIDENCE
    meets_own = Q()
    if own_thresholds:
        follows_default &= ~Q(predicted_label__in=list(own_thresholds))
        for label, threshold in own_thresholds.items():
            meets_own |= Q(predicted_label=label, confidence__gte=threshold, confidence__lte=1)

    labelled = list(
        Prediction.objects.filter(
            follows_default,
            model=model,
            is_gold=False,
            decision__source__in=HUMAN_SOURCES,
            created_at__gte=now - timedelta(days=labelled_days),
        )
        .annotate(model_wrong=model_wrong)
        .order_by()
        .values_list("confidence", "model_wrong")
    )

    cut_points = tuple(sorted({*grid, policy.auto_decide_threshold}))
    counts = {
        "total": Count("id"),
        "usable": Count("id", filter=follows_default),
        **{
            f"at_or_above_{index}": Count("id", filter=follows_default & Q(confidence__gte=cut))
            for index, cut in enumerate(cut_points)
        },
    }
    if own_thresholds:
        counts["auto_by_own_threshold"] = Count("id", filter=meets_own)
    recent = Prediction.objects.filter(
        model=model, is_gold=False, created_at__gte=now - timedelta(days=days)
    ).aggregate(**counts)

    reviews_given = (
        current_reviews(model_id=model.pk, since=now - timedelta(days=CAPACITY_DAYS))
        .filter(task__prediction__is_gold=False)
        .count()
    )
    reviews_per_case, _ = review_plan(
        PolicySnapshot(
            model_name=model.name,
            risk_tier=model.risk_tier,
            auto_decide_threshold=policy.auto_decide_threshold,
            label_thresholds=own_thresholds,
            rules=(),
            qa_sample_rate=policy.qa_sample_rate,
            reviews_required=policy.reviews_required,
        )
    )
    return ThresholdInputs(
        model=model,
        policy=policy,
        # USABLE_CONFIDENCE (0 <= confidence <= 1) leaves out cases without a confidence.
        labelled=[(float(confidence), bool(wrong)) for confidence, wrong in labelled if confidence is not None],
        cut_points=cut_points,
        recent_total=recent["total"],
        recent_at_or_above=tuple(recent[f"at_or_above_{index}"] for index in range(len(cut_points))),
        recent_usable=recent["usable"],
        recent_auto_by_own_threshold=recent.get("auto_by_own_threshold", 0),
        reviews_given=reviews_given,
        reviews_per_case=reviews_per_case,
        days=days,
        labelled_days=labelled_days,
    )
