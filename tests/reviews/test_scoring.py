"""Hosted scoring: items sent without a label are scored with the version's real skops file, one call per batch."""

import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest
from django.core.files.base import ContentFile
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from audits.models import DecisionEvent
from models_registry import scoring
from models_registry.choices import Stage
from models_registry.models import ModelVersion
from reviews.choices import Route
from reviews.models import Decision, Prediction, ReviewTask
from reviews.services.intake import predictions_ingest
from tests.models_registry.factories import (
    CREDIT_FEATURES,
    MLModelFactory,
    ModelVersionFactory,
    skops_bytes,
    trained_credit_pipeline,
)

APPLICATIONS = [
    {"credit_amount": 1200.0, "duration": 36, "age": 30},
    {"credit_amount": 18000.0, "duration": 6, "age": 52},
    {"credit_amount": 5000.0, "duration": 24, "age": 41},
]


@pytest.fixture
def scored_model(ml_engineer):
    model = MLModelFactory(name="credit-hosted", owner=ml_engineer)
    ModelVersionFactory(model=model, number=1, stage=Stage.PRODUCTION, with_artifact=True)
    return model


@pytest.fixture
def api(api_client_for, ml_engineer):
    return api_client_for(ml_engineer)


def unlabelled(n: int, features: dict) -> dict:
    return {"external_id": f"application-{n}", "features": features, "attributes": {"sex": "male"}}


def test_items_without_a_label_are_scored_with_the_versions_model_file(api, scored_model):
    response = api.post(
        f"/api/v1/models/{scored_model.name}/predictions/",
        {"predictions": [unlabelled(n, features) for n, features in enumerate(APPLICATIONS)]},
        format="json",
    )

    assert response.status_code == 201, response.json()
    pipeline = trained_credit_pipeline()
    matrix = np.array([[row[name] for name in CREDIT_FEATURES] for row in APPLICATIONS])
    expected = pipeline.predict_proba(matrix)
    stored = {p.external_id: p for p in Prediction.objects.all()}
    for n, probabilities in enumerate(expected):
        prediction = stored[f"application-{n}"]
        assert prediction.scored_by_platform
        assert prediction.predicted_label == pipeline.classes_[probabilities.argmax()]
        assert prediction.confidence == pytest.approx(probabilities.max())
        assert prediction.scores == pytest.approx(dict(zip(pipeline.classes_, probabilities, strict=True)))


def test_the_order_of_features_in_the_request_does_not_matter(api, scored_model):
    reordered = {"age": 30, "duration": 36, "credit_amount": 1200.0}

    api.post(
        f"/api/v1/models/{scored_model.name}/predictions/",
        {"predictions": [unlabelled(0, APPLICATIONS[0]), unlabelled(1, reordered)]},
        format="json",
    )

    first, second = Prediction.objects.order_by("external_id")
    assert first.confidence == second.confidence and first.predicted_label == second.predicted_label


def test_a_batch_is_scored_with_one_predict_proba_call(api, scored_model, monkeypatch):
    calls = []
    real_loader = scoring.load_trusted_model

    def counting_loader(version):
        estimator = real_loader(version)

        class Counting:
            classes_ = estimator.classes_

            def predict_proba(self, matrix):
                calls.append(len(matrix))
                return estimator.predict_proba(matrix)

        return Counting()

    monkeypatch.setattr(scoring, "load_trusted_model", counting_loader)
    items = [unlabelled(n, APPLICATIONS[n % 3]) for n in range(250)]

    response = api.post(f"/api/v1/models/{scored_model.name}/predictions/", {"predictions": items}, format="json")

    assert response.status_code == 201
    assert calls == [250]


def test_labelled_and_unlabelled_items_mix_in_one_batch(api, scored_model):
    labelled = {**unlabelled(9, APPLICATIONS[0]), "label": "deny", "confidence": 0.97}

    api.post(
        f"/api/v1/models/{scored_model.name}/predictions/",
        {"predictions": [labelled, unlabelled(1, APPLICATIONS[1])]},
        format="json",
    )

    stored = {p.external_id: p for p in Prediction.objects.all()}
    assert not stored["application-9"].scored_by_platform and stored["application-9"].predicted_label == "deny"
    assert stored["application-1"].scored_by_platform


