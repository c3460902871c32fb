"""Reviews and what follows them: submit, correct, consensus (exactly once), escalation and adjudication.

Every write here locks the task row first (`select_for_update`), then touches its assignments and reviews.
That one lock is what makes consensus run exactly once: when two reviewers submit the last two reviews at the
same instant, the second waits for the first to commit, then counts both reviews and resolves; the first saw
one review too few and did not. A resolved task leaves the claimable statuses, so nothing resolves it again,
and the one-to-one Decision per prediction is the last line of defence.

Time spent on a review is the server's own measure, from the claim of the assignment to the submit: a page
timer can be stopped, edited or never run, so it is not what the record trusts.

Reviews are immutable. A correction is a new review naming the one it corrects, with a reason, allowed while
the case still waits for reviews; consensus counts each reviewer's latest review. Gold cases never produce a
decision: their reviews only measure the reviewer.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from audits.events import LedgerEvent
from audits.ledger import LedgerEntry, ledger_append_many
from hitl_platform.history import historise
from reviews.agreement import is_fast_review
from reviews.choices import CLAIMABLE_TASK_STATUSES, AssignmentStatus, ConsensusRule, DecisionSource, TaskStatus
from reviews.consensus import Vote, resolve_consensus
from reviews.exceptions import ReviewWorkflowError
from reviews.models import Assignment, Decision, Review, ReviewTask
from reviews.selectors.policies import routing_policy_effective
from reviews.selectors.queue import OPEN_ASSIGNMENT_STATUSES
from reviews.selectors.reviewer_stats import reviewer_reliabilities
from reviews.services.assignments import review_slot_take
from reviews.services.decisions import decision_record, reviewers_named

logger = logging.getLogger(__name__)

MAX_TIME_SPENT_SECONDS = 24 * 60 * 60
# Personal data stays in the database row; the locked task needs none of it to record a decision.
_PREDICTION_PERSONAL_DATA = (
    "prediction__features",
    "prediction__sensitive_attributes",
    "prediction__explanation",
    "prediction__scores",
)


@dataclass(frozen=True)
class SubmitResult:
    """What a submit did: the review (new, or the one already stored) and what it led to."""

    review: Review
    created: bool
    late: bool
    decision: Decision | None
    escalated: bool


def _lock_task(task_id: int) -> ReviewTask:
    return (
        ReviewTask.objects.select_for_update(of=("self",))
        .select_related("prediction", "model")
        .defer(*_PREDICTION_PERSONAL_DATA)
        .get(pk=task_id)
    )


def _clean_label(task: ReviewTask, label: str) -> str:
    if label not in task.model.labels:
        allowed = ", ".join(task.model.labels)
        raise ReviewWorkflowError(f"{label!r} is not a label of this model; choose one of {allowed}.")
    return label


def _clean_text(text: str, what: str) -> str:
    text = (text or "").strip()
    if not text:
        raise ReviewWorkflowError(f"{what} is required.")
    return text


def _clean_seconds(seconds: float) -> int:
    return min(max(int(seconds), 0), MAX_TIME_SPENT_SECONDS)


def seconds_since_claim(assignment: Assignment, *, now: datetime) -> int:
    """Whole seconds from the claim of ``assignment`` to ``now``, within 0 and MAX_TIME_SPENT_SECONDS."""
    return _clean_seconds((now - assignment.claimed_at).total_seconds())


def fast_review_warning(assignment: Assignment, *, feature_count: int, now: datetime) -> str:
    """What to ask a reviewer who submits a case with many features this fast (`is_fast_review`); else ""."""
    seconds = seconds_since_claim(assignment, now=now)
    if not is_fast_review(seconds, feature_count):
        return ""
    return (
        f"You took {seconds} s on a case with {feature_count} features; are you sure? "
        "Tick the box below to submit your review as it is."
    )


def _current_votes(task: ReviewTask) -> list[tuple[int, str]]:
    """(reviewer id, label) of each reviewer's latest (uncorrected) review of a task, adjudications excluded."""
    return list(
        Review.objects.filter(task=task, is_adjudication=False, corrections__isnull=True)
        .order_by("id")
        .values_list("reviewer_id", "label")
    )


