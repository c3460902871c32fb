"""Prediction intake, predictions, outcomes, the decisions feed and webhooks. Thin: services do the work."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hitl_platform.api.pagination import StandardCursorPagination
from hitl_platform.api.parsers import JSONParser
from hitl_platform.api.permissions import RolePermission
from hitl_platform.types import authenticated_user
from reviews.api.filters import DecisionFilter, PredictionFilter
from reviews.api.serializers import (
    DecisionSerializer,
    ErrorDetailSerializer,
    IntakeConflictResponseSerializer,
    IntakeErrorResponseSerializer,
    OutcomeInputSerializer,
    OutcomeSerializer,
    PredictionBatchResultSerializer,
    PredictionBatchSerializer,
    PredictionItemSerializer,
    PredictionResultSerializer,
    PredictionSerializer,
    WebhookCreatedSerializer,
    WebhookSerializer,
)
from reviews.exceptions import IntakeConflictError, IntakeValidationError, OutcomeConflictError
from reviews.models import Decision, Prediction, Webhook
from reviews.selectors.predictions import (
    decisions_for_user,
    model_for_intake,
    prediction_get_for_user,
    predictions_for_user,
    webhooks_of_owner,
)
from reviews.services.intake import predictions_ingest
from reviews.services.outcomes import prediction_report_outcome
from reviews.services.webhooks import webhook_create, webhook_deactivate, webhook_update

PREDICTION_SUBMISSION = PolymorphicProxySerializer(
    component_name="PredictionSubmission",
    serializers=[PredictionItemSerializer, PredictionBatchSerializer],
    resource_type_field_name=None,
)
PREDICTION_SUBMISSION_RESULT = PolymorphicProxySerializer(
    component_name="PredictionSubmissionResult",
    serializers=[PredictionResultSerializer, PredictionBatchResultSerializer],
    resource_type_field_name=None,
)


class ModelPredictionsView(APIView):
    """Submit one prediction, or ``{"predictions": [...]}`` with up to 5,000, to be routed and decided or reviewed.

    Answers 201 when anything was stored, 200 when every item was a replay of a stored one; 400 listing every
    invalid item by index and field, or 409 listing every item whose external_id is stored with another
    payload: in both cases nothing is stored.
    """

    permission_classes = (RolePermission,)
    required_permissions = {"POST": ("reviews.add_prediction",)}
    parser_classes = (JSONParser,)

    @extend_schema(
        operation_id="models_predictions_create",
        summary="Submit predictions",
        description='Submit one prediction, or `{"predictions": [...]}` with up to 5,000, for a model you work '
        "on. Each is validated against the model's feature schema, scored by its version when it has no `label`, "
        "and routed: decided automatically (the result carries the decision) or sent to human review (it carries "
        "the review task). `external_id` is your idempotency key: sending the same payload again is a replay, "
        "answered with the stored result. Answers 201 when anything was stored, 200 when every item was a replay. "
        "The batch is all or nothing: a 400 lists every invalid item by index and field, a 409 every item whose "
        "external_id is stored with another payload, and in both cases nothing is stored.",
        request=PREDICTION_SUBMISSION,
        responses={
            201: PREDICTION_SUBMISSION_RESULT,
            200: PREDICTION_SUBMISSION_RESULT,
            400: IntakeErrorResponseSerializer,
            404: ErrorDetailSerializer,
            409: IntakeConflictResponseSerializer,
        },
        tags=["Predictions"],
    )
    def post(self, request: Request, name: str) -> Response:
        model = model_for_intake(name=name, user=request.user)
        data = request.data
        if not isinstance(data, dict):
            return _bad_request('Send one prediction object, or {"predictions": [...]}.')
        is_batch = "predictions" in data
        if is_batch:
            items = data["predictions"]
            if not isinstance(items, list) or len(data) > 1:
                return _bad_request('Send {"predictions": [...]} with a list of predictions and nothing else.')
        else:
            items = [data]
        try:
            outcome = predictions_ingest(model=model, items=items, actor=authenticated_user(request))
        except IntakeValidationError as exc:
            return Response(
                {"detail": exc.message, "errors": [error.as_dict() for error in exc.errors]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        except IntakeConflictError as exc:
            return Response(
                {"detail": exc.message, "conflicts": [conflict.as_dict() for conflict in exc.conflicts]},
                status=status.HTTP_409_CONFLICT,
            )
        body = {"results": outcome.results} if is_batch else outcome.results[0]
        return Response(body, status=status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK)


def _bad_request(message: str) -> Response:
    return Response(
        {"detail": message, "errors": [{"index": None, "field": "predictions", "message": message}]},
        status=status.HTTP_400_BAD_REQUEST,
    )


class PredictionDetailView(APIView):
    """One prediction with its route reasons, current decision and review status."""

    permission_classes = (RolePermission,)
    required_permissions = {"GET": ("reviews.view_prediction",)}

    @extend_schema(
        operation_id="predictions_retrieve",
        summary="Get a prediction",
        description="One case: its features, the model's label and confidence, the route and the reasons for it, "
        "its final decision (once made) and its review task's status, due time and SLA. Sensitive attributes are "
        "never returned. A case of a model you may not read is a 404.",
        responses={200: PredictionSerializer, 404: ErrorDetailSerializer},
        tags=["Predictions"],
    )
    def get(self, request: Request, pk: int) -> Response:
        prediction = prediction_get_for_user(prediction_id=pk, user=request.user)
        return Response(PredictionSerializer(prediction).data)


class PredictionOutcomeView(APIView):
    """Report the real-world outcome of a prediction. The same label again changes nothing; a different
    label once one is recorded needs ``correction: true`` and a reason (else 409)."""

    permission_classes = (RolePermission,)
    required_permissions = {"POST": ("reviews.report_outcome",)}
    parser_classes = (JSONParser,)

    @extend_schema(
        operation_id="predictions_outcome_create",
        summary="Report a prediction's outcome",
        description="Record what really happened (one of the model's labels), for the model's evaluation and "
        "retraining. 201 when recorded; the same label again is a 200 that changes nothing. A different label once "
        "one is recorded is a 409 unless you send `correction: true` with a `reason`. A label the model does not "
        "have is a 400.",
        request=OutcomeInputSerializer,
        responses={
            200: OutcomeSerializer,
            201: OutcomeSerializer,
            404: ErrorDetailSerializer,
            409: ErrorDetailSerializer,
        },
        tags=["Predictions"],
    )
    def post(self, request: Request, pk: int) -> Response:
        prediction = prediction_get_for_user(prediction_id=pk, user=request.user, for_write=True)
        serializer = OutcomeInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            prediction, changed = prediction_report_outcome(
                prediction=prediction, actor=authenticated_user(request), **serializer.validated_data
            )
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages) from exc
        except OutcomeConflictError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(
            OutcomeSerializer(prediction).data, status=status.HTTP_201_CREATED if changed else status.HTTP_200_OK
        )


class DecisionFeedPagination(StandardCursorPagination):
    """Oldest first by id: new decisions only ever join the end, so a consumer's cursor never skips one."""

    ordering = "id"


