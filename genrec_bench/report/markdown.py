"""Markdown boards: for CI job summaries and the generated docs/results.md."""

from __future__ import annotations

from genrec_bench.report.board import BASELINE_MODEL, LEGEND, BoardRow, DatasetBoard
from genrec_bench.report.cells import (
    fmt_base,
    fmt_cell,
    fmt_p,
    head_names,
    md_escape,
    metric_title,
    ref_columns,
    row_head,
)


def render_markdown(boards: list[DatasetBoard]) -> str:
    out = ["## genrec-bench leaderboard", ""]
    if not boards:
        out += ["_No run records._", ""]
    for board in boards:
        out += [f"### {md_escape(board.title)}", ""]
        out += [f"> {md_escape(n)}" for n in board.notes] + ([""] if board.notes else [])
        out += markdown_board(board)
    return "\n".join(out)


def markdown_board(board: DatasetBoard, *, rows: list[BoardRow] | None = None,
                   metrics: list[str] | None = None, brief: bool = False) -> list[str]:
    """One board's Markdown lines: the leaderboard, its legend and the published reference rows.

    `rows` and `metrics` select a summary (a README excerpt) from the same cells and p-values;
    `brief` leaves out the users and short-list columns, the legend and the references' protocol.
    """
    rows = board.rows if rows is None else rows
    metrics = board.columns if metrics is None else metrics
    keep = [0, 1, 4] if brief else list(range(len(head_names(board))))
    vs_base = bool(board.baseline_label) and not brief
    head = [head_names(board)[i] for i in keep] + [*map(metric_title, metrics),
                                                    f"p vs best ({metric_title(board.sig_metric)})"]
    head += [f"vs {BASELINE_MODEL} ({metric_title(board.sig_metric)})"] if vs_base else []
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for row in rows:
        cells = []
        for c in metrics:
            mean, pm = fmt_cell(row.cells[c])
            cells.append(f"**{mean}** {pm}" if row.cells[c].best else f"{mean} {pm}")
        label = f"**{md_escape(row.label)}**" if row.label == board.best_label else md_escape(row.label)
        values = [label, *row_head(row)[1:]]
        tail = [fmt_p(board, row)] + ([fmt_base(board, row)] if vs_base else [])
        out.append("| " + " | ".join([*(values[i] for i in keep), *cells, *tail]) + " |")
    out.append("")
    if not brief:
        out += ["_" + LEGEND.format(metric=metric_title(board.sig_metric)) + "_", ""]
    if board.references:
        cols = [c for c in ref_columns(board.references) if not brief or c in metrics]
        out += [f"**Published reference numbers for {md_escape(board.dataset)}** (not measured here; "
                "Recall@k = Hit@k under leave-one-out)", ""]
        tail = ["source"] if brief else ["source", "protocol"]
        out.append("| ref | " + " | ".join([*map(metric_title, cols), *tail]) + " |")
        out.append("|" + "|".join(["---"] + ["---:"] * len(cols) + ["---"] * len(tail)) + "|")
        for ref in board.references:
            vals = [f"{ref.metrics[c]:.4f}" if c in ref.metrics else "–" for c in cols]
            text = [md_escape(ref.source)] if brief else [md_escape(ref.source), md_escape(ref.protocol)]
            out.append("| " + " | ".join([f"ref: {md_escape(ref.model)}", *vals, *text]) + " |")
        out.append("")
    return out
