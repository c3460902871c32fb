"""Bad input to the intake API: always a 4xx that says what is wrong, and nothing stored."""

import json

import pytest

from audits.models import DecisionEvent
from models_registry.choices import Stage
from models_registry.models import MLModel
from reviews.models import Decision, Prediction, ReviewTask
from tests.models_registry.factories import MLModelFactory, ModelVersionFactory

URL = "/api/v1/models/credit-scoring/predictions/"


@pytest.fixture
def api(api_client_for, ml_engineer):
    model = MLModelFactory(name="credit-scoring", owner=ml_engineer)
    ModelVersionFactory(model=model, number=1, stage=Stage.PRODUCTION)
    return api_client_for(ml_engineer)


def good(external_id: str = "application-1", **changes) -> dict:
    item = {
        "external_id": external_id,
        "features": {"credit_amount": 4200.0, "duration": 24, "age": 41},
        "attributes": {"sex": "female"},
        "label": "approve",
        "confidence": 0.9,
    }
    item.update(changes)
    return item


def without(field: str) -> dict:
    item = good()
    del item[field]
    return item


BAD_ITEMS = [
    ("missing external_id", without("external_id"), "external_id", "This field is required"),
    ("missing features", without("features"), "features", "This field is required"),
    ("external_id a number", good(external_id=42), "external_id", "non-empty string"),
    ("external_id blank", good(external_id="  "), "external_id", "non-empty string"),
    ("external_id too long", good(external_id="x" * 201), "external_id", "at most 200"),
    ("features a list", good(features=[4200, 24, 41]), "features", "JSON object"),
    (
        "feature of the wrong type",
        good(features={"credit_amount": "lots", "duration": 24, "age": 41}),
        "features.credit_amount",
        "is not of type 'number'",
    ),
    (
        "feature below its minimum",
        good(features={"credit_amount": 100, "duration": 24, "age": 12}),
        "features.age",
        "less than the minimum of 18",
    ),
    ("feature missing", good(features={"credit_amount": 100, "duration": 24}), "features", "'age' is a required"),
    (
        "feature not in the schema",
        good(features={"credit_amount": 1, "duration": 2, "age": 30, "zip": "1"}),
        "features",
        "Additional properties",
    ),
    ("unknown label", good(label="maybe"), "label", "Unknown label 'maybe'"),
    ("label a number", good(label=1), "label", "Unknown label 1"),
    ("confidence above 1", good(confidence=1.2), "confidence", "between 0 and 1"),
    ("confidence below 0", good(confidence=-0.1), "confidence", "between 0 and 1"),
    ("confidence a string", good(confidence="0.9"), "confidence", "between 0 and 1"),
    ("confidence a boolean", good(confidence=True), "confidence", "between 0 and 1"),
    ("confidence without label", without("label"), "confidence", "needs a label"),
    ("scores with an unknown label", good(scores={"approve": 0.9, "maybe": 0.1}), "scores", "Not labels"),
    ("scores out of range", good(scores={"approve": 1.9}), "scores", "between 0 and 1"),
    ("scores a list", good(scores=[0.9, 0.1]), "scores", "JSON object"),
    ("attributes a string", good(attributes="female"), "attributes", "JSON object"),
    ("attribute not declared", good(attributes={"religion": "x"}), "attributes", "Not sensitive attributes"),
    ("attribute nested", good(attributes={"sex": {"value": "f"}}), "attributes", "string, a number"),
    ("version zero", good(version=0), "version", "whole number"),
    ("version a string", good(version="v1"), "version", "whole number"),
    ("unknown field", good(confidance=0.9), "confidance", "Unknown field"),
]


def assert_nothing_stored():
    assert not Prediction.objects.exists()
    assert not Decision.objects.exists()
    assert not ReviewTask.objects.exists()
    assert not DecisionEvent.objects.filter(event_type__in=["prediction.routed", "decision.made"]).exists()


@pytest.mark.parametrize(("case", "bad", "field", "message"), BAD_ITEMS, ids=[row[0] for row in BAD_ITEMS])
def test_a_bad_item_in_a_batch_is_a_400_naming_its_index_and_field(api, case, bad, field, message):
    response = api.post(URL, {"predictions": [good("fine-1"), bad, good("fine-2")]}, format="json")

    assert response.status_code == 400, response.json()
    errors = response.json()["errors"]
    assert any(e["index"] == 1 and e["field"] == field and message in e["message"] for e in errors), errors
    assert all(e["index"] == 1 for e in errors)
    assert_nothing_stored()


@pytest.mark.parametrize(("case", "bad", "field", "message"), BAD_ITEMS[:6], ids=[row[0] for row in BAD_ITEMS[:6]])
def test_a_bad_single_item_is_a_400_too(api, case, bad, field, message):
    response = api.post(URL, bad, format="json")

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
    assert_nothing_stored()


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ("{not json", "application/json", 400),
        ('{"predictions": [', "application/json", 400),
        ('{"external_id": "a", "features": {"credit_amount": NaN}}', "application/json", 400),
        ("external_id=a", "application/x-www-form-urlencoded", 415),
        ("[1, 2]", "application/json", 400),
        ('"a string"', "application/json", 400),
        ('{"predictions": {"external_id": "a"}}', "application/json", 400),
        ('{"predictions": [], "extra": 1}', "application/json", 400),
        ('{"predictions": []}', "application/json", 400),
        ('{"predictions": [1, "two", null]}', "application/json", 400),
        ('{"features": ' * 50_000, "application/json", 400),
    ],
    ids=[
        "truncated object",
        "truncated batch",
        "NaN",
        "form-encoded",
        "a list",
        "a string",
        "predictions not a list",
        "extra top-level key",
        "empty batch",
        "items not objects",
        "nested too deeply",
    ],
)
def test_a_body_that_is_not_a_prediction_or_a_batch_is_refused(api, body, content_type, status):
    response = api.generic("POST", URL, body, content_type=content_type)

    assert response.status_code == status
    assert "detail" in response.json()
    assert_nothing_stored()


