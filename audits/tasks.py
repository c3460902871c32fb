"""Celery tasks of the audits app: thin wrappers that take ids, call one service, and log the outcome.

Every task has a stable ``name``, so moving or renaming a function never orphans a queued message or a beat
entry. Services import their task at the top of their module; the tasks import the services inside their bodies.
"""

from celery import shared_task

from audits.choices import LedgerCheckOrigin
from audits.models import Export, LedgerCheck


@shared_task(name="audits.export_run")
def export_run_task(export_id: int) -> None:
    from audits.services.exports import export_run

    export = Export.objects.select_related("model", "prediction", "requested_by").filter(pk=export_id).first()
    if export is not None:
        export_run(export=export)


@shared_task(name="audits.ledger_check")
def ledger_check_task(check_id: int) -> None:
    from audits.services.ledger_checks import ledger_check_run

    check = LedgerCheck.objects.filter(pk=check_id).first()
    if check is not None:
        ledger_check_run(check=check)


@shared_task(name="audits.ledger_check_scheduled")
def ledger_check_scheduled_task() -> None:
    """The nightly verification: queued like a manual one, with no requester."""
    from audits.services.ledger_checks import ledger_check_request

    ledger_check_request(actor=None, origin=LedgerCheckOrigin.SCHEDULE)


@shared_task(name="audits.ledger_anchor")
def ledger_anchor_task() -> int | None:
    """Every minute: verify the events since the newest anchor and anchor the new head; the anchored count."""
    from audits.services.ledger_checks import ledger_anchor_run

    run = ledger_anchor_run()
    return run.anchor.event_count if run.anchor is not None else None


@shared_task(name="audits.retention_purge")
def retention_purge_task() -> dict:
    from audits.services.retention import retention_purge

    result = retention_purge(actor=None)
    return {"predictions_purged": result.predictions_purged, "exports_deleted": result.exports_deleted}


@shared_task(name="audits.dashboard_refresh")
def dashboard_refresh_task(days: int = 2) -> int:
    """Rebuild the dashboard's last ``days`` days: 2 every few minutes, the whole window (90) nightly."""
    from audits.services.dashboard import dashboard_refresh_recent

    return dashboard_refresh_recent(days=days)


@shared_task(name="audits.bias_audit_run")
def bias_audit_run_task(audit_id: int) -> str | None:
    """Run one queued bias audit; its status afterwards (None if another worker had it)."""
    from audits.services.bias_audits import bias_audit_run

    audit = bias_audit_run(audit_id=audit_id)
    return audit.status if audit is not None else None


@shared_task(name="audits.bias_audit_scheduled")
def bias_audit_scheduled_task(model_id: int) -> int | None:
    """A model's periodic audit (its django-celery-beat entry names this task): the new audit's id."""
    from audits.services.bias_audits import bias_audit_scheduled

    audit = bias_audit_scheduled(model_id=model_id)
    return audit.pk if audit is not None else None


@shared_task(name="audits.bias_audits_requeue_stale")
def bias_audits_requeue_stale_task() -> list[int]:
    """Every few minutes: put audits whose worker died back in the queue."""
    from audits.services.bias_audits import bias_audits_requeue_stale

    return bias_audits_requeue_stale()


@shared_task(name="audits.retraining_run")
def retraining_run_task(job_id: int) -> str | None:
    """Run one queued retraining job; its status afterwards (None if another worker had it)."""
    from audits.services.retraining import retraining_run

    job = retraining_run(job_id=job_id)
    return job.status if job is not None else None


@shared_task(name="audits.retraining_scheduled")
def retraining_scheduled_task(model_id: int) -> int | None:
    """A model's periodic retraining (its django-celery-beat entry names this task): the new job's id."""
    from audits.services.retraining import retraining_scheduled

    job = retraining_scheduled(model_id=model_id)
    return job.pk if job is not None else None


@shared_task(name="audits.retraining_after_new_labels")
def retraining_after_new_labels_task() -> list[int]:
    """Hourly: retrain the models whose policy asks for it after N new human labels, when they have them."""
    from audits.services.retraining import retraining_after_new_labels

    return retraining_after_new_labels()


@shared_task(name="audits.retraining_requeue_stale")
def retraining_requeue_stale_task() -> list[int]:
    """Every few minutes: put retraining jobs whose worker died back in the queue."""
    from audits.services.retraining import retraining_requeue_stale

    return retraining_requeue_stale()


@shared_task(name="audits.drift_checks_daily")
def drift_checks_daily_task() -> int:
    """Daily: one drift check task per model with a version; how many were queued."""
    from audits.services.drift import drift_checks_queue

    return drift_checks_queue()


@shared_task(name="audits.drift_check")
def drift_check_task(model_id: int) -> str | None:
    """Compare one model's recent intake with its production version's reference; the verdict."""
    from audits.services.drift import drift_check_run
    from models_registry.models import MLModel

    model = MLModel.objects.filter(pk=model_id).first()
    check = drift_check_run(model=model) if model is not None else None
    return check.verdict if check is not None else None
