"""The console's learning-loop pages: each retraining job with its snapshot and comparison, a form to ask for one,
and the daily drift checks with their chart (imported by audits.admin)."""

from django.contrib import admin
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.safestring import mark_safe

from audits.choices import AuditStatus
from audits.drift_charts import psi_bars_svg
from audits.models import DriftCheck, RetrainingJob
from audits.presentation_retraining import retraining_report_build
from audits.selectors.retraining import retraining_jobs_list
from hitl_platform.admin_site import GovernedAdminMixin, ReadableHistoryAdmin, count_column, timestamp_column
from models_registry.selectors import ml_models_readable_by


@admin.register(RetrainingJob)
class RetrainingJobAdmin(GovernedAdminMixin, ReadableHistoryAdmin):
    """Jobs, newest first; a job's page shows what it learnt from and how its candidate compares."""

    list_display = (
        "id",
        "versions",
        "how",
        "status_shown",
        timestamp_column("created_at", "requested"),
    )
    list_filter = ("status", "trigger", "mitigation")
    list_select_related = ("model", "base_version", "candidate_version")
    changelist_defer = ("snapshot", "comparison")
    readonly_fields = (
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
        "audit",
        "promotion_request",
        "requested_by",
        "created_at",
        "started_at",
        "finished_at",
    )
    fields = readonly_fields
    history_list_display = ("status", "candidate_version")
    change_form_template = "admin/audits/retrainingjob/change_form.html"

    @admin.display(description="model", ordering="model__name")
    def versions(self, job: RetrainingJob) -> str:
        candidate = f" → v{job.candidate_version.number}" if job.candidate_version else ""
        return f"{job.model.name} v{job.base_version.number}{candidate}"

    @admin.display(description="why and how")
    def how(self, job: RetrainingJob) -> str:
        return f"{job.get_trigger_display()}; {job.get_mitigation_display()}"

    @admin.display(description="status", ordering="status")
    def status_shown(self, job: RetrainingJob) -> str:
        if job.status in (AuditStatus.QUEUED, AuditStatus.RUNNING):
            return f"{job.get_status_display()} ({job.progress} %)"
        return job.get_status_display()

    def get_queryset(self, request: HttpRequest):
        return retraining_jobs_list(model_ids=ml_models_readable_by(request.user)).select_related(
            "promotion_request", "audit"
        )

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.has_perm("audits.add_retrainingjob")

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None):
        return HttpResponseRedirect(reverse("admin:retraining_job_new"))

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            report = retraining_report_build(job=obj)
            context.update(
                report=report,
                auto_refresh=report.in_progress,
                title=f"Retraining job {obj.pk}: {obj.model.name} v{obj.base_version.number}",
                subtitle=None,
            )
        return super().render_change_form(request, context, add, change, form_url, obj)


@admin.register(DriftCheck)
class DriftCheckAdmin(GovernedAdminMixin, admin.ModelAdmin):
    """Daily drift checks, newest first; a check's page charts each feature's PSI against the threshold."""

    list_display = (
        "id",
        "model",
        "version",
        "verdict",
        "max_psi",
        count_column("recent_count", "recent cases"),
        timestamp_column("checked_at", "checked"),
    )
    list_filter = ("verdict", "model")
    list_select_related = ("model", "version")
    changelist_defer = ("result",)
    readonly_fields = (
        "model",
        "version",
        "reference_words",
        "window_days",
        "threshold",
        "recent_count",
        "verdict",
        "max_psi",
        "drifted_features",
        "retraining_job",
        "checked_at",
    )
    fields = readonly_fields
    change_form_template = "admin/audits/driftcheck/change_form.html"

    def get_queryset(self, request: HttpRequest):
        return DriftCheck.objects.select_related("model", "version").filter(
            model__in=ml_models_readable_by(request.user)
        )

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            features = [(feature["name"], feature["psi"]) for feature in obj.result.get("features", [])]
            chart = psi_bars_svg(
                chart_id=f"drift-{obj.pk}",
                title=f"PSI per feature of {obj.model.name}, last {obj.window_days} days",
                features=features,
                threshold=obj.threshold,
            )
            context.update(
                drift_svg=mark_safe(chart) if features else "",  # built by drift_charts, which escapes every label
                sentences=obj.result.get("sentences", []),
                title=f"Drift check {obj.pk}: {obj.model.name} v{obj.version.number}",
                subtitle=None,
            )
        return super().render_change_form(request, context, add, change, form_url, obj)
