"""Is the first-N slice of the users a fair validation set? Compare it with random slices of one record.

Reads a record evaluated on *all* users (`genrec-bench eval --run RUN --split valid --max-users 0`)
and prints NDCG@10 on the first N users in file order (`train.valid_sample = "first"`), on the
rest, on the fixed-seed sample `train.valid_sample = "random"` draws, and over many random samples,
next to the mean sequence length of each slice.

    .venv/bin/python benchmarks/diagnostics/validation_users.py --record R.json --users 2000
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from genrec_bench.config import TrainConfig, run_config_from_dict, with_legacy_values
from genrec_bench.data.registry import load_dataset
from genrec_bench.data.split import make_split
from genrec_bench.evaluate import validation_users
from genrec_bench.metrics import per_user
from genrec_bench.results import find_record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--record", type=Path, required=True, help="a record of all users of one split")
    parser.add_argument("--users", type=int, default=2000, help="validation sample size (train.valid_users)")
    parser.add_argument("--samples", type=int, default=200, help="random samples for the spread")
    args = parser.parse_args()
    rec = find_record(str(args.record), args.record.parent)
    data = make_split(load_dataset(rec.dataset), run_config_from_dict(with_legacy_values(rec.config)).data,
                      rec.dataset)
    if sorted(rec.users) != list(range(data.n_users)):
        raise SystemExit(f"{args.record} covers {len(rec.users)} of {data.n_users} users; evaluate all of them")
    order = np.argsort(rec.users)
    ndcg = per_user(np.asarray(rec.ranks)[order], (10,))["ndcg@10"]
    length = np.diff(data.offsets)
    n = args.users
    slices = {"first": np.arange(n), "rest": np.arange(n, data.n_users), "all": np.arange(data.n_users),
              "random (valid_sample)": validation_users(data, TrainConfig(valid_users=n))}
    for name, users in slices.items():
        print(f"{name:>22}: {len(users):6d} users, {length[users].mean():5.2f} interactions, "
              f"NDCG@10 {ndcg[users].mean():.4f}")
    rng = np.random.default_rng(1)
    means = [ndcg[rng.choice(data.n_users, n, replace=False)].mean() for _ in range(args.samples)]
    print(f"{args.samples} random {n}-user samples: NDCG@10 {np.mean(means):.4f} ± {np.std(means):.4f} (s.d.)")


if __name__ == "__main__":
    main()
