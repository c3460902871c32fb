"""The console page of a model's auto-decide threshold recommendation, and "apply" as a person's change of its
routing policy (mounted by ``GovernanceAdminSite.get_urls``). Thin: the selector computes, the service applies."""

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods

from audits.selectors.threshold_recommendation import (
    CONFIDENCE_RANGE,
    TARGET_ERROR_RANGE,
    ModelThresholdRecommendation,
    threshold_recommendation_for,
)
from audits.services.threshold_recommendation import threshold_recommendation_apply
from audits.threshold_charts import ThresholdMarker, reliability_chart_svg
from audits.thresholds import DEFAULT_CONFIDENCE_LEVEL, DEFAULT_TARGET_ERROR_RATE, ConfidenceBand, OperatingPoint
from audits.views import _context, _require
from hitl_platform.types import authenticated_user
from models_registry.selectors import ml_models_readable_by
from reviews.forms import MAX_TEXT_LENGTH
from reviews.routing import format_number, format_probability, format_rate
from reviews.selectors.policies import routing_policy_effective

PARAMETERS = ("target_error", "confidence")
VIEW_PERMISSION = "reviews.view_routingpolicy"
CHANGE_PERMISSION = "reviews.change_routingpolicy"


class ThresholdParametersForm(forms.Form):
    """The error rate not to exceed and how sure its bound must be, as fractions like the API's parameters."""

    target_error = forms.FloatField(
        label="Target error rate",
        min_value=TARGET_ERROR_RANGE[0],
        max_value=TARGET_ERROR_RANGE[1],
        initial=DEFAULT_TARGET_ERROR_RATE,
        required=False,
        help_text="Of automatic decisions, as a fraction: 0.02 is 2%.",
    )
    confidence = forms.FloatField(
        label="Confidence level",
        min_value=CONFIDENCE_RANGE[0],
        max_value=CONFIDENCE_RANGE[1],
        initial=DEFAULT_CONFIDENCE_LEVEL,
        required=False,
        help_text="Of the upper bound on that error rate: 0.95 is 95%.",
    )

    def clean(self):
        data = super().clean()
        # A parameter left out keeps its default, as in the API.
        for name in PARAMETERS:
            if data.get(name) is None and name not in self.errors:
                data[name] = self.fields[name].initial
        return data


class ThresholdApplyForm(forms.Form):
    """Apply the recommendation shown: its parameters and threshold travel as hidden fields, the reason is typed."""

    target_error = forms.FloatField(widget=forms.HiddenInput)
    confidence = forms.FloatField(widget=forms.HiddenInput)
    expected_threshold = forms.FloatField(widget=forms.HiddenInput, min_value=0, max_value=1)
    reason = forms.CharField(
        label="Reason for applying it",
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=MAX_TEXT_LENGTH,
        strip=True,
        help_text="Recorded in the routing policy's history and in the ledger, with the recommendation it came from.",
        error_messages={"required": "Give a reason: every change of a routing policy is recorded with one."},
    )


@dataclass(frozen=True)
class ComparisonRow:
    """One line of the current-versus-recommended table."""

    label: str
    current: str
    recommended: str
    element_id: str


def _percent(rate: float | None) -> str:
    if rate is None:
        return "unknown"
    decimals = 2 if 0 < rate < 0.01 else 1
    return f"{rate * 100:.{decimals}f}".rstrip("0").rstrip(".") + "%"


def _per_day(value: float) -> str:
    return format_number(round(value, 1))


def _operating_point_cells(point: OperatingPoint | None, *, confidence_level: float) -> list[str]:
    if point is None:
        return ["none"] * 6
    if point.n:
        errors = (
            f"{_percent(point.error_rate)}, at most {_percent(point.error_upper_bound)} at "
            f"{format_rate(confidence_level)} confidence ({point.errors:,} errors in {point.n:,} labelled cases)"
        )
    else:
        errors = "unknown: no labelled case at or above it"
    return [
        format_probability(point.threshold),
        _percent(point.automation_rate) + (" of recent cases" if point.automation_rate is not None else ""),
        errors,
        f"{_per_day(point.review_cases_per_day)} cases a day to review, {_per_day(point.reviews_needed_per_day)} "
        f"reviews, against {_per_day(point.reviewer_capacity_per_day)} reviews a day done",
        point.workload_sentence[:1].upper() + point.workload_sentence[1:] + ".",
        _per_day(point.cases_per_day),
    ]


def comparison_rows(result: ModelThresholdRecommendation) -> list[ComparisonRow]:
    """The table of the page: the current and the recommended threshold, figure by figure."""
    level = result.recommendation.confidence_level
    current = _operating_point_cells(result.recommendation.current, confidence_level=level)
    recommended = _operating_point_cells(result.recommendation.recommended, confidence_level=level)
    labels = (
        ("Auto-decide threshold", "threshold"),
        ("Decided automatically", "automation"),
        ("Error rate of automatic decisions", "error-rate"),
        ("Review load", "review-load"),
        ("Queue", "queue"),
        ("Cases received a day", "intake"),
    )
    return [
        ComparisonRow(label=label, current=now, recommended=then, element_id=f"compare-{element_id}")
        for (label, element_id), now, then in zip(labels, current, recommended, strict=True)
    ]


@dataclass(frozen=True)
class BandRow:
    """One band of the table beside the reliability chart, in words."""

    confidence: str
    n: int
    errors: int
    mean_confidence: str
    accuracy: str
    error_upper_bound: str


