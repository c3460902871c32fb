"""Bad requests to the registry API: every one is answered 4xx with a reason, none is a 500, nothing is stored."""

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from audits.models import DecisionEvent
from models_registry.models import MLModel, ModelVersion, PromotionRequest
from tests.models_registry.factories import CREDIT_FEATURE_SCHEMA, MLModelFactory, ModelVersionFactory

MODELS = "/api/v1/models/"
VERSIONS = "/api/v1/models/credit/versions/"
PROMOTIONS = "/api/v1/models/credit/versions/1/promotion-requests/"
VALID_MODEL = {
    "name": "new-model",
    "task": "binary",
    "labels": ["approve", "deny"],
    "positive_label": "approve",
    "feature_schema": CREDIT_FEATURE_SCHEMA,
}


@dataclass(frozen=True)
class BadRequest:
    method: str
    url: str
    json: Any = None
    raw: bytes | None = None
    content_type: str = "application/json"
    multipart: dict | None = None
    expected: int = 400
    error_field: str | None = None
    settings: dict = dataclasses.field(default_factory=dict)


def model(**changes) -> dict:
    return {**VALID_MODEL, **changes}


CASES = {
    "json that does not parse": BadRequest("POST", MODELS, raw=b'{"name": '),
    "a json array instead of an object": BadRequest("POST", MODELS, raw=b"[]"),
    "a json string instead of an object": BadRequest("POST", MODELS, raw=b'"credit"'),
    "json null": BadRequest("POST", MODELS, raw=b"null"),
    "not utf-8": BadRequest("POST", MODELS, raw=b'{"name": "\xff\xfe"}'),
    "json nested 100,000 deep": BadRequest("POST", MODELS, raw=b"[" * 100_000 + b"]" * 100_000),
    "plain text content type": BadRequest("POST", MODELS, raw=b"name=credit", content_type="text/plain", expected=415),
    "xml content type": BadRequest("POST", MODELS, raw=b"<model/>", content_type="application/xml", expected=415),
    "a body over the upload limit": BadRequest(
        "POST", MODELS, json=model(description="x" * 5000), expected=413, settings={"DATA_UPLOAD_MAX_MEMORY_SIZE": 2000}
    ),
    "an unknown field": BadRequest("POST", MODELS, json=model(colour="red"), error_field="colour"),
    "a name that is not a slug": BadRequest("POST", MODELS, json=model(name="Credit Scoring!"), error_field="name"),
    "a name too long": BadRequest("POST", MODELS, json=model(name="m" * 101), error_field="name"),
    "a name given as a number": BadRequest("POST", MODELS, json=model(name=12345), error_field="name"),
    "a name that already exists": BadRequest("POST", MODELS, json=model(name="credit"), error_field="name"),
    "labels as one string": BadRequest("POST", MODELS, json=model(labels="approve,deny"), error_field="labels"),
    "labels as numbers": BadRequest("POST", MODELS, json=model(labels=[0, 1], positive_label=""), error_field="labels"),
    "repeated labels": BadRequest("POST", MODELS, json=model(labels=["approve", "approve"]), error_field="labels"),
    "no labels": BadRequest("POST", MODELS, json=model(labels=[], positive_label=""), error_field="labels"),
    "three labels for a binary task": BadRequest(
        "POST", MODELS, json=model(labels=["approve", "deny", "refer"]), error_field="labels"
    ),
    "a positive label outside the labels": BadRequest(
        "POST", MODELS, json=model(positive_label="maybe"), error_field="positive_label"
    ),
    "an invalid JSON Schema": BadRequest(
        "POST", MODELS, json=model(feature_schema={"type": "whole number"}), error_field="feature_schema"
    ),
    "a feature schema that is a list": BadRequest(
        "POST", MODELS, json=model(feature_schema=[1, 2]), error_field="feature_schema"
    ),
    "a feature schema holding infinity": BadRequest(
        "POST",
        MODELS,
        raw=json.dumps(model(feature_schema={"type": "object", "maxProperties": 1})).replace("1}", "1e400}").encode(),
        error_field="feature_schema",
    ),
    "a NaN literal": BadRequest("POST", MODELS, raw=json.dumps(model()).replace('"binary"', "NaN").encode()),
    "a NUL character in a schema": BadRequest(
        "POST", MODELS, json=model(feature_schema={"type": "object", "title": "a\u0000b"}), error_field="feature_schema"
    ),
    "a NUL character in the description": BadRequest(
        "POST", MODELS, json=model(description="a\u0000b"), error_field="description"
    ),
    "an unpaired surrogate": BadRequest(
        "POST",
        MODELS,
        raw=json.dumps(model(description="x")).replace('"x"', '"\\ud800"').encode(),
        error_field="description",
    ),
    "a sensitive attribute that is null": BadRequest(
        "POST", MODELS, json=model(sensitive_attributes=[None]), error_field="sensitive_attributes"
    ),
    "an unknown risk tier": BadRequest("POST", MODELS, json=model(risk_tier="extreme"), error_field="risk_tier"),
    "a task given as an object": BadRequest("POST", MODELS, json=model(task={"kind": "binary"}), error_field="task"),
    "a patch of the name": BadRequest("PATCH", f"{MODELS}credit/", json={"name": "renamed"}, error_field="name"),
    "a patch of the owner": BadRequest("PATCH", f"{MODELS}credit/", json={"owner": "oscar_ml"}, error_field="owner"),
    "a patch emptying the labels": BadRequest("PATCH", f"{MODELS}credit/", json={"labels": []}, error_field="labels"),
    "a patch with a json list": BadRequest("PATCH", f"{MODELS}credit/", raw=b'[{"risk_tier": "low"}]'),
    "metrics that are not json": BadRequest(
        "POST", VERSIONS, multipart={"metrics": "{accuracy: 0.9"}, error_field="metrics"
    ),
    "metrics that are a json list": BadRequest("POST", VERSIONS, multipart={"metrics": "[0.9]"}, error_field="metrics"),
    "metrics holding NaN": BadRequest("POST", VERSIONS, multipart={"metrics": '{"f1": NaN}'}, error_field="metrics"),
    "metrics holding a NUL": BadRequest("POST", VERSIONS, json={"metrics": {"f1\u0000": 0.9}}, error_field="metrics"),
    "a parent version that is not a number": BadRequest(
        "POST", VERSIONS, multipart={"parent_version": "latest"}, error_field="parent_version"
    ),
    "a parent version of zero": BadRequest("POST", VERSIONS, json={"parent_version": 0}, error_field="parent_version"),
    "a parent version beyond any integer column": BadRequest(
        "POST", VERSIONS, json={"parent_version": 10**30}, error_field="parent_version"
    ),
    "a parent version that does not exist": BadRequest(
        "POST", VERSIONS, json={"parent_version": 99, "metrics": {"f1": 0.8}}, error_field="parent_version"
    ),
    "an upload larger than any model file may be": BadRequest(
        "POST",
        VERSIONS,
        multipart={"artifact": SimpleUploadedFile("model.skops", b"PK" + b"\x00" * 5000)},
        expected=413,
        settings={"MODEL_FILE_MAX_BYTES": 1000, "DATA_UPLOAD_MAX_MEMORY_SIZE": 1000},
    ),
    "an artifact sent as text": BadRequest(
        "POST", VERSIONS, multipart={"artifact": "model.skops"}, error_field="artifact"
    ),
    "an empty artifact": BadRequest(
        "POST", VERSIONS, multipart={"artifact": SimpleUploadedFile("model.skops", b"")}, error_field="artifact"
    ),
    "an unknown multipart field": BadRequest(
        "POST", VERSIONS, multipart={"model_file": SimpleUploadedFile("model.skops", b"PK")}, error_field="model_file"
    ),
    "a broken multipart body": BadRequest(
        "POST", VERSIONS, raw=b"--xx\r\nbroken", content_type="multipart/form-data; boundary=yy"
    ),
    "a version with neither file nor metrics": BadRequest("POST", VERSIONS, json={"description": "Nothing."}),
    "a multipart body without a boundary": BadRequest(
        "POST", VERSIONS, raw=b"metrics={}", content_type="multipart/form-data"
    ),
    "an unknown target stage": BadRequest(
        "POST", PROMOTIONS, json={"target_stage": "live", "rationale": "Go."}, error_field="target_stage"
    ),
    "a target stage that is no promotion": BadRequest(
        "POST", PROMOTIONS, json={"target_stage": "candidate", "rationale": "Go."}, error_field="target_stage"
    ),
    "a missing rationale": BadRequest("POST", PROMOTIONS, json={"target_stage": "production"}, error_field="rationale"),
    "a blank rationale": BadRequest(
        "POST", PROMOTIONS, json={"target_stage": "production", "rationale": "   "}, error_field="rationale"
    ),
    "a rationale given as a number": BadRequest(
        "POST", PROMOTIONS, json={"target_stage": "production", "rationale": 42}, error_field="rationale"
    ),
    "a request that tries to approve itself": BadRequest(
        "POST",
        PROMOTIONS,
        json={"target_stage": "production", "rationale": "Go.", "status": "approved"},
        error_field="status",
    ),
    "a version number beyond any integer column": BadRequest(
        "GET", f"{VERSIONS}99999999999999999999999/", expected=404
    ),
    "a cursor with a bad offset": BadRequest("GET", f"{MODELS}?cursor=bz14", expected=404),
    "a cursor with a position that is not an id": BadRequest("GET", f"{MODELS}?cursor=cD1hYmM%3D", expected=404),
    "a method the endpoint does not have": BadRequest("DELETE", f"{MODELS}credit/", expected=405),
}


