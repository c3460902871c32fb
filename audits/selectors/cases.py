"""One case's whole trail, read in a fixed number of queries: what the case page shows and a case export holds."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q

from audits.ledger import EventCheck, ledger_check_events, ledger_with_prior_hash
from audits.models import DecisionEvent
from audits.services.reconciliation import Mismatch, case_rows_reconcile
from reviews.models import Assignment, Decision, Prediction, Review, ReviewTask, WebhookDelivery
from reviews.selectors.policies import PolicyVersion, routing_policy_version_for


@dataclass(frozen=True)
class HistoryChange:
    """One historical row of any model of a case, with the fields it changed from the row before."""

    at: datetime
    what: str
    object_id: int
    kind: str
    user: str
    reason: str
    changes: list[tuple[str, Any, Any]]


@dataclass
class CaseTrail:
    """Everything recorded about one prediction, from arrival to the downstream webhook."""

    prediction: Prediction
    task: ReviewTask | None
    assignments: list[Assignment]
    reviews: list[Review]
    decision: Decision | None
    deliveries: list[WebhookDelivery]
    history: list[HistoryChange]
    ledger: list[EventCheck]
    mismatches: list[Mismatch]
    # The routing policy version the case recorded; None if routed before versions were recorded, or if that
    # version's history row is gone (``prediction.policy_history_id`` tells the two apart).
    policy_version: PolicyVersion | None = None

    @property
    def ledger_intact(self) -> bool:
        return all(check.intact for check in self.ledger)

    @property
    def verified(self) -> bool:
        """Every event holds and the decision and reviews still say what their latest events say."""
        return self.ledger_intact and not self.mismatches


_HISTORY_KINDS = {"+": "created", "~": "changed", "-": "deleted"}


def _history_changes(label: str, rows: list) -> list[HistoryChange]:
    """Turn one model's history rows (ordered by object, then time) into changes with field diffs."""
    changes = []
    previous = None
    for row in rows:
        fields = [f.attname for f in row.instance_type._meta.fields if hasattr(row, f.attname)]
        diff: list[tuple[str, Any, Any]] = []
        if previous is not None and previous.id == row.id:
            diff = [
                (name, getattr(previous, name), getattr(row, name))
                for name in fields
                if getattr(previous, name) != getattr(row, name)
            ]
        user = row.history_user.get_username() if row.history_user_id else "system"
        changes.append(
            HistoryChange(
                at=row.history_date,
                what=label,
                object_id=row.id,
                kind=_HISTORY_KINDS.get(row.history_type, row.history_type),
                user=user,
                reason=row.history_change_reason or "",
                changes=diff,
            )
        )
        previous = row
    return changes


def _history_rows(model, **filters) -> list:
    return list(model.history.filter(**filters).select_related("history_user").order_by("id", "history_date"))


def _case_ledger_refs(prediction: Prediction, task, assignments, reviews, decision) -> Q:
    refs = Q(object_type="reviews.prediction", object_id=str(prediction.pk))
    if task is not None:
        refs |= Q(object_type="reviews.reviewtask", object_id=str(task.pk))
    if assignments:
        refs |= Q(object_type="reviews.assignment", object_id__in=[str(a.pk) for a in assignments])
    if reviews:
        refs |= Q(object_type="reviews.review", object_id__in=[str(r.pk) for r in reviews])
    if decision is not None:
        refs |= Q(object_type="reviews.decision", object_id=str(decision.pk))
    return refs


def case_trail(*, prediction_id: int) -> CaseTrail | None:
    """One case's whole trail in a fixed number of queries (at most 12), or None if there is no such prediction."""
    prediction = (
        Prediction.objects.select_related(
            "model", "version", "submitted_by", "outcome_reported_by", "decision__decided_by", "review_task"
        )
        .filter(pk=prediction_id)
        .first()
    )
    if prediction is None:
        return None
    task = getattr(prediction, "review_task", None)
    decision = getattr(prediction, "decision", None)
    assignments: list[Assignment] = []
    reviews: list[Review] = []
    if task is not None:
        assignments = list(task.assignments.select_related("reviewer").order_by("claimed_at", "id"))
        reviews = list(task.reviews.select_related("reviewer", "corrects").order_by("created_at", "id"))
    # Deliveries name their case only in the payload (no foreign key): see the report on WebhookDelivery.
    deliveries = list(
        WebhookDelivery.objects.filter(payload__decision__prediction_id=prediction.pk)
        .select_related("webhook")
        .order_by("created_at", "id")
    )

    history = _history_changes("prediction", _history_rows(Prediction, id=prediction.pk))
    if task is not None:
        history += _history_changes("review task", _history_rows(ReviewTask, id=task.pk))
        history += _history_changes("assignment", _history_rows(Assignment, task_id=task.pk))
        history += _history_changes("review", _history_rows(Review, task_id=task.pk))
    if decision is not None:
        history += _history_changes("decision", _history_rows(Decision, id=decision.pk))
    history.sort(key=lambda change: change.at)

    events = list(
        ledger_with_prior_hash(
            DecisionEvent.objects.filter(_case_ledger_refs(prediction, task, assignments, reviews, decision))
        ).order_by("id")
    )
    return CaseTrail(
        prediction=prediction,
        task=task,
        assignments=assignments,
        reviews=reviews,
        decision=decision,
        deliveries=deliveries,
        history=history,
        ledger=ledger_check_events(events),
        mismatches=case_rows_reconcile(decision=decision, reviews=reviews, events=events),
        policy_version=routing_policy_version_for(prediction),
    )
