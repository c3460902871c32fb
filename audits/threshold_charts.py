"""The reliability (calibration) chart of the threshold recommendation page, as server-rendered SVG.

A pure function from the bands of ``audits.thresholds`` to SVG text, like ``audits.charts``: every label is
escaped, colours and strokes are CSS classes (static/hitl/thresholds.css), never style attributes, which the
console's Content-Security-Policy refuses. Each band with labelled cases is a dot at (mean confidence, observed
accuracy), sized by its cases, with a whisker down to the lower bound of its accuracy; a well-calibrated model's
dots lie on the diagonal. The strip under the chart shows how many labelled cases each band holds.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from audits.thresholds import ConfidenceBand
from reviews.routing import format_probability, format_rate

_WIDTH = 620
_LEFT, _TOP, _PLOT = 64, 56, 380
_STRIP = 56
_HEIGHT = _TOP + _PLOT + 40 + _STRIP + 24


@dataclass(frozen=True)
class ThresholdMarker:
    """A vertical line at a threshold (0..1): ``kind`` is its CSS class, "current" or "recommended"."""

    value: float
    label: str
    kind: str


def _share(value: float) -> str:
    return f"{value * 100:.1f}".removesuffix(".0") + "%"


def _lowest_shown(bands: Sequence[ConfidenceBand]) -> float:
    """Both axes start at 0.5, or lower, in steps of 0.1, when a band's confidence or accuracy is lower."""
    values = [value for band in bands if band.n for value in (band.mean_confidence, band.accuracy) if value is not None]
    return max(0.0, min(0.5, math.floor(min(values, default=0.5) * 10) / 10))


