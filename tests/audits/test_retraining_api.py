"""Retraining over the API as an ML engineer's script uses it: POST answers 202 (409 while one runs), GET polls."""

import pytest
from django.test import TestCase

from audits.models import RetrainingJob
from models_registry import artifacts
from models_registry.choices import Stage
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
    return ModelVersionFactory(
        stage=Stage.PRODUCTION, model__owner=ml_engineer, created_by=ml_engineer, with_artifact=True
    )


@pytest.fixture
def api(api_client_for, ml_engineer):
    return api_client_for(ml_engineer)


def url(base) -> str:
    return f"/api/v1/models/{base.model.name}/retraining-jobs/"


def test_a_job_is_accepted_with_its_id_and_polled_to_its_candidate(api, base):
    credit_cases_make(base, count=200)

    with TestCase.captureOnCommitCallbacks(execute=True):
        accepted = api.post(url(base), {"seed": 3}, format="json")

    assert accepted.status_code == 202
    assert (accepted.json()["status"], accepted.json()["base_version"]) == ("queued", base.number)
    polled = api.get(f"/api/v1/retraining-jobs/{accepted.json()['id']}/").json()
    assert (polled["status"], polled["candidate_version"], polled["progress"]) == ("succeeded", base.number + 1, 100)
    assert polled["snapshot"]["row_count"] == 200 and "drift_reference" not in polled["snapshot"]
    assert [row["metric"] for row in polled["comparison"]["metrics"]] == ["accuracy", "f1", "roc_auc", "brier"]
    assert polled["promotion_request"] is not None
    assert polled["page_url"].endswith(f"/admin/audits/retrainingjob/{polled['id']}/change/")
    listed = api.get(url(base)).json()["results"]
    assert [row["id"] for row in listed] == [polled["id"]]


def test_a_second_request_while_one_is_queued_is_a_409_naming_it(api, base):
    first = api.post(url(base), {}, format="json").json()

    second = api.post(url(base), {}, format="json")

    assert second.status_code == 409
    assert second.json() == {
        "detail": f"Retraining job {first['id']} of {base.model.name} is already queued; wait for it to finish.",
        "job": first["id"],
    }
    assert RetrainingJob.objects.count() == 1


def test_bad_input_is_a_400_naming_each_field_and_queues_nothing(api, base):
    typo = api.post(url(base), {"mitigaton": "demographic_parity"}, format="json")
    values = api.post(url(base), {"mitigation": "fairness", "holdout_share": 0.9, "seed": -1}, format="json")
    attribute = api.post(url(base), {"mitigation": "equalized_odds", "mitigation_attribute": "religion"}, format="json")

    assert (typo.status_code, typo.json()) == (400, {"mitigaton": ["Unknown field."]})
    assert values.status_code == 400 and set(values.json()) == {"mitigation", "holdout_share", "seed"}
    assert attribute.status_code == 400 and list(attribute.json()) == ["mitigation_attribute"]
    assert "sex, age_band" in attribute.json()["mitigation_attribute"][0]
    assert not RetrainingJob.objects.exists()


def test_another_engineer_cannot_retrain_nor_see_the_jobs_of_a_model_they_do_not_own(
    api_client_for, other_ml_engineer, base, reviewer_a
):
    job = api_client_for(base.model.owner).post(url(base), {}, format="json").json()
    other = api_client_for(other_ml_engineer)

    posted = other.post(url(base), {}, format="json")

    assert posted.status_code in (403, 404)
    assert RetrainingJob.objects.count() == 1
    assert api_client_for(reviewer_a).post(url(base), {}, format="json").status_code == 403
    detail = other.get(f"/api/v1/retraining-jobs/{job['id']}/")
    listed = other.get(url(base))
    assert (detail.status_code == 404) == (listed.status_code == 404), "hidden everywhere or readable everywhere"