@extend_schema_view(
    get=extend_schema(
        operation_id="decisions_list",
        summary="List final decisions",
        description="The final decisions of the models you may read, oldest first by id: new decisions only join "
        "the end, so following `next` (or passing the largest id you have as `after`) never skips one. Each gives "
        "the label, who decided (automatically, by reviewer consensus or by an adjudicator), the reviewers, the "
        "reason and the routing policy version the case was routed under. Filter by case, model, label, source "
        "and decision time; an unknown query parameter is a 400.",
        tags=["Decisions"],
    )
)
class DecisionListView(ListAPIView):
    """Final decisions of the models you may read, for downstream systems: cursor pages, stable id order."""

    permission_classes = (RolePermission,)
    required_permissions = {"GET": ("reviews.view_decision",)}
    serializer_class = DecisionSerializer
    pagination_class = DecisionFeedPagination
    filterset_class = DecisionFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Decision.objects.none()
        return decisions_for_user(user=self.request.user)


@extend_schema_view(
    get=extend_schema(
        operation_id="predictions_list",
        summary="List predictions",
        description="The cases of the models you may read, newest first, each with its route, reasons, decision "
        "and review status. Filter by case id, model, the model's label, route, and the source and time of the "
        "decision; an unknown query parameter is a 400.",
        tags=["Predictions"],
    )
)
class PredictionListView(ListAPIView):
    """Cases of the models you may read, newest first: route, reasons, decision and review status of each."""

    permission_classes = (RolePermission,)
    required_permissions = {"GET": ("reviews.view_prediction",)}
    serializer_class = PredictionSerializer
    filterset_class = PredictionFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Prediction.objects.none()
        return predictions_for_user(user=self.request.user)


