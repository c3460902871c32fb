from pathlib import Path

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
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


class OwnExportsMixin:
    """Exports the requesting user may see (their own; all for a superuser)."""

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Export.objects.none()
        return exports_visible_to(self.request.user)


class ExportListCreateView(OwnExportsMixin, generics.ListAPIView):
    """Your exports (newest first); POST asks for a new one, written in the background."""

    permission_classes = (RolePermission,)
    required_permissions = {"GET": ("audits.view_export",), "POST": ("audits.add_export",)}
    serializer_class = ExportSerializer

    @extend_schema(
        request=ExportRequestSerializer, responses={202: ExportSerializer, 503: ExportSerializer}, tags=["exports"]
    )
    def post(self, request):
        serializer = ExportRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        export = export_request(actor=request.user, **serializer.validated_data)
        export.refresh_from_db()
        return _accepted_or_unavailable(
            ExportSerializer(export, context={"request": request}).data, sent=export.status != JobStatus.FAILED
        )


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
        responses={(200, "text/csv"): OpenApiTypes.STR, (200, "application/json"): OpenApiTypes.OBJECT},
        tags=["exports"],
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
        request=BiasAuditRequestSerializer,
        responses={
            202: BiasAuditSerializer,
            400: OpenApiTypes.OBJECT,
            403: OpenApiTypes.OBJECT,
            404: OpenApiTypes.OBJECT,
            503: BiasAuditSerializer,
        },
        tags=["bias audits"],
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
