"""Production needs a recent passing bias audit of the version's labels: the gate audits registers."""

from datetime import timedelta

import pytest
from django.test import TestCase
from django.utils import timezone

from audits.choices import AuditTrigger
from audits.models import BiasAudit
from audits.services.bias_audits import audit_policy_update
from models_registry.choices import PromotionStatus, Stage
from models_registry.services import (
    PromotionBlocked,
    promotion_request_create,
    promotion_request_decide,
    promotion_request_override_gate,
)
from tests.audits.bias_data import Cohort, cases_make
from tests.audits.factories import BiasAuditFactory
from tests.models_registry.factories import ModelVersionFactory


@pytest.fixture
def candidate(ml_engineer):
    return ModelVersionFactory(stage=Stage.STAGING, model__owner=ml_engineer, created_by=ml_engineer)


def request_production(version, actor):
    with TestCase.captureOnCommitCallbacks(execute=True):
        return promotion_request_create(
            version=version, actor=actor, target_stage=Stage.PRODUCTION, rationale="Ran a month in staging."
        )


def gate_of(request) -> dict:
    request.refresh_from_db()
    return next(result for result in request.gate_results if result["name"] == "bias_audit")


def test_production_is_blocked_without_an_audit_and_says_what_to_run(candidate, ml_engineer, compliance_officer):
    request = request_production(candidate, ml_engineer)

    with pytest.raises(PromotionBlocked):
        promotion_request_decide(promotion_request=request, actor=compliance_officer, approve=True, reason="Go.")

    gate = gate_of(request)
    assert gate["passed"] is False and "could not run: No cases match" in gate["reason"]
    candidate.refresh_from_db()
    assert candidate.stage == Stage.STAGING


def test_requesting_production_audits_the_version_and_a_pass_opens_the_gate_with_the_audit_linked(
    candidate, ml_engineer, compliance_officer
):
    cases_make(
        candidate, [Cohort("female", "<35", 40, model_approved=30), Cohort("male", "<35", 40, model_approved=32)]
    )

    request = request_production(candidate, ml_engineer)

    audit = BiasAudit.objects.get(promotion_request=request)
    assert (audit.trigger, audit.version, audit.population, audit.passed) == (
        AuditTrigger.PROMOTION,
        candidate,
        "model",
        True,
    )
    promotion_request_decide(promotion_request=request, actor=compliance_officer, approve=True, reason="Audited.")
    gate = gate_of(request)
    assert gate["passed"] is True and gate["evidence"]["audit_id"] == audit.pk
    assert gate["evidence"]["audit_url"].endswith(f"/audits/biasaudit/{audit.pk}/change/")
    assert request.status == PromotionStatus.APPROVED


def test_a_failed_audit_of_the_version_blocks_production(candidate, ml_engineer, compliance_officer):
    cases_make(
        candidate, [Cohort("female", "<35", 40, model_approved=12), Cohort("male", "<35", 40, model_approved=32)]
    )
    request = request_production(candidate, ml_engineer)

    with pytest.raises(PromotionBlocked):
        promotion_request_decide(promotion_request=request, actor=compliance_officer, approve=True, reason="Go.")

    audit = BiasAudit.objects.get(promotion_request=request)
    assert f"Bias audit #{audit.pk}" in gate_of(request)["reason"] and "failed" in gate_of(request)["reason"]


def test_an_audit_older_than_the_models_limit_is_stale(candidate, ml_engineer, compliance_officer):
    audit_policy_update(model=candidate.model, actor=compliance_officer, reason="Quarterly.", gate_max_age_days=7)
    BiasAuditFactory(version=candidate, finished_at=timezone.now() - timedelta(days=8))
    other_version = ModelVersionFactory(model=candidate.model, stage=Stage.STAGING)
    BiasAuditFactory(version=other_version)
    request = request_production(candidate, ml_engineer)

    with pytest.raises(PromotionBlocked):
        promotion_request_decide(promotion_request=request, actor=compliance_officer, approve=True, reason="Go.")

    assert "older than 7 days" in gate_of(request)["reason"]


def test_an_administrator_may_override_the_audit_gate_with_a_reason_on_the_record(
    candidate, ml_engineer, compliance_officer, admin_user
):
    request = request_production(candidate, ml_engineer)

    promotion_request_override_gate(
        promotion_request=request, gate="bias_audit", actor=admin_user, reason="Pilot approved by the regulator."
    )
    promotion_request_decide(promotion_request=request, actor=compliance_officer, approve=True, reason="Go.")

    gate = gate_of(request)
    assert gate["passed"] is True and "Pilot approved by the regulator." in gate["reason"]
    assert "could not run" in gate["reason"]


def test_staging_needs_no_audit(ml_engineer, compliance_officer):
    version = ModelVersionFactory(model__owner=ml_engineer, created_by=ml_engineer)
    with TestCase.captureOnCommitCallbacks(execute=True):
        request = promotion_request_create(
            version=version, actor=ml_engineer, target_stage=Stage.STAGING, rationale="Shadow run."
        )
    promotion_request_decide(promotion_request=request, actor=compliance_officer, approve=True, reason="Go.")

    assert gate_of(request)["passed"] is True and not BiasAudit.objects.exists()
