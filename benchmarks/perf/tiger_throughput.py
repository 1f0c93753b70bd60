"""TIGER training throughput (samples/s) per history encoding and model preset on a real split.

Times `--steps` AdamW steps (batch `--batch`, after `--warmup` untimed steps) on the real training
prefixes, exactly the batches and loss `Tiger.fit` uses, so the numbers size a full run:
epoch time = training prefixes / samples per second.

    .venv/bin/python benchmarks/perf/tiger_throughput.py --steps 30 --encodings item_sum tokens \
        --presets small paper
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from genrec_bench.config import DataConfig
from genrec_bench.data.registry import load_dataset
from genrec_bench.data.split import make_split
from genrec_bench.items.semantic_ids import build_semantic_ids
from genrec_bench.models.tiger import TigerConfig
from genrec_bench.nn.seq2seq import Seq2SeqNet, TrainingPrefixes


def measure(cfg: TigerConfig, prefixes_of, ids, steps: int, warmup: int, batch: int) -> dict[str, float]:
    torch.manual_seed(0)
    net = Seq2SeqNet(cfg, ids.codes, ids.sizes).train()
    prefixes = prefixes_of(net)
    optim = torch.optim.AdamW(net.parameters(), lr=1e-3)
    order = torch.randperm(prefixes.num_examples())
    cpu = torch.device("cpu")
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        hist, target = prefixes.batch(order[step * batch : (step + 1) * batch], cpu)
        loss = net(hist, target)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optim.step()
    seconds = time.perf_counter() - start
    return {"seconds_per_step": round(seconds / steps, 3), "samples_per_s": round(steps * batch / seconds, 1),
            "epoch_minutes": round(prefixes.num_examples() / (steps * batch / seconds) / 60, 1),
            "parameters": sum(p.numel() for p in net.parameters()), "train_prefixes": prefixes.num_examples(),
            "final_loss": round(float(loss.detach()), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--encodings", nargs="+", default=["item_sum", "tokens"])
    parser.add_argument("--presets", nargs="+", default=["small", "paper"])
    parser.add_argument("--sid-features", default="attributes+collab")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = make_split(load_dataset(args.dataset), DataConfig(), args.dataset)
    ids = build_semantic_ids(data, TigerConfig(sid_features=args.sid_features).tokenizer())
    results = []
    for preset in args.presets:
        for encoding in args.encodings:
            cfg = TigerConfig(preset=preset, history_encoding=encoding, sid_features=args.sid_features)
            row = measure(cfg, lambda net: TrainingPrefixes(net, data, data.config.max_history), ids,
                          args.steps, args.warmup, args.batch)
            results.append({"preset": preset, "encoding": encoding, "batch": args.batch,
                            "threads": torch.get_num_threads(), **row})
            print(json.dumps(results[-1]), flush=True)


if __name__ == "__main__":
    main()
