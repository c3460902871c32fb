"""Population stability index (PSI) of recent intake against a model version's training snapshot. Pure: no Django.

Two steps, so the raw training data need not be kept:

1. ``drift_reference_build`` summarises the reference (the base version's training snapshot) as plain JSON: per
   numeric feature (and the model's confidence) the bin edges and the share of cases in each bin, per categorical
   feature the share of each category, plus the share of missing values and the number of cases. Store it with
   the version's training snapshot.
2. ``drift_compare`` bins recent intake the same way and computes, per feature,
   ``PSI = sum over buckets of (a - e) * ln(a / e)``, where ``e`` is the reference's share of a bucket and ``a``
   the recent one. A feature has drifted when its PSI is above the threshold (by convention 0.1 is a moderate
   shift and 0.25 a significant one; the threshold is an argument, 0.25 by default).

Buckets:

- Numeric: the edges are the reference's quantiles at 1/bins, 2/bins, ... (bins - 1)/bins, taken as observed
  values (the "inverted CDF" definition: the smallest value with at least that share of cases at or below it),
  duplicates collapsed, so ties and constant columns give fewer, wider bins instead of empty ones. Bins are
  closed on the right and the outer ones open: (-inf, e1], (e1, e2], ..., (e_last, +inf). When the first bin
  would hold only the reference's minimum (a constant column, or a point mass at the minimum such as many
  zeros), a second edge just below the minimum (the next float down, 4.999999999999999 for 5) keeps values
  below it apart, so a shift downward shows as well as one upward; labels read those bins as "below 5" and
  "equal to 5".
- Categorical: one bucket per category of the reference, and one pooled bucket for every category the reference
  never saw. Categories are compared by their text: strings as they are, other scalars as JSON (1 -> "1",
  True -> "true"), so the string "1" and the number 1 are one category.
- Missing values (None or NaN) form a bucket of their own in every feature; shares are of all cases, missing
  ones included, so a rise in missing values is drift too.

Empty buckets: a share of 0 makes ln(a / e) undefined, so every share is raised to at least ``EMPTY_SHARE`` =
1e-4 (as if the bucket held one case in 10,000) before the sum. A bucket empty on both sides adds exactly 0. The
floor sets how loud a bucket that is new in recent intake is on its own: 5% of recent cases where the reference
had none adds (0.05 - 0.0001) * ln(0.05 / 0.0001) = 0.31, a significant shift; 1% adds 0.046, not one. A
share above 0 can fall under the floor only in a sample of more than 10,000 cases, so on smaller samples the
floor changes empty buckets and nothing else. PSI stays symmetric (swapping reference and recent shares gives
the same value) and is 0 exactly when the shares are equal.
"""

import json
import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from numbers import Real
from typing import Any

from reviews.routing import format_number

REFERENCE_FORMAT = 1
DEFAULT_BINS = 10
EMPTY_SHARE = 1e-4
MODERATE_PSI = 0.1
SIGNIFICANT_PSI = 0.25

NUMERIC = "numeric"
CATEGORICAL = "categorical"
CONFIDENCE = "confidence"

DRIFTED = "drifted"
STABLE = "stable"
NOT_COMPARED = "not compared"

BIN = "bin"
CATEGORY = "category"
UNSEEN = "unseen"
MISSING = "missing"
MISSING_LABEL = "missing"
UNSEEN_LABEL = "not seen in the reference"
# The result lists the most frequent unseen categories only: a free-text field could have thousands.
UNSEEN_LISTED = 10

# A bucket before its contribution is known: kind, label, reference share, recent share, lower, upper.
_Row = tuple[str, str, float, float, float | None, float | None]


@dataclass(frozen=True, slots=True)
class DriftBucket:
    """One bucket of a feature, by ``kind``: a numeric ``bin`` (``lower`` < x <= ``upper``, None = open), a
    ``category`` of the reference, the pooled ``unseen`` categories, or the ``missing`` values."""

    kind: str
    label: str
    reference_share: float
    recent_share: float
    contribution: float
    lower: float | None = None
    upper: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """One feature's PSI (None when either side has no cases), its buckets before and after, and a sentence."""

    name: str
    kind: str
    psi: float | None
    drifted: bool
    reference_n: int
    recent_n: int
    buckets: tuple[DriftBucket, ...]
    unseen_categories: tuple[str, ...]
    sentence: str

    def as_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


