"""A retraining job as its console page: the comparison table with better and worse marked, the fairness bars,
the snapshot in words. Pure shaping of the stored job; nothing is recomputed here."""

from dataclasses import dataclass, field
from typing import Any

from django.utils.safestring import SafeString, mark_safe

from audits.bias_charts import PairedBar, ThresholdLine, paired_bars_svg, percent
from audits.choices import AuditStatus
from audits.fairness import DEMOGRAPHIC_PARITY_RATIO, EQUALIZED_ODDS_DIFFERENCE
from audits.models import RetrainingJob

METRIC_WORDS = {
    "accuracy": "Accuracy",
    "f1": "F1 score",
    "roc_auc": "ROC AUC",
    "brier": "Brier score (lower is better)",
    DEMOGRAPHIC_PARITY_RATIO: "Demographic parity ratio",
    EQUALIZED_ODDS_DIFFERENCE: "Equalized odds difference (lower is better)",
}


@dataclass(frozen=True)
class ComparisonRow:
    label: str
    base: str
    candidate: str
    change: str
    change_class: str
    note: str = ""


@dataclass
class RetrainingReport:
    job: RetrainingJob
    state_words: str
    state_class: str
    in_progress: bool
    metrics: list[ComparisonRow] = field(default_factory=list)
    fairness: list[ComparisonRow] = field(default_factory=list)
    fairness_svg: SafeString = field(default_factory=lambda: mark_safe(""))
    label_balance: str = ""
    group_balance: list[str] = field(default_factory=list)


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _change(better: bool | None, base: float | None, candidate: float | None) -> tuple[str, str]:
    if base is None or candidate is None:
        return "not comparable", "hitl-unchanged"
    if better is None:
        return "unchanged", "hitl-unchanged"
    delta = candidate - base
    return (f"better ({delta:+.3f})", "hitl-better") if better else (f"worse ({delta:+.3f})", "hitl-worse")


def _state(job: RetrainingJob) -> tuple[str, str]:
    if job.status == AuditStatus.SUCCEEDED:
        candidate = job.candidate_version
        assert candidate is not None, "a job succeeds by registering its candidate"
        return f"Candidate version {candidate.number} is ready for a person to review", "verdict-passed"
    if job.status == AuditStatus.FAILED:
        return "Could not produce a candidate", "verdict-failed"
    if job.status == AuditStatus.RUNNING:
        return f"Running: {job.progress} % done", "verdict-pending"
    return "Queued: waiting for a worker", "verdict-pending"


def _balance(counts: dict[str, int]) -> str:
    total = sum(counts.values()) or 1
    return ", ".join(f"{name}: {count} ({count / total:.0%})" for name, count in counts.items())


def retraining_report_build(*, job: RetrainingJob) -> RetrainingReport:
    words, css = _state(job)
    report = RetrainingReport(
        job=job,
        state_words=words,
        state_class=css,
        in_progress=job.status in (AuditStatus.QUEUED, AuditStatus.RUNNING),
    )
    if job.snapshot:
        report.label_balance = _balance(job.snapshot.get("label_balance", {}))
        report.group_balance = [
            f"{attribute}: {_balance(groups)}" for attribute, groups in job.snapshot.get("group_balance", {}).items()
        ]
    comparison: dict[str, Any] = job.comparison or {}
    for row in comparison.get("metrics", []):
        change, change_class = _change(row["better"], row["base"], row["candidate"])
        report.metrics.append(
            ComparisonRow(
                METRIC_WORDS[row["metric"]], _number(row["base"]), _number(row["candidate"]), change, change_class
            )
        )
    bars = []
    for row in comparison.get("fairness", []):
        change, change_class = _change(row["better"], row["base"], row["candidate"])
        limit = "at least" if row["metric"] == DEMOGRAPHIC_PARITY_RATIO else "at most"
        report.fairness.append(
            ComparisonRow(
                f"{METRIC_WORDS[row['metric']]}, across {row['scope']}",
                f"{_number(row['base'])} ({row['base_verdict']})",
                f"{_number(row['candidate'])} ({row['candidate_verdict']})",
                change,
                change_class,
                note=f"{limit} {row['threshold']:g} required" if row["threshold"] is not None else "",
            )
        )
        if row["metric"] == DEMOGRAPHIC_PARITY_RATIO and row["base"] is not None and row["candidate"] is not None:
            bars.append(
                PairedBar(row["scope"], row["base"], row["candidate"], small=False, note=row["candidate_verdict"])
            )
    if bars:
        threshold = next(
            (r["threshold"] for r in comparison["fairness"] if r["metric"] == DEMOGRAPHIC_PARITY_RATIO), None
        )
        svg = paired_bars_svg(
            chart_id=f"retraining-{job.pk}-parity",
            title="Demographic parity ratio on the holdout, base and candidate",
            bars=bars,
            before_label=f"base v{job.base_version.number}",
            after_label="candidate",
            threshold=ThresholdLine(threshold, f"{percent(threshold)} required") if threshold is not None else None,
        )
        report.fairness_svg = mark_safe(svg)  # built by bias_charts, which escapes every label
    return report
