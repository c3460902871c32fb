"""The console's bias audit pages: the audits and the per-model audit policies (imported by audits.admin)."""

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from audits.models import AuditPolicy, BiasAudit
from audits.selectors.bias_audits import bias_audit_list
from audits.services.bias_audits import POLICY_FIELDS, audit_policy_update
from hitl_platform.admin_site import GovernedAdminMixin, HistoryVersionsReadOnlyMixin, timestamp_column


@admin.register(BiasAudit)
class BiasAuditAdmin(GovernedAdminMixin, SimpleHistoryAdmin):
    """Audits, newest first; an audit's page is its report."""

    list_display = (
        "id",
        "model",
        "version",
        "population",
        "attributes",
        "status",
        "verdict",
        "key_ratio",
        "trigger",
        timestamp_column("created_at"),
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

    def get_queryset(self, request: HttpRequest):
        return bias_audit_list()

    @admin.display(description="attributes")
    def attributes(self, audit: BiasAudit) -> str:
        return " & ".join(audit.sensitive_attributes)


class AuditPolicyForm(forms.ModelForm):
    """The policy's settings and why they change: saved through ``audit_policy_update``, never directly."""

    reason = forms.CharField(
        max_length=1000, widget=forms.Textarea(attrs={"rows": 2}), help_text="Why the thresholds or schedule change."
    )

    class Meta:
        model = AuditPolicy
        fields = ("model", *POLICY_FIELDS)


@admin.register(AuditPolicy)
class AuditPolicyAdmin(HistoryVersionsReadOnlyMixin, SimpleHistoryAdmin):
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
            actor=request.user,
            reason=form.cleaned_data["reason"],
            **changes,
        )
        obj.pk = saved.pk
