"""Gold cases: real cases with a known answer, served to reviewers to measure their accuracy.

A gold case is a copy of a real prediction (features, the model's answer and explanation, routing reasons),
so nothing on the review form tells it apart from other cases. It is served at each policy's `gold_rate` by
claim-next, takes no review slot (every reviewer may answer it once), never produces a decision, and its
reviews feed each reviewer's accuracy on gold and the reliability weights of the weighted consensus rule.
"""

import uuid
from datetime import timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from audits.events import LedgerEvent
from audits.ledger import ledger_append
from hitl_platform.history import change_reason, historise
from reviews.choices import CLAIMABLE_TASK_STATUSES, Route, TaskStatus
from reviews.exceptions import ReviewWorkflowError
from reviews.models import Prediction, ReviewTask
from reviews.selectors.policies import routing_policy_effective


@transaction.atomic
def gold_case_create(*, source: Prediction, gold_label: str, actor: User, reason: str) -> ReviewTask:
    """Make a gold case from a real prediction and its known answer; returns the gold case's review task."""
    model = source.model
    if gold_label not in model.labels:
        raise ReviewWorkflowError(f"{gold_label!r} is not a label of {model.name}.")
    reason = reason.strip()
    if not reason:
        raise ReviewWorkflowError("Say where the known answer comes from.")
    now = timezone.now()
    gold = Prediction(
        model=model,
        version_id=source.version_id,
        external_id=f"gold-{uuid.uuid4().hex}",
        payload_sha256=source.payload_sha256,
        input_sha256=source.input_sha256,
        features=source.features,
        sensitive_attributes=source.sensitive_attributes,
        predicted_label=source.predicted_label,
        confidence=source.confidence,
        scores=source.scores,
        explanation=source.explanation,
        scored_by_platform=source.scored_by_platform,
        route=Route.REVIEW,
        route_reasons=source.route_reasons,
        policy_history_id=source.policy_history_id,
        policy_sha256=source.policy_sha256,
        priority=source.priority,
        is_gold=True,
        gold_label=gold_label,
        submitted_by=actor,
        created_at=now,
    )
    historise(gold, actor=actor, reason=f"Gold case copied from prediction {source.pk}: {reason}")
    gold.save()
    sla_hours = routing_policy_effective(model.pk).sla_hours
    task = ReviewTask(
        prediction=gold,
        model=model,
        status=TaskStatus.OPEN,
        reviews_required=1,
        priority=source.priority,
        due_at=now + timedelta(hours=sla_hours),
        created_at=now,
    )
    historise(task, actor=actor, reason=change_reason(gold))
    task.save()
    ledger_append(
        event_type=LedgerEvent.GOLD_CASE_CREATED,
        object_type="reviews.prediction",
        object_id=gold.pk,
        actor=actor,
        payload={
            "prediction_id": gold.pk,
            "source_prediction_id": source.pk,
            "task_id": task.pk,
            "model_id": model.pk,
            "gold_label": gold_label,
            "input_sha256": gold.input_sha256,
            "reason": reason,
        },
    )
    return task


@transaction.atomic
def gold_case_retire(*, task_id: int, actor: User, reason: str) -> ReviewTask:
    """Stop serving a gold case (its answer was wrong, or every reviewer has seen it); its reviews stay."""
    task = ReviewTask.objects.select_for_update(of=("self",)).select_related("prediction").get(pk=task_id)
    if not task.prediction.is_gold:
        raise ReviewWorkflowError("Only gold cases can be retired; real cases are decided.")
    if task.status not in CLAIMABLE_TASK_STATUSES:
        raise ReviewWorkflowError("This gold case is already retired.")
    reason = reason.strip()
    if not reason:
        raise ReviewWorkflowError("Say why the gold case is retired.")
    task.status = TaskStatus.EXPIRED
    historise(task, actor=actor, reason=f"Gold case retired: {reason}")
    task.save(update_fields=["status"])
    ledger_append(
        event_type=LedgerEvent.GOLD_CASE_RETIRED,
        object_type="reviews.prediction",
        object_id=task.prediction_id,
        actor=actor,
        payload={"prediction_id": task.prediction_id, "task_id": task.pk, "model_id": task.model_id, "reason": reason},
    )
    return task
