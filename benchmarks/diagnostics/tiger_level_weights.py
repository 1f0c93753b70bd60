"""Is one semantic-ID level of a trained TIGER mis-weighted? Beam search on weighted level log-probs.

TIGER ranks items by the sum of their levels' log-probabilities. If the model were over- or
under-confident at one level, scaling that level's log-probs (inside the beam search, so pruning
follows the new score too) would raise NDCG@10 on validation users; if no weight does, the
levels are balanced and a low NDCG@1 is not a decoding problem.

    .venv/bin/python benchmarks/diagnostics/tiger_level_weights.py --run RUN --users 4000
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from tiger_run import Combined, open_tiger_run

from genrec_bench.data.split import SplitData
from genrec_bench.evaluate import rank_targets
from genrec_bench.metrics import per_user
from genrec_bench.models.tiger import Tiger

WEIGHTS = (0.5, 0.75, 1.25, 1.5, 2.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=4000, help="random validation users (seed 1)")
    args, model, data = open_tiger_run(parser)
    users = np.random.default_rng(1).permutation(data.n_users)[: args.users]
    levels = len(model.module_.sizes)
    base = _ndcg(model, data, users, torch.ones(levels))
    print(f"{args.run}: {len(users)} validation users, all weights 1: NDCG@10 {base:.4f}")
    for level in range(levels):
        row = []
        for w in WEIGHTS:
            weights = torch.ones(levels)
            weights[level] = w
            row.append(f"x{w:g} {_ndcg(model, data, users, weights):.4f}")
        print(f"level {level}: " + "  ".join(row))


def _ndcg(model: Tiger, data: SplitData, users: np.ndarray, weights: torch.Tensor, k: int = 10) -> float:
    """Validation NDCG@k of `model` whose beam search scores level t's log-probs times weights[t]."""
    weighted = Combined([model], lambda logprobs, level: logprobs[0] * weights[level])
    _, ranks = rank_targets(weighted, data, "valid", k, users=users, show_progress=False)
    return float(per_user(ranks, (k,))[f"ndcg@{k}"].mean())


if __name__ == "__main__":
    main()
