"""Bias audits: requested (historised), run by a Celery task over database aggregates, judged, sealed in the ledger.

An audit never reads the cases themselves: ``audits.selectors.bias_audits`` turns them into one GROUP BY of
counts per (group, y_true, y_pred), and ``audits.fairness`` computes fairlearn's figures from those counts as
sample weights. A run records its exact inputs and their SHA-256 (in the ``audit.finished`` ledger event), so a
result can be recomputed and checked later. A failed verdict notifies the model's owner and the compliance
officers by email and emits the ``audit.failed`` webhook event.

A run beats a heartbeat while it works. A worker killed mid-audit leaves it RUNNING with an old heartbeat; the
periodic ``bias_audits_requeue_stale`` puts it back in the queue (up to ``MAX_ATTEMPTS`` runs), so no audit
stays "running" forever.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict

import pandas as pd
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from audits.choices import AuditPopulation, AuditStatus, AuditTrigger, AuditVerdict
from audits.events import BIAS_AUDIT_OBJECT_TYPE, LedgerEvent
from audits.fairness import (
    DEMOGRAPHIC_PARITY_RATIO,
    REVIEWER,
    OverallVerdict,
    Thresholds,
    audit_fairness,
    audit_inputs_canonical,
    review_amplification,
    reviewer_override_directions,
)
from audits.jobs import job_beat, job_claim, job_send, job_set_status, jobs_requeue_stale
from audits.ledger import canonical_json, ledger_append, sha256_hex
from audits.models import AuditPolicy, BiasAudit
from audits.selectors.bias_audits import (
    AuditScope,
    amplification_cells,
    audit_policy_for,
    decisions_population_cells,
    model_population_cells,
    reviewer_override_cells,
    reviewers_population_cells,
)
from audits.tasks import bias_audit_run_task
from hitl_platform.history import historise
from hitl_platform.roles import Role
from models_registry.models import MLModel, ModelVersion, PromotionRequest
from models_registry.selectors import user_may_write_model
from reviews.services.webhooks import AUDIT_FAILED_EVENT, webhook_event_fan_out

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
# A run beats at least every stage; one silent for this long lost its worker.
STALE_AFTER = timedelta(minutes=10)


@dataclass(frozen=True)
class AuditComputation:
    """What a run computed: the figures to store, the exact inputs, and the verdict."""

    result: dict[str, Any]
    inputs: dict[str, Any]
    verdict: str
    summary: list[str]
    case_count: int

    @property
    def key_ratio(self) -> float | None:
        """The lowest demographic parity ratio of any scope (after review, for amplification), or None."""
        ratios = [
            metric["value"]
            for scope in self.result.get("scopes", [])
            for metric in scope.get("between_groups", [])
            if metric["metric"] == DEMOGRAPHIC_PARITY_RATIO and metric["value"] is not None
        ] + [scope["ratio_after"] for scope in self.result.get("scopes", []) if scope.get("ratio_after") is not None]
        return min(ratios, default=None)


def _may_request(actor: User, model: MLModel) -> bool:
    if actor.has_perm("audits.run_biasaudit"):
        return True
    return actor.has_perm("audits.add_biasaudit") and user_may_write_model(actor, model)


@transaction.atomic
def bias_audit_request(
    *,
    actor: User | None,
    model: MLModel,
    population: str,
    sensitive_attributes: Sequence[str],
    version: ModelVersion | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    trigger: str = AuditTrigger.MANUAL,
    promotion_request: PromotionRequest | None = None,
) -> BiasAudit:
    """Record an audit request (historised) and queue its run after commit.

    ``actor`` None is the platform itself (a schedule, a promotion request). Raises ValidationError with field
    errors for a population, attribute, version or period that cannot be audited.
    """
    if actor is not None and not _may_request(actor, model):
        raise PermissionDenied("You may not audit this model.")
    errors: dict[str, list[str]] = {}
    if population not in AuditPopulation.values:
        errors["population"] = [f"Choose one of {', '.join(AuditPopulation.values)}."]
    attributes = list(sensitive_attributes or [])
    declared = list(model.sensitive_attributes or [])
    if not attributes:
        errors["sensitive_attributes"] = [
            f"Name at least one sensitive attribute of {model.name}: {', '.join(declared) or 'it declares none'}."
        ]
    elif unknown := [name for name in attributes if name not in declared]:
        errors["sensitive_attributes"] = [
            f"{', '.join(map(str, unknown))} {'is' if len(unknown) == 1 else 'are'} not a sensitive attribute of "
            f"{model.name} (it declares: {', '.join(declared) or 'none'})."
        ]
    elif len(set(attributes)) != len(attributes):
        errors["sensitive_attributes"] = ["Name each attribute once."]
    if version is not None and version.model_id != model.pk:
        errors["version"] = [f"Version {version.number} is not a version of {model.name}."]
    if since is not None and until is not None and since >= until:
        errors["until"] = ["The period must end after it starts."]
    if errors:
        raise ValidationError(errors)
    audit = BiasAudit(
        model=model,
        version=version,
        population=population,
        sensitive_attributes=attributes,
        since=since,
        until=until,
        trigger=trigger,
        promotion_request=promotion_request,
        requested_by=actor,
    )
    historise(audit, actor=actor, reason=f"Audit requested ({AuditTrigger(trigger).label.lower()})")
    audit.save()
    job_send(audit, bias_audit_run_task)
    return audit


def bias_audit_retry(*, audit: BiasAudit, actor: User) -> BiasAudit:
    """Queue a failed audit again, from the start, keeping its history and attempts."""
    if actor is not None and not _may_request(actor, audit.model):
        raise PermissionDenied("You may not audit this model.")
    with transaction.atomic():
        audit = BiasAudit.objects.select_for_update().get(pk=audit.pk)
        if audit.status != AuditStatus.FAILED:
            raise ValidationError({"status": [f"Only a failed audit can be retried; this one is {audit.status}."]})
        job_set_status(audit, AuditStatus.QUEUED, actor=actor, reason="Retry requested", error="", progress=0)
        job_send(audit, bias_audit_run_task)
    return audit


def bias_audits_requeue_stale(*, now: datetime | None = None) -> list[int]:
    """Put audits whose worker died back in the queue (or fail them after MAX_ATTEMPTS); their ids."""
    return jobs_requeue_stale(
        BiasAudit, task=bias_audit_run_task, stale_after=STALE_AFTER, max_attempts=MAX_ATTEMPTS, noun="audit", now=now
    )


def bias_audit_run(*, audit_id: int) -> BiasAudit | None:
    """Run one queued audit to its end: SUCCEEDED with its result, or FAILED with the error (never raises)."""
    audit = job_claim(BiasAudit.objects.select_related("model", "version"), audit_id, reason="Audit started")
    if audit is None:
        return None
    try:
        computation = bias_audit_compute(audit=audit, beat=lambda percent: job_beat(audit, percent))
    except Exception as exc:
        logger.exception("Bias audit %s failed", audit.pk)
        job_set_status(
            audit,
            AuditStatus.FAILED,
            actor=None,
            reason="Audit failed",
            error=str(exc)[:2000],
            finished_at=timezone.now(),
        )
        return audit
    _finish(audit, computation)
    return audit


class _RunSettings(TypedDict):
    """How one run computes its figures: passed alike to the engine and to the canonical inputs it is hashed by."""

    attributes: list[str]
    positive_label: str
    thresholds: Thresholds
    min_group_size: int
    bootstrap_samples: int
    seed: int


def bias_audit_compute_from_cells(
    *, model: MLModel, cells: pd.DataFrame, attributes: Sequence[str], seed: int
) -> AuditComputation:
    """The model-population figures of cells computed elsewhere (a retrained candidate's holdout), judged
    against the model's thresholds by the same engine as every audit; touches no row."""
    policy = audit_policy_for(model)
    settings_of_run: _RunSettings = {
        "attributes": list(attributes),
        "positive_label": model.positive_label,
        "thresholds": Thresholds(
            demographic_parity_ratio_min=policy.demographic_parity_ratio_min,
            equalized_odds_difference_max=policy.equalized_odds_difference_max,
        ),
        "min_group_size": policy.min_group_size,
        "bootstrap_samples": policy.bootstrap_samples,
        "seed": seed,
    }
    result = audit_fairness(cells=cells, **settings_of_run)
    return AuditComputation(
        result=result.as_dict(),
        inputs={"population": AuditPopulation.MODEL, **audit_inputs_canonical(cells=cells, **settings_of_run)},
        verdict=str(result.verdict),
        summary=list(result.summary),
        case_count=result.total_count,
    )


def bias_audit_record_computed(
    *, model: MLModel, version: ModelVersion, computation: AuditComputation, actor: User | None, reason: str
) -> BiasAudit:
    """Store an audit computed in the caller's process (no task), historised and sealed like any finished one."""
    audit = BiasAudit(
        model=model,
        version=version,
        population=computation.inputs["population"],
        sensitive_attributes=list(computation.inputs["attributes"]),
        trigger=AuditTrigger.RETRAINING,
        status=AuditStatus.RUNNING,
        requested_by=actor,
        started_at=timezone.now(),
        attempts=1,
    )
    historise(audit, actor=actor, reason=reason)
    audit.save()
    _finish(audit, computation)
    return audit


def bias_audit_compute(*, audit: BiasAudit, beat=lambda percent: None) -> AuditComputation:
    """Aggregate the audit's cases in the database and compute its figures; touches no audit row."""
    policy = audit_policy_for(audit.model)
    thresholds = Thresholds(
        demographic_parity_ratio_min=policy.demographic_parity_ratio_min,
        equalized_odds_difference_max=policy.equalized_odds_difference_max,
    )
    scope = AuditScope(
        model_id=audit.model_id,
        attributes=tuple(audit.sensitive_attributes),
        version_id=audit.version_id,
        since=audit.since,
        until=audit.until,
    )
    settings_of_run: _RunSettings = {
        "attributes": list(scope.attributes),
        "positive_label": audit.model.positive_label,
        "thresholds": thresholds,
        "min_group_size": policy.min_group_size,
        "bootstrap_samples": policy.bootstrap_samples,
        "seed": audit.pk,
    }
    beat(10)
    if audit.population == AuditPopulation.AMPLIFICATION:
        return _amplification(scope, thresholds, settings_of_run, beat)
    cells = {
        AuditPopulation.MODEL: model_population_cells,
        AuditPopulation.DECISIONS: decisions_population_cells,
        AuditPopulation.REVIEWERS: reviewers_population_cells,
    }[AuditPopulation(audit.population)](scope)
    beat(40)
    by_reviewer: dict[str, Any] = {}
    if audit.population == AuditPopulation.REVIEWERS:
        by_reviewer = _per_reviewer(cells, settings_of_run)
        cells = _without_reviewer(cells, scope)
    if cells.empty:
        raise ValueError("No cases match this audit's model, version and period: there is nothing to audit.")
    result = audit_fairness(cells=cells, **settings_of_run)
    beat(90)
    figures = result.as_dict()
    if by_reviewer:
        figures["by_reviewer"] = by_reviewer
    return AuditComputation(
        result=figures,
        inputs={"population": audit.population, **audit_inputs_canonical(cells=cells, **settings_of_run)},
        verdict=str(result.verdict),
        summary=list(result.summary),
        case_count=result.total_count,
    )


def _without_reviewer(cells: pd.DataFrame, scope: AuditScope) -> pd.DataFrame:
    if cells.empty:
        return cells
    keys = [*scope.attributes, "y_true", "y_pred"]
    return cells.drop(columns=[REVIEWER]).groupby(keys, dropna=False, sort=True, as_index=False)["count"].sum()


def _per_reviewer(cells: pd.DataFrame, settings_of_run: _RunSettings) -> dict[str, Any]:
    """Each reviewer's groups and gaps, without intervals (the whole audit carries those)."""
    if cells.empty:
        return {}
    without_intervals: _RunSettings = {**settings_of_run, "bootstrap_samples": 0}
    per_reviewer = {}
    for reviewer, own in cells.groupby(REVIEWER, sort=True):
        audit = audit_fairness(cells=own.drop(columns=[REVIEWER]), **without_intervals).as_dict()
        per_reviewer[str(reviewer)] = {"verdict": audit["verdict"], "scopes": audit["scopes"]}
    return per_reviewer


def _amplification(scope: AuditScope, thresholds: Thresholds, settings_of_run: _RunSettings, beat) -> AuditComputation:
    cells = amplification_cells(scope)
    overrides = reviewer_override_cells(scope)
    beat(40)
    if cells.empty:
        raise ValueError("No human-decided cases match this audit: there is no review to weigh against the model.")
    common = {
        "attributes": settings_of_run["attributes"],
        "positive_label": settings_of_run["positive_label"],
    }
    amplification = review_amplification(cells=cells, min_group_size=settings_of_run["min_group_size"], **common)
    directions = reviewer_override_directions(cells=overrides, **common) if not overrides.empty else []
    beat(90)
    verdict, findings = _amplification_verdict(amplification.as_dict()["scopes"], thresholds)
    return AuditComputation(
        result={
            **amplification.as_dict(),
            "reviewer_overrides": [reviewer.as_dict() for reviewer in directions],
            "verdict": verdict,
        },
        inputs={
            "population": AuditPopulation.AMPLIFICATION,
            "attributes": list(scope.attributes),
            "positive_label": common["positive_label"],
            "thresholds": thresholds.as_dict(),
            "min_group_size": settings_of_run["min_group_size"],
            "cells": _plain_cells(cells),
            "override_cells": _plain_cells(overrides),
        },
        verdict=verdict,
        summary=findings + list(amplification.summary),
        case_count=amplification.total_count,
    )


def _amplification_verdict(scopes: list[dict[str, Any]], thresholds: Thresholds) -> tuple[str, list[str]]:
    """Failed where review widened a gap and left it below the four-fifths limit; passed where none did."""
    limit = thresholds.demographic_parity_ratio_min
    computable = [s for s in scopes if s["ratio_before"] is not None and s["ratio_after"] is not None]
    if not computable:
        return OverallVerdict.INCONCLUSIVE, ["No gap could be computed before and after review."]
    harmful = [s for s in computable if s["direction"] == "widened" and limit is not None and s["ratio_after"] < limit]
    if harmful:
        names = ", ".join(s["name"] for s in harmful)
        return OverallVerdict.FAILED, [f"Review widened the gap below the limit of {limit:.2f} across {names}."]
    return OverallVerdict.PASSED, ["Review widened no gap below the limit."]


def _plain_cells(cells: pd.DataFrame) -> dict[str, Any]:
    frame = cells.astype(object).where(cells.notna(), None)
    return {"columns": list(frame.columns), "rows": frame.to_numpy().tolist()}


def _finish(audit: BiasAudit, computation: AuditComputation) -> None:
    inputs_sha256 = sha256_hex(canonical_json(computation.inputs))
    verdict = AuditVerdict(computation.verdict)
    with transaction.atomic():
        job_set_status(
            audit,
            AuditStatus.SUCCEEDED,
            actor=None,
            reason=f"Audit finished: {verdict.label.lower()}",
            result=computation.result,
            inputs=computation.inputs,
            inputs_sha256=inputs_sha256,
            verdict=verdict,
            passed={AuditVerdict.PASSED: True, AuditVerdict.FAILED: False}.get(verdict),
            summary=computation.summary,
            case_count=computation.case_count,
            key_ratio=computation.key_ratio,
            progress=100,
            finished_at=timezone.now(),
        )
        ledger_append(
            event_type=LedgerEvent.AUDIT_FINISHED,
            object_type=BIAS_AUDIT_OBJECT_TYPE,
            object_id=audit.pk,
            payload={
                "model_id": audit.model_id,
                "version_id": audit.version_id,
                "population": audit.population,
                "sensitive_attributes": audit.sensitive_attributes,
                "verdict": verdict.value,
                "inputs_sha256": inputs_sha256,
                "case_count": computation.case_count,
            },
        )
        if verdict == AuditVerdict.FAILED:
            _notify_failed(audit)


def _audit_url(audit: BiasAudit) -> str:
    return reverse("admin:audits_biasaudit_change", args=[audit.pk])


def _notify_failed(audit: BiasAudit) -> None:
    """Email the owner and the compliance officers, and emit ``audit.failed`` to the model's webhooks, on commit."""
    assert audit.finished_at is not None, "_finish notifies of a failed audit once it has finished"
    webhook_event_fan_out(
        event=AUDIT_FAILED_EVENT,
        model_id=audit.model_id,
        payload={
            "audit": {
                "id": audit.pk,
                "model": audit.model.name,
                "version": audit.version.number if audit.version is not None else None,
                "population": audit.population,
                "sensitive_attributes": audit.sensitive_attributes,
                "verdict": audit.verdict,
                "summary": audit.summary,
                "inputs_sha256": audit.inputs_sha256,
                "finished_at": audit.finished_at.isoformat(),
            }
        },
    )
    recipients = _failure_recipients(audit.model)
    if not recipients:
        return
    version = f" version {audit.version.number}" if audit.version is not None else ""
    subject = f"Bias audit {audit.pk} of {audit.model.name}{version} failed"
    body = "\n".join(
        [
            f"{AuditPopulation(audit.population).label} of {audit.model.name}{version} failed a bias "
            f"audit over {', '.join(audit.sensitive_attributes)}.",
            "",
            *audit.summary,
            "",
            f"The report: {settings.SITE_URL.rstrip('/')}{_audit_url(audit)}",
        ]
    )
    # robust: a mail server that is down is logged, never undoes or fails the audit that already committed.
    transaction.on_commit(
        lambda: send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients, fail_silently=False), robust=True
    )


