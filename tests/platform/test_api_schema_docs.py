"""The API's OpenAPI schema reads as documentation: what an ML engineer sees at /api/v1/docs/."""

import json
import re

import pytest
from django.conf import settings
from django.urls import resolve
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

from hitl_platform.api.pagination import StandardCursorPagination
from tests.models_registry.factories import MLModelFactory

DECLARED_TAGS = {tag["name"] for tag in settings.SPECTACULAR_SETTINGS["TAGS"]}
VERSION_UPLOAD = "/api/v1/models/{name}/versions/"


def generate_schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


@pytest.fixture
def openapi(db):
    return generate_schema()


def operations(openapi: dict):
    for path, methods in openapi["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def component(openapi: dict, reference: dict) -> dict:
    return openapi["components"]["schemas"][reference["$ref"].rsplit("/", 1)[-1]]


def test_generating_the_schema_emits_no_warning_or_error(db):
    GENERATOR_STATS.reset()

    schema = generate_schema()

    assert not GENERATOR_STATS._warn_cache, list(GENERATOR_STATS._warn_cache)
    assert not GENERATOR_STATS._error_cache, list(GENERATOR_STATS._error_cache)
    validate_schema(schema)


def test_every_operation_has_a_summary_a_description_and_one_declared_tag(openapi):
    for path, method, operation in operations(openapi):
        where = f"{method.upper()} {path}"
        assert operation.get("summary", "").strip(), where
        assert len(operation.get("description", "")) > len(operation["summary"]), where
        assert len(operation.get("tags", [])) == 1, where
        assert operation["tags"][0] in DECLARED_TAGS, where


def test_every_declared_tag_is_described_and_used(openapi):
    used = {operation["tags"][0] for _, _, operation in operations(openapi)}
    assert {tag["name"] for tag in openapi["tags"]} == used
    for tag in openapi["tags"]:
        assert tag["description"].strip(), tag["name"]


def test_component_names_do_not_repeat_a_suffix(openapi):
    for name in openapi["components"]["schemas"]:
        assert "RequestRequest" not in name, name
        assert not name.endswith(("InputRequest", "OutputRequest", "Serializer")), name
        assert not re.search(r"(Input|Output)(List)?$", name), name


def test_the_version_upload_documents_metrics_as_a_json_string_and_the_file_as_binary(openapi):
    multipart = openapi["paths"][VERSION_UPLOAD]["post"]["requestBody"]["content"]["multipart/form-data"]
    fields = component(openapi, multipart["schema"])["properties"]

    assert fields["artifact"] == {**fields["artifact"], "type": "string", "format": "binary"}
    assert fields["metrics"]["type"] == "string"
    assert "JSON" in fields["metrics"]["description"]
    assert isinstance(json.loads(fields["metrics"]["example"]), dict)
    example = next(iter(multipart["examples"].values()))["value"]
    assert isinstance(json.loads(example["metrics"]), dict)


def test_the_version_upload_as_json_takes_metrics_as_an_object_and_no_file(openapi):
    body = openapi["paths"][VERSION_UPLOAD]["post"]["requestBody"]["content"]["application/json"]
    fields = component(openapi, body["schema"])["properties"]

    assert fields["metrics"]["type"] == "object"
    assert "artifact" not in fields


def test_the_documented_multipart_metrics_string_registers_a_version(openapi, api_client_for, ml_engineer):
    fields = component(
        openapi,
        openapi["paths"][VERSION_UPLOAD]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"],
    )["properties"]
    MLModelFactory(name="credit", owner=ml_engineer)

    response = api_client_for(ml_engineer).post(
        "/api/v1/models/credit/versions/", {"metrics": fields["metrics"]["example"]}, format="multipart"
    )

    assert response.status_code == 201, response.json()
    assert response.json()["metrics"] == json.loads(fields["metrics"]["example"])


def test_the_security_schemes_describe_both_authorization_forms(openapi):
    schemes = openapi["components"]["securitySchemes"]
    token, bearer = schemes["tokenAuth"], schemes["bearerAuth"]

    assert (token["type"], token["in"], token["name"]) == ("apiKey", "header", "Authorization")
    assert "Authorization: Token <token>" in token["description"]
    assert (bearer["type"], bearer["scheme"]) == ("http", "bearer")
    assert "Authorization: Bearer <token>" in bearer["description"]


def test_an_operation_that_needs_a_token_accepts_either_form(openapi):
    security = openapi["paths"]["/api/v1/models/"]["get"]["security"]

    assert {"tokenAuth": []} in security
    assert {"bearerAuth": []} in security


def list_operations(openapi: dict):
    for path, _method, operation in operations(openapi):
        body = operation["responses"].get("200", {}).get("content", {}).get("application/json", {})
        if body.get("schema", {}).get("$ref", "").endswith("List"):
            yield path, operation


def test_every_list_is_a_cursor_page_with_a_bounded_page_size(openapi):
    lists = list(list_operations(openapi))
    assert len(lists) >= 9
    for path, operation in lists:
        view = resolve(re.sub(r"\{[^}]+\}", "1", path)).func.cls
        assert issubclass(view.pagination_class, StandardCursorPagination), path
        parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}
        assert "cursor" in parameters, path
        page_size = parameters["page_size"]
        assert page_size["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, path
        assert "1 to 1000" in page_size["description"], path
        assert set(
            component(openapi, operation["responses"]["200"]["content"]["application/json"]["schema"])["properties"]
        ) == {"next", "previous", "results"}, path


@pytest.mark.parametrize("page_size", ["0", "1001", "abc", "-5", "1.5", "²"])
def test_a_page_size_outside_its_bounds_is_refused(api_client_for, ml_engineer, page_size):
    response = api_client_for(ml_engineer).get("/api/v1/models/", {"page_size": page_size})

    assert response.status_code == 400
    assert response.json() == {"page_size": ["Give a whole number from 1 to 1000."]}


def test_a_page_size_within_its_bounds_sizes_the_page(api_client_for, ml_engineer):
    for index in range(3):
        MLModelFactory(name=f"model-{index}", owner=ml_engineer)

    page = api_client_for(ml_engineer).get("/api/v1/models/", {"page_size": "1000"}).json()
    first = api_client_for(ml_engineer).get("/api/v1/models/", {"page_size": "2"}).json()

    assert len(page["results"]) == 3
    assert len(first["results"]) == 2
    assert first["next"]
