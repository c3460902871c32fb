from django.db import models


class Route(models.TextChoices):
    AUTO = "auto", "Decided automatically"
    REVIEW = "review", "Human review"


class ConsensusRule(models.TextChoices):
    MAJORITY = "majority", "Majority (ties escalate)"
    UNANIMOUS = "unanimous", "Unanimous"
    WEIGHTED = "weighted", "Reliability-weighted majority"


class AssignmentStrategy(models.TextChoices):
    PULL = "pull", "Next available (reviewers pull)"
    LEAST_LOADED = "least_loaded", "Least-loaded push"


class TaskStatus(models.TextChoices):
    OPEN = "open", "Open"
    IN_REVIEW = "in_review", "In review"
    ESCALATED = "escalated", "Escalated to adjudicator"
    DECIDED = "decided", "Decided"
    EXPIRED = "expired", "Expired"


# Tasks a reviewer may still claim a slot on; DECIDED and EXPIRED leave the hot claim index.
CLAIMABLE_TASK_STATUSES = (TaskStatus.OPEN, TaskStatus.IN_REVIEW)
# Tasks still waiting for a person, escalated ones included: the review queue the dashboard and the ML engineers'
# home count.
QUEUED_TASK_STATUSES = (TaskStatus.OPEN, TaskStatus.IN_REVIEW, TaskStatus.ESCALATED)


class AssignmentStatus(models.TextChoices):
    ASSIGNED = "assigned", "Assigned (pushed, not yet opened)"
    CLAIMED = "claimed", "Claimed"
    SUBMITTED = "submitted", "Submitted"
    RELEASED = "released", "Released"
    EXPIRED = "expired", "Lease expired"


# Assignments that hold one of a task's review slots.
LIVE_ASSIGNMENT_STATUSES = (AssignmentStatus.ASSIGNED, AssignmentStatus.CLAIMED, AssignmentStatus.SUBMITTED)


class DecisionSource(models.TextChoices):
    AUTO = "auto", "Automatic"
    CONSENSUS = "consensus", "Reviewer consensus"
    ADJUDICATION = "adjudication", "Adjudication"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (gave up)"
