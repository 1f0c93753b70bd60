"""RPG's graph decoding against exact scoring: recall of the exact top-k and users/s (run by hand).

For the first `--users` test users of a trained RPG run, ranks the whole catalogue exactly, then
decodes with graph beam propagation for every (beam width, edges, steps) setting given, and prints
per setting: recall@k of the exact top-k (the share of the exact list that the graph list also
holds), the share of users whose graph list equals the exact list, the mean score lost at the last
rank, and users per CPU-second of both decoders (the graph is built before timing; its build time
is printed once per edge count).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/perf/rpg_graph.py --run runs/rpg-beauty --users 2000 \\
        --k 10,20 --beams 10,50 --edges 50,100 --steps 1,3 --threads 1
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import torch

from genrec_bench.decode_options import apply_decoding
from genrec_bench.pipeline import open_run


def decode(backend, hist: torch.Tensor, k: int, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(items, scores, CPU seconds) over all of `hist` in batches."""
    backend.recommend(hist[:8], k)  # warm-up
    cpu = time.process_time()
    out = [backend.recommend(hist[s : s + batch], k) for s in range(0, len(hist), batch)]
    cpu = time.process_time() - cpu
    return torch.cat([r.items for r in out]), torch.cat([r.scores for r in out]), cpu


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a trained rpg run directory")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--k", default="10,20")
    parser.add_argument("--beams", default="50")
    parser.add_argument("--edges", default="50")
    parser.add_argument("--steps", default="3")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    info, backend, data = open_run(args.run, "cpu")
    if info["model"] != "rpg":
        raise SystemExit(f"--run is a {info['model']} run, not rpg")
    hist, _ = data.to_tensors("test", None, np.arange(min(args.users, data.n_users)))
    n = len(hist)
    print(f"{n} test users of {data.name} ({data.n_items} items), {args.threads} thread(s)")
    print("   k  beam  edges  steps  recall@k  same list  score gap@k  graph users/s  exact users/s")
    for k in ints(args.k):
        apply_decoding(backend, {"decode": "exact"})
        exact_items, exact_scores, exact_cpu = decode(backend, hist, k)
        for edges, beam, steps in itertools.product(ints(args.edges), ints(args.beams), ints(args.steps)):
            apply_decoding(backend, {"decode": "graph", "graph_edges": edges, "beam_width": beam,
                                     "graph_steps": steps})
            build = time.process_time()
            backend.graph()
            build = time.process_time() - build
            if build > 0.5:
                print(f"      (graph with {edges} edges built in {build:.1f} CPU-s)")
            items, scores, cpu = decode(backend, hist, k)
            hit = (items[:, :, None] == exact_items[:, None, :]).any(dim=2).float().mean()
            same = (items == exact_items).all(dim=1).float().mean()
            gap = (exact_scores[:, -1] - scores[:, -1]).mean()
            print(f"{k:>4}  {beam:>4}  {edges:>5}  {steps:>5}  {hit:>8.4f}  {same:>9.4f}  {gap:>11.4f}"
                  f"  {n / cpu:>13.1f}  {n / exact_cpu:>13.1f}")


if __name__ == "__main__":
    main()