def band_rows(bands: Sequence[ConfidenceBand]) -> list[BandRow]:
    """The bands that hold labelled cases, lowest confidence first."""
    return [
        BandRow(
            confidence=f"{format_probability(band.lower)} to {format_probability(band.upper)}",
            n=band.n,
            errors=band.errors,
            mean_confidence=f"{band.mean_confidence:.3f}",
            accuracy=_percent(band.accuracy),
            error_upper_bound=_percent(band.error_upper_bound),
        )
        for band in bands
        if band.n and band.mean_confidence is not None
    ]


def _page_url(model_id: int, *, target_error: float, confidence_level: float) -> str:
    query = urlencode({"target_error": repr(target_error), "confidence": repr(confidence_level)})
    return f"{reverse('admin:threshold_recommendation', args=[model_id])}?{query}"


@require_http_methods(["GET", "POST"])
def threshold_recommendation_page(request: HttpRequest, model_id: int) -> HttpResponse:
    """The recommended auto-decide threshold for the target and confidence asked, the current and recommended
    operating points, the reliability chart; POST applies the recommendation, with a reason."""
    _require(request, VIEW_PERMISSION)
    model = ml_models_readable_by(request.user).filter(pk=model_id).first()
    if model is None:
        raise Http404("No such model.")
    may_apply = request.user.has_perm(CHANGE_PERMISSION)

    apply_form = ThresholdApplyForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if not may_apply:
            raise PermissionDenied
        parameters = ThresholdParametersForm({name: request.POST.get(name, "") for name in PARAMETERS})
        if apply_form.is_valid():
            data = apply_form.cleaned_data
            was = routing_policy_effective(model.pk).auto_decide_threshold
            try:
                policy = threshold_recommendation_apply(
                    actor=authenticated_user(request),
                    model=model,
                    target_error=data["target_error"],
                    confidence_level=data["confidence"],
                    reason=data["reason"],
                    expected_threshold=data["expected_threshold"],
                )
            except ValidationError as exc:
                for name, errors in exc.message_dict.items():
                    apply_form.add_error(name if name == "reason" else None, errors)
            else:
                messages.success(
                    request,
                    f"The auto-decide threshold of {model.name} is now "
                    f"{format_probability(policy.auto_decide_threshold)} (it was {format_probability(was)}); "
                    "the change is in the routing policy's history and the ledger, with your reason.",
                )
                return redirect(
                    _page_url(model.pk, target_error=data["target_error"], confidence_level=data["confidence"])
                )
    else:
        given = any(name in request.GET for name in PARAMETERS)
        parameters = ThresholdParametersForm(request.GET if given else None)

    result = None
    if not parameters.is_bound:
        result = threshold_recommendation_for(model=model)
    elif parameters.is_valid():
        result = threshold_recommendation_for(
            model=model,
            target_error=parameters.cleaned_data["target_error"],
            confidence_level=parameters.cleaned_data["confidence"],
        )
    context = {
        "model": model,
        "parameters": parameters,
        "may_apply": may_apply,
        "apply_errors": _apply_errors(apply_form),
    }
    if result is not None:
        context |= _recommendation_context(result, apply_form=apply_form if may_apply else None)
    title = f"Auto-decide threshold recommendation: {model.name}"
    return TemplateResponse(request, "admin/audits/threshold_recommendation.html", _context(request, title, **context))


def _apply_errors(form: ThresholdApplyForm) -> list[str]:
    """What stopped an "apply": the service's refusal, and problems with the hidden fields, which show nowhere else."""
    if not form.is_bound:
        return []
    hidden = [f"{field.name}: {error}" for field in form.hidden_fields() for error in field.errors]
    return [*form.non_field_errors(), *hidden]


def _recommendation_context(result: ModelThresholdRecommendation, *, apply_form: ThresholdApplyForm | None) -> dict:
    recommendation = result.recommendation
    current = format_probability(result.current_threshold)
    markers = [ThresholdMarker(result.current_threshold, f"current {current}", "current")]
    # A recommendation that changes the policy has a threshold; one that does not is not offered.
    offered_threshold = result.recommended_threshold if result.changes_the_policy else None
    if offered_threshold is not None:
        recommended = format_probability(offered_threshold)
        markers.append(ThresholdMarker(offered_threshold, f"recommended {recommended}", "recommended"))
    model = result.inputs.model
    chart = reliability_chart_svg(
        chart_id=f"reliability-{model.pk}",
        title=f"Reliability of {model.name}: observed accuracy against confidence, per band of labelled cases",
        bands=recommendation.bands,
        confidence_level=recommendation.confidence_level,
        markers=markers,
    )
    return {
        "recommendation": recommendation,
        "inputs": result.inputs,
        "rows": comparison_rows(result),
        "bands": band_rows(recommendation.bands),
        "recommended_words": format_probability(offered_threshold) if offered_threshold is not None else "",
        "confidence_words": format_rate(recommendation.confidence_level),
        "qa_sample_words": format_rate(result.inputs.policy.qa_sample_rate),
        "intake_words": _per_day(recommendation.current.cases_per_day),
        "capacity_words": _per_day(result.inputs.reviewer_capacity_per_day),
        "reliability_svg": mark_safe(chart),  # built by audits.threshold_charts, which escapes every label
        "apply_form": apply_form if result.changes_the_policy else None,
        # The hidden fields carry exactly what the page shows (repr round-trips a float), never a form's old values.
        "target_error_value": repr(recommendation.target_error_rate),
        "confidence_value": repr(recommendation.confidence_level),
        "expected_threshold_value": repr(result.recommended_threshold),
    }
