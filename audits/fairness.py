"""Bias audits: fairness metrics per group and between groups, with verdicts and plain-language summaries; and
whether human review narrows or widens the gaps. Pure computation: no Django.

Input is a table of cells, the GROUP BY of the audited cases: one row per (sensitive attribute values...,
y_true, y_pred) with a ``count`` column (an int > 0). ``y_true`` is None/NaN where the true outcome is unknown.
Labels are compared with ``positive_label`` (the favourable outcome): every other label counts as negative, so
multiclass models are audited on "favourable or not"; accuracy alone compares the labels themselves.

- Per-group figures come from ``fairlearn.metrics.MetricFrame`` over the cells with the counts as
  ``sample_weight``, and between-group figures from fairlearn's own functions with the same weights: the
  numbers are those of a plain MetricFrame over the cases themselves (tests check both agree to 1e-12).
  Figures needing y_true use only the cells where it is known, and say on how many cases they rest.
- Each attribute is audited alone, then all of them together (intersectional groups) when there are two or
  more; a scope is named by its attributes joined with " & " ("sex & age_band"), a group by its values
  ("sex = female, age_band = <25"), and every scope's checks count towards the overall verdict. A group with
  fewer than ``min_group_size`` cases (cases with a known outcome, for the error rates) is too small to judge:
  its figures are shown, but it is left out of the between-group figures.
- fairlearn's conventions on zero denominators are kept, and said in the notes: a group without a single
  actual positive gets a true positive rate of 0 (scikit-learn's confusion matrix turns 0/0 into 0), likewise
  the false positive rate of a group without actual negatives; a ratio whose largest rate is 0 is NaN (0/0),
  reported as None with the verdict "not computable: undefined".
- Confidence intervals are percentile intervals of a seeded bootstrap that redraws the cell counts
  (multinomial over the whole table with the observed shares and the same total: cases, never cells, are
  resampled). The bootstrap statistics are computed in numpy from counts; ``between_group_figures_from_counts``
  exposes those formulas at the observed counts, and the tests check they equal fairlearn's figures exactly.
"""

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass, replace
from enum import Enum, StrEnum
from typing import Any

import numpy as np
import pandas as pd
import sklearn.metrics as skm
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equal_opportunity_ratio,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)

Y_TRUE = "y_true"
Y_PRED = "y_pred"
COUNT = "count"
MODEL_LABEL = "model_label"
FINAL_LABEL = "final_label"
REVIEW_LABEL = "review_label"
REVIEWER = "reviewer"

DEMOGRAPHIC_PARITY_DIFFERENCE = "demographic_parity_difference"
DEMOGRAPHIC_PARITY_RATIO = "demographic_parity_ratio"
EQUALIZED_ODDS_DIFFERENCE = "equalized_odds_difference"
EQUALIZED_ODDS_RATIO = "equalized_odds_ratio"
EQUAL_OPPORTUNITY_DIFFERENCE = "equal_opportunity_difference"
EQUAL_OPPORTUNITY_RATIO = "equal_opportunity_ratio"
BETWEEN_GROUP_METRICS = (
    DEMOGRAPHIC_PARITY_DIFFERENCE,
    DEMOGRAPHIC_PARITY_RATIO,
    EQUALIZED_ODDS_DIFFERENCE,
    EQUALIZED_ODDS_RATIO,
    EQUAL_OPPORTUNITY_DIFFERENCE,
    EQUAL_OPPORTUNITY_RATIO,
)
_NEEDS_GROUND_TRUTH = frozenset(BETWEEN_GROUP_METRICS[2:])
TRUE_POSITIVE_RATE = "true_positive_rate"
FALSE_POSITIVE_RATE = "false_positive_rate"

_METRIC_WORDS = {
    DEMOGRAPHIC_PARITY_DIFFERENCE: "the demographic parity difference",
    DEMOGRAPHIC_PARITY_RATIO: "the demographic parity ratio",
    EQUALIZED_ODDS_DIFFERENCE: "the equalized odds difference",
    EQUALIZED_ODDS_RATIO: "the equalized odds ratio",
    EQUAL_OPPORTUNITY_DIFFERENCE: "the equal opportunity difference",
    EQUAL_OPPORTUNITY_RATIO: "the equal opportunity ratio",
}
# Rates are float quotients of counts: a ratio that is 4/5 exactly must pass a four-fifths rule.
_TOLERANCE = 1e-12
# Review "left a gap unchanged" when the ratios agree to half a percentage point, the precision of the sentence.
_UNCHANGED_RATIO = 0.005


class Verdict(StrEnum):
    """The verdict on one between-group metric against its threshold."""

    PASSED = "passed"
    FAILED = "failed"
    TOO_SMALL_TO_JUDGE = "too small to judge"
    NO_GROUND_TRUTH = "not computable: no ground truth"
    UNDEFINED = "not computable: undefined"
    NO_THRESHOLD = "not judged: no threshold"


class OverallVerdict(StrEnum):
    """Passed only if no judged metric failed and at least one was judged; failed if any failed."""

    PASSED = "passed"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"


class _AsDict:
    def as_dict(self) -> dict[str, Any]:
        """The result in plain JSON types (NaN as None, enums as their values, tuples as lists)."""
        return _plain(self)


@dataclass(frozen=True)
class Thresholds(_AsDict):
    """Limits per between-group metric: ratios must be at least ``*_min``, differences at most ``*_max``.

    None leaves a metric reported but not judged. The defaults are the four-fifths rule on selection rates and
    a 0.1 limit on the equalized odds difference.
    """

    demographic_parity_ratio_min: float | None = 0.8
    equalized_odds_difference_max: float | None = 0.1
    demographic_parity_difference_max: float | None = None
    equalized_odds_ratio_min: float | None = None
    equal_opportunity_difference_max: float | None = None
    equal_opportunity_ratio_min: float | None = None

    def __post_init__(self) -> None:
        for limit in fields(self):
            value = getattr(self, limit.name)
            if value is not None and not 0 <= value <= 1:
                raise ValueError(f"{limit.name} must lie between 0 and 1, not {value!r}.")

    def limit_of(self, metric: str) -> float | None:
        """The threshold of a metric (a minimum for ratios, a maximum for differences), or None."""
        return getattr(self, f"{metric}_min" if metric.endswith("_ratio") else f"{metric}_max")


