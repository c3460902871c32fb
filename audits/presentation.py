"""A bias audit as its report: the console page's figures, sentences, charts and CSV rows, from the stored result.

Pure shaping of an audit row and the JSON ``BiasAudit.result`` holds (``AuditResult.as_dict()``, or for the
amplification population ``AmplificationResult.as_dict()`` with ``reviewer_overrides``); the database reads are
``audits.selectors.bias_audit_report``'s. Nothing is recomputed here: every figure is the one sealed in the ledger.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from audits.bias_charts import (
    JUDGED,
    MISSING,
    TOO_SMALL,
    Bar,
    PairedBar,
    ThresholdLine,
    dot_whisker_svg,
    group_bars_svg,
    paired_bars_svg,
    percent,
    ratio_trend_svg,
)
from audits.choices import AuditPopulation, AuditStatus, AuditTrigger, AuditVerdict, DriftVerdict
from audits.fairness import (
    DEMOGRAPHIC_PARITY_DIFFERENCE,
    DEMOGRAPHIC_PARITY_RATIO,
    EQUAL_OPPORTUNITY_DIFFERENCE,
    EQUAL_OPPORTUNITY_RATIO,
    EQUALIZED_ODDS_DIFFERENCE,
    EQUALIZED_ODDS_RATIO,
    FALSE_POSITIVE_RATE,
    TRUE_POSITIVE_RATE,
)
from audits.models import BiasAudit, DecisionEvent, DriftCheck
from audits.selectors.bias_audits import ModelAuditStanding

# (name, what it measures); "{positive}" is the model's favourable label.
METRIC_WORDS = {
    DEMOGRAPHIC_PARITY_RATIO: ("Demographic parity ratio", "lowest {positive} rate divided by the highest"),
    DEMOGRAPHIC_PARITY_DIFFERENCE: ("Demographic parity difference", "highest {positive} rate minus the lowest"),
    EQUALIZED_ODDS_DIFFERENCE: ("Equalized odds difference", "largest gap in true or false positive rates"),
    EQUALIZED_ODDS_RATIO: ("Equalized odds ratio", "smallest ratio of true or false positive rates"),
    EQUAL_OPPORTUNITY_DIFFERENCE: ("Equal opportunity difference", "gap in true positive rates"),
    EQUAL_OPPORTUNITY_RATIO: ("Equal opportunity ratio", "lowest true positive rate divided by the highest"),
}
POPULATION_WORDS: dict[str, str] = {
    AuditPopulation.MODEL: "The model's own labels, against the reported outcome (else the final label of a case "
    "humans decided).",
    AuditPopulation.DECISIONS: "The final decisions, against the reported outcome.",
    AuditPopulation.REVIEWERS: "Every reviewer's current label, against the outcome (else a gold case's gold label); "
    "all reviewers together, then each on their own.",
    AuditPopulation.AMPLIFICATION: "The cases humans decided: the model's label beside the final label, and each "
    "reviewer's label beside the model's. Does review narrow or widen the gaps?",
}
# (result key, chart title, whether it needs a known outcome) of the per-group bar charts.
GROUP_CHARTS = (
    ("selection_rate", "{positive} rate (selection rate)", False),
    (TRUE_POSITIVE_RATE, "True positive rate", True),
    (FALSE_POSITIVE_RATE, "False positive rate", True),
    ("accuracy", "Accuracy", True),
)
GROUP_METRICS = (
    "selection_rate",
    "accuracy",
    TRUE_POSITIVE_RATE,
    FALSE_POSITIVE_RATE,
    "false_negative_rate",
    "precision",
)
DIRECTION_WORDS = {
    "narrowed": ("Review narrowed the gap", "verdict-passed"),
    "widened": ("Review widened the gap", "verdict-failed"),
    "unchanged": ("Review left the gap unchanged", "verdict-unjudged"),
    None: ("Not judged", "verdict-unjudged"),
}
CSV_COLUMNS = (
    "audit",
    "section",
    "reviewer",
    "scope",
    "group",
    "metric",
    "value",
    "interval_low",
    "interval_high",
    "threshold",
    "verdict",
    "cases",
    "cases_with_known_outcome",
    "too_small_to_judge",
    "summary",
)


@dataclass(frozen=True)
class Fact:
    """One line of "what was audited": its label, its text, and optionally a link or a monospaced value."""

    label: str
    text: str
    url: str = ""
    code: bool = False
    element_id: str = ""


@dataclass(frozen=True)
class GroupRow:
    label: str
    count: int
    count_with_ground_truth: int
    rates: dict[str, str]
    too_small: bool
    too_small_error_rates: bool
    notes: list[str]


@dataclass(frozen=True)
class BetweenRow:
    metric: str
    name: str
    meaning: str
    value: str
    interval: str
    threshold: str
    verdict: str
    verdict_class: str
    summary: str
    figure: SafeString
    groups_left_out: list[str]
    notes: list[str]


@dataclass(frozen=True)
class Chart:
    title: str
    svg: SafeString


@dataclass(frozen=True)
class ScopeReport:
    name: str
    heading: str
    intersectional: bool
    groups: list[GroupRow]
    between: list[BetweenRow]
    charts: list[Chart]
    notes: list[str]


@dataclass(frozen=True)
class AmplificationGroupRow:
    label: str
    count: int
    before: str
    after: str
    change: str
    too_small: bool


@dataclass(frozen=True)
class AmplificationScopeReport:
    name: str
    heading: str
    groups: list[AmplificationGroupRow]
    ratio_before: str
    ratio_after: str
    difference_before: str
    difference_after: str
    direction: str
    direction_class: str
    below_limit: bool
    summary: str
    chart: SafeString
    groups_left_out: list[str]


@dataclass(frozen=True)
class OverrideRow:
    reviewer: str
    scope: str
    group: str
    reviews: int
    withdrawn: str
    granted: str
    net: str
    direction: str
    direction_class: str
    summary: str


@dataclass(frozen=True)
class ReviewerRow:
    reviewer: str
    verdict: str
    verdict_class: str
    scope: str
    parity_ratio: str
    parity_verdict: str
    parity_class: str
    odds_difference: str
    odds_verdict: str
    odds_class: str
    groups: str


@dataclass(frozen=True)
class BiasAuditReport:
    """Everything the audit's page shows, in the order it shows it."""

    audit: BiasAudit
    state: str
    verdict_words: str
    verdict_class: str
    summary: list[str]
    facts: list[Fact]
    in_progress: bool
    progress: int
    may_retry: bool
    audit_again_url: str
    has_figures: bool
    positive_label: str
    scopes: list[ScopeReport] = field(default_factory=list)
    amplification: list[AmplificationScopeReport] = field(default_factory=list)
    overrides: list[OverrideRow] = field(default_factory=list)
    reviewers: list[ReviewerRow] = field(default_factory=list)


