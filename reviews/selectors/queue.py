"""Reads behind the reviewer pages: my queue, the case on the review form, and the adjudication pages.

What a reviewer may see is decided here, once, not in templates: a case's sensitive attributes are never
loaded (`defer`), feature and explanation entries named like a sensitive attribute are dropped, other
reviewers' answers are never read for the review form, and under blind review the model's answer, its
confidence and scores, its explanation, and every routing reason that would give them away stay out of the
view object the template receives.
"""

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from models_registry.validators import sensitive_name_key, sensitive_name_keys
from reviews.choices import CLAIMABLE_TASK_STATUSES, AssignmentStatus, TaskStatus
from reviews.models import Assignment, Review, ReviewTask
from reviews.routing import format_number

# Counters on the queue page stop here: "1000+" is as useful to a reviewer as an exact count of 100,000
# and costs a bounded index scan instead of a full one.
COUNT_CAP = 1000
DUE_SOON = timedelta(hours=4)
RECENT_DECISIONS = 10
ESCALATED_PAGE_SIZE = 100
PERSONAL_DATA = ("task__prediction__sensitive_attributes",)
# Assignments a reviewer is working on (or was pushed) and has not finished.
OPEN_ASSIGNMENT_STATUSES = (AssignmentStatus.ASSIGNED, AssignmentStatus.CLAIMED)
# The order of the partial index `review_task_claim_order`: most urgent first, then due time, then age.
CLAIM_ORDER = ("-priority", "due_at", "id")


def open_assignments(reviewer, *, now: datetime) -> QuerySet[Assignment]:
    """The reviewer's unfinished review assignments whose lease still runs, oldest first."""
    return Assignment.objects.filter(
        reviewer=reviewer, status__in=OPEN_ASSIGNMENT_STATUSES, is_adjudication=False, lease_expires_at__gt=now
    ).order_by("claimed_at", "id")


def claimable_tasks(reviewer) -> QuerySet[ReviewTask]:
    """Tasks with a free slot that this reviewer was never assigned (any status), in claim order."""
    already_assigned = Assignment.objects.filter(task_id=OuterRef("pk"), reviewer=reviewer)
    return (
        ReviewTask.objects.filter(
            status__in=CLAIMABLE_TASK_STATUSES, slots_taken__lt=F("reviews_required"), prediction__is_gold=False
        )
        .filter(~Exists(already_assigned))
        .order_by(*CLAIM_ORDER)
    )


@dataclass(frozen=True)
class CaseView:
    """The case as one reader may see it. Model fields are empty when `blind` hides them."""

    task_id: int
    model_name: str
    version_number: int
    labels: list[str]
    features: list[tuple[str, str]]
    route_reasons: list[str]
    hidden_reasons: int
    guidelines: str
    blind: bool
    predicted_label: str = ""
    confidence: float | None = None
    scores: list[tuple[str, float]] = field(default_factory=list)
    explanation_rows: list[tuple[str, str]] = field(default_factory=list)
    explanation_text: str = ""


@dataclass(frozen=True)
class QueueOverview:
    """The reviewer's home page: what they hold, what waits, and how their recent cases were decided."""

    open_assignments: list[Assignment]
    available: int
    due_soon: int
    reviewed_today: int
    escalated: int | None
    recent_decisions: list[dict]
    count_cap: int = COUNT_CAP


def display_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return format_number(value)
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _redacted(value: Any, sensitive: frozenset[str]) -> Any:
    if isinstance(value, dict):
        return {
            name: _redacted(child, sensitive)
            for name, child in value.items()
            if sensitive_name_key(name) not in sensitive
        }
    if isinstance(value, list):
        return [_redacted(child, sensitive) for child in value]
    return value


def without_sensitive(mapping: dict, sensitive: frozenset[str]) -> list[tuple[str, Any]]:
    """The entries of ``mapping`` not named like a sensitive attribute (``sensitive_name_keys``), at any depth."""
    return [
        (name, _redacted(value, sensitive))
        for name, value in mapping.items()
        if sensitive_name_key(name) not in sensitive
    ]


def _explanation(explanation: Any, sensitive: frozenset[str]) -> tuple[list[tuple[str, str]], str]:
    """Rows (largest effect first when the values are numbers) or a text, never a sensitive entry."""
    if isinstance(explanation, dict):
        entries = without_sensitive(explanation, sensitive)
        if all(isinstance(value, int | float) and not isinstance(value, bool) for _, value in entries):
            entries.sort(key=lambda entry: -abs(entry[1]))
            return [(name, f"{value:+.3g}") for name, value in entries], ""
        return [(name, display_value(value)) for name, value in entries], ""
    if isinstance(explanation, list):
        return [("", display_value(value)) for value in explanation], ""
    if explanation in (None, ""):
        return [], ""
    return [], str(explanation)


def _reveals_model_answer(reason: str, predicted_label: str) -> bool:
    lowered = reason.lower()
    if "confidence" in lowered or "qa sample" in lowered:
        return True
    return bool(predicted_label) and re.search(rf"\b{re.escape(predicted_label.lower())}\b", lowered) is not None


