"""The console's retraining pages: ask for a job, follow it, read base against candidate and the decision to make."""

import re

import pytest
from django.test import TestCase
from django.urls import reverse

from audits.choices import AuditStatus, Mitigation
from audits.models import RetrainingJob
from audits.services.retraining import retraining_request
from models_registry import artifacts
from models_registry.choices import Stage
from tests.audits.retraining_data import credit_cases_make
from tests.models_registry.factories import ModelVersionFactory
from tests.platform.test_csp import csp_directives, refused_markup

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    artifacts._MODEL_CACHE.clear()
    yield settings.MEDIA_ROOT
    artifacts._MODEL_CACHE.clear()


@pytest.fixture
def base(ml_engineer):
    return ModelVersionFactory(
        stage=Stage.PRODUCTION, model__owner=ml_engineer, created_by=ml_engineer, with_artifact=True
    )


@pytest.fixture
def officer_client(client, compliance_officer):
    client.force_login(compliance_officer)
    return client


def test_an_officer_asks_for_a_mitigated_job_and_its_page_compares_base_and_candidate(
    officer_client, compliance_officer, base
):
    credit_cases_make(base, count=1500, seed=5, women_amount_factor=1.6)

    with TestCase.captureOnCommitCallbacks(execute=True):
        response = officer_client.post(
            reverse("admin:retraining_job_new"),
            {
                "model": base.model.pk,
                "mitigation": Mitigation.DEMOGRAPHIC_PARITY,
                "mitigation_attribute": "sex",
                "holdout_share": "0.3",
                "seed": "1",
            },
        )

    job = RetrainingJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:audits_retrainingjob_change", args=[job.pk])
    assert (job.requested_by, job.status) == (compliance_officer, AuditStatus.SUCCEEDED)
    page = officer_client.get(response["Location"])
    html = page.content.decode()
    assert f"Candidate version {job.candidate_version.number} is ready for a person to review" in html
    assert reverse("admin:models_registry_promotionrequest_change", args=[job.promotion_request_id]) in html
    assert reverse("admin:audits_biasaudit_change", args=[job.audit_id]) in html
    assert job.snapshot["cases_sha256"] in html
    rows = re.findall(
        r"<tr><td>([^<]+)</td><td class=\"num\">([^<]+)</td><td class=\"num\">([^<]+)</td><td class=\"(hitl-\w+)\">",
        html,
    )
    assert [row[0] for row in rows[:4]] == ["Accuracy", "F1 score", "ROC AUC", "Brier score (lower is better)"]
    parity = next(
        row
        for row in re.findall(
            r"<tr><td>Demographic parity ratio, across sex <span class=\"quiet\">\(at least 0.8 required\)</span></td>"
            r"<td class=\"num\">([^<]+)</td><td class=\"num\">([^<]+)</td><td class=\"(hitl-\w+)\">",
            html,
        )
    )
    assert parity[0].endswith("(failed)") and parity[1].endswith("(passed)") and parity[2] == "hitl-better"
    assert 'id="retraining-' in html and "<svg" in html
    assert refused_markup(html, csp_directives(page["Content-Security-Policy"])) == []


def test_a_queued_job_page_refreshes_itself_and_shows_its_progress(officer_client, base):
    job = RetrainingJob.objects.create(model=base.model, base_version=base)

    html = officer_client.get(reverse("admin:audits_retrainingjob_change", args=[job.pk])).content.decode()

    assert '<meta http-equiv="refresh" content="3">' in html
    assert "Queued: waiting for a worker" in html and 'id="job-progress"' in html


def test_a_failed_job_page_says_why(officer_client, base):
    job = RetrainingJob.objects.create(
        model=base.model, base_version=base, status=AuditStatus.FAILED, error="Only 12 cases were decided by humans."
    )

    html = officer_client.get(reverse("admin:audits_retrainingjob_change", args=[job.pk])).content.decode()

    assert "Could not produce a candidate" in html
    assert '<p class="hitl-stop" id="job-error">Only 12 cases were decided by humans.</p>' in html
    assert "refresh" not in html


def test_bad_input_is_a_form_error_and_a_running_job_is_named(officer_client, base):
    RetrainingJob.objects.create(model=base.model, base_version=base, status=AuditStatus.RUNNING)
    url = reverse("admin:retraining_job_new")

    attribute = officer_client.post(
        url, {"model": base.model.pk, "mitigation": "equalized_odds", "holdout_share": "0.2", "seed": "0"}
    )
    share = officer_client.post(
        url, {"model": base.model.pk, "mitigation": "none", "holdout_share": "0.9", "seed": "0"}
    )
    busy = officer_client.post(url, {"model": base.model.pk, "mitigation": "none", "holdout_share": "0.2", "seed": "0"})

    assert "Name the sensitive attribute of" in attribute.content.decode()
    assert share.context["form"].errors == {"holdout_share": ["Ensure this value is less than or equal to 0.5."]}
    assert "is already running; wait for it to finish." in busy.context["form"].errors["model"][0]
    assert RetrainingJob.objects.count() == 1


def test_the_add_button_opens_the_request_page(officer_client):
    response = officer_client.get(reverse("admin:audits_retrainingjob_add"))

    assert response.status_code == 302 and response["Location"] == reverse("admin:retraining_job_new")


def test_the_candidate_s_page_shows_its_lineage_with_the_job_that_made_it(client, admin_user, ml_engineer, base):
    credit_cases_make(base, count=200)
    with TestCase.captureOnCommitCallbacks(execute=True):
        job = retraining_request(actor=ml_engineer, model=base.model)
    job.refresh_from_db()
    client.force_login(admin_user)

    html = client.get(
        reverse("admin:models_registry_modelversion_change", args=[job.candidate_version_id])
    ).content.decode()

    base_url = reverse("admin:models_registry_modelversion_change", args=[base.pk])
    job_url = reverse("admin:audits_retrainingjob_change", args=[job.pk])
    assert (
        f'v{job.candidate_version.number} (<a href="{job_url}">retraining job {job.pk}</a>) ← '
        f'<a href="{base_url}">v{base.number}</a>'
    ) in html


def test_the_model_page_lists_its_jobs_and_links_to_retrain_and_to_its_threshold_recommendation(officer_client, base):
    job = RetrainingJob.objects.create(model=base.model, base_version=base, status=AuditStatus.FAILED)

    html = officer_client.get(reverse("admin:models_registry_mlmodel_change", args=[base.model_id])).content.decode()

    assert reverse("admin:audits_retrainingjob_change", args=[job.pk]) in html
    assert f"{reverse('admin:retraining_job_new')}?model={base.model_id}" in html
    assert reverse("admin:threshold_recommendation", args=[base.model_id]) in html
    assert "No drift check yet (they run daily)." in html
