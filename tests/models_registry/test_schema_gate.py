"""A model file reaches staging or production only if it scores inputs of its model's feature schema.

What is knowable from the file alone (its feature count and names, its classes) is refused at registration;
what only scoring shows is caught by the ``schema_scoring`` gate, which scores a deterministic sample of inputs
built from the schema.
"""

import hashlib

import numpy as np
import pandas as pd
import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import connection
from sklearn.compose import make_column_transformer
from sklearn.ensemble import VotingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import LabelEncoder, OneHotEncoder, StandardScaler
from sklearn.svm import LinearSVC

from models_registry import scoring
from models_registry.choices import PromotionStatus, Stage
from models_registry.features import feature_sample, feature_validator
from models_registry.gates import promotion_gates_run
from models_registry.models import ModelVersion
from models_registry.services import PromotionBlocked, model_version_register, promotion_request_decide
from reviews.services.intake import predictions_ingest
from tests.audits.factories import BiasAuditFactory
from tests.models_registry.factories import (
    MLModelFactory,
    ModelVersionFactory,
    PromotionRequestFactory,
    skops_bytes,
    skops_upload,
)

LOAN_FEATURES = ["income", "age", "debt"]
LOAN_SCHEMA = {
    "type": "object",
    "properties": {
        "income": {"type": "number", "minimum": 0, "maximum": 250000},
        "age": {"type": "integer", "minimum": 18, "maximum": 100},
        "debt": {"type": "number", "minimum": 0},
    },
    "required": LOAN_FEATURES,
    "additionalProperties": False,
    "x-feature-order": LOAN_FEATURES,
}
REGION_SCHEMA = {
    "type": "object",
    "properties": {
        "income": {"type": "number", "minimum": 0, "maximum": 250000},
        "region": {"type": "string", "enum": ["north", "south", "west"]},
    },
    "required": ["income", "region"],
    "additionalProperties": False,
}