@dataclass(frozen=True)
class GroupMetrics(_AsDict):
    """One group's figures. Those needing y_true rest on ``count_with_ground_truth`` cases and are None without.

    ``too_small_to_judge``: fewer than min_group_size cases, so left out of the selection-rate comparisons;
    ``too_small_to_judge_error_rates``: fewer than min_group_size cases with a known outcome, so left out of
    the error-rate comparisons (equalized odds, equal opportunity).
    """

    group: dict[str, Any]
    label: str
    count: int
    count_with_ground_truth: int
    actual_positives: int
    actual_negatives: int
    selection_rate: float
    accuracy: float | None
    true_positive_rate: float | None
    false_positive_rate: float | None
    false_negative_rate: float | None
    precision: float | None
    too_small_to_judge: bool
    too_small_to_judge_error_rates: bool
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BetweenGroupMetric(_AsDict):
    """One fairlearn between-group metric, the groups it came from, its interval, verdict and summary.

    ``lowest_group``/``highest_group`` hold the smallest and largest value of the underlying rate (the
    selection rate, or for equalized odds whichever of the true and false positive rates decided it, named
    in ``rate``); ties go to the first group in sorted order. ``interval`` is (low, high) at the audit's
    confidence level, None without bootstrap.
    """

    metric: str
    value: float | None
    rate: str
    lowest_group: str | None
    lowest_rate: float | None
    highest_group: str | None
    highest_rate: float | None
    interval: tuple[float, float] | None
    threshold: float | None
    verdict: Verdict
    summary: str
    groups_compared: list[str]
    groups_left_out: list[str]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ScopeResult(_AsDict):
    """The audit of one attribute, or of the intersection of all of them (``intersectional``)."""

    name: str
    attributes: list[str]
    intersectional: bool
    groups: list[GroupMetrics]
    between_groups: list[BetweenGroupMetric]
    notes: list[str]


@dataclass(frozen=True)
class AuditResult(_AsDict):
    """A whole bias audit: its settings, a scope per attribute and one for their intersection, the verdict."""

    positive_label: Any
    attributes: list[str]
    thresholds: Thresholds
    min_group_size: int
    bootstrap_samples: int
    seed: int
    confidence_level: float
    total_count: int
    count_with_ground_truth: int
    scopes: list[ScopeResult]
    verdict: OverallVerdict
    summary: list[str]


@dataclass(frozen=True)
class GroupAmplification(_AsDict):
    """One group's selection rate under the model's labels and under the final (reviewed) labels."""

    group: dict[str, Any]
    label: str
    count: int
    model_selection_rate: float
    final_selection_rate: float
    too_small_to_judge: bool


@dataclass(frozen=True)
class ScopeAmplification(_AsDict):
    """Demographic parity before and after review across one attribute (or the intersection).

    ``direction`` is "narrowed" (the ratio rose), "widened", "unchanged" (within half a percentage point) or
    None when either ratio cannot be computed.
    """

    name: str
    attributes: list[str]
    intersectional: bool
    groups: list[GroupAmplification]
    ratio_before: float | None
    ratio_after: float | None
    difference_before: float | None
    difference_after: float | None
    lowest_group_before: str | None
    highest_group_before: str | None
    lowest_group_after: str | None
    highest_group_after: str | None
    direction: str | None
    summary: str
    groups_left_out: list[str]


@dataclass(frozen=True)
class AmplificationResult(_AsDict):
    """Does human review narrow or widen the gaps in selection rates? One scope per attribute and intersection."""

    positive_label: Any
    attributes: list[str]
    min_group_size: int
    total_count: int
    scopes: list[ScopeAmplification]
    summary: list[str]


@dataclass(frozen=True)
class GroupOverrides(_AsDict):
    """How one reviewer changed the model's labels on one group's cases.

    ``positive_to_negative``: model said the positive label, reviewer did not; rate over ``model_positive``.
    ``negative_to_positive``: the reverse; rate over ``model_negative``. Rates are None with a zero
    denominator. ``net_selection_change`` = (negative_to_positive - positive_to_negative) / reviews, the change
    the reviewer made to the group's selection rate; ``direction`` "towards positive", "away from positive",
    "balanced" (overrides cancel out) or "no overrides".
    """

    group: dict[str, Any]
    label: str
    reviews: int
    model_positive: int
    model_negative: int
    positive_to_negative: int
    negative_to_positive: int
    positive_to_negative_rate: float | None
    negative_to_positive_rate: float | None
    net_selection_change: float
    direction: str
    summary: str


@dataclass(frozen=True)
class ReviewerOverrides(_AsDict):
    """One reviewer's override directions, per group of each attribute and of their intersection."""

    reviewer: Any
    scopes: dict[str, list[GroupOverrides]]


def audit_fairness(
    *,
    cells: pd.DataFrame,
    attributes: Sequence[str],
    positive_label: Hashable,
    thresholds: Thresholds = Thresholds(),
    min_group_size: int = 30,
    bootstrap_samples: int = 0,
    seed: int = 0,
    confidence_level: float = 0.95,
) -> AuditResult:
    """Audit a table of cells (attributes..., y_true, y_pred, count): per group, between groups, verdicts.

    ``bootstrap_samples`` = 0 computes no intervals. Raises ValueError on malformed cells (missing or extra
    columns, a count that is not a positive integer, a missing attribute value or y_pred).
    """
    _check_settings(
        min_group_size=min_group_size, bootstrap_samples=bootstrap_samples, confidence_level=confidence_level
    )
    table = _Table.of(cells, attributes=attributes, positive_label=positive_label)
    intervals = (
        _bootstrap(table, min_group_size=min_group_size, samples=bootstrap_samples, seed=seed, level=confidence_level)
        if bootstrap_samples
        else {}
    )
    scopes = []
    for scope in table.scopes():
        groups = _group_metrics(table, scope, min_group_size=min_group_size)
        between = [
            _between_group_metric(
                table,
                scope,
                groups,
                metric=metric,
                threshold=thresholds.limit_of(metric),
                interval=intervals.get(scope.name, {}).get(metric),
                confidence_level=confidence_level,
                min_group_size=min_group_size,
            )
            for metric in BETWEEN_GROUP_METRICS
        ]
        scopes.append(
            ScopeResult(
                name=scope.name,
                attributes=list(scope.attributes),
                intersectional=len(scope.attributes) > 1,
                groups=groups,
                between_groups=between,
                notes=_scope_notes(groups, min_group_size=min_group_size),
            )
        )
    judged = [m for s in scopes for m in s.between_groups if m.threshold is not None]
    verdict, summary = _overall(judged)
    return AuditResult(
        positive_label=positive_label,
        attributes=list(attributes),
        thresholds=thresholds,
        min_group_size=min_group_size,
        bootstrap_samples=bootstrap_samples,
        seed=seed,
        confidence_level=confidence_level,
        total_count=int(table.counts.sum()),
        count_with_ground_truth=int(table.counts[table.labelled].sum()),
        scopes=scopes,
        verdict=verdict,
        summary=summary + [note for s in scopes for note in s.notes],
    )


