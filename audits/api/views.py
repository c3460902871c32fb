from pathlib import Path

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response

from audits.api.serializers import (
    BiasAuditRequestSerializer,
    BiasAuditSerializer,
    BiasAuditSummarySerializer,
    ExportRequestSerializer,
    ExportSerializer,
)
from audits.choices import EXPORT_CONTENT_TYPES, AuditStatus, JobStatus
from audits.models import BiasAudit, Export
from audits.selectors.bias_audits import bias_audit_list
from audits.selectors.exports import exports_visible_to
from audits.services.bias_audits import bias_audit_request
from audits.services.exports import export_request
from hitl_platform.api.permissions import RolePermission
from models_registry.selectors import ml_models_readable_by, model_readable_by_name

QUEUE_DOWN = (
    "The task queue refused the job: it is recorded as failed, with the reason in `error`; ask again after "
    "Retry-After seconds."
)


class OwnExportsMixin:
    """Exports the requesting user may see (their own; all for a superuser)."""

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Export.objects.none()
        return exports_visible_to(self.request.user)


@extend_schema_view(
    get=extend_schema(
        summary="List your exports",
        description="The exports you requested (every export, for an administrator), newest first, with their "
        "status and progress; `download_url` is set on those whose file is ready.",
    )
)
@extend_schema(tags=["Exports"])
class ExportListCreateView(OwnExportsMixin, generics.ListAPIView):
    """Your exports (newest first); POST asks for a new one, written in the background."""

    permission_classes = (RolePermission,)
    required_permissions = {"GET": ("audits.view_export",), "POST": ("audits.add_export",)}
    serializer_class = ExportSerializer

    @extend_schema(
        summary="Request an export",
        description="Asks for a file: `kind: case` with a `prediction` (one case's whole trail) or `kind: "
        "decisions` with a `model`, `period_start` and `period_end` (its decisions made in that period), as CSV "
        "or JSON. The file is written in the background: the 202 returns the queued export; poll it until its "
        "status is done, then fetch `download_url`. A missing field for the kind is a 400 naming it.",
        request=ExportRequestSerializer,
        responses={202: ExportSerializer, 503: OpenApiResponse(ExportSerializer, description=QUEUE_DOWN)},
    )
    def post(self, request):
        serializer = ExportRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        export = export_request(actor=request.user, **serializer.validated_data)
        export.refresh_from_db()
        return _accepted_or_unavailable(
            ExportSerializer(export, context={"request": request}).data, sent=export.status != JobStatus.FAILED
        )


@extend_schema_view(
    get=extend_schema(
        summary="Get an export",
        description="One of your exports: status (queued, running, done or failed), progress, row count, the "
        "file's SHA-256, the error if it failed, and `download_url` once the file is ready. Another user's export "
        "is a 404.",
    )
)
@extend_schema(tags=["Exports"])
class ExportDetailView(OwnExportsMixin, generics.RetrieveAPIView):
    """One export's status and progress; ``download_url`` appears when the file is ready."""

    permission_classes = (RolePermission,)
    required_permissions = {"GET": ("audits.view_export",)}
    serializer_class = ExportSerializer


class ExportDownloadView(OwnExportsMixin, generics.GenericAPIView):
    """The finished file (CSV or JSON), to its requester only."""

    permission_classes = (RolePermission,)
    required_permissions = {"GET": ("audits.view_export",)}

    @extend_schema(
        summary="Download an export's file",
        description="The finished file, as an attachment: CSV or JSON, as requested. Only its requester may "
        "download it. 404 while the export is not done, when it failed, or once the retention purge removed "
        "its file.",
        responses={(200, "text/csv"): OpenApiTypes.STR, (200, "application/json"): OpenApiTypes.OBJECT},
        tags=["Exports"],
    )
    def get(self, request, pk: int):
        export = self.get_object()
        if export.status != JobStatus.DONE or not export.file:
            raise Http404("This export has no file (not finished, failed, or removed by the retention purge).")
        return FileResponse(
            export.file.open("rb"),
            as_attachment=True,
            filename=Path(export.file.name).name,
            content_type=EXPORT_CONTENT_TYPES[export.format],
        )


@extend_schema_view(
    get=extend_schema(
        summary="List a model's bias audits",
        description="The model's bias audits, newest first, each with its status, verdict and summary (fetch one "
        "audit for its per-group figures). A model you may not read is a 404.",
    )
)
@extend_schema(tags=["Audits"])
class BiasAuditsOfModelView(generics.ListAPIView):
    """A model's bias audits, newest first; POST queues a new one (202 with its id) run by a Celery worker."""

    permission_classes = (RolePermission,)
    required_permissions = {"GET": ("audits.view_biasaudit",), "POST": ("audits.add_biasaudit",)}
    serializer_class = BiasAuditSummarySerializer

    def _model(self):
        return model_readable_by_name(user=self.request.user, name=self.kwargs["name"])

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return BiasAudit.objects.none()
        return bias_audit_list().filter(model=self._model())

    @extend_schema(
        summary="Request a bias audit",
        description="Queues a bias audit of the model: which `population` of labels (the model's, the final "
        "decisions, the reviewers', or what human review changed) across which of its sensitive attributes, "
        "optionally for one version and a period of received cases. The 202 returns the queued audit; poll it "
        "until it succeeds (verdict, per-group and between-group figures) or fails. An attribute the model does "
        "not declare, or a version it does not have, is a 400 naming the field; a model you may read but not "
        "audit is a 403.",
        request=BiasAuditRequestSerializer,
        responses={202: BiasAuditSerializer, 503: OpenApiResponse(BiasAuditSerializer, description=QUEUE_DOWN)},
    )
    def post(self, request, name: str):
        model = self._model()
        serializer = BiasAuditRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        version = None
        if "version" in data:
            number = data.pop("version")
            version = model.versions.filter(number=number).first()
            if version is None:
                raise ValidationError({"version": [f"{model.name} has no version {number}."]})
        try:
            audit = bias_audit_request(actor=request.user, model=model, version=version, **data)
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict) from exc
        except DjangoPermissionDenied as exc:
            raise PermissionDenied(str(exc)) from exc
        audit.refresh_from_db()
        return _accepted_or_unavailable(
            BiasAuditSerializer(audit, context={"request": request}).data, sent=audit.status != AuditStatus.FAILED
        )


@extend_schema_view(
    get=extend_schema(
        summary="Get a bias audit",
        description="One audit: status and progress, then, when it succeeded, whether it passed, its verdict and "
        "summary, the case count, the key ratio and the per-group and between-group figures (`result`), and the "
        "hash of its inputs; `report_url` opens its report in the console. An audit of a model you may not read is "
        "a 404.",
        tags=["Audits"],
    )
)
class BiasAuditDetailView(generics.RetrieveAPIView):
    """One audit: status, progress, and when it succeeded the verdict, per-group and between-group figures."""

    permission_classes = (RolePermission,)
    required_permissions = {"GET": ("audits.view_biasaudit",)}
    serializer_class = BiasAuditSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return BiasAudit.objects.none()
        return BiasAudit.objects.select_related("model", "version", "requested_by").filter(
            model__in=ml_models_readable_by(self.request.user)
        )


def _accepted_or_unavailable(data, *, sent: bool) -> Response:
    """202 with the queued job; 503 (with the job, failed with its reason, and Retry-After) when the task queue
    refused it: the job exists and can be retried, but nothing will run it until the broker is back."""
    if sent:
        return Response(data, status=status.HTTP_202_ACCEPTED)
    return Response(data, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "60"})