def reliability_chart_svg(
    *,
    chart_id: str,
    title: str,
    bands: Sequence[ConfidenceBand],
    confidence_level: float,
    markers: Sequence[ThresholdMarker] = (),
) -> str:
    """Observed accuracy against mean confidence per band, the diagonal of perfect calibration, the thresholds as
    vertical lines, and the labelled cases per band as a strip of bars underneath."""
    low = _lowest_shown(bands)
    span = 1.0 - low

    def x_of(value: float) -> float:
        return _LEFT + _PLOT * (min(max(value, low), 1.0) - low) / span

    def y_of(value: float) -> float:
        return _TOP + _PLOT * (1.0 - (min(max(value, low), 1.0) - low) / span)

    level = format_rate(confidence_level)
    bottom = _TOP + _PLOT
    parts = [
        f'<svg class="hitl-chart hitl-reliability" id="{escape(chart_id)}" role="img" aria-label="{escape(title)}" '
        f'viewBox="0 0 {_WIDTH} {_HEIGHT}" width="{_WIDTH}" height="{_HEIGHT}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>",
        f'<rect class="plot-area" x="{_LEFT}" y="{_TOP}" width="{_PLOT}" height="{_PLOT}"/>',
    ]
    ticks = round(span * 10)
    for step in range(ticks + 1):
        value = low + step / 10
        x, y = x_of(value), y_of(value)
        parts.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{_TOP}" y2="{bottom}"/>')
        parts.append(f'<line class="grid" x1="{_LEFT}" x2="{_LEFT + _PLOT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{value:.1f}</text>')
        parts.append(f'<text class="axis" x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_share(value)}</text>')
    parts.append(
        f'<text class="axis-title" x="{_LEFT + _PLOT / 2:.1f}" y="{bottom + 34}" text-anchor="middle">'
        "confidence (mean of the band)</text>"
        f'<text class="axis-title" x="16" y="{_TOP + _PLOT / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 16 {_TOP + _PLOT / 2:.1f})">observed accuracy</text>'
    )
    parts.append(
        f'<line class="diagonal" x1="{x_of(low):.1f}" y1="{y_of(low):.1f}" x2="{x_of(1):.1f}" y2="{y_of(1):.1f}">'
        "<title>perfect calibration: accuracy equals confidence</title></line>"
    )
    for marker in markers:
        if not low <= marker.value <= 1:
            continue
        x = x_of(marker.value)
        parts.append(
            f'<line class="marker marker-{escape(marker.kind)}" x1="{x:.1f}" x2="{x:.1f}" y1="{_TOP}" y2="{bottom}">'
            f"<title>{escape(marker.label)}</title></line>"
        )

    # The bands with cases, each with its mean confidence and accuracy (both known when it has cases).
    shown = [
        (band, band.mean_confidence, band.accuracy)
        for band in bands
        if band.n and band.mean_confidence is not None and band.accuracy is not None
    ]
    largest = max((band.n for band, _, _ in shown), default=1)
    if len(shown) > 1:
        points = " ".join(f"{x_of(confidence):.1f},{y_of(accuracy):.1f}" for _, confidence, accuracy in shown)
        parts.append(f'<polyline class="curve" points="{points}"/>')
    for band, confidence, accuracy in shown:
        x, y = x_of(confidence), y_of(accuracy)
        floor = 1.0 - (band.error_upper_bound if band.error_upper_bound is not None else 1.0)
        words = (
            f"confidence {format_probability(band.lower)} to {format_probability(band.upper)}: "
            f"{band.n:,} labelled cases, {band.errors:,} errors; observed accuracy {_share(accuracy)}, "
            f"at least {_share(floor)} at {level} confidence; mean confidence {confidence:.3f}"
        )
        parts.append(
            f'<g class="band"><title>{escape(words)}</title>'
            f'<line class="whisker" x1="{x:.1f}" x2="{x:.1f}" y1="{y:.1f}" y2="{y_of(floor):.1f}"/>'
            f'<circle class="dot" cx="{x:.1f}" cy="{y:.1f}" r="{3 + 7 * math.sqrt(band.n / largest):.1f}"/></g>'
        )
    if not shown:
        parts.append(
            f'<text class="empty" x="{_LEFT + _PLOT / 2:.1f}" y="{_TOP + _PLOT / 2:.1f}" text-anchor="middle">'
            "No labelled cases yet</text>"
        )
    for index, marker in enumerate(marker for marker in markers if low <= marker.value <= 1):
        parts.append(
            f'<text class="marker-label marker-{escape(marker.kind)}" x="{x_of(marker.value) + 4:.1f}" '
            f'y="{_TOP + 14 + 14 * index}">{escape(marker.label)}</text>'
        )

    strip_top = bottom + 48
    parts.append(f'<text class="axis" x="{_LEFT - 6}" y="{strip_top + 12}" text-anchor="end">cases</text>')
    for band in bands:
        if band.upper <= low:
            continue
        left, right = x_of(band.lower), x_of(band.upper)
        height = (_STRIP - 14) * band.n / largest if band.n else 0.0
        words = f"confidence {format_probability(band.lower)} to {format_probability(band.upper)}: {band.n:,} cases"
        parts.append(
            f'<rect class="size" x="{left + 1:.1f}" y="{strip_top + _STRIP - height:.1f}" '
            f'width="{max(right - left - 2, 1):.1f}" height="{height:.1f}"><title>{escape(words)}</title></rect>'
        )
        if right - left >= 18:
            parts.append(
                f'<text class="size-label" x="{(left + right) / 2:.1f}" y="{strip_top + _STRIP - height - 3:.1f}" '
                f'text-anchor="middle">{band.n:,}</text>'
            )
    parts.append(_legend(level))
    parts.append("</svg>")
    return "".join(parts)


def _legend(level: str) -> str:
    y = 20
    return (
        f'<circle class="dot" cx="{_LEFT + 5}" cy="{y - 4}" r="5"/>'
        f'<text class="legend" x="{_LEFT + 14}" y="{y}">a band: observed accuracy at its mean confidence</text>'
        f'<line class="whisker" x1="{_LEFT + 5}" x2="{_LEFT + 5}" y1="{y + 6}" y2="{y + 20}"/>'
        f'<text class="legend" x="{_LEFT + 14}" y="{y + 18}">down to its lowest accuracy at {escape(level)} '
        "confidence</text>"
        f'<line class="diagonal" x1="{_LEFT + 330}" x2="{_LEFT + 350}" y1="{y - 4}" y2="{y - 4}"/>'
        f'<text class="legend" x="{_LEFT + 356}" y="{y}">perfect calibration</text>'
    )
