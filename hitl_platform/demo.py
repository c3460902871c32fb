"""The demo data of `make demo`: a credit-scoring model with a real scikit-learn file, in production, routing
cases through the real services, with some cases already reviewed, adjudicated and reported on.

Everything goes through the same services as the API, the reviewer pages and the console, so the demo's
history, ledger and webhooks look exactly like a real deployment's. Loading is idempotent: a second run
finds the model and adds nothing.
"""

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
import skops.io as sio
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile
from django.db import transaction
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from audits.choices import AuditPopulation
from audits.services.bias_audits import bias_audit_request, bias_audit_run
from models_registry.choices import ModelTask, RiskTier, Stage
from models_registry.models import MLModel
from models_registry.services import (
    ml_model_register,
    model_version_register,
    promotion_request_create,
    promotion_request_decide,
)
from reviews.choices import DecisionSource, TaskStatus
from reviews.models import ReviewTask
from reviews.services.assignments import assignment_claim_next
from reviews.services.intake import predictions_ingest
from reviews.services.outcomes import prediction_report_outcome
from reviews.services.policies import routing_policy_get_or_create_default, routing_policy_update
from reviews.services.reviewing import review_submit, task_adjudicate

DEMO_MODEL_NAME = "credit-scoring"
CREDIT_FEATURES = ["credit_amount", "duration", "age"]
CREDIT_FEATURE_SCHEMA = {
    "type": "object",
    "properties": {
        "credit_amount": {"type": "number", "minimum": 0, "description": "Loan amount in euros"},
        "duration": {"type": "integer", "minimum": 1, "description": "Term in months"},
        "age": {"type": "integer", "minimum": 18, "description": "Applicant's age in years"},
    },
    "required": CREDIT_FEATURES,
    "additionalProperties": False,
    "x-feature-order": CREDIT_FEATURES,
}


def credit_applications(count: int, *, seed: int) -> pd.DataFrame:
    """Synthetic credit applications: amount, term and age, plus the sensitive attributes kept apart."""
    rng = np.random.default_rng(seed)
    age = rng.integers(19, 75, count)
    return pd.DataFrame(
        {
            "credit_amount": rng.lognormal(8.2, 0.7, count).clip(250, 20000).round(2),
            "duration": rng.integers(4, 72, count),
            "age": age,
            "sex": rng.choice(["female", "male"], count),
            "age_band": np.where(age < 25, "18-24", np.where(age < 50, "25-49", "50+")),
        }
    )


def credit_repayment_labels(applications: pd.DataFrame, *, seed: int) -> np.ndarray:
    """Who repaid: modest monthly instalments mostly do, with noise so the model is not always sure."""
    rng = np.random.default_rng(seed)
    monthly = applications["credit_amount"] / applications["duration"]
    score = 1.2 - monthly / 300 + rng.normal(0, 0.3, len(applications))
    return np.where(score > 0, "approve", "deny")


def trained_credit_pipeline(seed: int = 0):
    """A real scikit-learn pipeline over the credit features, trained on synthetic applications."""
    applications = credit_applications(2000, seed=seed)
    labels = credit_repayment_labels(applications, seed=seed + 1)
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(
        applications[CREDIT_FEATURES].to_numpy(dtype=float), labels
    )


def skops_file(estimator) -> bytes:
    buffer = io.BytesIO()
    sio.dump(estimator, buffer)
    return buffer.getvalue()


@dataclass(frozen=True)
class DemoSummary:
    created: bool
    predictions: int
    open_tasks: int
    decided_by_people: int


@dataclass(frozen=True)
class DemoCast:
    ml_engineer: AbstractBaseUser
    compliance_officer: AbstractBaseUser
    reviewers: tuple[AbstractBaseUser, ...]
    adjudicator: AbstractBaseUser


