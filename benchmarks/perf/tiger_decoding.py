"""Our batched trie-constrained beam search vs `transformers` `generate` on the same TIGER model.

Both decoders get the same trained model and the same users. `generate` runs HF beam search with
a KV cache and `prefix_allowed_tokens_fn` (the usual TIGER implementation; the allowed-token lists
are precomputed per prefix so the callback is a dict lookup). Ours is `Tiger.recommend`. The
script checks that both return the same top-k item lists (up to score ties), and reports users per
second (wall clock, and per CPU-second, which is steadier on a shared machine) and the peak
resident-memory growth of each decoder (VmHWM over the RSS before decoding),
each decoder running alone in a fresh process.

The model is trained briefly (`--steps` AdamW steps) so its distributions are not uniform noise
and saved to `--model-dir` (a temp dir by default); an existing saved run there is reused.

    .venv/bin/python benchmarks/perf/tiger_decoding.py --users 200 --beam 20 --k 10 --steps 100 \
        --model-dir /tmp/tiger-decoding/model
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from genrec_bench.api import Ranked
from genrec_bench.config import DataConfig, TrainConfig
from genrec_bench.data.registry import load_dataset
from genrec_bench.data.split import make_split
from genrec_bench.models.tiger import Tiger, TigerConfig


def allowed_table(codes: torch.Tensor, offsets: torch.Tensor) -> dict[tuple[int, ...], list[int]]:
    """Decoder-prefix (global tokens after the start token) -> allowed next global tokens."""
    table: dict[tuple[int, ...], set[int]] = {}
    for row in (codes + offsets[None, :]).tolist():
        for t in range(len(row)):
            table.setdefault(tuple(row[:t]), set()).add(row[t])
    return {prefix: sorted(tokens) for prefix, tokens in table.items()}


def hf_generate(model: Tiger, hist: torch.Tensor, k: int, beam: int,
                table: dict[tuple[int, ...], list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k items [B, k] and sequence log-probabilities via `model.generate`."""
    net = model.module_
    depth = len(net.sizes)

    def allowed(batch_id: int, input_ids: torch.Tensor) -> list[int]:  # noqa: ARG001
        return table.get(tuple(input_ids[1:].tolist()), [])

    with torch.inference_mode():
        out = net.t5.generate(**net.encoder_inputs(hist), num_beams=beam, num_return_sequences=k,
                              max_new_tokens=depth, prefix_allowed_tokens_fn=allowed,
                              do_sample=False, length_penalty=0.0, early_stopping=True, use_cache=True,
                              return_dict_in_generate=True, output_scores=True)
    codes = out.sequences[:, 1 : depth + 1] - net.offsets[None, :]
    items = model.trie_.lookup(codes).view(len(hist), k)
    return items, out.sequences_scores.float().view(len(hist), k)


