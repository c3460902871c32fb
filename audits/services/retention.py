"""Retention: erase personal data of old decided cases, never below the legal floor, never under legal hold."""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from simple_history.utils import bulk_update_with_history

from audits.checks import RETENTION_FLOOR_DAYS
from audits.events import LedgerEvent
from audits.ledger import ledger_append, sha256_hex
from audits.models import Export
from hitl_platform.history import historise
from models_registry.models import MLModel
from reviews.models import Prediction

logger = logging.getLogger(__name__)


PURGE_BATCH_SIZE = 1000


@dataclass(frozen=True)
class RetentionResult:
    """What one purge run did: the cutoff, the cases whose personal data it erased, what it left alone."""

    cutoff: datetime
    retention_days: int
    predictions_purged: int
    exports_deleted: int
    models_on_legal_hold: list[str]


def retention_days() -> int:
    days = int(getattr(settings, "RETENTION_DAYS", 365))
    if days < RETENTION_FLOOR_DAYS:
        # The system check refuses such settings; a purge never runs on them even if checks were skipped.
        raise ImproperlyConfigured(f"RETENTION_DAYS is {days}; it may not be below {RETENTION_FLOOR_DAYS}.")
    return days


def _not_yet_purged() -> Q:
    return ~Q(features={}) | ~Q(sensitive_attributes={}) | ~Q(scores={}) | Q(explanation__isnull=False)


def retention_purge(*, actor: User | None = None, now: datetime | None = None) -> RetentionResult:
    """Erase the personal data of decided cases older than the retention period, except on legal hold.

    What goes: a prediction's features, sensitive attributes, class scores and explanation (set empty), and
    export files older than the period (they may hold a case's input). What stays: the case itself, its
    routing, reviews and decision, every history row (they never held those fields) and the ledger, whose
    events carry the input's SHA-256, so the chain stays intact and still proves what input was decided on.
    Runs in batches of 1,000 cases, each batch one transaction with history rows and a ledger event.
    """
    days = retention_days()
    now = now or timezone.now()
    cutoff = now - timedelta(days=days)
    held = list(MLModel.objects.filter(legal_hold=True).order_by("name").values_list("name", flat=True))
    candidates = (
        Prediction.objects.filter(created_at__lt=cutoff, decision__isnull=False, model__legal_hold=False)
        .filter(_not_yet_purged())
        .order_by("id")
    )
    reason = f"Retention purge: personal data of cases older than {days} days (before {cutoff:%Y-%m-%d})"
    purged = 0
    last_id = 0
    while True:
        with transaction.atomic():
            batch = list(candidates.filter(id__gt=last_id).select_for_update(of=("self",))[:PURGE_BATCH_SIZE])
            if not batch:
                break
            for prediction in batch:
                prediction.features = {}
                prediction.sensitive_attributes = {}
                prediction.scores = {}
                prediction.explanation = None
            bulk_update_with_history(
                batch,
                Prediction,
                ["features", "sensitive_attributes", "scores", "explanation"],
                batch_size=PURGE_BATCH_SIZE,
                default_user=actor if getattr(actor, "is_authenticated", False) else None,
                default_change_reason=reason,
            )
            ids = [prediction.pk for prediction in batch]
            ledger_append(
                event_type=LedgerEvent.RETENTION_PURGED,
                object_type="reviews.prediction",
                object_id=f"{ids[0]}-{ids[-1]}",
                actor=actor,
                payload={
                    "what": "personal data (features, sensitive attributes, scores, explanation)",
                    "retention_days": days,
                    "cutoff": cutoff.isoformat(),
                    "count": len(ids),
                    "first_prediction_id": ids[0],
                    "last_prediction_id": ids[-1],
                    "prediction_ids_sha256": sha256_hex(",".join(map(str, ids))),
                    "models_on_legal_hold": held,
                },
            )
        purged += len(batch)
        last_id = ids[-1]
    exports_deleted = _exports_purge(cutoff=cutoff, actor=actor, reason=reason)
    logger.info(
        "Retention purge: %s cases erased, %s export files deleted (cutoff %s); on legal hold: %s",
        purged,
        exports_deleted,
        cutoff.isoformat(),
        ", ".join(held) or "none",
    )
    return RetentionResult(
        cutoff=cutoff,
        retention_days=days,
        predictions_purged=purged,
        exports_deleted=exports_deleted,
        models_on_legal_hold=held,
    )


def _exports_purge(*, cutoff: datetime, actor: User | None, reason: str) -> int:
    """Delete export files made before the cutoff; a file about a model on legal hold is kept."""
    stale = (
        Export.objects.filter(created_at__lt=cutoff)
        .exclude(file="")
        .exclude(model__legal_hold=True)
        .exclude(prediction__model__legal_hold=True)
    )
    deleted = 0
    for export in stale.iterator():
        with transaction.atomic():
            export.file.delete(save=False)
            historise(export, actor=actor, reason=reason)
            export.save(update_fields=["file"])
        deleted += 1
    return deleted
