"""BERT4Rec (Sun et al., 2019): a bidirectional Transformer over the item sequence, trained with
the cloze objective: the classic masked counterpart of MindRec, one item per token.

Training: windows of `max_len` consecutive items; each real item is replaced by [MASK] with
probability `mask_prob` (at least one per window: the last item when the draw masks none) and
the model predicts it with a full softmax over the catalogue (the paper's output layer, shared
with the item embedding). Inference appends [MASK] to the last `max_len - 1` history items and
ranks the catalogue at that position. Masks are drawn from a generator seeded by the training
seed and the step, so a resumed run draws the same masks.

Shares SASRec's sequence model (pre-LN layers, positions counted from the right, repeat offset
on items already in the input) with the attention made bidirectional over real items.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from genrec_bench.backends.base import FitReport
from genrec_bench.baselines.sasrec import SASRec, SASRecConfig, SASRecModule, _Windows
from genrec_bench.config import TrainConfig, _check
from genrec_bench.data.split import SplitData


@dataclass(frozen=True)
class BERT4RecConfig(SASRecConfig):
    """SASRec's keys plus the cloze masking rate (the paper's best on Amazon Beauty: 0.6)."""

    heads: int = 2
    dropout: float = 0.2
    mask_prob: float = 0.6

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(isinstance(self.mask_prob, int | float) and 0.0 < self.mask_prob <= 1.0, "model.mask_prob",
               "a number in (0, 1]", self.mask_prob)


class BERT4RecModule(SASRecModule):
    causal: ClassVar[bool] = False
    n_special: ClassVar[int] = 2  # pad = n_items, [MASK] = n_items + 1

    @property
    def mask_id(self) -> int:
        return self.n_items + 1


def cloze_mask(items_bw: torch.Tensor, pad: int, prob: float, gen: torch.Generator) -> torch.Tensor:
    """Bool [B, W]: real items to hide, each with probability `prob`; a row with none hides its last item."""
    real = items_bw != pad
    hide = (torch.rand(items_bw.shape, generator=gen) < prob).to(items_bw.device) & real
    last = torch.zeros_like(hide)
    last[:, -1] = real[:, -1]
    return torch.where(hide.any(dim=1, keepdim=True), hide, last)


class _Cloze(_Windows):
    """Windows of `max_len` items; the loss is cross-entropy on the masked ones."""

    def __init__(self, module: BERT4RecModule, windows: torch.Tensor, prob: float, seed: int):
        super().__init__(module, windows)
        self.prob, self.gen = prob, torch.Generator().manual_seed(seed)

    def loss(self, module: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        m: BERT4RecModule = self.module  # type: ignore[assignment]
        hide = cloze_mask(batch, m.n_items, self.prob, self.gen)
        inputs = batch.masked_fill(hide, m.mask_id)
        seen = inputs.masked_fill(hide, m.n_items)  # what the input shows: the repeat offset's items
        rows = hide.nonzero(as_tuple=True)
        logits = self.module.logits(module(inputs)[rows], seen[rows[0]])
        return F.cross_entropy(logits.float(), batch[rows])


class BERT4Rec(SASRec):
    name: ClassVar[str] = "bert4rec"
    Config = BERT4RecConfig
    Module: ClassVar[type[SASRecModule]] = BERT4RecModule

    def fit(self, data: SplitData, cfg: TrainConfig, workdir: Path | None = None) -> FitReport:
        self._seed = cfg.seed
        report = super().fit(data, cfg, workdir)
        report.extra.update({"loss": "cloze_full_softmax_ce", "mask_prob": self.cfg.mask_prob,
                             "attention": "bidirectional"})
        return report

    def window_length(self, max_len: int) -> int:
        return max_len - 1  # a window of max_len - 1 inputs + 1 target = max_len items, all of them inputs

    def examples(self, windows: torch.Tensor) -> _Windows:
        return _Cloze(self.module_, windows, self.cfg.mask_prob, self._seed)  # type: ignore[arg-type]

    def inputs(self, histories: torch.Tensor) -> torch.Tensor:
        module = self._fitted()
        items_bw = super().inputs(histories[:, -(module.max_len - 1) :]) if module.max_len > 1 else histories[:, :0]
        return torch.cat([items_bw, torch.full((len(items_bw), 1), module.n_items + 1, device=items_bw.device,
                                               dtype=items_bw.dtype)], dim=1)
