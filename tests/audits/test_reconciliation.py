"""Governed rows reconciled with the ledger: an edit behind the platform's back shows wherever a trail is shown."""

import json
from dataclasses import dataclass

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audits.ledger import ledger_append
from audits.models import DecisionEvent, LedgerCheck
from audits.selectors.cases import case_trail
from audits.services.reconciliation import (
    Mismatch,
    decision_claims,
    governed_rows_reconcile,
    policy_claims,
    review_claims,
    version_stage_claims,
)
from models_registry.choices import Stage
from models_registry.models import MLModel, ModelVersion
from models_registry.services import (
    ml_model_register,
    model_version_register,
    promotion_request_create,
    promotion_request_decide,
)
from reviews.models import Decision, Prediction, Review, RoutingPolicy
from reviews.services.appeals import decision_reverse_on_appeal
from reviews.services.assignments import assignment_claim_next
from reviews.services.intake import predictions_ingest
from reviews.services.policies import (
    routing_policy_get_or_create_default,
    routing_policy_set_stop_switch,
    routing_policy_update,
)
from reviews.services.reviewing import review_submit
from tests.audits.factories import BiasAuditFactory
from tests.models_registry.factories import CREDIT_FEATURE_SCHEMA
from tests.reviews.factories import DecisionFactory


@dataclass
class Governed:
    """Everything made through the platform's services: what reconciles clean until someone edits a row."""

    model: MLModel
    archived: ModelVersion
    production: ModelVersion
    policy: RoutingPolicy
    auto_decision: Decision
    reviewed: Prediction
    human_decision: Decision
    reviews: list[Review]


def _item(external_id: str, confidence: float) -> dict:
    return {
        "external_id": external_id,
        "features": {"credit_amount": 4200.0, "duration": 24, "age": 41},
        "attributes": {"sex": "female", "age_band": "35-50"},
        "label": "approve",
        "confidence": confidence,
        "scores": {"approve": confidence, "deny": round(1 - confidence, 6)},
    }


@pytest.fixture
def governed(ml_engineer, compliance_officer, reviewer_a, reviewer_b) -> Governed:
    model = ml_model_register(
        owner=ml_engineer,
        name="credit-scoring",
        task="binary",
        labels=["approve", "deny"],
        positive_label="approve",
        feature_schema=CREDIT_FEATURE_SCHEMA,
        sensitive_attributes=["sex", "age_band"],
        intended_use="Pre-screening of consumer credit applications.",
    )
    versions = [model_version_register(model=model, actor=ml_engineer, metrics={"accuracy": 0.9}) for _ in "12"]
    for version in versions:
        request = promotion_request_create(
            version=version, actor=ml_engineer, target_stage=Stage.PRODUCTION, rationale="Better on the holdout."
        )
        BiasAuditFactory(version=version)
        promotion_request_decide(promotion_request=request, actor=compliance_officer, approve=True, reason="Audited.")
    policy = routing_policy_update(
        policy=routing_policy_get_or_create_default(model=model),
        changes={"auto_decide_threshold": 0.9},
        actor=compliance_officer,
        reason="Credit committee, minutes 2026-11",
    )
    predictions_ingest(
        model=model, items=[_item("application-1", 0.95), _item("application-2", 0.6)], actor=ml_engineer
    )
    for reviewer in (reviewer_a, reviewer_b):
        assignment = assignment_claim_next(reviewer=reviewer)
        review_submit(assignment_id=assignment.pk, reviewer=reviewer, label="deny", rationale="Too large.")
    reviewed = Prediction.objects.get(external_id="application-2")
    return Governed(
        model=model,
        archived=ModelVersion.objects.get(pk=versions[0].pk),
        production=ModelVersion.objects.get(pk=versions[1].pk),
        policy=policy,
        auto_decision=Decision.objects.get(prediction__external_id="application-1"),
        reviewed=reviewed,
        human_decision=Decision.objects.get(prediction=reviewed),
        reviews=list(Review.objects.filter(task__prediction=reviewed).order_by("id")),
    )


def _verify_ledger_failure(capsys) -> tuple[CommandError, str]:
    with pytest.raises(CommandError) as failure:
        call_command("verify_ledger")
    return failure.value, capsys.readouterr().err


def test_rows_made_through_the_services_reconcile_clean(governed, capsys):
    assert (governed.archived.stage, governed.production.stage) == (Stage.ARCHIVED, Stage.PRODUCTION)
    assert (governed.human_decision.source, governed.human_decision.final_label) == ("consensus", "deny")

    result = governed_rows_reconcile()

    assert result.clean and result.mismatches == []
    assert result.rows == {
        "reviews.decision": 2,
        "reviews.review": 2,
        "models_registry.modelversion": 2,
        "reviews.routingpolicy": 1,
    }
    assert set(result.unrecorded.values()) == {0}
    call_command("verify_ledger")
    assert "Governed rows reconciled: 7 rows match their latest ledger event." in capsys.readouterr().out


