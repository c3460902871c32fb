import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from models_registry.models import MLModel, ModelVersion
from reviews.choices import (
    CLAIMABLE_TASK_STATUSES,
    AssignmentStatus,
    AssignmentStrategy,
    ConsensusRule,
    DecisionSource,
    DeliveryStatus,
    Route,
    TaskStatus,
)

# Personal data (features, sensitive attributes) stays out of history tables, so that a retention purge or
# an erasure request touches one row, while the ledger keeps the input's SHA-256 as proof.
PERSONAL_DATA_FIELDS = ["features", "sensitive_attributes", "explanation", "scores"]


def case_name(external_id: str, prediction_id: int) -> str:
    """A case's one name, e.g. ``application-00136 (#136)``, also for rows read with ``values()``."""
    return f"{external_id} (#{prediction_id})"


class RoutingPolicy(models.Model):
    """How one model's predictions are routed and reviewed. Every change is historised with a reason."""

    model = models.OneToOneField(MLModel, on_delete=models.PROTECT, related_name="routing_policy")
    auto_decide_threshold = models.FloatField(
        "Auto-decide threshold", default=0.8, help_text="Cases at or above this confidence are decided automatically."
    )
    label_thresholds = models.JSONField(
        default=dict, blank=True, help_text='Per-label thresholds, e.g. {"deny": 0.95}; override the default.'
    )
    rules = models.JSONField(
        default=list,
        blank=True,
        help_text='Business rules: [{"field", "operator", "value", "action": "review"|"escalate", "reason"}].',
    )
    qa_sample_rate = models.FloatField(
        "QA sample rate", default=0.05, help_text="Share of confident cases still sent to review."
    )
    reviews_required = models.PositiveSmallIntegerField(
        "Reviews per case",
        null=True,
        blank=True,
        help_text="Independent reviews per case; empty means the risk tier's default.",
    )
    consensus_rule = models.CharField(
        "Consensus rule", max_length=20, choices=ConsensusRule.choices, default=ConsensusRule.MAJORITY
    )
    min_agreement = models.FloatField(
        "Minimum agreement",
        default=0.5,
        help_text="Share of (weighted) votes the winning label needs; below it the case escalates.",
    )
    sla_hours = models.PositiveIntegerField("SLA (hours)", default=24)
    blind_review = models.BooleanField(
        "Blind review", default=False, help_text="Hide the model's answer from reviewers."
    )
    assignment_strategy = models.CharField(
        "Assignment strategy", max_length=20, choices=AssignmentStrategy.choices, default=AssignmentStrategy.PULL
    )
    max_open_claims_per_reviewer = models.PositiveSmallIntegerField("Open claims per reviewer (at most)", default=3)
    lease_minutes = models.PositiveSmallIntegerField("Claim lease (minutes)", default=15)
    gold_rate = models.FloatField(
        "Gold case rate", default=0.0, help_text="Share of claims that serve a gold (known-answer) case."
    )
    stop_switch_on = models.BooleanField(
        default=False, help_text="While on, every new case goes to human review (EU AI Act art. 14(4)(e))."
    )
    stop_switch_changed_at = models.DateTimeField(null=True, blank=True)
    stop_switch_changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        verbose_name_plural = "routing policies"
        permissions = [("toggle_stop_switch", "Can turn a model's stop switch on or off")]

    def __str__(self) -> str:
        return f"Routing policy of {self.model.name}"


