"""Serializers of the prediction, decision and webhook API.

The prediction intake is validated by ``reviews.services.intake`` in one pass over the whole batch (5,000
items through a serializer each would cost more than the rest of intake); its serializers here describe the
request and the responses for the OpenAPI schema and shape nothing at run time.
"""

from typing import Any

from django.contrib.auth.models import User
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from hitl_platform.api.serializers import StrictCharField, StrictInputMixin, StrictSerializer
from models_registry.models import MLModel
from models_registry.selectors import ml_models_writable_by
from reviews.choices import DecisionSource, Route, TaskStatus
from reviews.models import Decision, Prediction, Webhook
from reviews.services.intake import MAX_BATCH_SIZE, MAX_EXTERNAL_ID_LENGTH
from reviews.services.webhooks import WEBHOOK_EVENTS

# The `type: ignore[assignment]`s below: drf-stubs take a field named like an attribute of Field or Serializer
# (label, source, errors) for a new value of that attribute, but DRF's metaclass takes declared fields off the
# class, so none is replaced (typeddjango/djangorestframework-stubs#78).

# --- intake (schema only) ---


class PredictionItemSerializer(StrictSerializer):
    external_id = serializers.CharField(
        max_length=MAX_EXTERNAL_ID_LENGTH, help_text="Your idempotency key for this case, unique per model."
    )
    features = serializers.DictField(help_text="The model's input, validated against its feature schema.")
    attributes = serializers.DictField(
        required=False, help_text="Sensitive attributes (e.g. sex, age band): kept apart, used by audits only."
    )
    label = serializers.CharField(  # type: ignore[assignment]
        required=False, help_text="The model's answer; leave it out to have the platform score the case."
    )
    confidence = serializers.FloatField(required=False, min_value=0, max_value=1)
    scores = serializers.DictField(child=serializers.FloatField(min_value=0, max_value=1), required=False)
    explanation = serializers.JSONField(required=False, help_text="Free JSON, e.g. feature contributions.")
    version = serializers.IntegerField(
        required=False, min_value=1, help_text="The version that answered; defaults to the production version."
    )


class PredictionBatchSerializer(StrictSerializer):
    # What many=True builds, spelled out: drf-stubs do not know that many=True takes min_length and max_length.
    predictions: serializers.ListSerializer[Any] = serializers.ListSerializer(
        child=PredictionItemSerializer(), min_length=1, max_length=MAX_BATCH_SIZE
    )


class DecisionBriefSerializer(serializers.Serializer):
    label = serializers.CharField()  # type: ignore[assignment]
    source = serializers.ChoiceField(choices=DecisionSource.choices)  # type: ignore[assignment]


class PredictionResultSerializer(serializers.Serializer):
    external_id = serializers.CharField()
    id = serializers.IntegerField()
    route = serializers.ChoiceField(choices=Route.choices)
    reasons = serializers.ListField(child=serializers.CharField(), help_text="Why it was routed this way, in words.")
    decision = DecisionBriefSerializer(allow_null=True, help_text="Set when the case was decided automatically.")
    review_task = serializers.IntegerField(allow_null=True, help_text="The review task of a case routed to review.")
    replayed = serializers.BooleanField(help_text="True when this external_id was already stored with this payload.")


class PredictionBatchResultSerializer(serializers.Serializer):
    results = PredictionResultSerializer(many=True, help_text="One result per item, in the order sent.")


class IntakeErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField(allow_null=True, help_text="The item's position in the batch; null: the batch.")
    field = serializers.CharField()
    message = serializers.CharField()


class IntakeErrorResponseSerializer(serializers.Serializer):
    detail = serializers.CharField()
    errors = IntakeErrorSerializer(many=True)  # type: ignore[assignment]


class IntakeConflictResponseSerializer(serializers.Serializer):
    detail = serializers.CharField()
    conflicts = IntakeErrorSerializer(many=True)


class ErrorDetailSerializer(serializers.Serializer):
    detail = serializers.CharField()


# --- predictions and outcomes ---


class ReviewStatusSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=TaskStatus.choices)
    reviews_required = serializers.IntegerField()
    needs_adjudication = serializers.BooleanField()
    priority = serializers.IntegerField()
    due_at = serializers.DateTimeField()
    sla_breached = serializers.BooleanField()


class DecisionDetailSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.CharField(source="final_label")  # type: ignore[assignment]
    source = serializers.ChoiceField(choices=DecisionSource.choices)  # type: ignore[assignment]
    agreement = serializers.FloatField(allow_null=True)
    decided_at = serializers.DateTimeField()