def test_an_appeal_and_policy_changes_are_the_latest_events_and_reconcile_clean(
    governed, adjudicator, compliance_officer
):
    decision_reverse_on_appeal(
        decision=governed.human_decision, final_label="approve", actor=adjudicator, reason="A second income."
    )
    policy = routing_policy_set_stop_switch(policy=governed.policy, on=True, actor=compliance_officer, reason="Drift")
    routing_policy_update(policy=policy, changes={"min_agreement": 0.75}, actor=compliance_officer, reason="Stricter")

    result = governed_rows_reconcile()

    assert result.clean
    latest_decision_event = DecisionEvent.objects.filter(object_id=str(governed.human_decision.pk)).latest("id")
    latest_policy_event = DecisionEvent.objects.filter(object_type="reviews.routingpolicy").latest("id")
    assert (latest_decision_event.event_type, latest_policy_event.event_type) == ("decision.reversed", "policy.changed")
    assert case_trail(prediction_id=governed.reviewed.pk).verified


def test_a_decision_label_edited_in_the_database_is_reported_by_the_command(governed, capsys):
    Decision.objects.filter(pk=governed.auto_decision.pk).update(final_label="deny")
    event = DecisionEvent.objects.get(event_type="decision.made", object_id=str(governed.auto_decision.pk))

    failure, err = _verify_ledger_failure(capsys)

    assert failure.returncode == 1
    assert "1 governed row field(s) differ from their latest ledger event" in str(failure)
    assert (
        f'MISMATCH reviews.decision {governed.auto_decision.pk} final_label: ledger "approve" (event #{event.pk}), '
        'row "deny"'
    ) in err
    check = LedgerCheck.objects.get()
    assert (check.status, check.mismatch_count) == ("intact", 1)  # the chain itself still holds
    assert check.mismatches == [
        {
            "table": "reviews.decision",
            "object_id": governed.auto_decision.pk,
            "field": "final_label",
            "ledger_value": "approve",
            "row_value": "deny",
            "event_id": event.pk,
        }
    ]


def test_a_decision_edited_in_several_fields_reports_each_one(governed, adjudicator):
    Decision.objects.filter(pk=governed.human_decision.pk).update(
        source="adjudication", agreement=0.5, decided_by=adjudicator
    )

    mismatches = governed_rows_reconcile().mismatches

    assert [(m.field, m.ledger_value, m.row_value) for m in mismatches] == [
        ("source", "consensus", "adjudication"),
        ("agreement", 1.0, 0.5),
        ("decided_by", None, adjudicator.pk),
    ]


def test_a_review_label_edited_in_the_database_is_reported_by_the_command_and_the_case_trail(
    governed, capsys, client, compliance_officer
):
    review = governed.reviews[0]
    Review.objects.filter(pk=review.pk).update(label="approve")

    _, err = _verify_ledger_failure(capsys)
    assert f'MISMATCH reviews.review {review.pk} label: ledger "deny"' in err and 'row "approve"' in err

    client.force_login(compliance_officer)
    html = client.get(reverse("admin:case", args=[governed.reviewed.pk])).content.decode()
    assert "all verified" not in html
    assert "ROWS DIFFER FROM THE LEDGER" in html
    assert f"reviews.review {review.pk}" in html


def test_a_decision_label_edited_in_the_database_shows_on_the_case_trail_instead_of_all_verified(
    governed, client, compliance_officer
):
    Decision.objects.filter(pk=governed.human_decision.pk).update(final_label="approve")
    client.force_login(compliance_officer)

    html = client.get(reverse("admin:case", args=[governed.reviewed.pk])).content.decode()

    assert "all verified" not in html
    assert "ROWS DIFFER FROM THE LEDGER" in html
    assert f"reviews.decision {governed.human_decision.pk}" in html
    trail = case_trail(prediction_id=governed.reviewed.pk)
    assert trail.ledger_intact and not trail.verified
    assert [(m.field, m.ledger_value, m.row_value) for m in trail.mismatches] == [("final_label", "deny", "approve")]


