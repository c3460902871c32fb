"""The demo of `make demo`: the whole human-in-the-loop story on real data, through the real services.

The German credit data (1,000 real loan applications, demo_data/german_credit.csv, DbCL v1.0) is split, seeded:
40 % trains a scikit-learn pipeline, the rest arrives as cases, each once. The model is registered with a full
model card, approved for staging by a second person, scores the first applications in staging (every one reviewed),
is audited for bias, and goes to production through its gates (an administrator's logged override, with a
compensating routing rule, when the audit fails). The remaining applications are routed: decided automatically,
sampled for QA, caught by rules, or sent to people because the model is unsure. Simulated reviewers answer from
the real outcome with stated error rates, one of them biased against applicants under 25; disagreements go to an
adjudicator. Outcomes are reported from the real labels; the four bias audits run; where the model or the process
fails the four-fifths rule, a fairness-mitigated retraining makes a candidate that waits for the compliance officer.
Every figure the demo prints is computed from this run.

Loading is idempotent: a second run finds the model and adds nothing.
"""

import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import skops.io as sio
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from audits.choices import AuditPopulation, AuditStatus, Mitigation
from audits.models import BiasAudit, RetrainingJob
from audits.selectors.outcomes import OutcomeRow, outcome_table
from audits.services.bias_audits import bias_audit_request, bias_audit_run
from audits.services.retraining import retraining_request, retraining_run
from models_registry.choices import ModelTask, RiskTier, Stage
from models_registry.gates import promotion_gates_run
from models_registry.models import MLModel
from models_registry.services import (
    ml_model_register,
    model_version_register,
    promotion_request_create,
    promotion_request_decide,
    promotion_request_override_gate,
)
from reviews.choices import TaskStatus
from reviews.models import Assignment, Prediction, ReviewTask
from reviews.services.assignments import assignment_claim_next
from reviews.services.intake import predictions_ingest
from reviews.services.outcomes import prediction_report_outcome
from reviews.services.policies import routing_policy_get_or_create_default, routing_policy_update
from reviews.services.reviewing import review_submit, task_adjudicate

DEMO_MODEL_NAME = "credit-scoring"
DATA_FILE = Path(__file__).resolve().parent / "demo_data" / "german_credit.csv"
SEED = 7
TRAIN_SHARE = 0.4
STAGING_CASES = 150
BATCH_SIZE = 100
UNDER_25, OVER_25 = "under 25", "25 and over"
NUMERIC = ["credit_amount", "duration", "age", "job"]
CATEGORICAL = ["housing", "saving_accounts", "checking_account", "purpose"]
FEATURES = NUMERIC + CATEGORICAL


def german_credit() -> pd.DataFrame:
    """The 1,000 applications, their real outcome as the model's labels, and the age band kept apart."""
    data = pd.read_csv(DATA_FILE)
    data["label"] = np.where(data["risk"] == 1, "approve", "deny")
    data["age_band"] = np.where(data["age"] < 25, UNDER_25, OVER_25)
    data["application"] = [f"application-{number:04d}" for number in range(1, len(data) + 1)]
    return data


def feature_schema(data: pd.DataFrame) -> dict:
    described = {
        "credit_amount": {"type": "number", "minimum": 0, "title": "Credit amount", "description": "In Deutsche Mark"},
        "duration": {"type": "integer", "minimum": 1, "title": "Duration", "description": "Term in months"},
        "age": {"type": "integer", "minimum": 18, "title": "Age", "description": "Applicant's age in years"},
        "job": {
            "type": "integer",
            "minimum": 0,
            "maximum": 3,
            "title": "Job",
            "description": "0 unskilled to 3 highly skilled",
        },
    }
    for name in CATEGORICAL:
        described[name] = {
            "type": "string",
            "enum": sorted(data[name].unique()),
            "title": name.replace("_", " ").capitalize(),
        }
    return {
        "type": "object",
        "properties": described,
        "required": FEATURES,
        "additionalProperties": False,
        "x-feature-order": FEATURES,
    }