def _verdict_class(verdict: str | None) -> str:
    return {"passed": "verdict-passed", "failed": "verdict-failed"}.get(verdict or "", "verdict-unjudged")


def _moment(value: datetime | None) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _figure(value: float | None, *, is_ratio: bool) -> str:
    if value is None:
        return "n/a"
    return percent(value) if is_ratio else f"{value:.2f}"


def _threshold_words(metric: str, threshold: float | None) -> str:
    if threshold is None:
        return "none set"
    if metric.endswith("_ratio"):
        rule = " (the four-fifths rule)" if metric == DEMOGRAPHIC_PARITY_RATIO and threshold == 0.8 else ""
        return f"at least {percent(threshold)}{rule}"
    return f"at most {threshold:.2f}"


def _period_words(since: datetime | None, until: datetime | None) -> str:
    if since and until:
        return f"Cases received from {_moment(since)} up to (not including) {_moment(until)}"
    if since:
        return f"Cases received from {_moment(since)} on"
    if until:
        return f"Cases received before {_moment(until)}"
    return "Every case, whenever received"


def _thresholds_words(thresholds: Mapping[str, Any] | None) -> str:
    if not thresholds:
        return "As the model's audit policy says when the audit runs"
    judged = [
        f"{METRIC_WORDS[metric][0].lower()} {_threshold_words(metric, thresholds.get(key))}"
        for key in thresholds
        if thresholds.get(key) is not None
        for metric in [key.rsplit("_", 1)[0]]
        if metric in METRIC_WORDS
    ]
    return "; ".join(judged) or "None: figures are reported, not judged"