@dataclass(frozen=True, slots=True)
class DriftReport:
    """Every feature of the reference compared with recent intake, and the verdict against the threshold.

    ``verdict`` is ``drifted`` when any feature's PSI is above the threshold, ``stable`` when at least one
    feature was compared and none is, ``not compared`` when no feature had cases on both sides.
    ``features_without_reference`` names recent features the reference does not know (not compared).
    """

    threshold: float
    verdict: str
    max_psi: float | None
    drifted_features: tuple[str, ...]
    features: tuple[FeatureDrift, ...]
    features_without_reference: tuple[str, ...]
    sentences: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


def population_stability_index(*, expected: Sequence[float], actual: Sequence[float]) -> float:
    """sum((a - e) * ln(a / e)) over paired shares, each share floored at ``EMPTY_SHARE``; symmetric, >= 0."""
    return sum(_contributions(expected=expected, actual=actual))


def drift_reference_build(
    *,
    numeric: Mapping[str, Sequence[Any]],
    categorical: Mapping[str, Sequence[Any]],
    confidence: Sequence[Any] | None = None,
    bins: int = DEFAULT_BINS,
) -> dict[str, Any]:
    """The JSON summary of a reference population that ``drift_compare`` compares recent intake against.

    ``numeric`` and ``categorical`` map a feature name to its values, one per case (None or NaN = missing);
    ``confidence`` is the model's confidence per case, binned like a numeric feature. ``bins`` (>= 2) is the
    number of quantile bins before duplicate edges collapse. Shape::

        {"format": 1, "bins": 10,
         "numeric": {name: {"n": 1000, "edges": [...], "shares": [...], "missing_share": 0.0}},
         "categorical": {name: {"n": 1000, "shares": {"car": 0.4, ...}, "missing_share": 0.0}},
         "confidence": {"n": ..., "edges": ..., "shares": ..., "missing_share": ...} or null}

    ``shares`` has one entry per bin (``len(edges) + 1``); shares are of all n cases, so they sum, with the
    missing share, to 1. Raises ValueError on a numeric value that is not a finite number.
    """
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise ValueError(f"bins must be an integer of at least 2, not {bins!r}.")
    overlap = set(numeric) & set(categorical)
    if overlap:
        raise ValueError(f"Features cannot be both numeric and categorical: {', '.join(sorted(overlap))}.")
    return {
        "format": REFERENCE_FORMAT,
        "bins": bins,
        "numeric": {name: _numeric_reference(name, values, bins) for name, values in numeric.items()},
        "categorical": {name: _categorical_reference(values) for name, values in categorical.items()},
        "confidence": None if confidence is None else _numeric_reference(CONFIDENCE, confidence, bins),
    }


def drift_compare(
    *,
    reference: Mapping[str, Any],
    features: Mapping[str, Sequence[Any]],
    confidence: Sequence[Any] | None = None,
    threshold: float = SIGNIFICANT_PSI,
    noun: str = "cases",
) -> DriftReport:
    """PSI of recent intake against a reference from ``drift_reference_build``, per feature and overall.

    ``features`` maps a feature name to its recent values, one per case; the reference decides whether a
    feature is numeric or categorical. ``confidence`` is the model's confidence on the recent cases (compared
    when the reference has one). A feature of the reference absent from ``features`` is reported with no PSI;
    a feature the reference does not know is listed in ``features_without_reference``. A feature has drifted
    when its PSI is above ``threshold`` (> 0). ``noun`` names the cases in the sentences ("applications").
    Features come out numeric and categorical ones by name, then the confidence (name and kind
    ``confidence``). Raises ValueError on a value of a numeric feature that is not a finite number.
    """
    if reference.get("format") != REFERENCE_FORMAT:
        raise ValueError(f"Unknown drift reference format {reference.get('format')!r}; expected {REFERENCE_FORMAT}.")
    if not threshold > 0:
        raise ValueError(f"The PSI threshold must be above 0, not {threshold!r}.")
    numeric = reference["numeric"]
    categorical = reference["categorical"]
    results = []
    for name in sorted({*numeric, *categorical}):
        recent = features.get(name)
        if name in numeric:
            results.append(_numeric_drift(name, NUMERIC, numeric[name], recent, threshold=threshold, noun=noun))
        else:
            results.append(_categorical_drift(name, categorical[name], recent, threshold=threshold, noun=noun))
    if reference.get("confidence") is not None:
        results.append(
            _numeric_drift(CONFIDENCE, CONFIDENCE, reference["confidence"], confidence, threshold=threshold, noun=noun)
        )
    compared = [result.psi for result in results if result.psi is not None]
    drifted = tuple(result.name for result in results if result.drifted)
    without_reference = tuple(sorted(set(features) - set(numeric) - set(categorical)))
    sentences = [result.sentence for result in results]
    sentences += [f"{name}: not in the reference, so not compared" for name in without_reference]
    return DriftReport(
        threshold=threshold,
        verdict=DRIFTED if drifted else STABLE if compared else NOT_COMPARED,
        max_psi=max(compared) if compared else None,
        drifted_features=drifted,
        features=tuple(results),
        features_without_reference=without_reference,
        sentences=tuple(sentences),
    )


