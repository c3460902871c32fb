"""The registry in the governance console.

Registry records change only through services, so every change has a reason and a ledger event: versions and
promotion requests are read-only here, a model's definition can be changed by someone holding the change
permission (administrators) with a required reason, and promotion requests are approved or rejected through
actions that ask for a reason, call ``promotion_request_decide`` and report the gate results. Nothing here can
be deleted. Compliance officers hold only view permissions on models and versions, so those are read-only to
them.
"""

from typing import TYPE_CHECKING

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from hitl_platform.admin_site import ReadableHistoryAdmin, ReadableJsonMixin, timestamp_column
from models_registry.choices import PromotionStatus
from models_registry.forms import MLModelChangeForm, PromotionDecisionForm
from models_registry.gates import promotion_gates_run
from models_registry.models import MLModel, ModelVersion, PromotionRequest
from models_registry.selectors import (
    ml_model_list,
    model_version_ancestors,
    model_version_list,
    promotion_request_list,
    user_may_write_model,
)
from models_registry.services import (
    DECIDE_PERMISSION,
    FROZEN_ONCE_VERSIONED,
    MODEL_EDITABLE_FIELDS,
    PromotionBlocked,
    ml_model_update,
    promotion_request_decide,
    promotion_request_override_gate,
)

if TYPE_CHECKING:
    from models_registry.selectors import ListedModel


def _evidence_link(result: dict) -> str:
    evidence = result.get("evidence") or {}
    url, label = evidence.get("url"), evidence.get("label")
    return format_html('<a href="{}">{}</a>', url, label or "evidence") if url else ""


def _gate_table(results: list[dict]) -> str:
    if not results:
        return "-"
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{} {}</td></tr>",
        (
            (r.get("name", ""), "passed" if r.get("passed") else "FAILED", r.get("reason", ""), _evidence_link(r))
            for r in results
        ),
    )
    return format_html("<table><tr><th>Gate</th><th>Result</th><th>Reason</th></tr>{}</table>", rows)


def _gates_now(promotion_request: PromotionRequest) -> list[dict]:
    results = promotion_gates_run(version=promotion_request.version, target_stage=promotion_request.target_stage)
    return [result.as_dict() for result in results]


class RegistryHistoryAdmin(ReadableHistoryAdmin):
    """History views that only show: django-simple-history saves a form posted to a historical version's page
    for anyone who may view the record, which would let a read-only user write an old state back."""

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET", "HEAD"])
        return super().history_form_view(request, object_id, version_id, extra_context)