def policy_is_blind(model) -> bool:
    policy = getattr(model, "routing_policy", None)
    return bool(policy and policy.blind_review)


def case_view(task: ReviewTask, *, reveal_model: bool) -> CaseView:
    """Shape a task (loaded by one of this module's selectors) for a page; `reveal_model` overrides blinding."""
    prediction, model = task.prediction, task.model
    sensitive = sensitive_name_keys(model.sensitive_attributes)
    blind = not reveal_model and policy_is_blind(model)
    reasons = [str(reason) for reason in prediction.route_reasons or []]
    shown = [reason for reason in reasons if not (blind and _reveals_model_answer(reason, prediction.predicted_label))]
    view = {
        "task_id": task.pk,
        "model_name": model.name,
        "version_number": prediction.version.number,
        "labels": list(model.labels),
        "features": [
            (name, display_value(value)) for name, value in without_sensitive(prediction.features or {}, sensitive)
        ],
        "route_reasons": shown,
        "hidden_reasons": len(reasons) - len(shown),
        "guidelines": model.review_guidelines,
        "blind": blind,
    }
    if not blind:
        rows, text = _explanation(prediction.explanation, sensitive)
        view |= {
            "predicted_label": prediction.predicted_label,
            "confidence": prediction.confidence,
            "scores": sorted(((str(k), float(v)) for k, v in (prediction.scores or {}).items()), key=lambda s: -s[1]),
            "explanation_rows": rows,
            "explanation_text": text,
        }
    return CaseView(**view)


def _case_related(prefix: str) -> tuple[str, ...]:
    return (f"{prefix}prediction__version", f"{prefix}model__routing_policy")


def assignment_for_reviewer(*, assignment_id: int, reviewer) -> Assignment:
    """One of the reviewer's own assignments with everything the review form shows, in one query.

    Raises Assignment.DoesNotExist for anybody else's assignment, so a guessed URL is a 404.
    """
    return (
        Assignment.objects.filter(pk=assignment_id, reviewer=reviewer, is_adjudication=False)
        .select_related("task", *_case_related("task__"))
        .defer(*PERSONAL_DATA)
        .get()
    )


def own_review_of(assignment: Assignment) -> Review | None:
    """The reviewer's latest review on this assignment (a correction replaces what it corrects)."""
    return assignment.reviews.filter(corrections__isnull=True).order_by("-id").first()


def review_for_correction(*, review_id: int, reviewer) -> Review:
    """One of the reviewer's own reviews with its case, for the correction form; others' are a 404."""
    return (
        Review.objects.filter(pk=review_id, reviewer=reviewer, is_adjudication=False)
        .select_related("assignment", "task", *_case_related("task__"))
        .defer(*PERSONAL_DATA)
        .get()
    )


def reviewer_queue_overview(*, reviewer, now: datetime, is_adjudicator: bool) -> QueueOverview:
    """Counts (capped at COUNT_CAP), the reviewer's open assignments, and their recent decided cases."""
    claimable = claimable_tasks(reviewer)
    start_of_day = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    recent = list(
        Review.objects.filter(reviewer=reviewer, corrections__isnull=True, task__status=TaskStatus.DECIDED)
        .order_by("-created_at")
        .values(
            "task_id",
            "label",
            "created_at",
            "is_adjudication",
            "task__model__name",
            "task__prediction__decision__final_label",
            "task__prediction__decision__source",
            "task__prediction__decision__decided_at",
        )[:RECENT_DECISIONS]
    )
    return QueueOverview(
        open_assignments=list(open_assignments(reviewer, now=now).select_related("task__model")),
        available=claimable[:COUNT_CAP].count(),
        due_soon=claimable.filter(due_at__lte=now + DUE_SOON)[:COUNT_CAP].count(),
        reviewed_today=Review.objects.filter(reviewer=reviewer, created_at__gte=start_of_day).count(),
        escalated=ReviewTask.objects.filter(status=TaskStatus.ESCALATED)[:COUNT_CAP].count()
        if is_adjudicator
        else None,
        recent_decisions=recent,
    )


def escalated_tasks(*, adjudicator) -> QuerySet[ReviewTask]:
    """Escalated tasks, most urgent first, without those the adjudicator reviewed (someone else decides)."""
    reviewed_by_me = Review.objects.filter(task_id=OuterRef("pk"), reviewer=adjudicator)
    return (
        ReviewTask.objects.filter(status=TaskStatus.ESCALATED)
        .filter(~Exists(reviewed_by_me))
        .select_related("model")
        .annotate(review_count=Count("reviews", filter=Q(reviews__corrections__isnull=True)))
        .order_by("-priority", "due_at", "id")[:ESCALATED_PAGE_SIZE]
    )


def adjudication_case(*, task_id: int) -> tuple[ReviewTask, list[Review]]:
    """An escalated task's case and every review of it (corrections included), with reviewer names."""
    task = (
        ReviewTask.objects.filter(pk=task_id, status=TaskStatus.ESCALATED)
        .select_related(*_case_related(""))
        .defer("prediction__sensitive_attributes")
        .get()
    )
    reviews = list(Review.objects.filter(task=task).select_related("reviewer").order_by("id"))
    return task, reviews
