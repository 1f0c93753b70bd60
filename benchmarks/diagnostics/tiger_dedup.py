"""Where a trained TIGER loses test targets: at the code tuple, or at the de-dup level within it.

Items that share their quantised tuple are told apart only by the de-dup code. This prints, for
targets in a shared tuple and for the rest, how often the top-1 / top-10 list holds the right
tuple and how often the right item; the difference is what the de-dup level costs (what
`model.item_head` addresses). `--run` may be any backend's run, its targets grouped by the tuples
of the TIGER run `--tuples`, to see where another model wins.

    .venv/bin/python benchmarks/diagnostics/tiger_dedup.py --run RUN --users 3000 [--tuples TIGER_RUN]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from genrec_bench.models.tiger import Tiger
from genrec_bench.pipeline import open_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a trained run directory (any backend)")
    parser.add_argument("--tuples", type=Path, help="the tiger run whose tuples group items (default: --run)")
    parser.add_argument("--users", type=int, default=3000, help="random test users (seed 0)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    _, model, data = open_run(args.run, "cpu")
    codes = Tiger.load((args.tuples or args.run) / "model").codes_
    _, group, count = torch.unique(codes[:, :-1], dim=0, return_inverse=True, return_counts=True)
    users = np.random.default_rng(0).permutation(data.n_users)[: args.users]
    rows = []
    for start in range(0, len(users), 256):
        hist, target = data.to_tensors("test", None, users[start : start + 256])
        items = model.recommend(hist, 10).items
        same_item = items == target[:, None]
        same_tuple = (group[items.clamp(min=0)] == group[target][:, None]) & (items >= 0)
        rows.append(torch.stack([same_tuple[:, 0], same_item[:, 0], same_tuple.any(1), same_item.any(1),
                                 count[group[target]] > 1], dim=1))
    hits = torch.cat(rows).float()
    shared = hits[:, 4].bool()
    print(f"{len(users)} test users; {shared.float().mean():.1%} of targets share their tuple")
    for name, mask in (("all", torch.ones_like(shared)), ("shared tuple", shared), ("own tuple", ~shared)):
        h = hits[mask].mean(0)
        print(f"{name:13s} n={int(mask.sum()):5d}  tuple@1 {h[0]:.4f} item@1 {h[1]:.4f}  "
              f"tuple@10 {h[2]:.4f} item@10 {h[3]:.4f}")


if __name__ == "__main__":
    main()
