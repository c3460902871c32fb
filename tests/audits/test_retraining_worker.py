"""Retraining run by a real Celery worker process on PostgreSQL + Redis, asked for through the API."""

import pytest

from audits.choices import AuditStatus
from audits.models import RetrainingJob
from models_registry.artifacts import load_trusted_model
from models_registry.choices import Stage
from tests.audits.retraining_data import credit_cases_make
from tests.conftest import wait_until
from tests.models_registry.factories import ModelVersionFactory

pytestmark = [pytest.mark.postgres, pytest.mark.celery_worker]

TERMINAL = (AuditStatus.SUCCEEDED, AuditStatus.FAILED)


def test_a_job_asked_for_in_the_api_is_run_by_the_worker_to_a_candidate_awaiting_a_person(
    celery_worker_process, api_client_for, ml_engineer
):
    # The worker shares the test settings' MEDIA_ROOT, so it reads the base version's file the test wrote.
    base = ModelVersionFactory(
        stage=Stage.PRODUCTION, model__owner=ml_engineer, created_by=ml_engineer, with_artifact=True
    )
    credit_cases_make(base, count=300, seed=9)
    api = api_client_for(ml_engineer)

    accepted = api.post(f"/api/v1/models/{base.model.name}/retraining-jobs/", {"seed": 2}, format="json")

    assert accepted.status_code == 202
    job = wait_until(
        lambda: RetrainingJob.objects.filter(pk=accepted.json()["id"], status__in=TERMINAL).first(), timeout=90
    )
    assert (job.status, job.error) == (AuditStatus.SUCCEEDED, "")
    polled = api.get(f"/api/v1/retraining-jobs/{job.pk}/").json()
    assert polled["candidate_version"] == base.number + 1
    candidate = job.candidate_version
    assert (candidate.stage, candidate.parent_id, candidate.retraining_job_id) == (Stage.CANDIDATE, base.pk, job.pk)
    assert load_trusted_model(candidate).predict([[1200.0, 24, 40]]).tolist() == ["approve"]
    assert job.promotion_request.status == "pending"
    statuses = [h.status for h in job.history.order_by("history_date", "history_id")]
    assert statuses == ["queued", "running", "succeeded"]
