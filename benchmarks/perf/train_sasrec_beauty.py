"""Train SASRec on the full Amazon Beauty split and measure it on the whole test split.

The reference measurement for the SASRec baseline (targets from the literature: Hit@10 >= 0.0859,
NDCG@10 >= 0.0503). Training checkpoints into `--workdir`; rerunning the same command resumes
from there. Prints the configuration, the validation curve and the test metrics as JSON.

    .venv/bin/python benchmarks/perf/train_sasrec_beauty.py --workdir /tmp/sasrec-beauty \
        --out /work/notes/sasrec-beauty-model
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

import genrec_bench.evaluate as evaluate
from genrec_bench.baselines.sasrec import SASRec, SASRecConfig
from genrec_bench.config import DataConfig, EvalConfig, TrainConfig
from genrec_bench.data.registry import load_dataset
from genrec_bench.data.split import make_split
from genrec_bench.evaluate import rank_targets
from genrec_bench.metrics import summarise
from genrec_bench.runtime import atomic_write_json, seed_everything


def log_validation(start: float) -> None:
    """`training.train` reports its curve only on return; print each validation as it happens."""
    inner = evaluate.validation_ndcg
    calls = 0

    def logged(*args, **kwargs) -> float:
        nonlocal calls
        calls += 1
        score = inner(*args, **kwargs)
        print(json.dumps({"validation": calls, "valid_ndcg@10": score,
                          "wall_seconds": round(time.perf_counter() - start, 1)}), flush=True)
        return score

    evaluate.validation_ndcg = logged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True, help="checkpoints (resume from here)")
    parser.add_argument("--out", type=Path, default=None, help="save the trained model into this directory")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--patience", type=int, default=5, help="evaluations without improvement")
    parser.add_argument("--eval-every", type=int, default=2)
    parser.add_argument("--valid-users", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=1)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--max-len", type=int, default=0, help="0 = data.max_history (20)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-test", action="store_true", help="probe mode: train and validate only")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    data = make_split(load_dataset("beauty"), DataConfig(), "beauty")
    model_cfg = SASRecConfig(hidden=args.hidden, layers=args.layers, heads=args.heads, dropout=args.dropout,
                             max_history=args.max_len)
    train_cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                            weight_decay=args.weight_decay, patience=args.patience, eval_every=args.eval_every,
                            valid_users=args.valid_users, seed=args.seed, device="cpu", num_threads=args.threads)
    print(json.dumps({"split": data.summary(), "model": asdict(model_cfg), "train": asdict(train_cfg)}), flush=True)

    args.workdir.mkdir(parents=True, exist_ok=True)
    model = SASRec(model_cfg)
    log_validation(time.perf_counter())
    report = model.fit(data, train_cfg, workdir=args.workdir)
    for record in report.history:
        print(json.dumps(record), flush=True)
    print(json.dumps({"fit_seconds": report.seconds, "epochs": report.epochs, "steps": report.steps,
                      "best_valid_ndcg@10": report.best_valid, **report.extra}), flush=True)
    if args.out is not None:
        model.save(args.out)
    if args.skip_test:
        return

    start = time.perf_counter()
    ks = EvalConfig().ks
    _, ranks = rank_targets(model, data, "test", max(ks), show_progress=False)
    metrics = summarise(ranks, ks)
    result = {"dataset": "beauty", "fingerprint": data.fingerprint, "test_users": len(ranks),
              "metrics": metrics, "eval_seconds": time.perf_counter() - start, "fit_seconds": report.seconds,
              "model": asdict(model_cfg), "train": asdict(train_cfg), "fit": {
                  "epochs": report.epochs, "steps": report.steps, "best_valid_ndcg@10": report.best_valid,
                  "history": report.history, **report.extra}}
    print(json.dumps({"test": metrics, "eval_seconds": result["eval_seconds"]}), flush=True)
    atomic_write_json(args.workdir / "result.json", result)
    if args.out is not None:
        atomic_write_json(args.out / "result.json", result)


if __name__ == "__main__":
    main()
