"""The registry API for ML engineers: thin views over the registry's selectors and services."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiRequest, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import SAFE_METHODS
from rest_framework.response import Response

from hitl_platform.api.permissions import RolePermission
from models_registry.api.serializers import (
    MLModelCreateInputSerializer,
    MLModelOutputSerializer,
    MLModelUpdateInputSerializer,
    ModelVersionCreateInputSerializer,
    ModelVersionMetricsOnlySerializer,
    ModelVersionOutputSerializer,
    ModelVersionUploadSerializer,
    PromotionRequestCreateInputSerializer,
    PromotionRequestOutputSerializer,
)
from models_registry.models import MLModel, ModelVersion
from models_registry.selectors import (
    ml_model_list,
    ml_models_readable_by,
    ml_models_writable_by,
    model_version_list,
    promotion_request_list,
)
from models_registry.services import (
    ml_model_register,
    ml_model_update,
    model_version_register,
    promotion_request_create,
)

VIEW_MODEL = "models_registry.view_mlmodel"
VIEW_VERSION = "models_registry.view_modelversion"
VIEW_REQUEST = "models_registry.view_promotionrequest"

NAME_PARAMETER = OpenApiParameter("name", str, OpenApiParameter.PATH, description="The model's name (a slug).")
NUMBER_PARAMETER = OpenApiParameter("number", int, OpenApiParameter.PATH, description="The version number.")
MODELS = ["Models"]
VERSIONS = ["Versions"]
PROMOTIONS = ["Promotions"]
UNKNOWN_MODEL = "A model you may not read answers 404, the same as a name nobody registered."


VERSION_UPLOAD_EXAMPLE = OpenApiExample(
    "A skops file and its metrics",
    value={
        "artifact": "(the bytes of credit-v2.skops)",
        "metrics": '{"f1": 0.82, "roc_auc": 0.91}',
        "description": "Retrained on the 2025 applications.",
        "parent_version": 1,
    },
    request_only=True,
)


def model_not_found(name: str) -> NotFound:
    """The one answer for a model that does not exist and for one the user may not see or change: the two are
    never told apart, so another team's model names are not disclosed."""
    return NotFound(f"No model named {name!r} that you can access.")


class RegistryView(GenericAPIView):
    permission_classes = (RolePermission,)
    # Each view declares the permissions of every method it implements (see RolePermission).
    required_permissions: dict[str, tuple[str, ...]] = {}
    # The input serializer of each write method: what OPTIONS describes (DRF's metadata asks for it).
    input_serializers: dict[str, type] = {}

    def get_serializer_class(self):
        return self.input_serializers.get(self.request.method) if self.request else None

    def paginated(self, queryset, serializer_class) -> Response:
        page = self.paginate_queryset(self.filter_queryset(queryset))
        return self.get_paginated_response(serializer_class(page, many=True).data)

    def _visible_models(self, *, for_write: bool):
        user = self.request.user
        return ml_models_writable_by(user) if for_write else ml_models_readable_by(user)

    def model_from_url(self, *, for_write: bool = False) -> MLModel:
        """The model named in the URL if this user may read it (or change it, ``for_write``); else 404."""
        name = self.kwargs["name"]
        model = self._visible_models(for_write=for_write).filter(name=name).first()
        if model is None:
            raise model_not_found(name)
        return model

    def version_from_url(self, *, for_write: bool = False) -> ModelVersion:
        """The version named in the URL of a model this user may read (or change); else 404."""
        models = self._visible_models(for_write=for_write)
        version = (
            model_version_list()
            .filter(model__in=models, model__name=self.kwargs["name"], number=self.kwargs["number"])
            .first()
        )
        if version is None:
            self.model_from_url(for_write=for_write)
            raise NotFound(f"Model {self.kwargs['name']} has no version {self.kwargs['number']}.")
        return version