def credit_pipeline() -> Pipeline:
    return Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [
                        ("numbers", StandardScaler(), NUMERIC),
                        ("categories", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
                    ]
                ),
            ),
            ("classifier", LogisticRegression(max_iter=1000)),
        ]
    )


def skops_file(estimator) -> bytes:
    buffer = io.BytesIO()
    sio.dump(estimator, buffer)
    return buffer.getvalue()


@dataclass(frozen=True)
class SimulatedReviewer:
    """A reviewer's behaviour: the real outcome, wrong with ``error_rate``; and with ``under_25_denial`` the share
    of under-25 applicants who repaid that this reviewer still denies (a stated, measurable bias)."""

    user: User
    error_rate: float
    under_25_denial: float = 0.0

    def answer(self, truth: str, age: int, rng: np.random.Generator) -> str:
        if self.under_25_denial and age < 25 and truth == "approve" and rng.random() < self.under_25_denial:
            return "deny"
        if rng.random() < self.error_rate:
            return "deny" if truth == "approve" else "approve"
        return truth


@dataclass(frozen=True)
class DemoCast:
    ml_engineer: User
    compliance_officer: User
    administrator: User
    reviewers: tuple[SimulatedReviewer, ...]
    adjudicator: SimulatedReviewer


@dataclass
class DemoSummary:
    created: bool
    predictions: int
    open_tasks: int
    steps: list[str] = field(default_factory=list)
    outcomes: dict[str, list[OutcomeRow]] = field(default_factory=dict)


Progress = Callable[[Iterable, str, int], Iterable]


def _no_progress(items: Iterable, _label: str, _total: int) -> Iterable:
    return items


def demo_data_load(cast: DemoCast, *, progress: Progress = _no_progress, cases: int | None = None) -> DemoSummary:
    """Tell the story once; ``cases`` shortens it (tests), ``progress`` wraps each long step (tqdm)."""
    model = MLModel.objects.filter(name=DEMO_MODEL_NAME).first()
    if model is not None:
        return _summary(model, created=False, steps=["The demo is already loaded: nothing was added."])
    story = _Story(cast, progress, cases)
    story.tell()
    return _summary(story.model, created=True, steps=story.steps)


def _summary(model: MLModel, *, created: bool, steps: list[str]) -> DemoSummary:
    open_statuses = [TaskStatus.OPEN, TaskStatus.IN_REVIEW, TaskStatus.ESCALATED]
    return DemoSummary(
        created=created,
        predictions=model.predictions.count(),
        open_tasks=ReviewTask.objects.filter(model=model, status__in=open_statuses).count(),
        steps=steps,
        outcomes={
            attribute: outcome_table(model_id=model.pk, attribute=attribute) for attribute in ("age_band", "sex")
        },
    )


