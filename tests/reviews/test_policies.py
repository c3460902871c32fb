"""Routing policy services: defaults, changes with a reason, the stop switch; history and ledger for each."""

import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from audits.ledger import ledger_verify
from audits.models import DecisionEvent
from models_registry.choices import RiskTier, Stage
from reviews.models import Prediction, RoutingPolicy
from reviews.selectors.policies import routing_policy_version_for
from reviews.services.policies import (
    routing_policy_get_or_create_default,
    routing_policy_set_stop_switch,
    routing_policy_snapshot,
    routing_policy_update,
)
from tests.models_registry.factories import MLModelFactory, ModelVersionFactory

LARGE_LOANS = {
    "field": "credit_amount",
    "operator": ">",
    "value": 10000,
    "action": "review",
    "reason": "large loans need review",
}


@pytest.fixture
def policy(db):
    return routing_policy_get_or_create_default(model=MLModelFactory(name="credit-scoring", risk_tier=RiskTier.HIGH))


def ledger_payload(event_type: str) -> dict:
    return json.loads(DecisionEvent.objects.filter(event_type=event_type).latest("id").payload)


def test_a_default_policy_is_created_once_with_history_and_a_ledger_event(db):
    model = MLModelFactory(name="credit-scoring", risk_tier=RiskTier.HIGH)

    policy = routing_policy_get_or_create_default(model=model)
    again = routing_policy_get_or_create_default(model=model)

    assert again.pk == policy.pk and RoutingPolicy.objects.count() == 1
    assert policy.reviews_required is None  # the risk tier's default applies
    assert routing_policy_snapshot(policy).risk_tier == "high"
    assert policy.history.get().history_change_reason.startswith("Default routing policy created")
    assert ledger_payload("policy.created")["settings"]["auto_decide_threshold"] == 0.8


def test_a_compliance_officer_changes_a_policy_with_a_reason_recorded_in_history_and_ledger(policy, compliance_officer):
    updated = routing_policy_update(
        policy=policy,
        changes={"auto_decide_threshold": 0.9, "rules": [LARGE_LOANS], "label_thresholds": {"deny": 0.95}},
        actor=compliance_officer,
        reason="Credit committee, minutes 2026-11",
    )

    assert (updated.auto_decide_threshold, updated.rules, updated.label_thresholds) == (
        0.9,
        [LARGE_LOANS],
        {"deny": 0.95},
    )
    latest = updated.history.latest()
    assert (latest.history_user, latest.history_change_reason) == (
        compliance_officer,
        "Credit committee, minutes 2026-11",
    )
    payload = ledger_payload("policy.changed")
    assert payload["changes"]["auto_decide_threshold"] == {"from": 0.8, "to": 0.9}
    assert payload["reason"] == "Credit committee, minutes 2026-11"
    assert DecisionEvent.objects.filter(event_type="policy.changed").get().actor_label == compliance_officer.username
    assert ledger_verify().intact


def test_a_change_that_changes_nothing_writes_nothing(policy, compliance_officer):
    history_rows = policy.history.count()

    routing_policy_update(policy=policy, changes={"sla_hours": 24}, actor=compliance_officer, reason="No-op")

    assert policy.history.count() == history_rows
    assert not DecisionEvent.objects.filter(event_type="policy.changed").exists()


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"auto_decide_threshold": 1.5}, "auto_decide_threshold", "between 0 and 1"),
        ({"auto_decide_threshold": "high"}, "auto_decide_threshold", "between 0 and 1"),
        ({"qa_sample_rate": -0.1}, "qa_sample_rate", "between 0 and 1"),
        ({"label_thresholds": {"maybe": 0.9}}, "label_thresholds", "Not labels of credit-scoring: maybe"),
        ({"rules": [{**LARGE_LOANS, "operator": "~"}]}, "rules", "Rule 1: Operator must be one of"),
        ({"rules": "credit_amount > 10000"}, "rules", "list of rules"),
        ({"reviews_required": 0}, "reviews_required", "between 1 and 10"),
        ({"consensus_rule": "loudest"}, "consensus_rule", "Choose one of"),
        ({"sla_hours": 0}, "sla_hours", "between 1 and"),
        ({"blind_review": "yes"}, "blind_review", "true or false"),
        ({"min_agreement": 0}, "min_agreement", "above 0"),
        ({"stop_switch_on": True}, "stop_switch_on", "cannot be changed here"),
        ({"model": 3}, "model", "cannot be changed here"),
    ],
)
def test_a_bad_change_is_refused_by_field_and_nothing_is_written(policy, compliance_officer, changes, field, message):
    with pytest.raises(ValidationError) as refused:
        routing_policy_update(policy=policy, changes=changes, actor=compliance_officer, reason="Try")

    assert any(message in text for text in refused.value.message_dict[field])
    assert policy.history.count() == 1


