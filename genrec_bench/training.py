"""One training loop for every neural backend.

AdamW with linear warm-up and linear decay, early stopping on a validation score, atomic
checkpoints at a fixed step interval and on SIGINT/SIGTERM, exact resume (model, optimiser,
schedule, RNG state and position inside the epoch), DDP when launched under `torchrun`, and bf16
autocast on CUDA. Batch order is a pure function of (seed, epoch), so a resumed run replays the
same batches as an uninterrupted one.
"""

from __future__ import annotations

import copy
import math
import signal
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from genrec_bench.api import FitReport
from genrec_bench.config import TrainConfig
from genrec_bench.errors import GenrecError, Interrupted
from genrec_bench.progress import progress_bar
from genrec_bench.runtime import atomic_torch_save, is_main_process, rank_and_world, warn_oversubscribed

CHECKPOINT = "checkpoint.pt"


class Trainable(Protocol):
    """What the loop needs from a backend: a module, examples addressable by index, a loss."""

    module: nn.Module

    def num_examples(self) -> int: ...

    def batch(self, index: torch.Tensor, device: torch.device) -> Any: ...

    def loss(self, module: nn.Module, batch: Any) -> torch.Tensor: ...


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def lr_lambda(warmup: int, total: int, schedule: str = "linear") -> Callable[[int], float]:
    """The learning-rate multiplier at each step: linear warm-up, then `schedule`'s decay."""
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        if schedule == "cosine":
            return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
        return max(0.05, 1.0 - progress)
    return f


@contextmanager
def _stop_signals():
    """Turn SIGINT/SIGTERM into a flag the loop checks between steps (main thread only)."""
    flag = {"stop": False}

    def handler(signum, frame):  # noqa: ARG001
        flag["stop"] = True

    old = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, handler)
    except ValueError:  # not in the main thread: signals stay as they are
        pass
    try:
        yield flag
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def format_record(label: str, record: dict[str, float]) -> str:
    """One epoch's log line; counts stay integers (step 10280, not 1.028e+04), measurements 4 digits."""
    return f"{label}: " + ", ".join(f"{k} {v}" if isinstance(v, int) else f"{k} {v:.4g}" for k, v in record.items())


def check_derived_buffers(module: nn.Module, saved: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse a checkpoint whose saved buffers differ from the ones just rebuilt from the data.

    Persistent buffers (an item's semantic-ID tokens, its category path) are derived from the data,
    not trained. If a resume rebuilt them differently (another machine, library or cache), loading
    the checkpoint would pair its weights with another tokenisation: fail instead of mixing them.
    """
    for name, buf in module.named_buffers():
        old = saved.get(name)
        if old is not None and (old.shape != buf.shape or not torch.equal(old.to(buf.device), buf)):
            raise GenrecError(f"the checkpoint's {name} (shape {list(old.shape)}) differs from the one rebuilt "
                              f"from the data now (shape {list(buf.shape)}): the semantic IDs or category tree "
                              "came out differently on this resume; train this run afresh in a new directory",
                              path=path)


def train(
    trainable: Trainable,
    cfg: TrainConfig,
    device: torch.device,
    validate: Callable[[], float] | None,
    workdir: Path | None = None,
    label: str = "train",
) -> FitReport:
    """Train `trainable.module` in place; on return it holds the best validated weights (`keep = "best"`)
    or the last epoch's (`keep = "last"`)."""
    module = trainable.module.to(device)
    rank, world = rank_and_world()
    if device.type == "cpu" and is_main_process():
        warn_oversubscribed()
    model: nn.Module = module
    if world > 1:
        model = nn.parallel.DistributedDataParallel(module)
    n = trainable.num_examples()
    per_rank = math.ceil(n / world)
    steps_per_epoch = max(1, math.ceil(per_rank / cfg.batch_size))
    total = cfg.epochs * steps_per_epoch
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    optim = torch.optim.AdamW(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lr_lambda(cfg.warmup_steps, total, cfg.schedule))
    state: dict[str, Any] = {"epoch": 0, "batch": 0, "step": 0, "best": None, "best_state": None,
                             "bad": 0, "history": [], "elapsed": 0.0, "done": False}
    ckpt_path = workdir / CHECKPOINT if workdir else None
    if ckpt_path is not None and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        check_derived_buffers(module, ckpt["module"], ckpt_path)
        module.load_state_dict(ckpt["module"])
        optim.load_state_dict(ckpt["optim"])
        sched.load_state_dict(ckpt["sched"])
        torch.set_rng_state(ckpt["rng"])
        state = ckpt["state"]

    def save_checkpoint() -> None:
        if ckpt_path is None or not is_main_process():
            return
        atomic_torch_save({"module": module.state_dict(), "optim": optim.state_dict(),
                           "sched": sched.state_dict(), "rng": torch.get_rng_state(), "state": state}, ckpt_path)

    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext())
    start = time.perf_counter() - state["elapsed"]
    with _stop_signals() as stop, progress_bar(total, label, disable=not is_main_process()) as bar:
        bar.advance(state["step"])
        last_epoch = min(cfg.epochs, cfg.stop_after) if cfg.stop_after else cfg.epochs
        while not state["done"] and state["epoch"] < last_epoch:
            order = epoch_order(n, cfg.seed, state["epoch"])[rank::world]
            model.train()
            epoch_loss, epoch_batches = 0.0, 0
            for b in range(state["batch"], steps_per_epoch):
                index = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                if len(index) == 0:
                    break
                batch = trainable.batch(index, device)
                with autocast:
                    loss = trainable.loss(model, batch)
                optim.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(module.parameters(), 1.0)
                optim.step()
                sched.step()
                state["step"] += 1
                state["batch"] = b + 1
                epoch_loss += float(loss.detach())
                epoch_batches += 1
                bar.advance(1, f"epoch {state['epoch'] + 1} loss {epoch_loss / epoch_batches:.4f}")
                state["elapsed"] = time.perf_counter() - start
                if stop["stop"]:
                    save_checkpoint()
                    raise Interrupted(f"interrupted at step {state['step']}; checkpoint saved, continue with --resume",
                                      path=workdir)
                if cfg.checkpoint_every and state["step"] % cfg.checkpoint_every == 0:
                    save_checkpoint()
                if cfg.max_steps and state["step"] >= cfg.max_steps:
                    state["done"] = True
                    break
            state["epoch"] += 1
            state["batch"] = 0
            record: dict[str, float] = {"epoch": state["epoch"], "step": state["step"],
                                        "loss": epoch_loss / max(1, epoch_batches)}
            if validate is not None and (state["epoch"] % cfg.eval_every == 0 or state["done"]
                                         or state["epoch"] == last_epoch):
                model.eval()
                score = validate()
                record["valid_ndcg@10"] = score
                if state["best"] is None or score > state["best"]:
                    state["best"], state["bad"] = score, 0
                    state["best_state"] = copy.deepcopy(module.state_dict())
                else:
                    state["bad"] += 1
                    if cfg.patience and state["bad"] >= cfg.patience:
                        state["done"] = True
            record["seconds"] = time.perf_counter() - start
            state["history"].append(record)
            if is_main_process():
                print(format_record(label, record), file=sys.stderr, flush=True)
            state["elapsed"] = time.perf_counter() - start
            save_checkpoint()
    if state["best_state"] is not None and cfg.keep == "best":
        module.load_state_dict(state["best_state"])
    module.eval()
    return FitReport(seconds=state["elapsed"], steps=state["step"], epochs=state["epoch"],
                     best_valid=state["best"], history=state["history"])
