"""The API's error contract: JSON bodies with field-level messages, the right 4xx, and never a 500."""

import base64
import json

import pytest
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from hitl_platform.api.exceptions import api_exception_handler
from models_registry.models import MLModel
from tests.models_registry.factories import MLModelFactory, ModelVersionFactory

MODELS = "/api/v1/models/"


@pytest.fixture
def engineer_client(api_client_for, ml_engineer):
    return api_client_for(ml_engineer)


def test_a_validation_error_names_each_bad_field(engineer_client):
    response = engineer_client.post(MODELS, {"name": "Bad Name", "labels": "yes"}, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"name", "labels"}
    assert all(isinstance(messages, list) and messages for messages in body.values())


def test_no_token_is_a_401_that_says_how_to_authenticate(db):
    response = APIClient().get(MODELS)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_a_wrong_role_is_a_403(api_client_for, reviewer_a):
    response = api_client_for(reviewer_a).get(MODELS)
    assert response.status_code == 403
    assert response.json()["detail"]


def test_an_unknown_object_is_a_json_404(engineer_client):
    response = engineer_client.get(f"{MODELS}nothing-here/")
    assert response.status_code == 404
    assert response.json() == {"detail": "No model named 'nothing-here' that you can access."}


def test_a_method_the_endpoint_lacks_is_a_405_and_an_undeclared_one_is_refused(engineer_client, ml_engineer):
    MLModelFactory(name="credit", owner=ml_engineer)
    assert engineer_client.delete(f"{MODELS}credit/").status_code == 405
    assert engineer_client.put(f"{MODELS}credit/", {}, format="json").status_code == 405
    assert MLModel.objects.filter(name="credit").exists()


def test_an_unsupported_content_type_is_a_415(engineer_client):
    response = engineer_client.generic("POST", MODELS, "<model/>", content_type="application/xml")
    assert response.status_code == 415
    assert "Unsupported media type" in response.json()["detail"]


def test_a_body_over_the_limit_is_a_413(engineer_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = engineer_client.generic("POST", MODELS, json.dumps({"description": "x" * 2000}), "application/json")
    assert response.status_code == 413
    assert "larger than this server accepts" in response.json()["detail"]


def test_too_many_form_fields_is_a_400(engineer_client, settings, ml_engineer):
    MLModelFactory(name="credit", owner=ml_engineer)
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    fields = {f"field{i}": "x" for i in range(10)}
    response = engineer_client.post(f"{MODELS}credit/versions/", fields, format="multipart")
    assert response.status_code == 400
    assert "too many form fields" in response.json()["detail"]


def test_json_nested_deeper_than_python_recurses_is_a_400(engineer_client):
    response = engineer_client.generic("POST", MODELS, "[" * 50_000 + "]" * 50_000, "application/json")
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["detail"]


@pytest.mark.parametrize("cursor", ["bz14", "cD1hYmM%3D", "cD0xZTk5OQ%3D%3D"])
def test_a_forged_cursor_is_a_404_not_a_server_error(engineer_client, cursor):
    response = engineer_client.get(f"{MODELS}?cursor={cursor}")
    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid cursor"}


def test_a_cursor_position_beyond_any_id_is_answered_not_crashed(engineer_client, ml_engineer):
    MLModelFactory(owner=ml_engineer)
    huge = base64.b64encode(b"p=99999999999999999999999").decode()
    response = engineer_client.get(MODELS, {"cursor": huge})
    assert response.status_code == 200
    assert len(response.json()["results"]) == 1


def test_a_cursor_issued_by_the_api_pages_through_the_list(engineer_client, ml_engineer):
    for index in range(5):
        MLModelFactory(name=f"model-{index}", owner=ml_engineer)
    first = engineer_client.get(MODELS, {"page_size": 2}).json()
    second = engineer_client.get(first["next"]).json()
    names = [row["name"] for row in first["results"] + second["results"]]
    assert names == ["model-4", "model-3", "model-2", "model-1"]


def test_a_service_validation_error_becomes_field_errors():
    response = api_exception_handler(ValidationError({"labels": ["Fixed once the model has versions."]}), {})
    assert response.status_code == 400
    assert response.data == {"labels": ["Fixed once the model has versions."]}


def test_a_service_error_without_a_field_becomes_non_field_errors():
    response = api_exception_handler(ValidationError("Promotion request #3 was already approved."), {})
    assert response.status_code == 400
    assert response.data == {"non_field_errors": ["Promotion request #3 was already approved."]}


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/models/",
        "/api/v1/models/credit/",
        "/api/v1/models/credit/versions/",
        "/api/v1/models/credit/versions/1/",
        "/api/v1/models/credit/versions/1/promotion-requests/",
        "/api/v1/models/credit/predictions/",
        "/api/v1/decisions/",
        "/api/v1/webhooks/",
    ],
)
def test_options_describes_an_endpoint_instead_of_failing(api_client_for, ml_engineer, path):
    """Found by the probe: OPTIONS on the registry endpoints answered 500."""
    model = MLModelFactory(name="credit", owner=ml_engineer)
    ModelVersionFactory(model=model, number=1)

    response = api_client_for(ml_engineer).options(path)

    assert response.status_code == 200
    assert response.json()["name"]


@pytest.fixture
def openapi(db):
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def test_the_schema_documents_the_errors_every_operation_can_answer(openapi):
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            if path != "/api/v1/auth/token/":
                assert {"401", "403"} <= codes, (method, path)
            if "{" in path:
                assert "404" in codes, (method, path)
            if method in ("post", "put", "patch"):
                assert {"400", "413"} <= codes, (method, path)


def test_the_schema_says_which_inputs_refuse_unknown_fields(openapi):
    components = openapi["components"]["schemas"]
    for name in ("MLModelCreateRequest", "PredictionItemRequest", "WebhookRequest", "ExportRequest"):
        assert components[name]["additionalProperties"] is False, name


def test_an_export_download_says_what_it_is(openapi):
    download = openapi["paths"]["/api/v1/exports/{id}/download/"]["get"]["responses"]["200"]["content"]
    assert set(download) == {"text/csv", "application/json"}
