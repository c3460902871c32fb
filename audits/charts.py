"""Server-side SVG charts for the console: no JavaScript, no CDN, readable without a browser plug-in.

Pure functions from numbers to SVG text; every label is escaped. Colours are CSS classes (static/hitl/admin.css)
so the charts follow the admin's light and dark themes.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape


@dataclass(frozen=True)
class Series:
    """One stacked series: its name (legend), CSS class, and one value per x position."""

    name: str
    css_class: str
    values: Sequence[float]


def _nice_ceiling(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def stacked_columns_svg(
    *, title: str, x_labels: Sequence[str], series: Sequence[Series], width: int = 720, height: int = 220
) -> str:
    """Stacked columns over time (e.g. daily volume, split automatic / human): one column per x label."""
    left, right, top, bottom = 48, 12, 24, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    count = len(x_labels)
    totals = [sum(s.values[i] for s in series) for i in range(count)]
    ceiling = _nice_ceiling(max(totals, default=0))
    slot = plot_w / max(count, 1)
    bar_w = max(1.0, slot * 0.8)
    parts = [
        f'<svg class="hitl-chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for fraction in (0, 0.5, 1):
        y = top + plot_h * (1 - fraction)
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="axis" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{ceiling * fraction:g}</text>'
        )
    for i, label in enumerate(x_labels):
        x = left + i * slot + (slot - bar_w) / 2
        base: float = top + plot_h
        for s in series:
            value = s.values[i]
            if value <= 0:
                continue
            h = plot_h * value / ceiling
            base -= h
            parts.append(
                f'<rect class="{escape(s.css_class)}" x="{x:.1f}" y="{base:.1f}" width="{bar_w:.1f}" height="{h:.1f}">'
                f"<title>{escape(label)}: {escape(s.name)} {value:g}</title></rect>"
            )
        # Label roughly every seventh column so dates never overlap.
        if count <= 10 or i % max(1, count // 7) == 0:
            parts.append(
                f'<text class="axis" x="{x + bar_w / 2:.1f}" y="{height - bottom + 16}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    parts.append(_legend(series, x=left, y=14))
    parts.append("</svg>")
    return "".join(parts)


# What fits in a horizontal bar chart's 170 px label column at the axis font; longer names end in an ellipsis and
# are shown whole on hover.
BAR_LABEL_CHARACTERS = 26


def _fit(text: str, characters: int) -> str:
    return text if len(text) <= characters else f"{text[: characters - 1]}…"


def horizontal_bars_svg(*, title: str, labels: Sequence[str], series: Sequence[Series], width: int = 720) -> str:
    """One stacked horizontal bar per label (e.g. per model: automatic, human, undecided cases)."""
    row_h, left, right, top = 26, 170, 60, 28
    height = top + row_h * max(len(labels), 1) + 8
    plot_w = width - left - right
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    ceiling = _nice_ceiling(max(totals, default=0))
    parts = [
        f'<svg class="hitl-chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for i, label in enumerate(labels):
        y = top + i * row_h
        parts.append(
            f'<text class="axis" x="{left - 8}" y="{y + 15}" text-anchor="end">'
            f"<title>{escape(label)}</title>{escape(_fit(label, BAR_LABEL_CHARACTERS))}</text>"
        )
        x = float(left)
        for s in series:
            value = s.values[i]
            if value <= 0:
                continue
            w = plot_w * value / ceiling
            parts.append(
                f'<rect class="{escape(s.css_class)}" x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}">'
                f"<title>{escape(label)}: {escape(s.name)} {value:g}</title></rect>"
            )
            x += w
        parts.append(f'<text class="axis" x="{x + 6:.1f}" y="{y + 15}">{totals[i]:g}</text>')
    parts.append(_legend(series, x=left, y=16))
    parts.append("</svg>")
    return "".join(parts)


def _legend(series: Sequence[Series], *, x: int, y: int) -> str:
    parts = []
    for s in series:
        parts.append(f'<rect class="{escape(s.css_class)}" x="{x}" y="{y - 9}" width="10" height="10"/>')
        parts.append(f'<text class="legend" x="{x + 14}" y="{y}">{escape(s.name)}</text>')
        x += 24 + 7 * len(s.name)
    return "".join(parts)
