"""The cells a bias audit computes from: one GROUP BY per population, never the cases themselves.

Each selector returns a DataFrame with one row per combination of sensitive attribute values and labels, and the
number of cases (or reviews) with it: what ``audits.fairness`` takes with the counts as sample weights. A million
decisions become a few dozen rows in the database. Which label is truth (DESIGN: "Which label is truth"):

- model: y_pred = the model's label; y_true = the reported outcome, else the final label of a human-decided case.
- decisions: y_pred = the final label; y_true = the reported outcome.
- reviewers: y_pred = each reviewer's current label; y_true = the outcome, else the gold label of a gold case.
- amplification: over human-decided cases, the model's label beside the final label; and each reviewer's label
  beside the model's.

Gold cases (copies made to measure reviewers) count only in the reviewers' population. A case whose sensitive
attribute was never given, or was erased by the retention purge, falls in the group "unknown". The period is
when cases were received.
"""

from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from django.db.models import Case, CharField, Count, F, Q, QuerySet, Value, When, Window
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Coalesce, RowNumber

from audits.choices import AuditPopulation, AuditStatus
from audits.fairness import COUNT, FINAL_LABEL, MODEL_LABEL, REVIEW_LABEL, REVIEWER, Y_PRED, Y_TRUE
from audits.models import AuditPolicy, BiasAudit
from reviews.choices import DecisionSource
from reviews.models import Prediction, Review

UNKNOWN_GROUP = "unknown"
HUMAN_SOURCES = (DecisionSource.CONSENSUS, DecisionSource.ADJUDICATION)


@dataclass(frozen=True)
class AuditScope:
    """Which cases an audit covers."""

    model_id: int
    attributes: tuple[str, ...]
    version_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None


# Review has a ``reviewer`` field, so the username is annotated under another name and renamed in the frame.
_REVIEWER_ALIAS = "reviewer_username"


def _alias(index: int) -> str:
    # Attribute names are the caller's; aliases of our own cannot collide with a model field.
    return f"attribute_{index}"


def _predictions(scope: AuditScope, *, prefix: str = "") -> Q:
    filters = Q(**{f"{prefix}model_id": scope.model_id, f"{prefix}is_gold": False})
    if scope.version_id is not None:
        filters &= Q(**{f"{prefix}version_id": scope.version_id})
    if scope.since is not None:
        filters &= Q(**{f"{prefix}created_at__gte": scope.since})
    if scope.until is not None:
        filters &= Q(**{f"{prefix}created_at__lt": scope.until})
    return filters


def _attribute_columns(scope: AuditScope, *, field: str) -> dict[str, Coalesce]:
    return {
        _alias(index): Coalesce(KeyTextTransform(name, field), Value(UNKNOWN_GROUP), output_field=CharField())
        for index, name in enumerate(scope.attributes)
    }


