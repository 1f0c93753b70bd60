"""Leaderboards from run records: terminal, Markdown, JSON, and one self-contained HTML page.

Only runs on the same split (same dataset, split and fingerprint) share a table: a number means
nothing next to a number measured on other users or other items. Each row is one label (a
model with its settings) averaged over seeds, with an interval, and a paired test against the
best row on the same users, because differences between generative recommenders are often
within noise. Published numbers are shown beside the tables as context, never as rows of them.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import reduce
from importlib import resources
from typing import Any

import numpy as np
from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text
from scipy import stats

from genrec_bench.errors import GenrecError
from genrec_bench.metrics import PairedResult, mean_cis, paired_compare, per_user
from genrec_bench.results import RunRecord

FORMATS = ("table", "markdown", "html", "json")
SIG_METRIC = "ndcg@10"
CONFIDENCE = 0.95
ID_MARK = "†"
BASELINE_MODEL = "sasrec"  # every Markdown board also pairs each row with this backend's best row
LEGEND = ("± = half-width of a 95% interval: bootstrap over users for one seed, t-interval over seed means "
          "for several. p = two-sided paired t-test against the best row on {metric}, on the users both "
          "rows share, per-user values averaged over seeds; " + ID_MARK + " = the two rows rank with "
          "different semantic-ID tables. short@k = users whose list had fewer than k items. Best value per "
          "column in bold. vs " + BASELINE_MODEL + " = mean difference from the best " + BASELINE_MODEL + " row on "
          "{metric} and its paired p, where the board has one.")


@dataclass(frozen=True)
class Reference:
    """A published number: who measured it, on what, under which protocol."""

    model: str
    dataset: str
    source: str
    protocol: str
    metrics: dict[str, float]


@dataclass(frozen=True)
class Cell:
    mean: float
    low: float  # interval bounds (see BoardRow.interval)
    high: float
    best: bool


@dataclass(frozen=True)
class Curve:
    """Validation NDCG@10 over epochs of one run, for the training-curve plot."""

    seed: int
    epochs: list[float]
    valid: list[float]


@dataclass(frozen=True)
class BoardRow:
    label: str
    model: str
    seeds: list[int]
    n_users: int
    interval: str  # "bootstrap" (one seed, over users) or "seeds" (t-interval over seed means)
    cells: dict[str, Cell]
    p_value: float | None  # paired test against the best row; None for the best row itself
    diff: float | None  # mean(this - best) on the shared users
    n_paired: int
    users_per_second: float  # mean over seeds that measured it; 0 = unknown
    fit_seconds: float
    curves: list[Curve]
    id_table: str = ""  # RunRecord.id_table of its seeds ("" = no semantic ids); seeds on several tables: ", "-joined
    short_lists: int | None = None  # users (summed over seeds) with fewer than max(ks) items; None = not recorded
    versions: dict[str, str] = field(default_factory=dict)  # RunRecord.versions; differing seeds ", "-joined
    base_diff: float | None = None  # mean(this - baseline row) on the shared users; None: no baseline or is it
    base_p: float | None = None  # paired p against the baseline row


@dataclass(frozen=True)
class DatasetBoard:
    dataset: str
    split: str
    fingerprint: str
    ks: list[int]
    columns: list[str]
    sig_metric: str
    best_label: str
    rows: list[BoardRow]
    references: list[Reference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    baseline_label: str = ""  # the best row of BASELINE_MODEL; "" when the board has none

    @property
    def title(self) -> str:
        return f"{self.dataset} · split {self.split} · fingerprint {self.fingerprint[:12]}"


# --------------------------------------------------------------------------- building boards


def leaderboard(records: list[RunRecord], references: list[Reference] | None = None, *,
                n_boot: int = 1000) -> list[DatasetBoard]:
    """One board per (dataset, split, fingerprint), rows sorted by the significance metric."""
    groups: dict[tuple[str, str, str], list[RunRecord]] = {}
    for rec in records:
        groups.setdefault((rec.dataset, rec.split, rec.fingerprint), []).append(rec)
    prints_per_dataset: dict[tuple[str, str], list[str]] = {}
    for dataset, split, fp in sorted(groups):
        prints_per_dataset.setdefault((dataset, split), []).append(fp)
    boards = []
    for key in sorted(groups):
        dataset, split, fp = key
        notes = []
        prints = prints_per_dataset[(dataset, split)]
        if len(prints) > 1:
            notes.append(f"fingerprint {prints.index(fp) + 1} of {len(prints)} for {dataset}/{split}: the "
                         "data or split settings differ, so these runs are not comparable with other tables")
        refs = [r for r in references or [] if r.dataset.lower() == dataset.lower()]
        boards.append(_board(dataset, split, fp, groups[key], refs, notes, n_boot))
    return boards


def _board(dataset: str, split: str, fp: str, records: list[RunRecord], refs: list[Reference],
           notes: list[str], n_boot: int) -> DatasetBoard:
    ks = sorted(reduce(lambda a, b: a & b, (set(r.ks) for r in records)))
    if not ks:
        raise GenrecError(f"runs on {dataset}/{split} share no cut-off k; cannot tabulate them together")
    columns = [f"hit@{k}" for k in ks] + [f"ndcg@{k}" for k in ks] + [f"mrr@{ks[-1]}"]
    sig = SIG_METRIC if SIG_METRIC in columns else f"ndcg@{ks[-1]}"
    by_label: dict[str, dict[int, RunRecord]] = {}
    for rec in sorted(records, key=lambda r: (r.created, r.run_id)):
        seeds = by_label.setdefault(rec.label, {})
        if rec.seed in seeds:
            notes.append(f"{rec.label} seed {rec.seed}: run {seeds[rec.seed].run_id} superseded by "
                         f"{rec.run_id}")
        seeds[rec.seed] = rec  # the newest run of a (label, seed) wins
    stats_by_label = {label: _label_stats(list(runs.values()), ks, columns, n_boot)
                      for label, runs in by_label.items()}
    order = sorted(stats_by_label, key=lambda lab: (-stats_by_label[lab][0][sig][0], lab))
    best_label = order[0]
    baseline = next((lab for lab in order if next(iter(by_label[lab].values())).model == BASELINE_MODEL), "")
    col_best = {c: max(stats_by_label[lab][0][c][0] for lab in order) for c in columns}
    rows = []
    for label in order:
        cells_raw, users, values, interval = stats_by_label[label]
        runs = [by_label[label][s] for s in sorted(by_label[label])]
        test, n_paired = None, len(users)
        if label != best_label:
            test, n_paired = _paired(users, values[sig], stats_by_label[best_label], sig, n_boot)
            if not n_paired:
                notes.append(f"{label} shares no evaluated user with {best_label}: no paired test")
        if not baseline or label == baseline:
            base = None
        elif baseline == best_label:
            base = test  # the same pairing: the best row is the baseline
        else:
            base = _paired(users, values[sig], stats_by_label[baseline], sig, n_boot)[0]
        speeds = [r.users_per_second for r in runs if r.users_per_second > 0]
        short = [r.short_lists.get(str(ks[-1])) for r in runs]
        rows.append(BoardRow(
            label=label, model=runs[0].model, seeds=[r.seed for r in runs], n_users=len(users),
            interval=interval,
            cells={c: Cell(m, lo, hi, math.isclose(m, col_best[c], rel_tol=0, abs_tol=1e-12))
                   for c, (m, lo, hi) in cells_raw.items()},
            p_value=test.p_value if test else None, diff=test.diff if test else None, n_paired=n_paired,
            users_per_second=float(np.mean(speeds)) if speeds else 0.0,
            fit_seconds=float(np.mean([float(r.fit.get("seconds", 0.0)) for r in runs])),
            curves=[c for c in map(_curve, runs) if c.epochs],
            id_table=_joined(r.id_table for r in runs),
            short_lists=None if None in short else int(sum(short)),  # type: ignore[arg-type]
            versions={k: _joined(r.versions.get(k, "") for r in runs) for k in runs[0].versions},
            base_diff=base.diff if base else None, base_p=base.p_value if base else None))
    tables = {row.id_table for row in rows if row.id_table}
    if len(tables) > 1:
        notes.append(f"rows use {len(tables)} semantic-ID tables ({'; '.join(sorted(tables))}): a difference "
                     f"between them mixes the model with its tokenisation ({ID_MARK} on p)")
    return DatasetBoard(dataset, split, fp, ks, columns, sig, best_label, rows, refs, notes, baseline)


def _paired(users: np.ndarray, values: np.ndarray, other: tuple[Any, np.ndarray, dict[str, np.ndarray], str],
            sig: str, n_boot: int) -> tuple[PairedResult | None, int]:
    """Paired test of one row's per-user `values` against another row's stats, on the users both share."""
    _, ia, ib = np.intersect1d(users, other[1], assume_unique=True, return_indices=True)
    if not len(ia):
        return None, 0
    return paired_compare(values[ia], other[2][sig][ib], sig, n_boot=n_boot), len(ia)


def _joined(values: Iterable[str]) -> str:
    return ", ".join(dict.fromkeys(values))


def different_id_tables(a: str, b: str) -> bool:
    """Two rows' rankings came from different tokenisations (an unshipped table is never known equal)."""
    return bool(a) and bool(b) and (a != b or "unshipped" in a)


