"""The auto-decide threshold recommendation of a model, for the people who may read the model and its routing.

Read only: a recommendation is applied by a person in the console, never through this endpoint.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from audits.selectors.threshold_recommendation import (
    CONFIDENCE_RANGE,
    TARGET_ERROR_RANGE,
    threshold_recommendation_document,
    threshold_recommendation_for,
)
from audits.thresholds import DEFAULT_CONFIDENCE_LEVEL, DEFAULT_TARGET_ERROR_RATE
from hitl_platform.api.permissions import RolePermission
from hitl_platform.api.serializers import StrictSerializer
from models_registry.selectors import model_readable_by_name


class ThresholdRecommendationQuerySerializer(StrictSerializer):
    """Query parameters: the error rate not to exceed and how sure the bound must be; nothing else."""

    target_error = serializers.FloatField(
        default=DEFAULT_TARGET_ERROR_RATE,
        min_value=TARGET_ERROR_RANGE[0],
        max_value=TARGET_ERROR_RANGE[1],
        help_text="The highest acceptable error rate of automatic decisions, as a fraction (0.02 is 2%).",
    )
    confidence = serializers.FloatField(
        default=DEFAULT_CONFIDENCE_LEVEL,
        min_value=CONFIDENCE_RANGE[0],
        max_value=CONFIDENCE_RANGE[1],
        help_text="The confidence level of the one-sided Clopper-Pearson upper bound on that error rate.",
    )


class ModelThresholdRecommendationView(APIView):
    """The lowest auto-decide threshold whose error rate, bounded from above at ``confidence``, stays under
    ``target_error``; the automation rate, error rate and review load at the current and the recommended
    threshold; the per-band figures of the reliability chart; and the recommendation in sentences."""

    permission_classes = (RolePermission,)
    required_permissions = {"GET": ("reviews.view_routingpolicy",)}

    @extend_schema(
        summary="Get a model's threshold recommendation",
        description="The lowest auto-decide confidence threshold whose error rate on the model's reviewed cases, "
        "bounded from above at `confidence`, stays under `target_error`; the automation rate, error rate and "
        "review load at the current and the recommended threshold; the per-band figures of the reliability "
        "chart; and the recommendation in sentences. Read only: a person applies it in the console. Values out "
        "of range are a 400 naming the parameter; a model you may not read is a 404.",
        parameters=[ThresholdRecommendationQuerySerializer],
        responses={200: OpenApiTypes.OBJECT},
        tags=["Routing"],
    )
    def get(self, request, name: str) -> Response:
        model = model_readable_by_name(user=request.user, name=name)
        query = ThresholdRecommendationQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        result = threshold_recommendation_for(
            model=model,
            target_error=query.validated_data["target_error"],
            confidence_level=query.validated_data["confidence"],
        )
        return Response(threshold_recommendation_document(result))