def _cases_words(audit: BiasAudit, result: Mapping[str, Any] | None) -> str:
    if audit.case_count is None:
        return "Counted when the audit runs"
    known = (result or {}).get("count_with_ground_truth")
    if audit.population == AuditPopulation.AMPLIFICATION:
        return f"{audit.case_count} cases decided by humans"
    if audit.population == AuditPopulation.REVIEWERS:
        return f"{audit.case_count} reviews, {known} of them with a known outcome or gold label"
    return f"{audit.case_count} cases, {known} of them with a known outcome"


def audit_again_url(audit: BiasAudit) -> str:
    """The new-audit page, filled in with this audit's scope."""
    query: dict[str, Any] = {
        "model": audit.model_id,
        "population": audit.population,
        "sensitive_attributes": list(audit.sensitive_attributes),
    }
    if audit.version is not None:
        query["version"] = audit.version.number
    if audit.since:
        query["since"] = timezone.localtime(audit.since).date().isoformat()
    if audit.until:
        # ``until`` is exclusive; the form asks for the last day included.
        query["until"] = timezone.localtime(audit.until - timedelta(microseconds=1)).date().isoformat()
    return f"{reverse('admin:bias_audit_new')}?{urlencode(query, doseq=True)}"


def _facts(
    audit: BiasAudit,
    result: Mapping[str, Any] | None,
    *,
    thresholds: Mapping[str, Any] | None,
    min_group_size: int | None,
    finished_event: DecisionEvent | None,
    may_view_ledger: bool,
) -> list[Fact]:
    model = audit.model
    version = (
        f"Version {audit.version.number} ({audit.version.get_stage_display().lower()})"
        if audit.version is not None
        else "Every version"
    )
    trigger = AuditTrigger(audit.trigger).label
    trigger_url = ""
    if audit.promotion_request_id:
        trigger += f" (promotion request {audit.promotion_request_id})"
        trigger_url = reverse("admin:models_registry_promotionrequest_change", args=[audit.promotion_request_id])
    intervals = "Not computed"
    if result and result.get("bootstrap_samples"):
        intervals = (
            f"{percent(result['confidence_level'])} percentile bootstrap, {result['bootstrap_samples']} resamples "
            f"of the case counts (seed {result['seed']})"
        )
    attributes = ", ".join(audit.sensitive_attributes)
    if len(audit.sensitive_attributes) > 1:
        attributes += " (each alone, then all together)"
    facts = [
        Fact("Model", model.name, url=reverse("admin:models_registry_mlmodel_change", args=[model.pk])),
        Fact("Version", version),
        Fact("Population", f"{AuditPopulation(audit.population).label}: {POPULATION_WORDS[audit.population]}"),
        Fact("Sensitive attributes", attributes),
        Fact("Period", _period_words(audit.since, audit.until)),
        Fact("Cases audited", _cases_words(audit, result), element_id="audit-case-count"),
        Fact("Favourable outcome", f"{model.positive_label} (the selection rate is the share given it)"),
        Fact("Thresholds", _thresholds_words(thresholds), element_id="audit-thresholds"),
        Fact(
            "Smallest group judged",
            f"{min_group_size} cases; smaller groups are shown but too small to judge"
            if min_group_size
            else "As the model's audit policy says when the audit runs",
        ),
        Fact("Confidence intervals", intervals),
        Fact("Trigger", trigger, url=trigger_url),
        Fact("Requested by", audit.requested_by.get_username() if audit.requested_by is not None else "The platform"),
        Fact("Requested", _moment(audit.created_at)),
        Fact("Started", _moment(audit.started_at)),
        Fact("Finished", _moment(audit.finished_at)),
        Fact("Runs started", str(audit.attempts)),
        Fact("Inputs (SHA-256)", audit.inputs_sha256 or "Not sealed yet", code=bool(audit.inputs_sha256)),
    ]
    if finished_event is None:
        facts.append(Fact("Ledger event", "None yet: sealed when the audit finishes", element_id="audit-ledger"))
    else:
        facts.append(
            Fact(
                "Ledger event",
                f"#{finished_event.pk} {finished_event.event_type}, {_moment(finished_event.created_at)}",
                url=reverse("admin:audits_decisionevent_change", args=[finished_event.pk]) if may_view_ledger else "",
                element_id="audit-ledger",
            )
        )
    return facts


