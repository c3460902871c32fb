from django.contrib.auth.models import User
from django.urls import reverse
from rest_framework import serializers

from audits.choices import AuditPopulation, ExportFormat, ExportKind, JobStatus, Mitigation
from audits.models import BiasAudit, Export, RetrainingJob
from hitl_platform.api.serializers import StrictSerializer
from models_registry.models import MLModel
from reviews.models import Prediction


class ExportRequestSerializer(StrictSerializer):
    """Input: one case (``prediction``), or a model's decisions made in [period_start, period_end)."""

    kind = serializers.ChoiceField(choices=ExportKind.choices)
    format = serializers.ChoiceField(choices=ExportFormat.choices, default=ExportFormat.CSV)
    prediction = serializers.PrimaryKeyRelatedField(queryset=Prediction.objects.only("id"), required=False)
    model = serializers.SlugRelatedField(slug_field="name", queryset=MLModel.objects.only("id", "name"), required=False)
    period_start = serializers.DateTimeField(required=False)
    period_end = serializers.DateTimeField(required=False)


class ExportSerializer(serializers.ModelSerializer):
    """Output: the export's state, and where to download the file once it is done."""

    model: serializers.SlugRelatedField[MLModel] = serializers.SlugRelatedField(slug_field="name", read_only=True)
    requested_by: serializers.SlugRelatedField[User] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Export
        fields = [
            "id",
            "kind",
            "format",
            "prediction",
            "model",
            "period_start",
            "period_end",
            "status",
            "progress",
            "row_count",
            "file_sha256",
            "error",
            "requested_by",
            "created_at",
            "started_at",
            "finished_at",
            "download_url",
        ]
        read_only_fields = fields

    def get_download_url(self, export: Export) -> str | None:
        if export.status != JobStatus.DONE or not export.file:
            return None
        url = reverse("api-v1:export-download", args=[export.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url


class BiasAuditRequestSerializer(StrictSerializer):
    """Input: which population and attributes to audit; optionally one version and a period of received cases."""

    population = serializers.ChoiceField(choices=AuditPopulation.choices)
    sensitive_attributes = serializers.ListField(
        child=serializers.CharField(max_length=100), min_length=1, max_length=5
    )
    version = serializers.IntegerField(required=False, min_value=1, help_text="A version number of this model.")
    since = serializers.DateTimeField(required=False, help_text="Cases received from (inclusive).")
    until = serializers.DateTimeField(required=False, help_text="Cases received before (exclusive).")


class BiasAuditSerializer(serializers.ModelSerializer):
    """Output: an audit's state and, when it succeeded, its verdict, figures and summary."""

    model: serializers.SlugRelatedField[MLModel] = serializers.SlugRelatedField(slug_field="name", read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True, allow_null=True)
    requested_by: serializers.SlugRelatedField[User] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    report_url = serializers.SerializerMethodField()

    class Meta:
        model = BiasAudit
        fields = [
            "id",
            "model",
            "version",
            "population",
            "sensitive_attributes",
            "since",
            "until",
            "trigger",
            "status",
            "progress",
            "attempts",
            "passed",
            "verdict",
            "summary",
            "case_count",
            "key_ratio",
            "result",
            "inputs_sha256",
            "error",
            "requested_by",
            "created_at",
            "started_at",
            "finished_at",
            "report_url",
        ]
        read_only_fields = fields

    def get_report_url(self, audit: BiasAudit) -> str:
        url = reverse("admin:audits_biasaudit_change", args=[audit.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url


class BiasAuditSummarySerializer(BiasAuditSerializer):
    """A list row: everything but the figures (fetch the audit for them)."""

    class Meta(BiasAuditSerializer.Meta):
        fields = [name for name in BiasAuditSerializer.Meta.fields if name != "result"]
        read_only_fields = fields


class RetrainingRequestSerializer(StrictSerializer):
    """Input: optionally a fairness constraint on one sensitive attribute, the holdout share and the seed."""

    mitigation = serializers.ChoiceField(choices=Mitigation.choices, default=Mitigation.NONE)
    mitigation_attribute = serializers.CharField(max_length=100, required=False, default="", allow_blank=True)
    holdout_share = serializers.FloatField(default=0.2, min_value=0.05, max_value=0.5)
    seed = serializers.IntegerField(default=0, min_value=0, max_value=2**31 - 1)


class RetrainingConflictSerializer(serializers.Serializer):
    """Why a retraining was not queued: another job of the model is queued or running."""

    detail = serializers.CharField()
    job = serializers.IntegerField(help_text="The id of the job already queued or running: poll it.")


class RetrainingJobSerializer(serializers.ModelSerializer):
    """Output: a job's state and, when it succeeded, its snapshot, comparison, candidate and promotion request."""

    model: serializers.SlugRelatedField[MLModel] = serializers.SlugRelatedField(slug_field="name", read_only=True)
    base_version = serializers.IntegerField(source="base_version.number", read_only=True)
    candidate_version = serializers.IntegerField(source="candidate_version.number", read_only=True, allow_null=True)
    requested_by: serializers.SlugRelatedField[User] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    snapshot = serializers.SerializerMethodField()
    page_url = serializers.SerializerMethodField()

    class Meta:
        model = RetrainingJob
        fields = [
            "id",
            "model",
            "base_version",
            "candidate_version",
            "trigger",
            "mitigation",
            "mitigation_attribute",
            "holdout_share",
            "seed",
            "status",
            "progress",
            "attempts",
            "error",
            "snapshot",
            "comparison",
            "timings",
            "audit",
            "promotion_request",
            "requested_by",
            "created_at",
            "started_at",
            "finished_at",
            "page_url",
        ]
        read_only_fields = fields

    def get_snapshot(self, job: RetrainingJob) -> dict | None:
        """The snapshot without its drift reference (bin edges and shares: large, and for the drift check)."""
        if not job.snapshot:
            return None
        return {key: value for key, value in job.snapshot.items() if key != "drift_reference"}

    def get_page_url(self, job: RetrainingJob) -> str:
        url = reverse("admin:audits_retrainingjob_change", args=[job.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url
