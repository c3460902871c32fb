"""The bias audit report's charts as server-rendered SVG: per-group bars and between-group dot-and-whisker figures.

Pure functions from numbers to SVG text, like ``audits.charts``: every label is escaped, colours are CSS classes
(static/hitl/bias_audit.css) except the hatching of groups too small to judge, a pattern the bar names by its
``fill`` presentation attribute (the page's Content-Security-Policy refuses style attributes, not those).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

# Bar states: compared between groups, shown but too small to judge, or without a figure at all.
JUDGED = "judged"
TOO_SMALL = "small"
MISSING = "missing"


@dataclass(frozen=True)
class Bar:
    """One group's rate: ``value`` 0..1 (None: no figure), its label, size, state, and the text after the bar."""

    label: str
    value: float | None
    state: str
    note: str


@dataclass(frozen=True)
class PairedBar:
    """One group's rate before and after review (0..1); ``small``: too small to judge."""

    label: str
    before: float
    after: float
    small: bool
    note: str


@dataclass(frozen=True)
class ThresholdLine:
    """A vertical line at ``value`` (0..1) across the bars, with its label."""

    value: float
    label: str


def percent(value: float | None) -> str:
    """0.8222 -> "82.2 %", 0.8 -> "80 %"; None -> "n/a"."""
    if value is None:
        return "n/a"
    return f"{value * 100:.1f}".removesuffix(".0") + " %"


_ROW = 26
_LEFT = 230
_RIGHT = 230
_TOP = 34


def _hatch(chart_id: str) -> str:
    return (
        f'<defs><pattern id="{chart_id}-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#e5e7eb"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#9ca3af" stroke-width="3"/></pattern></defs>'
    )


def _open(chart_id: str, title: str, width: int, height: int) -> list[str]:
    return [
        f'<svg class="hitl-chart hitl-bias-chart" id="{escape(chart_id)}" role="img" aria-label="{escape(title)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>",
        _hatch(escape(chart_id)),
    ]


def _scale(width: int, top: int, bottom: int) -> list[str]:
    plot_w = width - _LEFT - _RIGHT
    parts = []
    for fraction in (0, 0.25, 0.5, 0.75, 1):
        x = _LEFT + plot_w * fraction
        parts.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{top - 6}" y2="{bottom}"/>')
        parts.append(f'<text class="axis" x="{x:.1f}" y="{top - 10}" text-anchor="middle">{fraction:.0%}</text>')
    return parts


def _threshold(line: ThresholdLine, *, width: int, bottom: int) -> list[str]:
    plot_w = width - _LEFT - _RIGHT
    x = _LEFT + plot_w * min(max(line.value, 0.0), 1.0)
    return [
        f'<line class="threshold" x1="{x:.1f}" x2="{x:.1f}" y1="{_TOP - 4}" y2="{bottom + 4}">'
        f"<title>{escape(line.label)}</title></line>",
        f'<text class="threshold-label" x="{x:.1f}" y="{bottom + 18}" text-anchor="middle">{escape(line.label)}</text>',
    ]


def group_bars_svg(
    *, chart_id: str, title: str, bars: Sequence[Bar], threshold: ThresholdLine | None = None, width: int = 760
) -> str:
    """One horizontal bar per group on a 0-100 % scale; groups too small to judge hatched, the threshold a line."""
    bottom = _TOP + _ROW * max(len(bars), 1)
    height = bottom + (28 if threshold else 8)
    plot_w = width - _LEFT - _RIGHT
    parts = _open(chart_id, title, width, height) + _scale(width, _TOP, bottom)
    for index, bar in enumerate(bars):
        y = _TOP + index * _ROW
        parts.append(
            f'<text class="axis group-label" x="{_LEFT - 8}" y="{y + 16}" text-anchor="end">{escape(bar.label)}</text>'
        )
        end: float = _LEFT
        if bar.value is not None:
            w = max(plot_w * min(max(bar.value, 0.0), 1.0), 1.0)
            paint = f' fill="url(#{escape(chart_id)}-hatch)"' if bar.state == TOO_SMALL else ""
            parts.append(
                f'<rect class="bar bar-{bar.state}" x="{_LEFT}" y="{y + 4}" width="{w:.1f}" height="{_ROW - 9}"{paint}>'
                f"<title>{escape(bar.label)}: {escape(percent(bar.value))}, {escape(bar.note)}</title></rect>"
            )
            end = _LEFT + w
        text = f"{percent(bar.value)} · {bar.note}" if bar.value is not None else bar.note
        parts.append(f'<text class="value value-{bar.state}" x="{end + 6:.1f}" y="{y + 16}">{escape(text)}</text>')
    if threshold is not None:
        parts.extend(_threshold(threshold, width=width, bottom=bottom))
    parts.append("</svg>")
    return "".join(parts)


