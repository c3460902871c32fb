from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from models_registry.choices import ModelTask, PromotionStatus, RiskTier, Stage
from models_registry.validators import (
    validate_feature_schema,
    validate_features_apart_from_sensitive,
    validate_label_set,
    validate_labels,
    validate_metrics,
    validate_sensitive_attributes,
)


class MLModel(models.Model):
    """A registered AI model: what it decides, on which input, how risky it is, and its model card."""

    name = models.SlugField(max_length=100, unique=True, help_text="Unique slug, used in API URLs.")
    description = models.TextField(blank=True)
    task = models.CharField(max_length=20, choices=ModelTask.choices, default=ModelTask.BINARY)
    labels = models.JSONField(
        default=list, validators=[validate_labels], help_text="The labels the model (and a reviewer) may give."
    )
    positive_label = models.CharField(
        max_length=100, blank=True, help_text="The favourable outcome, for selection-rate fairness metrics."
    )
    feature_schema = models.JSONField(
        default=dict, blank=True, validators=[validate_feature_schema], help_text="JSON Schema of a prediction's input."
    )
    sensitive_attributes = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_sensitive_attributes],
        help_text="Names of the attributes audits group by; never shown to reviewers.",
    )
    risk_tier = models.CharField(max_length=20, choices=RiskTier.choices, default=RiskTier.MEDIUM)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_models")
    team = models.ForeignKey(
        Group,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="models",
        help_text="The team (a Django group) whose members work on this model beside its owner; never a role group.",
    )
    intended_use = models.TextField(blank=True)
    out_of_scope_use = models.TextField(blank=True)
    limitations = models.TextField(blank=True)
    ethical_considerations = models.TextField(blank=True)
    review_guidelines = models.TextField(blank=True, help_text="Markdown shown to reviewers on every review form.")
    legal_hold = models.BooleanField(default=False, help_text="While on, no retention purge touches this model.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        verbose_name = "model"
        permissions = [("view_every_model", "Can read every team's models and their records")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if isinstance(self.labels, list):
            validate_label_set(task=self.task, labels=self.labels, positive_label=self.positive_label)
        validate_features_apart_from_sensitive(
            feature_schema=self.feature_schema, sensitive_attributes=self.sensitive_attributes
        )


def model_file_path(instance: "ModelVersion", filename: str) -> str:
    return f"model_files/{instance.model.name}/v{instance.number}-{instance.artifact_sha256[:16]}.skops"


class ModelVersion(models.Model):
    """One trained version of a model: its skops file, metrics, lineage and lifecycle stage."""

    model = models.ForeignKey(MLModel, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    artifact = models.FileField(upload_to=model_file_path, blank=True, max_length=300)
    artifact_sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    artifact_size = models.PositiveBigIntegerField(null=True, blank=True)
    library_versions = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True, validators=[validate_metrics])
    description = models.TextField(blank=True, help_text="What it was trained on.")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    # Plain data, not a foreign key: the registry imports nothing of the audits app that retrains models.
    retraining_job_id = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="The retraining job that produced this version, if one did."
    )
    stage = models.CharField(max_length=20, choices=Stage.choices, default=Stage.CANDIDATE, db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="registered_versions"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["model", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["model", "number"], name="unique_version_number_per_model"),
            models.UniqueConstraint(
                fields=["model"], condition=Q(stage=Stage.PRODUCTION), name="one_production_version_per_model"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model.name} v{self.number}"


class PromotionRequest(models.Model):
    """A request to move a version to another stage; decided by a different person (four-eyes)."""

    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="promotion_requests")
    target_stage = models.CharField(max_length=20, choices=Stage.choices)
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="promotion_requests")
    rationale = models.TextField()
    status = models.CharField(
        max_length=20, choices=PromotionStatus.choices, default=PromotionStatus.PENDING, db_index=True
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="decided_promotion_requests",
    )
    decision_reason = models.TextField(blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    gate_results = models.JSONField(default=list, blank=True)
    gate_overrides = models.JSONField(
        default=list, blank=True, help_text="Gates an administrator overrode for this request: who, when, why."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at"]
        permissions = [("decide_promotionrequest", "Can approve or reject promotion requests")]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "target_stage"],
                condition=Q(status=PromotionStatus.PENDING),
                name="one_pending_request_per_version_and_stage",
            ),
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=models.F("requester")),
                name="promotion_decider_is_not_requester",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.version} -> {self.target_stage} ({self.status})"