class Prediction(models.Model):
    """One case: a model's answer on one input, how it was routed and why, and the outcome seen later."""

    # No index of its own: the unique (model, external_id) and (model, -created_at) indexes both lead with it,
    # and every index is paid for on the intake hot path.
    model = models.ForeignKey(MLModel, on_delete=models.PROTECT, related_name="predictions", db_index=False)
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="predictions")
    external_id = models.CharField(max_length=200, help_text="The caller's idempotency key, unique per model.")
    payload_sha256 = models.CharField(max_length=64, help_text="Hash of the submitted item, to detect conflicts.")
    input_sha256 = models.CharField(max_length=64, help_text="Hash of the features: what the ledger proves.")
    features = models.JSONField(default=dict)
    sensitive_attributes = models.JSONField(default=dict, blank=True)
    predicted_label = models.CharField(max_length=100)
    confidence = models.FloatField(null=True, blank=True)
    scores = models.JSONField(default=dict, blank=True)
    explanation = models.JSONField(null=True, blank=True)
    scored_by_platform = models.BooleanField(default=False)
    route = models.CharField(max_length=10, choices=Route.choices)
    route_reasons = models.JSONField(default=list, blank=True)
    # The exact routing policy it was routed under: the policy's history row and the SHA-256 of its settings.
    policy_history_id = models.BigIntegerField(null=True, blank=True, help_text="History id of the routing policy.")
    policy_sha256 = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the policy's settings.")
    priority = models.IntegerField(default=0)
    is_qa_sample = models.BooleanField(default=False)
    is_gold = models.BooleanField(default=False)
    gold_label = models.CharField(max_length=100, blank=True)
    outcome_label = models.CharField(max_length=100, blank=True)
    outcome_reported_at = models.DateTimeField(null=True, blank=True)
    outcome_reported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    submitted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    # History is looked up by the prediction's id (and date); the copied foreign keys and dates need no
    # index of their own there, and each one costs a write on every routed prediction.
    history = HistoricalRecords(
        excluded_fields=PERSONAL_DATA_FIELDS,
        no_db_index=["model", "version", "submitted_by", "outcome_reported_by", "created_at"],
    )

    class Meta:
        permissions = [("report_outcome", "Can report the real-world outcome of a prediction")]
        constraints = [
            models.UniqueConstraint(fields=["model", "external_id"], name="unique_external_id_per_model"),
        ]
        indexes = [models.Index(fields=["model", "-created_at"], name="prediction_model_recent")]

    def __str__(self) -> str:
        return self.case_name

    @property
    def case_name(self) -> str:
        """What every page, list, link and export calls this case: the caller's id and ours."""
        return case_name(self.external_id, self.pk)


class ReviewTask(models.Model):
    """The human review of one routed prediction: how many reviews it needs, how urgent, by when."""

    prediction = models.OneToOneField(Prediction, on_delete=models.PROTECT, related_name="review_task")
    model = models.ForeignKey(MLModel, on_delete=models.PROTECT, related_name="review_tasks")
    status = models.CharField(max_length=20, choices=TaskStatus.choices, default=TaskStatus.OPEN)
    reviews_required = models.PositiveSmallIntegerField(default=1)
    # Slots held by live assignments (assigned, claimed or submitted): kept in the claim transaction so that
    # claim-next finds a task with a free slot from one index scan, without counting assignments per row.
    slots_taken = models.PositiveSmallIntegerField(default=0)
    needs_adjudication = models.BooleanField(
        default=False, help_text="Critical-tier cases get an adjudicator's final call after the reviews."
    )
    priority = models.IntegerField(default=0, help_text="Higher is more urgent.")
    due_at = models.DateTimeField()
    sla_breached = models.BooleanField(default=False)
    escalation_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords(no_db_index=["prediction", "model"])

    class Meta:
        permissions = [
            ("review_cases", "Can claim and review cases on the reviewer pages"),
            ("adjudicate_cases", "Can resolve escalated cases and reopen decisions on appeal"),
        ]
        indexes = [
            models.Index(
                fields=["-priority", "due_at", "id"],
                name="review_task_claim_order",
                # Full tasks leave the index too, so claims never walk past cases with no free slot.
                condition=Q(status__in=CLAIMABLE_TASK_STATUSES, slots_taken__lt=models.F("reviews_required")),
            ),
            models.Index(fields=["status", "due_at"], name="review_task_status_due"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(slots_taken__lte=models.F("reviews_required")), name="slots_within_required"
            ),
        ]

    def __str__(self) -> str:
        return f"Review task {self.pk} ({self.status})"


