"""Reads of the drift check: the reference a version is compared against, recent intake, the latest checks."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import F, Window
from django.db.models.functions import RowNumber

from audits.choices import AuditStatus
from audits.models import DriftCheck, RetrainingJob
from models_registry.models import ModelVersion
from reviews.models import Prediction

# A version registered outside the platform has no training snapshot: its first cases stand for its launch
# population, as many as a typical reference (DEFAULT_BINS quantiles need a few hundred).
LAUNCH_CASES = 1000
# Recent intake is read newest first up to this many cases: enough for stable shares, bounded memory.
RECENT_CASES_LIMIT = 50_000


@dataclass(frozen=True)
class DriftReferenceSource:
    """The stored reference of a version (``reference`` set), or the launch cases to build one from."""

    words: str
    reference: dict[str, Any] | None = None
    launch_features: list[dict[str, Any]] | None = None
    launch_confidences: list[float | None] | None = None


def drift_reference_of(*, version: ModelVersion) -> DriftReferenceSource:
    """The training snapshot of the job that produced ``version``, else its first cases (its launch population)."""
    job = (
        RetrainingJob.objects.filter(candidate_version=version, status=AuditStatus.SUCCEEDED)
        .only("id", "snapshot")
        .first()
    )
    if job is not None and job.snapshot and job.snapshot.get("drift_reference"):
        return DriftReferenceSource(
            words=f"the training set of retraining job {job.pk}", reference=job.snapshot["drift_reference"]
        )
    launch = list(
        Prediction.objects.filter(version=version, is_gold=False)
        .exclude(features={})
        .order_by("created_at", "id")
        .values_list("features", "confidence")[:LAUNCH_CASES]
    )
    return DriftReferenceSource(
        words=f"the first {len(launch)} cases version {version.number} received",
        launch_features=[features for features, _ in launch],
        launch_confidences=[confidence for _, confidence in launch],
    )


def recent_intake(*, model_id: int, since: datetime) -> tuple[list[dict[str, Any]], list[float | None]]:
    """Features and confidences of the model's cases received since ``since`` (gold copies left out)."""
    rows = list(
        Prediction.objects.filter(model_id=model_id, created_at__gte=since, is_gold=False)
        .exclude(features={})
        .order_by("-created_at", "-id")
        .values_list("features", "confidence")[:RECENT_CASES_LIMIT]
    )
    return [features for features, _ in rows], [confidence for _, confidence in rows]


def drift_latest_per_model(*, model_ids) -> dict[int, DriftCheck]:
    """Each model's newest drift check, for the dashboard: one query."""
    ranked = (
        DriftCheck.objects.filter(model_id__in=list(model_ids))
        .annotate(
            rank=Window(RowNumber(), partition_by=[F("model_id")], order_by=[F("checked_at").desc(), F("id").desc()])
        )
        .filter(rank=1)
        .only("id", "model_id", "verdict", "max_psi", "drifted_features", "checked_at", "threshold")
    )
    return {check.model_id: check for check in ranked}


def drift_checks_of_model(*, model, limit: int = 5) -> list[DriftCheck]:
    """The model's latest drift checks, newest first, for its page."""
    return list(
        DriftCheck.objects.filter(model=model)
        .select_related("version")
        .defer("result")
        .order_by("-checked_at", "-id")[:limit]
    )
