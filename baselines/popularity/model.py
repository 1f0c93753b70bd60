"""Most-popular baseline: every user gets the items ranked by training-interaction count.

The floor any learned model must clear; ties are broken by item index, like every ranking here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from genrec_bench.api import FitReport, Ranked
from genrec_bench.config import TrainConfig
from genrec_bench.data.split import SplitData
from genrec_bench.errors import GenrecError
from genrec_bench.ranking import topk_stable
from genrec_bench.saving import load_backend, save_backend


@dataclass(frozen=True)
class PopularityConfig:
    """No hyper-parameters: popularity is defined by the training split alone."""


class Popularity:
    name: ClassVar[str] = "popularity"
    decode_keys: ClassVar[tuple[str, ...]] = ()
    Config = PopularityConfig

    def __init__(self, cfg: PopularityConfig | None = None):
        self.cfg = cfg or PopularityConfig()
        self.counts_: torch.Tensor | None = None

    @classmethod
    def test_params(cls) -> dict[str, object]:
        """No keys: the conformance check runs the model as it is."""
        return {}

    def fit(self, data: SplitData, cfg: TrainConfig, workdir: Path | None = None) -> FitReport:
        start = time.perf_counter()
        self.counts_ = torch.from_numpy(data.train_counts()).float()
        return FitReport(seconds=time.perf_counter() - start)

    def recommend(self, histories: torch.Tensor, k: int) -> Ranked:
        if self.counts_ is None:
            raise GenrecError("popularity model is not fitted")
        top = topk_stable(self.counts_[None, :], k)
        return Ranked(items=top.items.expand(len(histories), -1), scores=top.scores.expand(len(histories), -1))

    def save(self, path: Path) -> None:
        save_backend(path, self.name, self.cfg, {"counts": self.counts_})

    @classmethod
    def load(cls, path: Path, device: torch.device | None = None) -> Popularity:
        model = cls()
        model.counts_ = load_backend(path)[1]["counts"]
        return model
