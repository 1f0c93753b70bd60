"""Is one semantic-ID level of a trained TIGER mis-weighted? Beam search on weighted level log-probs.

TIGER ranks items by the sum of their levels' log-probabilities. If the model were over- or
under-confident at one level, scaling that level's log-probs (inside the beam search, so pruning
follows the new score too) would raise NDCG@10 on validation users; if no weight does, the
levels are balanced and a low NDCG@1 is not a decoding problem.

    .venv/bin/python benchmarks/diagnostics/tiger_level_weights.py --run RUN --users 4000
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import torch
from tiger_run import open_tiger_run

from genrec_bench.backends.base import Ranked
from genrec_bench.backends.tiger import Tiger
from genrec_bench.data.split import SplitData
from genrec_bench.decoding.beam_search import constrained_beam_search
from genrec_bench.evaluate import rank_targets
from genrec_bench.metrics import per_user

WEIGHTS = (0.5, 0.75, 1.25, 1.5, 2.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=4000, help="random validation users (seed 1)")
    args, model, data = open_tiger_run(parser)
    users = np.random.default_rng(1).permutation(data.n_users)[: args.users]
    levels = len(model.net_.sizes)
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
    _, ranks = rank_targets(_Weighted(model, weights), data, "valid", k, users=users, show_progress=False)
    return float(per_user(ranks, (k,))[f"ndcg@{k}"].mean())


@dataclass(frozen=True)
class _Weighted:
    """`Tiger.recommend` with a weighted step, so the beam also prunes on the weighted score."""

    model: Tiger
    weights: torch.Tensor

    def recommend(self, histories: torch.Tensor, k: int) -> Ranked:
        m = self.model
        with torch.inference_mode():
            decoder = m.decoder_for(histories)

            def step(prefix_bwt: torch.Tensor, parent_bw: torch.Tensor | None) -> torch.Tensor:
                return decoder.level_step(prefix_bwt, parent_bw) * self.weights[prefix_bwt.shape[2]]

            out = constrained_beam_search(step, m.trie_, len(histories), beam=max(k, m.cfg.beam_width), k=k)
        return Ranked(items=out.items, scores=out.scores)


if __name__ == "__main__":
    main()
