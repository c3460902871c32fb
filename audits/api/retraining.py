"""Retraining over the API: an ML engineer asks for a job (202), polls it, and lists a model's jobs."""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response

from audits.api.serializers import RetrainingJobSerializer, RetrainingRequestSerializer
from audits.choices import AuditStatus
from audits.models import RetrainingJob
from audits.selectors.retraining import retraining_jobs_list
from audits.services.retraining import RetrainingConflict, retraining_request
from hitl_platform.api.permissions import RolePermission
from models_registry.selectors import ml_models_readable_by, model_readable_by_name


class RetrainingJobsOfModelView(generics.ListAPIView):
    """A model's retraining jobs, newest first; POST queues one (202 with its id), 409 while one is active."""

    permission_classes = (RolePermission,)
    required_permissions = {"GET": ("audits.view_retrainingjob",), "POST": ("audits.add_retrainingjob",)}
    serializer_class = RetrainingJobSerializer

    def _model(self):
        return model_readable_by_name(user=self.request.user, name=self.kwargs["name"])

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return RetrainingJob.objects.none()
        return retraining_jobs_list().filter(model=self._model())

    @extend_schema(
        request=RetrainingRequestSerializer,
        responses={
            202: RetrainingJobSerializer,
            400: OpenApiTypes.OBJECT,
            403: OpenApiTypes.OBJECT,
            404: OpenApiTypes.OBJECT,
            409: OpenApiTypes.OBJECT,
            503: RetrainingJobSerializer,
        },
        tags=["retraining"],
    )
    def post(self, request, name: str):
        model = self._model()
        serializer = RetrainingRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            job = retraining_request(actor=request.user, model=model, **serializer.validated_data)
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict) from exc
        except DjangoPermissionDenied as exc:
            raise PermissionDenied(str(exc)) from exc
        except RetrainingConflict as exc:
            return Response({"detail": str(exc), "job": exc.job.pk}, status=status.HTTP_409_CONFLICT)
        job.refresh_from_db()
        data = RetrainingJobSerializer(job, context={"request": request}).data
        if job.status == AuditStatus.FAILED:
            return Response(data, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "60"})
        return Response(data, status=status.HTTP_202_ACCEPTED)


class RetrainingJobDetailView(generics.RetrieveAPIView):
    """One job: status and progress, then its snapshot, comparison, candidate version and promotion request."""

    permission_classes = (RolePermission,)
    required_permissions = {"GET": ("audits.view_retrainingjob",)}
    serializer_class = RetrainingJobSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return RetrainingJob.objects.none()
        return retraining_jobs_list(model_ids=ml_models_readable_by(self.request.user))
