"""MindRec's approximate decoding switches as a speed/quality frontier (run by hand).

Evaluates one trained MindRec run on its test users under each `--switch` (comma-separated
`key=value` decode keys; the first, usually empty, is the reference every other is paired with),
with the evaluation protocol of `genrec-bench eval`, and a trained TIGER run of the same split as
the speed yardstick. Prints, per switch: test users per CPU-second of the whole evaluation pass,
NDCG@10, its paired difference from the reference (bootstrap 95% CI, paired t-test p), lists
shorter than 10, and MindRec's CPU time over TIGER's. `--figure` writes NDCG@10 against users per
CPU-second as an SVG, with TIGER's speed and half of it as vertical lines; `--json` writes the rows.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/perf/mindrec_frontier.py --mindrec runs/mr-small \\
        --tiger runs/tg-small --switch "" --switch tokens_per_step=2 --switch category_beam=3 \\
        --figure docs/figures/mindrec-frontier-beauty.svg
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch
from mindrec_decoding import open_pair  # the sibling script: run from benchmarks/perf or as a path

from genrec_bench.api import Backend
from genrec_bench.data.split import SplitData
from genrec_bench.decode_options import apply_decoding, parse_decode
from genrec_bench.evaluate import eval_users, rank_lists
from genrec_bench.metrics import paired_compare, per_user
from genrec_bench.report.charts import ID_SALT, Series, chart_figure

K = 10


def evaluate(backend: Backend, data: SplitData, users: np.ndarray) -> tuple[np.ndarray, int, float]:
    """(per-user NDCG@10, lists shorter than 10, CPU seconds) of one test pass."""
    cpu = time.process_time()
    _, ranks, lengths = rank_lists(backend, data, "test", K, users=users, show_progress=False)
    cpu = time.process_time() - cpu
    return per_user(ranks, (K,))[f"ndcg@{K}"], int((lengths < K).sum()), cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mindrec", type=Path, required=True, help="a trained mindrec run directory")
    parser.add_argument("--tiger", type=Path, required=True, help="a trained tiger run of the same split")
    parser.add_argument("--switch", action="append", default=[], help="decode keys, e.g. 'tokens_per_step=2'")
    parser.add_argument("--users", type=int, default=0, help="first N test users (0 = all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--figure", type=Path, help="write the frontier as an SVG here")
    parser.add_argument("--json", type=Path, help="write the rows as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    switches = args.switch or [""]

    mindrec, tiger, data = open_pair(args.mindrec, args.tiger)
    users = eval_users(data, args.users)
    base = mindrec.cfg  # frozen: each switch starts from the trained run's decoding
    t_ndcg, _, t_cpu = evaluate(tiger, data, users)
    print(f"{len(users)} test users of {data.name}, {args.threads} thread(s); TIGER {len(users) / t_cpu:.1f} "
          f"users/CPU-s, NDCG@10 {t_ndcg.mean():.4f}", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    reference = None
    print("| decoding | users / CPU-s | x TIGER CPU | NDCG@10 | diff vs first (95% CI) | p | short lists |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for text in switches:
        keys = parse_decode([t for t in text.split(",") if t])
        mindrec.cfg = base
        apply_decoding(mindrec, keys)
        ndcg, short, cpu = evaluate(mindrec, data, users)
        reference = ndcg if reference is None else reference
        cmp = paired_compare(ndcg, reference, f"ndcg@{K}")
        row = {"decoding": text or "defaults", "users_per_cpu_s": len(users) / cpu, "x_tiger": cpu / t_cpu,
               "ndcg@10": float(ndcg.mean()), "diff": cmp.diff, "ci": [cmp.ci_low, cmp.ci_high],
               "p": cmp.p_value, "short_lists": short}
        rows.append(row)
        print(f"| {row['decoding']} | {row['users_per_cpu_s']:.1f} | {row['x_tiger']:.2f}x | {row['ndcg@10']:.4f} | "
              f"{cmp.diff:+.4f} ({cmp.ci_low:+.4f}, {cmp.ci_high:+.4f}) | {cmp.p_value:.3g} | {short} |", flush=True)
    tiger_row = {"decoding": "tiger", "users_per_cpu_s": len(users) / t_cpu, "ndcg@10": float(t_ndcg.mean())}
    if args.json:
        args.json.write_text(json.dumps({"dataset": data.name, "users": len(users), "threads": args.threads,
                                         "rows": rows, "tiger": tiger_row}, indent=1) + "\n")
    if args.figure:
        series = [Series(r["decoding"], [r["users_per_cpu_s"]], [r["ndcg@10"]]) for r in rows]
        fig = chart_figure(series, title=f"MindRec decoding switches on {data.name} ({len(users)} test users)",
                           xlabel="test users per CPU-second (1 thread); grey: TIGER, dashed: half TIGER",
                           ylabel="NDCG@10", lines=False, log_x=True)
        speed = tiger_row["users_per_cpu_s"]
        fig.axes[0].axvline(speed, color="#7f7f7f")
        fig.axes[0].axvline(speed / 2, color="#7f7f7f", linestyle="--")
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        with matplotlib.rc_context({"svg.hashsalt": ID_SALT, "svg.fonttype": "none"}):
            fig.savefig(args.figure, format="svg", metadata={"Date": None})


if __name__ == "__main__":
    main()
