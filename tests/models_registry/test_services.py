import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from audits.models import DecisionEvent
from models_registry import gates, services
from models_registry.choices import PromotionStatus, Stage
from models_registry.gates import GateResult
from models_registry.models import MLModel, ModelVersion, PromotionRequest
from models_registry.services import (
    FourEyesViolation,
    PromotionBlocked,
    ml_model_register,
    ml_model_update,
    model_version_register,
    promotion_request_create,
    promotion_request_decide,
)
from tests.audits.factories import BiasAuditFactory
from tests.models_registry.factories import (
    CREDIT_FEATURE_SCHEMA,
    ModelVersionFactory,
    PromotionRequestFactory,
    skops_upload,
)


def ledger_events(event_type: str) -> list[dict]:
    return [
        json.loads(payload)
        for payload in DecisionEvent.objects.filter(event_type=event_type).values_list("payload", flat=True)
    ]


def register_credit_model(owner, name="credit-scoring", **overrides) -> MLModel:
    fields = {
        "owner": owner,
        "name": name,
        "task": "binary",
        "labels": ["approve", "deny"],
        "positive_label": "approve",
        "feature_schema": CREDIT_FEATURE_SCHEMA,
        "sensitive_attributes": ["sex"],
        **overrides,
    }
    return ml_model_register(**fields)


# Models


def test_registering_a_model_records_history_and_a_ledger_event(ml_engineer):
    model = register_credit_model(ml_engineer, reason="New credit model for Q3.")

    record = model.history.get()
    assert record.history_type == "+"
    assert record.history_user == ml_engineer
    assert record.history_change_reason == "New credit model for Q3."
    [event] = DecisionEvent.objects.filter(event_type="model.registered")
    assert event.actor_id == ml_engineer.pk
    assert json.loads(event.payload)["model"] == "credit-scoring"


def test_it_rejects_a_second_model_with_the_same_name(ml_engineer, other_ml_engineer):
    register_credit_model(ml_engineer)
    with pytest.raises(ValidationError) as error:
        register_credit_model(other_ml_engineer)
    assert "name" in error.value.message_dict
    assert MLModel.objects.count() == 1


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"positive_label": "maybe"}, "positive_label"),
        ({"labels": ["approve", "deny", "refer"]}, "labels"),
        ({"labels": ["approve", "approve"]}, "labels"),
        ({"labels": []}, "labels"),
        ({"feature_schema": {"type": "object", "properties": {"age": {"type": "whole number"}}}}, "feature_schema"),
        ({"sensitive_attributes": ["sex", ""]}, "sensitive_attributes"),
        ({"task": "multiclass"}, "labels"),
    ],
)
def test_it_refuses_an_inconsistent_model_definition(ml_engineer, overrides, field):
    with pytest.raises(ValidationError) as error:
        register_credit_model(ml_engineer, **overrides)
    assert field in error.value.message_dict
    assert not MLModel.objects.exists()
    assert not DecisionEvent.objects.exists()


def test_updating_a_model_records_who_changed_it_and_why(ml_engineer):
    model = register_credit_model(ml_engineer)

    ml_model_update(
        model=model,
        actor=ml_engineer,
        changes={"risk_tier": "high", "limitations": "Not validated for applicants under 21."},
        reason="Risk review of 12 May.",
    )

    model.refresh_from_db()
    assert model.risk_tier == "high"
    latest = model.history.first()
    assert latest.history_type == "~"
    assert latest.history_user == ml_engineer
    assert latest.history_change_reason == "Risk review of 12 May."
    [payload] = ledger_events("model.updated")
    assert payload["fields"] == ["limitations", "risk_tier"]


def test_an_update_that_changes_nothing_leaves_no_trace(ml_engineer):
    model = register_credit_model(ml_engineer)
    ml_model_update(model=model, actor=ml_engineer, changes={"risk_tier": model.risk_tier}, reason="No-op.")
    assert model.history.count() == 1
    assert not DecisionEvent.objects.filter(event_type="model.updated").exists()


def test_labels_and_schema_are_fixed_once_a_version_exists(ml_engineer):
    model = register_credit_model(ml_engineer)
    model_version_register(model=model, actor=ml_engineer, metrics={"accuracy": 0.9})

    with pytest.raises(ValidationError) as error:
        ml_model_update(
            model=model, actor=ml_engineer, changes={"labels": ["yes", "no"], "positive_label": "yes"}, reason="x"
        )
    assert "labels" in error.value.message_dict
    model.refresh_from_db()
    assert model.labels == ["approve", "deny"]