def _numeric_reference(name: str, values: Sequence[Any], bins: int) -> dict[str, Any]:
    present, missing = _numbers(name, values)
    count = len(present)
    edges: list[float] = []
    if present:
        ordered = sorted(present)
        # The inverted-CDF quantile at i / bins, in integers: the ceil(count * i / bins)-th smallest value.
        edges = sorted({ordered[(count * i + bins - 1) // bins - 1] for i in range(1, bins)})
        if edges[0] == ordered[0]:
            edges = sorted({math.nextafter(ordered[0], -math.inf), ordered[0], *edges})
    total = count + missing
    counts = _bin_counts(edges, present)
    return {
        "n": total,
        "edges": edges,
        "shares": [bin_count / total if total else 0.0 for bin_count in counts],
        "missing_share": missing / total if total else 0.0,
    }


def _categorical_reference(values: Sequence[Any]) -> dict[str, Any]:
    keys = [_category_key(value) for value in values]
    total = len(keys)
    counts = Counter(key for key in keys if key is not None)
    return {
        "n": total,
        "shares": {key: count / total for key, count in counts.items()},
        "missing_share": (total - sum(counts.values())) / total if total else 0.0,
    }


def _numeric_drift(
    name: str, kind: str, summary: Mapping[str, Any], recent: Sequence[Any] | None, *, threshold: float, noun: str
) -> FeatureDrift:
    edges = [float(edge) for edge in summary["edges"]]
    present, missing = _numbers(name, recent or [])
    total = len(present) + missing
    recent_shares = [count / total if total else 0.0 for count in _bin_counts(edges, present)]
    bounds = [None, *edges, None]
    labels = [_bin_label(edges, index) for index in range(len(edges) + 1)]
    buckets: list[_Row] = [
        (BIN, label, float(reference_share), recent_share, bounds[index], bounds[index + 1])
        for index, (label, reference_share, recent_share) in enumerate(
            zip(labels, summary["shares"], recent_shares, strict=True)
        )
    ]
    missing_shares = (float(summary["missing_share"]), missing / total if total else 0.0)
    if any(missing_shares):
        buckets.append((MISSING, MISSING_LABEL, *missing_shares, None, None))
    return _feature_drift(
        name, kind, summary["n"], total, buckets, (), threshold=threshold, noun=noun, ordered=len(labels)
    )


def _categorical_drift(
    name: str, summary: Mapping[str, Any], recent: Sequence[Any] | None, *, threshold: float, noun: str
) -> FeatureDrift:
    keys = [_category_key(value) for value in recent or []]
    total = len(keys)
    counts = Counter(key for key in keys if key is not None)
    reference_shares = {key: float(share) for key, share in summary["shares"].items()}
    # Stored JSON may come back with its keys reordered (PostgreSQL's jsonb does), so order here.
    categories = sorted(reference_shares, key=lambda key: (-reference_shares[key], key))
    unseen = sorted((key for key in counts if key not in reference_shares), key=lambda key: (-counts[key], key))
    buckets: list[_Row] = [
        (CATEGORY, category, reference_shares[category], counts[category] / total if total else 0.0, None, None)
        for category in categories
    ]
    if unseen:
        buckets.append((UNSEEN, UNSEEN_LABEL, 0.0, sum(counts[key] for key in unseen) / total, None, None))
    missing_shares = (float(summary["missing_share"]), (total - sum(counts.values())) / total if total else 0.0)
    if any(missing_shares):
        buckets.append((MISSING, MISSING_LABEL, *missing_shares, None, None))
    return _feature_drift(
        name,
        CATEGORICAL,
        summary["n"],
        total,
        buckets,
        tuple(unseen[:UNSEEN_LISTED]),
        threshold=threshold,
        noun=noun,
        ordered=0,
    )


def _feature_drift(
    name: str,
    kind: str,
    reference_n: int,
    recent_n: int,
    buckets: list[_Row],
    unseen: tuple[str, ...],
    *,
    threshold: float,
    noun: str,
    ordered: int,
) -> FeatureDrift:
    """``ordered`` is how many leading buckets are numeric bins in order, which a sentence may join into a range."""
    compared = bool(reference_n and recent_n)
    contributions = (
        _contributions(expected=[bucket[2] for bucket in buckets], actual=[bucket[3] for bucket in buckets])
        if compared
        else [0.0] * len(buckets)
    )
    drift_buckets = tuple(
        DriftBucket(
            kind=bucket_kind,
            label=label,
            reference_share=reference_share,
            recent_share=recent_share,
            contribution=contribution,
            lower=lower,
            upper=upper,
        )
        for (bucket_kind, label, reference_share, recent_share, lower, upper), contribution in zip(
            buckets, contributions, strict=True
        )
    )
    psi = float(sum(contributions)) if compared else None
    drifted = psi is not None and psi > threshold
    title = "the model's confidence" if kind == CONFIDENCE else name
    if not reference_n:
        sentence = f"{title}: no cases in the reference, so not compared"
    elif psi is None:
        sentence = f"{title}: no recent values, so not compared"
    elif drifted:
        sentence = (
            f"{title} shifted (PSI {_format_psi(psi, threshold)} > {format_number(threshold)}): "
            f"{_largest_change(name, kind, drift_buckets, unseen, noun=noun, ordered=ordered)}"
        )
    else:
        sentence = f"{title} stable (PSI {_format_psi(psi, threshold)} <= {format_number(threshold)})"
    return FeatureDrift(
        name=name,
        kind=kind,
        psi=psi,
        drifted=drifted,
        reference_n=reference_n,
        recent_n=recent_n,
        buckets=drift_buckets,
        unseen_categories=unseen,
        sentence=sentence,
    )


def _largest_change(
    name: str, kind: str, buckets: tuple[DriftBucket, ...], unseen: tuple[str, ...], *, noun: str, ordered: int
) -> str:
    """The largest move of share, in words: neighbouring numeric bins that moved the same way count as one range.

    A range beats a single bucket when more of the cases moved through it; on a tie, where cases went (a rise)
    is told rather than where they left.
    """
    spans = []
    first = 0
    for index in range(1, ordered + 1):
        if index == ordered or _direction(buckets[index]) != _direction(buckets[first]):
            spans.append((first, index))
            first = index
    spans += [(index, index + 1) for index in range(ordered, len(buckets))]
    first, stop = max(
        spans,
        key=lambda span: (
            # Rounded so that float noise in a sum of shares does not break a tie.
            round(abs(sum(_change(bucket) for bucket in buckets[span[0] : span[1]])), 9),
            _direction(buckets[span[0]]),
        ),
    )
    span = buckets[first:stop]
    recent_share = sum(bucket.recent_share for bucket in span)
    reference_share = sum(bucket.reference_share for bucket in span)
    if first < ordered and span[0].lower is None and span[-1].upper is None:
        where = f"with {name} given"
    elif first < ordered:
        edges = [bucket.upper for bucket in buckets[: ordered - 1] if bucket.upper is not None]
        where = _range_words(edges, span[0].lower, span[-1].upper)
        if kind == CONFIDENCE:
            where = f"with a confidence {where}"
    elif span[0].kind == MISSING:
        where = f"with {name} missing"
    elif span[0].kind == UNSEEN:
        where = f"with a {name} not seen in the reference ({', '.join(unseen)})"
    else:
        where = f"with {name} = {span[0].label}"
    return (
        f"{'more' if recent_share > reference_share else 'fewer'} {noun} {where} "
        f"({_format_share(recent_share)} of recent {noun} vs {_format_share(reference_share)} in the reference)"
    )


def _change(bucket: DriftBucket) -> float:
    return bucket.recent_share - bucket.reference_share


def _direction(bucket: DriftBucket) -> int:
    change = _change(bucket)
    return (change > 0) - (change < 0)


def _bin_label(edges: Sequence[float], index: int) -> str:
    lower = edges[index - 1] if index > 0 else None
    upper = edges[index] if index < len(edges) else None
    return _range_words(edges, lower, upper)


def _range_words(edges: Sequence[float], lower: float | None, upper: float | None) -> str:
    """(lower, upper] in words, naming the bins split off at a point mass by the value they isolate."""
    if upper is not None and lower is None:
        if _is_point_split(edges, upper):
            return f"below {format_number(math.nextafter(upper, math.inf))}"
        return f"at or below {format_number(upper)}"
    if lower is not None and upper is None:
        return f"above {format_number(lower)}"
    if lower is None or upper is None:
        return "at any value"
    if _is_point_split(edges, lower):
        point = math.nextafter(lower, math.inf)
        if upper == point:
            return f"equal to {format_number(point)}"
        return f"from {format_number(point)} up to {format_number(upper)}"
    return f"above {format_number(lower)} up to {format_number(upper)}"


def _is_point_split(edges: Sequence[float], edge: float) -> bool:
    """Whether ``edge`` is the one placed just below the minimum to keep the minimum's bin to itself."""
    return len(edges) >= 2 and edge == edges[0] and edges[1] == math.nextafter(edge, math.inf)


def _contributions(*, expected: Sequence[float], actual: Sequence[float]) -> list[float]:
    if len(expected) != len(actual):
        raise ValueError(f"Shares must pair up: {len(expected)} expected against {len(actual)} actual.")
    contributions = []
    for expected_share, actual_share in zip(expected, actual, strict=True):
        e = max(float(expected_share), EMPTY_SHARE)
        a = max(float(actual_share), EMPTY_SHARE)
        contributions.append((a - e) * math.log(a / e))
    return contributions


def _bin_counts(edges: Sequence[float], values: Sequence[float]) -> list[int]:
    """Counts per bin (-inf, e1], (e1, e2], ..., (e_last, +inf)."""
    counts = [0] * (len(edges) + 1)
    for value in values:
        counts[bisect_left(edges, value)] += 1
    return counts


def _numbers(name: str, values: Sequence[Any]) -> tuple[list[float], int]:
    """The finite numbers among ``values`` and how many were missing (None or NaN)."""
    present = []
    missing = 0
    for value in values:
        if value is None:
            missing += 1
            continue
        if isinstance(value, bool) or not isinstance(value, Real):
            raise ValueError(f"{name}: {value!r} is not a number.")
        number = float(value)
        if math.isnan(number):
            missing += 1
        elif math.isinf(number):
            raise ValueError(f"{name}: {value!r} is not a finite number.")
        else:
            present.append(number)
    return present, missing


def _category_key(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        return str(value)
    if callable(getattr(value, "item", None)):
        # A numpy scalar (a pandas column's values): its Python value, so 1 and numpy's 1 are one category.
        return _category_key(value.item())
    if not isinstance(value, bool | Real):
        raise ValueError(f"{value!r} is not a category (a string, number or boolean).")
    return json.dumps(value)


def _format_psi(psi: float, threshold: float) -> str:
    """Two decimals, more when two would print a PSI on the other side of the threshold as equal to it."""
    for decimals in range(2, 7):
        text = f"{psi:.{decimals}f}"
        shown = float(text)
        if (shown > threshold) == (psi > threshold) and (shown != threshold or psi == threshold):
            return text
    return f"{psi:.6f}"


def _format_share(share: float) -> str:
    percent = share * 100
    if percent and round(percent) == 0:
        return f"{percent:.1f}%"
    return f"{round(percent)}%"


def _plain(value: Any) -> Any:
    """asdict keeps tuples; JSON has lists."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