def _group_row(group: Mapping[str, Any]) -> GroupRow:
    return GroupRow(
        label=group["label"],
        count=group["count"],
        count_with_ground_truth=group["count_with_ground_truth"],
        rates={metric: percent(group.get(metric)) for metric in GROUP_METRICS},
        too_small=group["too_small_to_judge"],
        too_small_error_rates=group["too_small_to_judge_error_rates"],
        notes=list(group.get("notes") or []),
    )


def _bar(group: Mapping[str, Any], metric: str, needs_truth: bool) -> Bar:
    small = group["too_small_to_judge_error_rates"] if needs_truth else group["too_small_to_judge"]
    size = f"{group['count_with_ground_truth']} with a known outcome" if needs_truth else f"{group['count']} cases"
    value = group.get(metric)
    if value is None:
        return Bar(group["label"], None, MISSING, "no case with a known outcome")
    return Bar(group["label"], value, TOO_SMALL if small else JUDGED, size + (", too small to judge" if small else ""))


def _threshold_line(metric: str, bars: list[Bar], thresholds: Mapping[str, Any]) -> ThresholdLine | None:
    judged = [bar.value for bar in bars if bar.state == JUDGED and bar.value is not None]
    if len(judged) < 2:
        return None
    if metric == "selection_rate":
        ratio = thresholds.get("demographic_parity_ratio_min")
        if ratio is None:
            return None
        highest = max(judged)
        share = "four-fifths" if ratio == 0.8 else percent(ratio)
        return ThresholdLine(
            ratio * highest, f"{share} of the highest rate ({percent(highest)}): {percent(ratio * highest)}"
        )
    gap = thresholds.get("equalized_odds_difference_max")
    if gap is None:
        return None
    if metric == TRUE_POSITIVE_RATE:
        highest = max(judged)
        return ThresholdLine(highest - gap, f"the highest minus {gap:.2f}: {percent(highest - gap)}")
    if metric == FALSE_POSITIVE_RATE:
        lowest = min(judged)
        return ThresholdLine(lowest + gap, f"the lowest plus {gap:.2f}: {percent(lowest + gap)}")
    return None


def _between_row(metric: Mapping[str, Any], *, chart_id: str, positive: str) -> BetweenRow:
    name, meaning = METRIC_WORDS[metric["metric"]]
    is_ratio = metric["metric"].endswith("_ratio")
    interval = metric.get("interval")
    verdict_class = _verdict_class(metric["verdict"])
    return BetweenRow(
        metric=metric["metric"],
        name=name,
        meaning=meaning.format(positive=positive),
        value=_figure(metric["value"], is_ratio=is_ratio),
        interval=(
            f"{_figure(interval[0], is_ratio=is_ratio)} to {_figure(interval[1], is_ratio=is_ratio)}"
            if interval
            else "not computed"
        ),
        threshold=_threshold_words(metric["metric"], metric["threshold"]),
        verdict=metric["verdict"],
        verdict_class=verdict_class,
        summary=metric["summary"],
        # built by audits.bias_charts, which escapes every label
        figure=mark_safe(
            dot_whisker_svg(
                chart_id=chart_id,
                title=f"{name}: {_figure(metric['value'], is_ratio=is_ratio)} against {metric['threshold']}",
                value=metric["value"],
                interval=tuple(interval) if interval else None,
                threshold=metric["threshold"],
                at_least=is_ratio,
                verdict_class=verdict_class,
            )
        ),
        groups_left_out=list(metric.get("groups_left_out") or []),
        notes=list(metric.get("notes") or []),
    )


