"""Claim-next, skip, least-loaded push, gold cases in the queue, lease expiry and SLA breaches."""

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from hitl_platform.roles import Role
from models_registry.choices import Stage
from reviews.choices import AssignmentStatus, AssignmentStrategy, TaskStatus
from reviews.exceptions import ReviewWorkflowError
from reviews.models import Assignment, ReviewTask
from reviews.services.assignments import (
    assignment_claim_next,
    assignment_release,
    assignments_expire_leases,
    review_tasks_flag_sla_breaches,
    review_tasks_push_assign,
)
from reviews.tasks import sweep_review_queue
from tests.factories import UserFactory
from tests.models_registry.factories import ModelVersionFactory
from tests.reviews.factories import AssignmentFactory, ReviewTaskFactory, RoutingPolicyFactory


@pytest.fixture
def version(db):
    return ModelVersionFactory(stage=Stage.PRODUCTION)


@pytest.fixture
def policy(version):
    return RoutingPolicyFactory(model=version.model)


def task_of(version, **fields) -> ReviewTask:
    return ReviewTaskFactory(prediction__version=version, **fields)


def gold_task_of(version, **fields) -> ReviewTask:
    return ReviewTaskFactory(
        prediction__version=version, prediction__is_gold=True, prediction__gold_label="deny", **fields
    )


class TestClaimNext:
    def test_it_claims_the_most_urgent_task_first_by_priority_then_due_time_then_age(self, version, reviewer_a):
        due = timezone.now() + timedelta(hours=2)
        less_urgent = task_of(version, priority=5, due_at=due - timedelta(hours=1))
        older = task_of(version, priority=9, due_at=due)
        newer = task_of(version, priority=9, due_at=due)
        due_sooner = task_of(version, priority=9, due_at=due - timedelta(minutes=1))

        order = []
        for _ in range(4):
            assignment = assignment_claim_next(reviewer=reviewer_a)
            order.append(assignment.task_id)
            assignment.status = AssignmentStatus.SUBMITTED
            assignment.save()

        assert order == [due_sooner.pk, older.pk, newer.pk, less_urgent.pk]

    def test_a_claim_takes_a_slot_and_starts_a_lease_from_the_policy(self, version, reviewer_a):
        RoutingPolicyFactory(model=version.model, lease_minutes=25)
        task = task_of(version, reviews_required=2)
        before = timezone.now()

        assignment = assignment_claim_next(reviewer=reviewer_a)

        task.refresh_from_db()
        assert (task.slots_taken, task.status) == (1, TaskStatus.IN_REVIEW)
        assert assignment.status == AssignmentStatus.CLAIMED
        assert before + timedelta(minutes=25) <= assignment.lease_expires_at <= timezone.now() + timedelta(minutes=25)
        history = assignment.history.get()
        assert (history.history_user, history.history_change_reason) == (reviewer_a, "Claimed as the next task")
        task_history = task.history.order_by("-history_id").first()
        assert (task_history.history_user, task_history.slots_taken) == (reviewer_a, 1)
        assert task_history.history_change_reason == "Reviewer claimed a review slot"

    def test_a_reviewer_holding_a_live_claim_gets_that_claim_back_unchanged(self, version, reviewer_a):
        task_of(version)
        task_of(version)
        first = assignment_claim_next(reviewer=reviewer_a)

        again = assignment_claim_next(reviewer=reviewer_a)

        assert again.pk == first.pk
        assert again.lease_expires_at == first.lease_expires_at
        assert Assignment.objects.filter(reviewer=reviewer_a).count() == 1

    def test_it_never_gives_a_reviewer_a_task_they_had_before_in_any_status(self, version, reviewer_a):
        task = task_of(version, reviews_required=3)
        for status in (AssignmentStatus.RELEASED, AssignmentStatus.EXPIRED, AssignmentStatus.SUBMITTED):
            Assignment.objects.filter(reviewer=reviewer_a).delete()
            AssignmentFactory(task=task, reviewer=reviewer_a, status=status)
            assert assignment_claim_next(reviewer=reviewer_a) is None

    def test_a_task_is_never_handed_to_more_reviewers_than_it_needs(self, version):
        task = task_of(version, reviews_required=2)
        reviewers = [UserFactory(roles=[Role.REVIEWER]) for _ in range(3)]

        claims = [assignment_claim_next(reviewer=reviewer) for reviewer in reviewers]

        assert [claim is not None for claim in claims] == [True, True, False]
        task.refresh_from_db()
        assert task.slots_taken == 2

    def test_escalated_and_decided_tasks_are_not_claimable(self, version, reviewer_a):
        task_of(version, status=TaskStatus.ESCALATED)
        task_of(version, status=TaskStatus.DECIDED)

        assert assignment_claim_next(reviewer=reviewer_a) is None

    def test_skipping_frees_the_slot_with_the_reason_and_the_task_does_not_come_back(self, version, reviewer_a):
        task = task_of(version, reviews_required=1)
        assignment = assignment_claim_next(reviewer=reviewer_a)

        assignment_release(assignment_id=assignment.pk, reviewer=reviewer_a, reason="I know the applicant")

        assignment.refresh_from_db()
        task.refresh_from_db()
        assert (assignment.status, assignment.release_reason) == (AssignmentStatus.RELEASED, "I know the applicant")
        assert (task.slots_taken, task.status) == (0, TaskStatus.OPEN)
        history = assignment.history.order_by("-history_id").first()
        assert history.history_change_reason == "Skipped by the reviewer: I know the applicant"
        assert assignment_claim_next(reviewer=reviewer_a) is None

    def test_skipping_needs_a_reason(self, version, reviewer_a):
        task_of(version)
        assignment = assignment_claim_next(reviewer=reviewer_a)

        with pytest.raises(ReviewWorkflowError, match="Say why"):
            assignment_release(assignment_id=assignment.pk, reviewer=reviewer_a, reason="  ")

    def test_nobody_can_skip_another_reviewers_assignment(self, version, reviewer_a, reviewer_b):
        task_of(version)
        assignment = assignment_claim_next(reviewer=reviewer_a)

        with pytest.raises(Assignment.DoesNotExist):
            assignment_release(assignment_id=assignment.pk, reviewer=reviewer_b, reason="not mine")


