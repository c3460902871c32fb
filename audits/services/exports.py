"""Exports: recorded (historised) requests, written by a Celery task with progress, files under MEDIA_ROOT/exports."""

import hashlib
import logging
import tempfile
from datetime import datetime

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files import File
from django.db import transaction
from django.utils import timezone

from audits.choices import ExportFormat, ExportKind, JobStatus
from audits.exports import write_case_export, write_decisions_export
from audits.models import Export
from audits.tasks import export_run_task
from hitl_platform.history import historise
from hitl_platform.queueing import task_send_on_commit
from models_registry.models import MLModel
from reviews.models import Prediction

logger = logging.getLogger(__name__)


@transaction.atomic
def export_request(
    *,
    actor: User,
    kind: str,
    format: str,
    prediction: Prediction | None = None,
    model: MLModel | None = None,
    period_start: datetime | None = None,
    period_end: datetime | None = None,
) -> Export:
    """Record an export request (historised) and queue the task that writes its file."""
    if not actor.has_perm("audits.add_export"):
        raise PermissionDenied("You may not export decisions.")
    errors: dict[str, list[str]] = {}
    if kind not in ExportKind.values:
        errors["kind"] = [f"Choose one of {', '.join(ExportKind.values)}."]
    if format not in ExportFormat.values:
        errors["format"] = [f"Choose one of {', '.join(ExportFormat.values)}."]
    if kind == ExportKind.CASE and prediction is None:
        errors["prediction"] = ["Name the case (prediction) to export."]
    if kind == ExportKind.DECISIONS:
        if model is None:
            errors["model"] = ["Name the model whose decisions to export."]
        if period_start is None or period_end is None:
            errors["period_start"] = ["Give the start and end of the period."]
        elif period_start >= period_end:
            errors["period_end"] = ["The period must end after it starts."]
    if errors:
        raise ValidationError(errors)
    export = Export(
        kind=kind,
        format=format,
        prediction=prediction if kind == ExportKind.CASE else None,
        model=model if kind == ExportKind.DECISIONS else None,
        period_start=period_start if kind == ExportKind.DECISIONS else None,
        period_end=period_end if kind == ExportKind.DECISIONS else None,
        requested_by=actor,
    )
    historise(export, actor=actor, reason="Export requested")
    export.save()

    def not_started(reason: str) -> None:
        _export_set_status(
            export,
            JobStatus.FAILED,
            "Not started: the task queue is unreachable",
            error=reason,
            finished_at=timezone.now(),
        )

    task_send_on_commit(export_run_task, export.pk, on_unreachable=not_started)
    return export


def _export_set_status(export: Export, status: str, reason: str, **fields) -> None:
    export.status = status
    for name, value in fields.items():
        setattr(export, name, value)
    historise(export, actor=None, reason=reason)
    export.save(update_fields=["status", *fields])


def export_run(*, export: Export) -> Export:
    """Write an export's file under MEDIA_ROOT/exports, with progress, and mark it done (or failed)."""
    if export.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
        return export
    _export_set_status(export, JobStatus.RUNNING, "Export started", started_at=timezone.now(), error="")

    def report(percent: int) -> None:
        # Progress ticks are not governance events: a plain UPDATE, no history row per tick.
        Export.objects.filter(pk=export.pk).update(progress=percent)

    digest = hashlib.sha256()
    try:
        with tempfile.TemporaryFile(mode="w+b") as handle:
            writer = _HashingWriter(handle, digest)
            if export.kind == ExportKind.CASE:
                rows = write_case_export(writer, export=export)
            else:
                rows = write_decisions_export(writer, export=export, report=report)
            handle.seek(0)
            export.file.save(f"export-{export.pk}.{export.format}", File(handle), save=False)
    except Exception as exc:
        logger.exception("Export %s failed", export.pk)
        _export_set_status(export, JobStatus.FAILED, "Export failed", error=str(exc)[:2000], finished_at=timezone.now())
        raise
    _export_set_status(
        export,
        JobStatus.DONE,
        "Export written",
        file=export.file.name,
        file_sha256=digest.hexdigest(),
        row_count=rows,
        progress=100,
        finished_at=timezone.now(),
    )
    return export


class _HashingWriter:
    """A text sink that writes UTF-8 to a binary file and hashes what it writes."""

    def __init__(self, handle, digest) -> None:
        self._handle = handle
        self._digest = digest

    def write(self, text: str) -> int:
        data = text.encode("utf-8")
        self._handle.write(data)
        self._digest.update(data)
        return len(text)
