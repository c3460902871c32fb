from pathlib import Path

from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.response import Response

from audits.api.serializers import ExportRequestSerializer, ExportSerializer
from audits.choices import EXPORT_CONTENT_TYPES, JobStatus
from audits.models import Export
from audits.selectors.exports import exports_visible_to
from audits.services.exports import export_request
from hitl_platform.api.permissions import RolePermission


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

    @extend_schema(request=ExportRequestSerializer, responses={202: ExportSerializer}, tags=["exports"])
    def post(self, request):
        serializer = ExportRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        export = export_request(actor=request.user, **serializer.validated_data)
        export.refresh_from_db()
        return Response(ExportSerializer(export, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)


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