def test_an_update_needs_a_reason_and_an_editable_field(ml_engineer):
    model = register_credit_model(ml_engineer)
    with pytest.raises(ValidationError) as error:
        ml_model_update(model=model, actor=ml_engineer, changes={"risk_tier": "high"}, reason=" ")
    assert "reason" in error.value.message_dict
    with pytest.raises(ValidationError) as error:
        ml_model_update(model=model, actor=ml_engineer, changes={"owner": ml_engineer}, reason="Handover.")
    assert "owner" in error.value.message_dict


# Versions


def test_versions_are_numbered_per_model_from_one(ml_engineer):
    credit = register_credit_model(ml_engineer)
    churn = register_credit_model(ml_engineer, name="churn")

    numbers = [model_version_register(model=credit, actor=ml_engineer).number for _ in range(3)]
    other = model_version_register(model=churn, actor=ml_engineer)

    assert numbers == [1, 2, 3]
    assert other.number == 1


def test_registering_a_version_stores_the_file_its_hash_and_library_versions(ml_engineer):
    model = register_credit_model(ml_engineer)

    version = model_version_register(
        model=model,
        actor=ml_engineer,
        artifact=skops_upload(),
        metrics={"accuracy": 0.93},
        description="German credit 2024, 1,000 rows.",
        reason="Monthly retrain.",
    )

    version.refresh_from_db()
    assert len(version.artifact_sha256) == 64
    with version.artifact.open("rb") as handle:
        assert len(handle.read()) == version.artifact_size
    assert version.library_versions["scikit-learn"]
    assert version.library_versions["skops"]
    record = version.history.get()
    assert (record.history_user, record.history_change_reason) == (ml_engineer, "Monthly retrain.")
    [payload] = ledger_events("version.registered")
    assert payload["artifact_sha256"] == version.artifact_sha256
    assert payload["number"] == 1


def test_a_version_records_its_parent_for_lineage(ml_engineer):
    model = register_credit_model(ml_engineer)
    first = model_version_register(model=model, actor=ml_engineer)
    second = model_version_register(model=model, actor=ml_engineer, parent_number=1)
    assert second.parent == first


def test_it_refuses_a_parent_that_is_not_a_version_of_the_model(ml_engineer):
    model = register_credit_model(ml_engineer)
    ModelVersionFactory(number=1)  # a version 1 of another model
    with pytest.raises(ValidationError) as error:
        model_version_register(model=model, actor=ml_engineer, parent_number=1)
    assert "parent_version" in error.value.message_dict
    assert not model.versions.exists()


def test_a_refused_model_file_stores_nothing(ml_engineer, media_root):
    model = register_credit_model(ml_engineer)
    with pytest.raises(ValidationError) as error:
        model_version_register(model=model, actor=ml_engineer, artifact=skops_upload(b"not a model"))
    assert "artifact" in error.value.message_dict
    assert not ModelVersion.objects.exists()
    assert not DecisionEvent.objects.filter(event_type="version.registered").exists()
    assert not media_root.exists() or not any(media_root.rglob("*.skops"))


def test_it_retries_with_the_next_number_when_another_writer_took_it(ml_engineer, monkeypatch):
    model = register_credit_model(ml_engineer)
    model_version_register(model=model, actor=ml_engineer)
    real_next = services._next_version_number
    stale_answers = iter([1])  # what a writer that read before version 1 was committed would compute

    def next_number(locked_model):
        return next(stale_answers, None) or real_next(locked_model)

    monkeypatch.setattr(services, "_next_version_number", next_number)

    version = model_version_register(model=model, actor=ml_engineer)

    assert version.number == 2
    assert sorted(model.versions.values_list("number", flat=True)) == [1, 2]


# Promotion requests


def test_requesting_a_promotion_records_history_and_a_ledger_event(ml_engineer):
    version = ModelVersionFactory(model__owner=ml_engineer)

    request = promotion_request_create(
        version=version, actor=ml_engineer, target_stage=Stage.STAGING, rationale="Ready for shadow traffic."
    )

    assert request.status == PromotionStatus.PENDING
    record = request.history.get()
    assert record.history_user == ml_engineer
    assert record.history_change_reason == "Promotion to staging requested."
    [payload] = ledger_events("promotion.requested")
    assert payload["target_stage"] == "staging"


