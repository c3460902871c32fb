"""Console pages (mounted by ``GovernanceAdminSite.get_urls`` behind ``admin_view``): dashboard, case trail,
appeal, ledger verification and head export, export requests and downloads. Thin: forms in, selectors and
services do the work."""

import io
import json
from pathlib import Path

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods

from audits.charts import Series, horizontal_bars_svg, stacked_columns_svg
from audits.choices import EXPORT_CONTENT_TYPES, AuditStatus, JobStatus, LedgerCheckStatus
from audits.forms import BiasAuditRequestForm, DashboardPeriodForm, ExportRequestForm, RetrainingRequestForm
from audits.presentation import bias_audit_csv_rows, dashboard_audit_rows
from audits.selectors.bias_audit_report import (
    bias_audit_run_settings,
    bias_audit_with_figures,
    bias_audits_readable_by,
    ml_models_auditable_by,
)
from audits.selectors.bias_audits import bias_audit_standing_per_model
from audits.selectors.cases import case_trail
from audits.selectors.dashboard import (
    DASHBOARD_PERIODS,
    DEFAULT_DASHBOARD_PERIOD,
    dashboard_figures,
)
from audits.selectors.drift import drift_latest_per_model
from audits.selectors.exports import exports_visible_to
from audits.selectors.ledger import (
    ledger_check_latest_reconciliation,
    ledger_checks_recent,
    ledger_head_document,
    ledger_head_offered,
    ledger_standing,
)
from audits.selectors.outcomes import outcome_overall_per_model
from audits.selectors.retraining import ml_models_retrainable_by
from audits.services.bias_audits import bias_audit_request, bias_audit_retry
from audits.services.dashboard import dashboard_refresh_when_stale
from audits.services.exports import export_request
from audits.services.ledger_checks import ledger_check_mismatches, ledger_check_request
from audits.services.retraining import RetrainingConflict, retraining_request
from hitl_platform.spreadsheet import csv_writer
from hitl_platform.types import authenticated_user
from reviews.forms import AppealForm
from reviews.models import Decision
from reviews.services.appeals import decision_reverse_on_appeal

CASE_PERMISSIONS = ("reviews.view_prediction", "reviews.view_decision")


def _require(request: HttpRequest, *permissions: str) -> None:
    if not request.user.has_perms(permissions):
        raise PermissionDenied


def _context(request: HttpRequest, title: str, **extra) -> dict:
    return {**admin.site.each_context(request), "title": title, **extra}


def dashboard_context(request: HttpRequest) -> dict:
    """The dashboard's part of the admin index context (empty for staff who may not read decisions)."""
    if not request.user.has_perm("reviews.view_decision"):
        return {}
    form = DashboardPeriodForm(request.GET or None)
    period = form.cleaned_data["days"] if form.is_valid() else DEFAULT_DASHBOARD_PERIOD
    dashboard_refresh_when_stale(window_days=max(DASHBOARD_PERIODS))
    dashboard = dashboard_figures(period_days=period)
    trend = stacked_columns_svg(
        title=f"Cases per day, last {period} days",
        x_labels=[f"{day.day:%d %b}" for day in dashboard.days],
        series=[
            Series("decided automatically", "s-auto", [d.auto_decided for d in dashboard.days]),
            Series("decided by humans", "s-human", [d.human_decided for d in dashboard.days]),
            Series("not decided yet", "s-open", [d.volume - d.auto_decided - d.human_decided for d in dashboard.days]),
        ],
    )
    per_model = horizontal_bars_svg(
        title=f"Cases per model, last {period} days",
        labels=[m.name for m in dashboard.models],
        series=[
            Series("automatic", "s-auto", [m.auto_decided for m in dashboard.models]),
            Series("human", "s-human", [m.human_decided for m in dashboard.models]),
            Series("not decided yet", "s-open", [m.volume - m.decided for m in dashboard.models]),
        ],
    )
    audit_rows = dashboard_audit_rows(
        # Every model's figures have its id; only the totals, which are not in this list, have none.
        models=[(m.model_id, m.name) for m in dashboard.models if m.model_id is not None],
        standing=bias_audit_standing_per_model(model_ids=[m.model_id for m in dashboard.models]),
        drift=drift_latest_per_model(model_ids=[m.model_id for m in dashboard.models]),
    )
    outcomes = outcome_overall_per_model(model_ids=[m.model_id for m in dashboard.models])
    return {
        "dashboard": dashboard,
        "audit_rows": audit_rows,
        "outcome_rows": [(m.name, outcomes[m.model_id]) for m in dashboard.models if m.model_id in outcomes],
        "may_view_audits": request.user.has_perm("audits.view_biasaudit"),
        "ledger_standing": ledger_standing(),
        "period_form": form,
        "trend_svg": mark_safe(trend),  # built by audits.charts, which escapes every label
        "per_model_svg": mark_safe(per_model),
    }