def between_group_figures_from_counts(
    *, cells: pd.DataFrame, attributes: Sequence[str], positive_label: Hashable, min_group_size: int = 30
) -> dict[str, dict[str, float | None]]:
    """The bootstrap's count formulas at the observed counts: scope name -> metric -> value (None if not computed).

    They must equal fairlearn's figures in ``audit_fairness``; the recomputation is also a cheap check of a
    stored result.
    """
    table = _Table.of(cells, attributes=attributes, positive_label=positive_label)
    observed = table.counts[np.newaxis, :].astype(float)
    return {
        scope.name: {metric: _json_float(values[0]) for metric, values in stats.items()}
        for scope in table.scopes()
        for stats in [_count_statistics(table, scope, observed, min_group_size=min_group_size)]
    }


def bootstrap_intervals(
    *,
    cells: pd.DataFrame,
    attributes: Sequence[str],
    positive_label: Hashable,
    samples: int,
    seed: int,
    min_group_size: int = 30,
    confidence_level: float = 0.95,
) -> dict[str, dict[str, tuple[float, float] | None]]:
    """Percentile intervals of every between-group metric: scope name -> metric -> (low, high) or None.

    The cell counts are redrawn ``samples`` times from a multinomial with the observed cell shares and total;
    the groups compared are those large enough in the observed table. Replicates in which a metric is
    undefined (0/0) are left out of its quantiles; None when all are.
    """
    _check_settings(min_group_size=min_group_size, bootstrap_samples=samples, confidence_level=confidence_level)
    table = _Table.of(cells, attributes=attributes, positive_label=positive_label)
    return _bootstrap(table, min_group_size=min_group_size, samples=samples, seed=seed, level=confidence_level)


def audit_inputs_canonical(
    *,
    cells: pd.DataFrame,
    attributes: Sequence[str],
    positive_label: Hashable,
    thresholds: Thresholds = Thresholds(),
    min_group_size: int = 30,
    bootstrap_samples: int = 0,
    seed: int = 0,
    confidence_level: float = 0.95,
) -> dict[str, Any]:
    """The exact inputs of an audit as plain JSON data in one canonical order, for hashing and recomputation.

    Cells with the same key are merged (their counts added), an unknown y_true is None, and rows are sorted
    by their values (None first, then by type name and value), so two GROUP BYs of the same cases give the
    same data; every audit works on this form, so its figures and intervals do not depend on row order
    either. ``audit_recompute`` runs the audit again from it.
    """
    table = _Table.of(cells, attributes=attributes, positive_label=positive_label)
    return {
        "attributes": list(table.attributes),
        "positive_label": _json_value(positive_label),
        "thresholds": thresholds.as_dict(),
        "min_group_size": min_group_size,
        "bootstrap_samples": bootstrap_samples,
        "seed": seed,
        "confidence_level": confidence_level,
        "columns": list(table.frame.columns),
        "cells": [[_json_value(value) for value in row] for row in table.frame.itertuples(index=False, name=None)],
    }


def audit_recompute(*, inputs: Mapping[str, Any]) -> AuditResult:
    """Run ``audit_fairness`` again from the output of ``audit_inputs_canonical`` (e.g. read back from JSON)."""
    cells = pd.DataFrame([list(row) for row in inputs["cells"]], columns=list(inputs["columns"]), dtype=object)
    cells[COUNT] = cells[COUNT].astype("int64")
    return audit_fairness(
        cells=cells,
        attributes=inputs["attributes"],
        positive_label=inputs["positive_label"],
        thresholds=Thresholds(**inputs["thresholds"]),
        min_group_size=inputs["min_group_size"],
        bootstrap_samples=inputs["bootstrap_samples"],
        seed=inputs["seed"],
        confidence_level=inputs["confidence_level"],
    )


def review_amplification(
    *, cells: pd.DataFrame, attributes: Sequence[str], positive_label: Hashable, min_group_size: int = 30
) -> AmplificationResult:
    """Selection rates of the model's label and of the final label over reviewed cases, per group, and the
    demographic parity ratio before and after review (fairlearn's, over groups large enough to judge).

    Cells: (attributes..., model_label, final_label, count).
    """
    table = _Table.of(
        cells, attributes=attributes, positive_label=positive_label, label_columns=(MODEL_LABEL, FINAL_LABEL)
    )
    before = table.frame[MODEL_LABEL].eq(positive_label).to_numpy()
    after = table.frame[FINAL_LABEL].eq(positive_label).to_numpy()
    scopes = [
        _scope_amplification(table, scope, before=before, after=after, min_group_size=min_group_size)
        for scope in table.scopes()
    ]
    return AmplificationResult(
        positive_label=positive_label,
        attributes=list(attributes),
        min_group_size=min_group_size,
        total_count=int(table.counts.sum()),
        scopes=scopes,
        summary=[scope.summary for scope in scopes],
    )


def reviewer_override_directions(
    *, cells: pd.DataFrame, attributes: Sequence[str], positive_label: Hashable
) -> list[ReviewerOverrides]:
    """Per reviewer and group, how often they turned the model's positive label negative and the reverse.

    Cells: (reviewer, attributes..., model_label, review_label, count). Reviewers come in sorted order.
    """
    table = _Table.of(
        cells,
        attributes=[REVIEWER, *attributes],
        positive_label=positive_label,
        label_columns=(MODEL_LABEL, REVIEW_LABEL),
    )
    model_positive, review_positive = table.actual_positive, table.selected
    frame = table.frame.assign(
        reviews=table.counts,
        model_positive=table.counts * model_positive,
        positive_to_negative=table.counts * (model_positive & ~review_positive),
        negative_to_positive=table.counts * (~model_positive & review_positive),
    )
    sums = ["reviews", "model_positive", "positive_to_negative", "negative_to_positive"]
    result = []
    for reviewer, own in frame.groupby(REVIEWER, sort=True):
        scopes = {}
        for attrs in _scope_attribute_sets(attributes):
            totals = own.groupby(list(attrs), sort=True)[sums].sum()
            scopes[" & ".join(attrs)] = [
                _group_overrides(reviewer, dict(zip(attrs, _as_key(key), strict=True)), row, positive_label)
                for key, row in totals.iterrows()
            ]
        result.append(ReviewerOverrides(reviewer=_json_value(reviewer), scopes=scopes))
    return result