@extend_schema(tags=MODELS)
class MLModelListCreateView(RegistryView):
    required_permissions = {"GET": (VIEW_MODEL,), "POST": ("models_registry.add_mlmodel",)}
    input_serializers = {"POST": MLModelCreateInputSerializer}
    filterset_fields = ("task", "risk_tier")

    def get_queryset(self):
        return ml_models_readable_by(self.request.user, ml_model_list())

    @extend_schema(
        summary="List the models you may read",
        description="The models you own, your team's, and (for roles that read every model) all of them, newest "
        "first, each with its model card and its latest and production version numbers. Filter by `task` and "
        "`risk_tier`; an unknown query parameter is a 400.",
        responses=MLModelOutputSerializer(many=True),
    )
    def get(self, request):
        return self.paginated(self.get_queryset(), MLModelOutputSerializer)

    @extend_schema(
        summary="Register a model",
        description="Registers a model with its labels, JSON Schema of the input, sensitive attributes, risk tier "
        "and model card; you become its owner. Returns the model (201). A name already taken, labels that do not "
        "fit the task, or a feature schema that is not valid JSON Schema are 400s naming the field. Register its "
        "versions next.",
        request=MLModelCreateInputSerializer,
        responses={201: MLModelOutputSerializer},
    )
    def post(self, request):
        serializer = MLModelCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        model = ml_model_register(owner=request.user, **serializer.validated_data)
        return Response(MLModelOutputSerializer(ml_model_list().get(pk=model.pk)).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=MODELS, parameters=[NAME_PARAMETER])
class MLModelDetailView(RegistryView):
    required_permissions = {"GET": (VIEW_MODEL,), "PATCH": ("models_registry.change_mlmodel",)}
    input_serializers = {"PATCH": MLModelUpdateInputSerializer}

    def get_object(self) -> MLModel:
        models = self._visible_models(for_write=self.request.method not in SAFE_METHODS)
        model = ml_model_list().filter(pk__in=models.values("pk"), name=self.kwargs["name"]).first()
        if model is None:
            raise model_not_found(self.kwargs["name"])
        return model

    @extend_schema(
        summary="Get a model",
        description=f"The model's definition, model card, owner, team and latest and production version numbers. "
        f"{UNKNOWN_MODEL}",
        responses=MLModelOutputSerializer,
    )
    def get(self, request, name: str):
        return Response(MLModelOutputSerializer(self.get_object()).data)

    @extend_schema(
        summary="Change a model",
        description="Changes the fields you send (owner, team or administrator) and records the change, with "
        "`reason`, in the model's history; returns the model. Task, labels and feature schema are fixed once the "
        "model has a version (400). A model you may read but not change answers 404, as one you may not see.",
        request=MLModelUpdateInputSerializer,
        responses=MLModelOutputSerializer,
    )
    def patch(self, request, name: str):
        model = self.get_object()
        serializer = MLModelUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        changes = dict(serializer.validated_data)
        reason = changes.pop("reason", "").strip() or f"Changed through the API: {', '.join(sorted(changes))}."
        ml_model_update(model=model, actor=request.user, changes=changes, reason=reason)
        return Response(MLModelOutputSerializer(ml_model_list().get(pk=model.pk)).data)


@extend_schema(tags=VERSIONS, parameters=[NAME_PARAMETER])
class ModelVersionListCreateView(RegistryView):
    required_permissions = {"GET": (VIEW_VERSION,), "POST": ("models_registry.add_modelversion",)}
    input_serializers = {"POST": ModelVersionCreateInputSerializer}
    filterset_fields = ("stage",)

    def get_queryset(self):
        return model_version_list().filter(model__name=self.kwargs.get("name", ""))

    @extend_schema(
        summary="List a model's versions",
        description=f"The model's versions, newest first, with stage, file hash, library versions, metrics and "
        f"lineage. Filter by `stage`. {UNKNOWN_MODEL}",
        responses=ModelVersionOutputSerializer(many=True),
    )
    def get(self, request, name: str):
        self.model_from_url()
        return self.paginated(self.get_queryset(), ModelVersionOutputSerializer)

    @extend_schema(
        summary="Register a version",
        description="Registers the model's next version (numbers count up from 1) as a `candidate` and "
        "returns it (201). Send multipart/form-data with the skops file as `artifact` and the metrics as a JSON "
        "string in `metrics`; or, for a version scored by its caller (no file), a JSON body with `metrics` as an "
        "object. The file is checked before it is stored: one that is not a skops archive of allowed types, whose "
        "classes are not the model's labels or whose inputs do not fit its feature schema is a 400 naming "
        "`artifact`; neither a file nor metrics is a 400; "
        "a body larger than the upload limit is a 413. Then ask for its promotion.",
        request={
            "multipart/form-data": OpenApiRequest(
                ModelVersionUploadSerializer,
                encoding={"artifact": {"contentType": "application/octet-stream"}},
                examples=[VERSION_UPLOAD_EXAMPLE],
            ),
            "application/json": ModelVersionMetricsOnlySerializer,
        },
        responses={201: ModelVersionOutputSerializer},
    )
    def post(self, request, name: str):
        # Refuse an absurd body before reading it: the file's own limit plus the form fields' limit.
        content_length = request.META.get("CONTENT_LENGTH") or "0"
        limit = settings.MODEL_FILE_MAX_BYTES + settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if content_length.isdigit() and int(content_length) > limit:
            raise RequestDataTooBig(f"The request body is larger than {limit} bytes.")
        model = self.model_from_url(for_write=True)
        serializer = ModelVersionCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        version = model_version_register(
            model=model,
            actor=request.user,
            metrics=data["metrics"],
            description=data["description"],
            artifact=data.get("artifact"),
            parent_number=data.get("parent_version"),
        )
        output = ModelVersionOutputSerializer(model_version_list().get(pk=version.pk))
        return Response(output.data, status=status.HTTP_201_CREATED)


