"""Line and point charts as inline SVG: the plots of the HTML report, with no plotting dependency."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#7f7f7f", "#bcbd22")
@dataclass(frozen=True)
class Series:
    name: str
    xs: list[float]
    ys: list[float]
    color: str = ""  # empty: next palette colour; set it to keep one colour per model across plots
    dashed: bool = False  # dashed line, hollow points: tells apart series that share a palette colour


LEGEND_CHARS = 62  # a legend line at 11 px fits the chart's width up to about this many characters


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About `n` round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten)."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return [0.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    count = int(math.ceil((hi - start) / step - 1e-9)) + 1
    return [round(start + i * step, 12) for i in range(count)]


def _fmt_tick(v: float) -> str:
    return f"{v:.4g}"


def svg_chart(series: list[Series], *, svg_id: str, css_class: str, title: str, xlabel: str, ylabel: str,
              lines: bool = True, log_x: bool = False, width: int = 440, height: int = 300) -> str:
    """A line chart (or scatter when `lines` is False) as a standalone <svg> string with a legend.

    The legend sits below the axes, one entry per line, and the figure grows to hold it, so no
    number of series covers the data; `height` is the height without the legend.

    `log_x` puts x on a log10 axis (ticks at powers of ten): latencies of a popularity baseline and
    a beam-search model differ by orders of magnitude. It needs positive x values.
    """
    left, right, top, bottom = 60, 20, 30, 45
    pw, ph = width - left - right, height - top - bottom
    total = height + (16 * len(series) + 8 if series else 0)  # the legend's lines below the x-axis label
    xs = [x for s in series for x in s.xs]
    ys = [y for s in series for y in s.ys]
    out = [f'<svg id="{svg_id}" class="plot {css_class}" width="{width}" '
           f'height="{total}" viewBox="0 0 {width} {total}" role="img" aria-label="{html.escape(title)}">',
           f'<text x="{left}" y="18" font-size="13" font-weight="bold">{html.escape(title)}</text>']
    if not xs:
        out.append(f'<text class="empty" x="{left + pw / 2}" y="{top + ph / 2}" text-anchor="middle" '
                   'font-size="12" fill="#888">no data</text></svg>')
        return "".join(out)
    tx = math.log10 if log_x else float
    xt = (list(range(math.floor(tx(min(xs))), math.ceil(tx(max(xs))) + 1)) if log_x
          else nice_ticks(min(xs), max(xs)))
    if len(xt) == 1:
        xt.append(xt[0] + 1)
    yt = nice_ticks(min(0.0, min(ys)), max(ys))
    x0, x1, y0, y1 = xt[0], xt[-1], yt[0], yt[-1]

    def sx(t: float) -> float:  # t on the (possibly log) axis scale
        return left + (t - x0) / ((x1 - x0) or 1.0) * pw

    def px(x: float) -> float:
        return sx(tx(x))

    def py(y: float) -> float:
        return top + ph - (y - y0) / ((y1 - y0) or 1.0) * ph

    out.append('<g class="axes" font-size="10" fill="#444" stroke="none">')
    for v in xt:
        out.append(f'<line x1="{sx(v):.1f}" y1="{top}" x2="{sx(v):.1f}" y2="{top + ph}" stroke="#eee"/>'
                   f'<text x="{sx(v):.1f}" y="{top + ph + 14}" text-anchor="middle">'
                   f'{_fmt_tick(10.0 ** v if log_x else v)}</text>')
    for v in yt:
        out.append(f'<line x1="{left}" y1="{py(v):.1f}" x2="{left + pw}" y2="{py(v):.1f}" stroke="#eee"/>'
                   f'<text x="{left - 5}" y="{py(v) + 3:.1f}" text-anchor="end">{_fmt_tick(v)}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>'
               f'<text x="{left + pw / 2}" y="{height - 8}" text-anchor="middle">{html.escape(xlabel)}</text>'
               f'<text transform="translate(14 {top + ph / 2}) rotate(-90)" text-anchor="middle">'
               f'{html.escape(ylabel)}</text></g>')
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        name = html.escape(s.name)
        pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(s.xs, s.ys, strict=True))
        out.append(f'<g class="series" data-name="{name}">')
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        fill = f'fill="#fff" stroke="{color}" stroke-width="1.5"' if s.dashed else f'fill="{color}"'
        if lines and len(s.xs) > 1:
            out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1.8"{dash}/>')
        out.extend(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.2" {fill}><title>{name}: '
                   f'{_fmt_tick(x)}, {_fmt_tick(y)}</title></circle>'
                   for x, y in zip(s.xs, s.ys, strict=True))
        ly = height + 16 * (i + 1)
        short = html.escape(s.name if len(s.name) <= LEGEND_CHARS else s.name[: LEGEND_CHARS - 1] + "…")
        out.append(f'<g class="legend-entry"><title>{name}</title>'
                   f'<rect x="{left}" y="{ly - 9}" width="10" height="10" {fill}/>'
                   f'<text x="{left + 15}" y="{ly}" font-size="11">{short}</text></g></g>')
    out.append("</svg>")
    return "".join(out)