# The table of cells


@dataclass(frozen=True)
class _Scope:
    attributes: tuple[str, ...]
    keys: list[tuple]
    codes: np.ndarray

    @property
    def name(self) -> str:
        return " & ".join(self.attributes)


@dataclass(frozen=True)
class _Table:
    frame: pd.DataFrame
    attributes: tuple[str, ...]
    positive_label: Hashable
    counts: np.ndarray
    selected: np.ndarray
    labelled: np.ndarray
    actual_positive: np.ndarray

    @classmethod
    def of(
        cls,
        cells: pd.DataFrame,
        *,
        attributes: Sequence[str],
        positive_label: Hashable,
        label_columns: tuple[str, str] = (Y_TRUE, Y_PRED),
    ) -> "_Table":
        attributes = tuple(attributes)
        if not attributes or len(set(attributes)) != len(attributes):
            raise ValueError("Name at least one sensitive attribute, each once.")
        expected = {*attributes, *label_columns, COUNT}
        if set(cells.columns) != expected or len(cells.columns) != len(expected):
            raise ValueError(f"The cells need exactly the columns {sorted(expected)}, not {list(cells.columns)}.")
        if cells.empty:
            raise ValueError("There are no cells to audit.")
        counts = cells[COUNT].to_numpy()
        if not (pd.api.types.is_integer_dtype(counts) and (counts > 0).all()):
            raise ValueError("Every cell's count must be an integer greater than 0.")
        # Only y_true may be unknown; a missing attribute value must be named (e.g. "unknown") upstream.
        for column in (*attributes, *label_columns):
            if column != Y_TRUE and cells[column].isna().any():
                raise ValueError(f"The column {column!r} has missing values.")
        frame = _canonical_cells(cells, key_columns=[*attributes, *label_columns])
        counts = frame[COUNT].to_numpy()
        first, second = label_columns
        labelled = frame[first].notna().to_numpy()
        return cls(
            frame=frame,
            attributes=attributes,
            positive_label=positive_label,
            counts=counts,
            selected=frame[second].eq(positive_label).to_numpy(),
            labelled=labelled,
            actual_positive=labelled & frame[first].eq(positive_label).to_numpy(),
        )

    def scopes(self) -> list[_Scope]:
        result = []
        for attrs in _scope_attribute_sets(self.attributes):
            grouped = self.frame.groupby(list(attrs), sort=True)
            keys = [_as_key(key) for key in grouped.size().index]
            result.append(_Scope(attributes=attrs, keys=keys, codes=grouped.ngroup().to_numpy()))
        return result


def _canonical_cells(cells: pd.DataFrame, *, key_columns: list[str]) -> pd.DataFrame:
    """Cells with equal keys merged and rows in one canonical order (None first, then by type name and value).

    The bootstrap draws cells by position: without this, the row order of a GROUP BY, or how it split the
    cases into rows, would change the intervals of the same cases.
    """
    merged: dict[tuple, int] = {}
    for row, count in zip(cells[key_columns].itertuples(index=False, name=None), cells[COUNT], strict=True):
        key = tuple(_json_value(value) for value in row)
        merged[key] = merged.get(key, 0) + int(count)
    rows = sorted(merged.items(), key=lambda item: tuple(_sort_key(value) for value in item[0]))
    frame = pd.DataFrame([key for key, _ in rows], columns=key_columns, dtype=object)
    frame[COUNT] = np.array([count for _, count in rows], dtype=np.int64)
    return frame


def _scope_attribute_sets(attributes: Sequence[str]) -> list[tuple[str, ...]]:
    singles: list[tuple[str, ...]] = [(attribute,) for attribute in attributes]
    return [*singles, tuple(attributes)] if len(attributes) > 1 else singles


def _as_key(key: Any) -> tuple:
    return key if isinstance(key, tuple) else (key,)


def _check_settings(*, min_group_size: int, bootstrap_samples: int, confidence_level: float) -> None:
    if min_group_size < 1:
        raise ValueError("min_group_size must be at least 1.")
    if bootstrap_samples < 0:
        raise ValueError("bootstrap_samples must be 0 (off) or more.")
    if not 0 < confidence_level < 1:
        raise ValueError("confidence_level must lie strictly between 0 and 1.")


# Per-group figures (fairlearn over the cells, weighted by their counts)