def _review_entry(review: Review, *, event_type: str, extra: dict | None = None) -> LedgerEntry:
    task = review.task
    return LedgerEntry(
        event_type=event_type,
        object_type="reviews.review",
        object_id=review.pk,
        actor=review.reviewer,
        payload={
            "review_id": review.pk,
            "task_id": task.pk,
            "prediction_id": task.prediction_id,
            "model_id": task.model_id,
            "assignment_id": review.assignment_id,
            "reviewer_id": review.reviewer_id,
            "label": review.label,
            "is_adjudication": review.is_adjudication,
            **(extra or {}),
        },
    )


def _lost_slot_message(assignment: Assignment, task: ReviewTask) -> str:
    when = timezone.localtime(assignment.finished_at or assignment.lease_expires_at).strftime("%H:%M")
    if assignment.status == AssignmentStatus.RELEASED:
        lost = f"You handed this case back at {when}"
    else:
        lost = f"Your time on this case ran out at {when}"
    if task.status == TaskStatus.DECIDED:
        since = "the case has been decided since"
    elif task.status == TaskStatus.ESCALATED:
        since = "the case went to an adjudicator since"
    elif task.status in CLAIMABLE_TASK_STATUSES:
        since = "another reviewer took the free slot since"
    else:
        since = "the case was withdrawn from review since"
    return f"{lost} and {since}, so your review was not recorded. Your answer is still in the form below."


@transaction.atomic
def review_submit(*, assignment_id: int, reviewer: User, label: str, rationale: str) -> SubmitResult:
    """Record a reviewer's review of their own assignment and, if it completes the case, resolve it.

    The time spent is measured here, from the assignment's claim to this submit (`seconds_since_claim`).

    A repeated submit of the same assignment returns the stored review and changes nothing. A lease that ran
    out is forgiven while the case still has the slot free (the review is accepted and marked late);
    otherwise ReviewWorkflowError says what happened. Raises Assignment.DoesNotExist for someone else's
    assignment.
    """
    task_id = Assignment.objects.filter(pk=assignment_id, reviewer=reviewer).values_list("task_id", flat=True).get()
    task = _lock_task(task_id)
    assignment = Assignment.objects.get(pk=assignment_id)
    if assignment.status == AssignmentStatus.SUBMITTED:
        review = assignment.reviews.filter(corrects__isnull=True).select_related("task", "reviewer").get()
        return SubmitResult(review=review, created=False, late=False, decision=None, escalated=False)

    label = _clean_label(task, label)
    rationale = _clean_text(rationale, "A rationale")
    now = timezone.now()
    is_gold = task.prediction.is_gold
    late = assignment.lease_expires_at is not None and assignment.lease_expires_at < now
    if assignment.status not in OPEN_ASSIGNMENT_STATUSES:
        slot_free = task.status in CLAIMABLE_TASK_STATUSES and (is_gold or task.slots_taken < task.reviews_required)
        if not slot_free:
            raise ReviewWorkflowError(_lost_slot_message(assignment, task))
        late = True
        if not is_gold:
            review_slot_take(task, actor=reviewer, reason="Review slot taken again by a late submit")

    review = Review(
        task=task,
        assignment=assignment,
        reviewer=reviewer,
        label=label,
        rationale=rationale,
        time_spent_seconds=seconds_since_claim(assignment, now=now),
        created_at=now,
    )
    historise(review, actor=reviewer, reason="Review submitted after the lease ran out" if late else "Review submitted")
    review.save()
    assignment.status = AssignmentStatus.SUBMITTED
    assignment.finished_at = now
    historise(assignment, actor=reviewer, reason="Review submitted")
    assignment.save(update_fields=["status", "finished_at"])

    entries = [_review_entry(review, event_type=LedgerEvent.REVIEW_SUBMITTED, extra={"late": late})]
    decision, escalated = None, False
    votes = _current_votes(task) if not is_gold and task.status in CLAIMABLE_TASK_STATUSES else []
    if votes and len(votes) >= task.reviews_required:
        decision, escalated = _resolve(task=task, votes=votes, entries=entries, actor=reviewer, now=now)
    else:
        ledger_append_many(entries)
    logger.info("review %s submitted on task %s (late=%s)", review.pk, task.pk, late)
    return SubmitResult(review=review, created=True, late=late, decision=decision, escalated=escalated)


