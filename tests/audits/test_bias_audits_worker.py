"""Bias audits run by real Celery worker processes on PostgreSQL: requested, scheduled, recovered, notified."""

import email
import json
from datetime import timedelta
from email.utils import getaddresses

import pytest
from django.db.models import F
from django_celery_beat.models import PeriodicTask

from audits.choices import AuditPopulation, AuditStatus, AuditTrigger
from audits.models import BiasAudit, DecisionEvent
from audits.services.bias_audits import STALE_AFTER, audit_policy_update, bias_audit_request
from hitl_platform.celery import app as celery_app
from hitl_platform.roles import Role
from models_registry.choices import Stage
from reviews.choices import DeliveryStatus
from reviews.models import Webhook, WebhookDelivery
from tests.audits.bias_data import Cohort, cases_make
from tests.conftest import wait_until
from tests.factories import UserFactory
from tests.models_registry.factories import ModelVersionFactory
from tests.reviews.test_webhooks import Receiver

pytestmark = [pytest.mark.postgres, pytest.mark.celery_worker]

# The statuses a run ends in: polling stops there, so a failed run fails the test at once, with its error.
TERMINAL = (AuditStatus.SUCCEEDED, AuditStatus.FAILED)
# Enough resamples that a run's confidence intervals take seconds, so a worker is reliably killed mid-run.
SLOW_BOOTSTRAP_SAMPLES = 3_000_000


@pytest.fixture
def owner(transactional_db):
    return UserFactory(username="owen_owner", email="owen@example.org", roles=[Role.ML_ENGINEER])


@pytest.fixture
def officers(transactional_db):
    return [
        UserFactory(username="cora_compliance", email="cora@example.org", roles=[Role.COMPLIANCE_OFFICER]),
        UserFactory(username="colin_compliance", email="colin@example.org", roles=[Role.COMPLIANCE_OFFICER]),
    ]


@pytest.fixture
def version(owner):
    return ModelVersionFactory(stage=Stage.PRODUCTION, model__owner=owner, created_by=owner)


def unequal_approvals(version) -> None:
    """Women approved 20 of 40, men 32 of 40: a demographic parity ratio of 0.625, below the four-fifths rule."""
    cases_make(version, [Cohort("female", "<35", 40, model_approved=20), Cohort("male", "<35", 40, model_approved=32)])


def equal_approvals(version) -> None:
    cases_make(version, [Cohort("female", "<35", 40, model_approved=30), Cohort("male", "<35", 40, model_approved=32)])


def finished(audit_id: int, *, timeout: float = 60.0) -> BiasAudit:
    return wait_until(lambda: BiasAudit.objects.filter(pk=audit_id, status__in=TERMINAL).first(), timeout=timeout)


def statuses(audit: BiasAudit) -> list[str]:
    return [h.status for h in audit.history.order_by("history_date", "history_id")]


def test_an_audit_requested_in_the_api_is_run_by_the_worker_and_polled_to_its_verdict(
    celery_worker_process, api_client_for, owner, version
):
    unequal_approvals(version)
    api = api_client_for(owner)

    queued = api.post(
        f"/api/v1/models/{version.model.name}/audits/",
        {"population": "model", "sensitive_attributes": ["sex"]},
        format="json",
    )

    assert queued.status_code == 202
    audit_id = queued.json()["id"]
    polled = wait_until(
        lambda: (body := api.get(f"/api/v1/audits/{audit_id}/").json())["status"] in TERMINAL and body, timeout=60
    )
    assert (polled["status"], polled["verdict"], polled["passed"], polled["progress"], polled["case_count"]) == (
        "succeeded",
        "failed",
        False,
        100,
        80,
    ), polled["error"]
    done = BiasAudit.objects.get(pk=audit_id)
    assert statuses(done) == ["queued", "running", "succeeded"]
    event = DecisionEvent.objects.get(event_type="audit.finished", object_id=str(audit_id))
    assert '"verdict":"failed"' in event.payload and done.inputs_sha256 in event.payload