def peak_rss_reset() -> int:
    """Reset the process's peak RSS (Linux clear_refs) and return the current RSS in kB."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return _status_kb("VmRSS")


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def compare(ours: Ranked, theirs: Ranked, atol: float) -> dict[str, float]:
    """Users whose lists match exactly, mismatches explained by (near-)equal scores, and the rest."""
    same = tie = differ = 0
    worst = 0.0
    for a, sa, b, sb in zip(ours.items.tolist(), ours.scores.tolist(), theirs.items.tolist(),
                            theirs.scores.tolist(), strict=True):
        gap = max(abs(x - y) for x, y in zip(sa, sb, strict=True))
        if a == b:
            same += 1
            worst = max(worst, gap)
        elif gap <= atol:
            tie += 1  # same score sequence: the lists differ only in the order of tied items
        else:
            differ += 1
    return {"identical": same, "tied_order": tie, "different": differ, "max_score_diff_identical": worst}


def worker(args: argparse.Namespace) -> None:
    """Decode with one decoder in a fresh process, so its peak memory is its own."""
    data = make_split(load_dataset(args.dataset), DataConfig(), args.dataset)
    model = Tiger.load(args.model_dir)
    hist, _ = data.to_tensors("test", users=np.arange(args.users))
    if args.worker == "ours":
        def decode(h: torch.Tensor) -> Ranked:
            return model.recommend(h, args.k)
    else:
        table = allowed_table(model.codes_, model.module_.offsets)

        def decode(h: torch.Tensor) -> Ranked:
            return Ranked(*hf_generate(model, h, args.k, args.beam, table))
    decode(hist[:2])  # first-call costs (lazy init, allocator) are not decoding
    base = peak_rss_reset()
    start, cpu_start = time.perf_counter(), time.process_time()
    parts = [decode(h) for h in hist.split(args.batch)]
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    peak_mb = (_status_kb("VmHWM") - base) / 1024
    torch.save({"items": torch.cat([p.items for p in parts]), "scores": torch.cat([p.scores for p in parts]),
                "seconds": seconds, "cpu_seconds": cpu_seconds,
                "peak_mb": peak_mb}, args.out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--batch", type=int, default=50, help="users per decoding call")
    parser.add_argument("--beam", type=int, default=20)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--steps", type=int, default=100, help="brief training before decoding")
    parser.add_argument("--encoding", default="item_sum", choices=["item_sum", "item_sum_id", "tokens"])
    parser.add_argument("--preset", default="small", choices=["small", "paper"])
    parser.add_argument("--sid-features", default="attributes+collab")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="decode this saved tiger run; without it a model is trained and saved here")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--worker", choices=["ours", "hf"], default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.worker:
        worker(args)
        return
    model_dir = args.model_dir or Path(tempfile.mkdtemp(prefix="tiger-decoding-")) / "model"
    train_seconds = 0.0
    if not (model_dir / "state.pt").exists():
        data = make_split(load_dataset(args.dataset), DataConfig(), args.dataset)
        # No repeat offsets and the whole-vocabulary softmax: `generate` can apply neither, and both
        # decoders must search the same model.
        model = Tiger(TigerConfig(preset=args.preset, history_encoding=args.encoding,
                                  sid_features=args.sid_features, beam_width=args.beam, repeat_bias=False,
                                  constrained_softmax=False))
        report = model.fit(data, TrainConfig(epochs=1, max_steps=args.steps, batch_size=256, warmup_steps=10,
                                             valid_users=200, device="cpu"))
        train_seconds = report.seconds
        model.save(model_dir)
    results: dict[str, dict] = {}
    for name in ("ours", "hf"):
        out = model_dir.parent / f"decoded-{name}.pt"
        subprocess.run([sys.executable, __file__, "--worker", name, "--model-dir", str(model_dir), "--out", str(out),
                        "--dataset", args.dataset, "--users", str(args.users), "--batch", str(args.batch),
                        "--beam", str(args.beam), "--k", str(args.k), "--threads", str(args.threads)], check=True)
        results[name] = torch.load(out, weights_only=True)
    ours, hf = (Ranked(results[n]["items"], results[n]["scores"]) for n in ("ours", "hf"))
    meta = json.loads((model_dir / "backend.json").read_text())["config"]
    print(json.dumps({
        "dataset": args.dataset, "users": args.users, "batch": args.batch, "beam": args.beam, "k": args.k,
        "encoding": meta["history_encoding"], "preset": meta["preset"], "model_dir": str(model_dir),
        "train_steps": args.steps if train_seconds else "loaded", "train_seconds": round(train_seconds, 1),
        "threads": args.threads,
        "ours_users_per_s": round(args.users / results["ours"]["seconds"], 1),
        "hf_users_per_s": round(args.users / results["hf"]["seconds"], 1),
        "speedup": round(results["hf"]["seconds"] / results["ours"]["seconds"], 2),
        "ours_users_per_cpu_s": round(args.users / results["ours"]["cpu_seconds"], 1),
        "hf_users_per_cpu_s": round(args.users / results["hf"]["cpu_seconds"], 1),
        "speedup_cpu_time": round(results["hf"]["cpu_seconds"] / results["ours"]["cpu_seconds"], 2),
        "ours_peak_rss_growth_mb": round(results["ours"]["peak_mb"], 1),
        "hf_peak_rss_growth_mb": round(results["hf"]["peak_mb"], 1),
        "agreement": compare(ours, hf, atol=1e-3),
    }, indent=2))


if __name__ == "__main__":
    main()