def stored_rows() -> tuple[int, ...]:
    return (
        MLModel.objects.count(),
        MLModel.history.count(),
        ModelVersion.objects.count(),
        ModelVersion.history.count(),
        PromotionRequest.objects.count(),
        PromotionRequest.history.count(),
        DecisionEvent.objects.count(),
    )


def send(client, case: BadRequest):
    if case.multipart is not None:
        return client.post(case.url, case.multipart, format="multipart")
    if case.raw is not None:
        return client.generic(case.method, case.url, case.raw, content_type=case.content_type)
    if case.json is not None:
        return client.generic(case.method, case.url, json.dumps(case.json), content_type=case.content_type)
    return client.generic(case.method, case.url)


def test_the_table_holds_at_least_twenty_bad_requests():
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_bad_request_is_refused_with_a_reason_and_stores_nothing(api_client_for, ml_engineer, settings, case):
    credit = MLModelFactory(name="credit", owner=ml_engineer)
    ModelVersionFactory(model=credit, number=1)
    for name, value in case.settings.items():
        setattr(settings, name, value)
    client = api_client_for(ml_engineer)
    before = stored_rows()

    response = send(client, case)

    assert response.status_code == case.expected, response.content[:500]
    body = response.json()
    assert body, "a refusal always says why"
    if case.error_field:
        assert case.error_field in body, body
    assert stored_rows() == before