def _group_metrics(table: _Table, scope: _Scope, *, min_group_size: int) -> list[GroupMetrics]:
    positive = table.positive_label
    frame = table.frame
    everyone = MetricFrame(
        metrics={
            "selection_rate": lambda y_true, y_pred, sample_weight: selection_rate(
                y_true, y_pred, pos_label=positive, sample_weight=sample_weight
            )
        },
        y_true=frame[Y_TRUE],
        y_pred=frame[Y_PRED],
        sensitive_features=frame[list(scope.attributes)],
        sample_params={"selection_rate": {"sample_weight": table.counts}},
    )
    known = frame[table.labelled]
    with_truth: dict[tuple, pd.Series] = {}
    if not known.empty:
        metrics = _error_rate_functions(positive)
        weights = {"sample_weight": table.counts[table.labelled]}
        labelled = MetricFrame(
            metrics=metrics,
            y_true=known[Y_TRUE],
            y_pred=known[Y_PRED],
            sensitive_features=known[list(scope.attributes)],
            sample_params={name: weights for name in metrics},
        )
        with_truth = {_as_key(key): row for key, row in labelled.by_group.iterrows()}
    selection = {_as_key(key): value for key, value in everyone.by_group["selection_rate"].items()}
    sums = _group_sums(table, scope)
    groups = []
    for index, key in enumerate(scope.keys):
        size, labelled_size = int(sums["count"][index]), int(sums["labelled"][index])
        # With several attributes MetricFrame lists every combination of values, also those without a case.
        truth = with_truth.get(key) if labelled_size else None
        positives, negatives = int(sums["positives"][index]), labelled_size - int(sums["positives"][index])
        notes = []
        if truth is None:
            notes.append("No case of this group has a known true outcome: its error rates are not computed.")
        else:
            if not positives:
                notes.append(
                    f"No case of this group has the true outcome {positive}: fairlearn reports its true positive "
                    "and false negative rates as 0 (scikit-learn turns 0/0 into 0)."
                )
            if not negatives:
                notes.append(
                    f"Every case of this group with a known outcome has the true outcome {positive}: fairlearn "
                    "reports its false positive rate as 0 (scikit-learn turns 0/0 into 0)."
                )
            if math.isnan(truth["precision"]):
                notes.append(f"Precision is undefined: no case with a known outcome was given {positive}.")
        groups.append(
            GroupMetrics(
                group=dict(zip(scope.attributes, (_json_value(v) for v in key), strict=True)),
                label=_group_label(scope.attributes, key),
                count=size,
                count_with_ground_truth=labelled_size,
                actual_positives=positives,
                actual_negatives=negatives,
                selection_rate=float(selection[key]),
                accuracy=None if truth is None else float(truth["accuracy"]),
                true_positive_rate=None if truth is None else float(truth[TRUE_POSITIVE_RATE]),
                false_positive_rate=None if truth is None else float(truth[FALSE_POSITIVE_RATE]),
                false_negative_rate=None if truth is None else float(truth["false_negative_rate"]),
                precision=None if truth is None else _json_float(truth["precision"]),
                too_small_to_judge=size < min_group_size,
                too_small_to_judge_error_rates=labelled_size < min_group_size,
                notes=notes,
            )
        )
    return groups


def _error_rate_functions(positive: Hashable) -> dict[str, Any]:
    def binary(labels: Any) -> np.ndarray:
        return (np.asarray(labels, dtype=object) == positive).astype(int)

    def rate(function: Any) -> Any:
        return lambda y_true, y_pred, sample_weight: function(
            binary(y_true), binary(y_pred), sample_weight=sample_weight, pos_label=1
        )

    return {
        "accuracy": lambda y_true, y_pred, sample_weight: skm.accuracy_score(
            np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object), sample_weight=sample_weight
        ),
        TRUE_POSITIVE_RATE: rate(true_positive_rate),
        FALSE_POSITIVE_RATE: rate(false_positive_rate),
        "false_negative_rate": rate(false_negative_rate),
        "precision": lambda y_true, y_pred, sample_weight: skm.precision_score(
            binary(y_true), binary(y_pred), sample_weight=sample_weight, pos_label=1, zero_division=np.nan
        ),
    }


def _group_sums(table: _Table, scope: _Scope) -> dict[str, np.ndarray]:
    size = len(scope.keys)

    def total(flags: np.ndarray) -> np.ndarray:
        return np.bincount(scope.codes, weights=table.counts * flags, minlength=size)

    return {
        "count": total(np.ones_like(table.labelled)),
        "labelled": total(table.labelled),
        "positives": total(table.actual_positive),
    }


# Between-group figures (fairlearn's functions, over the groups large enough to judge)


def _between_group_metric(
    table: _Table,
    scope: _Scope,
    groups: list[GroupMetrics],
    *,
    metric: str,
    threshold: float | None,
    interval: tuple[float, float] | None,
    confidence_level: float,
    min_group_size: int,
) -> BetweenGroupMetric:
    needs_truth = metric in _NEEDS_GROUND_TRUTH
    judged = [not (g.too_small_to_judge_error_rates if needs_truth else g.too_small_to_judge) for g in groups]
    compared = [g for g, ok in zip(groups, judged, strict=True) if ok]
    left_out = [g.label for g, ok in zip(groups, judged, strict=True) if not ok]
    words = _METRIC_WORDS[metric]
    # Equalized odds' deciding rate is known only once computed; until then it is named by the TPR.
    not_computed = BetweenGroupMetric(
        metric=metric,
        value=None,
        rate=TRUE_POSITIVE_RATE if needs_truth else "selection_rate",
        lowest_group=None,
        lowest_rate=None,
        highest_group=None,
        highest_rate=None,
        interval=interval,
        threshold=threshold,
        verdict=Verdict.NO_GROUND_TRUTH,
        summary=f"Across {scope.name}, {words} could not be computed: no case has a known true outcome.",
        groups_compared=[g.label for g in compared],
        groups_left_out=left_out,
    )
    if needs_truth and not table.labelled.any():
        return not_computed
    if len(compared) < 2:
        of_what = "cases with a known outcome" if needs_truth else "cases"
        return replace(
            not_computed,
            verdict=Verdict.TOO_SMALL_TO_JUDGE,
            summary=f"Across {scope.name}, {words} was not judged: fewer than two groups have at least "
            f"{min_group_size} {of_what}.",
        )
    value, rate = _fairlearn_value(table, scope, metric=metric, judged=judged, compared=compared)
    values = [getattr(g, rate) for g in compared]
    low, high = compared[int(np.argmin(values))], compared[int(np.argmax(values))]
    if math.isnan(value):
        verdict = Verdict.UNDEFINED
    elif threshold is None:
        verdict = Verdict.NO_THRESHOLD
    else:
        at_least = metric.endswith("_ratio")
        passed = value >= threshold - _TOLERANCE if at_least else value <= threshold + _TOLERANCE
        verdict = Verdict.PASSED if passed else Verdict.FAILED
    summary = _sentence(
        scope_name=scope.name,
        metric=metric,
        rate=rate,
        value=value,
        low=low,
        high=high,
        threshold=threshold,
        verdict=verdict,
        interval=interval,
        confidence_level=confidence_level,
        positive=table.positive_label,
    )
    return replace(
        not_computed,
        value=_json_float(value),
        rate=rate,
        lowest_group=low.label,
        lowest_rate=getattr(low, rate),
        highest_group=high.label,
        highest_rate=getattr(high, rate),
        verdict=verdict,
        summary=summary,
        notes=_zero_denominator_notes(compared, rate=rate, positive=table.positive_label),
    )


