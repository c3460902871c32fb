import hashlib
import json
from datetime import timedelta

import factory
from django.utils import timezone

from models_registry.choices import Stage
from reviews.choices import AssignmentStatus, DecisionSource, Route, TaskStatus
from reviews.models import Assignment, Decision, Prediction, Review, ReviewTask, RoutingPolicy
from reviews.services.decisions import decision_record
from tests.factories import UserFactory
from tests.models_registry.factories import MLModelFactory, ModelVersionFactory


def _sha256(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


class RoutingPolicyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RoutingPolicy

    model = factory.SubFactory(MLModelFactory)


class PredictionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prediction

    version = factory.SubFactory(ModelVersionFactory, stage=Stage.PRODUCTION)
    model = factory.SelfAttribute("version.model")
    external_id = factory.Sequence(lambda n: f"application-{n}")
    features = factory.LazyFunction(lambda: {"credit_amount": 4200.0, "duration": 24, "age": 41})
    sensitive_attributes = factory.LazyFunction(lambda: {"sex": "female", "age_band": "35-50"})
    input_sha256 = factory.LazyAttribute(lambda o: _sha256(o.features))
    payload_sha256 = factory.LazyAttribute(lambda o: _sha256([o.external_id, o.features]))
    predicted_label = "approve"
    confidence = 0.64
    scores = factory.LazyFunction(lambda: {"approve": 0.64, "deny": 0.36})
    route = Route.REVIEW
    route_reasons = factory.LazyFunction(lambda: ["confidence 0.64 is below the 0.80 auto-decide threshold"])
    submitted_by = factory.SelfAttribute("model.owner")


class ReviewTaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReviewTask

    prediction = factory.SubFactory(PredictionFactory)
    model = factory.SelfAttribute("prediction.model")
    status = TaskStatus.OPEN
    reviews_required = 2
    priority = 10
    due_at = factory.LazyFunction(lambda: timezone.now() + timedelta(hours=24))


class AssignmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Assignment

    task = factory.SubFactory(ReviewTaskFactory)
    reviewer = factory.SubFactory(UserFactory)
    status = AssignmentStatus.CLAIMED
    lease_expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(minutes=15))


class ReviewFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Review

    assignment = factory.SubFactory(AssignmentFactory, status=AssignmentStatus.SUBMITTED)
    task = factory.SelfAttribute("assignment.task")
    reviewer = factory.SelfAttribute("assignment.reviewer")
    label = "approve"
    rationale = "Income covers the instalments."
    time_spent_seconds = 42


class DecisionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Decision

    prediction = factory.SubFactory(PredictionFactory, route=Route.AUTO, confidence=0.93, route_reasons=[])
    model = factory.SelfAttribute("prediction.model")
    final_label = factory.SelfAttribute("prediction.predicted_label")
    source = DecisionSource.AUTO


def adjudicated_split_case(prediction, *, reviewers, adjudicator, rationales=("Stable income.", "Loan too large.")):
    """Two reviewers split approve/deny on ``prediction`` and the adjudicator decides "deny": task and decision."""
    task = ReviewTaskFactory(prediction=prediction, status=TaskStatus.DECIDED, decided_at=timezone.now())
    for reviewer, label, rationale in zip(reviewers, ("approve", "deny"), rationales, strict=True):
        assignment = AssignmentFactory(task=task, reviewer=reviewer, status=AssignmentStatus.SUBMITTED)
        ReviewFactory(assignment=assignment, label=label, rationale=rationale)
    decision = decision_record(
        prediction=prediction,
        final_label="deny",
        source=DecisionSource.ADJUDICATION,
        agreement=0.5,
        decided_by=adjudicator,
        reason="Adjudicated: the instalment exceeds 40% of income",
    )
    return task, decision
