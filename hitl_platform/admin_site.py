"""The governance console: a custom AdminSite whose index is the dashboard, and the pieces every console
changelist shares (planner-estimated counts, read-only governed records)."""

import json
import logging
from collections.abc import Callable
from functools import cached_property
from typing import Any

from django.contrib import admin
from django.core.exceptions import FieldDoesNotExist
from django.core.paginator import Paginator
from django.db import DatabaseError, connection
from django.db.models import Field, Model
from django.http import HttpResponseNotAllowed
from django.urls import path
from django.utils.html import conditional_escape
from django.utils.text import capfirst
from simple_history.admin import SimpleHistoryAdmin
from simple_history.template_utils import HistoricalRecordContextHelper

from hitl_platform import humanize

logger = logging.getLogger(__name__)


def _formatted_column(field_name: str, description: str, formatter: Callable[[Any], str]):
    """A sortable changelist column showing ``field_name`` through ``formatter``."""

    @admin.display(description=description or field_name.replace("_", " "), ordering=field_name)
    def column(obj) -> str:
        return formatter(getattr(obj, field_name))

    column.__name__ = f"{field_name}_column"
    return column


def timestamp_column(field_name: str, description: str = ""):
    """A changelist column showing a timestamp the console's one way (``humanize.when``, in ``TIME_ZONE``),
    the exact second and the zone in its tooltip.

    strftime rather than the admin's localised date format, which goes through the translation machinery for
    every month name: about ten times cheaper per cell, and it matters at hundreds of rows a page.
    """
    return _formatted_column(field_name, description, humanize.when_html)


def percent_column(field_name: str, description: str = ""):
    """A changelist column showing a share of one as "84.3 %"."""
    return _formatted_column(field_name, description, humanize.percent)


def count_column(field_name: str, description: str = ""):
    """A changelist column showing a count with thousands separators."""
    return _formatted_column(field_name, description, humanize.count)


def json_field(field_name: str, description: str = ""):
    """A read-only detail-page field showing a JSON field as a labelled table (raw JSON one click away)."""

    @admin.display(description=description or field_name.replace("_", " "))
    def field(obj) -> str:
        return humanize.json_table(getattr(obj, field_name))

    field.__name__ = f"{field_name}_table"
    return field


class ReadableJsonMixin:
    """Read-only JSON fields named in ``json_table_fields`` shown on the detail page as labelled tables (the raw
    JSON one click away) instead of a JSON dump; while a field is editable its form widget stays.

    An override of ``get_readonly_fields`` must extend super's (the tables are read-only fields).
    """

    json_table_fields: tuple[str, ...] = ()
    model: type[Model]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name in self.json_table_fields:
            field = self.model._meta.get_field(name)
            assert isinstance(field, Field), f"{name} is a JSON column of {self.model.__name__}, not a relation"
            setattr(self, f"{name}_table", json_field(name, str(field.verbose_name)))

    def get_readonly_fields(self, request, obj=None):
        return (*super().get_readonly_fields(request, obj), *(f"{name}_table" for name in self.json_table_fields))

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None and not self.has_change_permission(request, obj):
            as_tables = set(self.json_table_fields)
        else:
            as_tables = set(self.json_table_fields) & set(self.get_readonly_fields(request, obj))

        def swapped(names):
            shown = []
            for name in names:
                if name.endswith("_table") and name.removesuffix("_table") in self.json_table_fields:
                    name = name if name.removesuffix("_table") in as_tables else ""
                elif name in as_tables:
                    name = f"{name}_table"
                if name and name not in shown:
                    shown.append(name)
            return shown

        return [(title, {**options, "fields": swapped(options["fields"])}) for title, options in fieldsets]


def history_value_readable(value) -> str:
    """A changed value as a person reads it on a history page: JSON as JSON, whole."""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return humanize.MISSING if value is None or value == "" else str(value)


class WholeValuesContextHelper(HistoricalRecordContextHelper):
    """simple-history's diff, without shortening a value to its first and last characters (which cut rules and
    reasons in the middle) and with JSON values as JSON rather than Python reprs."""

    def stringify_delta_change_values(self, change, old, new):
        return conditional_escape(history_value_readable(old)), conditional_escape(history_value_readable(new))


class ReadableHistoryAdmin(SimpleHistoryAdmin):
    """simple-history's admin, its history page headed by the fields' names as the forms show them."""

    object_history_list_template = "admin/readable_history_list.html"

    def history_view(self, request, object_id, extra_context=None):
        labels = [(name, self.history_column_label(name)) for name in self.get_history_list_display(request)]
        return super().history_view(request, object_id, extra_context={**(extra_context or {}), "columns": labels})

    def history_column_label(self, name: str) -> str:
        method = getattr(self, name, None)
        if callable(method):
            return capfirst(str(getattr(method, "short_description", name.replace("_", " "))))
        try:
            return capfirst(str(self.model._meta.get_field(name).verbose_name))
        except FieldDoesNotExist:
            return capfirst(name.replace("_", " "))

    def get_historical_record_context_helper(self, request, historical_record):
        return WholeValuesContextHelper(self.model, historical_record)


