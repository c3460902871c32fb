"""The lifecycle the audits app's background jobs share (bias audits, retraining jobs): a row queued, sent to
Celery after commit, claimed by one worker, beating while it runs, finished or failed, requeued when its worker
died. Each job model has ``status`` (audits.choices.AuditStatus), ``progress``, ``attempts``, ``heartbeat_at``,
``error``, ``started_at``, ``finished_at`` and a history; status changes are historised, progress ticks are not.
"""

from datetime import datetime, timedelta
from typing import Any, TypeVar

from celery import Task
from django.contrib.auth.models import User
from django.db import models, transaction
from django.utils import timezone

from audits.choices import AuditStatus
from audits.models import BiasAudit, RetrainingJob
from hitl_platform.history import historise
from hitl_platform.queueing import task_send_on_commit

# The job models: no common base class, the same job fields (see the module docstring).
Job = TypeVar("Job", BiasAudit, RetrainingJob)


def job_set_status(job: Job, status: str, *, actor: User | None, reason: str, **fields: Any) -> None:
    """Change a job's status (and any other fields) with a history row saying who and why."""
    job.status = status
    for name, value in fields.items():
        setattr(job, name, value)
    historise(job, actor=actor, reason=reason)
    job.save(update_fields=["status", *fields])


def job_beat(job: Job, progress: int) -> None:
    # Progress and heartbeat are not governance events: a plain UPDATE, no history row per tick.
    type(job).objects.filter(pk=job.pk).update(progress=progress, heartbeat_at=timezone.now())


def job_send(job: Job, task: Task) -> None:
    """Queue ``task(job.pk)`` after commit; if the broker refuses it, the job fails at once with the reason, to be
    retried, and ``job`` is refreshed so the caller can answer with its state."""

    def not_started(reason: str) -> None:
        with transaction.atomic():
            current = type(job).objects.select_for_update().get(pk=job.pk)
            if current.status == AuditStatus.QUEUED:
                job_set_status(
                    current,
                    AuditStatus.FAILED,
                    actor=None,
                    reason="Not started: the task queue is unreachable",
                    error=reason,
                    finished_at=timezone.now(),
                )
        job.refresh_from_db(fields=["status", "error", "finished_at"])

    task_send_on_commit(task, job.pk, on_unreachable=not_started)


def job_claim(jobs: models.QuerySet[Job], job_id: int, *, reason: str) -> Job | None:
    """Move a queued job of ``jobs`` to RUNNING for this worker; None if another worker has it or it is no longer
    queued."""
    with transaction.atomic():
        # of=("self",): PostgreSQL cannot lock the nullable side of an outer join the queryset may select.
        job = (
            jobs.select_for_update(skip_locked=True, of=("self",)).filter(pk=job_id, status=AuditStatus.QUEUED).first()
        )
        if job is None:
            return None
        now = timezone.now()
        job_set_status(
            job,
            AuditStatus.RUNNING,
            actor=None,
            reason=reason,
            attempts=job.attempts + 1,
            started_at=now,
            heartbeat_at=now,
            error="",
        )
    return job


def jobs_requeue_stale(
    model: type[Job],
    *,
    task: Task,
    stale_after: timedelta,
    max_attempts: int,
    noun: str,
    now: datetime | None = None,
) -> list[int]:
    """Put jobs whose worker died (silent for ``stale_after``) back in the queue, or fail them after
    ``max_attempts``; the requeued ids."""
    now = now or timezone.now()
    requeued = []
    with transaction.atomic():
        stale = model.objects.select_for_update(skip_locked=True).filter(
            status=AuditStatus.RUNNING, heartbeat_at__lt=now - stale_after
        )
        for job in stale:
            if job.attempts >= max_attempts:
                job_set_status(
                    job,
                    AuditStatus.FAILED,
                    actor=None,
                    reason="Worker lost too often",
                    error=f"The worker running this {noun} stopped {job.attempts} times; retry it when the "
                    "workers are healthy.",
                    finished_at=now,
                )
                continue
            job_set_status(job, AuditStatus.QUEUED, actor=None, reason="Worker lost: requeued", progress=0)
            requeued.append(job.pk)
    for pk in requeued:
        task.delay(pk)
    return requeued
