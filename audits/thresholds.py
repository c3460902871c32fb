"""A recommended auto-decide confidence threshold, from cases whose human answer is known. Pure: no Django.

A recommendation only: nothing here changes a routing policy; a person reads it and decides.

Input:

- labelled cases, each ``(confidence, model_wrong)``: the model's confidence and whether the human final label
  differs from the model's label (QA-sampled auto decisions and reviewed cases);
- the confidences of all recent cases (None: no confidence, never decided automatically), over ``recent_days``;
- the reviewers' measured capacity (reviews a day) and the reviews each reviewed case takes.

What is computed:

- For each candidate threshold ``t`` of the grid (0.50, 0.51, ... 0.99 by default), over labelled cases with
  confidence >= t (the ones the router would decide alone at t): n, errors k, the error rate k / n and its
  one-sided Clopper-Pearson upper bound at ``confidence_level``, the ``confidence_level`` quantile of
  Beta(k + 1, n - k), which is 1 - alpha ** (1 / n) for k = 0 (alpha = 1 - confidence_level) and 1 for k = n.
  The exact bound holds for any n, so a small sample cannot pass for a safe one: with no error at all, it
  stays above 2% until 149 labelled cases at 95%.
- The recommendation: the lowest threshold of the grid whose upper bound is below ``target_error_rate``; none,
  with the reason, when no threshold qualifies.
- At the current and the recommended threshold, an operating point: the automation rate (share of recent cases
  with confidence >= t), the error rate with its bound, and the review load: recent cases a day below t, plus
  the QA sample of those above, times reviews per case, against the capacity. The difference, in cases a day,
  is how fast the queue grows or how much room the team has.
- Per confidence band (below 0.50, then 0.50-0.55, ... 0.95-1.00; each band includes its lower end, the last
  also 1.00): n, errors, error rate with its bound, mean confidence and observed accuracy, which is the
  reliability (calibration) chart's data.

Assumptions to keep in mind when reading the figures: labelled cases stand for all the cases of their
confidence. Reviewed cases (below the current threshold) are labelled in full and auto-decided ones only at the
QA sample rate, so the pooled error rate above a threshold under the current one leans on the less confident
cases; for a model whose errors fall as its confidence rises, that errs on the side of caution. Business
rules and the stop switch send cases to review whatever their confidence: pass only the confidences of cases
no rule catches to see the threshold's own effect. Picking the lowest of many thresholds, each bounded at 95%,
is less certain than any single bound: choose a stricter confidence level where that matters.
"""

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from numbers import Real
from typing import Any

from scipy.stats import beta

from reviews.routing import format_number, format_probability, format_rate

DEFAULT_GRID = tuple(i / 100 for i in range(50, 100))
DEFAULT_BAND_EDGES = (0.0, *(i / 100 for i in range(50, 101, 5)))
DEFAULT_TARGET_ERROR_RATE = 0.02
DEFAULT_CONFIDENCE_LEVEL = 0.95


@dataclass(frozen=True, slots=True)
class ConfidenceBand:
    """Labelled cases with ``lower`` <= confidence < ``upper`` (the last band also takes ``upper``)."""

    lower: float
    upper: float
    n: int
    errors: int
    error_rate: float | None
    error_upper_bound: float | None
    mean_confidence: float | None
    accuracy: float | None

    def as_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


@dataclass(frozen=True, slots=True)
class CandidateThreshold:
    """Labelled cases at or above ``threshold``: errors, rate and bound; ``qualifies`` = bound < the target."""

    threshold: float
    n: int
    errors: int
    error_rate: float | None
    error_upper_bound: float | None
    automation_rate: float | None
    qualifies: bool

    def as_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """What a threshold would mean: automation, errors, and the daily review load against the team's capacity.

    ``review_cases_per_day`` = cases a day below the threshold + the QA sample of those above it;
    ``reviews_needed_per_day`` = that x reviews per case; ``queue_growth_per_day`` = (reviews needed - capacity)
    / reviews per case, in cases: positive, the queue grows; negative, the team has that much room.
    Rates are None without recent (or labelled) cases.
    """

    threshold: float
    automation_rate: float | None
    n: int
    errors: int
    error_rate: float | None
    error_upper_bound: float | None
    cases_per_day: float
    review_cases_per_day: float
    reviews_needed_per_day: float
    reviewer_capacity_per_day: float
    queue_growth_per_day: float
    error_sentence: str
    workload_sentence: str

    def as_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


@dataclass(frozen=True, slots=True)
class ThresholdRecommendation:
    """The recommended threshold (None when none qualifies), why, and the figures behind it."""

    target_error_rate: float
    confidence_level: float
    recommended_threshold: float | None
    reason: str
    current: OperatingPoint
    recommended: OperatingPoint | None
    labelled_n: int
    recent_n: int
    candidates: tuple[CandidateThreshold, ...]
    bands: tuple[ConfidenceBand, ...]
    sentences: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


