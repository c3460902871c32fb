"""Gold cases: made from real cases, served like any case, never decided, and measuring reviewers."""

import json
import re

import pytest
from django.urls import reverse

from audits.models import DecisionEvent
from models_registry.choices import Stage
from reviews.choices import TaskStatus
from reviews.exceptions import ReviewWorkflowError
from reviews.models import Decision
from reviews.selectors.reviewer_stats import agreement_statistics
from reviews.services.assignments import assignment_claim_next
from reviews.services.gold import gold_case_create, gold_case_retire
from reviews.services.reviewing import review_submit
from tests.models_registry.factories import ModelVersionFactory
from tests.reviews.factories import PredictionFactory, ReviewTaskFactory, RoutingPolicyFactory


@pytest.fixture
def source(db):
    version = ModelVersionFactory(stage=Stage.PRODUCTION)
    return PredictionFactory(version=version, explanation={"duration": 0.2}, priority=12)


def test_a_gold_case_copies_a_real_case_and_records_who_made_it_and_why(source, compliance_officer):
    task = gold_case_create(source=source, gold_label="deny", actor=compliance_officer, reason="Outcome: defaulted")

    gold = task.prediction
    assert (gold.is_gold, gold.gold_label, gold.features, gold.predicted_label) == (
        True,
        "deny",
        source.features,
        source.predicted_label,
    )
    assert gold.route_reasons == source.route_reasons and gold.external_id != source.external_id
    assert (task.status, task.slots_taken, task.priority) == (TaskStatus.OPEN, 0, 12)
    history = task.history.get()
    assert history.history_user == compliance_officer
    assert history.history_change_reason == f"Gold case copied from prediction {source.pk}: Outcome: defaulted"
    event = DecisionEvent.objects.get(event_type="gold_case.created")
    payload = json.loads(event.payload)
    assert (payload["gold_label"], payload["source_prediction_id"]) == ("deny", source.pk)
    assert "credit_amount" not in event.payload


def test_a_gold_label_must_be_one_of_the_models_labels(source, compliance_officer):
    with pytest.raises(ReviewWorkflowError, match="not a label"):
        gold_case_create(source=source, gold_label="perhaps", actor=compliance_officer, reason="x")


def _form_html(client, user) -> str:
    client.force_login(user)
    response = client.post(reverse("reviews:next"))
    html = client.get(response.url).content.decode().split("<main>", 1)[1]
    # Ids, times and tokens differ between any two cases; everything else a reviewer sees must not.
    html = re.sub(r"\(#\d+\)|assignments/\d+/|until \d\d:\d\d|csrfmiddlewaretoken\" value=\"[^\"]+\"", "", html)
    return re.sub(r'data-elapsed="\d+"', "", html)


def test_a_gold_case_looks_exactly_like_the_real_case_it_was_made_from(
    client, source, compliance_officer, reviewer_a, reviewer_b
):
    RoutingPolicyFactory(model=source.model, gold_rate=1.0)
    gold_case_create(source=source, gold_label="deny", actor=compliance_officer, reason="Known outcome")
    ReviewTaskFactory(prediction=source, priority=12)

    gold_html = _form_html(client, reviewer_a)
    source.model.routing_policy.gold_rate = 0.0
    source.model.routing_policy.save()
    real_html = _form_html(client, reviewer_b)

    assert gold_html == real_html


def test_gold_reviews_measure_accuracy_and_never_decide(source, compliance_officer, reviewer_a, reviewer_b):
    RoutingPolicyFactory(model=source.model, gold_rate=1.0)
    task = gold_case_create(source=source, gold_label="deny", actor=compliance_officer, reason="Known outcome")
    for reviewer, label in ((reviewer_a, "deny"), (reviewer_b, "approve")):
        assignment = assignment_claim_next(reviewer=reviewer)
        assert assignment.task_id == task.pk
        review_submit(assignment_id=assignment.pk, reviewer=reviewer, label=label, rationale="x")

    figures = {f.username: f.gold_accuracy for f in agreement_statistics(model_id=source.model_id).reviewers}
    assert (figures[reviewer_a.username].matched, figures[reviewer_a.username].total) == (1, 1)
    assert (figures[reviewer_b.username].matched, figures[reviewer_b.username].total) == (0, 1)
    assert not Decision.objects.exists()
    task.refresh_from_db()
    assert task.status == TaskStatus.OPEN


def test_a_retired_gold_case_is_no_longer_served(source, compliance_officer, reviewer_a):
    RoutingPolicyFactory(model=source.model, gold_rate=1.0)
    task = gold_case_create(source=source, gold_label="deny", actor=compliance_officer, reason="Known outcome")

    gold_case_retire(task_id=task.pk, actor=compliance_officer, reason="Every reviewer has seen it")

    task.refresh_from_db()
    assert task.status == TaskStatus.EXPIRED
    assert task.history.order_by("-history_id").first().history_change_reason == (
        "Gold case retired: Every reviewer has seen it"
    )
    assert assignment_claim_next(reviewer=reviewer_a) is None


def test_only_gold_cases_can_be_retired(source, compliance_officer):
    real = ReviewTaskFactory(prediction=source)
    with pytest.raises(ReviewWorkflowError, match="Only gold cases"):
        gold_case_retire(task_id=real.pk, actor=compliance_officer, reason="x")
