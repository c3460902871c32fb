"""Claim-next under real concurrency: threads, each with its own PostgreSQL connection, claim at once."""

import threading
from collections import Counter

import pytest
from django.db import connection
from django.db.models import Count, Q

from hitl_platform.roles import Role
from models_registry.choices import Stage
from reviews.choices import LIVE_ASSIGNMENT_STATUSES, AssignmentStatus
from reviews.models import Assignment, ReviewTask
from reviews.services.assignments import assignment_claim_next, assignment_release
from tests.factories import UserFactory
from tests.models_registry.factories import ModelVersionFactory
from tests.reviews.factories import ReviewTaskFactory

pytestmark = [pytest.mark.postgres]


def run_at_once(workers: list, target) -> list:
    """Start one thread per worker, release them together at a barrier, and collect what each returned."""
    barrier = threading.Barrier(len(workers))
    results: list = [None] * len(workers)
    errors: list = []

    def run(index: int, worker) -> None:
        try:
            barrier.wait()
            results[index] = target(worker)
        except Exception as error:  # surfaced in the main thread below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index, worker)) for index, worker in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


def assert_no_double_handing() -> None:
    tasks = ReviewTask.objects.annotate(
        live=Count("assignments", filter=Q(assignments__status__in=LIVE_ASSIGNMENT_STATUSES))
    )
    for task in tasks:
        assert task.live <= task.reviews_required, f"task {task.pk} handed to {task.live} reviewers"
        assert task.slots_taken == task.live, f"task {task.pk}: slots_taken {task.slots_taken} != {task.live} live"
    pairs = Counter(Assignment.objects.values_list("task_id", "reviewer_id"))
    assert max(pairs.values(), default=1) == 1


def test_thirty_reviewers_claiming_at_once_fill_twenty_slots_exactly_once(transactional_db):
    version = ModelVersionFactory(stage=Stage.PRODUCTION)
    tasks = [ReviewTaskFactory(prediction__version=version, reviews_required=2) for _ in range(10)]
    reviewers = [UserFactory(username=f"concurrent-{n}", roles=[Role.REVIEWER]) for n in range(30)]

    claims = run_at_once(reviewers, lambda reviewer: assignment_claim_next(reviewer=reviewer))

    granted = [claim for claim in claims if claim is not None]
    assert len(granted) == 20
    assert Counter(claim.task_id for claim in granted) == {task.pk: 2 for task in tasks}
    assert_no_double_handing()


def test_reviewers_claiming_and_skipping_in_a_loop_never_double_hand_a_task(transactional_db):
    version = ModelVersionFactory(stage=Stage.PRODUCTION)
    for _ in range(20):
        ReviewTaskFactory(prediction__version=version, reviews_required=6)
    reviewers = [UserFactory(username=f"looping-{n}", roles=[Role.REVIEWER]) for n in range(6)]

    def claim_and_skip(reviewer) -> int:
        claimed = 0
        while (claim := assignment_claim_next(reviewer=reviewer)) is not None:
            claimed += 1
            assert_live_claims_at_most_one(reviewer)
            assignment_release(assignment_id=claim.pk, reviewer=reviewer, reason="load test")
        return claimed

    claimed = run_at_once(reviewers, claim_and_skip)

    # Every reviewer got every task exactly once: locked rows were waited for, not reported as "nothing to do",
    # and a released task never came back to the reviewer who released it.
    assert claimed == [20] * 6
    assert Assignment.objects.filter(status=AssignmentStatus.RELEASED).count() == 120
    assert_no_double_handing()


def test_two_tabs_of_one_reviewer_claiming_at_once_hold_one_claim(transactional_db):
    version = ModelVersionFactory(stage=Stage.PRODUCTION)
    for _ in range(5):
        ReviewTaskFactory(prediction__version=version, reviews_required=1)
    reviewer = UserFactory(username="two-tabs", roles=[Role.REVIEWER])

    claims = run_at_once([reviewer] * 4, lambda same: assignment_claim_next(reviewer=same))

    assert len({claim.pk for claim in claims}) == 1
    assert Assignment.objects.filter(reviewer=reviewer).count() == 1


def assert_live_claims_at_most_one(reviewer) -> None:
    live = Assignment.objects.filter(reviewer=reviewer, status=AssignmentStatus.CLAIMED).count()
    assert live <= 1