def _per_user_sorted(rec: RunRecord, ks: list[int]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per-user metric vectors ordered by user id; `per_user` truncates MRR at the board's largest k,
    so it has the same depth for every row (and is named so: `mrr@k`)."""
    users = np.asarray(rec.users, dtype=np.int64)
    ranks = np.asarray(rec.ranks, dtype=np.int64)
    order = np.argsort(users, kind="stable")
    values = per_user(ranks, tuple(ks))
    return users[order], {m: v[order] for m, v in values.items()}


def _label_stats(runs: list[RunRecord], ks: list[int], columns: list[str], n_boot: int
                 ) -> tuple[dict[str, tuple[float, float, float]], np.ndarray, dict[str, np.ndarray], str]:
    """(mean, low, high) per column, and per-user values averaged over seeds on the users all seeds share."""
    per_seed = [_per_user_sorted(r, ks) for r in runs]
    if len(per_seed) == 1:
        users, values = per_seed[0]
        cis = mean_cis({c: values[c] for c in columns}, n_boot=n_boot, confidence=CONFIDENCE)
        return cis, users, values, "bootstrap"
    common = reduce(np.intersect1d, (u for u, _ in per_seed))
    averaged = {c: np.mean([v[c][np.searchsorted(u, common)] for u, v in per_seed], axis=0) for c in columns}
    cells = {}
    t = float(stats.t.ppf(0.5 + CONFIDENCE / 2, df=len(per_seed) - 1))
    for c in columns:
        seed_means = np.array([v[c].mean() for _, v in per_seed])
        mean, half = float(seed_means.mean()), float(t * seed_means.std(ddof=1) / math.sqrt(len(seed_means)))
        cells[c] = (mean, mean - half, mean + half)
    return cells, common, averaged, "seeds"


def _curve(rec: RunRecord) -> Curve:
    points = [(float(h["epoch"]), float(h["valid_ndcg@10"])) for h in rec.fit.get("history", [])
              if isinstance(h, dict) and "epoch" in h and "valid_ndcg@10" in h]
    return Curve(rec.seed, [p[0] for p in points], [p[1] for p in points])


def compare_runs(a: RunRecord, b: RunRecord, ks: tuple[int, ...] | list[int]) -> list[PairedResult]:
    """Paired comparison of two runs, metric by metric (a - b), only on the same users of the same split."""
    if a.fingerprint != b.fingerprint:
        raise GenrecError(f"runs {a.run_id} and {b.run_id} are on different splits (fingerprint "
                          f"{a.fingerprint[:12]} vs {b.fingerprint[:12]}); a paired test needs one split")
    if a.users != b.users:
        raise GenrecError(f"runs {a.run_id} and {b.run_id} evaluated different users ({len(a.users)} vs "
                          f"{len(b.users)}, or in another order); rerun with the same eval settings")
    ks = tuple(sorted(ks))
    if not ks:
        raise GenrecError("compare needs at least one cut-off k")
    va = per_user(np.where(np.asarray(a.ranks) > ks[-1], 0, a.ranks), ks)
    vb = per_user(np.where(np.asarray(b.ranks) > ks[-1], 0, b.ranks), ks)
    return [paired_compare(va[m], vb[m], m) for m in va]


def load_references() -> list[Reference]:
    """The published numbers shipped with the package (genrec_bench/references.toml)."""
    source = resources.files("genrec_bench") / "references.toml"
    try:
        entries = tomllib.loads(source.read_text(encoding="utf-8")).get("reference", [])
        return [Reference(e["model"], e["dataset"], e["source"], e["protocol"],
                          {k: float(v) for k, v in e["metrics"].items()}) for e in entries]
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise GenrecError(f"broken reference table ({exc.__class__.__name__}: {exc})",
                          path=str(source)) from None


# --------------------------------------------------------------------------- rendering


def render(boards: list[DatasetBoard], fmt: str) -> str | RenderableType:
    """`table` gives a rich renderable (print it with `Console().print`); the others give text to
    write as is (not through rich markup: labels such as `tiger[letter]` contain brackets)."""
    if fmt == "table":
        return _render_table(boards)
    if fmt == "markdown":
        return _render_markdown(boards)
    if fmt == "json":
        return _render_json(boards)
    if fmt == "html":
        return _render_html(boards)
    raise GenrecError(f"unknown report format '{fmt}'; choose one of {', '.join(FORMATS)}")


def metric_title(name: str) -> str:
    kind, _, k = name.partition("@")
    return {"hit": "Hit", "ndcg": "NDCG", "mrr": "MRR"}.get(kind, kind) + (f"@{k}" if k else "")


def _fmt_cell(cell: Cell) -> tuple[str, str]:
    return f"{cell.mean:.4f}", f"±{(cell.high - cell.low) / 2:.4f}"


def _fmt_p(board: DatasetBoard, row: BoardRow) -> str:
    if row.label == board.best_label:
        return "best"
    return "–" if row.p_value is None else _p_text(board, row, board.best_label, row.p_value)


def _fmt_base(board: DatasetBoard, row: BoardRow) -> str:
    if row.label == board.baseline_label:
        return "baseline"
    if row.base_p is None or row.base_diff is None:
        return "–"
    return f"{row.base_diff:+.4f}, p " + _p_text(board, row, board.baseline_label, row.base_p)


def _p_text(board: DatasetBoard, row: BoardRow, other_label: str, p: float) -> str:
    """A p-value as printed, marked when `row` and the row it was paired with rank on different id tables."""
    other = next(r for r in board.rows if r.label == other_label)
    mark = ID_MARK if different_id_tables(row.id_table, other.id_table) else ""
    return ("<0.001" if p < 0.001 else f"{p:.3f}") + mark


def _ref_columns(refs: list[Reference]) -> list[str]:
    return sorted({m for r in refs for m in r.metrics}, key=_metric_order)


def _metric_order(name: str) -> tuple[int, int, str]:
    kind, _, k = name.partition("@")
    return {"hit": 0, "ndcg": 1, "mrr": 2}.get(kind, 3), int(k) if k.isdigit() else 0, name


def _header(board: DatasetBoard) -> list[str]:
    return [*_head_names(board), *map(metric_title, board.columns), f"p vs best ({metric_title(board.sig_metric)})"]


def _head_names(board: DatasetBoard) -> list[str]:
    return ["model", "seed(s)", "users", f"short@{board.ks[-1]}", "id table"]


def _row_head(row: BoardRow) -> list[str]:
    """Label, seeds, users, users with a list shorter than the largest k ("?" = not recorded), id table."""
    short = "?" if row.short_lists is None else str(row.short_lists)
    return [row.label, ",".join(map(str, row.seeds)), str(row.n_users), short, row.id_table or "–"]


def best_per_model(rows: list[BoardRow]) -> list[BoardRow]:
    """The best row of each backend, in board order: with 20+ ablation rows, what a reader compares first."""
    best: dict[str, BoardRow] = {}
    for row in rows:
        best.setdefault(row.model, row)
    return list(best.values())


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _render_markdown(boards: list[DatasetBoard]) -> str:
    out = ["## genrec-bench leaderboard", ""]
    if not boards:
        out += ["_No run records._", ""]
    for board in boards:
        out += [f"### {_md(board.title)}", ""]
        out += [f"> {_md(n)}" for n in board.notes] + ([""] if board.notes else [])
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
    keep = [0, 1, 4] if brief else list(range(len(_head_names(board))))
    vs_base = bool(board.baseline_label) and not brief
    head = [_head_names(board)[i] for i in keep] + [*map(metric_title, metrics),
                                                    f"p vs best ({metric_title(board.sig_metric)})"]
    head += [f"vs {BASELINE_MODEL} ({metric_title(board.sig_metric)})"] if vs_base else []
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for row in rows:
        cells = []
        for c in metrics:
            mean, pm = _fmt_cell(row.cells[c])
            cells.append(f"**{mean}** {pm}" if row.cells[c].best else f"{mean} {pm}")
        label = f"**{_md(row.label)}**" if row.label == board.best_label else _md(row.label)
        values = [label, *_row_head(row)[1:]]
        tail = [_fmt_p(board, row)] + ([_fmt_base(board, row)] if vs_base else [])
        out.append("| " + " | ".join([*(values[i] for i in keep), *cells, *tail]) + " |")
    out.append("")
    if not brief:
        out += ["_" + LEGEND.format(metric=metric_title(board.sig_metric)) + "_", ""]
    if board.references:
        cols = [c for c in _ref_columns(board.references) if not brief or c in metrics]
        out += [f"**Published reference numbers for {_md(board.dataset)}** (not measured here; "
                "Recall@k = Hit@k under leave-one-out)", ""]
        tail = ["source"] if brief else ["source", "protocol"]
        out.append("| ref | " + " | ".join([*map(metric_title, cols), *tail]) + " |")
        out.append("|" + "|".join(["---"] + ["---:"] * len(cols) + ["---"] * len(tail)) + "|")
        for ref in board.references:
            vals = [f"{ref.metrics[c]:.4f}" if c in ref.metrics else "–" for c in cols]
            text = [_md(ref.source)] if brief else [_md(ref.source), _md(ref.protocol)]
            out.append("| " + " | ".join([f"ref: {_md(ref.model)}", *vals, *text]) + " |")
        out.append("")
    return out


def _render_json(boards: list[DatasetBoard]) -> str:
    doc = {"schema": 1, "kind": "genrec-bench leaderboard",
           "boards": [dataclasses.asdict(b) | {"title": b.title} for b in boards]}
    return json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n"


def _render_table(boards: list[DatasetBoard]) -> RenderableType:
    parts: list[RenderableType] = []
    if not boards:
        parts.append(Text("no run records"))
    for board in boards:
        parts.append(_TerminalBoard(board))
        if board.references:
            cols = _ref_columns(board.references)
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
            cells = [Text("\n".join(_fmt_cell(row.cells[c])), style="bold green" if row.cells[c].best else "")
                     for c in metrics]
            table.add_row(*map(Text, _row_head(row)[:3]), *([Text(_fmt_p(board, row))] if first else []), *cells)
        return table

    def _facts(self) -> Table:
        """Short lists and id tables in a table of their own, so the metric tables keep their width."""
        table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
        for name in (_head_names(self.board)[0], *_head_names(self.board)[3:]):
            table.add_column(name, justify="right" if name.startswith("short") else "left")
        for row in self.board.rows:
            head = _row_head(row)
            table.add_row(*map(Text, (head[0], *head[3:])))
        return table


# --------------------------------------------------------------------------- HTML + SVG

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#7f7f7f", "#bcbd22")
CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
h2,.note,.legend{overflow-wrap:anywhere}
table{border-collapse:collapse;margin:.5em 0 1em}
th,td{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:right}
th:first-child,td:first-child,th.text{text-align:left}
table.leaderboard td{white-space:nowrap}
table.leaderboard td:first-child{white-space:normal;min-width:10em;max-width:22em}
table.leaderboard th{position:sticky;top:0;background:#fff}
td.best{font-weight:bold;background:#e8f5e9}
.pm{color:#888;font-size:.85em}
table.references{color:#555;font-size:.9em}
table.references td.text{text-align:left;min-width:14em}
.note{color:#a15c00}
.legend{color:#666;font-size:.85em;max-width:60em}
.scroll{overflow-x:auto;max-width:100%}
.plots{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
svg.plot{background:#fff;border:1px solid #eee;max-width:100%;height:auto}
details.all-rows{margin:1em 0}
details.all-rows summary{cursor:pointer;color:#1f5fa8}
"""


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


def _board_plots(board: DatasetBoard, i: int) -> str:
    """The board's four plots over the best row of each backend (ids `plot-<board>-{hit,ndcg,latency,
    training}`), and, when the board has more rows than backends, the same plots over every row in a
    collapsed <details> (ids with `-all`): twenty curves in one chart hide the comparison that matters."""
    best = best_per_model(board.rows)
    html_ = ['<div class="plots">', *_plot_set(board, best, f"plot-{i}"), "</div>"]
    if len(best) < len(board.rows):
        html_ += [f'<details class="all-rows"><summary>Plots with all {len(board.rows)} rows (above: the best '
                  f'row of each of the {len(best)} backends)</summary><div class="plots">',
                  *_plot_set(board, board.rows, f"plot-{i}", "-all"), "</div></details>"]
    return "".join(html_)


def _plot_set(board: DatasetBoard, rows: list[BoardRow], prefix: str, suffix: str = "") -> list[str]:
    styles = {r.label: (PALETTE[j % len(PALETTE)], (j // len(PALETTE)) % 2 == 1) for j, r in enumerate(rows)}

    def series(name: str, label: str, xs: list[float], ys: list[float]) -> Series:
        color, dashed = styles[label]
        return Series(name, xs, ys, color, dashed)

    def curve(kind: str) -> list[Series]:
        return [series(r.label, r.label, [float(k) for k in board.ks], [r.cells[f"{kind}@{k}"].mean for k in board.ks])
                for r in rows]

    latency = [series(r.label, r.label, [1000.0 / r.users_per_second], [r.cells[board.sig_metric].mean])
               for r in rows if r.users_per_second > 0]
    training = [series(r.label + (f" s{c.seed}" if len(r.curves) > 1 else ""), r.label, c.epochs, c.valid)
                for r in rows for c in r.curves]
    sig = metric_title(board.sig_metric)
    return [
        svg_chart(curve("hit"), svg_id=f"{prefix}-hit{suffix}", css_class="plot-hit", title="Hit@k over k",
                  xlabel="k", ylabel="Hit@k"),
        svg_chart(curve("ndcg"), svg_id=f"{prefix}-ndcg{suffix}", css_class="plot-ndcg", title="NDCG@k over k",
                  xlabel="k", ylabel="NDCG@k"),
        svg_chart(latency, svg_id=f"{prefix}-latency{suffix}", css_class="plot-latency", lines=False, log_x=True,
                  title=f"{sig} vs inference latency", xlabel="ms per user, log scale (1 / users per second)",
                  ylabel=sig),
        svg_chart(training, svg_id=f"{prefix}-training{suffix}", css_class="plot-training",
                  title="validation NDCG@10 during training", xlabel="epoch", ylabel="valid NDCG@10"),
    ]


def _render_html(boards: list[DatasetBoard]) -> str:
    e = html.escape
    body = ["<h1>genrec-bench leaderboard</h1>"]
    if not boards:
        body.append('<p class="empty">No run records.</p>')
    for i, board in enumerate(boards):
        body.append(f'<section class="board" id="board-{i}" data-dataset="{e(board.dataset)}" '
                    f'data-fingerprint="{e(board.fingerprint)}"><h2>{e(board.title)}</h2>')
        body.extend(f'<p class="note">{e(n)}</p>' for n in board.notes)
        head = _header(board)
        body.append(f'<div class="scroll"><table class="leaderboard" id="table-{i}"><thead><tr>'
                    + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr></thead><tbody>")
        for row in board.rows:
            tds = "".join(f"<td>{e(v)}</td>" for v in _row_head(row))
            for c in board.columns:
                mean, pm = _fmt_cell(row.cells[c])
                cls = ' class="best"' if row.cells[c].best else ""
                tds += f'<td{cls} data-metric="{c}">{mean} <span class="pm">{pm}</span></td>'
            p_cell = f"<td>{e(_fmt_p(board, row))}</td>"
            body.append(f'<tr class="run" data-label="{e(row.label)}">{tds}{p_cell}</tr>')
        body.append("</tbody></table></div>")
        body.append(f'<p class="legend">{e(LEGEND.format(metric=metric_title(board.sig_metric)))}</p>')
        if board.references:
            cols = _ref_columns(board.references)
            body.append(f'<h3>Published reference numbers for {e(board.dataset)} (not measured here)</h3>'
                        f'<div class="scroll"><table class="references" id="refs-{i}"><thead><tr><th>ref</th>'
                        + "".join(f"<th>{e(metric_title(c))}</th>" for c in cols)
                        + '<th class="text">source</th><th class="text">protocol</th></tr></thead><tbody>')
            for ref in board.references:
                vals = "".join(f"<td>{ref.metrics[c]:.4f}</td>" if c in ref.metrics else "<td>–</td>"
                               for c in cols)
                body.append(f'<tr class="ref"><td>ref: {e(ref.model)}</td>{vals}<td class="text">'
                            f'{e(ref.source)}</td><td class="text">{e(ref.protocol)}</td></tr>')
            body.append("</tbody></table></div><p class=\"legend\">Recall@k = Hit@k under leave-one-out.</p>")
        body.append(_board_plots(board, i))
        body.append("</section>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>genrec-bench leaderboard"
            f"</title><style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