def case_page(request: HttpRequest, prediction_id: int) -> HttpResponse:
    """One prediction's whole trail: input, routing, reviews, decision, webhooks, history, verified ledger."""
    _require(request, *CASE_PERMISSIONS)
    trail = case_trail(prediction_id=prediction_id)
    if trail is None:
        raise Http404("No such case.")
    context = _context(
        request,
        f"Case {trail.prediction.case_name} of {trail.prediction.model.name}",
        trail=trail,
        can_appeal=trail.decision is not None and request.user.has_perm("reviews.adjudicate_cases"),
        can_export=request.user.has_perm("audits.add_export"),
    )
    return TemplateResponse(request, "admin/audits/case.html", context)


@require_http_methods(["GET", "POST"])
def decision_appeal(request: HttpRequest, decision_id: int) -> HttpResponse:
    """An adjudicator reverses a final decision on appeal, with a reason."""
    _require(request, "reviews.adjudicate_cases")
    decision = get_object_or_404(Decision.objects.select_related("model", "prediction"), pk=decision_id)
    form = AppealForm(request.POST or None, labels=decision.model.labels, current=decision.final_label)
    if request.method == "POST" and form.is_valid():
        try:
            decision_reverse_on_appeal(
                decision=decision,
                final_label=form.cleaned_data["final_label"],
                actor=authenticated_user(request),
                reason=form.cleaned_data["reason"],
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, f"Decision {decision.pk} reversed on appeal; the original stays in the trail.")
            if request.user.has_perms(CASE_PERMISSIONS):
                return redirect("admin:case", prediction_id=decision.prediction_id)
            return redirect("admin:index")
    context = _context(request, f"Reverse decision {decision.pk} on appeal", decision=decision, form=form)
    return TemplateResponse(request, "admin/audits/decision_appeal.html", context)


@require_http_methods(["GET", "POST"])
def ledger_page(request: HttpRequest) -> HttpResponse:
    """The chain's verification runs, the head offered as an anchor, and the rows that differ from the ledger;
    POST queues a new full verification."""
    _require(request, "audits.verify_ledger")
    if request.method == "POST":
        check = ledger_check_request(actor=authenticated_user(request))
        if check.status == LedgerCheckStatus.FAILED:
            messages.error(request, f"Verification {check.pk} could not start. {check.problem}")
        else:
            messages.info(request, f"Verification {check.pk} queued: the whole chain is recomputed.")
        return redirect("admin:ledger")
    checks = ledger_checks_recent()
    reconciliation = ledger_check_latest_reconciliation()
    context = _context(
        request,
        "Decision ledger",
        checks=checks,
        latest=checks[0] if checks else None,
        latest_intact=ledger_head_offered(),
        reconciliation=reconciliation,
        mismatches=ledger_check_mismatches(reconciliation) if reconciliation is not None else [],
        running=any(check.status in ("queued", "running") for check in checks),
    )
    return TemplateResponse(request, "admin/audits/ledger.html", context)


def ledger_head_download(request: HttpRequest) -> HttpResponse:
    """The latest intact verification's head hash, signed and timestamped, as a JSON file to keep elsewhere.

    Never a head that contradicts an earlier one: none at all once a later verification found the chain broken.
    """
    _require(request, "audits.verify_ledger")
    check = ledger_head_offered()
    if check is None:
        raise Http404("No head to offer: verify the ledger first (or resolve the broken verification).")
    document = ledger_head_document(check=check, exported_by=request.user)
    response = HttpResponse(json.dumps(document, indent=2), content_type="application/json")
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="ledger-head-{check.checked}-{stamp}.json"'
    return response


