import json

import pytest
from django.contrib.auth.models import Group

from audits.models import DecisionEvent
from hitl_platform.roles import Role
from models_registry.choices import PromotionStatus, Stage
from models_registry.models import MLModel, ModelVersion, PromotionRequest
from tests.factories import UserFactory
from tests.models_registry.factories import (
    CREDIT_FEATURE_SCHEMA,
    MLModelFactory,
    ModelVersionFactory,
    PromotionRequestFactory,
    pickle_bytes,
    skops_bytes,
    skops_upload,
)

MODELS_URL = "/api/v1/models/"


def model_payload(name: str = "credit-scoring", **overrides) -> dict:
    return {
        "name": name,
        "description": "Scores consumer credit applications.",
        "task": "binary",
        "labels": ["approve", "deny"],
        "positive_label": "approve",
        "feature_schema": CREDIT_FEATURE_SCHEMA,
        "sensitive_attributes": ["sex", "age_band"],
        "risk_tier": "high",
        "intended_use": "Pre-screening of consumer credit applications.",
        **overrides,
    }


@pytest.fixture
def engineer_client(api_client_for, ml_engineer):
    return api_client_for(ml_engineer)


@pytest.fixture
def credit_model(ml_engineer):
    return MLModelFactory(name="credit", owner=ml_engineer)


# Models


