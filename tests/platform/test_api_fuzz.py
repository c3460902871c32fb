"""The OpenAPI schema tells the truth: schemathesis generates requests from it for every operation, as an ML
engineer and as a compliance officer, and fails on any server error, undocumented status, wrong content type or
response that does not match its documented schema.

Each operation is exercised twice: with the path parameters schemathesis makes up (mostly unknown names and ids:
the 404s must be documented too) and with the names and ids of real records, so bodies and queries reach the
services. The number of examples is bounded so the suite stays short; raise FUZZ_EXAMPLES locally to dig deeper.
"""

import os

import pytest
import schemathesis
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from knox.models import AuthToken
from schemathesis import GenerationMode

from audits.services.exports import export_request
from hitl_platform.roles import Role
from models_registry.choices import Stage
from models_registry.models import MLModel
from reviews.models import Webhook
from tests.factories import UserFactory
from tests.models_registry.factories import MLModelFactory, ModelVersionFactory, PromotionRequestFactory
from tests.reviews.factories import DecisionFactory, PredictionFactory

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
CHECKS = (
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
)


# Valid requests with made-up and with real path parameters, then invalid ones (wrong types, missing fields,
# out-of-range values) against real records: every one must be answered as documented, never with a 500.
VARIANTS = (
    (GenerationMode.POSITIVE, False),
    (GenerationMode.POSITIVE, True),
    (GenerationMode.NEGATIVE, True),
)


@pytest.fixture(autouse=True)
def connection_kept_between_requests():
    """The WSGI application closes the database connection after each request (``close_old_connections``),
    which would end the test's transaction on PostgreSQL; Django's own test client unhooks it the same way."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def records(db):
    """A model with versions, a pending promotion request, a decided case and a webhook, all of one engineer."""
    owner = UserFactory(username="fuzz_owner", roles=[Role.ML_ENGINEER])
    model = MLModelFactory(name="credit-scoring", owner=owner)
    version = ModelVersionFactory(model=model, number=1, stage=Stage.PRODUCTION)
    request = PromotionRequestFactory(version=ModelVersionFactory(model=model, number=2))
    decision = DecisionFactory(prediction=PredictionFactory(version=version, model=model))
    webhook = Webhook.objects.create(owner=owner, url="https://example.org/hook", events=["decision.final"], secret="s")
    return {
        "owner": owner,
        "path": {
            "name": model.name,
            "number": 1,
            "request_id": request.pk,
            "id": decision.prediction_id,
        },
        "ids": {"/webhooks/": webhook.pk},
    }


def _real_path_parameters(case, records: dict) -> None:
    for name in case.path_parameters or {}:
        by_path = [pk for part, pk in records["ids"].items() if part in case.operation.path]
        if name == "id" and by_path:
            case.path_parameters[name] = by_path[0]
        elif name in records["path"]:
            case.path_parameters[name] = records["path"][name]


def _exerciser(operation, *, mode, real_paths: bool, records: dict, headers: dict):
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True
    )
    def exercise(case):
        # The token endpoint is throttled through the cache; the fuzzer must meet the API, not the limit.
        cache.clear()
        if real_paths:
            _real_path_parameters(case, records)
        case.call_and_validate(headers=headers, checks=CHECKS)

    return exercise


@pytest.mark.parametrize("persona", ["owner", "compliance_officer"])
def test_every_operation_answers_as_documented(records, persona, request, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    if persona == "owner":
        user = records["owner"]
    else:
        user = request.getfixturevalue("compliance_officer")
        case = PredictionFactory(model=MLModel.objects.get(name="credit-scoring"))
        export = export_request(actor=user, kind="case", format="csv", prediction=case)
        records["ids"]["/exports/"] = export.pk
    token = AuthToken.objects.create(user=user)[1]
    headers = {"Authorization": f"Token {token}"}
    schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", get_wsgi_application(), headers=headers)
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode, real_paths in VARIANTS:
            try:
                _exerciser(operation, mode=mode, real_paths=real_paths, records=records, headers=headers)()
            except Unsatisfiable:
                # No invalid request exists for this operation (a GET whose only input is a free-text name).
                continue
            except Exception as error:
                failures.append(f"{operation.label} ({mode.value}, real paths: {real_paths}): {_summary(error)}")
    assert not failures, "\n\n".join(failures)


def _summary(error: BaseException) -> str:
    text = str(error)
    for sub in getattr(error, "exceptions", ()):
        text += "\n" + str(sub)
    return text[:2000]
