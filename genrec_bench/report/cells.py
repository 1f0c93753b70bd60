"""How a board's numbers read as text, shared by every renderer: titles, cells, p-values, headers."""

from __future__ import annotations

from genrec_bench.report.board import ID_MARK, BoardRow, Cell, DatasetBoard, Reference, different_id_tables


def metric_title(name: str) -> str:
    kind, _, k = name.partition("@")
    return {"hit": "Hit", "ndcg": "NDCG", "mrr": "MRR"}.get(kind, kind) + (f"@{k}" if k else "")


def fmt_cell(cell: Cell) -> tuple[str, str]:
    return f"{cell.mean:.4f}", f"±{(cell.high - cell.low) / 2:.4f}"


def fmt_p(board: DatasetBoard, row: BoardRow) -> str:
    if row.label == board.best_label:
        return "best"
    return "–" if row.p_value is None else p_text(board, row, board.best_label, row.p_value)


def fmt_base(board: DatasetBoard, row: BoardRow) -> str:
    if row.label == board.baseline_label:
        return "baseline"
    if row.base_p is None or row.base_diff is None:
        return "–"
    return f"{row.base_diff:+.4f}, p " + p_text(board, row, board.baseline_label, row.base_p)


def p_text(board: DatasetBoard, row: BoardRow, other_label: str, p: float) -> str:
    """A p-value as printed, marked when `row` and the row it was paired with rank on different id tables."""
    other = next(r for r in board.rows if r.label == other_label)
    mark = ID_MARK if different_id_tables(row.id_table, other.id_table) else ""
    return ("<0.001" if p < 0.001 else f"{p:.3f}") + mark


def ref_columns(refs: list[Reference]) -> list[str]:
    return sorted({m for r in refs for m in r.metrics}, key=metric_order)


def metric_order(name: str) -> tuple[int, int, str]:
    kind, _, k = name.partition("@")
    return {"hit": 0, "ndcg": 1, "mrr": 2}.get(kind, 3), int(k) if k.isdigit() else 0, name


def header(board: DatasetBoard) -> list[str]:
    return [*head_names(board), *map(metric_title, board.columns), f"p vs best ({metric_title(board.sig_metric)})"]


def head_names(board: DatasetBoard) -> list[str]:
    return ["model", "seed(s)", "users", f"short@{board.ks[-1]}", "id table"]


def row_head(row: BoardRow) -> list[str]:
    """Label, seeds, users, users with a list shorter than the largest k ("?" = not recorded), id table."""
    short = "?" if row.short_lists is None else str(row.short_lists)
    return [row.label, ",".join(map(str, row.seeds)), str(row.n_users), short, row.id_table or "–"]


def best_per_model(rows: list[BoardRow]) -> list[BoardRow]:
    """The best row of each backend, in board order: with 20+ ablation rows, what a reader compares first."""
    best: dict[str, BoardRow] = {}
    for row in rows:
        best.setdefault(row.model, row)
    return list(best.values())


def md_escape(text: str) -> str:
    return text.replace("|", "\\|")
