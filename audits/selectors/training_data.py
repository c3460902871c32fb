"""The human-verified training data of a model: what retraining learns from and what ML engineers export.

A case is training data when a human decided it (consensus or adjudication; an upheld appeal is an adjudication)
and it still has its features (the retention purge empties them). Its label is the reported outcome where one was
reported (what really happened beats what anyone decided), else the human final label. Gold copies, made to
measure reviewers, never count. One query, streamed in id order, so a million cases never sit in memory at once.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Case, CharField, F, Q, QuerySet, Value, When

from reviews.choices import DecisionSource
from reviews.models import Prediction

HUMAN_DECISION_SOURCES = (DecisionSource.CONSENSUS, DecisionSource.ADJUDICATION)
# Where a case's training label came from.
LABEL_FROM_OUTCOME = "outcome"
LABEL_FROM_DECISION = "decision"
TRAINING_FIELDS = (
    "id",
    "external_id",
    "features",
    "training_label",
    "label_from",
    "final_label",
    "decision_source",
    "outcome_label",
    "version_number",
    "decided_at",
    "sensitive_attributes",
)


@dataclass(frozen=True)
class TrainingDataFilter:
    """Which human-decided cases: the model's, received in [since, until), decided by the given sources."""

    model_id: int
    since: datetime | None = None
    until: datetime | None = None
    sources: tuple[str, ...] = HUMAN_DECISION_SOURCES


def training_cases(data_filter: TrainingDataFilter) -> QuerySet:
    """The cases as dictionaries of ``TRAINING_FIELDS``, oldest first; iterate with ``.iterator(chunk_size=...)``."""
    cases = Prediction.objects.filter(
        model_id=data_filter.model_id,
        is_gold=False,
        decision__source__in=data_filter.sources,
    ).exclude(features={})
    if data_filter.since is not None:
        cases = cases.filter(created_at__gte=data_filter.since)
    if data_filter.until is not None:
        cases = cases.filter(created_at__lt=data_filter.until)
    reported = ~Q(outcome_label="")
    return (
        cases.annotate(
            training_label=Case(When(reported, then=F("outcome_label")), default=F("decision__final_label")),
            label_from=Case(
                When(reported, then=Value(LABEL_FROM_OUTCOME)),
                default=Value(LABEL_FROM_DECISION),
                output_field=CharField(),
            ),
            final_label=F("decision__final_label"),
            decision_source=F("decision__source"),
            version_number=F("version__number"),
            decided_at=F("decision__decided_at"),
        )
        .order_by("id")
        .values(*TRAINING_FIELDS)
    )