def loan_frame(columns: list[str], rows: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    values = {
        "income": rng.uniform(10000, 200000, rows),
        "age": rng.integers(18, 90, rows),
        "debt": rng.uniform(0, 50000, rows),
        "region": rng.choice(["north", "south"], rows),
    }
    return pd.DataFrame({name: values[name] for name in columns})


def loan_target(frame: pd.DataFrame) -> np.ndarray:
    return np.where(frame["income"] > 60000, "approve", "deny")


def loan_pipeline(columns: list[str], *, as_frame: bool):
    """A real scikit-learn pipeline over ``columns``, fitted on a DataFrame (named columns) or an array."""
    frame = loan_frame(columns)
    inputs = frame if as_frame else frame.to_numpy()
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(inputs, loan_target(frame))


@pytest.fixture
def loan_model(ml_engineer):
    return MLModelFactory(name="loans", owner=ml_engineer, feature_schema=LOAN_SCHEMA, sensitive_attributes=["sex"])


@pytest.fixture
def engineer_client(api_client_for, ml_engineer):
    return api_client_for(ml_engineer)


def register(client, model, estimator):
    return client.post(
        f"/api/v1/models/{model.name}/versions/",
        {"artifact": skops_upload(skops_bytes(estimator)), "metrics": '{"accuracy": 0.9}'},
        format="multipart",
    )


def stored_version(model, estimator, **fields) -> ModelVersion:
    """A version whose file is stored without registration's checks (as one registered before them was)."""
    content = skops_bytes(estimator)
    version = ModelVersionFactory(
        model=model, artifact_sha256=hashlib.sha256(content).hexdigest(), artifact_size=len(content), **fields
    )
    version.artifact.save("model.skops", ContentFile(content))
    return version


def schema_gate(version, target_stage):
    [result] = [
        r for r in promotion_gates_run(version=version, target_stage=target_stage) if r.name == "schema_scoring"
    ]
    return result


# Registration refuses what the file already shows.


def test_a_file_trained_on_two_features_is_refused_for_a_three_feature_schema(engineer_client, loan_model):
    response = register(engineer_client, loan_model, loan_pipeline(["income", "age"], as_frame=False))

    assert response.status_code == 400
    assert response.json()["artifact"] == [
        "The model file does not fit loans: the file expects 2 features, the schema has 3: income, age, debt."
    ]
    assert not ModelVersion.objects.exists()


def test_a_file_trained_on_other_column_names_is_refused_naming_both(engineer_client, loan_model):
    response = register(engineer_client, loan_model, loan_pipeline(["income", "age"], as_frame=True))

    assert response.status_code == 400
    assert response.json()["artifact"] == [
        "The model file does not fit loans: the file expects 2 features (income, age), "
        "the schema has 3: income, age, debt."
    ]


def test_a_file_trained_on_the_features_in_another_order_than_declared_is_refused(loan_model, ml_engineer):
    estimator = loan_pipeline(["age", "income", "debt"], as_frame=True)

    with pytest.raises(ValidationError) as error:
        model_version_register(model=loan_model, actor=ml_engineer, artifact=skops_upload(skops_bytes(estimator)))

    assert error.value.message_dict["artifact"] == [
        "The model file does not fit loans: the file was trained on the features in the order age, income, debt; "
        "the schema declares the order income, age, debt."
    ]
    assert not ModelVersion.objects.exists()


def test_a_file_trained_without_column_names_needs_the_schema_to_declare_their_order(engineer_client, ml_engineer):
    undeclared = {key: value for key, value in LOAN_SCHEMA.items() if key not in ("required", "x-feature-order")}
    model = MLModelFactory(name="unordered", owner=ml_engineer, feature_schema=undeclared)

    response = register(engineer_client, model, loan_pipeline(LOAN_FEATURES, as_frame=False))

    assert response.status_code == 400
    assert "the file was trained on 3 features without column names" in response.json()["artifact"][0]
    assert '"x-feature-order"' in response.json()["artifact"][0]


def test_a_file_that_gives_no_probabilities_is_refused(engineer_client, loan_model):
    frame = loan_frame(LOAN_FEATURES)

    response = register(engineer_client, loan_model, LinearSVC().fit(frame.to_numpy(), loan_target(frame)))

    assert response.status_code == 400
    assert "the file gives no probabilities" in response.json()["artifact"][0]


@pytest.mark.parametrize("as_frame", [False, True], ids=["array", "dataframe"])
def test_a_well_shaped_file_is_registered(engineer_client, loan_model, as_frame):
    response = register(engineer_client, loan_model, loan_pipeline(LOAN_FEATURES, as_frame=as_frame))

    assert response.status_code == 201, response.json()
    assert ModelVersion.objects.get(model=loan_model).artifact_sha256 == response.json()["artifact_sha256"]


# The gate scores the schema before staging and production.


def soft_voter_answering(labels: list[str]):
    """A fitted soft-voting classifier whose classes are the model's labels but whose answers are ``labels``.

    Registration sees ``classes_`` (approve, deny); only its predictions show the labels it really gives.
    """
    frame = loan_frame(LOAN_FEATURES)
    voter = VotingClassifier([("lr", LogisticRegression(max_iter=500))], voting="soft")
    voter.fit(frame, loan_target(frame))
    voter.le_ = LabelEncoder().fit(labels)
    return voter


@pytest.mark.parametrize("target", [Stage.STAGING, Stage.PRODUCTION])
def test_a_file_answering_labels_outside_the_label_set_is_blocked_with_its_evidence(
    loan_model, ml_engineer, compliance_officer, target
):
    version = model_version_register(
        model=loan_model,
        actor=ml_engineer,
        metrics={"accuracy": 0.9},
        artifact=skops_upload(skops_bytes(soft_voter_answering(["approve", "maybe"]))),
    )
    if target == Stage.PRODUCTION:
        version.stage = Stage.STAGING
        version.save(update_fields=["stage"])
        BiasAuditFactory(version=version)
    request = PromotionRequestFactory(version=version, requester=ml_engineer, target_stage=target)

    with pytest.raises(PromotionBlocked) as error:
        promotion_request_decide(promotion_request=request, actor=compliance_officer, approve=True, reason="Go.")

    assert "schema_scoring" in error.value.messages[0]
    request.refresh_from_db()
    assert request.status == PromotionStatus.PENDING
    [gate] = [result for result in request.gate_results if result["name"] == "schema_scoring"]
    assert gate["passed"] is False
    assert gate["evidence"]["problems"] == [
        "the file answered the sample inputs with labels that are not the model's labels: maybe (labels: approve, deny)"
    ]
    assert len(gate["evidence"]["sample"]) == 5
    assert gate["reason"].startswith("The model file does not score inputs of its feature schema: the file answered")


@pytest.mark.parametrize("target", [Stage.STAGING, Stage.PRODUCTION])
def test_a_file_that_never_saw_a_category_the_schema_allows_is_blocked(ml_engineer, target):
    model = MLModelFactory(name="regions", owner=ml_engineer, feature_schema=REGION_SCHEMA, sensitive_attributes=[])
    frame = loan_frame(["income", "region"])
    pipeline = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["region"]), (StandardScaler(), ["income"])),
        LogisticRegression(max_iter=500),
    ).fit(frame, loan_target(frame))
    version = model_version_register(model=model, actor=ml_engineer, artifact=skops_upload(skops_bytes(pipeline)))

    gate = schema_gate(version, target)

    assert gate.passed is False
    [problem] = gate.evidence["problems"]
    assert problem.startswith("scoring the sample inputs failed:")
    assert "west" in problem
    assert {row["region"] for row in gate.evidence["sample"]} == {"north", "south", "west"}


