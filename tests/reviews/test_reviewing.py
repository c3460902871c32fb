"""Submitting reviews, corrections, consensus (each rule, ties, thresholds), escalation and adjudication."""

import json
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from audits.ledger import ledger_verify
from audits.models import DecisionEvent
from hitl_platform.roles import Role
from hitl_platform.services import user_assign_roles
from models_registry.choices import Stage
from reviews.choices import AssignmentStatus, ConsensusRule, DecisionSource, TaskStatus
from reviews.exceptions import ReviewWorkflowError
from reviews.models import Assignment, Decision, Review, ReviewTask, Webhook, WebhookDelivery
from reviews.services.assignments import assignment_claim_next, assignments_expire_leases
from reviews.services.reviewing import review_correct, review_submit, task_adjudicate
from tests.factories import UserFactory
from tests.models_registry.factories import ModelVersionFactory
from tests.reviews.factories import ReviewFactory, ReviewTaskFactory, RoutingPolicyFactory


@pytest.fixture
def version(db):
    return ModelVersionFactory(stage=Stage.PRODUCTION)


def make_policy(version, **fields):
    return RoutingPolicyFactory(model=version.model, **fields)


def reviewers(count: int) -> list:
    return [UserFactory(roles=[Role.REVIEWER]) for _ in range(count)]


def submit(task: ReviewTask, reviewer, label: str, rationale: str = "Checked the income and the amount."):
    assignment = assignment_claim_next(reviewer=reviewer)
    assert assignment.task_id == task.pk
    # The reviewer claimed it half a minute ago: the time spent is measured from the claim.
    Assignment.objects.filter(pk=assignment.pk).update(claimed_at=timezone.now() - timedelta(seconds=30))
    return review_submit(assignment_id=assignment.pk, reviewer=reviewer, label=label, rationale=rationale)


def events(event_type: str) -> list[dict]:
    return [json.loads(e.payload) for e in DecisionEvent.objects.filter(event_type=event_type).order_by("id")]


