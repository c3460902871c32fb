"""When the task queue is down, asking for an audit, an export or a ledger check answers clearly and loses nothing:
the job is recorded as not started, with the reason, and can be asked for again once the queue is back."""

import pytest
from django.urls import reverse

from audits.choices import AuditStatus, JobStatus, LedgerCheckStatus
from audits.models import BiasAudit, Export, LedgerCheck
from audits.services.bias_audits import bias_audit_request, bias_audit_retry
from hitl_platform.queueing import BROKER_UNREACHABLE
from models_registry.choices import Stage
from tests.audits.bias_data import Cohort, cases_make
from tests.models_registry.factories import ModelVersionFactory
from tests.reviews.factories import PredictionFactory

# The task is sent when the request's transaction commits, as in production: no test-wide transaction around it.
pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def model(ml_engineer):
    version = ModelVersionFactory(stage=Stage.PRODUCTION, model__owner=ml_engineer, created_by=ml_engineer)
    cases_make(version, [Cohort("female", "<35", 40, model_approved=30), Cohort("male", "<35", 40, model_approved=32)])
    return version.model


def test_api_audit_request_answers_503_with_the_failed_audit_when_the_queue_is_down(
    broker_unreachable, api_client_for, ml_engineer, model
):
    response = api_client_for(ml_engineer).post(
        f"/api/v1/models/{model.name}/audits/",
        {"population": "model", "sensitive_attributes": ["sex"]},
        format="json",
    )

    assert response.status_code == 503
    assert response["Retry-After"] == "60"
    assert response.json()["status"] == "failed"
    assert response.json()["error"] == BROKER_UNREACHABLE
    audit = BiasAudit.objects.get(pk=response.json()["id"])
    assert audit.status == AuditStatus.FAILED
    assert audit.history.first().history_change_reason == "Not started: the task queue is unreachable"


def test_a_not_started_audit_runs_when_retried_once_the_queue_is_back(broker_unreachable, ml_engineer, model):
    audit = bias_audit_request(actor=ml_engineer, model=model, population="model", sensitive_attributes=["sex"])
    assert audit.status == AuditStatus.FAILED

    broker_unreachable()
    retried = bias_audit_retry(audit=audit, actor=ml_engineer)

    retried.refresh_from_db()
    assert (retried.status, retried.verdict, retried.error) == (AuditStatus.SUCCEEDED, "passed", "")


def test_console_audit_request_shows_the_reason_instead_of_a_500(broker_unreachable, client, compliance_officer, model):
    client.force_login(compliance_officer)

    response = client.post(
        reverse("admin:bias_audit_new"),
        {"model": model.pk, "population": "model", "sensitive_attributes": ["sex"]},
        follow=True,
    )

    assert response.status_code == 200
    audit = BiasAudit.objects.get()
    assert audit.status == AuditStatus.FAILED
    assert f"Bias audit {audit.pk} could not start." in response.content.decode()


def test_api_export_request_answers_503_and_keeps_the_export_as_failed(
    broker_unreachable, api_client_for, compliance_officer
):
    officer = compliance_officer
    prediction = PredictionFactory()

    response = api_client_for(officer).post(
        "/api/v1/exports/", {"kind": "case", "prediction": prediction.pk, "format": "json"}, format="json"
    )

    assert response.status_code == 503
    export = Export.objects.get(pk=response.json()["id"])
    assert export.status == JobStatus.FAILED
    assert export.error == BROKER_UNREACHABLE


def test_console_ledger_check_says_it_could_not_start(broker_unreachable, client, compliance_officer):
    client.force_login(compliance_officer)

    response = client.post(reverse("admin:ledger"), follow=True)

    check = LedgerCheck.objects.get()
    assert check.status == LedgerCheckStatus.FAILED
    assert check.problem == BROKER_UNREACHABLE
    assert f"Verification {check.pk} could not start." in response.content.decode()
