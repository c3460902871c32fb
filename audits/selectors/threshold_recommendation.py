"""One model's auto-decide threshold recommendation: inputs read by ``threshold_inputs``, figures computed by the
pure ``audits.thresholds``. A recommendation only: a person applies it (``audits.services.threshold_recommendation``).
"""

from dataclasses import dataclass
from typing import Any

from audits.selectors.threshold_inputs import ThresholdInputs, threshold_inputs
from audits.thresholds import (
    DEFAULT_CONFIDENCE_LEVEL,
    DEFAULT_TARGET_ERROR_RATE,
    ThresholdRecommendation,
    threshold_recommend,
)
from models_registry.models import MLModel

# Below a 0.1% target, no team labels enough cases to reach it (6,900 without a single error at 99.9%); above
# 50% it no longer guards anything. A one-sided bound below 50% confidence would sit under the observed rate.
TARGET_ERROR_RANGE = (0.001, 0.5)
CONFIDENCE_RANGE = (0.5, 0.999)


@dataclass(frozen=True)
class ModelThresholdRecommendation:
    """The recommendation and what it was computed from."""

    inputs: ThresholdInputs
    recommendation: ThresholdRecommendation

    @property
    def current_threshold(self) -> float:
        return self.inputs.current_threshold

    @property
    def recommended_threshold(self) -> float | None:
        return self.recommendation.recommended_threshold

    @property
    def changes_the_policy(self) -> bool:
        """Whether applying it would change the auto-decide threshold."""
        return self.recommended_threshold is not None and self.recommended_threshold != self.current_threshold


def threshold_parameter_errors(*, target_error: Any, confidence_level: Any) -> dict[str, list[str]]:
    """Problems with the parameters, by their API name (``target_error``, ``confidence``); empty when both are fine."""
    errors = {}
    for name, value, (low, high) in (
        ("target_error", target_error, TARGET_ERROR_RANGE),
        ("confidence", confidence_level, CONFIDENCE_RANGE),
    ):
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            errors[name] = [f"Enter a number from {low:g} to {high:g}."]
    return errors


def threshold_recommendation_for(
    *,
    model: MLModel,
    target_error: float = DEFAULT_TARGET_ERROR_RATE,
    confidence_level: float = DEFAULT_CONFIDENCE_LEVEL,
) -> ModelThresholdRecommendation:
    """The lowest auto-decide threshold whose error-rate upper bound at ``confidence_level`` stays under
    ``target_error``, with the operating points at the current and the recommended threshold and the bands of the
    reliability chart. The parameters must pass ``threshold_parameter_errors``."""
    inputs = threshold_inputs(model=model)
    recommendation = threshold_recommend(
        labelled=inputs.labelled,
        recent_confidences=inputs.recent_confidences(),
        recent_days=inputs.days,
        reviewer_capacity_per_day=inputs.reviewer_capacity_per_day,
        reviews_per_case=inputs.reviews_per_case,
        current_threshold=inputs.current_threshold,
        qa_sample_rate=inputs.policy.qa_sample_rate,
        target_error_rate=target_error,
        confidence_level=confidence_level,
    )
    return ModelThresholdRecommendation(inputs=inputs, recommendation=recommendation)


def threshold_recommendation_document(result: ModelThresholdRecommendation) -> dict[str, Any]:
    """The recommendation as JSON: what the API answers."""
    inputs = result.inputs
    return {
        "model": inputs.model.name,
        "current_threshold": result.current_threshold,
        **result.recommendation.as_dict(),
        "inputs": {
            "labelled_days": inputs.labelled_days,
            "recent_days": inputs.days,
            "capacity_days": inputs.capacity_days,
            "reviewer_capacity_per_day": inputs.reviewer_capacity_per_day,
            "reviews_per_case": inputs.reviews_per_case,
            "qa_sample_rate": inputs.policy.qa_sample_rate,
            "labels_with_own_threshold": list(inputs.labels_with_own_threshold),
        },
    }