class TestSubmit:
    def test_a_submit_stores_the_review_with_history_and_a_ledger_event_without_personal_data(
        self, version, reviewer_a
    ):
        make_policy(version)
        task = ReviewTaskFactory(prediction__version=version, reviews_required=2)

        result = submit(task, reviewer_a, "deny", "Instalments exceed half the income.")

        review = result.review
        assert (review.label, review.rationale, review.time_spent_seconds) == (
            "deny",
            "Instalments exceed half the income.",
            30,
        )
        assert result.created and not result.late and result.decision is None
        history = review.history.get()
        assert (history.history_user, history.history_change_reason) == (reviewer_a, "Review submitted")
        assignment = Assignment.objects.get(pk=review.assignment_id)
        assert assignment.status == AssignmentStatus.SUBMITTED
        assert assignment.history.order_by("-history_id").first().history_change_reason == "Review submitted"
        (event,) = DecisionEvent.objects.filter(event_type="review.submitted")
        payload = json.loads(event.payload)
        assert payload["label"] == "deny" and payload["task_id"] == task.pk and payload["review_id"] == review.pk
        assert event.actor_label == reviewer_a.username
        assert "credit_amount" not in event.payload and "female" not in event.payload
        assert "Instalments" not in event.payload

    def test_a_submit_needs_a_rationale_and_one_of_the_models_labels(self, version, reviewer_a):
        task = ReviewTaskFactory(prediction__version=version)
        assignment = assignment_claim_next(reviewer=reviewer_a)
        assert assignment.task_id == task.pk

        with pytest.raises(ReviewWorkflowError, match="rationale is required"):
            review_submit(assignment_id=assignment.pk, reviewer=reviewer_a, label="deny", rationale=" ")
        with pytest.raises(ReviewWorkflowError, match="not a label of this model"):
            review_submit(assignment_id=assignment.pk, reviewer=reviewer_a, label="maybe", rationale="x")
        assert not Review.objects.exists()

    def test_nobody_submits_on_another_reviewers_assignment(self, version, reviewer_a, reviewer_b):
        ReviewTaskFactory(prediction__version=version)
        assignment = assignment_claim_next(reviewer=reviewer_a)

        with pytest.raises(Assignment.DoesNotExist):
            review_submit(assignment_id=assignment.pk, reviewer=reviewer_b, label="deny", rationale="x")

    def test_submitting_twice_is_harmless(self, version, reviewer_a):
        ReviewTaskFactory(prediction__version=version, reviews_required=2)
        assignment = assignment_claim_next(reviewer=reviewer_a)
        kwargs = {"assignment_id": assignment.pk, "reviewer": reviewer_a, "rationale": "x"}

        first = review_submit(label="deny", **kwargs)
        second = review_submit(label="approve", **kwargs)

        assert not second.created
        assert second.review.pk == first.review.pk and second.review.label == "deny"
        assert Review.objects.count() == 1
        assert len(events("review.submitted")) == 1

    def test_a_late_submit_is_accepted_while_the_slot_is_still_free(self, version, reviewer_a):
        task = ReviewTaskFactory(prediction__version=version, reviews_required=2)
        assignment = assignment_claim_next(reviewer=reviewer_a)
        Assignment.objects.filter(pk=assignment.pk).update(lease_expires_at=timezone.now() - timedelta(minutes=1))
        assignments_expire_leases()
        task.refresh_from_db()
        assert task.slots_taken == 0

        result = review_submit(assignment_id=assignment.pk, reviewer=reviewer_a, label="deny", rationale="x")

        assert result.created and result.late
        task.refresh_from_db()
        assert (task.slots_taken, task.status) == (1, TaskStatus.IN_REVIEW)
        assert result.review.history.get().history_change_reason == "Review submitted after the lease ran out"
        assert events("review.submitted")[0]["late"] is True

    def test_a_late_submit_after_the_slot_went_to_someone_else_says_so_and_stores_nothing(
        self, version, reviewer_a, reviewer_b
    ):
        ReviewTaskFactory(prediction__version=version, reviews_required=1)
        assignment = assignment_claim_next(reviewer=reviewer_a)
        Assignment.objects.filter(pk=assignment.pk).update(lease_expires_at=timezone.now() - timedelta(minutes=1))
        assignments_expire_leases()
        assignment_claim_next(reviewer=reviewer_b)

        with pytest.raises(ReviewWorkflowError, match="another reviewer took the free slot since"):
            review_submit(assignment_id=assignment.pk, reviewer=reviewer_a, label="deny", rationale="x")
        assert not Review.objects.exists()

    def test_a_late_submit_on_a_decided_case_says_it_was_decided(self, version, reviewer_a, reviewer_b):
        make_policy(version)
        task = ReviewTaskFactory(prediction__version=version, reviews_required=1)
        assignment = assignment_claim_next(reviewer=reviewer_a)
        Assignment.objects.filter(pk=assignment.pk).update(lease_expires_at=timezone.now() - timedelta(minutes=1))
        assignments_expire_leases()
        submit(task, reviewer_b, "approve")

        with pytest.raises(ReviewWorkflowError, match="the case has been decided since"):
            review_submit(assignment_id=assignment.pk, reviewer=reviewer_a, label="deny", rationale="x")