def _failure_recipients(model: MLModel) -> list[str]:
    users = get_user_model().objects.filter(is_active=True).exclude(email="")
    officers = users.filter(groups__name=Role.COMPLIANCE_OFFICER.value)
    emails = set(officers.values_list("email", flat=True))
    if model.owner.is_active and model.owner.email:
        emails.add(model.owner.email)
    return sorted(emails)


def bias_audit_scheduled(*, model_id: int) -> BiasAudit | None:
    """The periodic audit of a model's recent decisions, as its audit policy says; None if it has no schedule."""
    model = MLModel.objects.filter(pk=model_id).first()
    if model is None or not model.sensitive_attributes:
        return None
    policy = audit_policy_for(model)
    now = timezone.now()
    return bias_audit_request(
        actor=None,
        model=model,
        population=policy.schedule_population,
        sensitive_attributes=model.sensitive_attributes,
        since=now - timedelta(days=policy.schedule_window_days),
        until=now,
        trigger=AuditTrigger.SCHEDULE,
    )


def bias_audit_for_promotion(*, promotion_request: PromotionRequest) -> BiasAudit | None:
    """Production was requested for a version: audit the model population of that version, linked to the request."""
    version = promotion_request.version
    model = version.model
    if not model.sensitive_attributes:
        return None
    return bias_audit_request(
        actor=None,
        model=model,
        population=AuditPopulation.MODEL,
        sensitive_attributes=model.sensitive_attributes,
        version=version,
        trigger=AuditTrigger.PROMOTION,
        promotion_request=promotion_request,
    )


