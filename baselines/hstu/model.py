"""HSTU (Zhai et al., "Actions Speak Louder than Words", ICML 2024): the shared item-sequence model
(`genrec_bench.nn.sequence`) with the Hierarchical Sequential Transduction Unit in place of softmax attention.

Each layer: U, V, Q, K = SiLU(W x) from the normalised input; pointwise aggregated attention
A = SiLU(QK^T + rab) / n (no softmax: weights need not sum to one, so the intensity of a user's
engagement survives), causal over real items; output x + W_o(LayerNorm(A V) * U). `rab` is a
learned bias per head and relative distance. n is the model's fixed length `max_len`, so a
history's weights do not depend on how much padding its batch carried.

Training, loss and ranking are the shared sequence model's: full-softmax cross-entropy over the
catalogue at every
position, the shared item embedding as output layer, the learned repeat offset.

Departure (recorded as `time_bias: false`): the paper also adds a bias bucketed by the time gap
between two actions; splits here hand models item order only, so it is left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from genrec_bench.nn.sequence import SequenceBackend, SequenceConfig, SequenceModule


@dataclass(frozen=True)
class HSTUConfig(SequenceConfig):
    """The sequence model's keys; dropout 0.2 as in the paper's public configs for Amazon data."""

    heads: int = 2
    dropout: float = 0.2


def relative_distance(w: int, device: torch.device | None = None) -> torch.Tensor:
    """[W, W] distance i - j of key j before query i, clamped to 0 for keys after the query."""
    pos = torch.arange(w, device=device)
    return (pos[:, None] - pos[None, :]).clamp_min(0)


def pointwise_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor,
                        allowed: torch.Tensor, n: int) -> torch.Tensor:
    """SiLU(q k^T + bias) / n over allowed keys, times v: q, k, v [B, H, W, d]; bias [H, W, W]; allowed [B, W, W]."""
    weights = F.silu(q @ k.transpose(2, 3) + bias) / n
    return weights.masked_fill(~allowed[:, None], 0.0) @ v


class HSTUBlock(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float, max_len: int):
        super().__init__()
        self.heads, self.max_len = heads, max_len
        self.norm = nn.LayerNorm(hidden)
        self.uvqk = nn.Linear(hidden, 4 * hidden)
        self.attn_norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, hidden)
        self.rab = nn.Parameter(torch.zeros(heads, max_len))  # bias per head and relative distance
        self.drop = nn.Dropout(dropout)

    def forward(self, x_bwd: torch.Tensor, allowed_bww: torch.Tensor) -> torch.Tensor:
        b, w, d = x_bwd.shape
        u, v, q, k = F.silu(self.uvqk(self.norm(x_bwd))).chunk(4, dim=2)
        q, k, v = (z.view(b, w, self.heads, -1).transpose(1, 2) for z in (q, k, v))
        bias = self.rab[:, relative_distance(w, x_bwd.device)]  # [H, W, W]
        att = pointwise_attention(q, k, v, bias, allowed_bww, self.max_len).transpose(1, 2).reshape(b, w, d)
        return x_bwd + self.drop(self.out(self.attn_norm(att) * u))


class HSTUModule(SequenceModule):
    def make_block(self, cfg: SequenceConfig) -> nn.Module:
        return HSTUBlock(cfg.hidden, cfg.heads, cfg.dropout, self.max_len)


class HSTU(SequenceBackend):
    name: ClassVar[str] = "hstu"
    Config = HSTUConfig
    Module: ClassVar[type[SequenceModule]] = HSTUModule

    def fit_facts(self) -> dict[str, Any]:
        return {"attention": "pointwise_silu", "time_bias": False}