def test_a_scheduled_audit_sent_as_beat_sends_it_is_created_and_run_by_the_worker(
    celery_worker_process, celery_queue, officers, version
):
    equal_approvals(version)

    audit_policy_update(model=version.model, actor=officers[0], reason="Daily audit", schedule_every_days=1)

    entry = PeriodicTask.objects.get(name=f"bias-audit-{version.model.name}")
    assert (entry.task, entry.interval.every, entry.interval.period, entry.enabled) == (
        "audits.bias_audit_scheduled",
        1,
        "days",
        True,
    )
    celery_app.send_task(entry.task, kwargs=json.loads(entry.kwargs), queue=celery_queue)
    created = wait_until(lambda: BiasAudit.objects.filter(model=version.model).first(), timeout=60)
    done = finished(created.pk)
    assert (done.trigger, done.population, done.requested_by, done.status, done.verdict, done.case_count) == (
        AuditTrigger.SCHEDULE,
        AuditPopulation.DECISIONS,
        None,
        AuditStatus.SUCCEEDED,
        "passed",
        80,
    ), done.error
    assert statuses(done) == ["queued", "running", "succeeded"]


def test_an_audit_whose_worker_was_killed_mid_run_is_requeued_and_finished_by_another_worker(
    celery_worker_process, celery_worker_start, celery_queue, officers, version
):
    equal_approvals(version)
    audit_policy_update(
        model=version.model, actor=officers[0], reason="Tighter intervals", bootstrap_samples=SLOW_BOOTSTRAP_SAMPLES
    )
    requested = bias_audit_request(
        actor=officers[0], model=version.model, population=AuditPopulation.MODEL, sensitive_attributes=["sex"]
    )
    wait_until(
        lambda: BiasAudit.objects.filter(pk=requested.pk, status=AuditStatus.RUNNING, heartbeat_at__isnull=False),
        timeout=60,
        interval=0.05,
    )

    celery_worker_process.kill()
    celery_worker_process.wait(timeout=10)

    lost = BiasAudit.objects.get(pk=requested.pk)
    assert (lost.status, lost.attempts) == (AuditStatus.RUNNING, 1), "the run ended before its worker was killed"
    assert lost.progress < 100
    celery_worker_start()
    # Ten minutes without a heartbeat, as the clock would have it; the worker's own clock cannot be patched.
    BiasAudit.objects.filter(pk=lost.pk).update(heartbeat_at=F("heartbeat_at") - STALE_AFTER - timedelta(minutes=1))
    assert BiasAudit.objects.get(pk=lost.pk).status == AuditStatus.RUNNING

    celery_app.send_task("audits.bias_audits_requeue_stale", queue=celery_queue)

    done = finished(lost.pk, timeout=120)
    assert (done.status, done.attempts, done.progress, done.case_count) == (AuditStatus.SUCCEEDED, 2, 100, 80), (
        done.error
    )
    assert statuses(done) == ["queued", "running", "queued", "running", "succeeded"]
    assert "Worker lost: requeued" in [h.history_change_reason for h in done.history.all()]
    assert DecisionEvent.objects.filter(event_type="audit.finished", object_id=str(done.pk)).count() == 1


def test_a_failed_audit_in_the_worker_emails_the_owner_and_officers_and_delivers_audit_failed(
    celery_worker_start, tmp_path, owner, officers, version
):
    outbox = tmp_path / "mail"
    celery_worker_start(
        extra_env={"EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend", "EMAIL_FILE_PATH": str(outbox)}
    )
    unequal_approvals(version)
    with Receiver([200]) as receiver:
        Webhook.objects.create(owner=owner, url=receiver.url, events=["audit.failed"], secret="s" * 32)

        requested = bias_audit_request(
            actor=officers[0], model=version.model, population=AuditPopulation.MODEL, sensitive_attributes=["sex"]
        )

        done = finished(requested.pk)
        assert (done.status, done.verdict) == (AuditStatus.SUCCEEDED, "failed"), done.error
        delivery = wait_until(
            lambda: WebhookDelivery.objects.filter(event="audit.failed", status=DeliveryStatus.DELIVERED).first(),
            timeout=30,
        )
    assert (delivery.payload["audit"]["id"], delivery.payload["audit"]["verdict"]) == (done.pk, "failed")
    assert [json.loads(request["body"])["event"] for request in receiver.requests] == ["audit.failed"]
    mail_file = wait_until(lambda: next(outbox.glob("*.log"), None), timeout=30)
    message = email.message_from_string(mail_file.read_text().split("\n" + "-" * 79)[0])
    assert sorted(address for _, address in getaddresses(message.get_all("To"))) == [
        "colin@example.org",
        "cora@example.org",
        "owen@example.org",
    ]
    assert message["Subject"] == f"Bias audit {done.pk} of {version.model.name} failed"
    assert "80%" in message.get_payload(decode=True).decode()
