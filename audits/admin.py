from django.apps import apps
from django.contrib import admin
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from audits.choices import JobStatus
from audits.events import LEDGER_EVENT_TYPES, ledger_event_label
from audits.models import DecisionEvent, Export
from audits.selectors.exports import exports_visible_to
from hitl_platform import humanize
from hitl_platform.admin_site import (
    EstimatedCountPaginator,
    GovernedAdminMixin,
    ReadableHistoryAdmin,
    count_column,
    timestamp_column,
)
from reviews.models import PERSONAL_DATA_FIELDS


class EventTypeFilter(admin.SimpleListFilter):
    """Fixed choices: listing the types present would be a DISTINCT scan of the whole ledger."""

    title = "event type"
    parameter_name = "event_type"

    def lookups(self, request, model_admin):
        return [(name, ledger_event_label(name)) for name in LEDGER_EVENT_TYPES]

    def queryset(self, request, queryset):
        return queryset.filter(event_type=self.value()) if self.value() else queryset


@admin.register(DecisionEvent)
class DecisionEventAdmin(GovernedAdminMixin, admin.ModelAdmin):
    """The ledger, read-only for everyone: rows are only ever appended by ``audits.ledger``."""

    list_display = (
        "id",
        "event",
        "record",
        "actor_label",
        timestamp_column("created_at", "when"),
        "short_hash",
    )
    list_filter = (EventTypeFilter,)
    fields = (
        "event",
        "event_type",
        "record",
        "actor_label",
        "actor_id",
        "created_at_shown",
        "payload_table",
        "hash",
        "previous_hash",
        "seal",
    )
    readonly_fields = fields
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

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["subtitle"] = f"Event {obj.pk}: {ledger_event_label(obj.event_type)}"
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.display(description="event", ordering="event_type")
    def event(self, event: DecisionEvent) -> str:
        return ledger_event_label(event.event_type)

    @admin.display(description="record")
    def record(self, event: DecisionEvent) -> str:
        """The record the event is about, in words ("decision 42"); the search box takes its type:id form."""
        try:
            name = apps.get_model(event.object_type)._meta.verbose_name
        except (LookupError, ValueError):
            name = event.object_type.replace("_", " ")
        search_form = f"{event.object_type}:{event.object_id}"
        return format_html('<span title="{}">{} {}</span>', search_form, name, event.object_id)

    @admin.display(description="when")
    def created_at_shown(self, event: DecisionEvent) -> str:
        return humanize.when_html(event.created_at, seconds=True)

    @admin.display(description="payload")
    def payload_table(self, event: DecisionEvent) -> str:
        return humanize.json_table(event.payload, empty="empty")

    @admin.display(description="hash")
    def short_hash(self, event: DecisionEvent) -> str:
        return format_html('<code title="{}">{}…</code>', event.hash, event.hash[:12])


@admin.register(Export)
class ExportAdmin(GovernedAdminMixin, ReadableHistoryAdmin):
    """Exports and their progress; the file is offered on the export's page when done, to its requester."""

    list_display = (
        "id",
        "what",
        "status",
        "progress_bar",
        count_column("row_count", "rows"),
        "requested_by",
        timestamp_column("created_at", "requested"),
    )
    list_filter = ("status", "kind", "format")
    changelist_defer = tuple(f"prediction__{name}" for name in ("route_reasons", *PERSONAL_DATA_FIELDS))
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
    paginator: type[Paginator] = EstimatedCountPaginator

    def get_queryset(self, request: HttpRequest):
        # The selector's select_related stops the changelist from applying a list_select_related of its own.
        return exports_visible_to(request.user).select_related("prediction")

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.has_perm("audits.add_export")

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None):
        return HttpResponseRedirect(reverse("admin:export_new"))

    @admin.display(description="what", ordering="kind")
    def what(self, export: Export) -> str:
        return f"{export.get_kind_display()} ({export.format.upper()}): {self.target(export)}"

    @admin.display(description="of")
    def target(self, export: Export) -> str:
        if export.prediction:
            return export.prediction.case_name
        if export.model:
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
