"""Cases with known group rates for the bias audit tests, written in bulk (hundreds of rows per test)."""

import itertools
from dataclasses import dataclass

from reviews.choices import DecisionSource, Route
from reviews.models import Decision, Prediction
from tests.reviews.factories import PredictionFactory


@dataclass(frozen=True)
class Cohort:
    """``count`` cases of one group: how many the model approved, how many the final decision approved, and
    how many of each carry a reported outcome of "approve" / "deny" (None: no outcome)."""

    sex: str
    age_band: str
    count: int
    model_approved: int
    final_approved: int | None = None
    outcome: str | None = None
    source: str = DecisionSource.AUTO


_sequence = itertools.count()


def cases_make(version, cohorts: list[Cohort]) -> list[Prediction]:
    """One prediction and decision per case; labels follow each cohort's counts, in order."""
    predictions, decisions = [], []
    for cohort in cohorts:
        final_approved = cohort.model_approved if cohort.final_approved is None else cohort.final_approved
        for index in range(cohort.count):
            predictions.append(
                PredictionFactory.build(
                    version=version,
                    model=version.model,
                    external_id=f"case-{next(_sequence)}",
                    sensitive_attributes={"sex": cohort.sex, "age_band": cohort.age_band},
                    predicted_label="approve" if index < cohort.model_approved else "deny",
                    route=Route.AUTO if cohort.source == DecisionSource.AUTO else Route.REVIEW,
                    outcome_label=cohort.outcome or "",
                    submitted_by=version.model.owner,
                )
            )
            decisions.append(("approve" if index < final_approved else "deny", cohort.source))
    Prediction.objects.bulk_create(predictions)
    Decision.objects.bulk_create(
        Decision(prediction=prediction, model=version.model, final_label=label, source=source)
        for prediction, (label, source) in zip(predictions, decisions, strict=True)
    )
    return predictions
