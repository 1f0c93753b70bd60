"""In-set and cold-start slices of an evaluation: LIGER-style methods claim their gain on test
targets the model never saw in training, so a leaderboard must be able to show that slice alone.

A user is *cold-start* when the item they interact with next (the split's target) has no
interaction in the training part of any sequence; every other user is *in-set*.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from genrec_bench.config import run_config_from_dict
from genrec_bench.data.registry import load_dataset
from genrec_bench.data.split import Split, SplitData, make_split
from genrec_bench.errors import GenrecError
from genrec_bench.metrics import summarise
from genrec_bench.results import RunRecord, dumps_record, record_files
from genrec_bench.runtime import atomic_write_bytes

SLICES = ("in-set", "cold-start")


def cold_start_users(data: SplitData, split: Split, users: np.ndarray) -> np.ndarray:
    """The users among `users` whose `split` target never occurs in training, sorted (int64)."""
    _, targets = data.eval_arrays(split, 1, users)
    return np.sort(users[data.train_counts()[targets] == 0]).astype(np.int64)


def slice_record(rec: RunRecord, cold: np.ndarray, which: str) -> RunRecord:
    """`rec` restricted to one slice's users, its metrics recomputed, its dataset named by the slice
    so that `leaderboard` puts the slice on a board of its own."""
    if which not in SLICES:
        raise GenrecError(f"unknown slice '{which}'; choose one of {', '.join(SLICES)}")
    users = np.asarray(rec.users, dtype=np.int64)
    ranks = np.asarray(rec.ranks, dtype=np.int64)
    keep = np.isin(users, cold) == (which == "cold-start")
    return dataclasses.replace(rec, dataset=f"{rec.dataset} · {which}", users=users[keep].tolist(),
                               ranks=ranks[keep].tolist(), metrics=summarise(ranks[keep], tuple(rec.ks)))


class ColdStartLookup:
    """Cold-start users of records that predate the recorded `cold_users`, rebuilt from their
    registered dataset and data config; the fingerprint check makes sure it is the same split."""

    def __init__(self, data_dir: Path | None = None):
        self.data_dir = data_dir
        self._splits: dict[str, SplitData] = {}

    def __call__(self, rec: RunRecord) -> np.ndarray:
        if rec.cold_users is not None:
            return np.asarray(rec.cold_users, dtype=np.int64)
        data = self._split(rec)
        return cold_start_users(data, rec.split, np.unique(np.asarray(rec.users, dtype=np.int64)))  # type: ignore[arg-type]

    def _split(self, rec: RunRecord) -> SplitData:
        if rec.fingerprint not in self._splits:
            cfg = run_config_from_dict({"data": rec.config.get("data", {})}, f"record {rec.run_id}")
            try:
                data = make_split(load_dataset(rec.dataset, self.data_dir), cfg.data, rec.dataset)
            except GenrecError as exc:
                raise GenrecError(f"record {rec.run_id} has no cold-start users recorded and its dataset "
                                  f"cannot be rebuilt ({exc}); evaluate the run again") from exc
            if data.fingerprint != rec.fingerprint:
                raise GenrecError(f"record {rec.run_id}: the rebuilt {rec.dataset} split has fingerprint "
                                  f"{data.fingerprint}, the record {rec.fingerprint}; evaluate the run again")
            self._splits[rec.fingerprint] = data
        return self._splits[rec.fingerprint]


def with_slices(records: list[RunRecord], lookup: ColdStartLookup) -> list[RunRecord]:
    """Every record, then its in-set and its cold-start slice (a slice no user falls in is left out)."""
    out = list(records)
    for rec in records:
        cold = lookup(rec)
        for which in SLICES:
            part = slice_record(rec, cold, which)
            if part.users:
                out.append(part)
    return out


def slice_summary(records: list[RunRecord], metrics: tuple[str, ...] = ("hit@10", "ndcg@10")
                  ) -> list[tuple[str, int, int, dict[str, float], dict[str, float]]]:
    """(label, in-set users, cold-start users, in-set metrics, cold-start metrics) per label, the
    metrics averaged over its seeds; only records with recorded cold-start users take part."""
    by_label: dict[str, list[RunRecord]] = {}
    for rec in records:
        if rec.cold_users is not None:
            by_label.setdefault(rec.label, []).append(rec)
    rows = []
    for label, runs in by_label.items():
        parts = {w: [slice_record(r, np.asarray(r.cold_users, dtype=np.int64), w) for r in runs] for w in SLICES}
        means = {w: {m: float(np.mean([p.metrics[m] for p in parts[w]])) for m in metrics} for w in SLICES}
        rows.append((label, len(parts["in-set"][0].users), len(parts["cold-start"][0].users),
                     means["in-set"], means["cold-start"]))
    return rows


def backfill(root: Path, dataset: str, data_dir: Path | None = None) -> int:
    """Write the cold-start users into every record of `dataset` under `root` that lacks them; the
    split is rebuilt from the registered dataset and checked by fingerprint. Returns how many changed."""
    lookup, changed = ColdStartLookup(data_dir), 0
    for path in record_files(root):
        rec = RunRecord.from_dict(json.loads(path.read_text()))
        if rec.dataset != dataset or rec.cold_users is not None:
            continue
        rec.cold_users = lookup(rec).tolist()
        atomic_write_bytes(path, dumps_record(rec.to_dict()).encode())
        changed += 1
    return changed


if __name__ == "__main__":  # python -m genrec_bench.slices RESULTS_DIR DATASET
    print(f"recorded cold-start users in {backfill(Path(sys.argv[1]), sys.argv[2])} record(s)", file=sys.stderr)
