"""Retraining from human-verified labels: the training set, its snapshot, the candidate, mitigation and failures."""

import json
import threading

import numpy as np
import pytest
import skops.io as sio
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test import TestCase
from django.utils import timezone

from audits.choices import AuditStatus, AuditTrigger, Mitigation, RetrainingTrigger
from audits.events import LedgerEvent
from audits.models import BiasAudit, DecisionEvent, RetrainingJob
from audits.selectors.training_data import TrainingDataFilter, training_cases
from audits.services import retraining as retraining_service
from audits.services.bias_audits import audit_policy_update
from audits.services.retraining import (
    RetrainingConflict,
    retraining_after_new_labels,
    retraining_request,
    training_set_build,
    training_snapshot,
)
from models_registry import artifacts
from models_registry.artifacts import load_trusted_model
from models_registry.choices import Stage
from models_registry.fair_mixture import FairMixtureClassifier
from models_registry.gates import promotion_gates_run
from models_registry.models import ModelVersion
from models_registry.scoring import score_batch
from reviews.choices import DecisionSource
from reviews.models import Decision
from tests.audits.retraining_data import credit_cases_make
from tests.conftest import on_postgres
from tests.models_registry.factories import ModelVersionFactory
from tests.reviews.factories import PredictionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Model files of each test go to its own folder; the per-process model cache starts empty."""
    settings.MEDIA_ROOT = tmp_path / "media"
    artifacts._MODEL_CACHE.clear()
    yield settings.MEDIA_ROOT
    artifacts._MODEL_CACHE.clear()


@pytest.fixture
def base(ml_engineer):
    """The model's production version: a real scikit-learn pipeline in a skops file."""
    return ModelVersionFactory(
        stage=Stage.PRODUCTION, model__owner=ml_engineer, created_by=ml_engineer, with_artifact=True
    )