def clopper_pearson_upper(*, errors: int, n: int, confidence_level: float = DEFAULT_CONFIDENCE_LEVEL) -> float | None:
    """One-sided exact upper bound on a binomial rate: P(rate <= bound) >= ``confidence_level``; None for n = 0.

    The ``confidence_level`` quantile of Beta(errors + 1, n - errors); 1 when every case is an error. It equals
    the upper end of the two-sided exact interval at 1 - 2 * (1 - confidence_level).
    """
    _check_rate("confidence level", confidence_level)
    if n < 0 or not 0 <= errors <= n:
        raise ValueError(f"Need 0 <= errors <= n, not {errors} errors of {n}.")
    if n == 0:
        return None
    if errors == n:
        return 1.0
    return float(beta.ppf(confidence_level, errors + 1, n - errors))


def minimum_labelled_cases(
    *, target_error_rate: float = DEFAULT_TARGET_ERROR_RATE, confidence_level: float = DEFAULT_CONFIDENCE_LEVEL
) -> int:
    """The fewest labelled cases whose upper bound, with no error at all, is below ``target_error_rate``.

    Smallest n with 1 - alpha ** (1 / n) < target, that is n > ln(alpha) / ln(1 - target): 149 for 2% at 95%.
    """
    _check_rate("target error rate", target_error_rate)
    _check_rate("confidence level", confidence_level)
    estimate = max(1, math.floor(math.log(1 - confidence_level) / math.log(1 - target_error_rate)))
    # The closed form is a float: settle the boundary with the bound itself.
    while estimate > 1 and _zero_error_bound(estimate - 1, confidence_level) < target_error_rate:
        estimate -= 1
    while _zero_error_bound(estimate, confidence_level) >= target_error_rate:
        estimate += 1
    return estimate


def threshold_recommend(
    *,
    labelled: Iterable[tuple[float, bool]],
    recent_confidences: Iterable[float | None],
    recent_days: float,
    reviewer_capacity_per_day: float,
    reviews_per_case: float,
    current_threshold: float,
    qa_sample_rate: float = 0.0,
    target_error_rate: float = DEFAULT_TARGET_ERROR_RATE,
    confidence_level: float = DEFAULT_CONFIDENCE_LEVEL,
    grid: Sequence[float] = DEFAULT_GRID,
    band_edges: Sequence[float] = DEFAULT_BAND_EDGES,
) -> ThresholdRecommendation:
    """The lowest threshold of ``grid`` whose error-rate upper bound is below ``target_error_rate``, with the
    operating points at the current and the recommended threshold and the per-band calibration figures.

    ``labelled``: (confidence, model_wrong) per case whose human answer is known. ``recent_confidences``: every
    recent case's confidence, received over ``recent_days``. ``reviewer_capacity_per_day``: reviews the team
    submitted a day (measured, e.g. over the last two weeks). ``reviews_per_case``: reviews one reviewed case
    takes (the policy's reviews required, or the measured mean). ``qa_sample_rate``: share of automatic decisions
    also sent to review. ``grid`` must ascend; ``band_edges`` must ascend from 0 to 1.
    """
    _check_rate("target error rate", target_error_rate)
    _check_rate("confidence level", confidence_level)
    if not 0 <= qa_sample_rate <= 1:
        raise ValueError(f"The QA sample rate must be between 0 and 1, not {qa_sample_rate!r}.")
    if not recent_days > 0 or not reviews_per_case > 0 or not reviewer_capacity_per_day >= 0:
        raise ValueError("recent_days and reviews_per_case must be above 0, and the capacity at least 0.")
    if not grid or any(not 0 <= t <= 1 for t in grid) or list(grid) != sorted(set(grid)):
        raise ValueError("The grid must hold ascending, distinct thresholds between 0 and 1.")
    if len(band_edges) < 2 or band_edges[0] != 0 or band_edges[-1] != 1 or list(band_edges) != sorted(set(band_edges)):
        raise ValueError("Band edges must ascend from 0 to 1.")
    _check_confidence(current_threshold)
    cases = sorted((_check_confidence(confidence), bool(wrong)) for confidence, wrong in labelled)
    recent = [None if confidence is None else _check_confidence(confidence) for confidence in recent_confidences]

    labelled_cases = _Labelled(cases)
    workload = _Workload(
        recent_n=len(recent),
        decidable=sorted(confidence for confidence in recent if confidence is not None),
        cases_per_day=len(recent) / recent_days,
        capacity=float(reviewer_capacity_per_day),
        reviews_per_case=float(reviews_per_case),
        qa_sample_rate=float(qa_sample_rate),
    )
    candidates = tuple(
        _candidate(labelled_cases, workload, t, target_error_rate=target_error_rate, confidence_level=confidence_level)
        for t in grid
    )
    chosen = next((candidate for candidate in candidates if candidate.qualifies), None)
    reason = _reason(cases, candidates, chosen, target_error_rate=target_error_rate, confidence_level=confidence_level)
    current = _operating_point(labelled_cases, workload, current_threshold, confidence_level=confidence_level)
    recommended = (
        None
        if chosen is None
        else _operating_point(labelled_cases, workload, chosen.threshold, confidence_level=confidence_level)
    )
    sentences = [reason, current.error_sentence, current.workload_sentence]
    if recommended is not None and chosen is not None and chosen.threshold != current_threshold:
        sentences += [recommended.error_sentence, recommended.workload_sentence]
    elif recommended is not None:
        sentences.append(f"the current threshold, {format_probability(current_threshold)}, is the recommended one")
    return ThresholdRecommendation(
        target_error_rate=target_error_rate,
        confidence_level=confidence_level,
        recommended_threshold=None if chosen is None else chosen.threshold,
        reason=reason,
        current=current,
        recommended=recommended,
        labelled_n=len(cases),
        recent_n=len(recent),
        candidates=candidates,
        bands=_bands(cases, band_edges, confidence_level=confidence_level),
        sentences=tuple(sentences),
    )