def _share(value: float) -> str:
    """Two decimals, unless they would round a share that is not certain to 1.00 (or 0.00)."""
    shown = f"{value:.2f}"
    return f"{value:.3g}" if shown in ("1.00", "0.00") and value not in (0.0, 1.0) else shown


def _tally_in_words(outcome) -> str:
    """The votes behind an outcome: the weighted rule's own explanation, else the count per label."""
    if outcome.explanation:
        return outcome.explanation
    return ", ".join(f"{weight:g} {label}" for label, weight in outcome.tally.items())


def _resolve(
    *, task: ReviewTask, votes: list[tuple[int, str]], entries: list[LedgerEntry], actor, now
) -> tuple[Decision | None, bool]:
    """Run the policy's consensus rule on the locked task: record a decision, or escalate.

    Appends the caller's ledger entries (and the escalation's) so the ledger stays the last write. The task's
    history names the reviewer whose review completed the case; the decision itself is the rule's (no person).
    """
    policy = routing_policy_effective(task.model_id)
    reliabilities = class_prior = None
    if policy.consensus_rule == ConsensusRule.WEIGHTED:
        estimate = reviewer_reliabilities(model_id=task.model_id)
        reliabilities, class_prior = estimate.accuracy, estimate.class_prior
    outcome = resolve_consensus(
        [Vote(reviewer_id=reviewer_id, label=label) for reviewer_id, label in votes],
        rule=policy.consensus_rule,
        min_agreement=policy.min_agreement,
        reliabilities=reliabilities,
        class_prior=class_prior,
        labels=task.model.labels,
    )
    reviewers = reviewers_named([reviewer_id for reviewer_id, _ in votes])
    tally = _tally_in_words(outcome)
    if outcome.decided and not task.needs_adjudication:
        assert outcome.label is not None  # a decided outcome carries its label
        task.status = TaskStatus.DECIDED
        task.decided_at = now
        names = ", ".join(reviewer["username"] for reviewer in reviewers)
        reason = (
            f"Consensus ({policy.get_consensus_rule_display().lower()}) of {len(votes)} reviews by {names}: "
            f"{outcome.label}, agreement {_share(outcome.agreement)} ({tally})"
        )
        historise(task, actor=actor, reason=reason)
        task.save(update_fields=["status", "decided_at"])
        ledger_append_many(entries)
        decision = decision_record(
            prediction=task.prediction,
            final_label=outcome.label,
            source=DecisionSource.CONSENSUS,
            agreement=outcome.agreement,
            decided_by=None,
            reason=reason,
            reviewers=reviewers,
        )
        logger.info("task %s decided by consensus: %s", task.pk, outcome.label)
        return decision, False

    if outcome.decided:
        reason = (
            f"An adjudicator makes the final call on this case (critical tier or escalation rule); "
            f"the reviewers agreed on {outcome.label} ({tally})"
        )
    else:
        reason = f"No consensus: {outcome.escalation_reason}"
    if task.escalation_reason:
        # The escalation rules that fired at intake stay part of the record.
        reason = f"{reason}. At intake: {task.escalation_reason}"
    task.status = TaskStatus.ESCALATED
    task.escalation_reason = reason
    historise(task, actor=actor, reason=reason)
    task.save(update_fields=["status", "escalation_reason"])
    entries.append(
        LedgerEntry(
            event_type=LedgerEvent.TASK_ESCALATED,
            object_type="reviews.reviewtask",
            object_id=task.pk,
            payload={
                "task_id": task.pk,
                "prediction_id": task.prediction_id,
                "model_id": task.model_id,
                "tally": outcome.tally,
                "agreement": outcome.agreement,
                "reason": reason,
            },
        )
    )
    ledger_append_many(entries)
    logger.info("task %s escalated: %s", task.pk, reason)
    return None, True


