"""Consensus runs exactly once when the last reviews arrive at the same instant (threads on PostgreSQL)."""

import json
import threading
from collections import Counter

import pytest
from django.db import connection

from audits.ledger import ledger_verify
from audits.models import DecisionEvent
from hitl_platform.roles import Role
from models_registry.choices import Stage
from reviews.choices import ConsensusRule, TaskStatus
from reviews.models import Decision, ReviewTask
from reviews.services.assignments import assignment_claim_next
from reviews.services.reviewing import review_submit
from tests.factories import UserFactory
from tests.models_registry.factories import ModelVersionFactory
from tests.reviews.factories import ReviewTaskFactory, RoutingPolicyFactory

pytestmark = [pytest.mark.postgres]


def submit_all_at_once(submissions: list[tuple]) -> None:
    barrier = threading.Barrier(len(submissions))
    errors: list = []

    def run(assignment, label: str) -> None:
        try:
            barrier.wait()
            review_submit(
                assignment_id=assignment.pk,
                reviewer=assignment.reviewer,
                label=label,
                rationale="Decided at the same instant as a colleague.",
            )
        except Exception as error:  # surfaced in the main thread below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=submission) for submission in submissions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors


def ledger_counts(event_type: str) -> Counter:
    payloads = DecisionEvent.objects.filter(event_type=event_type).values_list("payload", flat=True)
    return Counter(json.loads(payload)["prediction_id"] for payload in payloads)


@pytest.mark.parametrize("labels", [("deny", "deny", "deny"), ("deny", "approve", "approve")])
def test_simultaneous_last_reviews_resolve_each_case_exactly_once(transactional_db, labels):
    version = ModelVersionFactory(stage=Stage.PRODUCTION)
    RoutingPolicyFactory(model=version.model, consensus_rule=ConsensusRule.UNANIMOUS)
    tasks = [ReviewTaskFactory(prediction__version=version, reviews_required=3) for _ in range(6)]
    team = [UserFactory(username=f"simultaneous-{n}", roles=[Role.REVIEWER]) for n in range(3)]

    for _ in tasks:
        submit_all_at_once(
            [(assignment_claim_next(reviewer=reviewer), label) for reviewer, label in zip(team, labels, strict=True)]
        )

    unanimous = len(set(labels)) == 1
    expected_status = TaskStatus.DECIDED if unanimous else TaskStatus.ESCALATED
    assert set(ReviewTask.objects.values_list("status", flat=True)) == {expected_status}
    prediction_ids = {task.prediction_id for task in tasks}
    if unanimous:
        assert Decision.objects.count() == len(tasks)
        assert ledger_counts("decision.made") == dict.fromkeys(prediction_ids, 1)
    else:
        assert not Decision.objects.exists()
        assert ledger_counts("task.escalated") == dict.fromkeys(prediction_ids, 1)
    assert ledger_counts("review.submitted") == dict.fromkeys(prediction_ids, 3)
    assert ledger_verify().intact