class TestGoldCases:
    def test_at_a_gold_rate_of_one_a_reviewer_gets_an_unseen_gold_case_without_taking_a_slot(
        self, version, reviewer_a, reviewer_b
    ):
        RoutingPolicyFactory(model=version.model, gold_rate=1.0)
        gold = gold_task_of(version, priority=0)
        task_of(version, priority=50)

        first = assignment_claim_next(reviewer=reviewer_a)
        second = assignment_claim_next(reviewer=reviewer_b)

        assert first.task_id == gold.pk == second.task_id
        gold.refresh_from_db()
        assert (gold.slots_taken, gold.status) == (0, TaskStatus.OPEN)

    def test_a_reviewer_who_answered_the_gold_case_gets_a_real_case_next(self, version, reviewer_a):
        RoutingPolicyFactory(model=version.model, gold_rate=1.0)
        gold = gold_task_of(version)
        real = task_of(version)
        AssignmentFactory(task=gold, reviewer=reviewer_a, status=AssignmentStatus.SUBMITTED)

        assert assignment_claim_next(reviewer=reviewer_a).task_id == real.pk

    def test_at_a_gold_rate_of_zero_gold_cases_are_never_served(self, version, policy, reviewer_a):
        gold_task_of(version, priority=100)

        assert assignment_claim_next(reviewer=reviewer_a) is None


class TestLeaseExpiry:
    def test_expired_leases_are_released_with_a_history_reason_and_a_log_line(self, version, reviewer_a, caplog):
        task = task_of(version, reviews_required=2, status=TaskStatus.IN_REVIEW, slots_taken=1)
        past = timezone.now() - timedelta(minutes=1)
        expired = AssignmentFactory(task=task, reviewer=reviewer_a, lease_expires_at=past)
        live = AssignmentFactory(task=task_of(version, slots_taken=1, status=TaskStatus.IN_REVIEW))

        with caplog.at_level(logging.INFO, logger="reviews.services.assignments"):
            released = assignments_expire_leases()

        assert released == [expired.pk]
        expired.refresh_from_db()
        task.refresh_from_db()
        assert expired.status == AssignmentStatus.EXPIRED
        assert expired.release_reason.startswith("Lease expired at")
        assert (task.slots_taken, task.status) == (0, TaskStatus.OPEN)
        assert expired.history.order_by("-history_id").first().history_change_reason == (
            "Lease expired: released by the periodic sweep"
        )
        assert task.history.order_by("-history_id").first().history_change_reason == (
            "Review slot freed: a lease expired"
        )
        live.refresh_from_db()
        assert live.status == AssignmentStatus.CLAIMED
        assert f"released 1 expired leases (assignments [{expired.pk}])" in caplog.text

    def test_a_freed_slot_goes_to_the_next_reviewer_but_never_back_to_the_one_who_let_it_expire(
        self, version, reviewer_a, reviewer_b
    ):
        task_of(version, reviews_required=1)
        claim = assignment_claim_next(reviewer=reviewer_a)
        Assignment.objects.filter(pk=claim.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))

        assignments_expire_leases()

        assert assignment_claim_next(reviewer=reviewer_a) is None
        assert assignment_claim_next(reviewer=reviewer_b).task_id == claim.task_id

    def test_an_expired_gold_assignment_frees_no_slot(self, version, reviewer_a):
        gold = gold_task_of(version)
        AssignmentFactory(task=gold, reviewer=reviewer_a, lease_expires_at=timezone.now() - timedelta(minutes=1))

        assignments_expire_leases()

        gold.refresh_from_db()
        assert (gold.slots_taken, gold.status) == (0, TaskStatus.OPEN)


