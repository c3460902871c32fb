"""``GET /api/v1/models/{name}/training-data/``: a model's human-verified cases, streamed as CSV or JSON Lines."""

from typing import TYPE_CHECKING

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import QueryDict, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.views import APIView

from audits.selectors.training_data import HUMAN_DECISION_SOURCES
from audits.services.training_data import CSV, TRAINING_DATA_FORMATS, training_data_export
from hitl_platform.api.permissions import RolePermission
from hitl_platform.api.serializers import StrictSerializer
from models_registry.selectors import model_readable_by_name

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

PERIOD_HELP = "An ISO 8601 date (midnight UTC) or date and time, of the cases' reception."
PERIOD_ERRORS: "dict[str, StrOrPromise]" = {
    "invalid": "Enter an ISO 8601 date (2025-03-01) or date and time (2025-03-01T09:30:00Z)."
}

EXPORT_RESPONSE = OpenApiResponse(
    OpenApiTypes.STR,
    description="CSV: case_id, prediction_id, a feature.<name> column per feature, other_features, label, label_from, "
    "final_label, source, outcome, version, decided_at (and a sensitive.<attribute> column per attribute). JSON Lines: "
    "the same, one object per line, with the features (and sensitive attributes) as objects.",
)


class TrainingDataQuerySerializer(StrictSerializer):
    """The export's query parameters; ``source`` may be repeated, the others are given at most once."""

    format = serializers.ChoiceField(choices=TRAINING_DATA_FORMATS, default=CSV, help_text="csv (default) or jsonl.")
    since = serializers.DateTimeField(
        required=False, error_messages=PERIOD_ERRORS, help_text=f"Cases received from (inclusive). {PERIOD_HELP}"
    )
    until = serializers.DateTimeField(
        required=False, error_messages=PERIOD_ERRORS, help_text=f"Cases received before (exclusive). {PERIOD_HELP}"
    )
    # drf-stubs take a field named source for Field.source, which DRF's metaclass never replaces
    # (typeddjango/djangorestframework-stubs#78).
    source = serializers.ListField(  # type: ignore[assignment]
        child=serializers.ChoiceField(
            choices=HUMAN_DECISION_SOURCES,
            error_messages={
                "invalid_choice": f'"{{input}}" is not a human decision: choose {" or ".join(HUMAN_DECISION_SOURCES)}.'
            },
        ),
        required=False,
        min_length=1,
        help_text="Only cases decided this way (repeat for several); default: every human decision.",
    )
    include_sensitive = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Add a sensitive.<attribute> column per sensitive attribute (only for users who may see them; "
        "every such export is recorded in the ledger).",
    )

    def to_internal_value(self, data):
        if isinstance(data, QueryDict):
            repeated = sorted(
                name for name, values in data.lists() if name in self.fields and name != "source" and len(values) > 1
            )
            if repeated:
                raise serializers.ValidationError({name: ["Give this parameter once."] for name in repeated})
        return super().to_internal_value(data)

    def validate(self, attrs):
        if "since" in attrs and "until" in attrs and attrs["since"] >= attrs["until"]:
            raise serializers.ValidationError({"until": ["The period must end after it starts."]})
        return attrs


class ExportFormatNegotiation(DefaultContentNegotiation):
    """Here ``format`` names the exported file's format, not DRF's renderer override; errors are always JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class ModelTrainingDataView(APIView):
    """The model's human-decided cases (consensus or adjudication, gold and purged cases left out), oldest first:
    features, training label (the outcome where one was reported, else the final label) and how it was decided.
    For the people who work on the model (owner, team, administrators)."""

    permission_classes = (RolePermission,)
    required_permissions = {"GET": ("reviews.view_prediction", "reviews.view_decision")}
    content_negotiation_class = ExportFormatNegotiation

    @extend_schema(
        parameters=[TrainingDataQuerySerializer],
        summary="Download a model's training data",
        description="Streams the model's human-decided cases (consensus or adjudication; gold and purged cases "
        "left out), oldest first, as CSV or JSON Lines: features, the training label (the reported outcome where "
        "there is one, else the final label), how it was decided, and the version. `include_sensitive` adds the "
        "sensitive attributes, for users allowed to see them (else 403); each such export is recorded in the "
        "ledger. A bad date, an unknown source or a repeated parameter is a 400.",
        responses={(200, "text/csv"): EXPORT_RESPONSE, (200, "application/jsonl"): EXPORT_RESPONSE},
        tags=["Training data"],
    )
    def get(self, request, name: str):
        model = model_readable_by_name(user=request.user, name=name)
        query = TrainingDataQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        try:
            export = training_data_export(
                actor=request.user,
                model=model,
                format=params["format"],
                since=params.get("since"),
                until=params.get("until"),
                sources=params.get("source"),
                include_sensitive=params["include_sensitive"],
            )
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict) from exc
        except DjangoPermissionDenied as exc:
            raise PermissionDenied(str(exc)) from exc
        response = StreamingHttpResponse(export.chunks, content_type=export.content_type)
        response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
        return response