def test_a_version_without_a_model_file_cannot_score_and_stores_nothing(api, ml_engineer):
    model = MLModelFactory(name="caller-scored", owner=ml_engineer)
    ModelVersionFactory(model=model, number=1, stage=Stage.PRODUCTION)

    response = api.post(f"/api/v1/models/{model.name}/predictions/", unlabelled(0, APPLICATIONS[0]), format="json")

    assert response.status_code == 400
    assert "has no model file" in response.json()["errors"][0]["message"]
    assert not Prediction.objects.exists()


def test_a_model_that_fails_on_the_input_is_a_400_with_its_complaint(api, ml_engineer):
    schema = {
        "type": "object",
        "properties": {name: {"type": "number"} for name in CREDIT_FEATURES},
        "x-feature-order": CREDIT_FEATURES,
    }
    model = MLModelFactory(name="optional-features", owner=ml_engineer, feature_schema=schema)
    ModelVersionFactory(model=model, number=1, stage=Stage.PRODUCTION, with_artifact=True)

    response = api.post(
        f"/api/v1/models/{model.name}/predictions/",
        unlabelled(0, {"credit_amount": 1200.0, "duration": 36}),
        format="json",
    )

    assert response.status_code == 400
    assert "Hosted scoring with version 1 of optional-features failed" in response.json()["errors"][0]["message"]
    assert not Prediction.objects.exists()


def test_the_column_order_comes_from_the_schemas_declared_order_not_its_key_order(api, ml_engineer):
    # Properties listed in another order than training (as PostgreSQL's jsonb may return them anyway).
    schema = {
        "type": "object",
        "properties": {
            "age": {"type": "integer"},
            "duration": {"type": "integer"},
            "credit_amount": {"type": "number"},
        },
        "x-feature-order": CREDIT_FEATURES,
    }
    model = MLModelFactory(name="declared-order", owner=ml_engineer, feature_schema=schema)
    ModelVersionFactory(model=model, number=1, stage=Stage.PRODUCTION, with_artifact=True)

    api.post(f"/api/v1/models/{model.name}/predictions/", unlabelled(0, APPLICATIONS[2]), format="json")

    expected = trained_credit_pipeline().predict_proba(np.array([[APPLICATIONS[2][n] for n in CREDIT_FEATURES]]))[0]
    assert Prediction.objects.get().confidence == pytest.approx(expected.max())


def test_an_array_trained_model_without_a_declared_column_order_is_not_scored(api, ml_engineer):
    schema = {"type": "object", "properties": {name: {"type": "number"} for name in CREDIT_FEATURES}}
    model = MLModelFactory(name="undeclared-order", owner=ml_engineer, feature_schema=schema)
    ModelVersionFactory(model=model, number=1, stage=Stage.PRODUCTION, with_artifact=True)

    response = api.post(f"/api/v1/models/{model.name}/predictions/", unlabelled(0, APPLICATIONS[0]), format="json")

    assert response.status_code == 400
    assert '"x-feature-order"' in response.json()["errors"][0]["message"]
    assert not Prediction.objects.exists()


def test_a_model_file_changed_since_registration_is_refused(api, scored_model):
    version = ModelVersion.objects.get(model=scored_model)
    version.artifact_sha256 = "0" * 64
    version.save(update_fields=["artifact_sha256"])

    response = api.post(
        f"/api/v1/models/{scored_model.name}/predictions/", unlabelled(0, APPLICATIONS[0]), format="json"
    )

    assert response.status_code == 400
    assert "changed since it was registered" in response.json()["errors"][0]["message"]


