"""The bias audit API as an ML engineer's script uses it: POST answers 202 with the id, GET polls it."""

import pytest
from django.test import TestCase

from audits.models import BiasAudit
from hitl_platform.roles import Role
from models_registry.choices import Stage
from tests.audits.bias_data import Cohort, cases_make
from tests.factories import UserFactory
from tests.models_registry.factories import ModelVersionFactory


@pytest.fixture
def version(ml_engineer):
    return ModelVersionFactory(stage=Stage.PRODUCTION, model__owner=ml_engineer, created_by=ml_engineer)


@pytest.fixture
def api(api_client_for, ml_engineer):
    return api_client_for(ml_engineer)


def url(version) -> str:
    return f"/api/v1/models/{version.model.name}/audits/"


def test_a_requested_audit_is_queued_with_its_id_and_polled_to_its_verdict(api, version):
    cases_make(version, [Cohort("female", "<35", 40, model_approved=20), Cohort("male", "<35", 40, model_approved=32)])

    with TestCase.captureOnCommitCallbacks(execute=True):
        queued = api.post(url(version), {"population": "model", "sensitive_attributes": ["sex"]}, format="json")

    assert queued.status_code == 202
    assert (queued.json()["status"], queued.json()["model"]) == ("queued", version.model.name)
    polled = api.get(f"/api/v1/audits/{queued.json()['id']}/").json()
    assert (polled["status"], polled["passed"], polled["verdict"], polled["progress"]) == (
        "succeeded",
        False,
        "failed",
        100,
    )
    assert any("80%" in line for line in polled["summary"])
    sex = next(scope for scope in polled["result"]["scopes"] if scope["name"] == "sex")
    assert {group["label"]: group["selection_rate"] for group in sex["groups"]} == {
        "sex = female": 0.5,
        "sex = male": 0.8,
    }
    listed = api.get(url(version)).json()["results"]
    assert [row["id"] for row in listed] == [polled["id"]] and "result" not in listed[0]


def test_bad_input_is_a_400_naming_each_field_and_stores_nothing(api, version):
    typo = api.post(
        url(version), {"population": "model", "sensitive_attributes": ["sex"], "colour": "red"}, format="json"
    )
    answer = api.post(url(version), {"population": "everyone", "sensitive_attributes": []}, format="json")

    assert (typo.status_code, typo.json()) == (400, {"colour": ["Unknown field."]})
    assert answer.status_code == 400 and set(answer.json()) == {"population", "sensitive_attributes"}
    second = api.post(url(version), {"population": "model", "sensitive_attributes": ["religion"]}, format="json")
    third = api.post(
        url(version), {"population": "model", "sensitive_attributes": ["sex"], "version": 99}, format="json"
    )
    assert "not a sensitive attribute" in second.json()["sensitive_attributes"][0]
    assert third.json()["version"] == [f"{version.model.name} has no version 99."]
    assert not BiasAudit.objects.exists()


def test_another_teams_model_and_audit_are_a_404(api_client_for, api, version):
    stranger = api_client_for(UserFactory(roles=[Role.ML_ENGINEER]))
    with TestCase.captureOnCommitCallbacks(execute=True):
        audit_id = api.post(
            url(version), {"population": "model", "sensitive_attributes": ["sex"]}, format="json"
        ).json()["id"]

    assert stranger.get(url(version)).status_code == 404
    assert (
        stranger.post(url(version), {"population": "model", "sensitive_attributes": ["sex"]}, format="json").status_code
        == 404
    )
    assert stranger.get(f"/api/v1/audits/{audit_id}/").status_code == 404


def test_a_reviewer_may_not_use_the_audit_api(api_client_for, version):
    reviewer = api_client_for(UserFactory(roles=[Role.REVIEWER]))
    assert reviewer.get(url(version)).status_code == 403
