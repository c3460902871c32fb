"""Outcomes: the real-world result of a case, reported later, the ground truth of accuracy and fairness metrics.

Reporting the same label again is a no-op (safe to retry). Reporting a different label once an outcome is
recorded is refused (409) unless the caller says it is a correction and gives a reason: an outcome feeds
audits and retraining, so it never changes silently.
"""

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audits.events import LedgerEvent
from audits.ledger import ledger_append
from hitl_platform.history import change_reason, historise
from models_registry.services import ml_model_check_writer
from reviews.exceptions import OutcomeConflictError
from reviews.models import PERSONAL_DATA_FIELDS, Prediction


def prediction_report_outcome(
    *, prediction: Prediction, label: str, actor: User, reason: str = "", correction: bool = False
) -> tuple[Prediction, bool]:
    """Record the outcome label of a prediction; return it and whether anything changed."""
    reason = (reason or "").strip()
    if correction and not reason:
        raise ValidationError({"reason": ["A correction needs a reason."]})
    with transaction.atomic():
        locked = (
            Prediction.objects.select_for_update(of=("self",))
            .select_related("model")
            .defer(*PERSONAL_DATA_FIELDS)
            .get(pk=prediction.pk)
        )
        ml_model_check_writer(model=locked.model, actor=actor)
        labels = locked.model.labels
        if label not in labels:
            message = f"Unknown label {label!r}: the labels of {locked.model.name} are {', '.join(labels)}."
            raise ValidationError({"label": [message]})
        previous = locked.outcome_label
        if previous == label:
            return locked, False
        if previous and not correction:
            raise OutcomeConflictError(
                f"The outcome of this prediction is already {previous!r}. To change it, send correction=true "
                "with a reason."
            )
        locked.outcome_label = label
        locked.outcome_reported_at = timezone.now()
        locked.outcome_reported_by = actor
        historise(locked, actor=actor, reason=reason or f"Outcome reported: {label}.")
        locked.save(update_fields=["outcome_label", "outcome_reported_at", "outcome_reported_by"])
        ledger_append(
            event_type=LedgerEvent.OUTCOME_REPORTED,
            object_type="reviews.prediction",
            object_id=locked.pk,
            actor=actor,
            payload={
                "prediction_id": locked.pk,
                "external_id": locked.external_id,
                "model_id": locked.model_id,
                "version_id": locked.version_id,
                "label": label,
                "previous_label": previous or None,
                "correction": bool(previous),
                "reason": change_reason(locked),
                "input_sha256": locked.input_sha256,
            },
        )
    return locked, True
