"""The statistics behind a leaderboard: boards of rows per split, seed-averaged cells with
intervals, paired tests against the best row and the baseline, published references beside them.

Only runs on the same split (same dataset, split and fingerprint) share a board: a number means
nothing next to a number measured on other users or other items. Each row is one label (a
model with its settings) averaged over seeds, with an interval, and a paired test against the
best row on the same users, because differences between generative recommenders are often
within noise. Published numbers are kept beside the rows as context, never as rows.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import reduce
from importlib import resources
from typing import Any

import numpy as np
from scipy import stats

from genrec_bench.errors import GenrecError
from genrec_bench.metrics import PairedResult, mean_cis, paired_compare, per_user
from genrec_bench.results import RunRecord

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