@pytest.mark.parametrize(
    ("stage", "target"),
    [
        (Stage.PRODUCTION, Stage.STAGING),
        (Stage.PRODUCTION, Stage.PRODUCTION),
        (Stage.ARCHIVED, Stage.PRODUCTION),
        (Stage.REJECTED, Stage.STAGING),
        (Stage.CANDIDATE, Stage.CANDIDATE),
    ],
)
def test_it_refuses_a_promotion_the_lifecycle_does_not_allow(ml_engineer, stage, target):
    version = ModelVersionFactory(stage=stage, model__owner=ml_engineer)
    with pytest.raises(ValidationError) as error:
        promotion_request_create(version=version, actor=ml_engineer, target_stage=target, rationale="Because.")
    assert "target_stage" in error.value.message_dict
    assert not PromotionRequest.objects.exists()


def test_only_one_request_per_version_and_target_may_be_pending(ml_engineer):
    version = ModelVersionFactory(model__owner=ml_engineer)
    promotion_request_create(version=version, actor=ml_engineer, target_stage=Stage.PRODUCTION, rationale="A.")
    with pytest.raises(ValidationError):
        promotion_request_create(version=version, actor=ml_engineer, target_stage=Stage.PRODUCTION, rationale="B.")
    assert PromotionRequest.objects.count() == 1


# Decisions


def test_approving_production_archives_the_previous_production_version(ml_engineer, compliance_officer):
    current = ModelVersionFactory(stage=Stage.PRODUCTION, number=1)
    candidate = ModelVersionFactory(model=current.model, number=2)
    request = PromotionRequestFactory(version=candidate, requester=ml_engineer)
    BiasAuditFactory(version=candidate)

    promotion_request_decide(
        promotion_request=request, actor=compliance_officer, approve=True, reason="Audit passed; metrics better."
    )

    current.refresh_from_db()
    candidate.refresh_from_db()
    request.refresh_from_db()
    assert (current.stage, candidate.stage) == (Stage.ARCHIVED, Stage.PRODUCTION)
    assert request.status == PromotionStatus.APPROVED
    assert request.decided_by == compliance_officer
    assert request.decision_reason == "Audit passed; metrics better."
    assert {result["name"] for result in request.gate_results} >= {"model_file_integrity", "evaluation_metrics"}
    archived_record = current.history.first()
    assert archived_record.history_user == compliance_officer
    assert "v2 replaces it in production" in archived_record.history_change_reason
    assert request.history.first().history_change_reason == "Audit passed; metrics better."
    [payload] = ledger_events("promotion.decided")
    assert payload["status"] == "approved"
    assert payload["archived_version_id"] == current.pk


def test_the_database_holds_at_most_one_production_version_per_model(db):
    current = ModelVersionFactory(stage=Stage.PRODUCTION)
    other = ModelVersionFactory(model=current.model)
    other.stage = Stage.PRODUCTION
    with pytest.raises(IntegrityError), transaction.atomic():
        other.save()


def test_four_eyes_the_requester_may_never_decide_their_own_request(compliance_officer, ml_engineer):
    version = ModelVersionFactory()
    request = PromotionRequestFactory(version=version, requester=compliance_officer)

    with pytest.raises(FourEyesViolation):
        promotion_request_decide(promotion_request=request, actor=compliance_officer, approve=True, reason="Mine.")

    request.refresh_from_db()
    version.refresh_from_db()
    assert request.status == PromotionStatus.PENDING
    assert version.stage == Stage.CANDIDATE
    assert request.history.count() == 1


def test_four_eyes_is_also_a_database_constraint(compliance_officer):
    request = PromotionRequestFactory(requester=compliance_officer)
    with pytest.raises(IntegrityError), transaction.atomic():
        PromotionRequest.objects.filter(pk=request.pk).update(decided_by=compliance_officer)


def test_only_people_allowed_to_decide_may_decide(ml_engineer, other_ml_engineer):
    request = PromotionRequestFactory(requester=ml_engineer)
    with pytest.raises(PermissionDenied):
        promotion_request_decide(promotion_request=request, actor=other_ml_engineer, approve=True, reason="LGTM.")
    request.refresh_from_db()
    assert request.status == PromotionStatus.PENDING


def test_rejecting_records_the_reason_and_leaves_the_version_where_it_is(ml_engineer, compliance_officer):
    request = PromotionRequestFactory(requester=ml_engineer)

    promotion_request_decide(
        promotion_request=request, actor=compliance_officer, approve=False, reason="No bias audit yet."
    )

    request.refresh_from_db()
    assert request.status == PromotionStatus.REJECTED
    assert request.decision_reason == "No bias audit yet."
    assert request.version.stage == Stage.CANDIDATE
    record = request.history.first()
    assert (record.history_user, record.history_change_reason) == (compliance_officer, "No bias audit yet.")
    [payload] = ledger_events("promotion.decided")
    assert payload["status"] == "rejected"


