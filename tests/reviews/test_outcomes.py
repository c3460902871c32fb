"""Reporting real-world outcomes: validated, idempotent, corrections only with a reason, history and ledger."""

import json

import pytest

from audits.ledger import ledger_verify
from audits.models import DecisionEvent
from reviews.models import Prediction
from tests.reviews.factories import PredictionFactory


@pytest.fixture
def prediction(ml_engineer):
    return PredictionFactory(version__model__owner=ml_engineer, version__model__name="credit-scoring")


@pytest.fixture
def api(api_client_for, ml_engineer):
    return api_client_for(ml_engineer)


def outcome_url(prediction) -> str:
    return f"/api/v1/predictions/{prediction.pk}/outcome/"


def outcome_events() -> list[dict]:
    return [
        json.loads(payload)
        for payload in DecisionEvent.objects.filter(event_type="outcome.reported").values_list("payload", flat=True)
    ]


def test_an_owner_reports_an_outcome_with_history_and_a_ledger_event(api, prediction, ml_engineer):
    response = api.post(outcome_url(prediction), {"label": "deny"}, format="json")

    assert response.status_code == 201
    assert response.json()["outcome_label"] == "deny"
    assert response.json()["outcome_reported_by"] == ml_engineer.username
    prediction.refresh_from_db()
    assert prediction.outcome_label == "deny" and prediction.outcome_reported_by == ml_engineer
    latest = prediction.history.latest()
    assert (latest.history_user, latest.history_change_reason) == (ml_engineer, "Outcome reported: deny.")
    assert outcome_events() == [
        {
            "prediction_id": prediction.pk,
            "external_id": prediction.external_id,
            "model_id": prediction.model_id,
            "version_id": prediction.version_id,
            "label": "deny",
            "previous_label": None,
            "correction": False,
            "reason": "Outcome reported: deny.",
            "input_sha256": prediction.input_sha256,
        }
    ]
    assert ledger_verify().intact


def test_reporting_the_same_outcome_again_changes_nothing(api, prediction):
    api.post(outcome_url(prediction), {"label": "deny"}, format="json")

    again = api.post(outcome_url(prediction), {"label": "deny"}, format="json")

    assert again.status_code == 200
    assert len(outcome_events()) == 1
    assert prediction.history.count() == 2


def test_a_different_outcome_without_a_correction_is_a_409(api, prediction):
    api.post(outcome_url(prediction), {"label": "deny"}, format="json")

    response = api.post(outcome_url(prediction), {"label": "approve"}, format="json")

    assert response.status_code == 409
    assert "correction=true" in response.json()["detail"]
    assert Prediction.objects.get().outcome_label == "deny"


def test_a_correction_needs_a_reason(api, prediction):
    api.post(outcome_url(prediction), {"label": "deny"}, format="json")

    response = api.post(outcome_url(prediction), {"label": "approve", "correction": True}, format="json")

    assert response.status_code == 400
    assert "reason" in response.json()


def test_a_correction_with_a_reason_replaces_the_outcome_and_records_both(api, prediction, ml_engineer):
    api.post(outcome_url(prediction), {"label": "deny"}, format="json")

    response = api.post(
        outcome_url(prediction),
        {"label": "approve", "correction": True, "reason": "Loan was repaid in full; the default was a data error."},
        format="json",
    )

    assert response.status_code == 201
    assert Prediction.objects.get().outcome_label == "approve"
    last = outcome_events()[-1]
    assert (last["label"], last["previous_label"], last["correction"]) == ("approve", "deny", True)
    assert prediction.history.latest().history_change_reason.startswith("Loan was repaid")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"label": "maybe"}, "label"),
        ({}, "label"),
        ({"label": ["deny"]}, "label"),
        ({"label": 1}, "label"),
        ({"label": "deny", "comment": "x"}, "comment"),
        ({"label": "deny", "correction": "x"}, "correction"),
    ],
)
def test_a_bad_outcome_is_a_400_and_changes_nothing(api, prediction, body, field):
    response = api.post(outcome_url(prediction), body, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert not outcome_events()


def test_only_the_models_owner_reports_outcomes(api_client_for, prediction, other_ml_engineer, compliance_officer):
    assert api_client_for(other_ml_engineer).post(outcome_url(prediction), {"label": "deny"}).status_code == 404
    assert api_client_for(compliance_officer).post(outcome_url(prediction), {"label": "deny"}).status_code == 403
    assert not outcome_events()