def _register_model(cast: DemoCast) -> MLModel:
    model = ml_model_register(
        owner=cast.ml_engineer,
        name=DEMO_MODEL_NAME,
        task=ModelTask.BINARY,
        labels=["approve", "deny"],
        positive_label="approve",
        feature_schema=CREDIT_FEATURE_SCHEMA,
        sensitive_attributes=["sex", "age_band"],
        risk_tier=RiskTier.MEDIUM,
        description="Scores consumer credit applications: approve or deny.",
        intended_use="Pre-screening of consumer credit applications up to 20,000 EUR, with human review.",
        out_of_scope_use="Mortgages, business loans, and any fully automated refusal.",
        limitations="Trained on synthetic demo data; sees only amount, term and age.",
        ethical_considerations="Sex and age band are kept apart from the features and audited for bias.",
        review_guidelines="Approve when the monthly instalment is affordable for the stated term; explain why.",
        reason="Demo: model registered.",
    )
    version = model_version_register(
        model=model,
        actor=cast.ml_engineer,
        metrics={"accuracy": 0.81, "roc_auc": 0.88},
        description="Logistic regression on 2,000 synthetic applications.",
        artifact=ContentFile(skops_file(trained_credit_pipeline()), name="credit-scoring-v1.skops"),
        reason="Demo: first version.",
    )
    staging = promotion_request_create(
        version=version,
        actor=cast.ml_engineer,
        target_stage=Stage.STAGING,
        rationale="Validated on the hold-out set; ready to score real applications under supervision.",
    )
    promotion_request_decide(
        promotion_request=staging,
        actor=cast.compliance_officer,
        approve=True,
        reason="Gates passed; staging first, with every case routed and reviewed as in production.",
    )
    routing_policy_update(
        policy=routing_policy_get_or_create_default(model=model),
        changes={
            "auto_decide_threshold": 0.8,
            "qa_sample_rate": 0.05,
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
        reason="Demo: large loans and unsure cases go to two reviewers.",
    )
    model.refresh_from_db()
    return model


APPLICATIONS_SEED = 7
# Applications version 1 scores in staging before production: every one goes to review (it is not in production
# yet), and its labels are what the bias audit that production needs looks at.
STAGING_CASES = 80


def _external_id(number: int) -> str:
    return f"application-{number:05d}"


def _ingest_cases(model: MLModel, cast: DemoCast, count: int, *, first: int = 1, version: int | None = None) -> None:
    """Applications numbered from ``first``, scored by ``version`` (default: the production version)."""
    applications = credit_applications(count, seed=APPLICATIONS_SEED + first - 1)
    items = [
        {
            "external_id": _external_id(number),
            "features": {
                "credit_amount": float(row.credit_amount),
                "duration": int(row.duration),
                "age": int(row.age),
            },
            "attributes": {"sex": row.sex, "age_band": row.age_band},
            **({"version": version} if version else {}),
        }
        for number, row in enumerate(applications.itertuples(index=False), start=first)
    ]
    predictions_ingest(model=model, items=items, actor=cast.ml_engineer)


def _audit_and_promote_to_production(model: MLModel, cast: DemoCast) -> None:
    """Version 1 scored the applications in staging: audit its labels for bias, then ask for and approve
    production, whose gate needs that passing audit."""
    version = model.versions.get(number=1)
    audit = bias_audit_request(
        actor=cast.compliance_officer,
        model=model,
        population=AuditPopulation.MODEL,
        sensitive_attributes=model.sensitive_attributes,
        version=version,
    )
    # Run here if no worker has taken it (the embedded default already ran it when the request committed).
    bias_audit_run(audit_id=audit.pk)
    request = promotion_request_create(
        version=version,
        actor=cast.ml_engineer,
        target_stage=Stage.PRODUCTION,
        rationale="Ran in staging on the first applications; its bias audit passed.",
    )
    promotion_request_decide(
        promotion_request=request,
        actor=cast.compliance_officer,
        approve=True,
        reason="Gates passed, bias audit included; model card complete; human review of large loans in place.",
    )


def _work_some_cases(cast: DemoCast, *, cases: int) -> None:
    """Two reviewers work the most urgent cases; where they disagree, the adjudicator decides."""
    first, second = cast.reviewers[:2]
    for _ in range(cases):
        first_assignment = assignment_claim_next(reviewer=first)
        if first_assignment is None:
            break
        task = first_assignment.task
        second_assignment = assignment_claim_next(reviewer=second)
        if second_assignment is None or second_assignment.task_id != task.pk:
            break
        amount = task.prediction.features["credit_amount"]
        monthly = amount / task.prediction.features["duration"]
        affordable = monthly < 400
        review_submit(
            assignment_id=first_assignment.pk,
            reviewer=first,
            label="approve" if affordable else "deny",
            rationale=f"Monthly instalment of {monthly:,.0f} EUR.",
            time_spent_seconds=95,
        )
        result = review_submit(
            assignment_id=second_assignment.pk,
            reviewer=second,
            label="approve" if affordable and amount < 15000 else "deny",
            rationale="Checked the term against the amount." if amount < 15000 else "Large loan, long exposure.",
            time_spent_seconds=140,
        )
        if result.escalated:
            task_adjudicate(
                task_id=task.pk,
                adjudicator=cast.adjudicator,
                label="deny",
                reason="The instalment is affordable but the exposure exceeds our unsecured lending limit.",
                time_spent_seconds=210,
            )


def _report_some_outcomes(model: MLModel, cast: DemoCast, *, cases: int, count: int) -> None:
    """Months later, the lender reports who repaid: the outcomes the console measures AI accuracy against."""
    applications = credit_applications(cases, seed=APPLICATIONS_SEED)
    repaid = credit_repayment_labels(applications, seed=APPLICATIONS_SEED + 1)
    outcome_of = {_external_id(number): label for number, label in enumerate(repaid, start=1)}
    decided = model.predictions.filter(decision__isnull=False, external_id__in=list(outcome_of))
    for prediction in decided.order_by("id")[:count]:
        prediction_report_outcome(
            prediction=prediction,
            label=str(outcome_of[prediction.external_id]),
            actor=cast.ml_engineer,
            reason="Demo: repayment record from the loan book.",
        )


def demo_data_load(cast: DemoCast, *, cases: int = 200) -> DemoSummary:
    """Create the demo model, its production version and policy, and route ``cases`` applications through it."""
    model = MLModel.objects.filter(name=DEMO_MODEL_NAME).first()
    created = model is None
    if created:
        with transaction.atomic():
            model = _register_model(cast)
            _ingest_cases(model, cast, STAGING_CASES, first=cases + 1, version=1)
        _audit_and_promote_to_production(model, cast)
        _ingest_cases(model, cast, cases)
        _work_some_cases(cast, cases=6)
        _report_some_outcomes(model, cast, cases=cases, count=40)
    open_statuses = [TaskStatus.OPEN, TaskStatus.IN_REVIEW, TaskStatus.ESCALATED]
    return DemoSummary(
        created=created,
        predictions=model.predictions.count(),
        open_tasks=ReviewTask.objects.filter(model=model, status__in=open_statuses).count(),
        decided_by_people=model.decisions.exclude(source=DecisionSource.AUTO).count(),
    )
