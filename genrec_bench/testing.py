"""`check_backend`: the Backend contract as an executable check, for built-ins and plugins alike.

Like scikit-learn's `check_estimator`, it trains the backend on a tiny generated split and tests
the rules every number in a leaderboard depends on; a backend that passes can be evaluated,
compared and reported next to the built-ins. Run it from your plugin's tests:

    from genrec_bench.testing import check_backend
    from my_package.model import MyBackend

    def test_my_backend_honours_the_contract():
        print(check_backend(MyBackend, hidden=16))   # [model] keys small enough for a fast test

A broken rule raises `ContractViolation` (an AssertionError, so test runners show it as a failure)
whose message starts with the rule's name.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import torch

from genrec_bench.api import CONTRACT, Backend, FitReport, Ranked
from genrec_bench.config import DataConfig, TrainConfig, from_dict
from genrec_bench.data.loaders import Interactions, ItemMeta
from genrec_bench.data.split import SplitData, make_split
from genrec_bench.errors import GenrecError
from genrec_bench.models.registry import backend_class, build_backend, contract_problem
from genrec_bench.runtime import seed_everything

UNKNOWN_KEY = "no_such_key_for_check_backend"
# Short and CPU-only, so a check costs seconds; `train=` overrides any of these keys.
CHECK_TRAIN = {"epochs": 2, "batch_size": 32, "warmup_steps": 0, "patience": 0, "valid_users": 0,
               "device": "cpu", "checkpoint_every": 0, "keep": "last"}


class ContractViolation(AssertionError):
    """A backend broke rule `rule` of the contract; the message says how, with the offending row."""

    def __init__(self, rule: str, backend: str, detail: str):
        self.rule = rule
        super().__init__(f"rule '{rule}' broken by {backend}: {detail}")


@dataclass(frozen=True)
class CheckReport:
    """What `check_backend` saw: how many users got lists shorter than k is reported, not failed,
    because a generative backend may honestly run out of valid items (it pads with -1)."""

    backend: str
    users: int
    items: int
    short_lists: dict[int, int] = field(default_factory=dict)  # k -> users whose list held < k items
    fit_seconds: float = 0.0

    def __str__(self) -> str:
        short = ", ".join(f"{n} at k={k}" for k, n in self.short_lists.items() if n) or "none"
        return (f"{self.backend} honours the Backend contract ({self.users} users x {self.items} items, "
                f"k = {', '.join(map(str, self.short_lists))}; short lists: {short})")


def tiny_split(n_users: int = 48, n_items: int = 24) -> SplitData:
    """A split where user u walks the catalogue from item u in steps of 1-3: learnable, histories of
    2 to 8 items (so left padding is exercised) and every item in use."""
    rows = []
    for u in range(n_users):
        step, length = 1 + u % 3, 4 + u % 7
        rows += [(f"u{u}", f"i{(u + j * step) % n_items}", float(j)) for j in range(length)]
    frame = pl.DataFrame(rows, schema={"user_id": pl.String, "item_id": pl.String, "timestamp": pl.Float64},
                         orient="row").with_row_index("row")
    inter = Interactions(frame=frame.select("user_id", "item_id", "timestamp", "row"), meta=ItemMeta(),
                         source=Path("check_backend"))
    return make_split(inter, DataConfig(kcore=0), "check_backend")


def check_backend(backend: type | str, /, *, train: dict[str, Any] | None = None, seed: int = 0,
                  **model_config: Any) -> CheckReport:
    """Train `backend` (a class, or a name as `--model` takes it) with `model_config` as its `[model]`
    table on `tiny_split()` and check every rule of the contract; raise `ContractViolation` on the
    first one broken. Without `model_config`, the backend's own `test_params()` (when it has one)
    gives the table. Rules: contract shape, unknown config key, fit report, shape, item range,
    no duplicates, sorted scores, save/load, same seed."""
    cls = backend_class(backend) if isinstance(backend, str) else backend
    label = f"{getattr(cls, '__module__', '?')}:{getattr(cls, '__qualname__', cls)}"
    if problem := contract_problem(cls):
        raise ContractViolation("contract shape", label, f"{problem} (see {CONTRACT})")
    if not model_config and callable(getattr(cls, "test_params", None)):
        model_config = dict(cls.test_params())
    _check_unknown_key(cls, model_config, label)
    train_cfg = from_dict(TrainConfig, CHECK_TRAIN | {"seed": seed} | (train or {}), "train", "check_backend")
    data = tiny_split()
    histories, _ = data.to_tensors("test")
    ks = (1, min(10, data.n_items), data.n_items)  # the last: k honoured up to the catalogue size
    with tempfile.TemporaryDirectory(prefix="check_backend-") as tmp:
        start = time.perf_counter()
        model = _fit(cls, model_config, data, train_cfg, Path(tmp) / "train-a", label)
        seconds = time.perf_counter() - start
        lists = {k: _recommend(model, histories, k, data.n_items, label) for k in ks}
        model.save(Path(tmp) / "saved")
        loaded = cls.load(Path(tmp) / "saved", torch.device("cpu"))
        for k in ks:
            _same(lists[k], _recommend(loaded, histories, k, data.n_items, label), "save/load", label,
                  f"k={k}: the loaded model ranks differently from the one that was saved")
        again = _fit(cls, model_config, data, train_cfg, Path(tmp) / "train-b", label)
        for k in ks:
            _same(lists[k], _recommend(again, histories, k, data.n_items, label), "same seed", label,
                  f"k={k}: two fits with seed {seed} give different lists (seed every generator from "
                  "torch/numpy/random, or thread cfg.seed explicitly)")
    short = {k: int(((lists[k] >= 0).sum(dim=1) < k).sum()) for k in ks}
    return CheckReport(getattr(cls, "name", label), data.n_users, data.n_items, short, seconds)


def _check_unknown_key(cls: type, model_config: dict[str, Any], label: str) -> None:
    """A misspelt `[model]` key must stop a run before training, naming the key."""
    try:
        build_backend(cls, model_config | {UNKNOWN_KEY: 1}, "check_backend")
    except GenrecError as exc:
        if UNKNOWN_KEY not in str(exc):
            raise ContractViolation("unknown config key", label, f"the GenrecError does not name the key: {exc}"
                                    ) from None
        return
    raise ContractViolation("unknown config key", label, f"[model] {UNKNOWN_KEY} = 1 was accepted; its Config "
                            "must be a dataclass without a catch-all field")


def _fit(cls: type, model_config: dict[str, Any], data: SplitData, cfg: TrainConfig, workdir: Path,
         label: str) -> Backend:
    seed_everything(cfg.seed)  # as `genrec-bench train` does before every fit
    model = build_backend(cls, model_config, "check_backend")
    report = model.fit(data, cfg, workdir)
    if not isinstance(report, FitReport):
        raise ContractViolation("fit report", label, f"fit returned {type(report).__name__}, not a FitReport")
    return model


def _recommend(model: Backend, histories: torch.Tensor, k: int, n_items: int, label: str) -> torch.Tensor:
    """The model's [B, k] items after the shape, range, duplicate and order rules are checked."""
    with torch.inference_mode():
        ranked = model.recommend(histories, k)
    if not isinstance(ranked, Ranked):
        raise ContractViolation("shape", label, f"recommend returned {type(ranked).__name__}, not a Ranked")
    items, scores = ranked.items.cpu(), ranked.scores.cpu()
    want = (len(histories), k)
    if tuple(items.shape) != want or tuple(scores.shape) != want:
        raise ContractViolation("shape", label, f"k={k}: items {tuple(items.shape)} and scores "
                                f"{tuple(scores.shape)}, expected {want} each (pad with -1 where fewer exist)")
    if items.dtype != torch.int64 or not scores.dtype.is_floating_point:
        raise ContractViolation("shape", label, f"items must be int64 and scores floating point, got "
                                f"{items.dtype} and {scores.dtype}")
    bad = (items < -1) | (items >= n_items)
    if bad.any():
        row = int(bad.any(dim=1).nonzero()[0])
        raise ContractViolation("item range", label, f"k={k}, row {row}: {items[row].tolist()} holds an index "
                                f"outside [0, {n_items}) that is not the padding -1")
    real = items >= 0
    sorted_items = torch.sort(torch.where(real, items, -1 - torch.arange(k)), dim=1).values
    repeats = sorted_items[:, 1:] == sorted_items[:, :-1]
    if repeats.any():
        row = int(repeats.any(dim=1).nonzero()[0])
        raise ContractViolation("no duplicates", label, f"k={k}, row {row}: {items[row].tolist()} holds an item "
                                "twice")
    both = real[:, 1:] & real[:, :-1]
    rising = both & ~(scores[:, :-1] >= scores[:, 1:])  # NaN compares false, so it counts as unsorted
    if rising.any():
        row = int(rising.any(dim=1).nonzero()[0])
        raise ContractViolation("sorted scores", label, f"k={k}, row {row}: scores {scores[row].tolist()} are not "
                                "in descending order")
    return items


def _same(expected: torch.Tensor, got: torch.Tensor, rule: str, label: str, detail: str) -> None:
    if not torch.equal(expected, got):
        row = int((expected != got).any(dim=1).nonzero()[0])
        raise ContractViolation(rule, label, f"{detail}; row {row}: {expected[row].tolist()} then "
                                f"{got[row].tolist()}")