def test_a_pipeline_fitted_on_a_dataframe_gets_its_own_column_names(api, ml_engineer):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "age": rng.integers(19, 75, 300),
            "credit_amount": rng.uniform(250, 20000, 300),
            "duration": rng.integers(4, 72, 300),
        }
    )
    target = np.where(frame["credit_amount"] / frame["duration"] < 300, "approve", "deny")
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(frame, target)
    content = skops_bytes(pipeline)
    model = MLModelFactory(name="frame-model", owner=ml_engineer)
    version = ModelVersion(
        model=model,
        number=1,
        stage=Stage.PRODUCTION,
        created_by=ml_engineer,
        artifact_sha256=hashlib.sha256(content).hexdigest(),
        artifact_size=len(content),
    )
    version.artifact.save("model.skops", ContentFile(content), save=False)
    version.save()

    response = api.post(f"/api/v1/models/{model.name}/predictions/", unlabelled(0, APPLICATIONS[1]), format="json")

    assert response.status_code == 201, response.json()
    expected = pipeline.predict_proba(pd.DataFrame([APPLICATIONS[1]])[list(frame.columns)])[0]
    assert Prediction.objects.get().confidence == pytest.approx(expected.max())


def test_scores_that_are_not_probabilities_send_the_case_to_review_saying_why_and_store_no_nan(
    scored_model, ml_engineer, monkeypatch
):
    answers = np.array([[math.nan, math.nan], [0.05, 0.95], [math.inf, 0.2], [1.2, -0.2]])

    class Broken:
        """An estimator whose probabilities are unusable for some rows (as a model fed a value it cannot handle)."""

        classes_ = np.array(["approve", "deny"])

        def predict_proba(self, matrix):
            return answers[: len(matrix)]

    monkeypatch.setattr(scoring, "load_trusted_model", lambda version: Broken())

    outcome = predictions_ingest(
        model=scored_model,
        items=[unlabelled(n, APPLICATIONS[n % 3]) for n in range(len(answers))],
        actor=ml_engineer,
    )

    assert outcome.created == 4
    stored = {p.external_id: p for p in Prediction.objects.all()}
    problems = {
        "application-0": "approve NaN, deny NaN",
        "application-2": "approve infinity, deny 0.20",
        "application-3": "approve 1.2, deny -0.2",
    }
    for external_id, given in problems.items():
        prediction = stored[external_id]
        assert prediction.route == Route.REVIEW
        assert prediction.confidence is None
        assert prediction.route_reasons[0] == (
            f"the model's scores for this case are not probabilities between 0 and 1 ({given}), "
            "so the case cannot be decided automatically"
        )
        assert ReviewTask.objects.filter(prediction=prediction).exists()
        assert not Decision.objects.filter(prediction=prediction).exists()
    # NaN and infinity are stored as null (a JSON column cannot hold them); other numbers as the model gave them.
    assert stored["application-0"].scores == {"approve": None, "deny": None}
    assert stored["application-2"].scores == {"approve": None, "deny": 0.2}
    assert stored["application-3"].scores == {"approve": 1.2, "deny": -0.2}
    # The label is the best usable score's, or the model's first class when none is usable.
    assert [stored[f"application-{n}"].predicted_label for n in (0, 2, 3)] == ["approve", "deny", "approve"]
    assert stored["application-1"].confidence == pytest.approx(0.95)
    assert stored["application-1"].route_reasons[0] == "confidence 0.95 meets the 0.80 auto-decide threshold"
    routed = DecisionEvent.objects.get(event_type="prediction.routed", object_id=str(stored["application-0"].pk))
    assert json.loads(routed.payload)["confidence"] is None


def test_score_batch_keeps_usable_rows_as_they_were(scored_model, monkeypatch):
    class Mixed:
        classes_ = np.array(["approve", "deny"])

        def predict_proba(self, matrix):
            return np.array([[0.5, 0.5], [0.1, math.nan]])

    monkeypatch.setattr(scoring, "load_trusted_model", lambda version: Mixed())
    version = ModelVersion.objects.get(model=scored_model)

    tie, half_broken = scoring.score_batch(model=scored_model, version=version, features=APPLICATIONS[:2])

    assert tie == scoring.Score(label="approve", confidence=0.5, scores={"approve": 0.5, "deny": 0.5})
    assert half_broken == scoring.Score(
        label="approve",
        confidence=None,
        scores={"approve": 0.1, "deny": None},
        confidence_problem="the model's scores for this case are not probabilities between 0 and 1 "
        "(approve 0.10, deny NaN)",
    )
