"""Bias audits as a compliance officer meets them: requested, run, judged, recorded in the ledger, and notified."""

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import TestCase
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from fairlearn.metrics import MetricFrame, demographic_parity_ratio, selection_rate

from audits.choices import AuditPopulation, AuditStatus, AuditTrigger
from audits.fairness import audit_recompute
from audits.ledger import canonical_json, ledger_verify, sha256_hex
from audits.models import BiasAudit, DecisionEvent
from audits.services.bias_audits import (
    MAX_ATTEMPTS,
    STALE_AFTER,
    audit_policy_update,
    bias_audit_request,
    bias_audit_retry,
    bias_audits_requeue_stale,
)
from audits.tasks import bias_audit_scheduled_task
from hitl_platform.roles import Role
from models_registry.choices import Stage
from reviews.choices import DecisionSource
from reviews.models import Prediction, Webhook, WebhookDelivery
from tests.audits.bias_data import Cohort, cases_make
from tests.factories import UserFactory
from tests.models_registry.factories import ModelVersionFactory
from tests.reviews.factories import ReviewFactory, ReviewTaskFactory


@pytest.fixture
def version(db):
    owner = UserFactory(username="owen_owner", email="owen@example.org", roles=[Role.ML_ENGINEER])
    return ModelVersionFactory(stage=Stage.PRODUCTION, model__owner=owner, created_by=owner)


@pytest.fixture
def officer(db):
    return UserFactory(username="cora_compliance", email="cora@example.org", roles=[Role.COMPLIANCE_OFFICER])