SCHEDULE_TASK = "audits.bias_audit_scheduled"
RETRAINING_SCHEDULE_TASK = "audits.retraining_scheduled"
POLICY_FIELDS = (
    "demographic_parity_ratio_min",
    "equalized_odds_difference_max",
    "min_group_size",
    "bootstrap_samples",
    "gate_max_age_days",
    "schedule_every_days",
    "schedule_population",
    "schedule_window_days",
    "retraining_min_labels",
    "retraining_after_new_labels",
    "retraining_every_days",
    "drift_threshold",
    "drift_window_days",
    "retraining_on_drift",
)


@transaction.atomic
def audit_policy_update(*, model: MLModel, actor: User, reason: str, **changes: Any) -> AuditPolicy:
    """Change a model's audit thresholds or schedule, with a reason (historised); keeps its beat entry in step."""
    if actor is not None and not actor.has_perm("audits.change_auditpolicy"):
        raise PermissionDenied("You may not change bias audit policies.")
    if not (reason or "").strip():
        raise ValidationError({"reason": ["Say why the audit policy changes."]})
    if unknown := sorted(set(changes) - set(POLICY_FIELDS)):
        raise ValidationError({name: ["Not an audit policy setting."] for name in unknown})
    policy, _ = AuditPolicy.objects.select_for_update().get_or_create(model=model)
    for name, value in changes.items():
        setattr(policy, name, value)
    policy.full_clean()
    historise(policy, actor=actor, reason=reason.strip())
    policy.save()
    audit_schedule_sync(policy=policy)
    return policy


