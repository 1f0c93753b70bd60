"""The item-sequence Transformer that SASRec, HSTU, BERT4Rec and RPG share, its training windows,
and `SequenceBackend`, the backend plumbing around it.

A model over item sequences chooses its layer (`SequenceModule.make_block`), whether attention is
causal, its input rows (`make_item_table`, `embed`), its training examples (`examples`) and how
the last hidden state becomes a ranking (`rank_hidden`); the rest lives here once.

Positions are learned and counted from the right, so the most recent item always has the last
position, in training windows and in left-padded histories alike. With `repeat_bias` one learned
scalar is added to the score of every item already in the input (RepeatNet's repeat-or-explore
choice reduced to its prior), learned from the training targets alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genrec_bench.api import FitReport, Ranked
from genrec_bench.config import TrainConfig, check_key, is_int
from genrec_bench.data.split import PAD, SplitData, concat_ranges
from genrec_bench.decoding.repeats import REPEAT_SCALE
from genrec_bench.errors import GenrecError
from genrec_bench.nn.backend import NeuralBackend
from genrec_bench.ranking import topk_stable

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"relu": nn.ReLU, "gelu": partial(nn.GELU, approximate="tanh")}


@dataclass(frozen=True)
class SequenceConfig:
    """`[model]` keys of an item-sequence Transformer."""

    hidden: int = 64
    layers: int = 2
    heads: int = 1
    dropout: float = 0.5  # on the residual branches and inside the FFN
    ffn: int = 0  # FFN inner width; 0 = hidden
    activation: str = "relu"  # FFN activation: relu, or gelu (tanh form, GPT-2's gelu_new)
    # Negative = `dropout`. GPT-2 (RPG's backbone) drops embeddings and attention weights but
    # not the residual branches, so one number cannot express it.
    embedding_dropout: float = -1.0
    attention_dropout: float = -1.0
    max_history: int = 0  # history items the model sees (its positions); 0 = the split's data.max_history
    repeat_bias: bool = True  # learned score offset for items already in the input

    renamed_keys: ClassVar[dict[str, str]] = {"max_len": "max_history"}

    def __post_init__(self) -> None:
        check_key(is_int(self.hidden) and self.hidden >= 1, "model.hidden", "an integer >= 1", self.hidden)
        check_key(is_int(self.layers) and self.layers >= 1, "model.layers", "an integer >= 1", self.layers)
        check_key(is_int(self.heads) and self.heads >= 1, "model.heads", "an integer >= 1", self.heads)
        check_key(self.hidden % self.heads == 0, "model.heads", f"a divisor of model.hidden={self.hidden}",
                  self.heads)
        check_key(isinstance(self.dropout, int | float) and 0.0 <= self.dropout < 1.0, "model.dropout",
                  "a number in [0, 1)", self.dropout)
        for key in ("embedding_dropout", "attention_dropout"):
            value = getattr(self, key)
            check_key(isinstance(value, int | float) and value < 1.0, f"model.{key}",
                      "a number in [0, 1), or negative for model.dropout", value)
        check_key(is_int(self.ffn) and self.ffn >= 0, "model.ffn", "an integer >= 0 (0 = model.hidden)", self.ffn)
        check_key(self.activation in ACTIVATIONS, "model.activation", " or ".join(ACTIVATIONS), self.activation)
        check_key(is_int(self.max_history) and self.max_history >= 0, "model.max_history",
                  "an integer >= 0 (0 = data.max_history)", self.max_history)
        check_key(isinstance(self.repeat_bias, bool), "model.repeat_bias", "true or false", self.repeat_bias)

    @property
    def ffn_width(self) -> int:
        """The FFN's inner width: `ffn`, or `hidden` when 0."""
        return self.ffn or self.hidden

    def dropout_of(self, part: str) -> float:
        """The dropout rate of `part` ("embedding" or "attention"): its own key, else `dropout`."""
        value = getattr(self, f"{part}_dropout")
        return self.dropout if value < 0 else float(value)