def test_a_batch_of_5001_items_is_refused_without_storing_any(api):
    items = [good(f"application-{n}") for n in range(5001)]

    response = api.generic("POST", URL, json.dumps({"predictions": items}), content_type="application/json")

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {
            "index": None,
            "field": "predictions",
            "message": "Send at most 5,000 predictions per request; this one has 5,001.",
        }
    ]
    assert_nothing_stored()


def test_a_repeated_external_id_within_one_batch_is_refused(api):
    response = api.post(URL, {"predictions": [good("a"), good("b"), good("a")]}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"index": 2, "field": "external_id", "message": "Repeats the external_id of item 0 of this batch."}
    ]
    assert_nothing_stored()


def test_every_error_of_every_item_is_listed_at_once(api):
    items = [good("a", confidence=2), good(7, label="maybe"), good("c")]

    response = api.post(URL, {"predictions": items}, format="json")

    fields = [(e["index"], e["field"]) for e in response.json()["errors"]]
    assert fields == [(0, "confidence"), (1, "external_id"), (1, "label")]
    assert response.json()["detail"] == "2 of 3 predictions are invalid; nothing was stored."


@pytest.fixture
def open_schema_api(api_client_for, ml_engineer):
    """A model whose schema accepts any feature, so only the value itself can be refused."""
    model = MLModelFactory(name="open-model", owner=ml_engineer, feature_schema={"type": "object"})
    ModelVersionFactory(model=model, number=1, stage=Stage.PRODUCTION)
    return api_client_for(ml_engineer)


UNSTORABLE = [
    ("lone surrogate in the external id", '"external_id": "a\\ud800", "features": {}', "external_id"),
    ("NUL in the external id", '"external_id": "a\\u0000b", "features": {}', "external_id"),
    ("lone surrogate in a feature", '"external_id": "a", "features": {"note": "x\\udfff"}', "features"),
    ("lone surrogate in a feature name", '"external_id": "a", "features": {"\\ud800": 1}', "features"),
    ("NUL in a feature", '"external_id": "a", "features": {"note": "x\\u0000"}', "features"),
    ("1e400 in a feature", '"external_id": "a", "features": {"amount": 1e400}', "features"),
    (
        "lone surrogate in an attribute",
        '"external_id": "a", "features": {}, "attributes": {"sex": "\\ud800"}',
        "attributes",
    ),
    (
        "1e400 in the explanation",
        '"external_id": "a", "features": {}, "explanation": {"amount": -1e400}',
        "explanation",
    ),
    ("NUL in the explanation", '"external_id": "a", "features": {}, "explanation": "why\\u0000"', "explanation"),
]


@pytest.mark.parametrize(("case", "body", "field"), UNSTORABLE, ids=[row[0] for row in UNSTORABLE])
def test_values_a_database_cannot_store_are_a_400_naming_the_field(open_schema_api, case, body, field):
    """Found by the probe: these answered 500 (or, NUL on SQLite, were stored and would fail on PostgreSQL)."""
    model = MLModel.objects.get(name="open-model")
    model.sensitive_attributes = ["sex"]
    model.save(update_fields=["sensitive_attributes"])
    raw = '{"label": "approve", "confidence": 0.9, ' + body + "}"

    response = open_schema_api.generic(
        "POST", "/api/v1/models/open-model/predictions/", raw, content_type="application/json"
    )

    assert response.status_code == 400, response.content
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert not Prediction.objects.exists()


def test_an_unknown_field_named_with_a_lone_surrogate_is_named_escaped(open_schema_api):
    raw = '{"external_id": "a", "features": {}, "label": "approve", "\\ud800": 1}'

    response = open_schema_api.generic(
        "POST", "/api/v1/models/open-model/predictions/", raw, content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "\\ud800"


@pytest.mark.parametrize(
    ("features", "field"),
    [
        ({"sex": "female"}, "features.sex"),
        ({" Sex ": "female"}, "features. Sex "),
        ({"applicant": {"AGE_BAND": "18-24"}}, "features.applicant.AGE_BAND"),
        ({"people": [{"age band": "18-24"}]}, "features.people.0.age band"),
    ],
)
def test_a_feature_named_like_a_sensitive_attribute_is_refused(open_schema_api, features, field):
    """Sensitive attributes travel apart, in 'attributes': a feature would show them to every reviewer."""
    model = MLModel.objects.get(name="open-model")
    model.sensitive_attributes = ["sex", "age_band"]
    model.save(update_fields=["sensitive_attributes"])
    item = {"external_id": "a", "features": features, "label": "approve", "confidence": 0.9}

    response = open_schema_api.post("/api/v1/models/open-model/predictions/", item, format="json")

    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert not Prediction.objects.exists()
