"""Compare a run's CUDA and CPU evaluations and report training and decoding speed.

Used by `benchmarks/gpu/smoke.sh`; kept apart from it so the comparison is testable without a GPU.
Each RUN argument is a run directory made by `genrec-bench train` holding two `genrec-bench eval
--json` outputs written next to `run.json`: `eval-cuda.json` and `eval-cpu.json`.

Why an absolute tolerance (default 0.01) on Hit@10 and NDCG@10: a CUDA run trains and decodes
under bf16 autocast (8-bit mantissa, about 0.4% relative error on each logit) while the CPU
evaluation runs in fp32, so two beam candidates whose log-probabilities are within a few
hundredths can swap places. Each such swap moves one user's target across the top-10 boundary
or by a rank or two, i.e. changes Hit@10 by 1/users and NDCG@10 by less. On the smoke's 2,000
users, 0.01 allows 20 users' top-10 membership to change; a broken CUDA path (wrong masks, a
decoder that returns garbage) moves every hit, and the tiny models score Hit@10 of a few
hundredths on those users, so it lands well outside the tolerance. A comparison in which both
devices score zero proves nothing and fails too: train longer (GPU_SMOKE_EPOCHS).

    python benchmarks/gpu/compare_devices.py runs/gpu-smoke/tiger runs/gpu-smoke/mindrec
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_TOLERANCE = 0.01
GATED_METRICS = ("hit@10", "ndcg@10")


@dataclass(frozen=True)
class DeviceComparison:
    """One model's CUDA-vs-CPU verdict, with the speeds the smoke reports."""

    model: str
    users: int
    metrics: dict[str, dict[str, float]]  # metric -> {"cuda", "cpu", "diff"} (diff = cuda - cpu)
    tolerance: float
    train_samples_per_s: float
    train_device: str
    users_per_s: dict[str, float]  # device -> decoding users/s
    users_hit_changed: int | None = None  # users whose Hit@10 differs between devices (None: no per-user ranks)
    users_rank_changed: int | None = None  # users whose target rank differs at all
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def train_throughput(run_info: dict[str, Any]) -> tuple[int, float]:
    """Training samples seen and samples/s of a finished run, from its `run.json`.

    The loop walks `train_examples` per epoch in batches of `batch_size` (the last one short), so the
    count is exact; the seconds include the per-epoch validation, so the rate is a slight underestimate.
    """
    fit = run_info.get("fit") or {}
    steps, seconds = int(fit.get("steps", 0)), float(fit.get("seconds", 0.0))
    batch = int(run_info["config"]["train"]["batch_size"])
    examples = int((fit.get("extra") or {}).get("train_examples", 0))
    if examples > 0:
        per_epoch = -(-examples // batch)
        epochs, rest = divmod(steps, per_epoch)
        samples = epochs * examples + min(rest * batch, examples)
    else:
        samples = steps * batch
    return samples, samples / seconds if seconds > 0 else 0.0


def _hits(ranks: list[int], k: int) -> list[bool]:
    return [0 < r <= k for r in ranks]


def compare_evals(cuda: dict[str, Any], cpu: dict[str, Any], tolerance: float = DEFAULT_TOLERANCE,
                  metrics: tuple[str, ...] = GATED_METRICS, cuda_record: dict[str, Any] | None = None,
                  cpu_record: dict[str, Any] | None = None) -> tuple[dict[str, dict[str, float]], list[str],
                                                                    int | None, int | None]:
    """Metric table, problems, and per-user changes of two `eval --json` outputs of one checkpoint.

    The full run records (`users`, `ranks`), when given, add how many users' Hit@10 and rank moved,
    and prove both evaluations ranked the same users in the same order.
    """
    problems: list[str] = []
    for key in ("run_id", "split", "fingerprint"):
        if cuda.get(key) != cpu.get(key):
            problems.append(f"{key} differs: cuda {cuda.get(key)!r}, cpu {cpu.get(key)!r}")
    table: dict[str, dict[str, float]] = {}
    for name in metrics:
        if name not in cuda.get("metrics", {}) or name not in cpu.get("metrics", {}):
            problems.append(f"{name} missing from an evaluation (evaluate with --k 10)")
            continue
        a, b = float(cuda["metrics"][name]), float(cpu["metrics"][name])
        table[name] = {"cuda": a, "cpu": b, "diff": a - b}
        if abs(a - b) > tolerance:
            problems.append(f"{name}: cuda {a:.4f} vs cpu {b:.4f}, |diff| {abs(a - b):.4f} > tolerance {tolerance}")
    hit = metrics[0] if metrics else "hit@10"
    if hit in table and table[hit]["cuda"] == 0.0 and table[hit]["cpu"] == 0.0:
        problems.append(f"{hit} is 0 on both devices: the comparison proves nothing; train longer")
    hit_changed = rank_changed = None
    if cuda_record is not None and cpu_record is not None:
        if cuda_record.get("users") != cpu_record.get("users"):
            problems.append("the two evaluations ranked different users")
        else:
            k = int(hit.split("@")[1]) if "@" in hit else 10
            ra, rb = cuda_record["ranks"], cpu_record["ranks"]
            hit_changed = sum(x != y for x, y in zip(_hits(ra, k), _hits(rb, k), strict=True))
            rank_changed = sum(x != y for x, y in zip(ra, rb, strict=True))
    return table, problems, hit_changed, rank_changed


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SystemExit(f"{path}: not found (did `genrec-bench eval --json` run?)") from None
    except json.JSONDecodeError as exc:
        raise SystemExit(f"{path}: not JSON ({exc})") from None


def compare_run(run: Path, tolerance: float = DEFAULT_TOLERANCE) -> DeviceComparison:
    """Read `run`'s run.json and its two evaluations and compare them."""
    info = _read_json(run / "run.json")
    cuda, cpu = _read_json(run / "eval-cuda.json"), _read_json(run / "eval-cpu.json")
    records = []
    for ev in (cuda, cpu):
        path = Path(ev.get("record", ""))
        records.append(_read_json(path) if ev.get("record") and path.is_file() else None)
    table, problems, hit_changed, rank_changed = compare_evals(cuda, cpu, tolerance, cuda_record=records[0],
                                                               cpu_record=records[1])
    if cuda.get("run_id") != info.get("run_id"):
        problems.append(f"eval-cuda.json is of run {cuda.get('run_id')!r}, not {info.get('run_id')!r}")
    users = len(records[1]["users"]) if records[1] is not None else 0
    _, rate = train_throughput(info)
    train_device = str((info.get("env") or {}).get("device", "?"))
    return DeviceComparison(
        model=str(info.get("model", run.name)), users=users, metrics=table, tolerance=tolerance,
        train_samples_per_s=rate, train_device=train_device,
        users_per_s={"cuda": float(cuda.get("users_per_second", 0.0)), "cpu": float(cpu.get("users_per_second", 0.0))},
        users_hit_changed=hit_changed, users_rank_changed=rank_changed, problems=problems,
    )


def _pair(r: DeviceComparison, name: str) -> str:
    m = r.metrics.get(name)
    return f"{m['cuda']:.4f}/{m['cpu']:.4f}" if m else "-"


def format_report(results: list[DeviceComparison]) -> str:
    """A plain-text table: one row per model, then each failure on its own line."""
    head = (f"{'model':<9} {'train samples/s':>15} {'decode users/s cuda':>19} {'cpu':>7} "
            f"{'hit@10 cuda/cpu':>15} {'ndcg@10 cuda/cpu':>16} {'hit changed':>11}  verdict")
    lines = [head, "-" * len(head)]
    for r in results:
        changed = "-" if r.users_hit_changed is None else f"{r.users_hit_changed}/{r.users}"
        lines.append(f"{r.model:<9} {r.train_samples_per_s:>15.0f} {r.users_per_s['cuda']:>19.1f} "
                     f"{r.users_per_s['cpu']:>7.1f} {_pair(r, 'hit@10'):>15} {_pair(r, 'ndcg@10'):>16} {changed:>11}  "
                     f"{'ok' if r.ok else 'FAIL'}")
    tol = results[0].tolerance if results else DEFAULT_TOLERANCE
    devices = sorted({r.train_device for r in results})
    autocast = " with bf16 autocast" if any(d.startswith("cuda") for d in devices) else ""
    lines.append(f"(trained on {', '.join(devices)}{autocast}; train samples/s includes one validation; "
                 f"gate: |cuda - cpu| <= {tol} on {' and '.join(GATED_METRICS)})")
    for r in results:
        lines.extend(f"FAIL {r.model}: {p}" for p in r.problems)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories holding eval-cuda.json and eval-cpu.json")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help=f"absolute tolerance on {' and '.join(GATED_METRICS)} (default {DEFAULT_TOLERANCE})")
    parser.add_argument("--json-out", type=Path, help="also write the comparison as JSON here")
    args = parser.parse_args(argv)
    results = [compare_run(run, args.tolerance) for run in args.runs]
    print(format_report(results))
    if args.json_out:
        args.json_out.write_text(json.dumps([asdict(r) | {"ok": r.ok} for r in results], indent=2) + "\n")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