def test_a_decision_needs_a_reason(ml_engineer, compliance_officer):
    request = PromotionRequestFactory(requester=ml_engineer)
    with pytest.raises(ValidationError) as error:
        promotion_request_decide(promotion_request=request, actor=compliance_officer, approve=False, reason="")
    assert "reason" in error.value.message_dict


def test_a_decided_request_cannot_be_decided_again(ml_engineer, compliance_officer, other_compliance_officer):
    request = PromotionRequestFactory(requester=ml_engineer)
    promotion_request_decide(promotion_request=request, actor=compliance_officer, approve=False, reason="No.")
    with pytest.raises(ValidationError):
        promotion_request_decide(promotion_request=request, actor=other_compliance_officer, approve=True, reason="Y")
    request.refresh_from_db()
    assert (request.status, request.decided_by) == (PromotionStatus.REJECTED, compliance_officer)


def test_approval_is_refused_when_the_version_moved_since_the_request(ml_engineer, compliance_officer):
    version = ModelVersionFactory(stage=Stage.STAGING)
    request = PromotionRequestFactory(version=version, requester=ml_engineer, target_stage=Stage.STAGING)
    with pytest.raises(ValidationError):
        promotion_request_decide(promotion_request=request, actor=compliance_officer, approve=True, reason="Go.")
    request.refresh_from_db()
    assert request.status == PromotionStatus.PENDING


# Gates


def test_a_failing_gate_blocks_approval_and_keeps_its_results(ml_engineer, compliance_officer, monkeypatch):
    def bias_audit(version, target_stage):
        return GateResult("bias_audit", False, "No passing bias audit of this version in the last 30 days.")

    monkeypatch.setitem(gates._GATES, "bias_audit", bias_audit)
    request = PromotionRequestFactory(requester=ml_engineer)

    with pytest.raises(PromotionBlocked) as error:
        promotion_request_decide(promotion_request=request, actor=compliance_officer, approve=True, reason="Go.")

    assert "No passing bias audit" in error.value.messages[0]
    request.refresh_from_db()
    assert request.status == PromotionStatus.PENDING
    assert request.version.stage == Stage.CANDIDATE
    failed = [result for result in request.gate_results if not result["passed"]]
    assert failed == [
        {
            "name": "bias_audit",
            "passed": False,
            "reason": "No passing bias audit of this version in the last 30 days.",
            "evidence": {},
        }
    ]
    assert request.history.first().history_change_reason == "Approval blocked by failing gates: bias_audit."
    assert not DecisionEvent.objects.filter(event_type="promotion.decided").exists()


def test_a_gate_that_crashes_blocks_approval(ml_engineer, compliance_officer, monkeypatch):
    def broken(version, target_stage):
        raise RuntimeError("audit service unreachable")

    monkeypatch.setitem(gates._GATES, "broken", broken)
    request = PromotionRequestFactory(requester=ml_engineer)
    with pytest.raises(PromotionBlocked):
        promotion_request_decide(promotion_request=request, actor=compliance_officer, approve=True, reason="Go.")
    request.refresh_from_db()
    assert {
        "name": "broken",
        "passed": False,
        "reason": "The gate could not run: audit service unreachable",
        "evidence": {},
    } in request.gate_results


def test_gates_are_not_run_to_reject(ml_engineer, compliance_officer, monkeypatch):
    monkeypatch.setitem(gates._GATES, "never", lambda version, target: GateResult("never", False, "Never passes."))
    request = PromotionRequestFactory(requester=ml_engineer)
    promotion_request_decide(promotion_request=request, actor=compliance_officer, approve=False, reason="Not now.")
    request.refresh_from_db()
    assert request.status == PromotionStatus.REJECTED
    assert request.gate_results == []


def test_production_needs_recorded_metrics(ml_engineer, compliance_officer):
    request = PromotionRequestFactory(version__metrics={}, requester=ml_engineer)
    with pytest.raises(PromotionBlocked) as error:
        promotion_request_decide(promotion_request=request, actor=compliance_officer, approve=True, reason="Go.")
    assert "evaluation_metrics" in error.value.messages[0]