# --- the network ---------------------------------------------------------------------------------

class CausalSelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)

    def forward(self, x_bwd: torch.Tensor, allowed_bww: torch.Tensor) -> torch.Tensor:
        b, w, d = x_bwd.shape
        # [B, W, 3D] -> 3 x [B, H, W, D/H]
        q, k, v = self.qkv(x_bwd).view(b, w, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed_bww[:, None],
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(b, w, d))


class Block(nn.Module):
    """Pre-LN Transformer block (normalise, attend, add; normalise, FFN, add): GPT-2's layout."""

    def __init__(self, cfg: SequenceConfig):
        super().__init__()
        hidden, inner = cfg.hidden, cfg.ffn_width
        self.ln1 = nn.LayerNorm(hidden)
        self.attn = CausalSelfAttention(hidden, cfg.heads, cfg.dropout_of("attention"))
        self.ln2 = nn.LayerNorm(hidden)
        self.ffn = nn.Sequential(nn.Linear(hidden, inner), ACTIVATIONS[cfg.activation](), nn.Dropout(cfg.dropout),
                                 nn.Linear(inner, hidden))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x_bwd: torch.Tensor, allowed_bww: torch.Tensor) -> torch.Tensor:
        x_bwd = x_bwd + self.drop(self.attn(self.ln1(x_bwd), allowed_bww))
        return x_bwd + self.drop(self.ffn(self.ln2(x_bwd)))


