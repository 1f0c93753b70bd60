"""MindRec's Diffusion Beam Search vs TIGER's beam search: test users per second, side by side (run by hand).

Both trained runs decode the same first `--users` test users of their split, at k = beam width
for every width in `--beams`, after a warm-up batch, in one process with `--threads` threads.
Prints wall and CPU seconds per decoder (the fastest of `--repeat` passes; CPU-seconds are steadier
on a shared machine), users/s,
MindRec / TIGER speed ratio, MindRec's model-call share (`--profile`), the number of lists shorter
than k and a digest of each top-k list set: to check that a change to
`genrec_bench/decoding/diffusion_beam.py` or to `MindRecNet.decode` leaves the lists unchanged, run
it at both commits on the same runs; the digests must match.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/perf/mindrec_decoding.py --mindrec runs/mindrec-beauty \\
        --tiger runs/tiger-beauty --users 256 --beams 10,20 --threads 1

`--decode key=value` (repeatable) sets a MindRec decoding switch, e.g. `tokens_per_step=2`.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import pstats
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genrec_bench.api import Backend
from genrec_bench.data.split import SplitData
from genrec_bench.decode_options import apply_decoding, parse_decode
from genrec_bench.pipeline import open_run


def timed(backend: Backend, hist: torch.Tensor, k: int, profile: bool,
          repeat: int) -> tuple[torch.Tensor, float, float, float]:
    """(items, wall s, CPU s, model s): the fastest of `repeat` decoding passes over `hist` (the least
    disturbed by other work on the machine); model time only under `profile` (one pass)."""
    backend.recommend(hist[:16], k)  # warm-up: lazy tables, allocator
    prof = cProfile.Profile() if profile else None
    best = (float("inf"), float("inf"))
    for _ in range(1 if profile else repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        if prof:
            prof.enable()
        items = backend.recommend(hist, k).items
        if prof:
            prof.disable()
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu), key=lambda t: t[1])
    wall, cpu = best
    model = 0.0
    if prof:
        stats = pstats.Stats(prof)
        model = sum(v[3] for key, v in stats.stats.items() if key[2] in ("decode", "encode_prefix"))
        stats.sort_stats("tottime").print_stats(10)
    return items, wall, cpu, model


def open_pair(mindrec_dir: Path, tiger_dir: Path, decode: dict[str, Any] | None = None) -> tuple[Backend, Backend,
                                                                                                 SplitData]:
    """A trained MindRec run (with `decode` switches) and a TIGER run of the same split, on CPU."""
    info, mindrec, data = open_run(mindrec_dir, "cpu", decode or {})
    tiger_info, tiger, tiger_data = open_run(tiger_dir, "cpu")
    if (info["model"], tiger_info["model"]) != ("mindrec", "tiger"):
        raise SystemExit(f"--mindrec is a {info['model']} run and --tiger a {tiger_info['model']} run")
    if data.fingerprint != tiger_data.fingerprint:
        raise SystemExit("the two runs were trained on different splits; give runs of one dataset")
    return mindrec, tiger, data


def digest(items: torch.Tensor) -> str:
    return hashlib.sha256(items.numpy().tobytes()).hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mindrec", type=Path, required=True, help="a trained mindrec run directory")
    parser.add_argument("--tiger", type=Path, required=True, help="a trained tiger run directory")
    parser.add_argument("--users", type=int, default=256)
    parser.add_argument("--beams", default="10,20", help="comma-separated beam widths (k = beam)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--decode", action="append", default=[], help="a MindRec decoding switch key=value")
    parser.add_argument("--profile", action="store_true", help="profile MindRec: model share, top functions")
    parser.add_argument("--repeat", type=int, default=3, help="passes per decoder; the fastest (CPU) is reported")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    decode = parse_decode(args.decode)
    mindrec, tiger, data = open_pair(args.mindrec, args.tiger, decode)
    hist, _ = data.to_tensors("test", None, np.arange(min(args.users, data.n_users)))
    print(f"{len(hist)} test users of {data.name}, {args.threads} thread(s), MindRec decode {decode or 'defaults'}")
    print("beam  mindrec users/s (wall, cpu)  tiger users/s (wall, cpu)  tiger/mindrec (cpu)  mindrec model  "
          "short lists  mindrec digest    tiger digest")
    for beam in (int(b) for b in args.beams.split(",")):
        apply_decoding(mindrec, {"beam_width": beam})
        apply_decoding(tiger, {"beam_width": beam})
        m_items, m_wall, m_cpu, m_model = timed(mindrec, hist, beam, args.profile, args.repeat)
        t_items, t_wall, t_cpu, _ = timed(tiger, hist, beam, False, args.repeat)
        n = len(hist)
        model = f"{100 * m_model / m_wall:.0f}%" if args.profile else "-"
        short = int(((m_items >= 0).sum(dim=1) < beam).sum())
        print(f"{beam:>4}  {n / m_wall:>8.1f} {n / m_cpu:>8.1f}           {n / t_wall:>8.1f} {n / t_cpu:>8.1f}"
              f"         {m_cpu / t_cpu:>6.2f}x              {model:>5}  {short:>11}  {digest(m_items)}  "
              f"{digest(t_items)}")


if __name__ == "__main__":
    main()
