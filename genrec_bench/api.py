"""The contract every recommender honours, generative or classic: the types alone.

Everything in genrec-bench imports these and this module imports nothing of genrec-bench at run
time, so a lower layer (training, evaluation, ranking) never reaches up into a model to learn what
a ranked list is. The registry that finds backends by name is `genrec_bench.models.registry`, and
`genrec_bench.testing.check_backend` is the executable form of the rules below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import torch

if TYPE_CHECKING:  # annotations only: importing them at run time would tie the contract to the data layer
    from genrec_bench.config import TrainConfig
    from genrec_bench.data.split import SplitData

CONTRACT = "genrec_bench.api.Backend"


@dataclass
class Ranked:
    """Top-k lists of a batch of users: what every backend returns and every metric reads."""

    items: torch.Tensor  # [B, k] int64 item indices, -1 = no item (a miss)
    scores: torch.Tensor  # [B, k] float32, higher is better


@dataclass
class FitReport:
    """What training did, for the run record: wall time, steps and the validation curve."""

    seconds: float = 0.0
    steps: int = 0
    epochs: int = 0
    best_valid: float | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Config(Protocol):
    """A backend's `[model]` keys: a (frozen) dataclass whose fields are the keys with their defaults.

    genrec-bench builds it from the `[model]` table, rejecting unknown keys and wrong types, so
    value ranges are checked in `__post_init__` and raise `GenrecError`.
    """

    __dataclass_fields__: ClassVar[dict[str, Any]]


@runtime_checkable
class Backend(Protocol):
    """The contract a recommender honours to be trained, evaluated and ranked by genrec-bench.

    Implement a class with these members (`genrec_bench.testing.check_backend(YourClass)` checks
    every rule below on a tiny split, and `baselines/popularity/` is a complete 50-line example):

    - `name`: a short lower-case id, written into `backend.json` by `save`.
    - `Config`: a dataclass whose fields are the `[model]` keys with their defaults (see `Config`).
      A model without hyper-parameters has a dataclass without fields.
    - `__init__(self, cfg: Config)`: store `cfg` as `self.cfg`; build nothing that needs data yet.
    - `decode_keys`: the `Config` fields that change decoding only (beam width, ...); `eval
      --decode key=value` replaces them on a loaded model, so a decoder ablation reuses one
      checkpoint. `()` when the ranking is a single forward pass.
    - `fit(data, cfg, workdir)`: learn from `data.train_sequences()` (the part of each sequence
      before its validation and test targets) and return a `FitReport`. `cfg` holds the shared
      `[train]` knobs (epochs, lr, device, seed, ...); `genrec_bench.training` is the loop the
      neural built-ins share. The caller has seeded torch, numpy and `random` with `cfg.seed`,
      so the same seed must give the same model. `workdir` (or None) is where checkpoints go.
    - `recommend(histories, k)`: histories are `[B, L]` int64 item indices, left-padded with -1,
      most recent item last. Return `Ranked` with `items` `[B, k]` int64 and `scores` `[B, k]`:
      item indices in `[0, n_items)`, no item twice in a row, scores non-increasing along a row
      (ties: lower item index first, see `genrec_bench.ranking.topk_stable`). Where fewer than k
      items can be produced, pad the end with -1 (score -inf); never invent items.
    - `save(path)` writes the fitted state to the directory `path` (`genrec_bench.saving.save_backend`
      does it atomically), and the classmethod `load(path, device)` returns a backend whose
      `recommend` gives the same lists.
    - optionally `test_params()`, a classmethod returning the smallest `[model]` table that still
      exercises the whole model; the conformance check uses it (like sktime's `get_test_params`).

    Run it without forking genrec-bench: `--model package.module:Class` (module on PYTHONPATH),
    or an entry point `name = "package.module:Class"` in the group `genrec_bench.backends` of
    your package's pyproject.toml. `examples/plugin/` is a complete plugin package.
    """

    name: ClassVar[str]
    Config: ClassVar[type]  # a dataclass: its fields are the `[model]` keys
    decode_keys: ClassVar[tuple[str, ...]]  # `[model]` keys that only change decoding (`eval --decode`)
    cfg: Any  # the Config instance the backend was built from

    def __init__(self, cfg: Any) -> None: ...

    def fit(self, data: SplitData, cfg: TrainConfig, workdir: Path | None = None) -> FitReport: ...

    def recommend(self, histories: torch.Tensor, k: int) -> Ranked: ...

    def save(self, path: Path) -> None: ...

    @classmethod
    def load(cls, path: Path, device: torch.device | None = None) -> Backend: ...