def test_staging_does_not_need_metrics(ml_engineer, compliance_officer):
    request = PromotionRequestFactory(version__metrics={}, requester=ml_engineer, target_stage=Stage.STAGING)
    promotion_request_decide(promotion_request=request, actor=compliance_officer, approve=True, reason="Shadow.")
    request.version.refresh_from_db()
    assert request.version.stage == Stage.STAGING


def test_a_model_file_altered_in_storage_blocks_approval(ml_engineer, compliance_officer):
    version = ModelVersionFactory(with_artifact=True)
    with open(version.artifact.path, "ab") as handle:
        handle.write(b"tampered")
    request = PromotionRequestFactory(version=version, requester=ml_engineer)

    with pytest.raises(PromotionBlocked) as error:
        promotion_request_decide(promotion_request=request, actor=compliance_officer, approve=True, reason="Go.")

    assert "changed since registration" in error.value.messages[0]


def test_an_intact_model_file_passes_the_integrity_gate(ml_engineer, compliance_officer):
    version = ModelVersionFactory(with_artifact=True)
    request = PromotionRequestFactory(version=version, requester=ml_engineer)
    BiasAuditFactory(version=version)
    promotion_request_decide(promotion_request=request, actor=compliance_officer, approve=True, reason="Go.")
    request.refresh_from_db()
    integrity = next(result for result in request.gate_results if result["name"] == "model_file_integrity")
    assert integrity["passed"] is True


@pytest.mark.parametrize("tier", ["high", "critical"])
def test_a_high_risk_model_with_an_empty_model_card_is_blocked_from_production(ml_engineer, compliance_officer, tier):
    version = ModelVersionFactory(model__risk_tier=tier, model__limitations="", model__ethical_considerations=" ")
    request = PromotionRequestFactory(version=version, requester=ml_engineer)

    with pytest.raises(PromotionBlocked) as error:
        promotion_request_decide(promotion_request=request, actor=compliance_officer, approve=True, reason="Go.")

    assert "model_card" in error.value.messages[0]
    assert "missing: limitations, ethical considerations" in error.value.messages[0]
    version.refresh_from_db()
    assert version.stage == Stage.CANDIDATE


def test_a_high_risk_model_with_its_model_card_and_a_medium_risk_model_without_one_pass_the_card_gate(
    ml_engineer, compliance_officer
):
    complete = ModelVersionFactory(
        model__risk_tier="high",
        model__limitations="Sees only three features.",
        model__ethical_considerations="Audited.",
    )
    medium = ModelVersionFactory(model__risk_tier="medium", model__limitations="")
    for version in (complete, medium):
        request = PromotionRequestFactory(version=version, requester=ml_engineer)
        BiasAuditFactory(version=version)
        promotion_request_decide(promotion_request=request, actor=compliance_officer, approve=True, reason="Go.")
        request.refresh_from_db()
        card = next(result for result in request.gate_results if result["name"] == "model_card")
        assert card["passed"] is True


def test_an_administrator_overrides_a_failing_gate_with_a_reason_and_it_is_logged(
    ml_engineer, compliance_officer, admin_user, monkeypatch
):
    monkeypatch.setitem(gates._GATES, "bias_audit", lambda v, t: GateResult("bias_audit", False, "No passing audit."))
    request = PromotionRequestFactory(requester=ml_engineer)

    with pytest.raises(PermissionDenied):
        services.promotion_request_override_gate(
            promotion_request=request, gate="bias_audit", actor=compliance_officer, reason="Trust me."
        )
    with pytest.raises(ValidationError):
        services.promotion_request_override_gate(
            promotion_request=request, gate="bias_audit", actor=admin_user, reason=" "
        )
    services.promotion_request_override_gate(
        promotion_request=request, gate="bias_audit", actor=admin_user, reason="Regulator-approved pilot, ticket 42."
    )
    promotion_request_decide(promotion_request=request, actor=compliance_officer, approve=True, reason="Go.")

    request.refresh_from_db()
    audit_gate = next(result for result in request.gate_results if result["name"] == "bias_audit")
    assert audit_gate["passed"] is True
    assert "Overridden by alice_admin (Regulator-approved pilot, ticket 42.)" in audit_gate["reason"]
    assert "No passing audit." in audit_gate["reason"]
    assert request.status == PromotionStatus.APPROVED
    event = DecisionEvent.objects.get(event_type="promotion.gate_overridden")
    assert event.actor_label == "alice_admin"
    assert request.history.filter(history_change_reason__startswith="Gate bias_audit overridden").exists()
