"""BERT4Rec (Sun et al., 2019): a bidirectional Transformer over the item sequence, trained with
the cloze objective: the classic masked counterpart of MindRec, one item per token.

Training: windows of `max_len` consecutive items; each real item is replaced by [MASK] with
probability `mask_prob` (at least one per window: the last item when the draw masks none) and
the model predicts it with a full softmax over the catalogue (the paper's output layer, shared
with the item embedding). Inference appends [MASK] to the last `max_len - 1` history items and
ranks the catalogue at that position. Masks are drawn from a generator seeded by the training
seed and the step, so a resumed run draws the same masks.

The sequence model is the shared one (`genrec_bench.nn.sequence`: pre-LN layers, positions
counted from the right, repeat offset on items already in the input) with the attention made
bidirectional over real items.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from genrec_bench.config import TrainConfig, check_key
from genrec_bench.nn.sequence import SequenceBackend, SequenceConfig, SequenceModule, Windows


@dataclass(frozen=True)
class BERT4RecConfig(SequenceConfig):
    """The sequence model's keys plus the cloze masking rate (the paper's best on Amazon Beauty: 0.6)."""

    heads: int = 2
    dropout: float = 0.2
    mask_prob: float = 0.6

    def __post_init__(self) -> None:
        super().__post_init__()
        check_key(isinstance(self.mask_prob, int | float) and 0.0 < self.mask_prob <= 1.0, "model.mask_prob",
               "a number in (0, 1]", self.mask_prob)


class BERT4RecModule(SequenceModule):
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


class ClozeWindows(Windows):
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


class BERT4Rec(SequenceBackend):
    name: ClassVar[str] = "bert4rec"
    Config = BERT4RecConfig
    Module: ClassVar[type[SequenceModule]] = BERT4RecModule
    loss_name: ClassVar[str] = "cloze_full_softmax_ce"

    def fit_facts(self) -> dict[str, Any]:
        return {"mask_prob": self.cfg.mask_prob, "attention": "bidirectional"}

    def window_length(self, max_len: int) -> int:
        return max_len - 1  # a window of max_len - 1 inputs + 1 target = max_len items, all of them inputs

    def examples(self, windows: torch.Tensor, cfg: TrainConfig) -> Windows:
        return ClozeWindows(self.fitted(), windows, self.cfg.mask_prob, cfg.seed)  # type: ignore[arg-type]

    def inputs(self, histories: torch.Tensor) -> torch.Tensor:
        module = self.fitted()
        items_bw = super().inputs(histories[:, -(module.max_len - 1) :]) if module.max_len > 1 else histories[:, :0]
        return torch.cat([items_bw, torch.full((len(items_bw), 1), module.n_items + 1, device=items_bw.device,
                                               dtype=items_bw.dtype)], dim=1)