@admin.register(MLModel)
class MLModelAdmin(ReadableJsonMixin, RegistryHistoryAdmin):
    form = MLModelChangeForm
    list_display = ("name", "risk_tier", "owner_and_team", "versions", timestamp_column("updated_at", "changed"))
    json_table_fields = ("labels", "feature_schema", "sensitive_attributes")
    list_filter = ("task", "risk_tier", "legal_hold")
    search_fields = ("name", "description", "owner__username")
    list_select_related = ("owner", "team")
    show_full_result_count = False
    history_list_display = ("risk_tier", "positive_label", "team")
    fieldsets = (
        (None, {"fields": ("name", "owner", "team", "description", "task", "labels", "positive_label", "risk_tier")}),
        ("Input", {"fields": ("feature_schema", "sensitive_attributes")}),
        (
            "Model card",
            {"fields": ("intended_use", "out_of_scope_use", "limitations", "ethical_considerations")},
        ),
        ("Reviewers", {"fields": ("review_guidelines",)}),
        ("Record", {"fields": ("legal_hold", "created_at", "updated_at")}),
    )

    def get_queryset(self, request):
        return ml_model_list()

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None and self.has_change_permission(request, obj):
            return (*fieldsets, ("Why", {"fields": ("change_reason",)}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        readonly = [
            *super().get_readonly_fields(request, obj),
            "name",
            "owner",
            "legal_hold",
            "created_at",
            "updated_at",
        ]
        if obj is not None and obj.versions.exists():
            readonly.extend(sorted(FROZEN_ONCE_VERSIONED))
        return readonly

    @admin.display(description="owner (team)", ordering="owner__username")
    def owner_and_team(self, obj: MLModel) -> str:
        return f"{obj.owner} ({obj.team})" if obj.team_id else str(obj.owner)

    @admin.display(description="versions", ordering="latest_version")
    def versions(self, obj: "ListedModel") -> str:
        if obj.latest_version is None:
            return "none yet"
        production = f"v{obj.production_version} in production" if obj.production_version else "none in production"
        return f"latest v{obj.latest_version}, {production}"

    @admin.display(description="latest version", ordering="latest_version")
    def latest_version(self, obj: "ListedModel"):
        return obj.latest_version

    @admin.display(description="in production", ordering="production_version")
    def production_version(self, obj: "ListedModel"):
        return obj.production_version

    def has_add_permission(self, request):
        # Models are registered through the API by the ML engineer who will own them.
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        changes = {field: form.cleaned_data[field] for field in form.changed_data if field in MODEL_EDITABLE_FIELDS}
        ml_model_update(model=obj, actor=request.user, changes=changes, reason=form.cleaned_data["change_reason"])


class PromotionRequestInline(admin.TabularInline):
    model = PromotionRequest
    fields = ("target_stage", "status", "requester", "decided_by", "decision_reason", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("requester", "decided_by")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadableJsonMixin, RegistryHistoryAdmin):
    list_display = (
        "__str__",
        "stage",
        "has_model_file",
        "short_sha256",
        "created_by",
        timestamp_column("created_at", "registered"),
    )
    json_table_fields = ("library_versions", "metrics")
    list_filter = ("stage", "model__risk_tier")
    search_fields = ("model__name", "artifact_sha256", "description")
    list_select_related = ("model", "created_by")
    show_full_result_count = False
    history_list_display = ("stage",)
    inlines = (PromotionRequestInline,)
    fields = (
        "model",
        "number",
        "stage",
        "model_file",
        "artifact_sha256",
        "artifact_size",
        "library_versions",
        "metrics",
        "description",
        "lineage",
        "created_by",
        "created_at",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        return model_version_list()

    @admin.display(description="lineage")
    def lineage(self, obj: ModelVersion) -> str:
        """Its ancestors, nearest first, each with the retraining job that produced it (its snapshot and
        comparison are on the job's page). Jobs are named by URL: the registry imports nothing of audits."""
        chain = [obj, *model_version_ancestors(obj)]
        if len(chain) == 1 and not obj.retraining_job_id:
            return "registered directly (no parent)"
        steps = [self._lineage_step(version, current=version.pk == obj.pk) for version in chain]
        return format_html_join(" ← ", "{}", ((step,) for step in steps))

    @staticmethod
    def _lineage_step(version: ModelVersion, *, current: bool) -> str:
        if current:
            label = format_html("v{}", version.number)
        else:
            url = reverse("admin:models_registry_modelversion_change", args=[version.pk])
            label = format_html('<a href="{}">v{}</a>', url, version.number)
        if not version.retraining_job_id:
            return label
        job_url = reverse("admin:audits_retrainingjob_change", args=[version.retraining_job_id])
        return format_html('{} (<a href="{}">retraining job {}</a>)', label, job_url, version.retraining_job_id)

    @admin.display(boolean=True, description="model file")
    def has_model_file(self, obj: ModelVersion) -> bool:
        return bool(obj.artifact)

    @admin.display(description="SHA-256")
    def short_sha256(self, obj: ModelVersion) -> str:
        return obj.artifact_sha256[:12]

    @admin.display(description="model file")
    def model_file(self, obj: ModelVersion) -> str:
        # The name, not a link: model files are never served over HTTP.
        return obj.artifact.name or "none (scored by its caller)"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # Versions are registered through the API and change stage only through promotion requests.
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(PromotionRequest)
class PromotionRequestAdmin(RegistryHistoryAdmin):
    list_display = (
        "id",
        "version",
        "target_stage",
        "status",
        "requester",
        "decided_by",
        timestamp_column("created_at", "requested"),
    )
    list_display_links = ("id", "version")
    list_filter = ("status", "target_stage", "version__model__risk_tier")
    search_fields = ("version__model__name", "requester__username", "rationale")
    list_select_related = ("version__model__owner", "version__model__team", "requester", "decided_by")
    show_full_result_count = False
    history_list_display = ("status", "decided_by")
    actions = ("approve_requests", "reject_requests")
    fields = (
        "version",
        "target_stage",
        "status",
        "requester",
        "model_owner",
        "rationale",
        "decided_by",
        "decided_at",
        "decision_reason",
        "gates",
        "overrides",
        "created_at",
    )
    readonly_fields = fields
    decide_template = "admin/models_registry/promotionrequest/decide.html"
    change_form_template = "admin/models_registry/promotionrequest/change_form.html"

    def get_urls(self):
        decide = path(
            "<int:request_id>/decide/",
            self.admin_site.admin_view(self.decide_view),
            name="models_registry_promotionrequest_decide",
        )
        override = path(
            "<int:request_id>/override-gate/",
            self.admin_site.admin_view(self.override_gate_view),
            name="models_registry_promotionrequest_override_gate",
        )
        return [decide, override, *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The request's page: the gates as they stand now and, to those who decide, approve and reject."""
        promotion_request = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if promotion_request is not None and promotion_request.status == PromotionStatus.PENDING:
            gates_now = _gates_now(promotion_request)
            extra["gates_now"] = _gate_table(gates_now)
            if request.user.is_superuser:
                extra["overridable_gates"] = [result["name"] for result in gates_now if not result["passed"]]
                extra["override_form"] = PromotionDecisionForm()
            if self.has_decide_permission(request):
                extra["decision_form"] = PromotionDecisionForm()
                extra["own_request"] = promotion_request.requester_id == request.user.pk
                extra["requester_works_on_model"] = user_may_write_model(
                    promotion_request.requester, promotion_request.version.model
                )
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def override_gate_view(self, request, request_id: int):
        """POST: an administrator lets one failing gate pass for this request, with a reason (logged)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.is_superuser:
            raise PermissionDenied
        promotion_request = get_object_or_404(promotion_request_list(), pk=request_id)
        form = PromotionDecisionForm(request.POST)
        gate = request.POST.get("gate", "")
        if not form.is_valid():
            self.message_user(
                request, f"Not overridden: {' '.join(map(str, form.errors.get('reason', [])))}", messages.ERROR
            )
        else:
            try:
                promotion_request_override_gate(
                    promotion_request=promotion_request,
                    gate=gate,
                    actor=request.user,
                    reason=form.cleaned_data["reason"],
                )
            except ValidationError as exc:
                self.message_user(request, f"Not overridden: {' '.join(exc.messages)}", messages.ERROR)
            else:
                self.message_user(
                    request, f"Gate {gate} overridden for request #{promotion_request.pk}.", messages.WARNING
                )
        return redirect("admin:models_registry_promotionrequest_change", promotion_request.pk)

    def decide_view(self, request, request_id: int):
        """POST: approve or reject this one request with a reason, then back to its page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_decide_permission(request):
            raise PermissionDenied
        promotion_request = get_object_or_404(promotion_request_list(), pk=request_id)
        form = PromotionDecisionForm(request.POST)
        approve = request.POST.get("decision") == "approve"
        if request.POST.get("decision") not in ("approve", "reject"):
            self.message_user(request, "Choose approve or reject.", messages.ERROR)
        elif not form.is_valid():
            self.message_user(
                request, f"Not decided: {' '.join(map(str, form.errors.get('reason', [])))}", messages.ERROR
            )
        else:
            self._decide_one(request, promotion_request, approve=approve, reason=form.cleaned_data["reason"])
        return redirect("admin:models_registry_promotionrequest_change", promotion_request.pk)

    def get_queryset(self, request):
        return promotion_request_list()

    @admin.display(description="model owner (team)")
    def model_owner(self, obj: PromotionRequest) -> str:
        model = obj.version.model
        return f"{model.owner} ({model.team})" if model.team_id else str(model.owner)

    @admin.display(description="gate overrides")
    def overrides(self, obj: PromotionRequest) -> str:
        if not obj.gate_overrides:
            return "none"
        return format_html_join(
            "", "<p>{} by {} at {}: {}</p>", ((o["gate"], o["by"], o["at"], o["reason"]) for o in obj.gate_overrides)
        )

    @admin.display(description="gate results")
    def gates(self, obj: PromotionRequest) -> str:
        return _gate_table(obj.gate_results)

    def has_add_permission(self, request):
        # Requests come from the ML engineers' API; decisions come from the actions below.
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_decide_permission(self, request) -> bool:
        return request.user.has_perm(DECIDE_PERMISSION)

    @admin.action(description="Approve selected promotion requests", permissions=["decide"])
    def approve_requests(self, request, queryset):
        return self._decide(request, queryset, approve=True)

    @admin.action(description="Reject selected promotion requests", permissions=["decide"])
    def reject_requests(self, request, queryset):
        return self._decide(request, queryset, approve=False)

    def _decide(self, request, queryset, *, approve: bool):
        pending = list(queryset.filter(status=PromotionStatus.PENDING).order_by("pk"))
        if not pending:
            self.message_user(request, "None of the selected requests is pending.", messages.WARNING)
            return None
        form = PromotionDecisionForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            for promotion_request in pending:
                self._decide_one(request, promotion_request, approve=approve, reason=form.cleaned_data["reason"])
            return None
        rows = [
            {
                "request": promotion_request,
                "own": promotion_request.requester_id == request.user.pk,
                "requester_works_on_model": user_may_write_model(
                    promotion_request.requester, promotion_request.version.model
                ),
                # What the gates say now; the decision runs them again and stores what it relied on.
                "gates": _gate_table(_gates_now(promotion_request)) if approve else None,
            }
            for promotion_request in pending
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": "Approve promotion requests" if approve else "Reject promotion requests",
            "opts": self.model._meta,
            "approve": approve,
            "rows": rows,
            "form": form,
            "action": "approve_requests" if approve else "reject_requests",
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, self.decide_template, context)

    def _decide_one(self, request, promotion_request: PromotionRequest, *, approve: bool, reason: str) -> None:
        label = f"#{promotion_request.pk} ({promotion_request.version} -> {promotion_request.target_stage})"
        try:
            decided = promotion_request_decide(
                promotion_request=promotion_request, actor=request.user, approve=approve, reason=reason
            )
        except PromotionBlocked as exc:
            self.message_user(request, f"{label} not approved. {exc.messages[0]}", messages.ERROR)
        except PermissionDenied as exc:
            self.message_user(request, f"{label}: {exc}", messages.ERROR)
        except ValidationError as exc:
            self.message_user(request, f"{label}: {' '.join(exc.messages)}", messages.ERROR)
        else:
            gates = "; ".join(
                f"{result['name']} {'passed' if result['passed'] else 'failed'} ({result['reason']})"
                for result in decided.gate_results
            )
            verb = "Approved" if approve else "Rejected"
            self.message_user(request, f"{verb} {label}." + (f" Gates: {gates}." if gates else ""), messages.SUCCESS)
