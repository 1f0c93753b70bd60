"""Our batched trie-constrained beam search vs `transformers` `generate` on the same TIGER model.

Both decoders get the same trained model and the same users. `generate` runs HF beam search with
a KV cache and `prefix_allowed_tokens_fn` (the usual TIGER implementation; the allowed-token lists
are precomputed per prefix so the callback is a dict lookup). Ours is `Tiger.recommend`. The
script checks that both return the same top-k item lists (up to score ties), and reports users per
second and the peak resident-memory growth of each decoder (VmHWM, reset before each run).

The model is trained briefly (`--steps` AdamW steps) so its distributions are not uniform noise,
or loaded from a saved run directory with `--model-dir`.

    .venv/bin/python benchmarks/perf/tiger_decoding.py --users 200 --beam 20 --k 10 --steps 100
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from genrec_bench.backends.tiger import Tiger, TigerConfig
from genrec_bench.config import DataConfig, TrainConfig
from genrec_bench.data.registry import load_dataset
from genrec_bench.data.split import make_split
from genrec_bench.decoding.trie import PrefixTrie


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
    net = model.net_
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


def timed(fn, batches: list[torch.Tensor]) -> tuple[list, float, float]:
    base = peak_rss_reset()
    start = time.perf_counter()
    outs = [fn(h) for h in batches]
    seconds = time.perf_counter() - start
    return outs, seconds, (_status_kb("VmHWM") - base) / 1024


def compare(ours: list, theirs: list, atol: float) -> dict[str, float]:
    """Users whose lists match exactly, mismatches explained by (near-)equal scores, and the rest."""
    same = tie = differ = 0
    worst = 0.0
    for (oi, os_), (ti, ts) in zip(ours, theirs, strict=True):
        for a, sa, b, sb in zip(oi.tolist(), os_.tolist(), ti.tolist(), ts.tolist(), strict=True):
            gap = max(abs(x - y) for x, y in zip(sa, sb, strict=True))
            if a == b:
                same += 1
                worst = max(worst, gap)
            elif gap <= atol:
                tie += 1  # same score sequence: the lists differ only in the order of tied items
            else:
                differ += 1
    return {"identical": same, "tied_order": tie, "different": differ, "max_score_diff_identical": worst}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--batch", type=int, default=50, help="users per decoding call")
    parser.add_argument("--beam", type=int, default=20)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--steps", type=int, default=100, help="brief training before decoding")
    parser.add_argument("--encoding", default="item_sum", choices=["item_sum", "tokens"])
    parser.add_argument("--preset", default="small", choices=["small", "paper"])
    parser.add_argument("--sid-features", default="attributes+collab")
    parser.add_argument("--model-dir", type=Path, default=None, help="decode a saved tiger run instead")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    data = make_split(load_dataset(args.dataset), DataConfig(), args.dataset)
    if args.model_dir is not None:
        model = Tiger.load(args.model_dir)
        train_seconds = 0.0
    else:
        model = Tiger(TigerConfig(preset=args.preset, history_encoding=args.encoding,
                                  sid_features=args.sid_features, beam_width=args.beam))
        report = model.fit(data, TrainConfig(epochs=1, max_steps=args.steps, batch_size=256, warmup_steps=10,
                                             valid_users=200, device="cpu"))
        train_seconds = report.seconds
    trie: PrefixTrie = model.trie_
    hist, _ = data.to_tensors("test", users=torch.arange(args.users).numpy())
    batches = list(hist.split(args.batch))
    table = allowed_table(model.codes_, model.net_.offsets)

    def ours_fn(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r = model.recommend(h, args.k)
        return r.items, r.scores

    ours_fn(batches[0][:2])  # warm-up both paths once so neither pays first-call costs
    hf_generate(model, batches[0][:2], args.k, args.beam, table)
    ours, t_ours, mem_ours = timed(ours_fn, batches)
    theirs, t_hf, mem_hf = timed(lambda h: hf_generate(model, h, args.k, args.beam, table), batches)
    agreement = compare(ours, theirs, atol=1e-3)
    result = {
        "dataset": args.dataset, "users": args.users, "batch": args.batch, "beam": args.beam, "k": args.k,
        "encoding": model.cfg.history_encoding, "preset": model.cfg.preset, "train_steps": args.steps,
        "train_seconds": round(train_seconds, 1), "threads": torch.get_num_threads(),
        "trie_nodes": trie.num_nodes, "sid_sizes": list(trie.sizes),
        "ours_users_per_s": round(args.users / t_ours, 1), "hf_users_per_s": round(args.users / t_hf, 1),
        "speedup": round(t_hf / t_ours, 2),
        "ours_peak_rss_growth_mb": round(mem_ours, 1), "hf_peak_rss_growth_mb": round(mem_hf, 1),
        "agreement": agreement,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