def paired_bars_svg(
    *,
    chart_id: str,
    title: str,
    bars: Sequence[PairedBar],
    before_label: str,
    after_label: str,
    threshold: ThresholdLine | None = None,
    width: int = 760,
) -> str:
    """Two bars per group (before and after review) on a 0-100 % scale, with a legend; small groups hatched."""
    row = _ROW * 2 - 6
    top = _TOP + 18
    bottom = top + row * max(len(bars), 1)
    height = bottom + (28 if threshold else 8)
    plot_w = width - _LEFT - _RIGHT
    parts = _open(chart_id, title, width, height)
    parts.append(f'<rect class="bar bar-before" x="{_LEFT}" y="4" width="10" height="10"/>')
    parts.append(f'<text class="legend" x="{_LEFT + 14}" y="13">{escape(before_label)}</text>')
    after_x = _LEFT + 30 + 7 * len(before_label)
    parts.append(f'<rect class="bar bar-after" x="{after_x}" y="4" width="10" height="10"/>')
    parts.append(f'<text class="legend" x="{after_x + 14}" y="13">{escape(after_label)}</text>')
    parts.extend(_scale(width, top, bottom))
    for index, bar in enumerate(bars):
        y = top + index * row
        parts.append(
            f'<text class="axis group-label" x="{_LEFT - 8}" y="{y + 22}" text-anchor="end">{escape(bar.label)}</text>'
        )
        for offset, moment, value, words in (
            (3, "before", bar.before, before_label),
            (22, "after", bar.after, after_label),
        ):
            w = max(plot_w * min(max(value, 0.0), 1.0), 1.0)
            state = " bar-small" if bar.small else ""
            parts.append(
                f'<rect class="bar bar-{moment}{state}" x="{_LEFT}" y="{y + offset}" width="{w:.1f}" height="16">'
                f"<title>{escape(bar.label)}, {escape(words)}: {escape(percent(value))}</title></rect>"
            )
            if bar.small:
                # The colour says before or after; the hatching over it says too small to judge.
                parts.append(
                    f'<rect class="hatch" x="{_LEFT}" y="{y + offset}" width="{w:.1f}" height="16" '
                    f'fill="url(#{escape(chart_id)}-hatch)"/>'
                )
            parts.append(
                f'<text class="value" x="{_LEFT + w + 6:.1f}" y="{y + offset + 12}">{escape(percent(value))}'
                f"{' · ' + escape(bar.note) if moment == 'after' and bar.note else ''}</text>"
            )
    if threshold is not None:
        parts.extend(_threshold(threshold, width=width, bottom=bottom))
    parts.append("</svg>")
    return "".join(parts)