class TestSlaBreaches:
    def test_overdue_unfinished_tasks_are_flagged_once_with_a_reason(self, version, caplog):
        now = timezone.now()
        overdue = task_of(version, due_at=now - timedelta(minutes=5))
        escalated = task_of(version, due_at=now - timedelta(minutes=5), status=TaskStatus.ESCALATED)
        task_of(version, due_at=now - timedelta(minutes=5), status=TaskStatus.DECIDED)
        task_of(version, due_at=now + timedelta(minutes=5))
        gold_task_of(version, due_at=now - timedelta(minutes=5))

        with caplog.at_level(logging.WARNING, logger="reviews.services.assignments"):
            flagged = review_tasks_flag_sla_breaches()

        assert sorted(flagged) == sorted([overdue.pk, escalated.pk])
        overdue.refresh_from_db()
        assert overdue.sla_breached
        assert overdue.history.order_by("-history_id").first().history_change_reason == (
            "SLA breached: not decided by its due time"
        )
        assert "2 review tasks breached their SLA" in caplog.text
        assert review_tasks_flag_sla_breaches() == []


class TestLeastLoadedPush:
    def test_new_tasks_go_to_the_reviewers_with_the_fewest_open_assignments(self, version, reviewer_a, reviewer_b):
        RoutingPolicyFactory(model=version.model, assignment_strategy=AssignmentStrategy.LEAST_LOADED)
        busy_elsewhere = task_of(ModelVersionFactory(stage=Stage.PRODUCTION), reviews_required=1, slots_taken=1)
        AssignmentFactory(task=busy_elsewhere, reviewer=reviewer_a)
        task = task_of(version, reviews_required=1)

        pushed = review_tasks_push_assign()

        assert [(a.task_id, a.reviewer_id, a.status) for a in pushed] == [
            (task.pk, reviewer_b.pk, AssignmentStatus.ASSIGNED)
        ]
        task.refresh_from_db()
        assert (task.slots_taken, task.status) == (1, TaskStatus.IN_REVIEW)
        assert pushed[0].history.get().history_change_reason == "Pushed to the least-loaded reviewer"

    def test_push_spreads_slots_evenly_and_respects_the_cap_per_reviewer(self, version, reviewer_a, reviewer_b):
        RoutingPolicyFactory(
            model=version.model, assignment_strategy=AssignmentStrategy.LEAST_LOADED, max_open_claims_per_reviewer=2
        )
        tasks = [task_of(version, reviews_required=1) for _ in range(5)]

        pushed = review_tasks_push_assign()

        per_reviewer = {
            reviewer.pk: sum(a.reviewer_id == reviewer.pk for a in pushed) for reviewer in (reviewer_a, reviewer_b)
        }
        assert per_reviewer == {reviewer_a.pk: 2, reviewer_b.pk: 2}
        assert ReviewTask.objects.get(pk=tasks[-1].pk).slots_taken == 0

    def test_pull_tasks_are_not_pushed(self, version, policy, reviewer_a):
        task_of(version)

        assert review_tasks_push_assign() == []

    def test_claim_next_opens_a_pushed_assignment_first_with_a_fresh_lease(self, version, reviewer_a):
        RoutingPolicyFactory(model=version.model, assignment_strategy=AssignmentStrategy.LEAST_LOADED)
        task_of(version, reviews_required=1)
        (pushed,) = review_tasks_push_assign()

        claim = assignment_claim_next(reviewer=reviewer_a)

        assert claim.pk == pushed.pk
        assert claim.status == AssignmentStatus.CLAIMED
        assert claim.history.order_by("-history_id").first().history_change_reason == (
            "Reviewer opened a pushed assignment"
        )


def test_the_periodic_sweep_expires_leases_flags_breaches_and_pushes(version, reviewer_a):
    RoutingPolicyFactory(model=version.model, assignment_strategy=AssignmentStrategy.LEAST_LOADED)
    overdue = task_of(version, reviews_required=1, due_at=timezone.now() - timedelta(minutes=1), slots_taken=1)
    AssignmentFactory(task=overdue, reviewer=reviewer_a, lease_expires_at=timezone.now() - timedelta(minutes=1))

    result = sweep_review_queue.delay().get()

    assert result == {"leases_expired": 1, "sla_breached": 1, "assignments_pushed": 0}
    overdue.refresh_from_db()
    assert overdue.sla_breached and overdue.slots_taken == 0
