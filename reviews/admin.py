"""The reviews app in the governance console.

Governed records (predictions, review tasks, assignments, reviews, decisions, webhooks, deliveries) are
read-only here for everyone: services are their only writers. Routing policies are changed through
``routing_policy_update`` with a required reason, and the stop switch through its own page and service.
Changelists are built for tables of millions of rows: estimated counts, fixed filter choices, indexed search,
related rows joined (never a query per row), and large JSON columns left out of list pages.
"""

from datetime import timedelta
from functools import cache

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import models
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from hitl_platform import humanize
from hitl_platform.admin_site import (
    EstimatedCountPaginator,
    GovernedAdminMixin,
    HistoryVersionsReadOnlyMixin,
    ReadableHistoryAdmin,
    ReadableJsonMixin,
    percent_column,
    timestamp_column,
)
from hitl_platform.types import authenticated_user
from models_registry.models import MLModel
from reviews.choices import TaskStatus
from reviews.models import (
    PERSONAL_DATA_FIELDS,
    Assignment,
    Decision,
    Prediction,
    Review,
    ReviewTask,
    RoutingPolicy,
    Webhook,
    WebhookDelivery,
)


class RecentFilter(admin.SimpleListFilter):
    """Fixed periods on an indexed timestamp: a date hierarchy would first scan the table for DISTINCT dates."""

    title = "when"
    parameter_name = "within"
    field_name = "created_at"
    PERIODS = {"1": "last 24 hours", "7": "last 7 days", "30": "last 30 days", "90": "last 90 days"}

    def lookups(self, request, model_admin):
        return list(self.PERIODS.items())

    def queryset(self, request, queryset):
        if self.value() not in self.PERIODS:
            return queryset
        since = timezone.now() - timedelta(days=int(self.value()))
        return queryset.filter(**{f"{self.field_name}__gte": since})


class DecidedRecentlyFilter(RecentFilter):
    title = "decided"
    field_name = "decided_at"


def _external_id_match(term: str) -> Q:
    # The unique index is (model_id, external_id): naming every model lets PostgreSQL probe it per model
    # instead of scanning the table for an external id alone.
    return Q(model_id__in=MLModel.objects.values("id"), external_id=term)


@cache
def _case_url_prefix() -> str:
    # One reverse() per process instead of one per row: at 500 rows a page, reversing was a fifth of the time.
    return reverse("admin:case", args=[0]).removesuffix("0/")


def _case_link(prediction_id: int, text: str) -> str:
    """A link to the case's trail, named as every page names it (``Prediction.case_name``)."""
    return format_html('<a href="{}{}/">{}</a>', _case_url_prefix(), prediction_id, text)


def _with_adjudication_badge(text: str, is_adjudication: bool) -> str:
    return format_html('{} <span class="hitl-badge">adjudication</span>', text) if is_adjudication else text


# A case named in another record's list needs only its external id: its large and personal fields stay behind.
_CASE_DEFER = ("route_reasons", *PERSONAL_DATA_FIELDS)


class CaseSearchMixin:
    """Search by record number or by the case's external id, both through indexes (exact match only).

    Subclasses define ``case_match(term) -> Q``: how their rows are found by a case's external id.
    """

    search_fields = ("id",)
    search_help_text = "A record number, or a case's external id (exact)."

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        match = self.case_match(term)
        if term.isdigit():
            match |= Q(pk=int(term))
        return queryset.filter(match), False


class ReadOnlyHistoryAdmin(GovernedAdminMixin, ReadableHistoryAdmin):
    """Read-only console view with the record's history (who changed what, when, and why)."""