@transaction.atomic
def review_correct(
    *, review_id: int, reviewer: User, label: str, rationale: str, reason: str, time_spent_seconds: int = 0
) -> Review:
    """Correct one's own latest review with a new review and a reason, while the case still waits for reviews.

    The corrected review stays as it was. Raises Review.DoesNotExist for someone else's review.
    """
    task_id = Review.objects.filter(pk=review_id, reviewer=reviewer).values_list("task_id", flat=True).get()
    task = _lock_task(task_id)
    original = Review.objects.select_related("assignment").get(pk=review_id)
    if original.is_adjudication:
        raise ReviewWorkflowError("An adjudication is final; it cannot be corrected here.")
    if original.corrections.exists():
        raise ReviewWorkflowError("This review was already corrected; correct the latest version instead.")
    if task.status not in CLAIMABLE_TASK_STATUSES:
        raise ReviewWorkflowError(
            "The case is no longer waiting for reviews (it was decided or went to an adjudicator), "
            "so reviews of it can no longer be corrected."
        )
    reason = _clean_text(reason, "A reason for the correction")
    correction = Review(
        task=task,
        assignment=original.assignment,
        reviewer=reviewer,
        label=_clean_label(task, label),
        rationale=_clean_text(rationale, "A rationale"),
        time_spent_seconds=_clean_seconds(time_spent_seconds),
        corrects=original,
        correction_reason=reason,
    )
    historise(correction, actor=reviewer, reason=f"Correction of review {original.pk}: {reason}")
    correction.save()
    ledger_append_many(
        [
            _review_entry(
                correction,
                event_type=LedgerEvent.REVIEW_CORRECTED,
                extra={"corrects_review_id": original.pk, "reason": reason},
            )
        ]
    )
    return correction


@transaction.atomic
def task_adjudicate(
    *, task_id: int, adjudicator: User, label: str, reason: str, time_spent_seconds: int = 0
) -> Decision:
    """An adjudicator's final call on an escalated task, with a reason; records the adjudication decision.

    An adjudicator who reviewed the case may not adjudicate it. Agreement is the share of the reviewers'
    current reviews that gave the final label.
    """
    if not adjudicator.has_perm("reviews.adjudicate_cases"):
        raise PermissionDenied("Only adjudicators resolve escalated cases.")
    task = _lock_task(task_id)
    if task.status != TaskStatus.ESCALATED:
        if task.status == TaskStatus.DECIDED:
            raise ReviewWorkflowError("This case has already been decided; nothing was changed.")
        raise ReviewWorkflowError("This case is not escalated; it is still with its reviewers.")
    label = _clean_label(task, label)
    reason = _clean_text(reason, "A reason for the final call")
    votes = _current_votes(task)
    if any(reviewer_id == adjudicator.pk for reviewer_id, _ in votes):
        raise ReviewWorkflowError("You reviewed this case, so another adjudicator must make the final call.")

    now = timezone.now()
    review = Review(
        task=task,
        reviewer=adjudicator,
        label=label,
        rationale=reason,
        time_spent_seconds=_clean_seconds(time_spent_seconds),
        is_adjudication=True,
        created_at=now,
    )
    historise(review, actor=adjudicator, reason="Adjudication")
    review.save()
    task.status = TaskStatus.DECIDED
    task.decided_at = now
    historise(task, actor=adjudicator, reason=f"Adjudicated: {reason}")
    task.save(update_fields=["status", "decided_at"])
    agreement = sum(vote == label for _, vote in votes) / len(votes) if votes else None
    ledger_append_many([_review_entry(review, event_type=LedgerEvent.REVIEW_SUBMITTED)])
    decision = decision_record(
        prediction=task.prediction,
        final_label=label,
        source=DecisionSource.ADJUDICATION,
        agreement=agreement,
        decided_by=adjudicator,
        reason=f"Adjudicated by {adjudicator.get_username()}: {reason}",
        reviewers=reviewers_named([reviewer_id for reviewer_id, _ in votes]),
    )
    logger.info("task %s adjudicated by %s: %s", task.pk, adjudicator.pk, label)
    return decision
