"""Diffusion Beam Search time on a trained MindRec run: decoder bookkeeping vs the model (run by hand).

Decodes the first `--users` test users of the run's split at k = beam = `--k`, after a warm-up
batch, under cProfile, and prints wall seconds, users/s, the share spent inside the model and the
top functions by own time. To measure a change to `genrec_bench/decoding/diffusion_beam.py`, run it
at both commits on the same run directory; the printed digest of the top-k lists must match.

    .venv/bin/python benchmarks/perf/mindrec_decoding.py --run runs/mindrec-beauty --users 256 --threads 1
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import pstats
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a trained mindrec run directory")
    parser.add_argument("--users", type=int, default=256)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from genrec_bench.pipeline import open_run

    _, backend, data = open_run(args.run, "cpu")
    hist, _ = data.to_tensors("test", None, np.arange(min(args.users, data.n_users)))
    backend.recommend(hist[:16], args.k)  # warm-up: lazy tables, allocator
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    ranked = backend.recommend(hist, args.k)
    profile.disable()
    seconds = time.perf_counter() - start
    stats = pstats.Stats(profile)
    model = sum(v[3] for k, v in stats.stats.items() if k[2] in ("decode", "encode_prefix"))  # cumulative
    digest = hashlib.sha256(ranked.items.numpy().tobytes()).hexdigest()[:16]
    print(f"{len(hist)} users in {seconds:.2f} s ({len(hist) / seconds:.1f} users/s), model {model:.2f} s "
          f"({100 * model / seconds:.0f}%), top-{args.k} digest {digest}")
    stats.sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
