"""How often does a trained run put an item from the user's own history at rank 1?

On data where users never re-buy (the Amazon sets), such an item wastes the top slot, and NDCG@1
pays for it in full. A backend that learns a repeat offset from its training targets (SASRec's,
HSTU's and BERT4Rec's softmax; RPG with `repeat_bias`) should rarely do it. This decodes the
evaluated test users of a run (the run's own `eval.max_users` unless `--users` is given) and
prints the share whose top item is in their history, the share of test targets that are, and
NDCG@1 / NDCG@10 as decoded and with history items dropped from the lists (the protocol's
`data.exclude_seen` switch): what those wasted slots cost the run at most.

    .venv/bin/python benchmarks/diagnostics/history_at_top.py --run RUN [--decode ranking=generative]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from genrec_bench.config import run_config_from_dict
from genrec_bench.evaluate import eval_users, rank_lists
from genrec_bench.metrics import summarise
from genrec_bench.pipeline import open_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished run directory")
    parser.add_argument("--decode", action="append", default=[], help="decode key=value, as in `eval`")
    parser.add_argument("--users", type=int, default=None, help="first N test users (default: the run's)")
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(1)
    decode = dict(item.split("=", 1) for item in args.decode) or None
    info, backend, data = open_run(args.run, "cpu", decode)
    cfg = run_config_from_dict(info["config"])
    users = eval_users(data, cfg.eval.max_users if args.users is None else args.users)
    top_seen = target_seen = 0
    for start in range(0, len(users), args.batch_size):
        hist, target = data.to_tensors("test", None, users[start : start + args.batch_size])
        top = backend.recommend(hist, 1).items[:, 0].cpu()
        real = hist >= 0
        top_seen += ((hist == top[:, None]) & real).any(dim=1).sum().item()  # real: -1 (no item) never counts
        target_seen += ((hist == target[:, None]) & real).any(dim=1).sum().item()
    n = len(users)
    label = f"{info['model']}" + (f" {decode}" if decode else "")
    print(f"{label} on {info['dataset']}, {n} test users: top item in the history {top_seen} "
          f"({top_seen / n:.1%}); target in the history {target_seen} ({target_seen / n:.1%})")
    for exclude in (False, True):
        _, ranks, _ = rank_lists(backend, data, "test", 10, users=users, batch_size=args.batch_size,
                                 exclude_seen=exclude, show_progress=False)
        metrics = summarise(ranks, (1, 10))
        print(f"  {'history items dropped' if exclude else 'as decoded':>21}: NDCG@1 {metrics['ndcg@1']:.4f}, "
              f"NDCG@10 {metrics['ndcg@10']:.4f}")


if __name__ == "__main__":
    main()
