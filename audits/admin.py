from django.contrib import admin
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from audits.choices import JobStatus
from audits.events import LEDGER_EVENT_TYPES
from audits.models import DecisionEvent, Export
from audits.selectors.exports import exports_visible_to
from hitl_platform.admin_site import EstimatedCountPaginator, GovernedAdminMixin, timestamp_column


class EventTypeFilter(admin.SimpleListFilter):
    """Fixed choices: listing the types present would be a DISTINCT scan of the whole ledger."""

    title = "event type"
    parameter_name = "event_type"

    def lookups(self, request, model_admin):
        return [(name, name) for name in LEDGER_EVENT_TYPES]

    def queryset(self, request, queryset):
        return queryset.filter(event_type=self.value()) if self.value() else queryset


@admin.register(DecisionEvent)
class DecisionEventAdmin(GovernedAdminMixin, admin.ModelAdmin):
    """The ledger, read-only for everyone: rows are only ever appended by ``audits.ledger``."""

    list_display = (
        "id",
        "event_type",
        "object_type",
        "object_id",
        "actor_label",
        timestamp_column("created_at"),
        "short_hash",
    )
    list_filter = (EventTypeFilter,)
    search_fields = ("hash",)
    search_help_text = "An event number, a full hash, or an object as type:id (e.g. reviews.decision:42)."
    ordering = ("-id",)
    change_list_template = "admin/audits/decisionevent/change_list.html"

    def get_search_results(self, request, queryset, search_term):
        # Each form of term hits an index (primary key, unique hash, or the (object_type, object_id) index);
        # Django's default icontains search would scan the whole ledger.
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.isdigit():
            return queryset.filter(pk=int(term)), False
        if ":" in term:
            object_type, object_id = term.rsplit(":", 1)
            return queryset.filter(object_type=object_type.strip(), object_id=object_id.strip()), False
        return queryset.filter(hash=term.lower()), False

    @admin.display(description="hash")
    def short_hash(self, event: DecisionEvent) -> str:
        return f"{event.hash[:16]}…"


@admin.register(Export)
class ExportAdmin(GovernedAdminMixin, SimpleHistoryAdmin):
    """Exports and their progress; the file is offered on the export's page when done, to its requester."""

    list_display = (
        "id",
        "kind",
        "format",
        "target",
        "status",
        "progress_bar",
        "row_count",
        "requested_by",
        timestamp_column("created_at"),
    )
    list_filter = ("status", "kind", "format")
    list_select_related = ("requested_by", "model")
    readonly_fields = (
        "kind",
        "format",
        "target",
        "status",
        "progress_bar",
        "row_count",
        "download",
        "file_sha256",
        "error",
        "requested_by",
        "created_at",
        "started_at",
        "finished_at",
    )
    fields = readonly_fields
    history_list_display = ("status", "row_count")
    change_form_template = "admin/audits/export/change_form.html"
    paginator = EstimatedCountPaginator

    def get_queryset(self, request: HttpRequest):
        return exports_visible_to(request.user)

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.has_perm("audits.add_export")

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None):
        return HttpResponseRedirect(reverse("admin:export_new"))

    @admin.display(description="what")
    def target(self, export: Export) -> str:
        if export.prediction_id:
            return f"case {export.prediction_id}"
        if export.model_id:
            return f"{export.model.name} {export.period_start:%Y-%m-%d} to {export.period_end:%Y-%m-%d}"
        return ""

    @admin.display(description="progress")
    def progress_bar(self, export: Export) -> str:
        return format_html(
            '<progress max="100" value="{}" aria-label="{}% done">{}%</progress> {}%',
            export.progress,
            export.progress,
            export.progress,
            export.progress,
        )

    @admin.display(description="file")
    def download(self, export: Export) -> str:
        if export.status == JobStatus.DONE and export.file:
            url = reverse("admin:export_download", args=[export.pk])
            return format_html('<a class="button" href="{}">Download {}</a>', url, export.format.upper())
        return "not available yet" if export.status in (JobStatus.QUEUED, JobStatus.RUNNING) else "none"

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["auto_refresh"] = obj is not None and obj.status in (JobStatus.QUEUED, JobStatus.RUNNING)
        return super().render_change_form(request, context, add, change, form_url, obj)


# Each registers its pages.
from audits import admin_bias_audits, admin_retraining  # noqa: E402,F401
