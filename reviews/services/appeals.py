"""Appeals: an adjudicator reopens a final decision with a reason; the original stays in the trail."""

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from audits.events import LedgerEvent
from audits.ledger import ledger_append
from hitl_platform.history import historise
from reviews.choices import DecisionSource
from reviews.models import Decision
from reviews.services.decisions import decision_webhooks_fan_out

# How the decision's history row of a reversal begins; "My cases" finds appealed cases by it.
APPEAL_HISTORY_REASON = "Reversed on appeal"


def _require_reason(reason: str) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationError({"reason": ["Give a reason: it is recorded in the history and the ledger."]})
    return reason.strip()


@transaction.atomic
def decision_reverse_on_appeal(*, decision: Decision, final_label: str, actor: User, reason: str) -> Decision:
    """Reopen a final decision on appeal and replace its label: an adjudicator's call, with a reason.

    The decision row keeps one current answer (what downstream systems and audits read); the original stays
    in the trail: its history row (label, source, who, when), its ``decision.made`` ledger event, and the
    ``decision.reversed`` event naming both labels. Subscribed webhooks receive the new final decision.
    """
    if not actor.has_perm("reviews.adjudicate_cases"):
        raise PermissionDenied("Only an adjudicator may reopen a final decision.")
    reason = _require_reason(reason)
    locked = Decision.objects.select_for_update(of=("self",)).select_related("prediction", "model").get(pk=decision.pk)
    if final_label not in locked.model.labels:
        raise ValidationError({"final_label": [f"Choose one of {', '.join(locked.model.labels)}."]})
    if final_label == locked.final_label:
        raise ValidationError(
            {"final_label": ["That is already the final label: an appeal that upholds it changes nothing."]}
        )
    previous = {
        "label": locked.final_label,
        "source": locked.source,
        "decided_by_id": locked.decided_by_id,
        "decided_at": locked.decided_at.isoformat(),
    }
    locked.final_label = final_label
    locked.source = DecisionSource.ADJUDICATION
    locked.agreement = None
    locked.decided_by = actor
    locked.decided_at = timezone.now()
    historise(locked, actor=actor, reason=f"{APPEAL_HISTORY_REASON}: {reason}")
    locked.save(update_fields=["final_label", "source", "agreement", "decided_by", "decided_at"])

    prediction = locked.prediction
    decision_webhooks_fan_out(
        decisions=[locked],
        predictions_by_id={prediction.pk: prediction},
        decision_extra={locked.pk: {"reversed_on_appeal": {"previous_label": previous["label"]}}},
    )
    ledger_append(
        event_type=LedgerEvent.DECISION_REVERSED,
        object_type="reviews.decision",
        object_id=locked.pk,
        actor=actor,
        payload={
            "decision_id": locked.pk,
            "prediction_id": prediction.pk,
            "external_id": prediction.external_id,
            "model_id": locked.model_id,
            "version_id": prediction.version_id,
            "input_sha256": prediction.input_sha256,
            "previous": previous,
            "label": final_label,
            "source": locked.source,
            "agreement": locked.agreement,
            "decided_by_id": locked.decided_by_id,
            "reason": reason,
        },
    )
    return locked
