"""The daily drift check: recent intake against the production version's reference, flagged, mailed, retrained."""

import pytest
from django.core import mail
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone

from audits.choices import AuditStatus, RetrainingTrigger
from audits.models import DriftCheck, RetrainingJob
from audits.services.bias_audits import audit_policy_update
from audits.services.drift import drift_check_run
from audits.services.retraining import retraining_request
from audits.tasks import drift_checks_daily_task
from models_registry import artifacts
from models_registry.choices import Stage
from models_registry.scoring import score_batch
from tests.audits.retraining_data import credit_cases_make
from tests.models_registry.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    artifacts._MODEL_CACHE.clear()
    yield settings.MEDIA_ROOT
    artifacts._MODEL_CACHE.clear()


@pytest.fixture
def base(ml_engineer):
    ml_engineer.email = "mia@example.org"
    ml_engineer.save(update_fields=["email"])
    return ModelVersionFactory(
        stage=Stage.PRODUCTION, model__owner=ml_engineer, created_by=ml_engineer, with_artifact=True
    )


def older(predictions, days: int) -> None:
    type(predictions[0]).objects.filter(pk__in=[p.pk for p in predictions]).update(
        created_at=timezone.now() - timezone.timedelta(days=days)
    )


def in_production(ml_engineer, base):
    """Retrain on 300 cases received weeks ago and put the candidate in production, as an approval would."""
    older(credit_cases_make(base, count=300, seed=1), days=30)
    with TestCase.captureOnCommitCallbacks(execute=True):
        job = retraining_request(actor=ml_engineer, model=base.model)
    job.refresh_from_db()
    type(base).objects.filter(pk=base.pk).update(stage=Stage.ARCHIVED)
    type(base).objects.filter(pk=job.candidate_version_id).update(stage=Stage.PRODUCTION)
    return job


def test_shifted_intake_drifts_against_the_training_snapshot_is_mailed_and_can_retrain(
    ml_engineer, compliance_officer, base
):
    job = in_production(ml_engineer, base)
    audit_policy_update(
        model=base.model, actor=compliance_officer, reason="Retrain on drift.", retraining_on_drift=True
    )
    credit_cases_make(base, count=200, seed=2, women_amount_factor=3.0)

    with TestCase.captureOnCommitCallbacks(execute=True):
        check = drift_check_run(model=base.model)

    assert (check.verdict, check.version_id) == ("drifted", job.candidate_version_id)
    assert check.reference_words == f"the training set of retraining job {job.pk}"
    assert "credit_amount" in check.drifted_features and check.max_psi > 0.25
    assert {feature["name"] for feature in check.result["features"]} >= {"credit_amount", "duration", "confidence"}
    assert [message.to for message in mail.outbox] == [["mia@example.org"]]
    assert "credit_amount" in mail.outbox[0].subject
    queued = RetrainingJob.objects.exclude(pk=job.pk).get()
    assert (check.retraining_job, queued.trigger) == (queued, RetrainingTrigger.DRIFT)


def scored_by_production(job, predictions) -> None:
    """Give recent cases the confidence the production version scores them with, as intake records it."""
    scores = score_batch(model=job.model, version=job.candidate_version, features=[p.features for p in predictions])
    for prediction, score in zip(predictions, scores, strict=True):
        type(prediction).objects.filter(pk=prediction.pk).update(confidence=score.confidence)


def test_intake_like_the_training_set_is_stable_and_mails_nobody(ml_engineer, base):
    job = in_production(ml_engineer, base)
    scored_by_production(job, credit_cases_make(base, count=300, seed=3))

    check = drift_check_run(model=base.model)

    assert (check.verdict, check.drifted_features) == ("stable", [])
    assert check.max_psi < 0.25
    assert mail.outbox == []
    assert RetrainingJob.objects.filter(status=AuditStatus.QUEUED).count() == 0


def test_a_version_registered_directly_is_compared_with_its_first_cases_and_few_recent_ones_are_not_judged(base):
    older(credit_cases_make(base, count=200, seed=4), days=40)
    credit_cases_make(base, count=10, seed=5)

    check = drift_check_run(model=base.model)

    assert check.reference_words == f"the first 210 cases version {base.number} received"
    assert (check.verdict, check.recent_count, check.max_psi) == ("not compared", 10, None)
    assert "at least 30 are needed" in check.result["sentences"][0]


def test_the_daily_task_checks_every_model_and_the_dashboard_flags_a_drifted_one(
    client, compliance_officer, ml_engineer, base
):
    in_production(ml_engineer, base)
    credit_cases_make(base, count=200, seed=6, women_amount_factor=3.0)
    ModelVersionFactory(model__owner=ml_engineer)

    assert drift_checks_daily_task() == 2

    check = DriftCheck.objects.get(model=base.model)
    client.force_login(compliance_officer)
    html = client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:audits_driftcheck_change", args=[check.pk]) in html
    assert f"drifted: {', '.join(check.drifted_features)}" in html
    page = client.get(reverse("admin:audits_driftcheck_change", args=[check.pk])).content.decode()
    assert 'class="hitl-chart hitl-drift-chart"' in page and "threshold 0.25" in page
