"""Throughput, latency and memory of every backend on the embedded Beauty split (run by hand).

For each backend, in a fresh process (so peak RSS is its own): train for `--steps` optimiser steps
(training samples/s), then recommend for `--users` test users at k = 10 and k = 20 (users/s; for
the generative backends the beam is k), and one user at a time for `--latency-users` users
(latency per user); the first call, which builds what a backend makes on first use (RPG's item
graph), is timed apart. Prints one JSON line per backend and a summary table. Every built-in backend
runs with its defaults, except the overrides in `OVERRIDES`.

    .venv/bin/python benchmarks/perf/backends.py --steps 30 --users 1000 --threads 2
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from genrec_bench.models.registry import REGISTRY

OVERRIDES: dict[str, dict] = {"tiger": {"preset": "small", "history_encoding": "item_sum"}}
BEAM_IS_K = ("tiger", "liger", "mindrec")  # autoregressive / diffusion beams; RPG keeps its graph beam (>= k)


def measure(name: str, steps: int, users: int, latency_users: int) -> dict:
    from genrec_bench.config import DataConfig, TrainConfig
    from genrec_bench.data.registry import load_dataset
    from genrec_bench.data.split import make_split
    from genrec_bench.decode_options import apply_decoding
    from genrec_bench.models.registry import create_backend

    data = make_split(load_dataset("beauty"), DataConfig(), "beauty")
    batch = 256
    train = TrainConfig(epochs=1, max_steps=steps, batch_size=batch, valid_users=1, patience=0, device="cpu",
                        warmup_steps=1)
    backend = create_backend(name, OVERRIDES.get(name, {}))
    start = time.perf_counter()
    report = backend.fit(data, train)
    fit_seconds = time.perf_counter() - start
    out: dict = {"backend": name, "fit_seconds": round(fit_seconds, 1), "steps": report.steps,
                 "train_samples_per_s": round(report.steps * batch / report.seconds, 1) if report.steps else None}
    hist, _ = data.to_tensors("test", users=np.arange(users))
    with torch.inference_mode():  # structures built on first use (RPG's item graph) are timed apart
        t = time.perf_counter()
        backend.recommend(hist[:1], 10)
        out["first_call_s"] = round(time.perf_counter() - t, 2)
    for k in (10, 20):
        if name in BEAM_IS_K:
            apply_decoding(backend, {"beam_width": k})
        with torch.inference_mode():
            t = time.perf_counter()
            for s in range(0, users, 256):
                backend.recommend(hist[s : s + 256], k)
            out[f"users_per_s@beam{k}"] = round(users / (time.perf_counter() - t), 1)
    with torch.inference_mode():
        t = time.perf_counter()
        for u in range(latency_users):
            backend.recommend(hist[u : u + 1], 10)
        out["latency_ms_per_user@10"] = round(1000 * (time.perf_counter() - t) / latency_users, 2)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--latency-users", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backends", nargs="+", default=list(REGISTRY))
    parser.add_argument("--child")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(measure(args.child, args.steps, args.users, args.latency_users)))
        return
    rows = []
    for name in args.backends:
        cmd = [sys.executable, __file__, "--child", name, "--steps", str(args.steps), "--users", str(args.users),
               "--latency-users", str(args.latency_users), "--threads", str(args.threads)]
        line = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        print(line, flush=True)
        rows.append(json.loads(line))
    keys = [k for k in rows[0] if k != "backend"]
    print("| backend | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for r in rows:
        print(f"| {r['backend']} | " + " | ".join(str(r.get(k)) for k in keys) + " |")


if __name__ == "__main__":
    main()