class SequenceModule(nn.Module):
    """Items [B, W] (pad = n_items, left-padded, W <= max_len) -> hidden states [B, W, D].

    Subclasses choose the layer (`make_block`), whether attention is causal, and extra input
    tokens after pad (a [MASK]).
    """

    causal: ClassVar[bool] = True
    n_special: ClassVar[int] = 1  # input rows after the items: pad (+ [MASK] for cloze models)

    def __init__(self, n_items: int, max_len: int, cfg: SequenceConfig):
        super().__init__()
        self.n_items, self.max_len = n_items, max_len
        self.item = self.make_item_table(n_items, cfg)
        self.pos = nn.Embedding(max_len, cfg.hidden)
        self.drop = nn.Dropout(cfg.dropout_of("embedding"))
        self.blocks = nn.ModuleList(self.make_block(cfg) for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(cfg.hidden)
        self.repeat = nn.Parameter(torch.zeros(())) if cfg.repeat_bias else None
        self.apply(init_weights)

    def make_item_table(self, n_items: int, cfg: SequenceConfig) -> nn.Embedding:
        """The input (and output) embedding: one row per item, then the special tokens."""
        return nn.Embedding(n_items + self.n_special, cfg.hidden, padding_idx=n_items)  # row n_items = pad

    def make_block(self, cfg: SequenceConfig) -> nn.Module:
        return Block(cfg)

    def embed(self, items_bw: torch.Tensor) -> torch.Tensor:
        """Input vectors [B, W, D] of the items (padding rows are zeroed by the caller)."""
        return self.item(items_bw) * math.sqrt(self.item.embedding_dim)

    def forward(self, items_bw: torch.Tensor) -> torch.Tensor:
        w = items_bw.shape[1]
        real_bw = items_bw != self.n_items
        # Position ids count from the right: the most recent item is always max_len - 1.
        pos_w = torch.arange(self.max_len - w, self.max_len, device=items_bw.device)
        x = self.embed(items_bw) + self.pos(pos_w)
        x = self.drop(x) * real_bw[..., None]
        # Over real keys (causal unless bidirectional); every position may see itself, so all-pad rows stay finite.
        allowed = real_bw[:, None, :] | torch.eye(w, dtype=torch.bool, device=items_bw.device)
        if self.causal:
            allowed = allowed & torch.ones(w, w, dtype=torch.bool, device=items_bw.device).tril()
        for block in self.blocks:
            x = block(x, allowed) * real_bw[..., None]
        return self.ln_f(x)

    def repeat_offsets(self) -> float | list[float] | None:
        """The learned repeat offset in logits (for the run record), None without `repeat_bias`."""
        return None if self.repeat is None else round(REPEAT_SCALE * self.repeat.item(), 3)

    def logits(self, hidden_td: torch.Tensor, seen_tw: torch.Tensor) -> torch.Tensor:
        """Scores over the catalogue with the shared item embedding (the pad row is not an item).

        `seen_tw` lists, per scored row, the items already in its input (pad = n_items).
        """
        scores_tn = hidden_td @ self.item.weight[: self.n_items].T
        if self.repeat is None:
            return scores_tn
        seen_tn = torch.zeros(len(seen_tw), self.n_items + 1, dtype=scores_tn.dtype, device=scores_tn.device)
        seen_tn.scatter_(1, seen_tw, 1.0)
        return scores_tn + REPEAT_SCALE * self.repeat * seen_tn[:, : self.n_items]


def prefix_items(items_bw: torch.Tensor, pad: int) -> torch.Tensor:
    """[B, W] -> [B, W, W]: row t holds the items at positions <= t, later ones replaced by `pad`."""
    w = items_bw.shape[1]
    causal_ww = torch.ones(w, w, dtype=torch.bool, device=items_bw.device).tril()
    return torch.where(causal_ww, items_bw[:, None, :], pad)


def init_weights(module: nn.Module) -> None:
    """Normal(0, 0.02) weights, zero biases and a zero padding row."""
    if isinstance(module, nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            nn.init.zeros_(module.weight[module.padding_idx])


# --- training data -------------------------------------------------------------------------------

def training_windows(flat: np.ndarray, offsets: np.ndarray, max_len: int) -> np.ndarray:
    """Cut each training sequence into left-padded windows [n_windows, max_len + 1] (PAD = -1).

    A window's first max_len columns are inputs and its last max_len columns the next-item targets,
    so every item after a user's first is a target exactly once. Windows are cut from the most
    recent end, so the newest items keep the longest context; sequences of one item give none.
    """
    lengths = np.diff(offsets)
    per_user = np.where(lengths >= 2, (lengths - 2) // max_len + 1, 0)  # ceil((n - 1) / max_len)
    user = np.repeat(np.arange(len(lengths)), per_user)
    last = offsets[user] + lengths[user] - 1 - concat_ranges(per_user) * max_len  # index of the window's last item
    first = np.maximum(offsets[user], last - max_len)
    idx = last[:, None] - max_len + np.arange(max_len + 1)[None, :]
    return np.where(idx >= first[:, None], flat[np.clip(idx, 0, None)], PAD).astype(np.int64)


def trim_left(items_bw: torch.Tensor, pad: int) -> torch.Tensor:
    """Drop leading columns that are padding in every row (left-padded batches share their tail)."""
    real_w = (items_bw != pad).any(dim=0)
    start = int(real_w.int().argmax()) if bool(real_w.any()) else items_bw.shape[1] - 1
    return items_bw[:, start:]


class Windows:
    """The `training.Trainable` view of a sequence model: windows addressable by index, next-item
    full-softmax cross-entropy at every real position."""

    def __init__(self, module: SequenceModule, windows: torch.Tensor):
        self.module = module
        self.windows = windows  # [n, max_len + 1], pad = n_items

    def num_examples(self) -> int:
        return len(self.windows)

    def batch(self, index: torch.Tensor, device: torch.device) -> torch.Tensor:
        return trim_left(self.windows[index], self.module.n_items).to(device)

    def loss(self, module: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        inputs_bw, targets_bw = batch[:, :-1], batch[:, 1:]
        hidden_bwd = module(inputs_bw)
        # A target counts when its input is an item (then so is the target: windows are left-padded).
        # Score only those: most window positions are padding on sparse data.
        real = inputs_bw != self.module.n_items
        seen_tw = prefix_items(inputs_bw, self.module.n_items)[real]
        logits_tn = self.module.logits(hidden_bwd[real], seen_tw)
        return F.cross_entropy(logits_tn.float(), targets_bw[real])


# --- the backend ---------------------------------------------------------------------------------

class SequenceBackend(NeuralBackend):
    """Fit, recommend, save and load of a `SequenceModule`; subclasses set `Module` and may override
    `build_module`, `window_length`, `examples`, `inputs` and `rank_hidden`."""

    Module: ClassVar[type[SequenceModule]] = SequenceModule
    # Runs saved before `repeat_bias` existed have no offset parameter.
    legacy_config: ClassVar[dict[str, Any]] = {"repeat_bias": False}
    loss_name: ClassVar[str] = "full_softmax_ce"

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {"hidden": 16, "layers": 1}

    def fit(self, data: SplitData, cfg: TrainConfig, workdir: Path | None = None) -> FitReport:
        max_len = self.cfg.max_history or data.config.max_history
        self.use_device(cfg.device)
        self.module_ = self.build_module(data, max_len)
        flat, offsets = data.train_sequences()
        windows = torch.from_numpy(training_windows(flat, offsets, self.window_length(max_len)))
        windows[windows == PAD] = data.n_items
        if len(windows) == 0:
            raise GenrecError(f"dataset '{data.name}' has no training sequence of two or more items; "
                              f"{self.name} needs at least one next-item pair")
        report = self.train_module(self.examples(windows, cfg), data, cfg, workdir)
        report.extra.update({"max_len": max_len, "windows": len(windows),
                             "train_targets": int((windows[:, :-1] != data.n_items).sum()),
                             "loss": self.loss_name, "norm": "pre_ln", **self.fit_facts()})
        if (offsets := self.module_.repeat_offsets()) is not None:
            report.extra["repeat_bias"] = offsets
        return report

    def fit_facts(self) -> dict[str, Any]:
        """What a model adds to its run record's `extra` (attention kind, departures, ...)."""
        return {}

    def build_module(self, data: SplitData, max_len: int) -> SequenceModule:
        """The untrained sequence model for `data` (a tokenising model derives its item codes here)."""
        return self.Module(data.n_items, max_len, self.cfg)

    def window_length(self, max_len: int) -> int:
        """Training windows hold this many inputs (plus the next item): next-item models see max_len."""
        return max_len

    def examples(self, windows: torch.Tensor, cfg: TrainConfig) -> Windows:
        return Windows(self.fitted(), windows)

    def inputs(self, histories: torch.Tensor) -> torch.Tensor:
        """Left-padded histories [B, H] (-1 = none) -> the model's input items [B, W], pad = n_items."""
        module = self.fitted()
        items_bw = self.history(histories, module.max_len)
        return torch.where(items_bw < 0, module.n_items, items_bw)

    def recommend(self, histories: torch.Tensor, k: int) -> Ranked:
        items_bw = trim_left(self.inputs(histories), self.fitted().n_items)
        with self.inference() as module:
            return self.rank_hidden(module(items_bw)[:, -1], items_bw, k)

    def rank_hidden(self, hidden_bd: torch.Tensor, items_bw: torch.Tensor, k: int) -> Ranked:
        """The top-k from the last position's hidden states and the model's inputs (in inference mode):
        the catalogue scored by the shared item embedding."""
        module = self.fitted()
        seen = items_bw.masked_fill(items_bw > module.n_items, module.n_items)  # [MASK] is not an item
        return topk_stable(module.logits(hidden_bd, seen).float(), k)

    def state(self) -> dict[str, Any]:
        module = self.fitted()
        return {"module": module.state_dict(), "n_items": module.n_items, "max_len": module.max_len}

    def restore(self, state: dict[str, Any], info: dict[str, Any]) -> None:
        self.module_ = self.Module(state["n_items"], state["max_len"], self.cfg)
        self.module_.load_state_dict(state["module"])
