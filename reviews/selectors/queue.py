"""Reads behind the reviewer pages: my queue, the case on the review form, and the adjudication pages.

What a reviewer may see is decided here, once, not in templates: a case's sensitive attributes are never
loaded (`defer`), feature and explanation entries named like a sensitive attribute are dropped, other
reviewers' answers are never read for the review form, and under blind review the model's answer, its
confidence and scores, its explanation, and every routing reason that would give them away stay out of the
view object the template receives.
"""

import dataclasses
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.safestring import SafeString

from hitl_platform.markdown import markdown_safe
from models_registry.scoring import FEATURE_ORDER_KEYWORD
from models_registry.validators import sensitive_name_key, sensitive_name_keys
from reviews.choices import CLAIMABLE_TASK_STATUSES, AssignmentStatus, TaskStatus
from reviews.models import Assignment, Prediction, Review, ReviewTask, case_name
from reviews.routing import format_number

# Counters on the queue page stop here: "1000+" is as useful to a reviewer as an exact count of 100,000
# and costs a bounded index scan instead of a full one.
COUNT_CAP = 1000
DUE_SOON = timedelta(hours=4)
RECENT_DECISIONS = 10
ESCALATED_PAGE_SIZE = 100
PERSONAL_DATA = ("task__prediction__sensitive_attributes",)
# What a list of cases needs of a prediction is its name: none of its personal data or model output.
_PREDICTION_CONTENT = ("features", "sensitive_attributes", "explanation", "scores")
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
class FeatureRow:
    """One feature as a reviewer reads it: the schema's title, description and unit when it has them."""

    key: str
    value: str
    title: str = ""
    description: str = ""
    unit: str = ""


@dataclass(frozen=True)
class CaseView:
    """The case as one reader may see it. Model fields are empty when `blind` hides them."""

    task_id: int
    case_name: str
    model_name: str
    version_number: int
    labels: list[str]
    features: list[FeatureRow]
    route_reasons: list[str]
    hidden_reasons: int
    guidelines: SafeString
    blind: bool
    predicted_label: str = ""
    confidence: float | None = None
    scores: list[tuple[str, float]] = field(default_factory=list)
    explanation_rows: list[tuple[str, str]] = field(default_factory=list)
    explanation_text: str = ""


@dataclass(frozen=True)
class HeldCase:
    """A case the reviewer holds, with its name as reviewers see it."""

    assignment: Assignment
    case_name: str


@dataclass(frozen=True)
class QueueOverview:
    """The reviewer's home page: what they hold, what waits, and how their recent cases were decided."""

    open_assignments: list[HeldCase]
    available: int
    due_soon: int
    reviewed_today: int
    escalated: int | None
    recent_decisions: list[dict[str, Any]]
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


@dataclass(frozen=True)
class CaseNaming:
    """What naming a case to a reviewer needs of its prediction (a gold case is named after its source)."""

    prediction_id: int
    external_id: str
    is_gold: bool = False
    model_id: int | None = None
    payload_sha256: str = ""


def reviewer_case_names(cases: list[CaseNaming]) -> dict[int, str]:
    """Each case's name as reviewers see it, by prediction id: ``case_name``, except for gold cases.

    A gold case's own external id ("gold-...") would tell a reviewer that it measures them, so it is named with
    the external id of the real case it was copied from (same model, same payload hash) and its own id, the
    id every case name carries. Costs one query, and only when a gold case is among ``cases``.
    """
    gold = [case for case in cases if case.is_gold]
    sources: dict[tuple[int | None, str], str] = {}
    if gold:
        rows = (
            Prediction.objects.filter(
                is_gold=False,
                model_id__in={case.model_id for case in gold},
                payload_sha256__in={case.payload_sha256 for case in gold},
            )
            .order_by("-id")
            .values_list("model_id", "payload_sha256", "external_id")
        )
        sources = {(model_id, digest): external_id for model_id, digest, external_id in rows}
    names = {}
    for case in cases:
        external_id = case.external_id
        if case.is_gold:
            external_id = sources.get((case.model_id, case.payload_sha256), f"case-{case.prediction_id}")
        names[case.prediction_id] = case_name(external_id, case.prediction_id)
    return names