class _Story:
    def __init__(self, cast: DemoCast, progress: Progress, cases: int | None):
        self.cast = cast
        self.progress = progress
        self.rng = np.random.default_rng(SEED)
        self.steps: list[str] = []
        data = german_credit()
        train, stream = train_test_split(data, train_size=TRAIN_SHARE, stratify=data["label"], random_state=SEED)
        self.train = train
        self.stream = stream if cases is None else stream.iloc[:cases]
        self.staging_cases = min(STAGING_CASES, len(self.stream) // 4)
        self.truth = dict(zip(data["application"], data["label"], strict=True))
        self.model: MLModel

    def tell(self) -> None:
        self._register_and_stage()
        staging, production = self.stream.iloc[: self.staging_cases], self.stream.iloc[self.staging_cases :]
        self._ingest(staging, version=1, label="Applications scored in staging")
        self._review_everything("Simulated reviewers, staging cases")
        self._report_outcomes("Outcomes reported, staging cases")
        self._to_production()
        self._ingest(production, version=None, label="Applications routed in production")
        self._review_everything("Simulated reviewers, production cases")
        self._report_outcomes("Outcomes reported, production cases")
        failed = self._audit_everything()
        if failed:
            self._retrain_mitigated(failed)

    def _register_and_stage(self) -> None:
        cast = self.cast
        with transaction.atomic():
            model = ml_model_register(
                owner=cast.ml_engineer,
                name=DEMO_MODEL_NAME,
                task=ModelTask.BINARY,
                labels=["approve", "deny"],
                positive_label="approve",
                feature_schema=feature_schema(german_credit()),
                sensitive_attributes=["sex", "age_band"],
                risk_tier=RiskTier.HIGH,
                description="Scores consumer credit applications: approve (expected to repay) or deny.",
                intended_use="Pre-screening of consumer credit applications, with human review of unsure, large "
                "and sampled cases.",
                out_of_scope_use="Mortgages, business loans, and any fully automated refusal.",
                limitations="Trained on 400 applications of the German credit data (1970s Germany); sees amount, "
                "term, age, job, housing, savings, checking account and purpose, not income.",
                ethical_considerations="Sex and age band are kept apart from what reviewers see and audited for "
                "bias; age is a feature, so the under-25 band is watched closely.",
                review_guidelines="Approve when the applicant is likely to repay on these terms. Write why; a "
                "large loan to a young applicant is not a reason on its own.",
                reason="Demo: model registered.",
            )
            pipeline = credit_pipeline().fit(self.train[FEATURES], self.train["label"])
            version = model_version_register(
                model=model,
                actor=cast.ml_engineer,
                metrics={
                    "training_cases": len(self.train),
                    "accuracy_on_training": round(
                        float((pipeline.predict(self.train[FEATURES]) == self.train["label"]).mean()), 4
                    ),
                },
                description=f"Logistic regression on {len(self.train)} German credit applications (seed {SEED}).",
                artifact=ContentFile(skops_file(pipeline), name="credit-scoring-v1.skops"),
                reason="Demo: first version.",
            )
            staging = promotion_request_create(
                version=version,
                actor=cast.ml_engineer,
                target_stage=Stage.STAGING,
                rationale="Trained and validated; ready to score real applications with every case reviewed.",
            )
            promotion_request_decide(
                promotion_request=staging,
                actor=cast.compliance_officer,
                approve=True,
                reason="Gates passed; staging first, with every case reviewed by people.",
            )
            routing_policy_update(
                policy=routing_policy_get_or_create_default(model=model),
                changes={
                    "auto_decide_threshold": 0.75,
                    "qa_sample_rate": 0.1,
                    "reviews_required": 2,
                    "rules": [
                        {
                            "field": "credit_amount",
                            "operator": ">",
                            "value": 10000,
                            "action": "review",
                            "reason": "large loans need review",
                        }
                    ],
                },
                actor=cast.compliance_officer,
                reason="Demo: large loans, unsure cases and a 10 % QA sample go to two reviewers.",
            )
        self.model = model
        self.steps.append(f"Version 1 trained on {len(self.train)} real applications, registered and put in staging.")

    def _ingest(self, rows: pd.DataFrame, *, version: int | None, label: str) -> None:
        items = [
            {
                "external_id": row.application,
                "features": {
                    "credit_amount": float(row.credit_amount),
                    "duration": int(row.duration),
                    "age": int(row.age),
                    "job": int(row.job),
                    **{name: str(getattr(row, name)) for name in CATEGORICAL},
                },
                "attributes": {"sex": row.sex, "age_band": row.age_band},
                **({"version": version} if version else {}),
            }
            for row in rows.itertuples(index=False)
        ]
        batches = [items[start : start + BATCH_SIZE] for start in range(0, len(items), BATCH_SIZE)]
        for batch in self.progress(batches, label, len(batches)):
            predictions_ingest(model=self.model, items=batch, actor=self.cast.ml_engineer)
        self.steps.append(f"{label}: {len(items)}.")

    def _review_everything(self, label: str) -> None:
        """Round robin: each simulated reviewer claims the most urgent case they may take and answers it; then the
        adjudicator decides every case the reviewers disagreed on."""
        open_tasks = ReviewTask.objects.filter(model=self.model, status__in=[TaskStatus.OPEN, TaskStatus.IN_REVIEW])
        slots = sum(task.reviews_required for task in open_tasks)
        bar = iter(self.progress(range(slots), label, slots))
        idle = 0
        while idle < len(self.cast.reviewers):
            idle = 0
            for reviewer in self.cast.reviewers:
                assignment = assignment_claim_next(reviewer=reviewer.user)
                if assignment is None:
                    idle += 1
                    continue
                prediction = assignment.task.prediction
                truth = self.truth[prediction.external_id]
                answer = reviewer.answer(truth, prediction.features["age"], self.rng)
                # The platform measures time spent from the claim: the demo's reviewer claimed it a while ago.
                thinking = timedelta(seconds=int(self.rng.integers(40, 300)))
                Assignment.objects.filter(pk=assignment.pk).update(claimed_at=timezone.now() - thinking)
                review_submit(
                    assignment_id=assignment.pk,
                    reviewer=reviewer.user,
                    label=answer,
                    rationale=_rationale(prediction.features, answer),
                )
                next(bar, None)
        escalated = list(
            ReviewTask.objects.filter(model=self.model, status=TaskStatus.ESCALATED).select_related("prediction")
        )
        adjudicator = self.cast.adjudicator
        for task in escalated:
            truth = self.truth[task.prediction.external_id]
            answer = adjudicator.answer(truth, task.prediction.features["age"], self.rng)
            task_adjudicate(
                task_id=task.pk,
                adjudicator=adjudicator.user,
                label=answer,
                reason=f"The reviewers disagreed; {_rationale(task.prediction.features, answer).lower()}",
                time_spent_seconds=int(self.rng.integers(120, 600)),
            )
        self.steps.append(f"{label}: {slots} reviews given, {len(escalated)} disagreements adjudicated.")

    def _report_outcomes(self, label: str) -> None:
        """Months later the lender reports who repaid: the real label of each decided case, once."""
        waiting = list(
            Prediction.objects.filter(model=self.model, decision__isnull=False, outcome_label="").order_by("id")
        )
        for prediction in self.progress(waiting, label, len(waiting)):
            prediction_report_outcome(
                prediction=prediction,
                label=self.truth[prediction.external_id],
                actor=self.cast.ml_engineer,
                reason="Demo: the repayment record of the German credit data.",
            )

    def _audit(self, population: str, version=None) -> BiasAudit:
        audit = bias_audit_request(
            actor=self.cast.compliance_officer,
            model=self.model,
            population=population,
            sensitive_attributes=self.model.sensitive_attributes,
            version=version,
        )
        # The embedded default ran it when the request committed; with a real worker, run it here if none has.
        bias_audit_run(audit_id=audit.pk)
        audit.refresh_from_db()
        return audit

    def _to_production(self) -> None:
        cast, version = self.cast, self.model.versions.get(number=1)
        audit = self._audit(AuditPopulation.MODEL, version=version)
        self.steps.append(f"Bias audit {audit.pk} of version 1 in staging: {_verdict(audit)}")
        request = promotion_request_create(
            version=version,
            actor=cast.ml_engineer,
            target_stage=Stage.PRODUCTION,
            rationale=f"Scored {self.staging_cases} applications in staging, all reviewed.",
        )
        gate = next(
            result
            for result in promotion_gates_run(version=version, target_stage=Stage.PRODUCTION)
            if result.name == "bias_audit"
        )
        if not gate.passed:
            self.steps.append(f"The production gate blocked version 1: {gate.reason}")
            routing_policy_update(
                policy=routing_policy_get_or_create_default(model=self.model),
                changes={
                    "rules": [
                        *routing_policy_get_or_create_default(model=self.model).rules,
                        {
                            "field": "age",
                            "operator": "<",
                            "value": 25,
                            "action": "review",
                            "reason": "under-25 applicants are reviewed while the model's gap is open",
                        },
                    ]
                },
                actor=cast.compliance_officer,
                reason="Demo: a compensating control for the failed bias audit: under-25 applications go to people.",
            )
            promotion_request_override_gate(
                promotion_request=request,
                gate="bias_audit",
                actor=cast.administrator,
                reason="Pilot under a compensating control: every under-25 application is reviewed by two people "
                "until a mitigated version passes its audit.",
            )
            self.steps.append(
                "An administrator overrode the gate, with a reason; a rule now sends every under-25 application to "
                "people."
            )
        promotion_request_decide(
            promotion_request=request,
            actor=cast.compliance_officer,
            approve=True,
            reason="Gates passed or overridden with a reason; model card complete; human review in place.",
        )
        self.steps.append("Version 1 approved for production by the compliance officer.")

    def _audit_everything(self) -> list[BiasAudit]:
        version = self.model.versions.get(number=1)
        audits = [self._audit(AuditPopulation.MODEL, version=version)]
        audits += [
            self._audit(population)
            for population in (AuditPopulation.REVIEWERS, AuditPopulation.DECISIONS, AuditPopulation.AMPLIFICATION)
        ]
        for audit in audits:
            population = audit.get_population_display().lower()
            self.steps.append(f"Bias audit {audit.pk} ({population}): {_verdict(audit)}")
        return [audit for audit in audits if audit.status == AuditStatus.SUCCEEDED and audit.passed is False]

    def _retrain_mitigated(self, failed: list[BiasAudit]) -> None:
        job = retraining_request(
            actor=self.cast.ml_engineer,
            model=self.model,
            mitigation=Mitigation.DEMOGRAPHIC_PARITY,
            mitigation_attribute="age_band",
            holdout_share=0.3,
            seed=SEED,
        )
        # The embedded default ran it when the request committed; with a real worker, run it here if none has.
        retraining_run(job_id=job.pk)
        job = RetrainingJob.objects.select_related("candidate_version", "audit").get(pk=job.pk)
        if job.status != AuditStatus.SUCCEEDED:
            self.steps.append(f"Retraining job {job.pk} could not make a candidate: {job.error}")
            return
        candidate, holdout_audit, comparison = job.candidate_version, job.audit, job.comparison
        # A succeeded job registered its candidate, audited it on the holdout and compared it with its base.
        assert candidate is not None and holdout_audit is not None and comparison is not None
        names = ", ".join(audit.get_population_display().lower() for audit in failed)
        parity = next(
            (
                row
                for row in comparison["fairness"]
                if row["scope"] == "age_band" and row["metric"] == "demographic_parity_ratio"
            ),
            None,
        )
        if parity is not None and parity["base"] is not None and parity["candidate"] is not None:
            self.steps.append(
                f"On the candidate's holdout, the demographic parity ratio across age band went from "
                f"{parity['base']:.2f} (version 1, {parity['base_verdict']}) to {parity['candidate']:.2f} "
                f"({parity['candidate_verdict']})."
            )
        self.steps.append(
            f"Audits failed ({names}): retraining job {job.pk} learnt candidate version {candidate.number} "
            f"under demographic parity on the age band; its holdout audit {holdout_audit.pk}: "
            f"{holdout_audit.get_verdict_display().lower()}. Its promotion request #{job.promotion_request_id} waits "
            "for the compliance officer."
        )


def _verdict(audit: BiasAudit) -> str:
    if audit.status != AuditStatus.SUCCEEDED:
        return f"could not run ({audit.error})"
    return f"{audit.get_verdict_display().lower()}. {audit.summary[0] if audit.summary else ''}".strip()


def _rationale(features: dict, answer: str) -> str:
    monthly = features["credit_amount"] / features["duration"]
    if answer == "approve":
        return f"A monthly instalment of {monthly:,.0f} DM looks affordable with {features['saving_accounts']} savings."
    return f"A monthly instalment of {monthly:,.0f} DM is a risk with {features['checking_account']} in checking."