class TestConsensus:
    def test_a_majority_decides_once_the_required_reviews_are_in(self, version):
        make_policy(version, consensus_rule=ConsensusRule.MAJORITY, min_agreement=0.5)
        task = ReviewTaskFactory(prediction__version=version, reviews_required=3)
        first, second, third = reviewers(3)

        assert submit(task, first, "deny").decision is None
        assert submit(task, second, "approve").decision is None
        result = submit(task, third, "deny")

        decision = result.decision
        assert (decision.final_label, decision.source, decision.decided_by) == ("deny", DecisionSource.CONSENSUS, None)
        assert decision.agreement == pytest.approx(2 / 3)
        task.refresh_from_db()
        assert task.status == TaskStatus.DECIDED and task.decided_at is not None
        reason = decision.history.get().history_change_reason
        names = ", ".join(person.username for person in (first, second, third))
        assert reason.startswith(f"Consensus (majority (ties escalate)) of 3 reviews by {names}: deny, agreement 0.67")
        assert decision.reason == reason
        assert [e["label"] for e in events("decision.made")] == ["deny"]
        assert ledger_verify().intact

    def test_a_consensus_decision_names_the_reviewers_who_formed_it_everywhere(self, version, api_client_for):
        """Who decided? Not "-": the record, the ledger, the webhook and the API name the reviewers."""
        make_policy(version, consensus_rule=ConsensusRule.MAJORITY, min_agreement=0.5)
        Webhook.objects.create(
            owner=version.model.owner, url="https://example.org/h", events=["decision.final"], secret="s"
        )
        task = ReviewTaskFactory(prediction__version=version, reviews_required=2)
        first, second = reviewers(2)
        submit(task, first, "deny")
        decision = submit(task, second, "deny").decision

        named = [{"id": first.pk, "username": first.username}, {"id": second.pk, "username": second.username}]
        assert decision.reviewers == named
        assert events("decision.made")[0]["reviewer_ids"] == [first.pk, second.pk]
        payload = WebhookDelivery.objects.get().payload["decision"]
        assert (payload["reviewers"], payload["decided_by"]) == ([first.username, second.username], None)
        assert payload["reason"] == decision.reason
        owner = version.model.owner
        user_assign_roles(user=owner, roles=[Role.ML_ENGINEER])
        row = api_client_for(owner).get("/api/v1/decisions/").json()["results"][0]
        assert (row["source"], row["reviewers"], row["decided_by"]) == (
            "consensus",
            [first.username, second.username],
            None,
        )
        assert row["reason"].startswith("Consensus (majority")
        assert row["policy_history_id"] == task.prediction.policy_history_id

    def test_a_majority_tie_escalates_with_the_reason_and_no_decision(self, version):
        make_policy(version, consensus_rule=ConsensusRule.MAJORITY)
        task = ReviewTaskFactory(prediction__version=version, reviews_required=2)
        first, second = reviewers(2)

        submit(task, first, "approve")
        result = submit(task, second, "deny")

        assert result.escalated and result.decision is None
        task.refresh_from_db()
        assert task.status == TaskStatus.ESCALATED
        assert task.escalation_reason == (
            "No consensus: reviewers split 1-1 between approve and deny (majority needs a clear winner)"
        )
        assert task.history.order_by("-history_id").first().history_change_reason == task.escalation_reason
        (escalated,) = events("task.escalated")
        assert escalated["task_id"] == task.pk and escalated["tally"] == {"approve": 1.0, "deny": 1.0}
        assert not Decision.objects.exists()

    def test_a_majority_below_the_minimum_agreement_escalates(self, version):
        make_policy(version, consensus_rule=ConsensusRule.MAJORITY, min_agreement=0.75)
        task = ReviewTaskFactory(prediction__version=version, reviews_required=3)
        for reviewer, label in zip(reviewers(3), ["deny", "deny", "approve"], strict=True):
            result = submit(task, reviewer, label)

        assert result.escalated
        task.refresh_from_db()
        assert task.escalation_reason == "No consensus: agreement 0.67 for deny is below the 0.75 required"

    def test_unanimous_decides_only_when_everyone_agrees(self, version):
        make_policy(version, consensus_rule=ConsensusRule.UNANIMOUS, min_agreement=0.5)
        split = ReviewTaskFactory(prediction__version=version, reviews_required=3, priority=20)
        agreed = ReviewTaskFactory(prediction__version=version, reviews_required=3, priority=10)
        team = reviewers(3)

        for reviewer, label in zip(team, ["deny", "deny", "approve"], strict=True):
            submit(split, reviewer, label)
        for reviewer in team:
            result = submit(agreed, reviewer, "approve")

        split.refresh_from_db()
        assert split.status == TaskStatus.ESCALATED
        assert "requires a unanimous decision" in split.escalation_reason
        assert (result.decision.final_label, result.decision.agreement) == ("approve", 1.0)

    def test_the_weighted_rule_trusts_the_reviewer_with_a_record_on_gold_cases(self, version):
        make_policy(version, consensus_rule=ConsensusRule.WEIGHTED, min_agreement=0.5)
        expert, guesser_1, guesser_2 = reviewers(3)
        for _ in range(10):
            gold = ReviewTaskFactory(
                prediction__version=version, prediction__is_gold=True, prediction__gold_label="deny"
            )
            ReviewFactory(assignment__task=gold, assignment__reviewer=expert, label="deny")
            ReviewFactory(assignment__task=gold, assignment__reviewer=guesser_1, label="approve")
            ReviewFactory(assignment__task=gold, assignment__reviewer=guesser_2, label="approve")
        task = ReviewTaskFactory(prediction__version=version, reviews_required=3, priority=99)

        submit(task, guesser_1, "approve")
        submit(task, guesser_2, "approve")
        result = submit(task, expert, "deny")

        assert result.decision.final_label == "deny"
        assert "reliability-weighted majority" in result.decision.history.get().history_change_reason

    def test_the_weighted_rule_escalates_a_tie_between_equally_trusted_reviewers(self, version):
        make_policy(version, consensus_rule=ConsensusRule.WEIGHTED, min_agreement=0.5)
        task = ReviewTaskFactory(prediction__version=version, reviews_required=2)
        first, second = reviewers(2)

        submit(task, first, "approve")
        result = submit(task, second, "deny")

        assert result.escalated
        task.refresh_from_db()
        assert "reliability-weighted votes tied" in task.escalation_reason

    def test_a_case_that_needs_adjudication_goes_to_an_adjudicator_even_when_reviewers_agree(self, version):
        make_policy(version)
        task = ReviewTaskFactory(
            prediction__version=version,
            reviews_required=2,
            needs_adjudication=True,
            escalation_reason="credit_amount 25,000 > 20,000 (escalation rule: large loan)",
        )
        first, second = reviewers(2)

        submit(task, first, "approve")
        result = submit(task, second, "approve")

        assert result.escalated and not Decision.objects.exists()
        task.refresh_from_db()
        assert task.status == TaskStatus.ESCALATED
        assert task.escalation_reason.startswith("An adjudicator makes the final call")
        assert "the reviewers agreed on approve (2 approve)" in task.escalation_reason
        assert task.escalation_reason.endswith("At intake: credit_amount 25,000 > 20,000 (escalation rule: large loan)")

    def test_a_gold_case_never_produces_a_decision(self, version, reviewer_a):
        make_policy(version, gold_rate=1.0)
        gold = ReviewTaskFactory(
            prediction__version=version, prediction__is_gold=True, prediction__gold_label="deny", reviews_required=1
        )

        result = submit(gold, reviewer_a, "deny")

        assert result.decision is None and not result.escalated
        gold.refresh_from_db()
        assert gold.status == TaskStatus.OPEN
        assert not Decision.objects.exists()


