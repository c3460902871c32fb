"""Recording final decisions: one code path for automatic (bulk) and human (single) decisions.

A decision is written with its history row, a ledger event and one outbox row per matching webhook, all in
the caller's transaction, so a receiver that is down loses nothing and a rolled-back decision sends nothing.
"""

from collections.abc import Sequence

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from audits.events import LedgerEvent
from audits.ledger import LedgerEntry, ledger_append_many, ledger_lock
from hitl_platform.history import bulk_create_with_history_fast
from reviews.models import Decision, Prediction, WebhookDelivery
from reviews.services.webhooks import DECISION_FINAL_EVENT, webhook_deliveries_enqueue, webhook_subscribers


def decision_webhook_payload(decision: Decision, prediction: Prediction) -> dict:
    """What downstream systems receive: the final answer, who or what decided it and why, no personal data."""
    return {
        "event": DECISION_FINAL_EVENT,
        "decision": {
            "id": decision.pk,
            "prediction_id": prediction.pk,
            "external_id": prediction.external_id,
            "model_id": prediction.model_id,
            "version_id": prediction.version_id,
            "label": decision.final_label,
            "source": decision.source,
            "agreement": decision.agreement,
            "reviewers": [reviewer["username"] for reviewer in decision.reviewers],
            "decided_by": decision.decided_by.get_username() if decision.decided_by is not None else None,
            "reason": decision.reason,
            "policy_history_id": prediction.policy_history_id,
            "decided_at": decision.decided_at.isoformat(),
        },
    }


def reviewers_named(user_ids: Sequence[int]) -> list[dict]:
    """The reviewers of a decision as it records them: id and username at the time, in the order given."""
    names = dict(get_user_model().objects.filter(pk__in=user_ids).values_list("pk", "username"))
    return [{"id": user_id, "username": names.get(user_id, "")} for user_id in dict.fromkeys(user_ids)]


def decision_ledger_entry(
    decision: Decision, prediction: Prediction, *, actor: User | None, reason: str
) -> LedgerEntry:
    return LedgerEntry(
        event_type=LedgerEvent.DECISION_MADE,
        object_type="reviews.decision",
        object_id=decision.pk,
        actor=actor,
        payload={
            "decision_id": decision.pk,
            "prediction_id": prediction.pk,
            "external_id": prediction.external_id,
            "model_id": prediction.model_id,
            "version_id": prediction.version_id,
            "label": decision.final_label,
            "source": decision.source,
            "agreement": decision.agreement,
            "decided_by_id": decision.decided_by_id,
            "reviewer_ids": [reviewer["id"] for reviewer in decision.reviewers],
            "input_sha256": prediction.input_sha256,
            "reason": reason,
        },
    )


def webhook_deliveries_build(decisions: Sequence[Decision], predictions_by_id: dict[int, Prediction]):
    """Outbox rows for every active webhook subscribed to final decisions of these decisions' models.

    A webhook without a model receives the decisions of every model its owner works on: the models they own or
    their team owns (every model, for a superuser), never another team's.
    """
    if not decisions:
        return []
    subscribers = webhook_subscribers(event=DECISION_FINAL_EVENT, model_ids={d.model_id for d in decisions})
    return [
        WebhookDelivery(
            webhook=webhook,
            event=DECISION_FINAL_EVENT,
            payload=decision_webhook_payload(decision, predictions_by_id[decision.prediction_id]),
        )
        for decision in decisions
        for webhook in subscribers.get(decision.model_id, [])
    ]


def decision_webhooks_fan_out(
    *,
    decisions: Sequence[Decision],
    predictions_by_id: dict[int, Prediction],
    decision_extra: dict[int, dict] | None = None,
) -> list[WebhookDelivery]:
    """The one way a changed decision reaches downstream systems: outbox rows for every subscribed webhook,
    written in the caller's transaction and sent by a task enqueued when it commits.

    ``decision_extra`` adds fields to the ``decision`` object of one decision's payload (by decision id), e.g.
    what an appeal reversed.
    """
    deliveries = webhook_deliveries_build(decisions, predictions_by_id)
    for delivery in deliveries:
        extra = (decision_extra or {}).get(delivery.payload["decision"]["id"])
        if extra:
            delivery.payload["decision"].update(extra)
    deliveries = WebhookDelivery.objects.bulk_create(deliveries, batch_size=1000)
    webhook_deliveries_enqueue([delivery.pk for delivery in deliveries])
    return deliveries


def decisions_create_bulk(
    *, decisions: Sequence[Decision], predictions_by_id: dict[int, Prediction], actor: User | None, reason: str
) -> tuple[list[Decision], list[LedgerEntry], list[WebhookDelivery]]:
    """Insert decisions with history and outbox rows; return the ledger entries for the caller to append.

    The caller appends the entries (with any others of the same transaction) in one chained ledger run. The
    outbox rows are sent by a Celery task enqueued when the outermost transaction commits.
    """
    for decision in decisions:
        decision.reason = decision.reason or reason
    with transaction.atomic():
        if decisions:
            # Decision ids in commit order: the decisions feed pages by id (DecisionFeedPagination).
            ledger_lock()
        saved = bulk_create_with_history_fast(
            list(decisions),
            Decision,
            default_user=actor if getattr(actor, "is_authenticated", False) else None,
            default_change_reason=reason,
            default_date=timezone.now(),
        )
        deliveries = decision_webhooks_fan_out(decisions=saved, predictions_by_id=predictions_by_id)
    entries = [
        decision_ledger_entry(decision, predictions_by_id[decision.prediction_id], actor=actor, reason=reason)
        for decision in saved
    ]
    return saved, entries, deliveries


@transaction.atomic
def decision_record(
    *,
    prediction: Prediction,
    final_label: str,
    source: str,
    agreement: float | None,
    decided_by: User | None,
    reason: str,
    reviewers: Sequence[dict] = (),
) -> Decision:
    """Record one final decision (consensus or adjudication) with history, ledger event and webhooks.

    ``reviewers`` are those whose reviews formed it (``reviewers_named``); ``decided_by`` the adjudicator who
    made the call (None for a consensus, which is the rule's).
    """
    decision = Decision(
        prediction=prediction,
        model_id=prediction.model_id,
        final_label=final_label,
        source=source,
        agreement=agreement,
        decided_by=decided_by,
        reviewers=list(reviewers),
        reason=reason,
    )
    (saved,), entries, _ = decisions_create_bulk(
        decisions=[decision], predictions_by_id={prediction.pk: prediction}, actor=decided_by, reason=reason
    )
    ledger_append_many(entries)
    return saved