def _fairlearn_value(
    table: _Table, scope: _Scope, *, metric: str, judged: list[bool], compared: list[GroupMetrics]
) -> tuple[float, str]:
    """fairlearn's figure over the compared groups' cells, and the rate that decided it."""
    in_compared = np.asarray(judged)[scope.codes]
    if metric not in _NEEDS_GROUND_TRUTH:
        rows = in_compared
        function = demographic_parity_ratio if metric == DEMOGRAPHIC_PARITY_RATIO else demographic_parity_difference
        value = function(
            table.frame[Y_TRUE][rows],
            table.selected[rows].astype(int),
            sensitive_features=table.frame.loc[rows, list(scope.attributes)],
            sample_weight=table.counts[rows],
        )
        return float(value), "selection_rate"
    rows = in_compared & table.labelled
    arguments = {
        "y_true": table.actual_positive[rows].astype(int),
        "y_pred": table.selected[rows].astype(int),
        "sensitive_features": table.frame.loc[rows, list(scope.attributes)],
        "sample_weight": table.counts[rows],
    }
    functions = {
        EQUALIZED_ODDS_DIFFERENCE: equalized_odds_difference,
        EQUALIZED_ODDS_RATIO: equalized_odds_ratio,
        EQUAL_OPPORTUNITY_DIFFERENCE: equal_opportunity_difference,
        EQUAL_OPPORTUNITY_RATIO: equal_opportunity_ratio,
    }
    value = float(functions[metric](**arguments))
    if metric in (EQUAL_OPPORTUNITY_DIFFERENCE, EQUAL_OPPORTUNITY_RATIO):
        return value, TRUE_POSITIVE_RATE
    # fairlearn takes Python's max()/min() over [tpr, fpr]: the FPR decides only when strictly worse.
    tpr, fpr = (np.asarray([getattr(g, rate) for g in compared]) for rate in (TRUE_POSITIVE_RATE, FALSE_POSITIVE_RATE))
    if metric == EQUALIZED_ODDS_DIFFERENCE:
        fpr_decides = np.ptp(fpr) > np.ptp(tpr)
    else:
        with np.errstate(invalid="ignore"):
            fpr_decides = fpr.min() / fpr.max() < tpr.min() / tpr.max()
    return value, FALSE_POSITIVE_RATE if fpr_decides else TRUE_POSITIVE_RATE


def _zero_denominator_notes(compared: list[GroupMetrics], *, rate: str, positive: Hashable) -> list[str]:
    if rate == TRUE_POSITIVE_RATE:
        missing = [g.label for g in compared if not g.actual_positives]
        what = f"no case with the true outcome {positive}"
    elif rate == FALSE_POSITIVE_RATE:
        missing = [g.label for g in compared if not g.actual_negatives]
        what = f"no case with a true outcome other than {positive}"
    else:
        return []
    if not missing:
        return []
    return [
        f"{', '.join(missing)}: {what}; fairlearn counts the {rate.replace('_', ' ')} of such a group as 0 "
        "(0/0), so this figure reflects that convention rather than a measured rate."
    ]


# Count formulas (the bootstrap's), equal to fairlearn's on the observed counts


def _count_statistics(
    table: _Table, scope: _Scope, counts: np.ndarray, *, min_group_size: int
) -> dict[str, np.ndarray]:
    """Every between-group metric for each row of ``counts`` (replicates x cells), over the observed judged groups."""
    sums = _group_sums(table, scope)
    one_hot = np.zeros((len(table.counts), len(scope.keys)))
    one_hot[np.arange(len(table.counts)), scope.codes] = 1.0
    undefined = np.full(len(counts), np.nan)
    stats = dict.fromkeys(BETWEEN_GROUP_METRICS, undefined)
    by_count = sums["count"] >= min_group_size
    by_labelled = sums["labelled"] >= min_group_size
    with np.errstate(divide="ignore", invalid="ignore"):
        if by_count.sum() >= 2:
            columns = one_hot[:, by_count]
            rates = (counts @ (columns * table.selected[:, None])) / (counts @ columns)
            stats[DEMOGRAPHIC_PARITY_DIFFERENCE] = _spread(rates)
            stats[DEMOGRAPHIC_PARITY_RATIO] = _ratio(rates)
        if table.labelled.any() and by_labelled.sum() >= 2:
            columns = one_hot[:, by_labelled]
            actual_negative = table.labelled & ~table.actual_positive
            tpr = _share(counts, columns, within=table.actual_positive, selected=table.selected)
            fpr = _share(counts, columns, within=actual_negative, selected=table.selected)
            tpr_spread, fpr_spread, tpr_ratio, fpr_ratio = _spread(tpr), _spread(fpr), _ratio(tpr), _ratio(fpr)
            # Python's max()/min() over [tpr, fpr] as fairlearn takes them: NaN-unaware, first wins ties.
            stats[EQUALIZED_ODDS_DIFFERENCE] = np.where(fpr_spread > tpr_spread, fpr_spread, tpr_spread)
            stats[EQUALIZED_ODDS_RATIO] = np.where(fpr_ratio < tpr_ratio, fpr_ratio, tpr_ratio)
            stats[EQUAL_OPPORTUNITY_DIFFERENCE] = tpr_spread
            stats[EQUAL_OPPORTUNITY_RATIO] = tpr_ratio
    return stats


def _share(counts: np.ndarray, columns: np.ndarray, *, within: np.ndarray, selected: np.ndarray) -> np.ndarray:
    denominator = counts @ (columns * within[:, None])
    numerator = counts @ (columns * (within & selected)[:, None])
    # scikit-learn's confusion_matrix(normalize="true"), behind fairlearn's rates, turns 0/0 into 0.
    return np.where(denominator > 0, numerator / denominator, 0.0)


def _spread(rates: np.ndarray) -> np.ndarray:
    # fmax/fmin skip NaN (a group without cases in a replicate) as pandas' max()/min() do in fairlearn.
    return np.fmax.reduce(rates, axis=1) - np.fmin.reduce(rates, axis=1)


def _ratio(rates: np.ndarray) -> np.ndarray:
    return np.fmin.reduce(rates, axis=1) / np.fmax.reduce(rates, axis=1)


