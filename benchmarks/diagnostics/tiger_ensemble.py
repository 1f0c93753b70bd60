"""Is TIGER's NDCG@10 gap variance? Beam search on the mean log-probs of several trained runs.

Runs trained with different seeds on the same semantic IDs share one trie, so their per-level
log-probs can be averaged inside the beam search (a product of experts; pruning follows the
averaged score). If the ensemble's NDCG@10 rises well above every member's, a single model's
ranking is limited by training variance rather than by the tokenisation or the decoder.
Each member is scored too, on the same users, with a paired test of the ensemble against the best.

    .venv/bin/python benchmarks/diagnostics/tiger_ensemble.py --runs RUN1 RUN2 RUN3 --split test
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from tiger_run import Combined, load_tiger

from genrec_bench.api import Backend
from genrec_bench.data.split import SplitData
from genrec_bench.evaluate import rank_targets
from genrec_bench.metrics import paired_compare, per_user
from genrec_bench.models.tiger import Tiger

KS = (1, 5, 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="trained tiger runs on one split")
    parser.add_argument("--split", choices=("valid", "test"), default="valid")
    parser.add_argument("--users", type=int, default=0, help="random users (seed 1); 0 = every user")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models, data = _open(args.runs)
    users = np.arange(data.n_users) if args.users == 0 else np.random.default_rng(1).permutation(data.n_users)[
        : args.users]
    rows = {str(run): _per_user(m, data, args.split, users) for run, m in zip(args.runs, models, strict=True)}
    ensemble = Combined(models, lambda logprobs, _level: torch.stack(logprobs).mean(0))
    rows["ensemble"] = _per_user(ensemble, data, args.split, users)
    print(f"{len(users)} {args.split} users, k {max(KS)}, beam {models[0].cfg.beam_width}")
    for name, cols in rows.items():
        print(f"{name}: " + "  ".join(f"{m} {v.mean():.4f}" for m, v in cols.items()))
    best = max((str(r) for r in args.runs), key=lambda name: rows[name]["ndcg@10"].mean())
    for metric in ("hit@10", "ndcg@10"):
        res = paired_compare(rows["ensemble"][metric], rows[best][metric], metric)
        print(f"ensemble - {best} {metric}: {res.diff:+.4f} [{res.ci_low:+.4f}, {res.ci_high:+.4f}]"
              f" p {res.p_value:.3g}")


def _open(runs: list[Path]) -> tuple[list[Tiger], SplitData]:
    """The runs' models, after checking they share the split and the semantic IDs (one trie)."""
    opened = [load_tiger(run) for run in runs]
    models = [m for _, m, _ in opened]
    prints = {info["fingerprint"] for info, _, _ in opened}
    if len(prints) > 1:
        raise SystemExit(f"the runs were trained on different splits: {sorted(prints)}")
    if any(not torch.equal(m.codes_, models[0].codes_) for m in models):
        raise SystemExit("the runs have different semantic IDs, so no shared trie to search")
    return models, opened[0][2]


def _per_user(backend: Backend, data: SplitData, split: str, users: np.ndarray) -> dict[str, np.ndarray]:
    _, ranks = rank_targets(backend, data, split, max(KS), users=users, show_progress=False)
    cols = per_user(ranks, KS)
    return {m: cols[m] for m in ("hit@1", "hit@10", "ndcg@5", "ndcg@10")}


if __name__ == "__main__":
    main()