@require_http_methods(["GET", "POST"])
def export_new(request: HttpRequest) -> HttpResponse:
    """Ask for an export; it is written by a Celery task and offered for download on its page when done."""
    _require(request, "audits.add_export")
    initial = {key: request.GET[key] for key in ("kind", "prediction", "format") if key in request.GET}
    form = ExportRequestForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        start, end = form.period()
        try:
            export = export_request(
                actor=authenticated_user(request),
                kind=form.cleaned_data["kind"],
                format=form.cleaned_data["format"],
                prediction=form.cleaned_data.get("prediction"),
                model=form.cleaned_data.get("model"),
                period_start=start,
                period_end=end,
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            if export.status == JobStatus.FAILED:
                messages.error(request, f"Export {export.pk} could not start. {export.error}")
            else:
                messages.success(request, f"Export {export.pk} requested.")
            return redirect("admin:audits_export_change", export.pk)
    return TemplateResponse(request, "admin/audits/export_new.html", _context(request, "New export", form=form))


def export_download(request: HttpRequest, export_id: int) -> FileResponse:
    """The finished file, to its requester (or a superuser) only; never served from a public URL."""
    _require(request, "audits.view_export")
    export = get_object_or_404(exports_visible_to(request.user), pk=export_id)
    # A file field without a name holds no file.
    file_name = export.file.name
    if export.status != JobStatus.DONE or not file_name:
        raise Http404("This export has no file (not finished, failed, or removed by the retention purge).")
    return FileResponse(
        export.file.open("rb"),
        as_attachment=True,
        filename=Path(file_name).name,
        content_type=EXPORT_CONTENT_TYPES[export.format],
    )


@require_http_methods(["GET", "POST"])
def bias_audit_new(request: HttpRequest) -> HttpResponse:
    """Ask for a bias audit of a model the user may audit; a Celery task runs it and its page shows the report."""
    _require(request, "audits.add_biasaudit")
    fields = ("model", "population", "version", "since", "until")
    initial: dict[str, str | list[str]] = {key: request.GET[key] for key in fields if request.GET.get(key)}
    if request.GET.getlist("sensitive_attributes"):
        initial["sensitive_attributes"] = request.GET.getlist("sensitive_attributes")
    form = BiasAuditRequestForm(request.POST or None, initial=initial, models=ml_models_auditable_by(request.user))
    if request.method == "POST" and form.is_valid():
        since, until = form.period()
        try:
            audit = bias_audit_request(
                actor=authenticated_user(request),
                model=form.cleaned_data["model"],
                population=form.cleaned_data["population"],
                sensitive_attributes=form.cleaned_data["sensitive_attributes"],
                version=form.cleaned_data["version"],
                since=since,
                until=until,
            )
        except ValidationError as exc:
            for name, errors in exc.message_dict.items():
                form.add_error(name if name in form.fields else None, errors)
        else:
            if audit.status == AuditStatus.FAILED:
                messages.error(request, f"Bias audit {audit.pk} could not start. {audit.error}")
            else:
                messages.success(
                    request, f"Bias audit {audit.pk} queued: this page follows it until its report is ready."
                )
            return redirect("admin:audits_biasaudit_change", audit.pk)
    context = _context(request, "New bias audit", form=form)
    return TemplateResponse(request, "admin/audits/biasaudit/new.html", context)


def bias_audit_csv(request: HttpRequest, audit_id: int) -> HttpResponse:
    """A finished audit's figures as CSV: one row per scope, group and metric, and one per between-group figure."""
    _require(request, "audits.view_biasaudit")
    audit = bias_audit_with_figures(user=request.user, audit_id=audit_id)
    if audit is None:
        raise Http404("No such bias audit.")
    if audit.status != AuditStatus.SUCCEEDED:
        raise Http404("This audit has no figures: it has not finished, or it could not run.")
    thresholds, _ = bias_audit_run_settings(audit=audit)
    content = io.StringIO()
    csv_writer(content).writerows(bias_audit_csv_rows(audit=audit, policy_thresholds=thresholds))
    response = HttpResponse(content.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="bias-audit-{audit.pk}-{audit.model.name}.csv"'
    return response


@require_http_methods(["POST"])
def bias_audit_run_again(request: HttpRequest, audit_id: int) -> HttpResponse:
    """Queue an audit that could not run again, from the start."""
    _require(request, "audits.add_biasaudit")
    audit = bias_audits_readable_by(request.user).filter(pk=audit_id).first()
    if audit is None:
        raise Http404("No such bias audit.")
    try:
        audit = bias_audit_retry(audit=audit, actor=authenticated_user(request))
    except ValidationError as exc:
        messages.error(request, " ".join(message for errors in exc.message_dict.values() for message in errors))
    else:
        if audit.status == AuditStatus.FAILED:
            messages.error(request, f"Bias audit {audit.pk} could not start again. {audit.error}")
        else:
            messages.success(request, f"Bias audit {audit.pk} queued again.")
    return redirect("admin:audits_biasaudit_change", audit.pk)


@require_http_methods(["GET", "POST"])
def retraining_job_new(request: HttpRequest) -> HttpResponse:
    """Ask for a retraining of a model the user may retrain; a Celery task runs it and its page follows it."""
    _require(request, "audits.add_retrainingjob")
    initial = {"model": request.GET["model"]} if request.GET.get("model") else {}
    form = RetrainingRequestForm(request.POST or None, initial=initial, models=ml_models_retrainable_by(request.user))
    if request.method == "POST" and form.is_valid():
        try:
            job = retraining_request(actor=authenticated_user(request), **form.cleaned_data)
        except ValidationError as exc:
            for name, errors in exc.message_dict.items():
                form.add_error(name if name in form.fields else None, errors)
        except RetrainingConflict as exc:
            form.add_error("model", str(exc))
        else:
            if job.status == AuditStatus.FAILED:
                messages.error(request, f"Retraining job {job.pk} could not start. {job.error}")
            else:
                messages.success(request, f"Retraining job {job.pk} queued: this page follows it to its candidate.")
            return redirect("admin:audits_retrainingjob_change", job.pk)
    context = _context(request, "New retraining job", form=form)
    return TemplateResponse(request, "admin/audits/retrainingjob/new.html", context)