@extend_schema(tags=VERSIONS, parameters=[NAME_PARAMETER, NUMBER_PARAMETER])
class ModelVersionDetailView(RegistryView):
    required_permissions = {"GET": (VIEW_VERSION,)}

    @extend_schema(
        summary="Get a version",
        description=f"One version: its stage, the SHA-256 and size of its file, the library versions it was saved "
        f"with, its metrics, description and parent version. A number the model does not have is a 404. "
        f"{UNKNOWN_MODEL}",
        responses=ModelVersionOutputSerializer,
    )
    def get(self, request, name: str, number: int):
        return Response(ModelVersionOutputSerializer(self.version_from_url()).data)


@extend_schema(tags=PROMOTIONS, parameters=[NAME_PARAMETER, NUMBER_PARAMETER])
class PromotionRequestListCreateView(RegistryView):
    required_permissions = {"GET": (VIEW_REQUEST,), "POST": ("models_registry.add_promotionrequest",)}
    input_serializers = {"POST": PromotionRequestCreateInputSerializer}

    def get_queryset(self):
        return promotion_request_list().filter(
            version__model__name=self.kwargs.get("name", ""), version__number=self.kwargs.get("number", 0)
        )

    @extend_schema(
        summary="List a version's promotion requests",
        description="Every promotion request of this version, newest first: target stage, status, requester, "
        "rationale, and once decided the decider, their reason and the gate results.",
        responses=PromotionRequestOutputSerializer(many=True),
    )
    def get(self, request, name: str, number: int):
        self.version_from_url()
        return self.paginated(self.get_queryset(), PromotionRequestOutputSerializer)

    @extend_schema(
        summary="Request a promotion",
        description="Asks for this version to move to `staging` or `production`, with your rationale; returns the "
        "pending request (201). Someone other than you decides it in the console (four-eyes), and the promotion "
        "gates run when it is approved. A stage the version cannot move to from where it is, or a request to the "
        "same stage already pending, is a 400 naming `target_stage`.",
        request=PromotionRequestCreateInputSerializer,
        responses={201: PromotionRequestOutputSerializer},
    )
    def post(self, request, name: str, number: int):
        version = self.version_from_url(for_write=True)
        serializer = PromotionRequestCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        promotion_request = promotion_request_create(version=version, actor=request.user, **serializer.validated_data)
        output = PromotionRequestOutputSerializer(promotion_request_list().get(pk=promotion_request.pk))
        return Response(output.data, status=status.HTTP_201_CREATED)


@extend_schema(tags=PROMOTIONS)
class PromotionRequestDetailView(RegistryView):
    required_permissions = {"GET": (VIEW_REQUEST,)}

    @extend_schema(
        summary="Get a promotion request",
        description="One request: its status (pending, approved or rejected), who decided it and why, and the "
        "gate results it was decided on, each with its evidence. Poll it after asking for a promotion. A request "
        "of a model you may not read is a 404.",
        responses=PromotionRequestOutputSerializer,
    )
    def get(self, request, request_id: int):
        readable = ml_models_readable_by(request.user)
        promotion_request = promotion_request_list().filter(pk=request_id, version__model__in=readable).first()
        if promotion_request is None:
            raise NotFound("No such promotion request.")
        return Response(PromotionRequestOutputSerializer(promotion_request).data)