@admin.register(RoutingPolicy)
class RoutingPolicyAdmin(HistoryVersionsReadOnlyMixin, ReadableHistoryAdmin):
    """Compliance officers change a model's routing here, always with a reason (historised and in the ledger)."""

    list_display = (
        "model",
        percent_column("auto_decide_threshold", "decides alone from"),
        percent_column("qa_sample_rate", "QA sample"),
        "reviews_required",
        "sla_hours",
        "stop_switch",
        timestamp_column("updated_at", "changed"),
    )
    list_select_related = ("model",)
    list_filter = ("stop_switch_on", "consensus_rule")
    search_fields = ("model__name",)
    readonly_fields = ("model", "stop_switch", "stop_switch_changed_at", "stop_switch_changed_by", "updated_at")
    history_list_display = ("auto_decide_threshold", "qa_sample_rate", "stop_switch_on")
    change_form_template = "admin/reviews/routingpolicy/change_form.html"
    show_full_result_count = False
    paginator: type[Paginator] = EstimatedCountPaginator

    def get_form(self, request, obj=None, change=False, **kwargs):
        from reviews.policy_forms import RoutingPolicyForm

        kwargs["form"] = RoutingPolicyForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        from reviews.policy_forms import SETTING_FIELDS

        # Rules and label thresholds are rows (the form's formsets), drawn by the change form's template.
        return [
            (None, {"fields": ["model", "stop_switch", "stop_switch_changed_at", "stop_switch_changed_by"]}),
            ("Routing", {"fields": SETTING_FIELDS}),
            ("Why", {"fields": ["reason"]}),
        ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A policy is created with the model (routing_policy_get_or_create_default), never by hand.
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def save_model(self, request, obj, form, change):
        from reviews.services.policies import routing_policy_update

        changes = {name: form.cleaned_data[name] for name in form.changed_data if name in form.editable_names}
        routing_policy_update(
            policy=form.instance, changes=changes, actor=request.user, reason=form.cleaned_data["reason"]
        )

    @admin.display(description="stop switch")
    def stop_switch(self, policy: RoutingPolicy) -> str:
        if policy.stop_switch_on:
            return format_html('<strong class="hitl-stop">ON</strong>: every new case goes to human review')
        return "off"

    def get_urls(self):
        stop_switch = path(
            "<int:policy_id>/stop-switch/",
            self.admin_site.admin_view(self.stop_switch_view),
            name="reviews_routingpolicy_stop_switch",
        )
        return [stop_switch, *super().get_urls()]

    def stop_switch_view(self, request: HttpRequest, policy_id: int) -> HttpResponse:
        """Turn the model's stop switch on or off, with a reason."""
        from reviews.services.policies import routing_policy_set_stop_switch

        if not request.user.has_perm("reviews.toggle_stop_switch"):
            raise PermissionDenied
        policy = get_object_or_404(RoutingPolicy.objects.select_related("model"), pk=policy_id)
        form = StopSwitchForm(request.POST or None)
        turn_on = not policy.stop_switch_on
        if request.method == "POST" and form.is_valid():
            try:
                routing_policy_set_stop_switch(
                    policy=policy, on=turn_on, actor=authenticated_user(request), reason=form.cleaned_data["reason"]
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                state = "ON: every new case goes to human review" if turn_on else "off"
                messages.success(request, f"Stop switch of {policy.model.name} is now {state}.")
                return redirect("admin:reviews_routingpolicy_change", policy.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Turn the stop switch of {policy.model.name} {'on' if turn_on else 'off'}",
            "policy": policy,
            "turn_on": turn_on,
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/reviews/routingpolicy/stop_switch.html", context)


class StopSwitchForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), max_length=2000, help_text="Recorded in the history and the ledger."
    )


@admin.register(Prediction)
class PredictionAdmin(CaseSearchMixin, ReadableJsonMixin, ReadOnlyHistoryAdmin):
    """Cases. The input features are shown to console users; sensitive attributes never are (names only)."""

    list_display = (
        "case",
        "model_version",
        "predicted_label",
        "confidence_shown",
        "route_shown",
        timestamp_column("created_at", "arrived"),
    )
    list_select_related = ("model", "version")
    list_filter = ("route", "is_qa_sample", "is_gold", "model", RecentFilter)
    changelist_defer = _CASE_DEFER
    exclude = ("sensitive_attributes", "route_reasons", "confidence")
    json_table_fields = ("features", "scores", "explanation")
    readonly_fields = ("case_trail", "confidence_shown", "route_reasons_list", "sensitive_attribute_names")
    history_list_display = ("route", "outcome_label")
    ordering = ("-id",)

    def case_match(self, term: str) -> Q:
        return _external_id_match(term)

    @admin.display(description="case", ordering="id")
    def case(self, prediction: Prediction) -> str:
        return prediction.case_name

    @admin.display(description="case trail")
    def case_trail(self, prediction: Prediction) -> str:
        return _case_link(prediction.pk, prediction.case_name)

    @admin.display(description="model", ordering="model__name")
    def model_version(self, prediction: Prediction) -> str:
        return f"{prediction.model.name} v{prediction.version.number}"

    @admin.display(description="confidence", ordering="confidence")
    def confidence_shown(self, prediction: Prediction) -> str:
        return humanize.percent(prediction.confidence)

    @admin.display(description="route", ordering="route")
    def route_shown(self, prediction: Prediction) -> str:
        badges = [text for flag, text in ((prediction.is_qa_sample, "QA sample"), (prediction.is_gold, "gold")) if flag]
        return format_html(
            "{}{}",
            prediction.get_route_display(),
            format_html_join("", ' <span class="hitl-badge">{}</span>', ((badge,) for badge in badges)),
        )

    @admin.display(description="route reasons")
    def route_reasons_list(self, prediction: Prediction) -> str:
        return humanize.json_table(prediction.route_reasons, empty="no rule fired")

    @admin.display(description="sensitive attributes")
    def sensitive_attribute_names(self, prediction: Prediction) -> str:
        names = sorted(prediction.sensitive_attributes or {})
        return f"recorded, values withheld: {', '.join(names)}" if names else "none recorded"


@admin.register(ReviewTask)
class ReviewTaskAdmin(ReadOnlyHistoryAdmin):
    list_display = (
        "task",
        "case",
        "model",
        "status_shown",
        "reviews",
        "due",
    )
    list_select_related = ("model", "prediction")
    list_filter = ("status", "sla_breached", "needs_adjudication", "model")
    changelist_defer = tuple(f"prediction__{name}" for name in _CASE_DEFER)
    search_fields = ("id",)
    search_help_text = "A task number or a case (prediction) number."
    history_list_display = ("status", "slots_taken")
    raw_id_fields = ("prediction",)
    readonly_fields = ("case",)
    ordering = ("-id",)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        if not term.isdigit():
            return queryset.none(), False
        return queryset.filter(Q(pk=int(term)) | Q(prediction_id=int(term))), False

    @admin.display(description="task", ordering="id")
    def task(self, task: ReviewTask) -> str:
        return f"Task {task.pk}"

    @admin.display(description="case", ordering="prediction_id")
    def case(self, task: ReviewTask) -> str:
        return _case_link(task.prediction_id, task.prediction.case_name)

    @admin.display(description="status", ordering="status")
    def status_shown(self, task: ReviewTask) -> str:
        if task.needs_adjudication and task.status != TaskStatus.DECIDED:
            return format_html('{} <span class="hitl-badge">needs adjudication</span>', task.get_status_display())
        return task.get_status_display()

    @admin.display(description="reviews")
    def reviews(self, task: ReviewTask) -> str:
        return f"{task.slots_taken} of {task.reviews_required} taken"

    @admin.display(description="due", ordering="due_at")
    def due(self, task: ReviewTask) -> str:
        if task.decided_at:
            return format_html("decided {}", humanize.when_html(task.decided_at))
        if task.sla_breached:
            return format_html('{} <strong class="hitl-stop">SLA breached</strong>', humanize.when_html(task.due_at))
        return humanize.when_html(task.due_at)


@admin.register(Assignment)
class AssignmentAdmin(ReadOnlyHistoryAdmin):
    list_display = (
        "assignment",
        "case",
        "reviewer",
        "status_shown",
        timestamp_column("claimed_at", "claimed"),
        timestamp_column("finished_at", "finished"),
    )
    list_select_related = ("reviewer", "task__prediction")
    changelist_defer = tuple(f"task__prediction__{name}" for name in _CASE_DEFER)
    list_filter = ("status", "is_adjudication")
    search_fields = ("reviewer__username__exact",)
    search_help_text = "A reviewer's exact username."
    history_list_display = ("status", "release_reason")
    raw_id_fields = ("task", "reviewer")
    readonly_fields = ("case",)
    ordering = ("-id",)

    @admin.display(description="assignment", ordering="id")
    def assignment(self, assignment: Assignment) -> str:
        return f"Assignment {assignment.pk}"

    @admin.display(description="case", ordering="task__prediction_id")
    def case(self, assignment: Assignment) -> str:
        prediction = assignment.task.prediction
        return _case_link(prediction.pk, prediction.case_name)

    @admin.display(description="status", ordering="status")
    def status_shown(self, assignment: Assignment) -> str:
        return _with_adjudication_badge(assignment.get_status_display(), assignment.is_adjudication)


@admin.register(Review)
class ReviewAdmin(ReadOnlyHistoryAdmin):
    list_display = (
        "review",
        "case",
        "reviewer",
        "label_shown",
        "time_spent",
        timestamp_column("created_at", "submitted"),
    )
    list_select_related = ("reviewer", "task__prediction")
    changelist_defer = tuple(f"task__prediction__{name}" for name in _CASE_DEFER)
    list_filter = ("is_adjudication", RecentFilter)
    search_fields = ("reviewer__username__exact",)
    search_help_text = "A reviewer's exact username."
    history_list_display = ("label",)
    raw_id_fields = ("task", "assignment", "reviewer", "corrects")
    readonly_fields = ("case",)
    ordering = ("-id",)

    @admin.display(description="review", ordering="id")
    def review(self, review: Review) -> str:
        return f"Review {review.pk}"

    @admin.display(description="case", ordering="task__prediction_id")
    def case(self, review: Review) -> str:
        prediction = review.task.prediction
        return _case_link(prediction.pk, prediction.case_name)

    @admin.display(description="label", ordering="label")
    def label_shown(self, review: Review) -> str:
        text = f"{review.label} (corrects review {review.corrects_id})" if review.corrects_id else review.label
        return _with_adjudication_badge(text, review.is_adjudication)

    @admin.display(description="time spent", ordering="time_spent_seconds")
    def time_spent(self, review: Review) -> str:
        return humanize.duration(review.time_spent_seconds)


@admin.register(Decision)
class DecisionAdmin(CaseSearchMixin, ReadOnlyHistoryAdmin):
    """Final decisions. Never edited here: an adjudicator reverses one on appeal from its case page."""

    list_display = (
        "decision",
        "case",
        "model",
        "labels",
        "who_decided",
        timestamp_column("decided_at", "decided"),
    )
    list_select_related = ("model", "prediction", "decided_by")
    list_filter = ("source", "model", DecidedRecentlyFilter)
    changelist_defer = tuple(f"prediction__{name}" for name in _CASE_DEFER)
    history_list_display = ("final_label", "source", "decided_by")
    raw_id_fields = ("prediction",)
    exclude = ("reviewers",)
    readonly_fields = ("case", "model_label", "agreement_shown", "who_decided")
    ordering = ("-id",)

    def case_match(self, term: str) -> Q:
        return Q(prediction_id__in=Prediction.objects.filter(_external_id_match(term)).values("id"))

    @admin.display(description="decision", ordering="id")
    def decision(self, decision: Decision) -> str:
        return f"Decision {decision.pk}"

    @admin.display(description="decided by")
    def who_decided(self, decision: Decision) -> str:
        reviewers = ", ".join(reviewer["username"] for reviewer in decision.reviewers)
        if decision.decided_by:
            by = decision.decided_by.get_username()
            return f"{by} (adjudicator), after {reviewers}" if reviewers else by
        if reviewers:
            return f"{reviewers} (consensus)"
        return "the model (automatic)" if decision.source == "auto" else "-"

    @admin.display(description="case", ordering="prediction_id")
    def case(self, decision: Decision) -> str:
        return _case_link(decision.prediction_id, decision.prediction.case_name)

    @admin.display(description="final label (model's)", ordering="final_label")
    def labels(self, decision: Decision) -> str:
        model_label = decision.prediction.predicted_label
        if model_label == decision.final_label:
            return format_html('{} <span class="quiet">(same)</span>', decision.final_label)
        return format_html(
            '<strong>{}</strong> <span class="quiet">(model: {})</span>', decision.final_label, model_label
        )

    @admin.display(description="model's label")
    def model_label(self, decision: Decision) -> str:
        return decision.prediction.predicted_label

    @admin.display(description="agreement")
    def agreement_shown(self, decision: Decision) -> str:
        return humanize.percent(decision.agreement)


@admin.register(Webhook)
class WebhookAdmin(ReadOnlyHistoryAdmin):
    """Receivers are managed by their owners through the API; the console shows them and their history."""

    list_display = ("id", "url", "owner", "model", "events_shown", "is_active")
    # Django 6's default, now: a receiver typed without a scheme is https.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_select_related = ("owner", "model")
    list_filter = ("is_active",)
    exclude = ("secret",)
    history_list_display = ("is_active", "url")

    @admin.display(description="events")
    def events_shown(self, webhook: Webhook) -> str:
        return ", ".join(webhook.events)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadableJsonMixin, GovernedAdminMixin, admin.ModelAdmin):
    """The outbox: every delivery with its attempts and the receiver's last answer."""

    list_display = (
        "id",
        "event",
        "webhook_url",
        "status_shown",
        "last_answer",
        timestamp_column("created_at", "queued"),
    )
    list_select_related = ("webhook",)
    list_filter = ("status", RecentFilter)
    search_fields = ("delivery_id__exact",)
    search_help_text = "A delivery id (UUID, exact)."
    changelist_defer = ("payload",)
    json_table_fields = ("payload",)
    ordering = ("-id",)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            return queryset.filter(delivery_id=term), False
        except ValidationError:
            return queryset.none(), False

    @admin.display(description="receiver")
    def webhook_url(self, delivery: WebhookDelivery) -> str:
        return delivery.webhook.url

    @admin.display(description="status", ordering="status")
    def status_shown(self, delivery: WebhookDelivery) -> str:
        attempts = delivery.attempts
        return f"{delivery.get_status_display()}, {attempts} attempt{'' if attempts == 1 else 's'}"

    @admin.display(description="receiver's last answer")
    def last_answer(self, delivery: WebhookDelivery) -> str:
        code = f"HTTP {delivery.last_status_code}" if delivery.last_status_code else ""
        return " ".join(part for part in (code, delivery.last_error[:80]) if part) or humanize.MISSING