def test_a_version_stage_edited_in_the_database_is_reported(governed, capsys):
    ModelVersion.objects.filter(pk=governed.production.pk).update(stage=Stage.STAGING)
    ModelVersion.objects.filter(pk=governed.archived.pk).update(stage=Stage.PRODUCTION)

    _, err = _verify_ledger_failure(capsys)

    assert f'MISMATCH models_registry.modelversion {governed.archived.pk} stage: ledger "archived"' in err
    assert f'MISMATCH models_registry.modelversion {governed.production.pk} stage: ledger "production"' in err


def test_a_policy_threshold_edited_in_the_database_is_reported_on_the_ledger_page(
    governed, client, compliance_officer, django_capture_on_commit_callbacks, capsys
):
    RoutingPolicy.objects.filter(pk=governed.policy.pk).update(auto_decide_threshold=0.5)
    _, err = _verify_ledger_failure(capsys)
    assert f"MISMATCH reviews.routingpolicy {governed.policy.pk} auto_decide_threshold: ledger 0.9" in err

    client.force_login(compliance_officer)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:ledger"))
    html = client.get(reverse("admin:ledger")).content.decode()

    assert "1 field of the governed rows differs from their latest ledger event" in html
    assert "<code>auto_decide_threshold</code>" in html
    assert "<code>0.9</code>" in html and "<code>0.5</code>" in html
    assert "Intact:" in html  # the chain holds: the row, not the ledger, was changed


def test_an_untouched_ledger_page_says_every_row_matches(
    governed, client, compliance_officer, django_capture_on_commit_callbacks
):
    client.force_login(compliance_officer)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:ledger"))

    html = client.get(reverse("admin:ledger")).content.decode()

    assert "All 7 governed rows (decisions, reviews, version stages, routing policies) match" in html


def test_rows_no_event_names_are_counted_apart_not_reported_as_mismatches(governed):
    Decision.objects.filter(pk=governed.auto_decision.pk).update(final_label="deny")
    # A factory writes the row alone, as a fixture or an import would: there is no event to compare it with.
    DecisionFactory(model=governed.model, prediction__version=governed.production, prediction__model=governed.model)

    result = governed_rows_reconcile()

    assert result.unrecorded["reviews.decision"] == 1
    assert result.mismatch_count == 1


def test_reconciliation_streams_in_batches_with_no_query_per_row(governed, ml_engineer):
    def queries(batch_size: int) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert governed_rows_reconcile(batch_size=batch_size).clean
        return len(captured)

    few = queries(batch_size=100)
    predictions_ingest(model=governed.model, items=[_item(f"more-{n}", 0.97) for n in range(20)], actor=ml_engineer)

    assert queries(batch_size=100) == few
    assert queries(batch_size=5) == few + 4  # 22 decisions in 5 batches instead of 1: one event query each


def test_events_written_before_the_payloads_carried_every_field_are_still_read():
    assert decision_claims("decision.made", {"label": "deny", "source": "auto", "agreement": None}, 7) == {
        "final_label": "deny",
        "source": "auto",
        "agreement": None,
    }
    assert decision_claims("decision.reversed", {"label": "deny", "source": "adjudication"}, 7) == {
        "final_label": "deny",
        "source": "adjudication",
        "agreement": None,
        "decided_by": 7,
    }
    assert review_claims("review.submitted", {"label": "deny", "is_adjudication": False}, 3) == {
        "label": "deny",
        "is_adjudication": False,
        "reviewer": 3,
    }
    assert policy_claims("policy.changed", {"changes": {"sla_hours": {"from": 24, "to": 48}}}) == {"sla_hours": 48}
    assert policy_claims("policy.stop_switch", {"on": True}) == {"stop_switch_on": True}
    assert version_stage_claims("version.registered", "5", {}) == [(5, "candidate")]
    old_approval = {"version_id": 5, "target_stage": "production", "status": "approved", "archived_version_id": 4}
    assert version_stage_claims("promotion.decided", "9", old_approval) == [(5, "production"), (4, "archived")]
    assert version_stage_claims("promotion.decided", "9", {**old_approval, "status": "rejected"}) == [(4, "archived")]


def test_an_old_policy_event_without_settings_compares_only_what_it_changed(governed):
    ledger_append(
        event_type="policy.changed",
        object_type="reviews.routingpolicy",
        object_id=governed.policy.pk,
        payload={"policy_id": governed.policy.pk, "changes": {"sla_hours": {"from": 24, "to": 48}}},
    )

    (mismatch,) = governed_rows_reconcile().mismatches

    assert mismatch == Mismatch("reviews.routingpolicy", governed.policy.pk, "sla_hours", 48, 24, mismatch.event_id)
    assert json.loads(DecisionEvent.objects.get(pk=mismatch.event_id).payload)["changes"]["sla_hours"]["to"] == 48