class _Labelled:
    """Labelled cases by ascending confidence, with the errors from each position to the end counted once."""

    def __init__(self, cases: list[tuple[float, bool]]):
        self.confidences = [confidence for confidence, _ in cases]
        self.errors_from = [0] * (len(cases) + 1)
        for index in range(len(cases) - 1, -1, -1):
            self.errors_from[index] = self.errors_from[index + 1] + cases[index][1]

    def above(self, threshold: float) -> tuple[int, int]:
        """Cases the router would decide alone at ``threshold`` (confidence >= it), and their errors."""
        index = bisect_left(self.confidences, threshold)
        return len(self.confidences) - index, self.errors_from[index]


@dataclass(frozen=True, slots=True)
class _Workload:
    """Recent intake and the team: ``decidable`` holds the recent confidences that are not None, ascending."""

    recent_n: int
    decidable: list[float]
    cases_per_day: float
    capacity: float
    reviews_per_case: float
    qa_sample_rate: float

    def automation_rate(self, threshold: float) -> float | None:
        if not self.recent_n:
            return None
        return (len(self.decidable) - bisect_left(self.decidable, threshold)) / self.recent_n


def _candidate(
    labelled: _Labelled,
    workload: _Workload,
    threshold: float,
    *,
    target_error_rate: float,
    confidence_level: float,
) -> CandidateThreshold:
    n, errors = labelled.above(threshold)
    bound = clopper_pearson_upper(errors=errors, n=n, confidence_level=confidence_level)
    return CandidateThreshold(
        threshold=threshold,
        n=n,
        errors=errors,
        error_rate=errors / n if n else None,
        error_upper_bound=bound,
        automation_rate=workload.automation_rate(threshold),
        qualifies=bound is not None and bound < target_error_rate,
    )


def _operating_point(
    labelled: _Labelled, workload: _Workload, threshold: float, *, confidence_level: float
) -> OperatingPoint:
    n, errors = labelled.above(threshold)
    bound = clopper_pearson_upper(errors=errors, n=n, confidence_level=confidence_level)
    automation = workload.automation_rate(threshold)
    automated_share = automation or 0.0
    review_cases = workload.cases_per_day * ((1 - automated_share) + automated_share * workload.qa_sample_rate)
    reviews_needed = review_cases * workload.reviews_per_case
    growth = (reviews_needed - workload.capacity) / workload.reviews_per_case
    at = f"at {format_probability(threshold)}"
    if n:
        error_sentence = (
            f"{at}, the error rate of automatic decisions is {_percent(errors / n)} "
            f"(at most {_percent(bound or 0.0)} at {format_rate(confidence_level)} confidence; "
            f"{errors:,} errors in {n:,} labelled cases)"
        )
    else:
        error_sentence = f"{at}, no labelled case is at or above the threshold, so its error rate is unknown"
    if automation is not None:
        error_sentence += f"; {_percent(automation)} of recent cases would be decided automatically"
    figures = (
        f"{format_number(round(reviews_needed, 1))} reviews needed a day against "
        f"{format_number(round(workload.capacity, 1))} done"
    )
    if automation is None:
        workload_sentence = f"{at}, there are no recent cases to estimate the review load from"
    elif round(growth) > 0:
        workload_sentence = (
            f"{at} the queue grows by about {_cases(round(growth))} a day beyond what the team decides ({figures})"
        )
    elif round(growth) < 0:
        workload_sentence = f"{at} the team has room for about {_cases(round(-growth), more=True)} a day ({figures})"
    else:
        workload_sentence = f"{at} the review load about matches what the team decides ({figures})"
    return OperatingPoint(
        threshold=threshold,
        automation_rate=automation,
        n=n,
        errors=errors,
        error_rate=errors / n if n else None,
        error_upper_bound=bound,
        cases_per_day=workload.cases_per_day,
        review_cases_per_day=review_cases,
        reviews_needed_per_day=reviews_needed,
        reviewer_capacity_per_day=workload.capacity,
        queue_growth_per_day=growth,
        error_sentence=error_sentence,
        workload_sentence=workload_sentence,
    )