def retrained(actor, model, **options) -> RetrainingJob:
    """Request a job and let the eager worker run it once the request commits."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        job = retraining_request(actor=actor, model=model, **options)
    job.refresh_from_db()
    return job


class TestTrainingSet:
    def test_only_human_decided_cases_count_and_a_reported_outcome_beats_the_final_label(self, base):
        consensus = credit_cases_make(base, count=3, label="approve")
        adjudicated = credit_cases_make(base, count=1, label="deny", source=DecisionSource.ADJUDICATION)
        credit_cases_make(base, count=4, label="approve", source=DecisionSource.AUTO)
        gold = PredictionFactory(version=base, model=base.model, is_gold=True, features={"credit_amount": 1})
        Decision.objects.create(prediction=gold, model=base.model, final_label="deny", source=DecisionSource.CONSENSUS)
        purged = credit_cases_make(base, count=1, label="approve")[0]
        type(purged).objects.filter(pk=purged.pk).update(features={})
        type(purged).objects.filter(pk=consensus[0].pk).update(outcome_label="deny")

        rows = list(training_cases(TrainingDataFilter(model_id=base.model_id)))

        assert [row["id"] for row in rows] == [p.pk for p in consensus + adjudicated]
        assert [(row["training_label"], row["label_from"]) for row in rows] == [
            ("deny", "outcome"),
            ("approve", "decision"),
            ("approve", "decision"),
            ("deny", "decision"),
        ]
        assert rows[3]["decision_source"] == "adjudication"

    def test_the_snapshot_hash_names_the_exact_cases_and_labels(self, base):
        cases = credit_cases_make(base, count=40, seed=3)

        first = training_set_build(model=base.model, until=timezone.now())
        again = training_set_build(model=base.model, until=timezone.now())
        Decision.objects.filter(prediction=cases[5]).update(
            final_label="deny" if cases[5].predicted_label == "approve" else "approve"
        )
        relabelled = training_set_build(model=base.model, until=timezone.now())

        assert first.snapshot["cases_sha256"] == again.snapshot["cases_sha256"]
        assert (first.ids, first.labels, first.features) == (again.ids, again.labels, again.features)
        assert relabelled.snapshot["cases_sha256"] != first.snapshot["cases_sha256"]
        assert first.snapshot["row_count"] == 40
        assert sum(first.snapshot["label_balance"].values()) == 40
        assert sum(first.snapshot["group_balance"]["sex"].values()) == 40

    def test_the_hash_does_not_depend_on_the_order_the_cases_come_in(self):
        rebuild = {"model_id": 1}
        one = training_snapshot(
            ids=[3, 1, 2], labels=["a", "b", "a"], sensitive=[{}] * 3, attributes=[], rebuild=rebuild
        )
        two = training_snapshot(
            ids=[1, 2, 3], labels=["b", "a", "a"], sensitive=[{}] * 3, attributes=[], rebuild=rebuild
        )

        assert one["cases_sha256"] == two["cases_sha256"]


class TestJob:
    def test_a_job_registers_a_candidate_with_its_lineage_comparison_audit_and_a_pending_request(
        self, ml_engineer, base
    ):
        credit_cases_make(base, count=400, seed=1)

        job = retrained(ml_engineer, base.model, seed=7)

        assert (job.status, job.error, job.progress) == (AuditStatus.SUCCEEDED, "", 100)
        candidate = job.candidate_version
        assert (candidate.stage, candidate.parent, candidate.retraining_job_id) == (Stage.CANDIDATE, base, job.pk)
        assert candidate.number == base.number + 1
        base.refresh_from_db()
        assert base.stage == Stage.PRODUCTION, "nothing is promoted by a job"
        assert [row["metric"] for row in job.comparison["metrics"]] == ["accuracy", "f1", "roc_auc", "brier"]
        assert all(row["base"] is not None and row["candidate"] is not None for row in job.comparison["metrics"])
        assert job.comparison["holdout_count"] == 80 and job.comparison["training_count"] == 320
        assert candidate.metrics["accuracy"] == job.comparison["metrics"][0]["candidate"]
        assert job.snapshot["row_count"] == 400 and job.snapshot["drift_reference"]["numeric"]
        request = job.promotion_request
        assert (request.version, request.target_stage, request.status) == (candidate, Stage.STAGING, "pending")
        assert (job.audit.version, job.audit.trigger, job.audit.status) == (
            candidate,
            AuditTrigger.RETRAINING,
            AuditStatus.SUCCEEDED,
        )
        gates = {gate.name: gate for gate in promotion_gates_run(version=candidate, target_stage=Stage.STAGING)}
        assert gates["bias_audit"].passed == job.audit.passed
        assert f"#{job.audit.pk}" in gates["bias_audit"].reason
        events = DecisionEvent.objects.filter(object_type="audits.retrainingjob", object_id=str(job.pk))
        assert list(events.order_by("id").values_list("event_type", flat=True)) == [
            LedgerEvent.RETRAINING_REQUESTED,
            LedgerEvent.RETRAINING_FINISHED,
        ]
        assert json.loads(events.last().payload)["cases_sha256"] == job.snapshot["cases_sha256"]
        statuses = [h.status for h in job.history.order_by("history_date", "history_id")]
        assert statuses == ["queued", "running", "succeeded"]

    def test_the_candidate_loads_under_the_allowlist_and_scores_like_the_platform_scores(self, ml_engineer, base):
        credit_cases_make(base, count=300, seed=2)

        candidate = retrained(ml_engineer, base.model).candidate_version

        estimator = load_trusted_model(candidate)
        scores = score_batch(
            model=base.model,
            version=candidate,
            features=[
                {"credit_amount": 1200.0, "duration": 24, "age": 40},
                {"credit_amount": 19000.0, "duration": 6, "age": 30},
            ],
        )
        assert [score.label for score in scores] == ["approve", "deny"]
        assert list(estimator.classes_) == ["approve", "deny"]

    def test_the_same_seed_gives_the_same_candidate_figures(self, ml_engineer, base):
        credit_cases_make(base, count=300, seed=4)

        first = retrained(ml_engineer, base.model, seed=11)
        second = retrained(ml_engineer, base.model, seed=11)
        other = retrained(ml_engineer, base.model, seed=12)

        assert first.comparison == second.comparison
        assert first.snapshot["cases_sha256"] == second.snapshot["cases_sha256"]
        assert other.comparison["metrics"] != first.comparison["metrics"]

    def test_mitigation_makes_a_candidate_that_passes_the_four_fifths_rule_where_the_base_fails(
        self, ml_engineer, base
    ):
        credit_cases_make(base, count=3000, seed=5, women_amount_factor=1.6)

        plain = retrained(ml_engineer, base.model, holdout_share=0.3)
        mitigated = retrained(
            ml_engineer,
            base.model,
            holdout_share=0.3,
            mitigation=Mitigation.DEMOGRAPHIC_PARITY,
            mitigation_attribute="sex",
        )

        def parity(job, side):
            row = next(
                r
                for r in job.comparison["fairness"]
                if r["scope"] == "sex" and r["metric"] == "demographic_parity_ratio"
            )
            return row[side], row[f"{side}_verdict"]

        assert parity(plain, "base")[0] < 0.8 and parity(plain, "base")[1] == "failed"
        assert parity(plain, "candidate")[1] == "failed", "retraining alone keeps the gap"
        assert parity(mitigated, "candidate")[0] >= 0.8 and parity(mitigated, "candidate")[1] == "passed"
        estimator = load_trusted_model(mitigated.candidate_version)
        assert isinstance(estimator, FairMixtureClassifier) and list(estimator.classes_) == ["deny", "approve"]
        # It decides from the features alone: no sensitive attribute is passed, none is needed.
        scores = score_batch(
            model=base.model,
            version=mitigated.candidate_version,
            features=[{"credit_amount": 1000.0 + n, "duration": 24, "age": 40} for n in range(20)],
        )
        assert {score.label for score in scores} <= {"approve", "deny"}
        assert sio.get_untrusted_types(data=mitigated.candidate_version.artifact.open("rb").read()) == [
            "models_registry.fair_mixture.FairMixtureClassifier"
        ]


class TestFailures:
    def test_too_few_labels_fails_with_the_minimum_and_leaves_no_version(self, ml_engineer, base):
        credit_cases_make(base, count=50)

        job = retrained(ml_engineer, base.model)

        assert job.status == AuditStatus.FAILED
        assert job.error == (
            f"Only 50 cases of {base.model.name} were decided by humans; retraining needs at least 100 "
            "(the model's audit policy)."
        )
        assert ModelVersion.objects.filter(model=base.model).count() == 1
        assert DecisionEvent.objects.filter(event_type=LedgerEvent.RETRAINING_FAILED).count() == 1

    def test_a_single_class_fails(self, ml_engineer, base):
        credit_cases_make(base, count=120, label="approve")

        job = retrained(ml_engineer, base.model)

        assert job.error == "Every human-decided case has the same label (approve): there is nothing to learn."

    def test_a_base_version_without_a_model_file_fails(self, ml_engineer):
        base = ModelVersionFactory(stage=Stage.PRODUCTION, model__owner=ml_engineer, created_by=ml_engineer)
        credit_cases_make(base, count=150)

        job = retrained(ml_engineer, base.model)

        assert job.status == AuditStatus.FAILED
        assert job.error.startswith(f"Version {base.number} cannot be retrained: ")
        assert "has no model file" in job.error

    def test_a_pipeline_that_cannot_be_cloned_fails(self, ml_engineer, base, monkeypatch):
        credit_cases_make(base, count=150)

        def refuse(estimator):
            raise TypeError("Cannot clone object: it does not implement get_params")

        monkeypatch.setattr(retraining_service, "clone", refuse)
        job = retrained(ml_engineer, base.model)

        assert job.error == (
            f"The pipeline of version {base.number} cannot be cloned (Cannot clone object: it does not implement "
            "get_params); retrain it outside the platform."
        )

    def test_a_failure_after_the_candidate_was_written_leaves_no_version_and_no_file(
        self, ml_engineer, base, monkeypatch, media_root
    ):
        credit_cases_make(base, count=150)
        files_before = sorted(media_root.rglob("*.skops"))

        def broken(**kwargs):
            raise ValidationError({"target_stage": "The registry is closed for the night."})

        monkeypatch.setattr(retraining_service, "promotion_request_create", broken)
        job = retrained(ml_engineer, base.model)

        assert (job.status, job.error) == (AuditStatus.FAILED, "The registry is closed for the night.")
        assert ModelVersion.objects.filter(model=base.model).count() == 1
        assert not BiasAudit.objects.filter(trigger=AuditTrigger.RETRAINING).exists()
        assert sorted(media_root.rglob("*.skops")) == files_before == [media_root / base.artifact.name]

    def test_bad_options_are_field_errors_and_queue_nothing(self, ml_engineer, base):
        with pytest.raises(ValidationError) as refused:
            retraining_request(
                actor=ml_engineer,
                model=base.model,
                mitigation=Mitigation.EQUALIZED_ODDS,
                mitigation_attribute="religion",
                holdout_share=0.9,
            )

        assert set(refused.value.message_dict) == {"mitigation_attribute", "holdout_share"}
        assert not RetrainingJob.objects.exists()

    def test_another_engineer_may_not_retrain_the_model(self, other_ml_engineer, base):
        with pytest.raises(PermissionDenied):
            retraining_request(actor=other_ml_engineer, model=base.model)


class TestOneJobPerModel:
    def test_a_second_request_while_one_is_queued_names_the_queued_job(self, ml_engineer, base):
        first = retraining_request(actor=ml_engineer, model=base.model)

        with pytest.raises(RetrainingConflict) as conflict:
            retraining_request(actor=ml_engineer, model=base.model)

        assert conflict.value.job == first
        assert (
            str(conflict.value)
            == f"Retraining job {first.pk} of {base.model.name} is already queued; wait for it to finish."
        )

    @pytest.mark.django_db(transaction=True)
    @pytest.mark.skipif(not on_postgres(), reason="needs PostgreSQL (set DATABASE_URL)")
    def test_concurrent_requests_make_exactly_one_job(self, ml_engineer, base, monkeypatch):
        # Patched once, before the threads: a patch per thread would race and could leave it in place for
        # the tests after this one.
        monkeypatch.setattr(retraining_service, "job_send", lambda job, task: None)
        barrier = threading.Barrier(4)
        outcomes = []

        def ask():
            barrier.wait()
            try:
                outcomes.append(retraining_request(actor=ml_engineer, model=base.model).pk)
            except RetrainingConflict as exc:
                outcomes.append(f"conflict {exc.job.pk}")
            finally:
                connection.close()

        threads = [threading.Thread(target=ask) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        job = RetrainingJob.objects.get()
        assert sorted(map(str, outcomes)) == sorted([str(job.pk)] + [f"conflict {job.pk}"] * 3)


def test_enough_new_human_labels_start_a_job_where_the_policy_asks_for_it(ml_engineer, compliance_officer, base):
    audit_policy_update(
        model=base.model, actor=compliance_officer, reason="Retrain weekly volumes.", retraining_after_new_labels=150
    )
    credit_cases_make(base, count=100)
    assert retraining_after_new_labels() == []

    credit_cases_make(base, count=60)
    with TestCase.captureOnCommitCallbacks(execute=True):
        queued = retraining_after_new_labels()

    job = RetrainingJob.objects.get()
    assert queued == [job.pk]
    assert (job.trigger, job.requested_by) == (RetrainingTrigger.NEW_LABELS, None)
    job.refresh_from_db()
    assert job.status == AuditStatus.SUCCEEDED
    assert np.isclose(sum(job.snapshot["label_balance"].values()), 160)


def test_a_retraining_schedule_set_on_the_policy_is_a_beat_entry_that_queues_a_scheduled_job(compliance_officer, base):
    from django_celery_beat.models import PeriodicTask

    from hitl_platform.celery import app as celery_app

    audit_policy_update(model=base.model, actor=compliance_officer, reason="Weekly.", retraining_every_days=7)
    entry = PeriodicTask.objects.get(name=f"retraining-{base.model.name}")
    assert (entry.task, entry.interval.every, json.loads(entry.kwargs)) == (
        "audits.retraining_scheduled",
        7,
        {"model_id": base.model_id},
    )
    assert entry.task in celery_app.tasks

    celery_app.tasks[entry.task].apply(kwargs=json.loads(entry.kwargs))

    job = RetrainingJob.objects.get()
    assert (job.trigger, job.requested_by) == (RetrainingTrigger.SCHEDULE, None)
    audit_policy_update(model=base.model, actor=compliance_officer, reason="Stop.", retraining_every_days=None)
    assert not PeriodicTask.objects.filter(name=f"retraining-{base.model.name}").exists()
