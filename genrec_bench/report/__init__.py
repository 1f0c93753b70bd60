"""Leaderboards from run records: terminal, Markdown, JSON, and one self-contained HTML page.

`board` computes the statistics (boards, cells, paired tests, references); each renderer turns
boards into one format, and `render` picks the renderer by name.
"""

from __future__ import annotations

from rich.console import RenderableType

from genrec_bench.errors import GenrecError
from genrec_bench.report.board import (
    BASELINE_MODEL,
    SIG_METRIC,
    BoardRow,
    Cell,
    DatasetBoard,
    Reference,
    compare_runs,
    different_id_tables,
    leaderboard,
    load_references,
)
from genrec_bench.report.cells import best_per_model, metric_title
from genrec_bench.report.jsonout import render_json
from genrec_bench.report.markdown import markdown_board, render_markdown
from genrec_bench.report.page import render_html
from genrec_bench.report.terminal import render_table

FORMATS = ("table", "markdown", "html", "json")

__all__ = ["BASELINE_MODEL", "FORMATS", "SIG_METRIC", "BoardRow", "Cell", "DatasetBoard", "Reference",
           "best_per_model", "compare_runs", "different_id_tables", "leaderboard", "load_references",
           "markdown_board", "metric_title", "render"]


def render(boards: list[DatasetBoard], fmt: str) -> str | RenderableType:
    """`table` gives a rich renderable (print it with `Console().print`); the others give text to
    write as is (not through rich markup: labels such as `tiger[letter]` contain brackets)."""
    renderers = {"table": render_table, "markdown": render_markdown, "json": render_json, "html": render_html}
    if fmt not in renderers:
        raise GenrecError(f"unknown report format '{fmt}'; choose one of {', '.join(FORMATS)}")
    return renderers[fmt](boards)
