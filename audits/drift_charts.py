"""The drift check's chart as server-rendered SVG: one bar per feature (and the confidence) with its PSI, the
threshold a dashed line; escaped labels and CSS classes only, like audits.bias_charts."""

from collections.abc import Sequence
from html import escape

_ROW, _LEFT, _RIGHT, _TOP = 24, 200, 150, 30


def psi_bars_svg(
    *, chart_id: str, title: str, features: Sequence[tuple[str, float | None]], threshold: float, width: int = 720
) -> str:
    """``features``: (name, PSI or None when not compared). The scale runs to twice the threshold or the largest
    PSI, whichever is higher, so a small drift and a large one both read."""
    values = [psi for _, psi in features if psi is not None]
    top_value = max([threshold * 2, *values]) if values else threshold * 2
    plot_w = width - _LEFT - _RIGHT
    bottom = _TOP + _ROW * max(len(features), 1)
    height = bottom + 24

    def x_of(value: float) -> float:
        return _LEFT + plot_w * min(max(value / top_value, 0.0), 1.0)

    parts = [
        f'<svg class="hitl-chart hitl-drift-chart" id="{escape(chart_id)}" role="img" aria-label="{escape(title)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>"
    ]
    for index, (name, psi) in enumerate(features):
        y = _TOP + index * _ROW
        parts.append(f'<text class="axis" x="{_LEFT - 8}" y="{y + 15}" text-anchor="end">{escape(name)}</text>')
        if psi is None:
            parts.append(f'<text class="value" x="{_LEFT + 4}" y="{y + 15}">not compared</text>')
            continue
        state = "drifted" if psi > threshold else "stable"
        end = x_of(psi)
        parts.append(
            f'<rect class="bar bar-{state}" x="{_LEFT}" y="{y + 4}" width="{max(end - _LEFT, 1.0):.1f}" '
            f'height="{_ROW - 8}"><title>{escape(name)}: PSI {psi:.3f}</title></rect>'
        )
        parts.append(f'<text class="value" x="{end + 6:.1f}" y="{y + 15}">{psi:.3f} ({state})</text>')
    x = x_of(threshold)
    parts.append(f'<line class="threshold" x1="{x:.1f}" x2="{x:.1f}" y1="{_TOP - 6}" y2="{bottom + 2}"/>')
    parts.append(
        f'<text class="threshold-label" x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">'
        f"threshold {threshold:g}</text>"
    )
    parts.append(f'<text class="axis" x="{_LEFT}" y="{_TOP - 12}">population stability index</text>')
    parts.append("</svg>")
    return "".join(parts)