def audit_schedule_sync(*, policy: AuditPolicy) -> None:
    """Create, retime or remove the model's django-celery-beat entries so they follow ``schedule_every_days``
    (its bias audit) and ``retraining_every_days`` (its retraining)."""
    model = policy.model
    _beat_entry_sync(
        name=f"bias-audit-{model.name}",
        task=SCHEDULE_TASK,
        every_days=policy.schedule_every_days,
        model_id=model.pk,
        description=f"Bias audit of {model.name}'s decisions every {policy.schedule_every_days} days.",
    )
    _beat_entry_sync(
        name=f"retraining-{model.name}",
        task=RETRAINING_SCHEDULE_TASK,
        every_days=policy.retraining_every_days,
        model_id=model.pk,
        description=f"Retraining of {model.name} from its human labels every {policy.retraining_every_days} days.",
    )


def _beat_entry_sync(*, name: str, task: str, every_days: int | None, model_id: int, description: str) -> None:
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    if not every_days:
        PeriodicTask.objects.filter(name=name).delete()
        return
    interval, _ = IntervalSchedule.objects.get_or_create(every=every_days, period=IntervalSchedule.DAYS)
    PeriodicTask.objects.update_or_create(
        name=name,
        defaults={
            "task": task,
            "interval": interval,
            "kwargs": canonical_json({"model_id": model_id}),
            "enabled": True,
            "description": description,
        },
    )
