"""`NeuralBackend`: the plumbing every neural backend shares, so a model keeps only its architecture,
loss and decoding.

It owns the device, inference mode with bf16 autocast on CUDA, history trimming, the not-fitted
check, training through the one shared loop with validation NDCG, and save/load: `state()` is what
a model saves, `restore()` rebuilds it, and `legacy_config` gives saved configs the values of keys
added after they were written (the values those runs were trained with).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from genrec_bench.api import FitReport
from genrec_bench.config import TrainConfig
from genrec_bench.data.split import SplitData
from genrec_bench.errors import GenrecError
from genrec_bench.evaluate import validation_ndcg
from genrec_bench.runtime import resolve_device
from genrec_bench.saving import load_backend, save_backend, stored_config
from genrec_bench.training import Trainable, train


class NeuralBackend:
    """Base of the built-in neural backends: subclasses set `name`, `Config`, `decode_keys` and
    implement `fit`, `recommend`, `state` and `restore`."""

    name: ClassVar[str]
    Config: ClassVar[type]
    decode_keys: ClassVar[tuple[str, ...]] = ()
    # Values of `[model]` keys that configs saved before the key existed were trained with.
    legacy_config: ClassVar[dict[str, Any]] = {}

    def __init__(self, cfg: Any = None):
        self.cfg = cfg if cfg is not None else self.Config()
        self.module_: nn.Module | None = None
        self.device_ = torch.device("cpu")

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        """The smallest `[model]` table that still runs the whole model (the conformance check's)."""
        return {}

    def fitted(self) -> nn.Module:
        """The trained network; a clear error before `fit` or `load`."""
        if self.module_ is None:
            raise GenrecError(f"{self.name} model is not fitted; call fit() or load() first")
        return self.module_

    def use_device(self, device: str) -> torch.device:
        """Resolve `[train].device` (auto = CUDA when present) and remember it for decoding."""
        self.device_ = resolve_device(device)
        return self.device_

    def history(self, histories: torch.Tensor, max_history: int) -> torch.Tensor:
        """The last `max_history` columns of left-padded histories [B, L], on the model's device."""
        return histories[:, -max_history:].to(self.device_)

    @contextmanager
    def inference(self) -> Iterator[nn.Module]:
        """The network in eval mode under `torch.inference_mode` (bf16 autocast on CUDA); its
        training flag is restored afterwards, so validation inside `fit` leaves training as it was."""
        module = self.fitted()
        was_training = module.training
        module.eval()
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if self.device_.type == "cuda"
                    else nullcontext())
        try:
            with torch.inference_mode(), autocast:
                yield module
        finally:
            module.train(was_training)

    def train_module(self, examples: Trainable, data: SplitData, cfg: TrainConfig,
                     workdir: Path | None) -> FitReport:
        """The shared training loop over `examples`, selected on validation NDCG@10 of this backend."""
        return train(examples, cfg, self.device_, lambda: validation_ndcg(self, data, cfg), workdir, label=self.name)

    def state(self) -> dict[str, Any]:
        """The tensors and sizes `restore` needs (written to `state.pt`)."""
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        """Facts about the fitted model kept in `backend.json` beside the config."""
        return {}

    def restore(self, state: dict[str, Any], info: dict[str, Any]) -> None:
        """Rebuild `module_` (on `device_`) from `state()` and load its weights."""
        raise NotImplementedError

    def save(self, path: Path) -> None:
        self.fitted()
        save_backend(path, self.name, self.cfg, self.state(), self.info())

    @classmethod
    def load(cls, path: Path, device: torch.device | None = None) -> Any:
        meta, state = load_backend(path)
        model = cls(stored_config(cls.Config, meta["config"], cls.legacy_config))
        model.device_ = device or torch.device("cpu")
        model.restore(state, meta.get("info", {}))
        model.fitted().to(model.device_).eval()
        return model
