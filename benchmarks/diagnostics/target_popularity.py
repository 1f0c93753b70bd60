"""Why is test NDCG below validation NDCG? Compare how rare the two splits' targets are.

Under leave-one-out the test target is each user's latest item, so it is more often an item that
the training part (all but the last two items of every user) has rarely seen. This prints, for the
validation and test targets of one dataset, the share of targets in each training-count band and
the NDCG@10 of the training-popularity ranking; then, for each given record of all test users, its
NDCG@10 within each band and that NDCG@10 re-weighted to the validation targets' band shares: how
much of a record's validation-test gap the rarer test targets alone account for. It also prints
how often a history ends in a rare item (a test history ends in the validation target), and each
record's NDCG@10 on those users and the rest.

    .venv/bin/python benchmarks/diagnostics/target_popularity.py --dataset toys \\
        --record 54b701cbad2c --record 90f3b876e5d3 --results benchmarks/results
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from genrec_bench.baselines.popularity import Popularity
from genrec_bench.config import TrainConfig, run_config_from_dict, with_legacy_values
from genrec_bench.data.registry import load_dataset
from genrec_bench.data.split import SplitData, make_split
from genrec_bench.evaluate import rank_targets
from genrec_bench.metrics import per_user
from genrec_bench.results import find_record

BANDS = ((0, 0), (1, 4), (5, 19), (20, None))  # training interactions of the target item
RARE = 5  # a history's last item counts as rare below this many training interactions


def band_masks(counts: np.ndarray) -> dict[str, np.ndarray]:
    return {(f"{lo}+" if hi is None else f"{lo}-{hi}" if hi > lo else f"{lo}"):
            (counts >= lo) & (True if hi is None else counts <= hi) for lo, hi in BANDS}


def popularity_ndcg(data: SplitData) -> dict[str, float]:
    """NDCG@10 of the popularity backend on all validation and on all test users."""
    model = Popularity()
    model.fit(data, TrainConfig())
    everyone = np.arange(data.n_users)
    return {split: float(per_user(rank_targets(model, data, split, 10, users=everyone, show_progress=False)[1],
                                  (10,))["ndcg@10"].mean()) for split in ("valid", "test")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--record", action="append", default=[], help="a test record of all users (repeatable)")
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    records = [find_record(ref, args.results) for ref in args.record]
    config = run_config_from_dict(with_legacy_values(records[0].config)).data if records else None
    data = make_split(load_dataset(args.dataset), config or run_config_from_dict({}).data, args.dataset)
    counts = data.train_counts()
    arrays = {split: data.eval_arrays(split) for split in ("valid", "test")}
    print(f"{args.dataset} ({data.fingerprint[:12]}), {data.n_users} users; share of targets by the "
          "target item's training interactions:")
    shares = {split: {name: mask.mean() for name, mask in band_masks(counts[targets]).items()}
              for split, (_, targets) in arrays.items()}
    popularity = popularity_ndcg(data)
    for split, (hist, _) in arrays.items():
        bands = ", ".join(f"{name}: {share:.3f}" for name, share in shares[split].items())
        print(f"  {split:>5}: {bands}; popularity NDCG@10 {popularity[split]:.4f}; "
              f"histories ending in an item of <{RARE} {np.mean(counts[hist[:, -1]] < RARE):.3f}")
    test_hist, test_targets = arrays["test"]
    masks = band_masks(counts[test_targets])
    rare_last = counts[test_hist[:, -1]] < RARE
    for rec in records:
        if rec.dataset != args.dataset or rec.split != "test" or sorted(rec.users) != list(range(data.n_users)):
            raise SystemExit(f"{rec.run_id} is not a record of all {args.dataset} test users")
        ndcg = per_user(np.asarray(rec.ranks)[np.argsort(rec.users)], (10,))["ndcg@10"]
        by_band = {name: ndcg[mask].mean() if mask.any() else 0.0 for name, mask in masks.items()}
        bands = ", ".join(f"{name}: {v:.4f}" for name, v in by_band.items())
        reweighted = sum(shares["valid"][name] * v for name, v in by_band.items())
        print(f"  {rec.model} ({rec.run_id[:12]}) test NDCG@10 {ndcg.mean():.4f}; by band {bands}; "
              f"at validation's band shares {reweighted:.4f}; history ending in an item of <{RARE} "
              f"{ndcg[rare_last].mean():.4f}, of >={RARE} {ndcg[~rare_last].mean():.4f}")


if __name__ == "__main__":
    main()