def _scope_report(scope: Mapping[str, Any], *, index: int, audit_id: int, result: Mapping[str, Any]) -> ScopeReport:
    positive = str(result.get("positive_label"))
    thresholds = result.get("thresholds") or {}
    prefix = f"audit-{audit_id}-scope-{index}"
    charts = []
    for metric, title, needs_truth in GROUP_CHARTS:
        bars = [_bar(group, metric, needs_truth) for group in scope["groups"]]
        words = title.format(positive=positive)
        words = words[:1].upper() + words[1:]
        svg = group_bars_svg(
            chart_id=f"{prefix}-{metric}",
            title=f"{words} per group, across {scope['name']}",
            bars=bars,
            threshold=_threshold_line(metric, bars, thresholds),
        )
        charts.append(Chart(words, mark_safe(svg)))  # built by audits.bias_charts, which escapes every label
    return ScopeReport(
        name=scope["name"],
        heading=f"Across {scope['name']}" + (" (intersection)" if scope["intersectional"] else ""),
        intersectional=scope["intersectional"],
        groups=[_group_row(group) for group in scope["groups"]],
        between=[
            _between_row(metric, chart_id=f"{prefix}-{metric['metric']}-figure", positive=positive)
            for metric in scope["between_groups"]
        ],
        charts=charts,
        notes=list(scope.get("notes") or []),
    )


def _amplification_report(
    scope: Mapping[str, Any], *, index: int, audit_id: int, limit: float | None
) -> AmplificationScopeReport:
    groups = scope["groups"]
    judged_after = [g["final_selection_rate"] for g in groups if not g["too_small_to_judge"]]
    line = None
    if limit is not None and len(judged_after) >= 2:
        highest = max(judged_after)
        line = ThresholdLine(
            limit * highest, f"{percent(limit)} of the highest after review: {percent(limit * highest)}"
        )
    chart = paired_bars_svg(
        chart_id=f"audit-{audit_id}-amplification-{index}",
        title=f"Selection rate before and after review, across {scope['name']}",
        bars=[
            PairedBar(
                g["label"],
                g["model_selection_rate"],
                g["final_selection_rate"],
                g["too_small_to_judge"],
                f"{g['count']} cases" + (", too small to judge" if g["too_small_to_judge"] else ""),
            )
            for g in groups
        ],
        before_label="the model's label",
        after_label="after review",
        threshold=line,
    )
    direction, direction_class = DIRECTION_WORDS[scope.get("direction")]
    ratio_after = scope.get("ratio_after")
    return AmplificationScopeReport(
        name=scope["name"],
        heading=f"Across {scope['name']}" + (" (intersection)" if scope["intersectional"] else ""),
        groups=[
            AmplificationGroupRow(
                label=g["label"],
                count=g["count"],
                before=percent(g["model_selection_rate"]),
                after=percent(g["final_selection_rate"]),
                change=f"{(g['final_selection_rate'] - g['model_selection_rate']) * 100:+.1f} pp",
                too_small=g["too_small_to_judge"],
            )
            for g in groups
        ],
        ratio_before=_figure(scope.get("ratio_before"), is_ratio=True),
        ratio_after=_figure(ratio_after, is_ratio=True),
        difference_before=_figure(scope.get("difference_before"), is_ratio=False),
        difference_after=_figure(scope.get("difference_after"), is_ratio=False),
        direction=direction,
        direction_class=direction_class,
        below_limit=limit is not None and ratio_after is not None and ratio_after < limit,
        summary=scope["summary"],
        chart=mark_safe(chart),  # built by audits.bias_charts, which escapes every label
        groups_left_out=list(scope.get("groups_left_out") or []),
    )