class TestCorrections:
    def test_a_correction_is_a_new_review_and_consensus_counts_it_instead_of_the_original(self, version):
        make_policy(version)
        task = ReviewTaskFactory(prediction__version=version, reviews_required=2)
        first, second = reviewers(2)
        original = submit(task, first, "approve").review

        correction = review_correct(
            review_id=original.pk,
            reviewer=first,
            label="deny",
            rationale="Missed the second loan.",
            reason="I overlooked the existing loan in the features",
        )
        result = submit(task, second, "deny")

        original.refresh_from_db()
        assert (original.label, original.rationale) == ("approve", "Checked the income and the amount.")
        assert (correction.corrects, correction.correction_reason) == (
            original,
            "I overlooked the existing loan in the features",
        )
        assert correction.history.get().history_change_reason == (
            f"Correction of review {original.pk}: I overlooked the existing loan in the features"
        )
        assert (result.decision.final_label, result.decision.agreement) == ("deny", 1.0)
        (corrected,) = events("review.corrected")
        assert corrected["corrects_review_id"] == original.pk and corrected["label"] == "deny"

    def test_a_decided_case_cannot_be_corrected(self, version, reviewer_a):
        make_policy(version)
        task = ReviewTaskFactory(prediction__version=version, reviews_required=1)
        review = submit(task, reviewer_a, "approve").review

        with pytest.raises(ReviewWorkflowError, match="no longer waiting for reviews"):
            review_correct(review_id=review.pk, reviewer=reviewer_a, label="deny", rationale="x", reason="y")

    def test_only_the_latest_version_of_ones_own_review_can_be_corrected(self, version, reviewer_a, reviewer_b):
        task = ReviewTaskFactory(prediction__version=version, reviews_required=2)
        review = submit(task, reviewer_a, "approve").review
        review_correct(review_id=review.pk, reviewer=reviewer_a, label="deny", rationale="x", reason="y")

        with pytest.raises(ReviewWorkflowError, match="already corrected"):
            review_correct(review_id=review.pk, reviewer=reviewer_a, label="approve", rationale="x", reason="y")
        with pytest.raises(Review.DoesNotExist):
            review_correct(review_id=review.pk, reviewer=reviewer_b, label="approve", rationale="x", reason="y")

    def test_a_correction_needs_a_reason(self, version, reviewer_a):
        task = ReviewTaskFactory(prediction__version=version, reviews_required=2)
        review = submit(task, reviewer_a, "approve").review

        with pytest.raises(ReviewWorkflowError, match="reason for the correction is required"):
            review_correct(review_id=review.pk, reviewer=reviewer_a, label="deny", rationale="x", reason="")


