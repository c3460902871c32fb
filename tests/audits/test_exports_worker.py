"""A large export runs in a real Celery worker process, with progress, and its file is offered when done."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from audits.models import Export
from audits.services.exports import export_request
from reviews.choices import DecisionSource
from reviews.models import Decision
from tests.conftest import wait_until
from tests.reviews.factories import PredictionFactory


@pytest.mark.postgres
@pytest.mark.celery_worker
def test_a_worker_writes_a_decisions_export_after_commit(celery_worker_process, compliance_officer):
    first = PredictionFactory()
    predictions = [first, *(PredictionFactory(version=first.version) for _ in range(24))]
    Decision.objects.bulk_create(
        Decision(prediction=p, model=p.model, final_label="approve", source=DecisionSource.AUTO) for p in predictions
    )
    now = timezone.now()

    export = export_request(
        actor=compliance_officer,
        kind="decisions",
        format="json",
        model=first.model,
        period_start=now - timedelta(hours=1),
        period_end=now + timedelta(hours=1),
    )

    done = wait_until(lambda: Export.objects.filter(pk=export.pk, status="done").first(), timeout=60)
    assert (done.progress, done.row_count) == (100, 25)
    assert [h.status for h in done.history.order_by("history_date")] == ["queued", "running", "done"]
    assert len(json.loads(done.file.read())["decisions"]) == 25
    done.file.delete(save=False)
