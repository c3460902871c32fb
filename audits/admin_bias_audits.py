"""The console's bias audit pages: the audits and the per-model audit policies (imported by audits.admin)."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse

from audits.choices import AuditStatus
from audits.models import AuditPolicy, BiasAudit
from audits.selectors.bias_audit_report import bias_audit_report, bias_audit_with_figures, bias_audits_readable_by
from audits.services.bias_audits import POLICY_FIELDS, audit_policy_update, bias_audit_retry
from hitl_platform import humanize
from hitl_platform.admin_site import (
    GovernedAdminMixin,
    HistoryVersionsReadOnlyMixin,
    ReadableHistoryAdmin,
    timestamp_column,
)
from hitl_platform.types import authenticated_user


@admin.register(BiasAudit)
class BiasAuditAdmin(GovernedAdminMixin, ReadableHistoryAdmin):
    """Audits, newest first; an audit's page is its report."""

    list_display = (
        "id",
        "model_version",
        "scope",
        "status_shown",
        "key_ratio_shown",
        timestamp_column("created_at", "requested"),
    )
    list_filter = ("status", "verdict", "population", "trigger")
    list_select_related = ("model", "version")
    changelist_defer = ("result", "inputs")
    readonly_fields = (
        "model",
        "version",
        "population",
        "sensitive_attributes",
        "since",
        "until",
        "trigger",
        "promotion_request",
        "status",
        "progress",
        "attempts",
        "verdict",
        "passed",
        "summary",
        "case_count",
        "key_ratio",
        "inputs_sha256",
        "error",
        "requested_by",
        "created_at",
        "started_at",
        "finished_at",
    )
    fields = readonly_fields
    history_list_display = ("status", "verdict")
    change_form_template = "admin/audits/biasaudit/change_form.html"
    actions = ("run_again",)

    def get_queryset(self, request: HttpRequest):
        return bias_audits_readable_by(request.user)

    def get_object(self, request: HttpRequest, object_id: str, from_field=None):
        if from_field is not None:
            return super().get_object(request, object_id, from_field)
        try:
            return bias_audit_with_figures(user=request.user, audit_id=object_id)
        except (ValueError, ValidationError):
            return None

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.has_perm("audits.add_biasaudit")

    def has_request_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("audits.add_biasaudit")

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None):
        return HttpResponseRedirect(reverse("admin:bias_audit_new"))

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            report = bias_audit_report(audit=obj, user=request.user)
            version = f" v{obj.version.number}" if obj.version_id else ""
            context.update(
                report=report,
                auto_refresh=report.in_progress,
                title=f"Bias audit {obj.pk}: {obj.model.name}{version}",
                subtitle=None,
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.action(description="Run again the selected audits that could not run", permissions=["request"])
    def run_again(self, request: HttpRequest, queryset) -> None:
        queued, refused = [], []
        for audit in queryset.filter(status=AuditStatus.FAILED).select_related("model"):
            try:
                bias_audit_retry(audit=audit, actor=authenticated_user(request))
            except (PermissionDenied, ValidationError):
                refused.append(str(audit.pk))
            else:
                queued.append(str(audit.pk))
        if queued:
            messages.success(request, f"Queued again: audit {', '.join(queued)}.")
        if refused:
            messages.warning(request, f"Not queued (no longer failed, or not yours to audit): {', '.join(refused)}.")
        if not (queued or refused):
            messages.info(request, "None of the selected audits failed to run: nothing to queue again.")

    @admin.display(description="model", ordering="model__name")
    def model_version(self, audit: BiasAudit) -> str:
        return f"{audit.model.name} v{audit.version.number}" if audit.version else audit.model.name

    @admin.display(description="scope")
    def scope(self, audit: BiasAudit) -> str:
        return f"{audit.get_population_display()}, by {' & '.join(audit.sensitive_attributes)}"

    @admin.display(description="status", ordering="status")
    def status_shown(self, audit: BiasAudit) -> str:
        if audit.verdict:
            return f"{audit.get_status_display()}: {audit.get_verdict_display()}"
        return audit.get_status_display()

    @admin.display(description="key ratio", ordering="key_ratio")
    def key_ratio_shown(self, audit: BiasAudit) -> str:
        return humanize.MISSING if audit.key_ratio is None else f"{audit.key_ratio:.2f}"


class AuditPolicyForm(forms.ModelForm):
    """The policy's settings and why they change: saved through ``audit_policy_update``, never directly."""

    reason = forms.CharField(
        max_length=1000, widget=forms.Textarea(attrs={"rows": 2}), help_text="Why the thresholds or schedule change."
    )

    class Meta:
        model = AuditPolicy
        fields = ("model", *POLICY_FIELDS)


@admin.register(AuditPolicy)
class AuditPolicyAdmin(HistoryVersionsReadOnlyMixin, ReadableHistoryAdmin):
    """Per-model audit thresholds, the production gate's freshness and the audit schedule; never deleted."""

    form = AuditPolicyForm
    list_display = (
        "model",
        "demographic_parity_ratio_min",
        "equalized_odds_difference_max",
        "min_group_size",
        "gate_max_age_days",
        "schedule_every_days",
    )
    list_select_related = ("model",)
    history_list_display = ("demographic_parity_ratio_min", "equalized_odds_difference_max", "schedule_every_days")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("audits.change_auditpolicy")

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return ("model",) if obj is not None else ()

    def save_model(self, request: HttpRequest, obj: AuditPolicy, form, change: bool) -> None:
        changes = {name: form.cleaned_data[name] for name in POLICY_FIELDS}
        saved = audit_policy_update(
            model=form.cleaned_data.get("model") or obj.model,
            actor=authenticated_user(request),
            reason=form.cleaned_data["reason"],
            **changes,
        )
        obj.pk = saved.pk