class TestAdjudication:
    @pytest.fixture
    def escalated(self, version):
        make_policy(version, consensus_rule=ConsensusRule.MAJORITY)
        task = ReviewTaskFactory(prediction__version=version, reviews_required=2)
        first, second = reviewers(2)
        submit(task, first, "approve")
        submit(task, second, "deny")
        task.refresh_from_db()
        assert task.status == TaskStatus.ESCALATED
        return task

    def test_an_adjudicator_makes_the_final_call_with_a_reason(self, escalated, adjudicator):
        decision = task_adjudicate(
            task_id=escalated.pk, adjudicator=adjudicator, label="deny", reason="Income is not verified."
        )

        assert (decision.final_label, decision.source, decision.decided_by) == (
            "deny",
            DecisionSource.ADJUDICATION,
            adjudicator,
        )
        assert decision.agreement == 0.5
        escalated.refresh_from_db()
        assert escalated.status == TaskStatus.DECIDED
        history = escalated.history.order_by("-history_id").first()
        assert (history.history_user, history.history_change_reason) == (
            adjudicator,
            "Adjudicated: Income is not verified.",
        )
        adjudication = Review.objects.get(is_adjudication=True)
        assert (adjudication.reviewer, adjudication.rationale) == (adjudicator, "Income is not verified.")
        assert events("decision.made")[-1]["source"] == "adjudication"
        assert ledger_verify().intact

    def test_a_second_final_call_is_refused_and_changes_nothing(self, escalated, adjudicator):
        other = UserFactory(roles=[Role.REVIEWER, Role.ADJUDICATOR])
        task_adjudicate(task_id=escalated.pk, adjudicator=adjudicator, label="deny", reason="Not verified.")

        with pytest.raises(ReviewWorkflowError, match="already been decided"):
            task_adjudicate(task_id=escalated.pk, adjudicator=other, label="approve", reason="Looks fine.")
        assert Decision.objects.get().final_label == "deny"

    def test_reviewers_cannot_adjudicate(self, escalated, reviewer_a):
        with pytest.raises(PermissionDenied):
            task_adjudicate(task_id=escalated.pk, adjudicator=reviewer_a, label="deny", reason="x")

    def test_an_adjudicator_who_reviewed_the_case_cannot_adjudicate_it(self, version, adjudicator, reviewer_a):
        make_policy(version)
        task = ReviewTaskFactory(prediction__version=version, reviews_required=2)
        submit(task, reviewer_a, "approve")
        submit(task, adjudicator, "deny")

        with pytest.raises(ReviewWorkflowError, match="You reviewed this case"):
            task_adjudicate(task_id=task.pk, adjudicator=adjudicator, label="deny", reason="x")

    def test_a_case_still_with_its_reviewers_cannot_be_adjudicated(self, version, adjudicator):
        task = ReviewTaskFactory(prediction__version=version)

        with pytest.raises(ReviewWorkflowError, match="not escalated"):
            task_adjudicate(task_id=task.pk, adjudicator=adjudicator, label="deny", reason="x")