class PredictionSerializer(serializers.ModelSerializer):
    """A case as its model's owner sees it. Sensitive attributes are never returned."""

    model: serializers.SlugRelatedField[MLModel] = serializers.SlugRelatedField(slug_field="name", read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True)
    label = serializers.CharField(source="predicted_label", read_only=True)  # type: ignore[assignment]
    reasons = serializers.ListField(child=serializers.CharField(), source="route_reasons", read_only=True)
    decision = serializers.SerializerMethodField()
    review_task = serializers.SerializerMethodField()

    class Meta:
        model = Prediction
        fields = [
            "id",
            "external_id",
            "model",
            "version",
            "features",
            "label",
            "confidence",
            "scores",
            "explanation",
            "scored_by_platform",
            "route",
            "reasons",
            "priority",
            "is_qa_sample",
            "created_at",
            "outcome_label",
            "outcome_reported_at",
            "decision",
            "review_task",
        ]
        read_only_fields = fields

    @staticmethod
    def _related(prediction: Prediction, name: str):
        # A reverse one-to-one raises when absent; select_related has already looked.
        return getattr(prediction, name, None)

    @extend_schema_field(DecisionDetailSerializer(allow_null=True))
    def get_decision(self, prediction: Prediction) -> dict | None:
        decision = self._related(prediction, "decision")
        return DecisionDetailSerializer(decision).data if decision is not None else None

    @extend_schema_field(ReviewStatusSerializer(allow_null=True))
    def get_review_task(self, prediction: Prediction) -> dict | None:
        task = self._related(prediction, "review_task")
        return ReviewStatusSerializer(task).data if task is not None else None


class OutcomeInputSerializer(StrictSerializer):
    label = StrictCharField(max_length=100, help_text="The real-world outcome, one of the model's labels.")  # type: ignore[assignment]
    correction = serializers.BooleanField(
        default=False, help_text="Replace an outcome reported before (needs a reason)."
    )
    reason = StrictCharField(max_length=2000, required=False, allow_blank=True, default="")


class OutcomeSerializer(serializers.ModelSerializer):
    prediction = serializers.IntegerField(source="pk", read_only=True)
    outcome_reported_by: serializers.SlugRelatedField[User] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )

    class Meta:
        model = Prediction
        fields = ["prediction", "external_id", "outcome_label", "outcome_reported_at", "outcome_reported_by"]
        read_only_fields = fields


# --- decisions feed ---


class DecisionSerializer(serializers.ModelSerializer):
    """A final decision: the label, where it came from (source, reviewers or adjudicator, reason) and the
    routing policy version its case was routed under."""

    model: serializers.SlugRelatedField[MLModel] = serializers.SlugRelatedField(slug_field="name", read_only=True)
    prediction = serializers.IntegerField(source="prediction.id", read_only=True)
    external_id = serializers.CharField(source="prediction.external_id", read_only=True)
    version = serializers.IntegerField(source="prediction.version.number", read_only=True)
    label = serializers.CharField(source="final_label", read_only=True)  # type: ignore[assignment]
    reviewers = serializers.SerializerMethodField(help_text="Usernames of the reviewers whose reviews formed it.")
    decided_by: serializers.SlugRelatedField[User] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True, help_text="The adjudicator who made the call."
    )
    policy_history_id = serializers.IntegerField(source="prediction.policy_history_id", read_only=True, allow_null=True)
    policy_sha256 = serializers.CharField(source="prediction.policy_sha256", read_only=True)

    class Meta:
        model = Decision
        fields = [
            "id",
            "prediction",
            "external_id",
            "model",
            "version",
            "label",
            "source",
            "agreement",
            "reviewers",
            "decided_by",
            "reason",
            "policy_history_id",
            "policy_sha256",
            "decided_at",
        ]
        read_only_fields = fields

    def get_reviewers(self, decision: Decision) -> list[str]:
        return [reviewer["username"] for reviewer in decision.reviewers]


# --- webhooks ---


class WebhookSerializer(StrictInputMixin, serializers.ModelSerializer):
    events = serializers.ListField(child=serializers.ChoiceField(choices=WEBHOOK_EVENTS), min_length=1)
    model = serializers.SlugRelatedField(
        slug_field="name",
        queryset=MLModel.objects.all(),
        allow_null=True,
        required=False,
        help_text="Only this model's decisions; leave empty for every model you own.",
    )

    class Meta:
        model = Webhook
        fields = ["id", "url", "events", "model", "is_active", "created_at"]
        read_only_fields = ["id", "created_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None and "model" in self.fields:
            # Another team's model is looked up like a name nobody registered: the same error for both.
            self.fields["model"].queryset = ml_models_writable_by(request.user)


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.CharField(
        read_only=True, help_text="The HMAC-SHA256 signing secret. Shown only in this response: store it now."
    )

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]