class Assignment(models.Model):
    """One reviewer's slot on one task, held by a lease rather than a database lock while they think."""

    task = models.ForeignKey(ReviewTask, on_delete=models.PROTECT, related_name="assignments")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="assignments")
    status = models.CharField(max_length=20, choices=AssignmentStatus.choices, default=AssignmentStatus.CLAIMED)
    is_adjudication = models.BooleanField(default=False)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    release_reason = models.TextField(blank=True)

    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["task", "reviewer"], name="one_assignment_per_task_and_reviewer"),
        ]
        indexes = [
            models.Index(fields=["reviewer", "status"], name="assignment_reviewer_status"),
            models.Index(
                fields=["lease_expires_at"],
                name="assignment_live_lease",
                condition=Q(status__in=[AssignmentStatus.ASSIGNED, AssignmentStatus.CLAIMED]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reviewer_id} on task {self.task_id} ({self.status})"


class Review(models.Model):
    """A reviewer's answer. Immutable once submitted: a correction is a new review that names this one."""

    task = models.ForeignKey(ReviewTask, on_delete=models.PROTECT, related_name="reviews")
    assignment = models.ForeignKey(Assignment, null=True, blank=True, on_delete=models.PROTECT, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews")
    label = models.CharField(max_length=100)
    rationale = models.TextField()
    time_spent_seconds = models.PositiveIntegerField(default=0)
    is_adjudication = models.BooleanField(default=False)
    corrects = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="corrections")
    correction_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    history = HistoricalRecords()

    class Meta:
        indexes = [models.Index(fields=["reviewer", "-created_at"], name="review_reviewer_recent")]

    def __str__(self) -> str:
        return f"Review {self.pk}: {self.label}"


class Decision(models.Model):
    """The final label of one prediction: what downstream systems consume and what audits audit."""

    prediction = models.OneToOneField(Prediction, on_delete=models.PROTECT, related_name="decision")
    # Indexed by decision_model_id (model, id), which also serves the decisions feed.
    model = models.ForeignKey(MLModel, on_delete=models.PROTECT, related_name="decisions", db_index=False)
    final_label = models.CharField(max_length=100)
    source = models.CharField(max_length=20, choices=DecisionSource.choices)
    agreement = models.FloatField(null=True, blank=True, help_text="Share of reviews that agreed (human sources).")
    decided_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reviewers = models.JSONField(
        default=list,
        blank=True,
        help_text='The reviewers whose reviews formed the decision, as they were named then: [{"id", "username"}].',
    )
    reason = models.TextField(blank=True, help_text="Why this is the final label: the rule, the tally, the call.")

    history = HistoricalRecords(no_db_index=["prediction", "model", "decided_by"])

    class Meta:
        indexes = [
            models.Index(fields=["model", "id"], name="decision_model_id"),
            models.Index(fields=["decided_at"], name="decision_decided_at"),
        ]

    def __str__(self) -> str:
        return f"Decision {self.pk}: {self.final_label} ({self.source})"


class Webhook(models.Model):
    """A downstream receiver of final decisions, sent HMAC-SHA256-signed JSON."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="webhooks")
    url = models.URLField(max_length=500)
    events = models.JSONField(default=list, help_text='Event names, e.g. ["decision.final"].')
    model = models.ForeignKey(
        MLModel,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="webhooks",
        help_text="Only this model's events; empty means every model the owner may read.",
    )
    secret = models.CharField(max_length=128, help_text="Shared HMAC secret; shown to its owner once.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords(excluded_fields=["secret"])

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """The outbox: written in the decision's own transaction, sent later by a Celery task with back-off."""

    webhook = models.ForeignKey(Webhook, on_delete=models.PROTECT, related_name="deliveries")
    delivery_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event = models.CharField(max_length=50)
    payload = models.JSONField()
    status = models.CharField(max_length=20, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(fields=["next_attempt_at"], name="delivery_due", condition=Q(status=DeliveryStatus.PENDING)),
        ]

    def __str__(self) -> str:
        return f"{self.event} -> {self.webhook_id} ({self.status})"