def _cells(queryset: QuerySet, scope: AuditScope, labels: dict, *, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """GROUP BY the attribute aliases, ``extra`` and the label expressions; rename aliases to attribute names."""
    columns = [*extra, *(_alias(index) for index in range(len(scope.attributes))), *labels]
    rows = list(queryset.annotate(**labels).values(*columns).annotate(**{COUNT: Count("pk")}).order_by())
    names = {_alias(index): name for index, name in enumerate(scope.attributes)} | {_REVIEWER_ALIAS: REVIEWER}
    frame = pd.DataFrame(rows, columns=[*columns, COUNT]).rename(columns=names)
    return frame.astype({COUNT: "int64"}) if not frame.empty else frame


def model_population_cells(scope: AuditScope) -> pd.DataFrame:
    """(attributes..., y_true, y_pred, count) of the model's own labels."""
    predictions = Prediction.objects.filter(_predictions(scope)).annotate(
        **_attribute_columns(scope, field="sensitive_attributes")
    )
    truth = Case(
        When(~Q(outcome_label=""), then=F("outcome_label")),
        When(decision__source__in=HUMAN_SOURCES, then=F("decision__final_label")),
        default=Value(None),
        output_field=CharField(),
    )
    return _cells(predictions, scope, {Y_TRUE: truth, Y_PRED: F("predicted_label")})


def decisions_population_cells(scope: AuditScope) -> pd.DataFrame:
    """(attributes..., y_true, y_pred, count) of the final decisions."""
    predictions = Prediction.objects.filter(_predictions(scope), decision__isnull=False).annotate(
        **_attribute_columns(scope, field="sensitive_attributes")
    )
    truth = Case(When(~Q(outcome_label=""), then=F("outcome_label")), default=Value(None), output_field=CharField())
    return _cells(predictions, scope, {Y_TRUE: truth, Y_PRED: F("decision__final_label")})


def _current_reviews(scope: AuditScope) -> QuerySet[Review]:
    filters = Q(task__prediction__model_id=scope.model_id, is_adjudication=False, corrections__isnull=True)
    if scope.version_id is not None:
        filters &= Q(task__prediction__version_id=scope.version_id)
    if scope.since is not None:
        filters &= Q(task__prediction__created_at__gte=scope.since)
    if scope.until is not None:
        filters &= Q(task__prediction__created_at__lt=scope.until)
    return Review.objects.filter(filters).annotate(
        **_attribute_columns(scope, field="task__prediction__sensitive_attributes")
    )


def reviewers_population_cells(scope: AuditScope) -> pd.DataFrame:
    """(reviewer, attributes..., y_true, y_pred, count) of every reviewer's current label, gold cases included."""
    truth = Case(
        When(~Q(task__prediction__outcome_label=""), then=F("task__prediction__outcome_label")),
        When(task__prediction__is_gold=True, then=F("task__prediction__gold_label")),
        default=Value(None),
        output_field=CharField(),
    )
    reviews = _current_reviews(scope).annotate(**{_REVIEWER_ALIAS: F("reviewer__username")})
    return _cells(reviews, scope, {Y_TRUE: truth, Y_PRED: F("label")}, extra=(_REVIEWER_ALIAS,))


def amplification_cells(scope: AuditScope) -> pd.DataFrame:
    """(attributes..., model_label, final_label, count) of the cases humans decided."""
    predictions = Prediction.objects.filter(_predictions(scope), decision__source__in=HUMAN_SOURCES).annotate(
        **_attribute_columns(scope, field="sensitive_attributes")
    )
    return _cells(predictions, scope, {MODEL_LABEL: F("predicted_label"), FINAL_LABEL: F("decision__final_label")})


def reviewer_override_cells(scope: AuditScope) -> pd.DataFrame:
    """(reviewer, attributes..., model_label, review_label, count) of real cases' current reviews."""
    reviews = _current_reviews(scope).filter(task__prediction__is_gold=False)
    reviews = reviews.annotate(**{_REVIEWER_ALIAS: F("reviewer__username")})
    labels = {MODEL_LABEL: F("task__prediction__predicted_label"), REVIEW_LABEL: F("label")}
    return _cells(reviews, scope, labels, extra=(_REVIEWER_ALIAS,))


def audit_policy_for(model) -> AuditPolicy:
    """The model's audit policy, or an unsaved one holding the defaults when it has none."""
    return AuditPolicy.objects.filter(model=model).first() or AuditPolicy(model=model)


def bias_audit_list(*, model_ids=None) -> QuerySet[BiasAudit]:
    """Audits with their model, version and requester, newest first (results and inputs left out: they are large).

    ``model_ids`` (a queryset or list) limits them to the models a user may read.
    """
    audits = BiasAudit.objects.select_related("model", "version", "requested_by").defer("result", "inputs")
    if model_ids is not None:
        audits = audits.filter(model_id__in=model_ids)
    return audits.order_by("-created_at", "-id")


@dataclass(frozen=True)
class ModelAuditStanding:
    """A model's newest finished audit and the key ratio of its last audits of the same population, oldest first."""

    latest: BiasAudit
    trend: list[BiasAudit]
    parity_ratio_min: float


def bias_audit_standing_per_model(*, model_ids, trend_length: int = 12) -> dict[int, ModelAuditStanding]:
    """Each model's newest finished audit (any population), its key-ratio trend and the model's current
    four-fifths threshold, for the dashboard: two queries whatever the number of models and audits.

    The trend holds only audits of the newest one's population: a model population's ratio and a decisions
    population's ratio are different quantities and are never drawn on one line.
    """
    model_ids = list(model_ids)
    ranked = (
        BiasAudit.objects.filter(model_id__in=model_ids, status=AuditStatus.SUCCEEDED)
        .annotate(
            rank=Window(
                RowNumber(),
                partition_by=[F("model_id"), F("population")],
                order_by=[F("finished_at").desc(), F("id").desc()],
            )
        )
        .filter(rank__lte=trend_length)
        .order_by("model_id", "-finished_at", "-id")
        .only("id", "model_id", "population", "verdict", "passed", "finished_at", "summary", "version_id", "key_ratio")
    )
    by_model: dict[int, list[BiasAudit]] = {}
    thresholds = dict(
        AuditPolicy.objects.filter(model_id__in=model_ids).values_list("model_id", "demographic_parity_ratio_min")
    )
    default_threshold = AuditPolicy._meta.get_field("demographic_parity_ratio_min").default
    for audit in ranked:
        by_model.setdefault(audit.model_id, []).append(audit)
    standing = {}
    for model_id, audits in by_model.items():
        latest = audits[0]
        same_population = [audit for audit in audits if audit.population == latest.population]
        standing[model_id] = ModelAuditStanding(
            latest=latest,
            trend=list(reversed(same_population)),
            parity_ratio_min=thresholds.get(model_id, default_threshold),
        )
    return standing


def bias_audit_latest_passing(*, version_id: int, since: datetime) -> BiasAudit | None:
    """The newest passing audit of the model population of exactly this version, finished since ``since``."""
    return (
        BiasAudit.objects.filter(
            version_id=version_id,
            population=AuditPopulation.MODEL,
            passed=True,
            finished_at__gte=since,
        )
        .order_by("-finished_at", "-id")
        .only("id", "finished_at", "summary", "inputs_sha256", "verdict", "passed")
        .first()
    )


def bias_audit_latest_of_version(*, version_id: int, succeeded: bool = True) -> BiasAudit | None:
    """The newest model-population audit of this version that reached a verdict (passing or not), or with
    ``succeeded=False`` the newest one in any state (queued, running, or one that could not run)."""
    audits = BiasAudit.objects.filter(version_id=version_id, population=AuditPopulation.MODEL)
    if succeeded:
        audits = audits.filter(status=AuditStatus.SUCCEEDED)
    return (
        audits.order_by("-created_at", "-id")
        .only("id", "status", "finished_at", "passed", "verdict", "inputs_sha256", "error")
        .first()
    )