def reviewer_case_name(prediction) -> str:
    """One prediction's name as reviewers see it (`reviewer_case_names`)."""
    naming = CaseNaming(
        prediction_id=prediction.pk,
        external_id=prediction.external_id,
        is_gold=prediction.is_gold,
        model_id=prediction.model_id,
        payload_sha256=prediction.payload_sha256,
    )
    return reviewer_case_names([naming])[prediction.pk]


def _schema_text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def feature_rows(features: dict, *, schema: Any, sensitive: frozenset[str]) -> list[FeatureRow]:
    """The features not named like a sensitive attribute, each with what the model's feature schema says of it.

    The schema's ``properties`` give a feature's ``title`` and ``description``, and its unit as ``x-unit`` (or
    ``unit``); a feature the schema does not describe, or a schema that is not an object, shows the key alone.
    Features follow the schema's ``x-feature-order`` when it declares one (PostgreSQL's jsonb keeps no key order
    of its own), any others after them.
    """
    properties = schema.get("properties") if isinstance(schema, dict) else None
    properties = properties if isinstance(properties, dict) else {}
    declared = schema.get(FEATURE_ORDER_KEYWORD) if isinstance(schema, dict) else None
    position = {name: index for index, name in enumerate(declared)} if isinstance(declared, list) else {}
    shown = sorted(without_sensitive(features or {}, sensitive), key=lambda item: position.get(item[0], len(position)))
    rows = []
    for name, value in shown:
        described = properties.get(name)
        described = described if isinstance(described, dict) else {}
        rows.append(
            FeatureRow(
                key=name,
                value=display_value(value),
                title=_schema_text(described.get("title")),
                description=_schema_text(described.get("description")),
                unit=_schema_text(described.get("x-unit")) or _schema_text(described.get("unit")),
            )
        )
    return rows


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
    view = CaseView(
        task_id=task.pk,
        case_name=reviewer_case_name(prediction),
        model_name=model.name,
        version_number=prediction.version.number,
        labels=list(model.labels),
        features=feature_rows(prediction.features, schema=model.feature_schema, sensitive=sensitive),
        route_reasons=shown,
        hidden_reasons=len(reasons) - len(shown),
        guidelines=markdown_safe(model.review_guidelines),
        blind=blind,
    )
    if blind:
        return view
    rows, text = _explanation(prediction.explanation, sensitive)
    return dataclasses.replace(
        view,
        predicted_label=prediction.predicted_label,
        confidence=prediction.confidence,
        scores=sorted(((str(k), float(v)) for k, v in (prediction.scores or {}).items()), key=lambda s: -s[1]),
        explanation_rows=rows,
        explanation_text=text,
    )


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
    rows = (
        Review.objects.filter(reviewer=reviewer, corrections__isnull=True, task__status=TaskStatus.DECIDED)
        .order_by("-created_at")
        .values(
            "task_id",
            "task__prediction_id",
            "task__prediction__external_id",
            "label",
            "created_at",
            "is_adjudication",
            "task__model__name",
            "task__prediction__decision__final_label",
            "task__prediction__decision__source",
            "task__prediction__decision__decided_at",
        )[:RECENT_DECISIONS]
    )
    recent = []
    for row in rows:
        decided: dict[str, Any] = dict(row)
        decided["case_name"] = case_name(
            decided.pop("task__prediction__external_id"), decided.pop("task__prediction_id")
        )
        recent.append(decided)
    held = list(
        open_assignments(reviewer, now=now)
        .select_related("task__model", "task__prediction")
        .defer(*(f"task__prediction__{name}" for name in _PREDICTION_CONTENT))
    )
    held_names = reviewer_case_names(
        [
            CaseNaming(
                prediction_id=assignment.task.prediction_id,
                external_id=assignment.task.prediction.external_id,
                is_gold=assignment.task.prediction.is_gold,
                model_id=assignment.task.model_id,
                payload_sha256=assignment.task.prediction.payload_sha256,
            )
            for assignment in held
        ]
    )
    return QueueOverview(
        open_assignments=[HeldCase(assignment=a, case_name=held_names[a.task.prediction_id]) for a in held],
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
        .select_related("model", "prediction")
        .defer(*(f"prediction__{name}" for name in _PREDICTION_CONTENT))
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