@extend_schema_view(
    list=extend_schema(
        summary="List your webhooks",
        description="Your active webhooks, newest first. Their secrets are not shown (only when created).",
    ),
    retrieve=extend_schema(
        summary="Get a webhook",
        description="One of your active webhooks: URL, events and model. Another user's webhook is a 404.",
    ),
    create=extend_schema(
        summary="Register a webhook",
        description="Registers a receiver of the events you choose (`decision.final`, `audit.failed`) for one "
        "model you work on, or for all of them when `model` is empty. Returns it with its signing `secret`, shown "
        "only in this response (201). Each delivery is a JSON POST with `X-HITL-Signature: sha256=<HMAC-SHA256 of "
        '"<timestamp>.<body>">`, `X-HITL-Timestamp` and `X-HITL-Delivery` (the same id on every retry; '
        "de-duplicate by it). A URL that is not http(s) or resolves to a private address is a 400 naming `url`.",
        responses={201: WebhookCreatedSerializer},
    ),
    update=extend_schema(
        summary="Replace a webhook",
        description="Sets the webhook's URL, events, model and active flag; the secret stays. Same checks as "
        "registering (400 by field).",
    ),
    partial_update=extend_schema(
        summary="Change a webhook",
        description="Changes the fields you send (URL, events, model, active flag); the secret stays. Same checks "
        "as registering (400 by field).",
    ),
    destroy=extend_schema(
        summary="Delete a webhook",
        description="Stops the webhook for good (204): it is no longer listed or sent to. What it was sent stays "
        "on record.",
    ),
)
@extend_schema(tags=["Webhooks"])
class WebhookViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Your webhooks: receivers of final decisions, signed with a secret shown once, when created."""

    permission_classes = (RolePermission,)
    required_permissions = {
        "GET": ("reviews.view_webhook",),
        "POST": ("reviews.add_webhook",),
        "PUT": ("reviews.change_webhook",),
        "PATCH": ("reviews.change_webhook",),
        "DELETE": ("reviews.delete_webhook",),
    }
    serializer_class = WebhookSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            # Schema generation has no user; the model is all it needs.
            return Webhook.objects.none()
        return webhooks_of_owner(owner=self.request.user)

    def perform_create(self, serializer):
        try:
            serializer.instance, _secret = webhook_create(owner=self.request.user, **serializer.validated_data)
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict) from exc

    def create(self, request: Request, *args, **kwargs) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        self.perform_create(serializer)
        return Response(WebhookCreatedSerializer(serializer.instance).data, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer):
        try:
            serializer.instance = webhook_update(
                webhook=serializer.instance, changes=serializer.validated_data, actor=self.request.user
            )
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict) from exc

    def perform_destroy(self, instance):
        webhook_deactivate(webhook=instance, actor=self.request.user)