def _bootstrap(
    table: _Table, *, min_group_size: int, samples: int, seed: int, level: float
) -> dict[str, dict[str, tuple[float, float] | None]]:
    rng = np.random.default_rng(seed)
    total = int(table.counts.sum())
    replicates = rng.multinomial(total, table.counts / total, size=samples).astype(float)
    tail = (1 - level) / 2
    result = {}
    for scope in table.scopes():
        stats = _count_statistics(table, scope, replicates, min_group_size=min_group_size)
        intervals: dict[str, tuple[float, float] | None] = {}
        for metric, values in stats.items():
            defined = values[~np.isnan(values)]
            if defined.size:
                low, high = np.quantile(defined, [tail, 1 - tail])
                intervals[metric] = (float(low), float(high))
            else:
                intervals[metric] = None
        result[scope.name] = intervals
    return result


# Verdicts and sentences


def _overall(judged: list[BetweenGroupMetric]) -> tuple[OverallVerdict, list[str]]:
    failed = [m for m in judged if m.verdict == Verdict.FAILED]
    passed = [m for m in judged if m.verdict == Verdict.PASSED]
    unjudged = [m for m in judged if m.verdict not in (Verdict.FAILED, Verdict.PASSED)]
    checks = len(failed) + len(passed)
    if failed:
        verdict, opening = OverallVerdict.FAILED, f"The audit failed: {len(failed)} of {checks} judged checks failed."
    elif passed:
        verdict, opening = OverallVerdict.PASSED, f"The audit passed: all {checks} judged checks passed."
    else:
        verdict, opening = OverallVerdict.INCONCLUSIVE, "The audit is inconclusive: no check could be judged."
    if unjudged:
        opening += f" {len(unjudged)} check{'s' if len(unjudged) > 1 else ''} could not be judged."
    return verdict, [opening, *(m.summary for m in failed + passed + unjudged)]


def _scope_notes(groups: list[GroupMetrics], *, min_group_size: int) -> list[str]:
    notes = []
    small = [f"{g.label} ({g.count} cases)" for g in groups if g.too_small_to_judge]
    if small:
        notes.append(
            f"Left out of the between-group figures as too small to judge (fewer than {min_group_size} cases): "
            f"{'; '.join(small)}."
        )
    small_truth = [
        f"{g.label} ({g.count_with_ground_truth} with a known outcome)"
        for g in groups
        if g.too_small_to_judge_error_rates and not g.too_small_to_judge
    ]
    if small_truth:
        notes.append(
            "Left out of the error-rate comparisons as too small to judge (fewer than "
            f"{min_group_size} cases with a known outcome): {'; '.join(small_truth)}."
        )
    return notes


def _sentence(
    *,
    scope_name: str,
    metric: str,
    rate: str,
    value: float,
    low: GroupMetrics,
    high: GroupMetrics,
    threshold: float | None,
    verdict: Verdict,
    interval: tuple[float, float] | None,
    confidence_level: float,
    positive: Hashable,
) -> str:
    low_rate, high_rate = getattr(low, rate), getattr(high, rate)
    is_ratio = metric.endswith("_ratio")
    if verdict == Verdict.UNDEFINED:
        return (
            f"Across {scope_name}, {_METRIC_WORDS[metric]} is undefined: the {_rate_words(rate, positive, True)} "
            "of every compared group are 0 (0/0; fairlearn gives NaN)."
        )
    shown = _shown(value, is_ratio=is_ratio, threshold=threshold)
    spread = ""
    if interval is not None:
        spread = (
            f"{confidence_level:.0%} confidence interval {_shown(interval[0], is_ratio=is_ratio)} "
            f"to {_shown(interval[1], is_ratio=is_ratio)}"
        )
    rates = f"({_percent(low_rate)} against {_percent(high_rate)}{'; ' + spread if spread else ''})"
    if low_rate == high_rate:
        # argmin and argmax of equal rates name one group twice: say what is true, that no group differs.
        text = (
            f"every compared group has the same {_rate_words(rate, positive, False)} ({_percent(low_rate)}), so "
            f"{_METRIC_WORDS[metric]} is {shown}{f' ({spread})' if spread else ''}"
        )
    elif rate == "selection_rate" and is_ratio:
        text = f"cases with {low.label} received {positive} at {shown} of the rate of cases with {high.label} {rates}"
    elif is_ratio:
        text = (
            f"the {_rate_words(rate, positive, False)} of cases with {low.label} is {shown} of that of cases with "
            f"{high.label} {rates}"
        )
    else:
        text = (
            f"the {_rate_words(rate, positive, True)} of cases with {high.label} ({_percent(high_rate)}) and "
            f"cases with {low.label} ({_percent(low_rate)}) differ by {shown}{f' ({spread})' if spread else ''}"
        )
    if threshold is not None:
        if metric == DEMOGRAPHIC_PARITY_RATIO and threshold == 0.8:
            text += "; the four-fifths rule requires at least 80%"
        elif is_ratio:
            text += f"; at least {_shown(threshold, is_ratio=True)} is required"
        else:
            text += f"; at most {_shown(threshold, is_ratio=False)} is allowed"
        text += ", so this passes" if verdict == Verdict.PASSED else ", so this fails"
    return f"Across {scope_name}, {text}."


def _rate_words(rate: str, positive: Hashable, plural: bool) -> str:
    words = {
        "selection_rate": (f"{positive} rate", f"{positive} rates"),
        TRUE_POSITIVE_RATE: (
            f"true positive rate (the share of cases whose true outcome is {positive} that were given {positive})",
            f"true positive rates (the shares of cases whose true outcome is {positive} that were given {positive})",
        ),
        FALSE_POSITIVE_RATE: (
            f"false positive rate (the share of cases whose true outcome is not {positive} that were given {positive})",
            f"false positive rates (the shares of cases whose true outcome is not {positive} that were given "
            f"{positive})",
        ),
    }
    return words[rate][plural]


def _shown(value: float, *, is_ratio: bool, threshold: float | None = None) -> str:
    """A ratio as a percentage, a difference to two decimals; more digits where rounding would hide a failure."""
    digits = 0 if is_ratio else 2

    def text(number: float, places: int) -> str:
        return f"{number:.{places}%}" if is_ratio else f"{number:.{places}f}"

    while threshold is not None and value != threshold and text(value, digits) == text(threshold, digits):
        if digits >= 6:
            break
        digits += 1
    return text(value, digits)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _group_label(attributes: Sequence[str], key: tuple) -> str:
    return ", ".join(f"{attribute} = {value}" for attribute, value in zip(attributes, key, strict=True))


# Amplification and overrides


