"""Reads behind the bias audit's console pages: which audits and models a user may see or audit, one audit with
its figures, its ``audit.finished`` ledger event, the settings its run used, and a model's latest audits."""

from typing import Any

from django.db.models import QuerySet

from audits.choices import AuditPopulation
from audits.events import BIAS_AUDIT_OBJECT_TYPE, LedgerEvent
from audits.models import BiasAudit, DecisionEvent
from audits.presentation import BiasAuditReport, bias_audit_report_build
from audits.selectors.bias_audits import bias_audit_list
from hitl_platform.types import RequestUser
from models_registry.models import MLModel
from models_registry.selectors import ml_models_readable_by, ml_models_writable_by, user_reads_every_model

# The object type ``audits.services.bias_audits`` seals an audit's event under.


def bias_audits_readable_by(user: RequestUser) -> QuerySet[BiasAudit]:
    """The audits of the models ``user`` may read (audits follow their model), newest first, figures deferred."""
    if user_reads_every_model(user):
        return bias_audit_list()
    return bias_audit_list(model_ids=ml_models_readable_by(user).values("pk"))


def bias_audit_with_figures(*, user: RequestUser, audit_id: Any) -> BiasAudit | None:
    """One audit ``user`` may read, with its result (its inputs, the large cell table, left in the database)."""
    return (
        bias_audits_readable_by(user)
        .defer(None)
        .defer("inputs")
        .select_related("model", "version", "requested_by")
        .filter(pk=audit_id)
        .first()
    )


def ml_models_auditable_by(user: RequestUser) -> QuerySet[MLModel]:
    """The models ``user`` may request an audit of, by name: any model they read with ``run_biasaudit``,
    otherwise those they work on (as ``bias_audit_request`` decides)."""
    if user.has_perm("audits.run_biasaudit"):
        models = ml_models_readable_by(user)
    elif user.has_perm("audits.add_biasaudit"):
        models = ml_models_writable_by(user)
    else:
        models = MLModel.objects.none()
    return models.only("id", "name", "sensitive_attributes").order_by("name")


def bias_audit_finished_event(*, audit: BiasAudit) -> DecisionEvent | None:
    """The ledger event that sealed the audit's verdict and inputs, or None before it finished."""
    return (
        DecisionEvent.objects.filter(
            event_type=LedgerEvent.AUDIT_FINISHED, object_type=BIAS_AUDIT_OBJECT_TYPE, object_id=str(audit.pk)
        )
        .only("id", "event_type", "created_at")
        .order_by("-id")
        .first()
    )


def bias_audit_run_settings(*, audit: BiasAudit) -> tuple[dict[str, Any] | None, int | None]:
    """(thresholds, min group size) the run used, read from its inputs as two JSON keys (never the cells)."""
    row = (
        BiasAudit.objects.filter(pk=audit.pk, inputs__isnull=False)
        .values_list("inputs__thresholds", "inputs__min_group_size")
        .first()
    )
    return row if row is not None else (None, None)


def bias_audit_report(*, audit: BiasAudit, user: RequestUser) -> BiasAuditReport:
    """The audit's report page, as ``user`` sees it (retry and ledger links only if they may use them)."""
    thresholds, min_group_size = (None, None)
    if audit.population == AuditPopulation.AMPLIFICATION:
        thresholds, min_group_size = bias_audit_run_settings(audit=audit)
    return bias_audit_report_build(
        audit=audit,
        finished_event=bias_audit_finished_event(audit=audit),
        policy_thresholds=thresholds,
        policy_min_group_size=min_group_size,
        may_retry=user.has_perm("audits.add_biasaudit"),
        may_view_ledger=user.has_perm("audits.view_decisionevent"),
    )


def bias_audits_of_model(*, model: MLModel, limit: int = 10) -> list[BiasAudit]:
    """The model's latest audits, newest first, for its console page (no figures)."""
    return list(
        BiasAudit.objects.filter(model=model)
        .select_related("version")
        .only(
            "id",
            "version__number",
            "population",
            "sensitive_attributes",
            "status",
            "verdict",
            "key_ratio",
            "trigger",
            "created_at",
            "finished_at",
        )
        .order_by("-created_at", "-id")[:limit]
    )