def _reason(
    cases: list[tuple[float, bool]],
    candidates: tuple[CandidateThreshold, ...],
    chosen: CandidateThreshold | None,
    *,
    target_error_rate: float,
    confidence_level: float,
) -> str:
    level = format_rate(confidence_level)
    target = _percent(target_error_rate)
    if chosen is not None:
        return (
            f"{format_probability(chosen.threshold)} is the lowest threshold whose {level} upper bound on the error "
            f"rate of automatic decisions ({_percent(chosen.error_upper_bound or 0.0, against=target_error_rate)}; "
            f"{chosen.errors:,} errors in {chosen.n:,} labelled cases) is under {target}"
        )
    if not cases:
        return (
            "no threshold recommended: there are no labelled cases (QA samples and reviews) to measure the "
            "error rate of automatic decisions on"
        )
    needed = minimum_labelled_cases(target_error_rate=target_error_rate, confidence_level=confidence_level)
    widest = candidates[0]
    if widest.n < needed:
        return (
            f"no threshold recommended: too few labelled cases ({widest.n:,} at or above "
            f"{format_probability(widest.threshold)}); even with no error, the {level} upper bound stays at or "
            f"above {target} below {needed:,} cases"
        )
    best = min(
        (candidate for candidate in candidates if candidate.error_upper_bound is not None),
        key=lambda candidate: candidate.error_upper_bound or 0.0,
    )
    return (
        f"no threshold recommended: none keeps the {level} upper bound on the error rate under {target}; the "
        f"lowest is {_percent(best.error_upper_bound or 0.0, against=target_error_rate)} "
        f"at {format_probability(best.threshold)} "
        f"({best.errors:,} errors in {best.n:,} labelled cases)"
    )


def _bands(
    cases: list[tuple[float, bool]], edges: Sequence[float], *, confidence_level: float
) -> tuple[ConfidenceBand, ...]:
    members: list[list[tuple[float, bool]]] = [[] for _ in edges[1:]]
    for confidence, wrong in cases:
        members[min(bisect_right(edges, confidence), len(edges) - 1) - 1].append((confidence, wrong))
    bands = []
    for index, band in enumerate(members):
        n = len(band)
        errors = sum(wrong for _, wrong in band)
        bands.append(
            ConfidenceBand(
                lower=edges[index],
                upper=edges[index + 1],
                n=n,
                errors=errors,
                error_rate=errors / n if n else None,
                error_upper_bound=clopper_pearson_upper(errors=errors, n=n, confidence_level=confidence_level),
                mean_confidence=sum(confidence for confidence, _ in band) / n if n else None,
                accuracy=(n - errors) / n if n else None,
            )
        )
    return tuple(bands)


def _zero_error_bound(n: int, confidence_level: float) -> float:
    return 1 - (1 - confidence_level) ** (1 / n)


def _check_rate(name: str, value: float) -> None:
    if not 0 < value < 1:
        raise ValueError(f"The {name} must be between 0 and 1, not {value!r}.")


def _check_confidence(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 <= float(value) <= 1:
        raise ValueError(f"A confidence must be a number between 0 and 1, not {value!r}.")
    return float(value)


def _cases(count: int, *, more: bool = False) -> str:
    return f"{count:,} {'more ' if more else ''}case{'' if count == 1 else 's'}"


def _percent(rate: float, *, against: float | None = None) -> str:
    """A percentage, one decimal (two below 1%), without trailing zeros: 0.0184 -> "1.8%", 0.02 -> "2%".

    With ``against``, more decimals where fewer would print the rate equal to it: a bound of 0.019769 against a
    2% target reads "1.98%", not "2%".
    """
    decimals = 2 if 0 < rate < 0.01 else 1
    text = f"{rate * 100:.{decimals}f}"
    while against is not None and rate != against and decimals < 6 and text == f"{against * 100:.{decimals}f}":
        decimals += 1
        text = f"{rate * 100:.{decimals}f}"
    return text.rstrip("0").rstrip(".") + "%"


def _plain(value: Any) -> Any:
    """asdict keeps tuples; JSON has lists."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
