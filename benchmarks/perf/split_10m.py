"""Loading + splitting a 10-million-interaction file: genrec-bench (polars) vs plain pandas.

Writes a synthetic CSV (`user_id,item_id,timestamp`, Zipf-like item popularity), then runs, each
in a fresh process so peak memory is its own: (a) `load_interactions` + `make_split` (5-core,
leave-one-out) and (b) a straightforward pandas implementation of the same contract. Prints
seconds and peak RSS side by side and checks that both produce the same split.

    .venv/bin/pip install '.[perf]'   # pandas, for the baseline only
    .venv/bin/python benchmarks/perf/split_10m.py --rows 10000000 --workdir /tmp/split10m
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def write_file(path: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    users = rows // 40
    items = max(1000, rows // 100)
    user = np.sort(rng.integers(0, users, rows))
    item = (rng.zipf(1.3, rows) - 1) % items
    ts = rng.integers(1_300_000_000, 1_600_000_000, rows)
    with path.open("w") as fh:
        fh.write("user_id,item_id,timestamp\n")
        chunk = 1_000_000
        for s in range(0, rows, chunk):
            block = np.stack([user[s : s + chunk], item[s : s + chunk], ts[s : s + chunk]], axis=1)
            np.savetxt(fh, block, fmt="%d", delimiter=",")


def ours(path: Path) -> dict:
    from genrec_bench.config import DataConfig
    from genrec_bench.data.loaders import load_interactions
    from genrec_bench.data.split import make_split

    start = time.perf_counter()
    split = make_split(load_interactions(path), DataConfig(), "synthetic")
    seconds = time.perf_counter() - start
    hist, tgt = split.eval_arrays("test")
    return {"seconds": seconds, "users": split.n_users, "items": split.n_items, "interactions": int(len(split.items)),
            "test_target_sum": int(tgt.sum())}


def pandas_split(path: Path) -> dict:
    import pandas as pd

    start = time.perf_counter()
    df = pd.read_csv(path, dtype={"user_id": str, "item_id": str, "timestamp": np.float64})
    df["row"] = np.arange(len(df))
    while True:  # iterative 5-core
        before = len(df)
        df = df[df.groupby("item_id")["item_id"].transform("size") >= 5]
        df = df[df.groupby("user_id")["user_id"].transform("size") >= 5]
        if len(df) == before:
            break
    uidx = {u: i for i, u in enumerate(pd.unique(df["user_id"]))}
    iidx = {t: i for i, t in enumerate(pd.unique(df["item_id"]))}
    df = df.assign(u=df["user_id"].map(uidx), i=df["item_id"].map(iidx)).sort_values(["u", "timestamp", "row"],
                                                                                       kind="stable")
    test_targets = df.groupby("u")["i"].last()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "users": len(uidx), "items": len(iidx), "interactions": len(df),
            "test_target_sum": int(test_targets.sum())}


def child(kind: str, path: Path) -> None:
    result = (ours if kind == "ours" else pandas_split)(path)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/split10m"))
    parser.add_argument("--child", choices=["ours", "pandas"])
    parser.add_argument("--file", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.file)
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    path = args.workdir / f"synthetic-{args.rows}.csv"
    if not path.exists():
        t = time.perf_counter()
        write_file(path, args.rows)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    results = {}
    for kind in ("ours", "pandas"):
        out = subprocess.run([sys.executable, __file__, "--child", kind, "--file", str(path)], capture_output=True,
                             text=True, check=True)
        results[kind] = json.loads(out.stdout.strip().splitlines()[-1])
    same = all(results["ours"][k] == results["pandas"][k] for k in ("users", "items", "interactions",
                                                                      "test_target_sum"))
    speedup = results["pandas"]["seconds"] / results["ours"]["seconds"]
    memory_ratio = results["pandas"]["peak_rss_mb"] / results["ours"]["peak_rss_mb"]
    print(json.dumps({"rows": args.rows, **results, "speedup": speedup, "memory_ratio": memory_ratio,
                      "same_split": same}, indent=2))


if __name__ == "__main__":
    main()
