"""Reads behind the appeal pages: find a decided case and show it to an adjudicator who may reopen it.

An adjudicator sees what the adjudication page shows (the model's answer, the routing reasons, every review
with its rationale, corrections included) plus the decision and its trail of earlier final labels. As on every
reviewer page, the case's sensitive attributes are never loaded and features named like one are dropped.
"""

from dataclasses import dataclass
from datetime import datetime

from models_registry.models import MLModel
from models_registry.validators import sensitive_name_keys
from reviews.models import Decision, Prediction, Review
from reviews.selectors.queue import FeatureRow, feature_rows

# Deferred on every read of this module: the appeal pages must not even hold them in memory.
SENSITIVE_FIELDS = ("prediction__sensitive_attributes",)


class AppealCaseNotFound(LookupError):
    """No decided case matches an appeal search; the message says what was missing, in the reader's words."""


@dataclass(frozen=True)
class EarlierDecision:
    """One historical state of the decision: the label it had, who set it, and why."""

    at: datetime
    final_label: str
    source: str
    by: str
    reason: str


@dataclass(frozen=True)
class AppealCase:
    """A decided case as an adjudicator sees it on the appeal pages."""

    decision: Decision
    external_id: str
    case_name: str
    model_name: str
    version_number: int
    labels: list[str]
    predicted_label: str
    confidence: float | None
    features: list[FeatureRow]
    route_reasons: list[str]
    reviews: list[Review]
    trail: list[EarlierDecision]


def appeal_case(*, decision_id: int) -> AppealCase:
    """One decision with its case, reviews and earlier labels, in three queries; raises Decision.DoesNotExist."""
    decision = _decisions().get(pk=decision_id)
    return _shape(decision)


def appeal_case_search(*, model: MLModel | None, external_id: str, decision_id: int | None) -> AppealCase:
    """The decided case named by a decision id, or by a model and the caller's external id.

    Raises AppealCaseNotFound with a message that tells an unknown case from one that is not decided yet.
    """
    if decision_id is not None:
        decision = _decisions().filter(pk=decision_id).first()
        if decision is None:
            raise AppealCaseNotFound(f"No decision has the id {decision_id}.")
        return _shape(decision)
    assert model is not None, "the search form asks for the model when no decision id is given"
    decision = _decisions().filter(model=model, prediction__external_id=external_id).first()
    if decision is None:
        if Prediction.objects.filter(model=model, external_id=external_id).exists():
            raise AppealCaseNotFound(
                f"Case {external_id!r} of {model.name} has no final decision yet: there is nothing to appeal."
            )
        raise AppealCaseNotFound(f"{model.name} has no case with the external id {external_id!r}.")
    return _shape(decision)


def _decisions():
    return Decision.objects.select_related("prediction__version", "model", "decided_by").defer(*SENSITIVE_FIELDS)


def _shape(decision: Decision) -> AppealCase:
    prediction, model = decision.prediction, decision.model
    sensitive = sensitive_name_keys(model.sensitive_attributes)
    reviews = list(Review.objects.filter(task__prediction_id=prediction.pk).select_related("reviewer").order_by("id"))
    history = decision.history.select_related("history_user").order_by("history_date", "history_id")
    trail = [
        EarlierDecision(
            at=row.decided_at,
            final_label=row.final_label,
            source=row.get_source_display(),
            by=row.history_user.get_username() if row.history_user_id else "system",
            reason=row.history_change_reason or "",
        )
        for row in history
    ]
    return AppealCase(
        decision=decision,
        external_id=prediction.external_id,
        case_name=prediction.case_name,
        model_name=model.name,
        version_number=prediction.version.number,
        labels=list(model.labels),
        predicted_label=prediction.predicted_label,
        confidence=prediction.confidence,
        features=feature_rows(prediction.features, schema=model.feature_schema, sensitive=sensitive),
        route_reasons=[str(reason) for reason in prediction.route_reasons or []],
        reviews=reviews,
        trail=trail,
    )