def dot_whisker_svg(
    *,
    chart_id: str,
    title: str,
    value: float | None,
    interval: tuple[float, float] | None,
    threshold: float | None,
    at_least: bool,
    verdict_class: str,
    width: int = 240,
) -> str:
    """One between-group figure (0..1) as a dot, its confidence interval as a whisker, and its threshold as a line
    with the failing side shaded. ``at_least``: the figure must reach the threshold (ratios), else stay under it."""
    height, left, right, axis_y = 40, 10, 10, 18
    plot_w = width - left - right

    def x_of(number: float) -> float:
        return left + plot_w * min(max(number, 0.0), 1.0)

    parts = [
        f'<svg class="hitl-whisker" id="{escape(chart_id)}" role="img" aria-label="{escape(title)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>"
    ]
    if threshold is not None:
        start, end = (left, x_of(threshold)) if at_least else (x_of(threshold), left + plot_w)
        parts.append(f'<rect class="fail-zone" x="{start:.1f}" y="6" width="{end - start:.1f}" height="24"/>')
    parts.append(f'<line class="axis-line" x1="{left}" x2="{left + plot_w}" y1="{axis_y}" y2="{axis_y}"/>')
    for number, anchor in ((0, "start"), (1, "end")):
        parts.append(
            f'<text class="axis" x="{x_of(number):.1f}" y="{height - 1}" text-anchor="{anchor}">{number}</text>'
        )
    if threshold is not None:
        x = x_of(threshold)
        parts.append(f'<line class="threshold" x1="{x:.1f}" x2="{x:.1f}" y1="4" y2="32"/>')
        parts.append(
            f'<text class="threshold-label" x="{x:.1f}" y="{height - 1}" text-anchor="middle">{threshold:g}</text>'
        )
    if interval is not None:
        low, high = x_of(interval[0]), x_of(interval[1])
        parts.append(
            f'<g class="whisker"><line x1="{low:.1f}" x2="{high:.1f}" y1="{axis_y}" y2="{axis_y}"/>'
            f'<line x1="{low:.1f}" x2="{low:.1f}" y1="{axis_y - 6}" y2="{axis_y + 6}"/>'
            f'<line x1="{high:.1f}" x2="{high:.1f}" y1="{axis_y - 6}" y2="{axis_y + 6}"/>'
            f"<title>interval {interval[0]:.3f} to {interval[1]:.3f}</title></g>"
        )
    if value is None:
        parts.append(
            f'<text class="axis" x="{width / 2:.0f}" y="{axis_y - 4}" text-anchor="middle">not computed</text>'
        )
    else:
        parts.append(
            f'<circle class="dot {escape(verdict_class)}" cx="{x_of(value):.1f}" cy="{axis_y}" r="5">'
            f"<title>{value:.3f}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def ratio_trend_svg(
    *, chart_id: str, title: str, points: Sequence[tuple[str, float]], threshold: float | None, width: int = 180
) -> str:
    """A model's key ratio (0..1) over its last audits, oldest first, as a line with a dot per audit and the
    threshold as a dashed line; the dot of an audit below the threshold is marked. ``points``: (label, ratio)."""
    height, pad = 40, 6
    plot_w, plot_h = width - 2 * pad, height - 2 * pad

    def y_of(number: float) -> float:
        return pad + plot_h * (1 - min(max(number, 0.0), 1.0))

    def x_of(index: int) -> float:
        return pad + (plot_w * index / (len(points) - 1) if len(points) > 1 else plot_w / 2)

    parts = [
        f'<svg class="hitl-trend" id="{escape(chart_id)}" role="img" aria-label="{escape(title)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>"
    ]
    if threshold is not None:
        y = y_of(threshold)
        parts.append(
            f'<line class="threshold" x1="{pad}" x2="{width - pad}" y1="{y:.1f}" y2="{y:.1f}">'
            f"<title>threshold {threshold:g}</title></line>"
        )
    if len(points) > 1:
        path = " ".join(f"{x_of(index):.1f},{y_of(value):.1f}" for index, (_, value) in enumerate(points))
        parts.append(f'<polyline class="trend-line" points="{path}"/>')
    for index, (label, value) in enumerate(points):
        below = threshold is not None and value < threshold
        parts.append(
            f'<circle class="dot {"fail" if below else "pass"}" cx="{x_of(index):.1f}" cy="{y_of(value):.1f}" r="3">'
            f"<title>{escape(label)}: {value:.2f}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)