def _count_and_rate(count: int, total: int, rate: float | None) -> str:
    return f"{count} of {total} ({percent(rate)})"


def _override_rows(reviewers: list[Mapping[str, Any]], positive: str) -> list[OverrideRow]:
    classes = {"towards positive": "verdict-passed", "away from positive": "verdict-failed"}
    return [
        OverrideRow(
            reviewer=str(reviewer["reviewer"]),
            scope=scope,
            group=group["label"],
            reviews=group["reviews"],
            withdrawn=_count_and_rate(
                group["positive_to_negative"], group["model_positive"], group["positive_to_negative_rate"]
            ),
            granted=_count_and_rate(
                group["negative_to_positive"], group["model_negative"], group["negative_to_positive_rate"]
            ),
            net=f"{group['net_selection_change'] * 100:+.1f} pp",
            direction=group["direction"].replace("positive", positive),
            direction_class=classes.get(group["direction"], "verdict-unjudged"),
            summary=group["summary"],
        )
        for reviewer in reviewers
        for scope, groups in reviewer["scopes"].items()
        for group in groups
    ]


def _reviewer_rows(by_reviewer: Mapping[str, Any]) -> list[ReviewerRow]:
    rows = []
    for reviewer, own in by_reviewer.items():
        for scope in own["scopes"]:
            figures = {metric["metric"]: metric for metric in scope["between_groups"]}
            parity, odds = figures[DEMOGRAPHIC_PARITY_RATIO], figures[EQUALIZED_ODDS_DIFFERENCE]
            rows.append(
                ReviewerRow(
                    reviewer=str(reviewer),
                    verdict=own["verdict"],
                    verdict_class=_verdict_class(own["verdict"]),
                    scope=scope["name"],
                    parity_ratio=_figure(parity["value"], is_ratio=True),
                    parity_verdict=parity["verdict"],
                    parity_class=_verdict_class(parity["verdict"]),
                    odds_difference=_figure(odds["value"], is_ratio=False),
                    odds_verdict=odds["verdict"],
                    odds_class=_verdict_class(odds["verdict"]),
                    groups="; ".join(
                        f"{g['label']}: {percent(g['selection_rate'])} of {g['count']}" for g in scope["groups"]
                    ),
                )
            )
    return rows


def _state(audit: BiasAudit) -> tuple[str, str, str]:
    """(state, verdict in words, CSS class) of the audit as it stands."""
    if audit.status == AuditStatus.SUCCEEDED and audit.verdict:
        return audit.verdict, AuditVerdict(audit.verdict).label, _verdict_class(audit.verdict)
    if audit.status == AuditStatus.FAILED:
        return "error", "Could not run", "verdict-error"
    if audit.status == AuditStatus.RUNNING:
        return "running", f"Running: {audit.progress} % done", "verdict-pending"
    return "queued", "Queued: waiting for a worker", "verdict-pending"