def audit(
    officer, version, population=AuditPopulation.MODEL, attributes=("sex",), of_version=None, **scope
) -> BiasAudit:
    """Request an audit and let it run as the eager worker does once the request commits."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        requested = bias_audit_request(
            actor=officer,
            model=version.model,
            population=population,
            sensitive_attributes=list(attributes),
            version=of_version,
            **scope,
        )
    return BiasAudit.objects.get(pk=requested.pk)


def unequal_approvals(version) -> None:
    """Women approved 20 of 40, men 32 of 40: a demographic parity ratio of 0.625."""
    cases_make(
        version,
        [Cohort("female", "<35", 40, model_approved=20), Cohort("male", "<35", 40, model_approved=32)],
    )


def between(result: dict, scope: str, metric: str) -> dict:
    named = next(s for s in result["scopes"] if s["name"] == scope)
    return next(m for m in named["between_groups"] if m["metric"] == metric)


def group(result: dict, scope: str, label: str) -> dict:
    named = next(s for s in result["scopes"] if s["name"] == scope)
    return next(g for g in named["groups"] if g["label"] == label)


class TestModelPopulation:
    def test_an_unequal_model_fails_with_the_four_fifths_rule_in_words(self, officer, version):
        unequal_approvals(version)

        done = audit(officer, version)

        assert (done.status, done.verdict, done.passed, done.progress, done.case_count) == (
            AuditStatus.SUCCEEDED,
            "failed",
            False,
            100,
            80,
        )
        ratio = between(done.result, "sex", "demographic_parity_ratio")
        assert ratio["value"] == pytest.approx(20 / 40 / (32 / 40))
        assert (ratio["lowest_group"], ratio["highest_group"], ratio["verdict"]) == (
            "sex = female",
            "sex = male",
            "failed",
        )
        assert "four-fifths" in ratio["summary"] or "80%" in ratio["summary"]
        assert ratio["interval"][0] < ratio["value"] < ratio["interval"][1]
        assert done.key_ratio == pytest.approx(0.625)
        assert [h.status for h in done.history.order_by("history_date")] == ["queued", "running", "succeeded"]

    def test_the_finished_event_seals_the_verdict_and_the_inputs_that_recompute_it(self, officer, version):
        unequal_approvals(version)

        done = audit(officer, version)

        event = DecisionEvent.objects.get(event_type="audit.finished", object_id=str(done.pk))
        assert '"verdict":"failed"' in event.payload
        assert done.inputs_sha256 == sha256_hex(canonical_json(done.inputs)) and done.inputs_sha256 in event.payload
        again = audit_recompute(inputs={k: v for k, v in done.inputs.items() if k != "population"})
        assert again.as_dict()["scopes"] == done.result["scopes"]
        assert ledger_verify().broken_event_id is None

    def test_truth_is_the_outcome_else_the_final_human_label(self, officer, version):
        cases_make(
            version,
            [
                Cohort("female", "<35", 30, model_approved=30, outcome="approve"),
                Cohort("male", "<35", 30, model_approved=30, final_approved=15, source=DecisionSource.CONSENSUS),
            ],
        )

        done = audit(officer, version)

        assert group(done.result, "sex", "sex = female")["accuracy"] == 1.0
        assert group(done.result, "sex", "sex = male")["accuracy"] == 0.5
        assert done.result["count_with_ground_truth"] == 60

    def test_a_small_group_is_too_small_to_judge_and_never_passes_or_fails(self, officer, version):
        cases_make(
            version,
            [Cohort("female", "<35", 10, model_approved=2), Cohort("male", "<35", 40, model_approved=32)],
        )

        done = audit(officer, version)

        assert group(done.result, "sex", "sex = female")["too_small_to_judge"] is True
        assert between(done.result, "sex", "demographic_parity_ratio")["verdict"] == "too small to judge"
        assert (done.verdict, done.passed) == ("inconclusive", None)

    def test_each_attribute_alone_and_their_intersection(self, officer, version):
        cases_make(
            version,
            [
                Cohort("female", "<35", 40, model_approved=30),
                Cohort("female", "35+", 40, model_approved=34),
                Cohort("male", "<35", 40, model_approved=33),
                Cohort("male", "35+", 40, model_approved=35),
            ],
        )

        done = audit(officer, version, attributes=("sex", "age_band"))

        assert [s["name"] for s in done.result["scopes"]] == ["sex", "age_band", "sex & age_band"]
        assert between(done.result, "sex & age_band", "demographic_parity_ratio")["value"] == pytest.approx(
            (30 / 40) / (35 / 40)
        )
        assert done.passed is True

    def test_the_database_aggregate_gives_metricframes_numbers_over_the_raw_rows(self, officer, version):
        rng = np.random.default_rng(11)
        cohorts = [
            Cohort(sex, band, int(n), model_approved=int(rng.integers(0, n)))
            for sex in ("female", "male", "diverse")
            for band in ("<35", "35+")
            for n in [rng.integers(35, 70)]
        ]
        cases_make(version, cohorts)

        done = audit(officer, version, attributes=("sex", "age_band"))

        rows = pd.DataFrame(
            [
                {
                    "sex": p.sensitive_attributes["sex"],
                    "band": p.sensitive_attributes["age_band"],
                    "label": p.predicted_label,
                }
                for p in Prediction.objects.all()
            ]
        )
        positive = (rows["label"] == "approve").astype(int)
        frame = MetricFrame(
            metrics=selection_rate, y_true=positive, y_pred=positive, sensitive_features=rows[["sex", "band"]]
        )
        expected = demographic_parity_ratio(positive, positive, sensitive_features=rows[["sex", "band"]])
        assert between(done.result, "sex & age_band", "demographic_parity_ratio")["value"] == pytest.approx(
            expected, abs=1e-12
        )
        for (sex, band), rate in frame.by_group.items():
            assert group(done.result, "sex & age_band", f"sex = {sex}, age_band = {band}")["selection_rate"] == (
                pytest.approx(rate, abs=1e-12)
            )


class TestOtherPopulations:
    def test_decisions_are_audited_on_their_final_labels(self, officer, version):
        cases_make(
            version,
            [
                Cohort("female", "<35", 40, model_approved=20, final_approved=30, source=DecisionSource.CONSENSUS),
                Cohort("male", "<35", 40, model_approved=32, final_approved=32),
            ],
        )

        done = audit(officer, version, population=AuditPopulation.DECISIONS)

        assert group(done.result, "sex", "sex = female")["selection_rate"] == 0.75
        assert done.passed is True

    def test_reviewers_are_audited_together_and_each_on_their_own(self, officer, version):
        rita, ravi = UserFactory(username="rita"), UserFactory(username="ravi")
        predictions = cases_make(
            version,
            [
                Cohort("female", "<35", 30, model_approved=30, source=DecisionSource.CONSENSUS),
                Cohort("male", "<35", 30, model_approved=30, source=DecisionSource.CONSENSUS),
            ],
        )
        for prediction in predictions:
            task = ReviewTaskFactory(prediction=prediction)
            female = prediction.sensitive_attributes["sex"] == "female"
            ReviewFactory(assignment__task=task, assignment__reviewer=rita, label="deny" if female else "approve")
            ReviewFactory(assignment__task=task, assignment__reviewer=ravi, label="approve")

        done = audit(officer, version, population=AuditPopulation.REVIEWERS)

        assert done.passed is False
        assert set(done.result["by_reviewer"]) == {"rita", "ravi"}
        assert done.result["by_reviewer"]["rita"]["verdict"] == "failed"
        assert done.result["by_reviewer"]["ravi"]["verdict"] == "passed"

    def test_amplification_says_whether_review_narrowed_the_gap(self, officer, version):
        cases_make(
            version,
            [
                Cohort("female", "<35", 40, model_approved=20, final_approved=28, source=DecisionSource.CONSENSUS),
                Cohort("male", "<35", 40, model_approved=32, final_approved=32, source=DecisionSource.CONSENSUS),
            ],
        )

        done = audit(officer, version, population=AuditPopulation.AMPLIFICATION)

        sex = next(s for s in done.result["scopes"] if s["name"] == "sex")
        assert (sex["ratio_before"], sex["ratio_after"], sex["direction"]) == (
            pytest.approx(0.625),
            pytest.approx(0.875),
            "narrowed",
        )
        assert any("62" in line and "88" in line for line in done.summary) or "narrowed" in sex["summary"]
        assert done.passed is True


class TestRequesting:
    def test_an_unknown_attribute_or_population_is_a_field_error_and_nothing_is_queued(self, officer, version):
        with pytest.raises(ValidationError) as refused:
            bias_audit_request(
                actor=officer, model=version.model, population="people", sensitive_attributes=["religion"]
            )
        assert set(refused.value.message_dict) == {"population", "sensitive_attributes"}
        assert "religion is not a sensitive attribute" in refused.value.message_dict["sensitive_attributes"][0]
        assert not BiasAudit.objects.exists()

    def test_another_teams_engineer_may_not_audit_the_model(self, version):
        stranger = UserFactory(roles=[Role.ML_ENGINEER])
        with pytest.raises(PermissionDenied):
            bias_audit_request(actor=stranger, model=version.model, population="model", sensitive_attributes=["sex"])

    def test_an_audit_with_no_cases_fails_with_the_reason_and_can_be_retried(self, officer, version):
        failed = audit(officer, version)
        assert failed.status == AuditStatus.FAILED and "nothing to audit" in failed.error

        unequal_approvals(version)
        with TestCase.captureOnCommitCallbacks(execute=True):
            bias_audit_retry(audit=failed, actor=officer)

        failed.refresh_from_db()
        assert (failed.status, failed.attempts, failed.error) == (AuditStatus.SUCCEEDED, 2, "")

    def test_a_version_and_period_limit_the_cases(self, officer, version):
        unequal_approvals(version)
        other = ModelVersionFactory(model=version.model, stage=Stage.STAGING)
        cases_make(
            other, [Cohort("female", "<35", 40, model_approved=38), Cohort("male", "<35", 40, model_approved=38)]
        )

        staged = audit(officer, version, of_version=other)
        none_yet = audit(officer, version, since=timezone.now() + timedelta(days=1))

        assert (staged.case_count, staged.passed) == (80, True)
        assert none_yet.status == AuditStatus.FAILED


class TestNotifications:
    def test_a_failed_audit_emails_the_owner_and_the_officers_and_emits_audit_failed(self, officer, version):
        Webhook.objects.create(
            owner=version.model.owner, url="https://example.org/h", events=["audit.failed"], secret="s"
        )
        unequal_approvals(version)

        done = audit(officer, version)

        assert len(mail.outbox) == 1
        assert sorted(mail.outbox[0].to) == ["cora@example.org", "owen@example.org"]
        assert f"Bias audit {done.pk}" in mail.outbox[0].subject and "80%" in mail.outbox[0].body
        delivery = WebhookDelivery.objects.get(event="audit.failed")
        assert (delivery.payload["audit"]["id"], delivery.payload["audit"]["verdict"]) == (done.pk, "failed")

    def test_a_passing_audit_sends_nothing(self, officer, version):
        cases_make(
            version, [Cohort("female", "<35", 40, model_approved=30), Cohort("male", "<35", 40, model_approved=32)]
        )
        audit(officer, version)
        assert mail.outbox == [] and not WebhookDelivery.objects.exists()


class TestRecovery:
    def test_an_audit_whose_worker_died_is_requeued_and_finishes(self, officer, version):
        unequal_approvals(version)
        lost = BiasAudit.objects.create(
            model=version.model,
            population="model",
            sensitive_attributes=["sex"],
            status=AuditStatus.RUNNING,
            attempts=1,
            heartbeat_at=timezone.now() - STALE_AFTER - timedelta(seconds=1),
        )
        alive = BiasAudit.objects.create(
            model=version.model,
            population="model",
            sensitive_attributes=["sex"],
            status=AuditStatus.RUNNING,
            attempts=1,
            heartbeat_at=timezone.now(),
        )

        assert bias_audits_requeue_stale() == [lost.pk]

        lost.refresh_from_db()
        alive.refresh_from_db()
        assert (lost.status, lost.attempts, alive.status) == (AuditStatus.SUCCEEDED, 2, AuditStatus.RUNNING)
        assert "Worker lost: requeued" in [h.history_change_reason for h in lost.history.all()]

    def test_an_audit_that_lost_its_worker_too_often_fails_saying_so(self, version):
        lost = BiasAudit.objects.create(
            model=version.model,
            population="model",
            sensitive_attributes=["sex"],
            status=AuditStatus.RUNNING,
            attempts=MAX_ATTEMPTS,
            heartbeat_at=timezone.now() - STALE_AFTER * 2,
        )
        assert bias_audits_requeue_stale() == []
        lost.refresh_from_db()
        assert lost.status == AuditStatus.FAILED and "stopped 3 times" in lost.error


class TestSchedule:
    def test_a_policy_schedule_is_a_beat_entry_and_its_run_audits_recent_decisions(self, officer, version):
        unequal_approvals(version)

        audit_policy_update(model=version.model, actor=officer, reason="Monthly audit", schedule_every_days=7)

        entry = PeriodicTask.objects.get(name=f"bias-audit-{version.model.name}")
        assert (entry.task, entry.interval.every, entry.interval.period) == ("audits.bias_audit_scheduled", 7, "days")
        with TestCase.captureOnCommitCallbacks(execute=True):
            audit_id = bias_audit_scheduled_task(**{"model_id": version.model_id})
        scheduled = BiasAudit.objects.get(pk=audit_id)
        assert (scheduled.trigger, scheduled.population, scheduled.status) == (
            AuditTrigger.SCHEDULE,
            AuditPopulation.DECISIONS,
            AuditStatus.SUCCEEDED,
        )
        assert scheduled.requested_by is None and scheduled.since is not None

        audit_policy_update(model=version.model, actor=officer, reason="Stop", schedule_every_days=None)
        assert not PeriodicTask.objects.filter(name=f"bias-audit-{version.model.name}").exists()

    def test_policy_changes_need_a_reason_and_are_historised(self, officer, version):
        with pytest.raises(ValidationError):
            audit_policy_update(model=version.model, actor=officer, reason=" ", demographic_parity_ratio_min=0.9)
        policy = audit_policy_update(
            model=version.model, actor=officer, reason="Regulator asks 0.9", demographic_parity_ratio_min=0.9
        )
        latest = policy.history.latest()
        assert (latest.history_user, latest.history_change_reason, latest.demographic_parity_ratio_min) == (
            officer,
            "Regulator asks 0.9",
            0.9,
        )