def test_an_ml_engineer_registers_a_model_and_owns_it(engineer_client, ml_engineer):
    response = engineer_client.post(MODELS_URL, model_payload(), format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["name"] == "credit-scoring"
    assert body["owner"] == ml_engineer.username
    assert body["latest_version"] is None
    model = MLModel.objects.get(name="credit-scoring")
    record = model.history.get()
    assert (record.history_user, record.history_change_reason) == (ml_engineer, "Model registered.")


def test_the_model_list_shows_latest_and_production_versions(engineer_client, credit_model):
    ModelVersionFactory(model=credit_model, number=1, stage=Stage.PRODUCTION)
    ModelVersionFactory(model=credit_model, number=2)

    response = engineer_client.get(MODELS_URL)

    assert response.status_code == 200
    [row] = response.json()["results"]
    assert (row["latest_version"], row["production_version"]) == (2, 1)


# The authentication reads the token with its user and details (1 query), the role check reads the user's and
# groups' permissions (2), and a page of the list is one query, however long the list.
LIST_QUERIES = 4


def test_the_model_list_is_the_same_few_queries_however_many_models(
    engineer_client, ml_engineer, django_assert_num_queries
):
    for _ in range(25):
        ModelVersionFactory(model=MLModelFactory(owner=ml_engineer), stage=Stage.PRODUCTION)
    with django_assert_num_queries(LIST_QUERIES):
        response = engineer_client.get(MODELS_URL)
    assert len(response.json()["results"]) == 25
    assert all(row["production_version"] for row in response.json()["results"])


def test_the_model_list_can_be_filtered_by_risk_tier(engineer_client, ml_engineer):
    MLModelFactory(name="low-risk", risk_tier="low", owner=ml_engineer)
    MLModelFactory(name="critical-risk", risk_tier="critical", owner=ml_engineer)
    response = engineer_client.get(MODELS_URL, {"risk_tier": "critical"})
    assert [row["name"] for row in response.json()["results"]] == ["critical-risk"]


def test_an_unknown_model_is_a_404(engineer_client, db):
    assert engineer_client.get(f"{MODELS_URL}no-such-model/").status_code == 404


def test_the_owner_changes_the_model_card_with_a_reason(engineer_client, credit_model, ml_engineer):
    response = engineer_client.patch(
        f"{MODELS_URL}credit/",
        {"limitations": "Not for applicants under 21.", "reason": "Findings of the fairness review."},
        format="json",
    )

    assert response.status_code == 200, response.json()
    assert response.json()["limitations"] == "Not for applicants under 21."
    record = credit_model.history.first()
    assert (record.history_user, record.history_change_reason) == (ml_engineer, "Findings of the fairness review.")


def test_a_change_without_a_reason_is_recorded_with_the_fields_it_changed(engineer_client, credit_model):
    response = engineer_client.patch(f"{MODELS_URL}credit/", {"risk_tier": "critical"}, format="json")
    assert response.status_code == 200
    assert credit_model.history.first().history_change_reason == "Changed through the API: risk_tier."


def test_only_the_owner_or_an_administrator_may_change_a_model(
    api_client_for, credit_model, other_ml_engineer, admin_user
):
    refused = api_client_for(other_ml_engineer).patch(f"{MODELS_URL}credit/", {"risk_tier": "low"}, format="json")
    assert refused.status_code == 404
    credit_model.refresh_from_db()
    assert credit_model.risk_tier != "low"

    allowed = api_client_for(admin_user).patch(
        f"{MODELS_URL}credit/", {"risk_tier": "low", "reason": "Re-tiered by the board."}, format="json"
    )
    assert allowed.status_code == 200
    assert credit_model.history.first().history_user == admin_user


def test_labels_cannot_change_once_a_version_exists(engineer_client, credit_model):
    ModelVersionFactory(model=credit_model)
    response = engineer_client.patch(
        f"{MODELS_URL}credit/", {"labels": ["yes", "no"], "positive_label": "yes"}, format="json"
    )
    assert response.status_code == 400
    assert "labels" in response.json()


# Versions


def test_an_ml_engineer_registers_a_version_with_a_skops_file(engineer_client, credit_model, ml_engineer):
    ModelVersionFactory(model=credit_model, number=1)
    response = engineer_client.post(
        f"{MODELS_URL}credit/versions/",
        {
            "artifact": skops_upload(),
            "metrics": json.dumps({"accuracy": 0.93, "f1": 0.9}),
            "description": "German credit 2024.",
            "parent_version": "1",
        },
        format="multipart",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["number"] == 2
    assert body["stage"] == "candidate"
    assert body["parent_version"] == 1
    assert body["created_by"] == ml_engineer.username
    assert body["metrics"] == {"accuracy": 0.93, "f1": 0.9}
    assert len(body["artifact_sha256"]) == 64
    assert body["library_versions"]["scikit-learn"]
    version = ModelVersion.objects.get(model=credit_model, number=2)
    assert version.history.get().history_user == ml_engineer
    assert DecisionEvent.objects.filter(event_type="version.registered", object_id=str(version.pk)).exists()


def test_a_version_scored_by_its_caller_is_registered_from_json(engineer_client, credit_model):
    response = engineer_client.post(
        f"{MODELS_URL}credit/versions/", {"metrics": {"accuracy": 0.88}, "description": "External."}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert response.json()["artifact_sha256"] == ""
    assert response.json()["artifact_size"] is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(pickle_bytes, "pickle or joblib", id="pickle"),
        pytest.param(lambda: b"PK\x03\x04 definitely broken", "corrupt", id="corrupt"),
    ],
)
def test_a_refused_model_file_is_a_400_that_says_why(engineer_client, credit_model, content, message):
    response = engineer_client.post(
        f"{MODELS_URL}credit/versions/", {"artifact": skops_upload(content())}, format="multipart"
    )
    assert response.status_code == 400
    assert message in response.json()["artifact"][0]
    assert not ModelVersion.objects.exists()


def test_a_model_file_over_the_size_limit_is_a_400(engineer_client, credit_model, settings):
    content = skops_bytes()
    settings.MODEL_FILE_MAX_BYTES = len(content) // 2
    response = engineer_client.post(
        f"{MODELS_URL}credit/versions/", {"artifact": skops_upload(content)}, format="multipart"
    )
    assert response.status_code == 400
    assert "limit" in response.json()["artifact"][0]
    assert not ModelVersion.objects.exists()


def test_the_version_list_is_the_same_few_queries_however_many_versions(
    engineer_client, credit_model, django_assert_num_queries
):
    parent = ModelVersionFactory(model=credit_model, number=1)
    for number in range(2, 31):
        ModelVersionFactory(model=credit_model, number=number, parent=parent)
    # One more than a model list: the model named in the URL is looked up (404 if unknown).
    with django_assert_num_queries(LIST_QUERIES + 1):
        response = engineer_client.get(f"{MODELS_URL}credit/versions/")
    rows = response.json()["results"]
    assert [row["number"] for row in rows][:3] == [30, 29, 28]
    assert {row["parent_version"] for row in rows[:-1]} == {1}


def test_the_version_list_can_be_filtered_by_stage(engineer_client, credit_model):
    ModelVersionFactory(model=credit_model, number=1, stage=Stage.ARCHIVED)
    ModelVersionFactory(model=credit_model, number=2, stage=Stage.PRODUCTION)
    response = engineer_client.get(f"{MODELS_URL}credit/versions/", {"stage": "production"})
    assert [row["number"] for row in response.json()["results"]] == [2]


def test_a_version_is_shown_with_its_lineage(engineer_client, credit_model):
    parent = ModelVersionFactory(model=credit_model, number=1)
    ModelVersionFactory(model=credit_model, number=2, parent=parent)
    response = engineer_client.get(f"{MODELS_URL}credit/versions/2/")
    assert response.status_code == 200
    assert response.json()["parent_version"] == 1
    assert engineer_client.get(f"{MODELS_URL}credit/versions/3/").status_code == 404
    assert engineer_client.get(f"{MODELS_URL}other/versions/1/").status_code == 404


# Promotion requests


def test_an_ml_engineer_requests_a_promotion(engineer_client, credit_model, ml_engineer):
    ModelVersionFactory(model=credit_model, number=1)
    response = engineer_client.post(
        f"{MODELS_URL}credit/versions/1/promotion-requests/",
        {"target_stage": "production", "rationale": "F1 up 4 points; audit attached."},
        format="json",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "pending"
    assert body["requester"] == ml_engineer.username
    assert body["decided_by"] is None
    detail = engineer_client.get(f"/api/v1/promotion-requests/{body['id']}/")
    assert detail.status_code == 200
    assert detail.json()["version"] == 1


def test_a_decided_request_shows_the_decision_and_gate_results(engineer_client, credit_model, compliance_officer):
    version = ModelVersionFactory(model=credit_model, number=1)
    request = PromotionRequestFactory(
        version=version,
        status=PromotionStatus.REJECTED,
        decided_by=compliance_officer,
        decision_reason="No audit.",
        gate_results=[{"name": "evaluation_metrics", "passed": True, "reason": "Metrics recorded: f1."}],
    )
    body = engineer_client.get(f"/api/v1/promotion-requests/{request.pk}/").json()
    assert body["decided_by"] == compliance_officer.username
    assert body["gate_results"][0]["name"] == "evaluation_metrics"


def test_a_promotion_the_lifecycle_does_not_allow_is_a_400(engineer_client, credit_model):
    ModelVersionFactory(model=credit_model, number=1, stage=Stage.ARCHIVED)
    response = engineer_client.post(
        f"{MODELS_URL}credit/versions/1/promotion-requests/",
        {"target_stage": "production", "rationale": "Bring it back."},
        format="json",
    )
    assert response.status_code == 400
    assert "target_stage" in response.json()
    assert not PromotionRequest.objects.exists()


def test_a_versions_requests_are_listed_in_the_same_few_queries_however_many(
    engineer_client, credit_model, compliance_officer, django_assert_num_queries
):
    version = ModelVersionFactory(model=credit_model, number=1)
    PromotionRequestFactory(version=version, target_stage=Stage.STAGING)
    for _ in range(20):
        PromotionRequestFactory(
            version=version,
            status=PromotionStatus.REJECTED,
            decided_by=compliance_officer,
            requester=UserFactory(),
        )
    with django_assert_num_queries(LIST_QUERIES + 1):
        response = engineer_client.get(f"{MODELS_URL}credit/versions/1/promotion-requests/")
    rows = response.json()["results"]
    assert len(rows) == 21
    assert rows[-1]["status"] == "pending"
    assert {row["decided_by"] for row in rows[:-1]} == {compliance_officer.username}


# The role matrix: what each persona can and cannot do with the registry API.

OK, CREATED, FORBIDDEN, UNAUTHORISED, NOT_FOUND = 200, 201, 403, 401, 404
REGISTRY_CALLS = (
    "list models",
    "register model",
    "read model",
    "change model",
    "list versions",
    "register version",
    "read version",
    "request promotion",
    "read promotion request",
)
EVERYTHING = (OK, CREATED, OK, OK, OK, CREATED, OK, CREATED, OK)
NOTHING = (FORBIDDEN,) * len(REGISTRY_CALLS)


@pytest.mark.parametrize(
    ("persona", "expected"),
    [
        ("ml_engineer", EVERYTHING),
        # Another team's model is hidden everywhere: the same 404 as a model nobody registered.
        ("other_ml_engineer", (OK, CREATED, *(NOT_FOUND,) * 7)),
        ("team_member", EVERYTHING),
        ("admin_user", EVERYTHING),
        ("compliance_officer", (OK, FORBIDDEN, OK, FORBIDDEN, OK, FORBIDDEN, OK, FORBIDDEN, OK)),
        ("reviewer_a", NOTHING),
        ("adjudicator", NOTHING),
        ("outsider", NOTHING),
        ("anonymous", (UNAUTHORISED,) * len(REGISTRY_CALLS)),
    ],
)
def test_the_role_matrix_of_the_registry_api(
    request, api_client_for, anonymous_api_client, ml_engineer, persona, expected
):
    team = Group.objects.create(name="credit-risk-team")
    ml_engineer.groups.add(team)
    MLModelFactory(name="credit", owner=ml_engineer, team=team)
    version = ModelVersionFactory(model=MLModel.objects.get(name="credit"), number=1)
    pending = PromotionRequestFactory(version=version, requester=ml_engineer, target_stage=Stage.STAGING)
    if persona == "team_member":
        colleague = UserFactory(username="tom_ml", roles=[Role.ML_ENGINEER])
        colleague.groups.add(team)
        client = api_client_for(colleague)
    elif persona == "anonymous":
        client = anonymous_api_client
    else:
        client = api_client_for(request.getfixturevalue(persona))
    counts_before = (MLModel.objects.count(), ModelVersion.objects.count(), PromotionRequest.objects.count())

    calls = (
        lambda: client.get(MODELS_URL),
        lambda: client.post(MODELS_URL, model_payload(name=f"by-{persona.replace('_', '-')}"), format="json"),
        lambda: client.get(f"{MODELS_URL}credit/"),
        lambda: client.patch(f"{MODELS_URL}credit/", {"description": f"Edited by {persona}."}, format="json"),
        lambda: client.get(f"{MODELS_URL}credit/versions/"),
        lambda: client.post(f"{MODELS_URL}credit/versions/", {"metrics": {"f1": 0.8}}, format="json"),
        lambda: client.get(f"{MODELS_URL}credit/versions/1/"),
        lambda: client.post(
            f"{MODELS_URL}credit/versions/1/promotion-requests/",
            {"target_stage": "production", "rationale": "Ready."},
            format="json",
        ),
        lambda: client.get(f"/api/v1/promotion-requests/{pending.pk}/"),
    )
    statuses = {name: call().status_code for name, call in zip(REGISTRY_CALLS, calls, strict=True)}

    assert statuses == dict(zip(REGISTRY_CALLS, expected, strict=True))
    if CREATED not in expected:
        assert (MLModel.objects.count(), ModelVersion.objects.count(), PromotionRequest.objects.count()) == (
            counts_before
        )
        assert MLModel.objects.get(name="credit").description != f"Edited by {persona}."


def test_another_teams_model_is_answered_exactly_like_a_model_that_does_not_exist(
    api_client_for, credit_model, other_ml_engineer
):
    client = api_client_for(other_ml_engineer)

    theirs = client.get(f"{MODELS_URL}credit/")
    missing = client.get(f"{MODELS_URL}does-not-exist/")

    assert (theirs.status_code, missing.status_code) == (404, 404)
    assert theirs.json()["detail"].replace("credit", "NAME") == missing.json()["detail"].replace(
        "does-not-exist", "NAME"
    )
    assert "credit" not in [row["name"] for row in client.get(MODELS_URL).json()["results"]]


def test_an_engineer_outside_the_team_cannot_take_over_a_model_by_registering_and_promoting_a_version(
    api_client_for, credit_model, other_ml_engineer
):
    """The finding: a non-owner registered a version on another's model and asked for its production."""
    ModelVersionFactory(model=credit_model, number=1, stage=Stage.PRODUCTION)
    client = api_client_for(other_ml_engineer)

    registered = client.post(f"{MODELS_URL}credit/versions/", {"metrics": {"f1": 0.99}}, format="json")
    promoted = client.post(
        f"{MODELS_URL}credit/versions/1/promotion-requests/",
        {"target_stage": "archived", "rationale": "Replace it."},
        format="json",
    )

    assert (registered.status_code, promoted.status_code) == (404, 404)
    assert credit_model.versions.count() == 1
    assert not PromotionRequest.objects.exists()


def test_a_team_is_a_group_the_owner_belongs_to_and_never_a_role(engineer_client, ml_engineer):
    Group.objects.create(name="fraud-team")
    mine = Group.objects.create(name="credit-risk-team")
    ml_engineer.groups.add(mine)

    not_member = engineer_client.post(MODELS_URL, model_payload(name="a", team="fraud-team"), format="json")
    a_role = engineer_client.post(MODELS_URL, model_payload(name="b", team=Role.ML_ENGINEER.value), format="json")
    unknown = engineer_client.post(MODELS_URL, model_payload(name="c", team="no-such-team"), format="json")
    registered = engineer_client.post(MODELS_URL, model_payload(name="d", team="credit-risk-team"), format="json")

    assert [r.status_code for r in (not_member, a_role, unknown)] == [400, 400, 400]
    assert all("team" in r.json() for r in (not_member, a_role, unknown))
    assert registered.status_code == 201
    assert registered.json()["team"] == "credit-risk-team"


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"sex": {"type": "string"}}},
        {"type": "object", "properties": {"Age Band": {"type": "string"}}},
        {"type": "object", "properties": {"applicant": {"type": "object", "properties": {"SEX": {"type": "string"}}}}},
    ],
)
def test_a_feature_schema_naming_a_sensitive_attribute_is_refused_at_registration(engineer_client, schema):
    response = engineer_client.post(
        MODELS_URL, model_payload(feature_schema=schema, sensitive_attributes=["sex", "age_band"]), format="json"
    )

    assert response.status_code == 400
    assert "feature_schema" in response.json()
    assert not MLModel.objects.exists()


def test_declaring_a_sensitive_attribute_that_is_already_a_feature_is_refused_on_change(engineer_client, credit_model):
    response = engineer_client.patch(
        f"{MODELS_URL}credit/", {"sensitive_attributes": ["sex", "Age"], "reason": "Audit by age."}, format="json"
    )

    assert response.status_code == 400
    assert "feature_schema" in response.json()


def test_a_misspelt_filter_on_a_registry_list_is_a_400_naming_it(engineer_client, credit_model):
    response = engineer_client.get(MODELS_URL, {"riks_tier": "high"})

    assert response.status_code == 400
    assert list(response.json()) == ["riks_tier"]
    assert "risk_tier" in response.json()["riks_tier"][0]