def bias_audit_report_build(
    *,
    audit: BiasAudit,
    finished_event: DecisionEvent | None,
    policy_thresholds: Mapping[str, Any] | None,
    policy_min_group_size: int | None,
    may_retry: bool,
    may_view_ledger: bool,
) -> BiasAuditReport:
    """The report of ``audit`` (with its result loaded, its model, version and requester joined).

    ``policy_thresholds``/``policy_min_group_size``: the settings the run used, for a result that does not carry
    them (amplification keeps them in its inputs only); None before the run.
    """
    result = audit.result if audit.status == AuditStatus.SUCCEEDED else None
    thresholds = (result or {}).get("thresholds") or policy_thresholds
    min_group_size = (result or {}).get("min_group_size") or policy_min_group_size
    state, words, css = _state(audit)
    positive = str((result or {}).get("positive_label", audit.model.positive_label))
    report = BiasAuditReport(
        audit=audit,
        state=state,
        verdict_words=words,
        verdict_class=css,
        summary=list(audit.summary or []),
        facts=_facts(
            audit,
            result,
            thresholds=thresholds,
            min_group_size=min_group_size,
            finished_event=finished_event,
            may_view_ledger=may_view_ledger,
        ),
        in_progress=audit.status in (AuditStatus.QUEUED, AuditStatus.RUNNING),
        progress=audit.progress,
        may_retry=may_retry and audit.status == AuditStatus.FAILED,
        audit_again_url=audit_again_url(audit),
        has_figures=bool(result and result.get("scopes")),
        positive_label=positive,
    )
    if not result:
        return report
    if audit.population == AuditPopulation.AMPLIFICATION:
        limit = (thresholds or {}).get("demographic_parity_ratio_min")
        report.amplification.extend(
            _amplification_report(scope, index=index, audit_id=audit.pk, limit=limit)
            for index, scope in enumerate(result["scopes"])
        )
        report.overrides.extend(_override_rows(result.get("reviewer_overrides") or [], positive))
        return report
    report.scopes.extend(
        _scope_report(scope, index=index, audit_id=audit.pk, result=result)
        for index, scope in enumerate(result["scopes"])
    )
    report.reviewers.extend(_reviewer_rows(result.get("by_reviewer") or {}))
    return report


@dataclass
class DashboardAuditRow:
    """One model's line in the dashboard's bias-audit table."""

    model_name: str
    audit: BiasAudit | None
    verdict_words: str
    verdict_class: str
    population_words: str
    key_ratio: str
    trend_svg: SafeString
    drift_check: DriftCheck | None = None
    drift_words: str = "not checked yet"
    drift_class: str = "verdict-unjudged"


def _drift_words(check: DriftCheck | None) -> tuple[str, str]:
    if check is None:
        return "not checked yet", "verdict-unjudged"
    if check.verdict == DriftVerdict.DRIFTED:
        return f"drifted: {', '.join(check.drifted_features)} (PSI up to {check.max_psi:.2f})", "verdict-failed"
    if check.verdict == DriftVerdict.STABLE:
        return f"stable (PSI at most {check.max_psi:.2f})", "verdict-passed"
    return "not compared (too few recent cases)", "verdict-unjudged"


def _lowercase_article(words: str) -> str:
    return words[0].lower() + words[1:] if words.startswith("The ") else words


def dashboard_audit_rows(
    *,
    models: list[tuple[int, str]],
    standing: Mapping[int, ModelAuditStanding],
    drift: Mapping[int, DriftCheck],
) -> list[DashboardAuditRow]:
    """Each model's latest audit verdict, its key ratio's trend and its latest drift check, in the models' order;
    ``models``: (id, name)."""
    rows = []
    for model_id, name in models:
        audit_standing = standing.get(model_id)
        drift_words, drift_class = _drift_words(drift.get(model_id))
        drift_fields: dict[str, Any] = {
            "drift_check": drift.get(model_id),
            "drift_words": drift_words,
            "drift_class": drift_class,
        }
        if audit_standing is None:
            rows.append(
                DashboardAuditRow(
                    name, None, "Never audited", "verdict-unjudged", "", "\u2013", mark_safe(""), **drift_fields
                )
            )
            continue
        latest = audit_standing.latest
        points = [
            (f"audit {audit.pk}, {_moment(audit.finished_at)}", audit.key_ratio)
            for audit in audit_standing.trend
            if audit.key_ratio is not None
        ]
        trend = ratio_trend_svg(
            chart_id=f"audit-trend-{model_id}",
            title=f"{name}: lowest demographic parity ratio over its last {len(points)} audits of "
            f"{_lowercase_article(AuditPopulation(latest.population).label)}",
            points=points,
            threshold=audit_standing.parity_ratio_min,
        )
        rows.append(
            DashboardAuditRow(
                model_name=name,
                audit=latest,
                verdict_words=AuditVerdict(latest.verdict).label if latest.verdict else "No verdict",
                verdict_class=_verdict_class(latest.verdict),
                population_words=AuditPopulation(latest.population).label,
                key_ratio=f"{latest.key_ratio:.2f}" if latest.key_ratio is not None else "\u2013",
                trend_svg=mark_safe(trend) if points else mark_safe(""),  # built by bias_charts, which escapes
                **drift_fields,
            )
        )
    return rows


