"""Human-decided credit cases for the retraining tests, written in bulk, with a known dependence on sex."""

import itertools

import numpy as np

from reviews.choices import DecisionSource, Route
from reviews.models import Decision, Prediction
from tests.reviews.factories import PredictionFactory

_sequence = itertools.count()


def credit_cases_make(
    version,
    *,
    count: int,
    seed: int = 0,
    women_amount_factor: float = 1.0,
    source: str = DecisionSource.CONSENSUS,
    label: str | None = None,
) -> list[Prediction]:
    """``count`` human-decided cases of ``version``'s model, half of them women's.

    The human label approves a loan when its monthly amount (credit_amount / duration) is under 300, with 5% of
    labels flipped. ``women_amount_factor`` > 1 makes women's loans larger, so a model of the amount alone (any
    model of these features) approves women less often: the four-fifths rule fails by construction.
    ``label`` forces every label (a single-class set).
    """
    rng = np.random.default_rng(seed)
    women = rng.random(count) < 0.5
    duration = rng.integers(6, 60, count)
    amount = rng.uniform(500, 20000, count) * np.where(women, women_amount_factor, 1.0)
    age = rng.integers(19, 75, count)
    approve = amount / duration < 300
    approve ^= rng.random(count) < 0.05
    predictions, decisions = [], []
    for index in range(count):
        human = label or ("approve" if approve[index] else "deny")
        predictions.append(
            PredictionFactory.build(
                version=version,
                model=version.model,
                external_id=f"retraining-case-{next(_sequence)}",
                features={
                    "credit_amount": round(float(amount[index]), 2),
                    "duration": int(duration[index]),
                    "age": int(age[index]),
                },
                sensitive_attributes={"sex": "female" if women[index] else "male", "age_band": "35-50"},
                predicted_label=human,
                confidence=0.7,
                route=Route.REVIEW,
            )
        )
    Prediction.objects.bulk_create(predictions)
    for prediction in predictions:
        decisions.append(
            Decision(prediction=prediction, model=version.model, final_label=prediction.predicted_label, source=source)
        )
    Decision.objects.bulk_create(decisions)
    return predictions