def _scope_amplification(
    table: _Table, scope: _Scope, *, before: np.ndarray, after: np.ndarray, min_group_size: int
) -> ScopeAmplification:
    sums = _group_sums(table, scope)
    size = len(scope.keys)
    model_rate = np.bincount(scope.codes, weights=table.counts * before, minlength=size) / sums["count"]
    final_rate = np.bincount(scope.codes, weights=table.counts * after, minlength=size) / sums["count"]
    groups = [
        GroupAmplification(
            group=dict(zip(scope.attributes, (_json_value(v) for v in key), strict=True)),
            label=_group_label(scope.attributes, key),
            count=int(sums["count"][index]),
            model_selection_rate=float(model_rate[index]),
            final_selection_rate=float(final_rate[index]),
            too_small_to_judge=sums["count"][index] < min_group_size,
        )
        for index, key in enumerate(scope.keys)
    ]
    compared = [g for g in groups if not g.too_small_to_judge]
    figures: dict[str, Any] = dict.fromkeys(
        (
            "ratio_before",
            "ratio_after",
            "difference_before",
            "difference_after",
            "lowest_group_before",
            "highest_group_before",
            "lowest_group_after",
            "highest_group_after",
            "direction",
        ),
    )
    positive = table.positive_label
    if len(compared) < 2:
        summary = (
            f"Across {scope.name}, the effect of review was not judged: fewer than two groups have at least "
            f"{min_group_size} reviewed cases."
        )
    else:
        rows = np.asarray([not g.too_small_to_judge for g in groups])[scope.codes]
        features = table.frame.loc[rows, list(scope.attributes)]
        for moment, flags, attribute in (
            ("before", before, "model_selection_rate"),
            ("after", after, "final_selection_rate"),
        ):
            # Selection rates ignore y_true, but fairlearn asks for one: the labels themselves stand in.
            arguments = {"sensitive_features": features, "sample_weight": table.counts[rows]}
            figures[f"ratio_{moment}"] = _json_float(
                demographic_parity_ratio(flags[rows], flags[rows].astype(int), **arguments)
            )
            figures[f"difference_{moment}"] = _json_float(
                demographic_parity_difference(flags[rows], flags[rows].astype(int), **arguments)
            )
            rates = [getattr(g, attribute) for g in compared]
            figures[f"lowest_group_{moment}"] = compared[int(np.argmin(rates))].label
            figures[f"highest_group_{moment}"] = compared[int(np.argmax(rates))].label
        summary = _amplification_sentence(scope.name, figures, positive)
        ratio_before, ratio_after = figures["ratio_before"], figures["ratio_after"]
        if ratio_before is not None and ratio_after is not None:
            change = ratio_after - ratio_before
            figures["direction"] = (
                "unchanged" if abs(change) < _UNCHANGED_RATIO else "narrowed" if change > 0 else "widened"
            )
    return ScopeAmplification(
        name=scope.name,
        attributes=list(scope.attributes),
        intersectional=len(scope.attributes) > 1,
        groups=groups,
        summary=summary,
        groups_left_out=[g.label for g in groups if g.too_small_to_judge],
        **figures,
    )


def _amplification_sentence(scope_name: str, figures: Mapping[str, Any], positive: Hashable) -> str:
    before, after = figures["ratio_before"], figures["ratio_after"]
    if before is None or after is None:
        moment = "before" if before is None else "after"
        return (
            f"Across {scope_name}, the effect of review cannot be compared: no compared group received {positive} "
            f"{moment} review (0/0)."
        )
    change = after - before
    same_pair = (figures["lowest_group_before"], figures["highest_group_before"]) == (
        figures["lowest_group_after"],
        figures["highest_group_after"],
    )
    if abs(change) < _UNCHANGED_RATIO:
        if same_pair:
            return (
                f"Across {scope_name}, review left {figures['lowest_group_after']}'s {positive} rate at "
                f"{after:.0%} of {figures['highest_group_after']}'s."
            )
        return f"Across {scope_name}, review left the demographic parity ratio at {after:.0%}."
    verb, effect = ("raised", "narrowed") if change > 0 else ("lowered", "widened")
    if same_pair:
        return (
            f"Across {scope_name}, review {verb} {figures['lowest_group_after']}'s {positive} rate from "
            f"{before:.0%} to {after:.0%} of {figures['highest_group_after']}'s: it {effect} the gap."
        )
    return (
        f"Across {scope_name}, review {verb} the demographic parity ratio from {before:.0%} "
        f"({figures['lowest_group_before']} against {figures['highest_group_before']}) to {after:.0%} "
        f"({figures['lowest_group_after']} against {figures['highest_group_after']}): it {effect} the gap."
    )


def _group_overrides(reviewer: Any, group: dict[str, Any], row: pd.Series, positive: Hashable) -> GroupOverrides:
    reviews, model_positive = int(row["reviews"]), int(row["model_positive"])
    model_negative = reviews - model_positive
    withdrawn, granted = int(row["positive_to_negative"]), int(row["negative_to_positive"])
    net = (granted - withdrawn) / reviews
    if not (withdrawn or granted):
        direction = "no overrides"
    elif granted == withdrawn:
        direction = "balanced"
    else:
        direction = "towards positive" if granted > withdrawn else "away from positive"
    label = ", ".join(f"{attribute} = {value}" for attribute, value in group.items())
    summary = (
        f"On {label}, reviewer {reviewer} changed {withdrawn} of {model_positive} model {positive} labels away from "
        f"{positive} and {granted} of {model_negative} other labels to {positive}"
    )
    summary += (
        "."
        if direction in ("no overrides", "balanced")
        else f": net {net * 100:+.0f} percentage points of {positive} rate, "
        f"{direction.replace('positive', str(positive))}."
    )
    return GroupOverrides(
        group={attribute: _json_value(value) for attribute, value in group.items()},
        label=label,
        reviews=reviews,
        model_positive=model_positive,
        model_negative=model_negative,
        positive_to_negative=withdrawn,
        negative_to_positive=granted,
        positive_to_negative_rate=withdrawn / model_positive if model_positive else None,
        negative_to_positive_rate=granted / model_negative if model_negative else None,
        net_selection_change=net,
        direction=direction,
        summary=summary,
    )


# Plain JSON


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {item.name: _plain(getattr(value, item.name)) for item in fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return _json_value(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _json_float(value: Any) -> float | None:
    number = float(value)
    return None if math.isnan(number) else number


def _sort_key(value: Any) -> tuple:
    return (0,) if value is None else (1, type(value).__name__, value)