# CSV


def _fairness_rows(
    audit_id: int, scopes: list[Mapping[str, Any]], *, section: str, reviewer: str | None
) -> Iterator[list]:
    group_section, between_section = (section, f"{section} between groups") if section else ("group", "between groups")
    for scope in scopes:
        for group in scope["groups"]:
            for metric in GROUP_METRICS:
                small = (
                    group["too_small_to_judge"]
                    if metric == "selection_rate"
                    else group["too_small_to_judge_error_rates"]
                )
                yield [
                    audit_id,
                    group_section,
                    reviewer,
                    scope["name"],
                    group["label"],
                    metric,
                    group.get(metric),
                    None,
                    None,
                    None,
                    None,
                    group["count"],
                    group["count_with_ground_truth"],
                    small,
                    None,
                ]
        for metric in scope["between_groups"]:
            interval = metric.get("interval") or (None, None)
            compared = f"{metric['lowest_group']} vs {metric['highest_group']}" if metric["lowest_group"] else None
            yield [
                audit_id,
                between_section,
                reviewer,
                scope["name"],
                compared,
                metric["metric"],
                metric["value"],
                interval[0],
                interval[1],
                metric["threshold"],
                metric["verdict"],
                None,
                None,
                None,
                metric["summary"],
            ]


def _amplification_csv_rows(audit_id: int, result: Mapping[str, Any], limit: float | None) -> Iterator[list]:
    for scope in result["scopes"]:
        for group in scope["groups"]:
            for metric in ("model_selection_rate", "final_selection_rate"):
                yield [
                    audit_id,
                    "group",
                    None,
                    scope["name"],
                    group["label"],
                    metric,
                    group[metric],
                    None,
                    None,
                    None,
                    None,
                    group["count"],
                    None,
                    group["too_small_to_judge"],
                    None,
                ]
        for metric in ("ratio_before", "ratio_after", "difference_before", "difference_after"):
            threshold = limit if metric == "ratio_after" else None
            yield [
                audit_id,
                "between groups",
                None,
                scope["name"],
                None,
                f"demographic_parity_{metric}",
                scope.get(metric),
                None,
                None,
                threshold,
                scope.get("direction"),
                None,
                None,
                None,
                scope["summary"] if metric == "ratio_after" else None,
            ]
    for reviewer in result.get("reviewer_overrides") or []:
        for scope, groups in reviewer["scopes"].items():
            for group in groups:
                for metric in ("positive_to_negative", "negative_to_positive", "net_selection_change"):
                    yield [
                        audit_id,
                        "reviewer overrides",
                        reviewer["reviewer"],
                        scope,
                        group["label"],
                        metric,
                        group[metric],
                        None,
                        None,
                        None,
                        group["direction"],
                        group["reviews"],
                        None,
                        None,
                        group["summary"] if metric == "net_selection_change" else None,
                    ]


def bias_audit_csv_rows(*, audit: BiasAudit, policy_thresholds: Mapping[str, Any] | None = None) -> Iterator[list]:
    """The header, then one row per scope x group x metric and one per between-group figure (for the reviewers
    population each reviewer's own too; for amplification the rates before and after and every override)."""
    yield list(CSV_COLUMNS)
    result = audit.result if audit.status == AuditStatus.SUCCEEDED else None
    if not result:
        return
    if audit.population == AuditPopulation.AMPLIFICATION:
        yield from _amplification_csv_rows(
            audit.pk, result, (policy_thresholds or {}).get("demographic_parity_ratio_min")
        )
        return
    yield from _fairness_rows(audit.pk, result["scopes"], section="", reviewer=None)
    for reviewer, own in (result.get("by_reviewer") or {}).items():
        yield from _fairness_rows(audit.pk, own["scopes"], section="reviewer", reviewer=reviewer)