def test_a_file_whose_training_diverged_is_blocked_for_probabilities_that_are_not_finite(loan_model, ml_engineer):
    pipeline = loan_pipeline(LOAN_FEATURES, as_frame=True)
    pipeline[-1].coef_[:] = np.nan
    version = model_version_register(model=loan_model, actor=ml_engineer, artifact=skops_upload(skops_bytes(pipeline)))

    gate = schema_gate(version, Stage.PRODUCTION)

    assert gate.passed is False
    assert gate.evidence["problems"] == [
        "the file's probabilities are not all finite (sample input 1: approve NaN, deny NaN)"
    ]


def test_a_file_registered_before_the_checks_is_blocked_naming_the_feature_counts(loan_model):
    version = stored_version(loan_model, loan_pipeline(["income", "age"], as_frame=False), stage=Stage.STAGING)

    gate = schema_gate(version, Stage.PRODUCTION)

    assert gate.passed is False
    assert gate.evidence["problems"] == ["the file expects 2 features, the schema has 3: income, age, debt"]
    assert "the file expects 2 features, the schema has 3: income, age, debt" in gate.reason


def test_probabilities_that_do_not_sum_to_one_are_blocked(loan_model, ml_engineer, monkeypatch):
    version = model_version_register(
        model=loan_model,
        actor=ml_engineer,
        artifact=skops_upload(skops_bytes(loan_pipeline(LOAN_FEATURES, as_frame=True))),
    )
    real = scoring.load_trusted_model(version)

    class Unnormalised:
        classes_ = real.classes_
        feature_names_in_ = real.feature_names_in_
        n_features_in_ = real.n_features_in_

        def predict(self, matrix):
            return real.predict(matrix)

        def predict_proba(self, matrix):
            return real.predict_proba(matrix) * 0.9

    monkeypatch.setattr(scoring, "load_trusted_model", lambda version: Unnormalised())

    gate = schema_gate(version, Stage.STAGING)

    assert gate.passed is False
    [problem] = gate.evidence["problems"]
    assert problem == "the file's probabilities for sample input 1 sum to 0.9, not 1"


