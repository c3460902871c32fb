"""The table a human-in-the-loop success story reports, computed against the reported real outcomes.

Over a model's decided cases with a reported outcome (gold copies left out), overall and per value of one sensitive
attribute: the automation rate; the accuracy of the model alone (its label), of the humans alone (each current
review's label, on the cases people reviewed) and of the combined process (the final label); how much of the
model's error the process removed; and the share of human workload saved (cases no person had to review, against
reviewing every case). Two GROUP BY queries, whatever the number of cases.
"""

from dataclasses import dataclass

from django.db.models import Case, CharField, Count, Exists, F, IntegerField, OuterRef, Q, Sum, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Coalesce

from reviews.choices import DecisionSource
from reviews.models import Prediction
from reviews.selectors.reviewer_stats import current_reviews

OVERALL = "all cases"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class OutcomeRow:
    """One line of the table: ``group`` is OVERALL or a value of the attribute."""

    group: str
    cases: int
    automated: int
    reviewed: int
    ai_correct: int
    combined_correct: int
    reviews: int
    reviews_correct: int

    @property
    def automation_rate(self) -> float | None:
        return self.automated / self.cases if self.cases else None

    @property
    def ai_accuracy(self) -> float | None:
        return self.ai_correct / self.cases if self.cases else None

    @property
    def human_accuracy(self) -> float | None:
        return self.reviews_correct / self.reviews if self.reviews else None

    @property
    def combined_accuracy(self) -> float | None:
        return self.combined_correct / self.cases if self.cases else None

    @property
    def error_reduction(self) -> float | None:
        """The share of the model's errors the combined process did not make: 1 - combined error / AI error."""
        if not self.cases or self.ai_correct == self.cases:
            return None
        return 1 - (self.cases - self.combined_correct) / (self.cases - self.ai_correct)

    @property
    def workload_saved(self) -> float | None:
        """Cases no person reviewed, as a share of all: the reviews saved against reviewing every case."""
        return 1 - self.reviewed / self.cases if self.cases else None


_COUNTED = ("cases", "automated", "reviewed", "ai_correct", "combined_correct", "reviews", "reviews_correct")


def _case_counts(cases, key: str):
    reviewed = Exists(current_reviews().filter(task__prediction=OuterRef("pk")))
    return (
        cases.filter(is_gold=False, decision__isnull=False)
        .exclude(outcome_label="")
        .annotate(was_reviewed=reviewed)
        .values(key)
        .annotate(
            cases=Count("id"),
            automated=Count("id", filter=Q(decision__source=DecisionSource.AUTO)),
            reviewed=Count("id", filter=Q(was_reviewed=True)),
            ai_correct=Count("id", filter=Q(predicted_label=F("outcome_label"))),
            combined_correct=Count("id", filter=Q(decision__final_label=F("outcome_label"))),
        )
        .order_by(key)
    )


def _review_counts(reviews, key: str) -> dict:
    rows = (
        reviews.filter(task__prediction__is_gold=False, task__prediction__decision__isnull=False)
        .exclude(task__prediction__outcome_label="")
        .values(key)
        .annotate(
            reviews=Count("id"),
            reviews_correct=Sum(
                Case(When(label=F("task__prediction__outcome_label"), then=1), default=0, output_field=IntegerField())
            ),
        )
        .order_by(key)
    )
    return {row[key]: (row["reviews"], row["reviews_correct"] or 0) for row in rows}


def _rows(case_counts, review_counts: dict, key: str) -> list[OutcomeRow]:
    return [
        OutcomeRow(
            group=str(row[key]),
            cases=row["cases"],
            automated=row["automated"],
            reviewed=row["reviewed"],
            ai_correct=row["ai_correct"],
            combined_correct=row["combined_correct"],
            reviews=review_counts.get(row[key], (0, 0))[0],
            reviews_correct=review_counts.get(row[key], (0, 0))[1],
        )
        for row in case_counts
    ]


def outcome_table(*, model_id: int, attribute: str) -> list[OutcomeRow]:
    """The overall row, then one per value of ``attribute`` (sorted), over cases with a reported outcome."""
    cases = Prediction.objects.filter(model_id=model_id).annotate(
        group=Coalesce(KeyTextTransform(attribute, "sensitive_attributes"), Value(UNKNOWN), output_field=CharField())
    )
    reviews = current_reviews(model_id=model_id).annotate(
        group=Coalesce(
            KeyTextTransform(attribute, "task__prediction__sensitive_attributes"),
            Value(UNKNOWN),
            output_field=CharField(),
        )
    )
    rows = _rows(_case_counts(cases, "group"), _review_counts(reviews, "group"), "group")
    overall = OutcomeRow(group=OVERALL, **{name: sum(getattr(row, name) for row in rows) for name in _COUNTED})
    return [overall, *rows]


def outcome_overall_per_model(*, model_ids) -> dict[int, OutcomeRow]:
    """Each model's overall row, for the dashboard: two queries whatever the number of models."""
    model_ids = list(model_ids)
    cases = Prediction.objects.filter(model_id__in=model_ids)
    reviews = current_reviews().filter(task__model_id__in=model_ids).annotate(model_key=F("task__model_id"))
    rows = _rows(_case_counts(cases, "model_id"), _review_counts(reviews, "model_key"), "model_id")
    return {int(row.group): row for row in rows}
