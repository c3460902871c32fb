"""Input serializers validate a request's shape; output serializers shape responses. Writes go to services."""

from django.contrib.auth.models import Group
from django.core.validators import validate_slug
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from hitl_platform.api.serializers import JSONObjectField, StrictCharField, StrictSerializer
from models_registry.choices import PROMOTION_TARGETS, ModelTask, RiskTier, Stage
from models_registry.models import MLModel, ModelVersion, PromotionRequest
from models_registry.validators import (
    MAX_LABEL_LENGTH,
    MAX_LABELS,
    MAX_SENSITIVE_ATTRIBUTES,
    validate_feature_schema,
    validate_features_apart_from_sensitive,
    validate_label_set,
    validate_labels,
    validate_metrics,
    validate_sensitive_attributes,
)

LONG_TEXT = 20_000
MAX_VERSION_NUMBER = 2**31 - 1
TARGET_STAGE_CHOICES = [(stage.value, Stage(stage).label) for stage in PROMOTION_TARGETS]


def _label_list(*, max_items: int, **kwargs) -> serializers.ListField:
    return serializers.ListField(child=StrictCharField(max_length=MAX_LABEL_LENGTH), max_length=max_items, **kwargs)


def _text(**kwargs) -> serializers.CharField:
    return serializers.CharField(max_length=LONG_TEXT, allow_blank=True, **kwargs)


def _team(**kwargs) -> serializers.SlugRelatedField:
    return serializers.SlugRelatedField(
        slug_field="name",
        queryset=Group.objects.all(),
        allow_null=True,
        help_text="The team (group) that works on the model with its owner: its members may change it too.",
        **kwargs,
    )


class MLModelCreateInputSerializer(StrictSerializer):
    """A new model: its labels, input schema, sensitive attributes, risk tier and model card."""

    name = StrictCharField(max_length=100, validators=[validate_slug], help_text="Unique slug, used in URLs.")
    description = _text(default="")
    task = serializers.ChoiceField(choices=ModelTask.choices, default=ModelTask.BINARY)
    labels = _label_list(max_items=MAX_LABELS, allow_empty=False, validators=[validate_labels])
    positive_label = StrictCharField(max_length=MAX_LABEL_LENGTH, allow_blank=True, default="")
    feature_schema = JSONObjectField(
        default=dict, validators=[validate_feature_schema], help_text="JSON Schema (draft 2020-12) of the input."
    )
    sensitive_attributes = _label_list(
        max_items=MAX_SENSITIVE_ATTRIBUTES, default=list, validators=[validate_sensitive_attributes]
    )
    risk_tier = serializers.ChoiceField(choices=RiskTier.choices, default=RiskTier.MEDIUM)
    team = _team(default=None)
    intended_use = _text(default="")
    out_of_scope_use = _text(default="")
    limitations = _text(default="")
    ethical_considerations = _text(default="")
    review_guidelines = _text(default="", help_text="Markdown shown to reviewers on every review form.")

    def validate(self, attrs):
        validate_label_set(task=attrs["task"], labels=attrs["labels"], positive_label=attrs["positive_label"])
        validate_features_apart_from_sensitive(
            feature_schema=attrs["feature_schema"], sensitive_attributes=attrs["sensitive_attributes"]
        )
        return attrs


class MLModelUpdateInputSerializer(StrictSerializer):
    """Every field optional; task, labels and feature schema are fixed once the model has a version."""

    description = _text(required=False)
    task = serializers.ChoiceField(choices=ModelTask.choices, required=False)
    labels = _label_list(max_items=MAX_LABELS, allow_empty=False, required=False, validators=[validate_labels])
    positive_label = StrictCharField(max_length=MAX_LABEL_LENGTH, allow_blank=True, required=False)
    feature_schema = JSONObjectField(required=False, validators=[validate_feature_schema])
    sensitive_attributes = _label_list(
        max_items=MAX_SENSITIVE_ATTRIBUTES, required=False, validators=[validate_sensitive_attributes]
    )
    risk_tier = serializers.ChoiceField(choices=RiskTier.choices, required=False)
    team = _team(required=False)
    intended_use = _text(required=False)
    out_of_scope_use = _text(required=False)
    limitations = _text(required=False)
    ethical_considerations = _text(required=False)
    review_guidelines = _text(required=False)
    reason = serializers.CharField(
        max_length=2000, required=False, help_text="Why the change is made; recorded in the model's history."
    )


class MLModelOutputSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    team = serializers.CharField(source="team.name", read_only=True, allow_null=True)
    latest_version = serializers.IntegerField(read_only=True, allow_null=True)
    production_version = serializers.IntegerField(read_only=True, allow_null=True)
    labels = serializers.ListField(child=serializers.CharField())
    sensitive_attributes = serializers.ListField(child=serializers.CharField())
    feature_schema = JSONObjectField()

    class Meta:
        model = MLModel
        fields = (
            "name",
            "description",
            "task",
            "labels",
            "positive_label",
            "feature_schema",
            "sensitive_attributes",
            "risk_tier",
            "owner",
            "team",
            "intended_use",
            "out_of_scope_use",
            "limitations",
            "ethical_considerations",
            "review_guidelines",
            "latest_version",
            "production_version",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


class ModelVersionCreateInputSerializer(StrictSerializer):
    """A new version: multipart with an optional skops file, or JSON for a version scored by its caller."""

    # None in a subclass removes the field (DRF's way), as the JSON form's schema does.
    artifact: serializers.FileField | None = serializers.FileField(
        required=False, help_text="A skops file (skops.io.dump); omit it for a version scored by its caller."
    )
    metrics = JSONObjectField(
        default=dict, validators=[validate_metrics], help_text='Evaluation metrics as a JSON object: {"f1": 0.8}.'
    )
    description = _text(default="", help_text="What the version was trained on.")
    parent_version = serializers.IntegerField(
        min_value=1,
        max_value=MAX_VERSION_NUMBER,
        required=False,
        allow_null=True,
        help_text="The number of the version this one was trained from (lineage).",
    )

    def validate(self, attrs):
        # A version with neither can be neither scored nor evaluated; this also catches a multipart body
        # that parsed into nothing (a wrong boundary), which would otherwise register an empty version.
        if not attrs.get("artifact") and not attrs.get("metrics"):
            raise serializers.ValidationError("Send the model file, the metrics, or both.")
        return attrs


@extend_schema_field({"type": "string", "example": '{"f1": 0.82, "roc_auc": 0.91}'})
class JSONObjectStringField(JSONObjectField):
    """A JSON object as a multipart form carries it: a string holding the object (JSONObjectField reads both)."""


@extend_schema_serializer(component_name="ModelVersionUpload")
class ModelVersionUploadSerializer(ModelVersionCreateInputSerializer):
    """A new version as a multipart form: the skops file as a file part, the metrics as a JSON string."""

    # Schema only, like the JSON form below: the view reads both forms with ModelVersionCreateInputSerializer.

    artifact = serializers.FileField(
        required=False, help_text="The skops file (skops.io.dump), as a file part; omit it to register metrics only."
    )
    metrics = JSONObjectStringField(
        required=False,
        help_text='Evaluation metrics: a JSON object sent as one string form field, e.g. {"f1": 0.82}.',
    )


@extend_schema_serializer(component_name="ModelVersionCreate")
class ModelVersionMetricsOnlySerializer(ModelVersionCreateInputSerializer):
    """A new version as a JSON body, for a version scored by its caller: metrics, no file."""

    artifact = None


class ModelVersionOutputSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name", read_only=True)
    parent_version = serializers.IntegerField(source="parent.number", read_only=True, allow_null=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True)
    library_versions = serializers.DictField(child=serializers.CharField(), read_only=True)
    metrics = JSONObjectField(read_only=True)

    class Meta:
        model = ModelVersion
        fields = (
            "model",
            "number",
            "stage",
            "artifact_sha256",
            "artifact_size",
            "library_versions",
            "metrics",
            "description",
            "parent_version",
            "created_by",
            "created_at",
        )
        read_only_fields = fields


class PromotionRequestCreateInputSerializer(StrictSerializer):
    """Where the version should go and why."""

    target_stage = serializers.ChoiceField(choices=TARGET_STAGE_CHOICES)
    rationale = StrictCharField(max_length=LONG_TEXT, help_text="Why this version should move.")


class GateResultSerializer(serializers.Serializer):
    name = serializers.CharField()
    passed = serializers.BooleanField()
    reason = serializers.CharField()
    evidence = serializers.JSONField(
        default=dict, help_text="What the gate relied on (e.g. what failed and the inputs it scored)."
    )


class PromotionRequestOutputSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="version.model.name", read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True)
    requester = serializers.CharField(source="requester.username", read_only=True)
    decided_by = serializers.CharField(source="decided_by.username", read_only=True, allow_null=True)
    target_stage = serializers.ChoiceField(choices=TARGET_STAGE_CHOICES, read_only=True)
    gate_results = GateResultSerializer(many=True, read_only=True)

    class Meta:
        model = PromotionRequest
        fields = (
            "id",
            "model",
            "version",
            "target_stage",
            "status",
            "requester",
            "rationale",
            "decided_by",
            "decision_reason",
            "decided_at",
            "gate_results",
            "created_at",
        )
        read_only_fields = fields