@pytest.mark.parametrize("as_frame", [False, True], ids=["array", "dataframe"])
def test_a_well_shaped_file_passes_the_gate_and_reaches_production(
    loan_model, ml_engineer, compliance_officer, as_frame
):
    estimator = loan_pipeline(LOAN_FEATURES, as_frame=as_frame)
    version = model_version_register(
        model=loan_model, actor=ml_engineer, metrics={"accuracy": 0.9}, artifact=skops_upload(skops_bytes(estimator))
    )
    BiasAuditFactory(version=version)
    request = PromotionRequestFactory(version=version, requester=ml_engineer, target_stage=Stage.PRODUCTION)

    promotion_request_decide(promotion_request=request, actor=compliance_officer, approve=True, reason="Go.")

    version.refresh_from_db()
    assert version.stage == Stage.PRODUCTION
    request.refresh_from_db()
    [gate] = [result for result in request.gate_results if result["name"] == "schema_scoring"]
    assert gate["passed"] is True
    assert gate["evidence"]["sample"] == feature_sample(LOAN_SCHEMA)


def test_the_gate_does_not_concern_other_targets_nor_versions_scored_by_their_caller(loan_model):
    without_file = ModelVersionFactory(model=loan_model)
    broken = stored_version(loan_model, loan_pipeline(["income", "age"], as_frame=False))

    assert schema_gate(without_file, Stage.PRODUCTION).passed
    assert schema_gate(broken, Stage.ARCHIVED).passed


def test_the_api_shows_the_gates_evidence(engineer_client, loan_model, ml_engineer, compliance_officer):
    version = stored_version(loan_model, loan_pipeline(["income", "age"], as_frame=False))
    request = PromotionRequestFactory(version=version, requester=ml_engineer, target_stage=Stage.STAGING)
    with pytest.raises(PromotionBlocked):
        promotion_request_decide(promotion_request=request, actor=compliance_officer, approve=True, reason="Go.")

    body = engineer_client.get(f"/api/v1/promotion-requests/{request.pk}/").json()

    [gate] = [result for result in body["gate_results"] if result["name"] == "schema_scoring"]
    assert gate["evidence"]["problems"] == ["the file expects 2 features, the schema has 3: income, age, debt"]


# The sample


def test_the_sample_is_deterministic_accepted_by_its_schema_and_uses_declared_examples():
    schema = {
        **LOAN_SCHEMA,
        "properties": {**LOAN_SCHEMA["properties"], "debt": {"type": "number", "minimum": 0, "examples": [0, 1500.5]}},
    }

    sample = feature_sample(schema)

    assert sample == feature_sample(schema)
    assert len(sample) == 5
    validator = feature_validator(model_id=0, schema=schema)
    assert all(not list(validator.problems(row)) for row in sample)
    assert [row["debt"] for row in sample] == [0, 1500.5, 0, 1500.5, 0]
    assert all(18 <= row["age"] <= 100 and isinstance(row["age"], int) for row in sample)


# Intake


def test_intake_scores_before_it_opens_the_write_transaction(ml_engineer, monkeypatch):
    model = MLModelFactory(name="credit-hosted", owner=ml_engineer)
    ModelVersionFactory(model=model, number=1, stage=Stage.PRODUCTION, with_artifact=True)
    outside = len(connection.atomic_blocks)
    depths = []
    real_score_batch = scoring.score_batch

    def recording_score_batch(**kwargs):
        depths.append(len(connection.atomic_blocks))
        return real_score_batch(**kwargs)

    monkeypatch.setattr("reviews.services.intake.score_batch", recording_score_batch)

    outcome = predictions_ingest(
        model=model,
        items=[{"external_id": "a-1", "features": {"credit_amount": 1200.0, "duration": 36, "age": 30}}],
        actor=ml_engineer,
    )

    assert outcome.created == 1
    assert depths == [outside]
