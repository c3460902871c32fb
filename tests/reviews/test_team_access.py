"""A model's team works on it beside its owner; another team's engineers meet the same 404 as for no model at all."""

import pytest
from django.contrib.auth.models import Group

from hitl_platform.roles import Role
from models_registry.choices import Stage
from reviews.models import Prediction, Webhook, WebhookDelivery
from tests.factories import UserFactory
from tests.models_registry.factories import MLModelFactory, ModelVersionFactory

CASE = {
    "external_id": "application-1",
    "features": {"credit_amount": 4200.0, "duration": 24, "age": 41},
    "label": "approve",
    "confidence": 0.97,
}


@pytest.fixture
def team(ml_engineer):
    team = Group.objects.create(name="credit-risk-team")
    ml_engineer.groups.add(team)
    return team


@pytest.fixture
def team_model(ml_engineer, team):
    model = MLModelFactory(name="credit-scoring", owner=ml_engineer, team=team)
    ModelVersionFactory(model=model, number=1, stage=Stage.PRODUCTION)
    return model


@pytest.fixture
def colleague(team):
    user = UserFactory(username="tom_ml", roles=[Role.ML_ENGINEER])
    user.groups.add(team)
    return user


def test_a_team_member_submits_predictions_reports_outcomes_and_reads_decisions(api_client_for, team_model, colleague):
    client = api_client_for(colleague)

    submitted = client.post("/api/v1/models/credit-scoring/predictions/", CASE, format="json")
    prediction = Prediction.objects.get()
    outcome = client.post(f"/api/v1/predictions/{prediction.pk}/outcome/", {"label": "approve"}, format="json")
    feed = client.get("/api/v1/decisions/")

    assert (submitted.status_code, outcome.status_code, feed.status_code) == (201, 201, 200)
    assert [row["external_id"] for row in feed.json()["results"]] == ["application-1"]


def test_another_teams_engineer_can_neither_submit_nor_read_nor_report(
    api_client_for, api_client_for_owner_case, other_ml_engineer
):
    prediction = api_client_for_owner_case
    client = api_client_for(other_ml_engineer)

    submitted = client.post("/api/v1/models/credit-scoring/predictions/", {**CASE, "external_id": "x"}, format="json")
    read = client.get(f"/api/v1/predictions/{prediction.pk}/")
    outcome = client.post(f"/api/v1/predictions/{prediction.pk}/outcome/", {"label": "deny"}, format="json")
    feed = client.get("/api/v1/decisions/")

    assert (submitted.status_code, read.status_code, outcome.status_code) == (404, 404, 404)
    assert feed.json()["results"] == []
    assert Prediction.objects.count() == 1
    prediction.refresh_from_db()
    assert prediction.outcome_label == ""


@pytest.fixture
def api_client_for_owner_case(api_client_for, ml_engineer, team_model):
    api_client_for(ml_engineer).post("/api/v1/models/credit-scoring/predictions/", CASE, format="json")
    return Prediction.objects.get()


def test_a_team_members_webhook_without_a_model_receives_the_teams_decisions_and_no_one_elses(
    api_client_for, team_model, colleague, other_ml_engineer, ml_engineer
):
    colleagues_hook = Webhook.objects.create(
        owner=colleague, url="https://example.org/team", events=["decision.final"], secret="s"
    )
    Webhook.objects.create(
        owner=other_ml_engineer, url="https://example.org/other", events=["decision.final"], secret="s"
    )

    api_client_for(ml_engineer).post("/api/v1/models/credit-scoring/predictions/", CASE, format="json")

    assert [delivery.webhook for delivery in WebhookDelivery.objects.all()] == [colleagues_hook]


def test_a_compliance_officer_reads_every_teams_cases_but_submits_none(
    api_client_for, api_client_for_owner_case, compliance_officer
):
    client = api_client_for(compliance_officer)

    read = client.get(f"/api/v1/predictions/{api_client_for_owner_case.pk}/")
    submitted = client.post("/api/v1/models/credit-scoring/predictions/", {**CASE, "external_id": "y"}, format="json")

    assert (read.status_code, submitted.status_code) == (200, 403)
