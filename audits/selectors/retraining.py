"""Reads of retraining: jobs, the version a job starts from, and the new human labels since a version."""

from django.db.models import QuerySet

from audits.choices import AuditStatus
from audits.models import AuditPolicy, RetrainingJob
from audits.selectors.training_data import HUMAN_DECISION_SOURCES
from hitl_platform.types import RequestUser
from models_registry.choices import Stage
from models_registry.models import MLModel, ModelVersion
from models_registry.selectors import ml_models_readable_by, ml_models_writable_by
from reviews.models import Decision

ACTIVE_STATUSES = (AuditStatus.QUEUED, AuditStatus.RUNNING)


def retraining_job_active(*, model_id: int) -> RetrainingJob | None:
    """The model's queued or running job, if there is one (at most one: a partial unique constraint)."""
    return RetrainingJob.objects.filter(model_id=model_id, status__in=ACTIVE_STATUSES).first()


def retraining_jobs_list(*, model_ids=None) -> QuerySet[RetrainingJob]:
    """Jobs with their model, versions and requester, newest first; ``model_ids`` limits them to readable models."""
    jobs = RetrainingJob.objects.select_related("model", "base_version", "candidate_version", "requested_by")
    if model_ids is not None:
        jobs = jobs.filter(model_id__in=model_ids)
    return jobs.order_by("-created_at", "-id")


def retraining_base_version(*, model: MLModel) -> ModelVersion | None:
    """What a new job starts from: the production version, else the newest version with a model file."""
    versions = ModelVersion.objects.filter(model=model)
    production = versions.filter(stage=Stage.PRODUCTION).order_by("-number").first()
    if production is not None:
        return production
    return versions.exclude(artifact="").order_by("-number").first()


def human_labels_since(*, model_id: int, version: ModelVersion) -> int:
    """Cases of the model decided by humans since ``version`` was registered: the "after N new labels" trigger."""
    return Decision.objects.filter(
        model_id=model_id, source__in=HUMAN_DECISION_SOURCES, decided_at__gte=version.created_at
    ).count()


def audit_policies_with_label_trigger() -> QuerySet[AuditPolicy]:
    """The policies that retrain their model after a number of new human labels, with their model."""
    return AuditPolicy.objects.filter(retraining_after_new_labels__isnull=False).select_related("model")


def ml_models_retrainable_by(user: RequestUser) -> QuerySet[MLModel]:
    """The models ``user`` may retrain: any model they read with ``run_retrainingjob``, else those they work on."""
    if user.has_perm("audits.run_retrainingjob"):
        models = ml_models_readable_by(user)
    elif user.has_perm("audits.add_retrainingjob"):
        models = ml_models_writable_by(user)
    else:
        models = MLModel.objects.none()
    return models.only("id", "name", "sensitive_attributes").order_by("name")
