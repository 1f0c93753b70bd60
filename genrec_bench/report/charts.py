"""The plots of the HTML report, drawn by matplotlib and inlined as SVG.

Figures are built with the object API (`matplotlib.figure.Figure`, no pyplot and no display), so a
report renders on a headless CI machine, and the SVG is made deterministic (fixed id salt, no date)
so the same records give the same page byte for byte. Text stays text (`svg.fonttype = none`): the
page stays small and its labels searchable.
"""

from __future__ import annotations

import html
import io
import math
import re
from dataclasses import dataclass

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#7f7f7f", "#bcbd22")
WIDTH_IN, HEIGHT_IN, LEGEND_LINE_IN = 4.4, 3.0, 0.17  # inches at 100 dpi: a 440 x 300 px plot area
LEGEND_CHARS = 70  # a legend line at 7 pt fits the figure's width up to about this many characters
ID_SALT = "genrec-bench"  # a fixed salt for matplotlib's hashed SVG ids: the same figure, the same bytes


@dataclass(frozen=True)
class Series:
    name: str
    xs: list[float]
    ys: list[float]
    color: str = ""  # empty: next palette colour; set it to keep one colour per model across plots
    dashed: bool = False  # dashed line, hollow points: tells apart series that share a palette colour


def chart_figure(series: list[Series], *, title: str, xlabel: str, ylabel: str, lines: bool = True,
                 log_x: bool = False) -> Figure:
    """A line chart (or scatter when `lines` is False) with its legend below the axes, one entry per
    series; the figure grows with the legend, so no number of series covers the data.

    `log_x` puts x on a log10 axis: latencies of a popularity baseline and a beam-search model differ
    by orders of magnitude. Each series' artists carry the gid `series-<i>`.
    """
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN + LEGEND_LINE_IN * len(series)), dpi=100)
    legend_h = LEGEND_LINE_IN * len(series) / fig.get_figheight()
    ax = fig.add_axes((0.14, legend_h + 0.17 * HEIGHT_IN / fig.get_figheight(), 0.82,
                       0.62 * HEIGHT_IN / fig.get_figheight()))
    ax.set_title(title, fontsize=10, loc="left", fontweight="bold")
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(True, color="#eee", linewidth=0.6)
    if not any(s.xs for s in series):
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="#888", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        return fig
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        label = s.name if len(s.name) <= LEGEND_CHARS else s.name[: LEGEND_CHARS - 1] + "…"
        (line,) = ax.plot(s.xs, s.ys, color=color, linestyle=("--" if s.dashed else "-") if lines else "none",
                          marker="o", markersize=4, linewidth=1.3, label=label,
                          markerfacecolor="white" if s.dashed else color)
        line.set_gid(f"series-{i}")
    if log_x:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        xs = [x for s in series for x in s.xs]
        low, high = math.floor(math.log10(min(xs))), math.ceil(math.log10(max(xs)))
        ax.set_xlim(10.0**low, 10.0 ** max(high, low + 1))  # whole decades: every point between two labels
    ax.set_ylim(bottom=min(0.0, *(y for s in series for y in s.ys)))
    fig.legend(loc="lower left", bbox_to_anchor=(0.02, 0.0), fontsize=7, frameon=False, ncol=1,
               handlelength=2.2, borderaxespad=0.2)
    return fig


def figure_svg(fig: Figure, *, svg_id: str, css_class: str, title: str) -> str:
    """`fig` as an <svg> element for inlining, with its id, class and accessible name.

    matplotlib numbers the ids inside every figure alike (`axes_1`, `series-0`, ...); they are
    prefixed with `svg_id`, so a page of several charts still has unique ids.
    """
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": ID_SALT, "svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]  # drop the XML prolog and doctype: the page is HTML
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, count=1, flags=re.S)
    # Inline SVG in HTML needs no namespace declarations (the parser knows svg and xlink:href), and
    # the page then names no URL at all.
    text = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", text, count=2)
    text = re.sub(r'(\bid="|href="#|url\(#)', rf"\g<1>{svg_id}-", text)
    return text.replace("<svg ", f'<svg id="{svg_id}" class="plot {css_class}" role="img" '
                                 f'aria-label="{html.escape(title)}" ', 1)


def svg_chart(series: list[Series], *, svg_id: str, css_class: str, title: str, xlabel: str, ylabel: str,
              lines: bool = True, log_x: bool = False) -> str:
    """`chart_figure` as inline SVG."""
    fig = chart_figure(series, title=title, xlabel=xlabel, ylabel=ylabel, lines=lines, log_x=log_x)
    return figure_svg(fig, svg_id=svg_id, css_class=css_class, title=title)
