from django.urls import reverse
from rest_framework import serializers

from audits.choices import AuditPopulation, ExportFormat, ExportKind, JobStatus
from audits.models import BiasAudit, Export
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

    model = serializers.SlugRelatedField(slug_field="name", read_only=True)
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
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

    model = serializers.SlugRelatedField(slug_field="name", read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True, allow_null=True)
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
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