class EstimatedCountPaginator(Paginator):
    """Pages for tables of millions of rows without a full COUNT(*).

    On PostgreSQL an unfiltered list takes the table's row estimate from ``pg_class.reltuples`` (kept by
    autovacuum/ANALYZE) and a filtered one the planner's row estimate for its WHERE clause (EXPLAIN); either
    way one cheap query. Small results (estimate below ``exact_below``) are counted exactly, as is everything
    on SQLite. ``is_estimate`` tells the template to say "about".
    """

    exact_below = 10_000

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.is_estimate = False

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if connection.vendor == "postgresql" and hasattr(queryset, "query"):
            estimate = self._estimate(queryset)
            if estimate is not None and estimate >= self.exact_below:
                self.is_estimate = True
                return estimate
        return super().count

    def _estimate(self, queryset) -> int | None:
        try:
            if not queryset.query.where:
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                        [queryset.model._meta.db_table],
                    )
                    row = cursor.fetchone()
                return int(row[0]) if row and row[0] is not None and row[0] >= 0 else None
            plan = json.loads(queryset.order_by().explain(format="json"))
            return int(plan[0]["Plan"]["Plan Rows"])
        except (DatabaseError, ValueError, KeyError, IndexError, TypeError):
            logger.warning("Row estimate failed for %s; counting exactly", queryset.model._meta.label, exc_info=True)
            return None


class HistoryVersionsReadOnlyMixin:
    """django-simple-history saves a form posted to a historical version's page whatever the permissions:
    historical versions may be looked at, never posted back."""

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET", "HEAD"])
        return super().history_form_view(request, object_id, version_id, extra_context)


class GovernedAdminMixin(HistoryVersionsReadOnlyMixin):
    """Read-only console view of a governed model: its records are written only by services.

    Nobody (superusers included) adds, changes or deletes them here, "delete selected" is gone, and the
    changelist never counts the whole table. Subclasses list fields on ``changelist_defer`` that the list does
    not show (large JSON, personal data), so a page of rows does not drag them from the database.
    """

    show_full_result_count = False
    paginator: type[Paginator] = EstimatedCountPaginator
    changelist_defer: tuple[str, ...] = ()

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def get_changelist(self, request, **kwargs):
        base = super().get_changelist(request, **kwargs)
        deferred = self.changelist_defer
        if not deferred:
            return base

        class DeferringChangeList(base):
            def get_queryset(self, request, exclude_parameters=None):
                return super().get_queryset(request, exclude_parameters).defer(*deferred)

        return DeferringChangeList


class GovernanceAdminSite(admin.AdminSite):
    """The compliance officers' console: the dashboard is its index; case, appeal, ledger and export pages."""

    site_header = "hitl_platform governance console"
    site_title = "hitl_platform governance"
    index_title = "Governance dashboard"
    index_template = "admin/dashboard.html"
    # The app list sidebar would take a quarter of a 1280 px screen from every list; the dashboard lists the
    # apps, and every page's breadcrumbs lead back to it.
    enable_nav_sidebar = False

    def index(self, request, extra_context=None):
        from audits.views import dashboard_context

        return super().index(request, {**dashboard_context(request), **(extra_context or {})})

    def get_urls(self):
        from audits import views, views_thresholds

        console = [
            path("cases/<int:prediction_id>/", self.admin_view(views.case_page), name="case"),
            path("decisions/<int:decision_id>/appeal/", self.admin_view(views.decision_appeal), name="decision_appeal"),
            path("ledger/", self.admin_view(views.ledger_page), name="ledger"),
            path("ledger/head.json", self.admin_view(views.ledger_head_download), name="ledger_head"),
            path("exports/new/", self.admin_view(views.export_new), name="export_new"),
            path("exports/<int:export_id>/download/", self.admin_view(views.export_download), name="export_download"),
            path("bias-audits/new/", self.admin_view(views.bias_audit_new), name="bias_audit_new"),
            path("bias-audits/<int:audit_id>/csv/", self.admin_view(views.bias_audit_csv), name="bias_audit_csv"),
            path(
                "bias-audits/<int:audit_id>/run-again/",
                self.admin_view(views.bias_audit_run_again),
                name="bias_audit_run_again",
            ),
            path(
                "models/<int:model_id>/threshold-recommendation/",
                self.admin_view(views_thresholds.threshold_recommendation_page),
                name="threshold_recommendation",
            ),
            path("retraining-jobs/new/", self.admin_view(views.retraining_job_new), name="retraining_job_new"),
        ]
        return console + super().get_urls()