def test_a_change_without_a_reason_is_refused(policy, compliance_officer):
    with pytest.raises(ValidationError) as refused:
        routing_policy_update(policy=policy, changes={"sla_hours": 8}, actor=compliance_officer, reason="  ")

    assert "reason" in refused.value.message_dict


def test_an_ml_engineer_may_not_change_a_policy_or_its_stop_switch(policy, ml_engineer):
    with pytest.raises(PermissionDenied):
        routing_policy_update(policy=policy, changes={"sla_hours": 8}, actor=ml_engineer, reason="Faster")
    with pytest.raises(PermissionDenied):
        routing_policy_set_stop_switch(policy=policy, on=True, actor=ml_engineer, reason="Stop")


def test_the_stop_switch_records_who_when_and_why_and_shows_in_routing(policy, compliance_officer):
    stopped = routing_policy_set_stop_switch(
        policy=policy, on=True, actor=compliance_officer, reason="Drift alert on approvals"
    )

    assert stopped.stop_switch_on and stopped.stop_switch_changed_by == compliance_officer
    latest = stopped.history.latest()
    assert (latest.history_user, latest.history_change_reason) == (compliance_officer, "Drift alert on approvals")
    payload = ledger_payload("policy.stop_switch")
    assert payload["on"] is True and payload["reason"] == "Drift alert on approvals"
    snapshot = routing_policy_snapshot(stopped)
    assert snapshot.stop_switch_on and snapshot.stop_switch_by == compliance_officer.username
    assert snapshot.stop_switch_since == stopped.stop_switch_changed_at


def test_the_stop_switch_turns_off_again_and_both_changes_are_logged(policy, compliance_officer):
    routing_policy_set_stop_switch(policy=policy, on=True, actor=compliance_officer, reason="Drift alert")
    restarted = routing_policy_set_stop_switch(policy=policy, on=False, actor=compliance_officer, reason="Fixed")

    assert not restarted.stop_switch_on
    payloads = [
        json.loads(payload)
        for payload in DecisionEvent.objects.filter(event_type="policy.stop_switch").values_list("payload", flat=True)
    ]
    assert [(p["on"], p["reason"]) for p in payloads] == [(True, "Drift alert"), (False, "Fixed")]
    assert [row.history_change_reason for row in restarted.history.order_by("history_id")][1:] == [
        "Drift alert",
        "Fixed",
    ]


def test_flipping_the_stop_switch_to_where_it_already_is_is_refused(policy, compliance_officer):
    with pytest.raises(ValidationError, match="already off"):
        routing_policy_set_stop_switch(policy=policy, on=False, actor=compliance_officer, reason="Off")


def test_a_routed_case_and_its_ledger_event_name_the_exact_policy_version(
    api_client_for, ml_engineer, compliance_officer
):
    """Under which policy? The case records its policy's history row and the SHA-256 of its settings."""
    model = MLModelFactory(name="credit-scoring", owner=ml_engineer)
    ModelVersionFactory(model=model, number=1, stage=Stage.PRODUCTION)
    policy = routing_policy_get_or_create_default(model=model)
    api = api_client_for(ml_engineer)
    case = {"features": {"credit_amount": 1.0, "duration": 2, "age": 30}, "label": "approve", "confidence": 0.9}

    api.post("/api/v1/models/credit-scoring/predictions/", {**case, "external_id": "before"}, format="json")
    routing_policy_update(
        policy=policy, changes={"auto_decide_threshold": 0.95}, actor=compliance_officer, reason="Stricter."
    )
    api.post("/api/v1/models/credit-scoring/predictions/", {**case, "external_id": "after"}, format="json")

    before, after = Prediction.objects.get(external_id="before"), Prediction.objects.get(external_id="after")
    versions = list(policy.history.order_by("history_id").values_list("history_id", flat=True))
    assert (before.policy_history_id, after.policy_history_id) == (versions[0], versions[-1])
    assert before.policy_sha256 != after.policy_sha256
    event = json.loads(DecisionEvent.objects.get(event_type="prediction.routed", object_id=str(after.pk)).payload)
    assert (event["policy_history_id"], event["policy_sha256"]) == (after.policy_history_id, after.policy_sha256)

    version = routing_policy_version_for(before)
    assert version.matches_case and version.history_id == versions[0]
    assert "Decided automatically at a confidence of 0.80 or more." in version.in_words
    assert "Decided automatically at a confidence of 0.95 or more." in routing_policy_version_for(after).in_words
