"""Retraining over the API: an ML engineer asks for a job (202), polls it, and lists a model's jobs."""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response

from audits.api.serializers import RetrainingConflictSerializer, RetrainingJobSerializer, RetrainingRequestSerializer
from audits.api.views import QUEUE_DOWN
from audits.choices import AuditStatus
from audits.models import RetrainingJob
from audits.selectors.retraining import retraining_jobs_list
from audits.services.retraining import RetrainingConflict, retraining_request
from hitl_platform.api.permissions import RolePermission
from models_registry.selectors import ml_models_readable_by, model_readable_by_name


@extend_schema_view(
    get=extend_schema(
        summary="List a model's retraining jobs",
        description="The model's retraining jobs, newest first, with status, progress and, once done, the "
        "candidate version and its promotion request. A model you may not read is a 404.",
    )
)
@extend_schema(tags=["Retraining"])
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
        summary="Request a retraining",
        description="Queues a retraining of the model's newest version with a model file on its human-verified "
        "cases, optionally under a fairness constraint on one sensitive attribute (binary models). The 202 returns "
        "the queued job; poll it until it succeeds (snapshot, comparison with the base version, candidate version "
        "and its promotion request) or fails. A model with no version file, or a constraint it cannot take, is a "
        "400 naming the field; a 409 names the job already queued or running for the model.",
        request=RetrainingRequestSerializer,
        responses={
            202: RetrainingJobSerializer,
            409: OpenApiResponse(
                RetrainingConflictSerializer, description="A retraining of this model is already queued or running."
            ),
            503: OpenApiResponse(RetrainingJobSerializer, description=QUEUE_DOWN),
        },
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


@extend_schema_view(
    get=extend_schema(
        summary="Get a retraining job",
        description="One job: status and progress, then its training snapshot, the comparison of the candidate with "
        "its base version, the candidate version, its bias audit and promotion request, and timings; `page_url` "
        "opens it in the console. A job of a model you may not read is a 404.",
        tags=["Retraining"],
    )
)
class RetrainingJobDetailView(generics.RetrieveAPIView):
    """One job: status and progress, then its snapshot, comparison, candidate version and promotion request."""

    permission_classes = (RolePermission,)
    required_permissions = {"GET": ("audits.view_retrainingjob",)}
    serializer_class = RetrainingJobSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return RetrainingJob.objects.none()
        return retraining_jobs_list(model_ids=ml_models_readable_by(self.request.user))
