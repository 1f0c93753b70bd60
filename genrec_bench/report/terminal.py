"""The terminal leaderboard (rich): boards that fold their metric columns to the console width."""

from __future__ import annotations

import math

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from genrec_bench.report.board import LEGEND, DatasetBoard
from genrec_bench.report.cells import fmt_cell, fmt_p, head_names, metric_title, ref_columns, row_head


def render_table(boards: list[DatasetBoard]) -> RenderableType:
    parts: list[RenderableType] = []
    if not boards:
        parts.append(Text("no run records"))
    for board in boards:
        parts.append(_TerminalBoard(board))
        if board.references:
            cols = ref_columns(board.references)
            refs = Table(title=Text(f"published reference numbers for {board.dataset} (not measured here)"),
                         title_justify="left", style="dim", box=box.SIMPLE_HEAD, padding=(0, 1),
                         pad_edge=False)
            refs.add_column("ref")
            for c in cols:
                refs.add_column(metric_title(c), justify="right")
            refs.add_column("source")
            for ref in board.references:
                refs.add_row(Text(f"ref: {ref.model}"),
                             *[Text(f"{ref.metrics[c]:.4f}" if c in ref.metrics else "–") for c in cols],
                             Text(ref.source))
            parts.append(refs)
    return Group(*parts)


class _TerminalBoard:
    """One board as rich tables that fit the terminal: as many metric columns per table as the width
    allows (all of them on a wide terminal), the model name repeated in each, never truncated numbers."""

    def __init__(self, board: DatasetBoard):
        self.board = board

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        columns = self.board.columns
        unbounded = options.update(width=10_000)  # Measurement clamps to the width it is given
        for n_tables in range(1, len(columns) + 1):
            size = math.ceil(len(columns) / n_tables)
            tables = [self._table(columns[i : i + size], first=i == 0) for i in range(0, len(columns), size)]
            if max(Measurement.get(console, unbounded, t).maximum for t in tables) <= options.max_width:
                break
        yield from tables
        yield self._facts()
        yield Text("\n".join([*self.board.notes, LEGEND.format(metric=metric_title(self.board.sig_metric))]),
                   style="dim")
        yield Text("")

    def _table(self, metrics: list[str], *, first: bool) -> Table:
        board = self.board
        table = Table(title=Text(board.title, style="bold") if first else None, title_justify="left",
                      box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
        for name, justify in (("model", "left"), ("seed(s)", "right"), ("users", "right")):
            table.add_column(name, justify=justify, no_wrap=True)
        if first:
            table.add_column("p vs best", justify="right", no_wrap=True)
        for c in metrics:
            table.add_column(metric_title(c), justify="right", no_wrap=True)
        for row in board.rows:
            cells = [Text("\n".join(fmt_cell(row.cells[c])), style="bold green" if row.cells[c].best else "")
                     for c in metrics]
            table.add_row(*map(Text, row_head(row)[:3]), *([Text(fmt_p(board, row))] if first else []), *cells)
        return table

    def _facts(self) -> Table:
        """Short lists and id tables in a table of their own, so the metric tables keep their width."""
        table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
        for name in (head_names(self.board)[0], *head_names(self.board)[3:]):
            table.add_column(name, justify="right" if name.startswith("short") else "left")
        for row in self.board.rows:
            head = row_head(row)
            table.add_row(*map(Text, (head[0], *head[3:])))
        return table
