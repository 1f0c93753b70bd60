"""MindRec (Gao et al., arXiv 2511.12597): masked-diffusion generation of an item's coarse-to-fine
path (category tokens, then identifier tokens), decoded by Diffusion Beam Search.

The paper fine-tunes an 8B diffusion LLM (LLaDA-8B-Instruct + LoRA); this backend trains a
compact Transformer encoder from scratch with the same objective, on
`[history items | SEP | target path]` (the target attends to everything, in both directions):
t ~ U(0, 1) per example, p_mask = (1 - eps) t + eps, every target token masked independently
(the history never is), cross-entropy on masked tokens weighted by 1 / p_mask, summed and divided
by the number of target tokens. Position p of the target has its own vocabulary (the nodes of
tree level p, or the codes of identifier level p), stored as one embedding table with
per-position offsets; the output head is tied to it and restricted to the position's slice.

Efficiency switches (recorded in `FitReport.extra`; each has the paper's setting one flag away):
- `cache_history`: the [history | SEP] block does not attend to the target, so decoding
  computes it once per user instead of once per beam and step (paper: fully bidirectional);
- each history item is ONE position (`history_encoding = "item_sum"`: the sum of its path-token
  embeddings; `"item_sum_id"` adds a learned item-id embedding, as in `tiger`) instead of the paper's text prompt;
- `tokens_per_step > 1` commits several tokens per model call, and `category_beam` keeps fewer
  beams through the category levels (approximate decoding speed-ups, off by default);
- `beam_covers_k` widens the beam to k so every metric cut-off is filled (false = paper: exactly
  `beam_width` beams, shorter lists padded with -1).

Departure (`constrained_softmax`, default on): each masked position's softmax runs over the tokens
that some item consistent with the unmasked tokens has there (`consistent_tokens`), in training,
and Diffusion Beam Search takes each commitment's log-probability relative to the same set
(`SearchConfig.renormalise`). The model no longer learns which token combinations exist (the
catalogue knows) and tokens the catalogue forces cost nothing (paper: the position's whole vocabulary).

Departure (`repeat_bias`, default on, as in `tiger` and `sasrec`): one learned logit offset per
target position on the tokens that keep a partial path on a history item's path
(`decoding.repeats.repeat_tokens`), in training on the noisy target and in decoding on each beam,
so the model learns from the training targets whether users go back to what they had.
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genrec_bench.api import FitReport, Ranked
from genrec_bench.config import TrainConfig, check_key
from genrec_bench.data.examples import NextItemWindows
from genrec_bench.data.split import SplitData
from genrec_bench.decoding.diffusion_beam import (
    ORDERS,
    PathIndex,
    SearchConfig,
    build_path_index,
    diffusion_beam_search,
)
from genrec_bench.decoding.repeats import REPEAT_SCALE, repeat_tokens
from genrec_bench.errors import GenrecError
from genrec_bench.items.category_tree import SOURCES as TREE_SOURCES
from genrec_bench.items.category_tree import CategoryTree, TreeConfig, build_category_tree, resolve_source
from genrec_bench.items.features import item_features
from genrec_bench.items.id_tables import read_tree_table, tree_digest
from genrec_bench.items.semantic_ids import format_health
from genrec_bench.items.tokenizer import ItemTokens, SemanticIdKeys
from genrec_bench.nn.backend import NeuralBackend

HISTORY_ENCODINGS = ("item_sum", "item_sum_id")
# Beams x leaf-width cells one search call may hold; larger user batches are decoded in chunks.
DECODE_CELLS = 4_000_000


@dataclass(frozen=True)
class MindRecConfig(SemanticIdKeys):
    """`[model]` keys of MindRec (the semantic-ID keys are the identifier part of each path); sizes
    default to a CPU-friendly model."""

    tree_source: str = "auto"  # auto | named | subsumption | kmeans | none (no category tree)
    tree_depth: int = 2
    tree_branching: int = 16  # k-means trees only
    tree_tolerance: float = 0.05  # subsumption trees only
    tree_file: str = ""  # category-path file (`genrec-bench tokenize --tree-out`) instead of building the tree
    history_encoding: str = "item_sum"  # item_sum (sum of path-token embeddings) | item_sum_id (+ item-id embedding)
    cache_history: bool = True  # history block does not attend to the target (paper: fully bidirectional)
    max_history: int = 0  # 0 = data.max_history
    d_model: int = 128
    layers: int = 2
    heads: int = 4
    d_ff: int = 512
    dropout: float = 0.1
    eps: float = 0.5  # minimum masking probability; paper sweeps 0.4..0.7
    beam_width: int = 10
    category_beam: int = 0  # beams through the category levels; 0 = the search's beam (approximate when fewer)
    beam_covers_k: bool = True
    order: str = "confidence"  # confidence | left_to_right | random (identifier positions)
    tokens_per_step: int = 1
    diversity: float = 0.0
    merge_determined: bool = True  # each kept beam holds an item no better beam holds: full lists (false = paper)
    decode_seed: int = 0
    repeat_bias: bool = True  # learned per-position offset for tokens leading back to a history item
    constrained_softmax: bool = True  # softmax over tokens of catalogue-consistent items (paper: position vocab)

    renamed_keys: ClassVar[dict[str, str]] = {"history_repr": "history_encoding"}
    renamed_values: ClassVar[dict[str, dict[str, str]]] = {"history_encoding": {"codes": "item_sum",
                                                                                "id_codes": "item_sum_id"}}

    def __post_init__(self) -> None:
        super().__post_init__()
        check_key(self.tree_source in TREE_SOURCES, "model.tree_source", f"one of {', '.join(TREE_SOURCES)}",
               self.tree_source)
        check_key(self.tree_depth >= 1, "model.tree_depth", "an integer >= 1 (tree_source = 'none' for no tree)",
               self.tree_depth)
        check_key(self.tree_branching >= 2, "model.tree_branching", "an integer >= 2", self.tree_branching)
        check_key(0 <= self.tree_tolerance < 1, "model.tree_tolerance", "a number in [0, 1)", self.tree_tolerance)
        check_key(self.history_encoding in HISTORY_ENCODINGS, "model.history_encoding",
                  f"one of {', '.join(HISTORY_ENCODINGS)}", self.history_encoding)
        check_key(self.max_history >= 0, "model.max_history", "an integer >= 0 (0 = data.max_history)",
               self.max_history)
        for key in ("d_model", "layers", "heads", "d_ff", "beam_width", "tokens_per_step"):
            check_key(getattr(self, key) >= 1, f"model.{key}", "an integer >= 1", getattr(self, key))
        check_key(self.d_model % self.heads == 0, "model.heads", f"a divisor of d_model={self.d_model}", self.heads)
        check_key(0 <= self.dropout < 1, "model.dropout", "a number in [0, 1)", self.dropout)
        check_key(0 < self.eps <= 1, "model.eps", "a number in (0, 1]", self.eps)
        check_key(self.category_beam >= 0, "model.category_beam", "an integer >= 0 (0 = the beam width)",
                  self.category_beam)
        check_key(self.order in ORDERS, "model.order", f"one of {', '.join(ORDERS)}", self.order)
        check_key(self.diversity >= 0, "model.diversity", "a number >= 0", self.diversity)
        check_key(isinstance(self.repeat_bias, bool), "model.repeat_bias", "true or false", self.repeat_bias)
        check_key(isinstance(self.constrained_softmax, bool), "model.constrained_softmax", "true or false",
               self.constrained_softmax)

    def tree(self) -> TreeConfig:
        return TreeConfig(source=self.tree_source, depth=self.tree_depth, branching=self.tree_branching,
                          tolerance=self.tree_tolerance, seed=self.sid_seed)


# --- the objective (pure functions, unit-tested against a hand computation) ---------------------

def corrupt_targets(targets_bp: torch.Tensor, eps: float,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mask target tokens as in LLaDA: returns (noisy path with -1 = [MASK], masked [B, P], p_mask [B])."""
    b, p = targets_bp.shape
    t = torch.rand(b, generator=generator).to(targets_bp.device)
    p_mask_b = (1 - eps) * t + eps
    masked_bp = torch.rand(b, p, generator=generator).to(targets_bp.device) < p_mask_b[:, None]
    return targets_bp.masked_fill(masked_bp, -1), masked_bp, p_mask_b


def diffusion_loss(logits_bpv: torch.Tensor, targets_bp: torch.Tensor, masked_bp: torch.Tensor,
                   p_mask_b: torch.Tensor) -> torch.Tensor:
    """Mean over examples of sum_{masked} CE / p_mask, divided by the number of target tokens."""
    b, p, v = logits_bpv.shape
    ce_bp = F.cross_entropy(logits_bpv.float().reshape(b * p, v), targets_bp.reshape(-1),
                            reduction="none").view(b, p)
    ce_bp = torch.where(masked_bp, ce_bp, 0.0) / p_mask_b[:, None]
    return (ce_bp.sum(dim=1) / p).mean()


def path_incidence(paths_np: torch.Tensor, vmax: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse CSR 0/1 matrices [N, P * vmax] and its transpose: entry (n, p * vmax + v) iff item n has v at p."""
    n, p = paths_np.shape
    cols = (torch.arange(p) * vmax + paths_np.long()).reshape(-1)
    rows = torch.arange(n).repeat_interleave(p)
    coo = torch.sparse_coo_tensor(torch.stack([rows, cols]), torch.ones(n * p), (n, p * vmax),
                                  check_invariants=True).coalesce()
    with warnings.catch_warnings():  # "sparse CSR support is in beta": products are all we use
        warnings.simplefilter("ignore", UserWarning)
        return coo.to_sparse_csr(), coo.t().coalesce().to_sparse_csr()


def consistent_tokens(incidence: tuple[torch.Tensor, torch.Tensor], state_bp: torch.Tensor) -> torch.Tensor:
    """Bool [B, P, vmax]: tokens that an item agreeing with every unmasked token (-1 = masked) has at p.

    Two sparse products over the catalogue: per item, how many unmasked tokens it matches (it agrees
    when that is all of them), then which tokens the agreeing items hold: several times faster
    than a dense [B, N, P] comparison.
    """
    items_nq, items_qn = incidence
    b, p = state_bp.shape
    vmax = items_nq.shape[1] // p
    unmasked_bp = state_bp >= 0
    query_bq = torch.zeros(b, p * vmax, device=state_bp.device)
    query_bq.scatter_(1, torch.arange(p, device=state_bp.device) * vmax + state_bp.clamp(min=0), unmasked_bp.float())
    agree_nb = (items_nq @ query_bq.T) == unmasked_bp.sum(dim=1).float()[None]
    return ((items_qn @ agree_nb.float()) > 0).T.reshape(b, p, vmax)


# --- the network --------------------------------------------------------------------------------

class Block(nn.Module):
    """Pre-norm Transformer layer; `forward_cached` lets decoding queries read cached prefix keys/values."""

    def __init__(self, d_model: int, heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, x_btd: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        """x [B, T, d]; additive mask [B, 1, T, T]; returns (x, this layer's keys/values)."""
        b, t, d = x_btd.shape
        q, k, v = (z.view(b, t, self.heads, -1).transpose(1, 2) for z in self.qkv(self.norm1(x_btd)).chunk(3, -1))
        kv = (k, v)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.to(q.dtype),
                                             dropout_p=self.drop.p if self.training else 0.0)
        x_btd = x_btd + self.drop(self.proj(att.transpose(1, 2).reshape(b, t, d)))
        return x_btd + self.drop(self.ff(self.norm2(x_btd))), kv

    def attend_cached(self, x_uspd: torch.Tensor, prefix: tuple[torch.Tensor, torch.Tensor],
                      key_mask_un: torch.Tensor, qkv: torch.Tensor | None = None) -> torch.Tensor:
        """Decoding attention (no dropout) of S target blocks [U, S, P, d] per user, each attending to its
        user's cached prefix keys/values [U, heads, N, d_head] and to itself: heads joined, before `proj`.
        `qkv` [U, S, P, 3d], when given, replaces `qkv(norm1(x))` (a first layer's, read from a table).

        The prefix is read in place by one batched product per user instead of being copied once
        per beam, a large share of decoding time.
        """
        u, s, p, d = x_uspd.shape
        qkv = self.qkv(self.norm1(x_uspd)) if qkv is None else qkv
        q, k, v = (z.view(u, s, p, self.heads, -1).permute(0, 3, 1, 2, 4)  # [U, heads, S, P, d_head]
                   for z in qkv.chunk(3, -1))
        k_pre, v_pre = prefix
        n, scale = k_pre.shape[2], q.shape[-1] ** -0.5
        to_prefix = (q.reshape(u, self.heads, s * p, -1) @ k_pre.transpose(2, 3)).view(u, self.heads, s, p, n)
        to_prefix = to_prefix * scale + key_mask_un[:, None, None, None, :].to(q.dtype)
        att = torch.softmax(torch.cat([to_prefix, (q @ k.transpose(3, 4)) * scale], dim=4), dim=4)
        out = (att[..., :n].reshape(u, self.heads, s * p, n) @ v_pre).view(u, self.heads, s, p, -1)
        out = out + att[..., n:] @ v
        return out.permute(0, 2, 3, 1, 4).reshape(u, s, p, d)

    def finish(self, x: torch.Tensor, att: torch.Tensor) -> torch.Tensor:
        """The layer after attention (no dropout): residual, projection, feed-forward."""
        x = x + self.proj(att)
        return x + self.ff(self.norm2(x))

    def forward_cached(self, x_uspd: torch.Tensor, prefix: tuple[torch.Tensor, torch.Tensor],
                       key_mask_un: torch.Tensor) -> torch.Tensor:
        """Decoding layer: `forward` on [prefix | block] rows, with the prefix cached (`attend_cached`)."""
        return self.finish(x_uspd, self.attend_cached(x_uspd, prefix, key_mask_un))


@dataclass
class PrefixCache:
    """Per-layer keys/values of [history | SEP] for a batch of users (`cache_history` models)."""

    kv: list[tuple[torch.Tensor, torch.Tensor]]  # each [B, heads, H+1, d_head]
    mask: torch.Tensor  # [B, H+1] additive: -inf on padded history slots
    hist: torch.Tensor  # [B, H] history item indices, -1 = padding (for the repeat offsets)
    first_qkv: torch.Tensor  # [P, Vmax + 1, 3d] first layer's qkv of each target token, last = [MASK]


class MindRecNet(nn.Module):
    """Encoder over [history items | SEP | target path]; logits per target position.

    With `cache_history` the [history | SEP] block does not attend to the target (the target
    attends to everything), so its keys/values are computed once per user and shared by all
    beams and decoding steps; without it attention is fully bidirectional, as in the paper.
    """

    def __init__(self, cfg: MindRecConfig, paths: torch.Tensor, sizes: tuple[int, ...], max_history: int):
        super().__init__()
        self.sizes = tuple(int(s) for s in sizes)
        self.max_history = max_history
        self.cache_history = cfg.cache_history
        n_items, n_pos = paths.shape
        vocab, vmax = sum(self.sizes), max(self.sizes)
        offsets = torch.tensor([0, *np.cumsum(self.sizes)[:-1]], dtype=torch.long)
        self.register_buffer("offsets", offsets, persistent=False)
        self.register_buffer("item_tokens", paths.long() + offsets)  # [N, P] global token ids
        out_valid = torch.arange(vmax)[None, :] < torch.tensor(self.sizes)[:, None]  # [P, Vmax]
        self.register_buffer("out_valid", out_valid, persistent=False)
        self.register_buffer("out_index", torch.where(out_valid, offsets[:, None] + torch.arange(vmax), 0),
                             persistent=False)
        self.tok = nn.Embedding(vocab + n_pos, cfg.d_model)  # last P rows: per-position [MASK]
        self.item = nn.Embedding(n_items, cfg.d_model) if cfg.history_encoding == "item_sum_id" else None
        self.pos = nn.Embedding(max_history + 1 + n_pos, cfg.d_model)
        self.sep = nn.Parameter(torch.zeros(cfg.d_model))
        self.blocks = nn.ModuleList(Block(cfg.d_model, cfg.heads, cfg.d_ff, cfg.dropout) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.out_bias = nn.Parameter(torch.zeros(vocab))
        self.repeat = nn.Parameter(torch.zeros(n_pos)) if cfg.repeat_bias else None
        self.constrained = cfg.constrained_softmax
        if self.constrained:
            # A plain attribute, not buffers: derived from `paths` (rebuilt on load, never saved) and kept
            # out of DDP's buffer broadcast, which takes no sparse tensors; `allowed_tokens` moves it.
            self.incidence = path_incidence(paths, vmax)
        self.drop = nn.Dropout(cfg.dropout)
        nn.init.normal_(self.tok.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)
        if self.item is not None:
            nn.init.normal_(self.item.weight, std=0.02)

    def allowed_tokens(self, state_bp: torch.Tensor) -> torch.Tensor:
        """`consistent_tokens` of partial paths over this model's catalogue (constrained models)."""
        if self.incidence[0].device != state_bp.device:
            self.incidence = tuple(m.to(state_bp.device) for m in self.incidence)
        return consistent_tokens(self.incidence, state_bp)

    def _prefix(self, hist_bh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embedded [history | SEP] [B, H+1, d] and its additive key mask [B, H+1]."""
        b, h = hist_bh.shape
        valid_bh = hist_bh >= 0
        items = hist_bh.clamp(min=0)
        hist_bhd = self.tok(self.item_tokens[items]).sum(dim=2)
        if self.item is not None:
            hist_bhd = hist_bhd + self.item(items)
        x = torch.cat([hist_bhd * valid_bh[:, :, None], self.sep.expand(b, 1, -1)], dim=1)
        x = x + self.pos.weight[self.max_history - h : self.max_history + 1]  # most recent item at a fixed slot
        mask = torch.zeros(b, h + 1, device=x.device).masked_fill(torch.cat(
            [~valid_bh, valid_bh.new_zeros(b, 1)], dim=1), float("-inf"))
        return self.drop(x), mask

    def _target(self, state_bp: torch.Tensor) -> torch.Tensor:
        n_pos = state_bp.shape[1]
        mask_ids = sum(self.sizes) + torch.arange(n_pos, device=state_bp.device)
        x = self.tok(torch.where(state_bp >= 0, state_bp + self.offsets, mask_ids))
        return self.drop(x + self.pos.weight[self.max_history + 1 : self.max_history + 1 + n_pos])

    def _head(self, out_bpd: torch.Tensor, hist_bh: torch.Tensor, state_bp: torch.Tensor) -> torch.Tensor:
        """Tied output head restricted to each position's vocabulary: logits [B, P, Vmax]."""
        out_bpd = self.norm(out_bpd)
        logits = torch.einsum("bpd,pvd->bpv", out_bpd, self.tok.weight[self.out_index])
        logits = (logits + self.out_bias[self.out_index]).float()
        if self.repeat is not None:
            logits = logits + self.repeat_offset(hist_bh, state_bp)
        return logits.masked_fill(~self.out_valid, float("-inf"))

    def repeat_offset(self, hist_bh: torch.Tensor, state_bp: torch.Tensor) -> torch.Tensor:
        """Logit offsets [B, P, Vmax] on tokens that keep each partial path on a history item's path."""
        hist_paths = torch.where(hist_bh[:, :, None] >= 0, self.item_tokens[hist_bh.clamp(min=0)] - self.offsets, -1)
        marks = repeat_tokens(hist_paths, state_bp[:, None], self.out_valid.shape[1])[:, 0]
        return marks * (REPEAT_SCALE * self.repeat)[:, None]

    def forward(self, hist_bh: torch.Tensor, state_bp: torch.Tensor) -> torch.Tensor:
        """Logits [B, P, Vmax] (-inf outside each position's vocabulary) for partial paths (-1 = mask)."""
        prefix, key_mask = self._prefix(hist_bh)
        x = torch.cat([prefix, self._target(state_bp)], dim=1)
        s, n_pre = x.shape[1], prefix.shape[1]
        key_mask = torch.cat([key_mask, key_mask.new_zeros(len(x), s - n_pre)], dim=1)
        mask = key_mask[:, None, None, :].expand(-1, 1, s, -1)
        if self.cache_history:  # the prefix block does not see the target
            block = torch.zeros(s, s, device=x.device)
            block[:n_pre, n_pre:] = float("-inf")
            mask = mask + block
        for blk in self.blocks:
            x, _ = blk(x, mask)
        return self._head(x[:, n_pre:], hist_bh, state_bp)

    def encode_prefix(self, hist_bh: torch.Tensor) -> PrefixCache:
        """Keys/values of every layer for [history | SEP], computed once per user (cache_history only)."""
        x, key_mask = self._prefix(hist_bh)
        mask = key_mask[:, None, None, :]
        kv = []
        for blk in self.blocks:
            x, layer_kv = blk(x, mask)
            kv.append(layer_kv)
        return PrefixCache(kv=kv, mask=key_mask, hist=hist_bh, first_qkv=self._first_qkv())

    def _first_qkv(self) -> torch.Tensor:
        """The first layer's queries/keys/values of every (target position, token or [MASK]): a target
        position's input is its token's embedding plus its position's, so decoding reads them from this
        table instead of running the first projection on every beam's block."""
        n_pos = len(self.sizes)
        masks = sum(self.sizes) + torch.arange(n_pos, device=self.offsets.device)
        ids = torch.cat([torch.where(self.out_valid, self.out_index, masks[:, None]), masks[:, None]], dim=1)
        x = self.tok(ids) + self.pos.weight[self.max_history + 1 : self.max_history + 1 + n_pos, None]
        first = self.blocks[0]
        return first.qkv(first.norm1(x))

    def decode(self, cache: PrefixCache, users_m: torch.Tensor, state_mp: torch.Tensor,
               read_mp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits at the positions `read_mp` [M, P] of partial paths whose user (row of `cache`) is `users_m`:
        ((row, position) pairs [Q, 2], logits [Q, Vmax], -inf outside each position's vocabulary).

        Rows are grouped by user into [U, S] slots (S = most rows of one user; spare slots are
        computed and dropped), so each layer reads a user's cached history once for all its beams.
        Every position's keys feed the last layer's attention, but its projection, feed-forward and
        the output head run only where a token will be read: the masked positions the search may
        commit, about 40% of the block on Beauty.
        """
        m, device = len(users_m), users_m.device
        order = torch.argsort(users_m, stable=True)
        users, counts = torch.unique_consecutive(users_m[order], return_counts=True)
        slots = int(counts.max()) if m else 0
        group = torch.repeat_interleave(torch.arange(len(users), device=device), counts)
        first = torch.cumsum(counts, 0) - counts
        cell = torch.empty(m, dtype=torch.long, device=device)
        cell[order] = group * slots + torch.arange(m, device=device) - first[group]  # each row's (user, slot)
        x = self._target(state_mp)
        p_len = x.shape[1]
        local = torch.where(state_mp >= 0, state_mp, self.out_valid.shape[1])  # token, or the [MASK] column
        qkv = cache.first_qkv[torch.arange(p_len, device=device), local]

        spare = torch.ones(len(users) * slots, dtype=torch.bool, device=device).index_fill_(0, cell, False)
        spare = spare.nonzero().squeeze(1)  # slots of users with fewer rows: zeros, computed and dropped

        def in_grid(rows: torch.Tensor) -> torch.Tensor:
            grid = rows.new_empty(len(users) * slots, *rows.shape[1:]).index_copy_(0, cell, rows)
            return grid.index_fill_(0, spare, 0.0).view(len(users), slots, *rows.shape[1:])

        grid, key_mask = in_grid(x), cache.mask[users]
        att = None
        for i, (blk, (k, v)) in enumerate(zip(self.blocks, cache.kv, strict=True)):
            att = blk.attend_cached(grid, (k[users], v[users]), key_mask, in_grid(qkv) if i == 0 else None)
            if i + 1 < len(self.blocks):
                grid = blk.finish(grid, att)
        pairs = read_mp.nonzero()
        at = cell[pairs[:, 0]] * p_len + pairs[:, 1]  # (slot, position) of each read pair
        flat = (len(users) * slots * p_len, -1)
        out = self.blocks[-1].finish(grid.reshape(flat)[at], att.reshape(flat)[at])
        return pairs, self._head_at(out, pairs, cache.hist[users_m], state_mp)

    def _head_at(self, out_qd: torch.Tensor, pairs: torch.Tensor, hist_mh: torch.Tensor,
                 state_mp: torch.Tensor) -> torch.Tensor:
        """`_head` for single (row, position) pairs: logits [Q, Vmax], one product per position."""
        out_qd = self.norm(out_qd)
        pos = pairs[:, 1]
        logits = out_qd.new_zeros(len(pos), self.out_valid.shape[1], dtype=torch.float32)
        for p in torch.unique(pos).tolist():  # a handful of positions, never items or beams
            at = pos == p
            head = out_qd[at] @ self.tok.weight[self.out_index[p]].T  # bf16 under CUDA autocast
            logits[at] = head.float() + self.out_bias[self.out_index[p]].float()
        if self.repeat is not None:
            logits = logits + self.repeat_offset(hist_mh, state_mp)[pairs[:, 0], pos]
        return logits.masked_fill(~self.out_valid[pos], float("-inf"))


class DiffusionExamples(NextItemWindows):
    """The `training.Trainable` view of MindRec: next-item windows, masked-diffusion loss."""

    def __init__(self, net: MindRecNet, data: SplitData, max_history: int, eps: float):
        super().__init__(data, max_history)
        self.module = net
        self.eps = eps

    def loss(self, module: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        hist, items = batch
        net = self.module
        targets = net.item_tokens[items] - net.offsets  # level-local paths [B, P]
        state, masked, p_mask = corrupt_targets(targets, self.eps)
        logits = module(hist, state)
        if net.constrained:
            logits = logits.masked_fill(~net.allowed_tokens(state), float("-inf"))
        return diffusion_loss(logits, targets, masked, p_mask)


# --- the backend --------------------------------------------------------------------------------

class MindRec(NeuralBackend):
    name: ClassVar[str] = "mindrec"
    decode_keys: ClassVar[tuple[str, ...]] = ("beam_width", "category_beam", "beam_covers_k", "order",
                                              "tokens_per_step", "diversity",
                                              "merge_determined", "decode_seed")
    Config = MindRecConfig
    # Runs saved before `repeat_bias` / `constrained_softmax` existed were trained without them.
    legacy_config: ClassVar[dict[str, Any]] = {"repeat_bias": False, "constrained_softmax": False}

    def __init__(self, cfg: MindRecConfig | None = None):
        super().__init__(cfg)
        self.index_: PathIndex | None = None
        self.paths_: torch.Tensor | None = None
        self.depth_ = 0
        self.max_history_ = self.cfg.max_history
        self.info_: dict[str, Any] = {}

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {"d_model": 32, "layers": 1, "heads": 2, "d_ff": 64, "sid_codebook": 4, "sid_levels": 2,
                "tree_source": "kmeans", "tree_branching": 2, "history_encoding": "item_sum_id"}

    def build(self, paths: torch.Tensor, sizes: tuple[int, ...], depth: int) -> None:
        """The network and path index for item paths [N, P] (the first `depth` are categories), on `device_`."""
        self.paths_, self.depth_ = paths.long().cpu(), depth
        self.index_ = build_path_index(self.paths_, sizes, depth)
        self.module_ = MindRecNet(self.cfg, self.paths_, sizes, self.max_history_).to(self.device_)

    def category_tree(self, data: SplitData) -> CategoryTree:
        """The category part: read from `tree_file`, else built from the tree_* keys (k-means item
        vectors are built only when the tree needs them)."""
        if self.cfg.tree_file:
            return read_tree_table(self.cfg.tree_file, data)
        tree_cfg = self.cfg.tree()
        if tree_cfg.source in ("auto", "kmeans"):
            source = resolve_source(data, tree_cfg, np.zeros((data.n_items, 0)))
            tree_cfg = replace(tree_cfg, source=source)
        vectors = (item_features(data, self.cfg.sid_features, self.cfg.sid_seed) if tree_cfg.source == "kmeans"
                   else None)
        return build_category_tree(data, tree_cfg, vectors)

    def item_tokens(self, data: SplitData) -> ItemTokens:
        return ItemTokens(ids=self.cfg.semantic_ids(data), tree=self.category_tree(data))

    def item_paths(self, data: SplitData) -> tuple[torch.Tensor, tuple[int, ...], int]:
        """Each item's target path: category path (coarse -> fine) then its unique semantic ID."""
        ids = self.cfg.semantic_ids(data)
        print(format_health(ids), file=sys.stderr)
        tree = self.category_tree(data)
        print(tree.format_stats(), file=sys.stderr)
        if ids.codes.shape[0] != data.n_items or tree.paths.shape[0] != data.n_items:
            raise GenrecError(f"semantic ids / category tree cover {ids.codes.shape[0]} / {tree.paths.shape[0]} "
                              f"items but the split has {data.n_items}")
        self.info_ = {"semantic_ids": ids.source, "sid_sizes": list(ids.sizes), "sid_health": ids.health,
                      "sid_digest": ids.digest, "tree_source": tree.source, "tree_sizes": list(tree.sizes),
                      "tree_stats": tree.stats(), "tree_digest": tree_digest(tree)}
        paths = torch.cat([tree.paths.long(), ids.codes.long()], dim=1)
        return paths, (*tree.sizes, *ids.sizes), tree.paths.shape[1]

    def fit(self, data: SplitData, cfg: TrainConfig, workdir: Path | None = None) -> FitReport:
        start = time.perf_counter()
        paths, sizes, depth = self.item_paths(data)
        self.max_history_ = self.cfg.max_history or data.config.max_history
        self.use_device(cfg.device)
        self.build(paths, sizes, depth)
        net: MindRecNet = self.fitted()  # type: ignore[assignment]
        trainable = DiffusionExamples(net, data, self.max_history_, self.cfg.eps)
        prep_seconds = time.perf_counter() - start
        report = self.train_module(trainable, data, cfg, workdir)
        report.extra.update({
            **self.info_,
            "history_encoding": self.cfg.history_encoding,
            **({"repeat_bias": [round(REPEAT_SCALE * v, 3) for v in net.repeat.tolist()]}
               if net.repeat is not None else {}),
            "cache_history": self.cfg.cache_history,
            "constrained_softmax": self.cfg.constrained_softmax,
            "paper_backbone": "LLaDA-8B-Instruct + LoRA, text prompt of the last 10 items",
            "path_sizes": list(sizes),
            "tree_depth": depth,
            "max_leaf_items": self.index_.width,
            "parameters": sum(p.numel() for p in net.parameters()),
            "train_examples": trainable.num_examples(),
            "max_history": self.max_history_,
            "prep_seconds": round(prep_seconds, 2),
            "decoding": {"beam_width": self.cfg.beam_width, "category_beam": self.cfg.category_beam,
                         "beam_covers_k": self.cfg.beam_covers_k,
                         "order": self.cfg.order, "tokens_per_step": self.cfg.tokens_per_step,
                         "diversity": self.cfg.diversity, "merge_determined": self.cfg.merge_determined},
        })
        return report

    def search_config(self, k: int) -> SearchConfig:
        beam = max(k, self.cfg.beam_width) if self.cfg.beam_covers_k else self.cfg.beam_width
        return SearchConfig(beam_width=beam, category_beam=min(self.cfg.category_beam, beam), order=self.cfg.order,
                            tokens_per_step=self.cfg.tokens_per_step,
                            diversity=self.cfg.diversity, merge_determined=self.cfg.merge_determined,
                            renormalise=self.cfg.constrained_softmax,
                            seed=self.cfg.decode_seed)

    def recommend(self, histories: torch.Tensor, k: int) -> Ranked:
        self.fitted()
        search = self.search_config(k)
        hist = self.history(histories, self.max_history_)
        chunk = max(1, DECODE_CELLS // (search.beam_width * max(1, self.index_.width)))
        items, scores = [], []
        with self.inference() as net:
            for lo in range(0, len(hist), chunk):
                part = hist[lo : lo + chunk]

                cache = net.encode_prefix(part) if net.cache_history else None

                def log_probs(users: torch.Tensor, state: torch.Tensor, read: torch.Tensor, part: torch.Tensor = part,
                              cache: PrefixCache | None = cache) -> torch.Tensor:
                    if cache is None:
                        return torch.log_softmax(net(part[users], state).float(), dim=2)
                    pairs, logits = net.decode(cache, users, state, read)
                    out = torch.zeros(*state.shape, logits.shape[1], device=logits.device)
                    out[pairs[:, 0], pairs[:, 1]] = torch.log_softmax(logits, dim=1)
                    return out

                out = diffusion_beam_search(log_probs, self.index_, len(part), k, search, self.device_)
                items.append(out.items)
                scores.append(out.scores)
        return Ranked(items=torch.cat(items), scores=torch.cat(scores))

    def state(self) -> dict[str, Any]:
        net = self.fitted()
        return {"net": net.state_dict(), "paths": self.paths_, "sizes": list(net.sizes), "depth": self.depth_,
                "max_history": self.max_history_}

    def info(self) -> dict[str, Any]:
        return self.info_

    def restore(self, state: dict[str, Any], info: dict[str, Any]) -> None:
        self.max_history_ = int(state["max_history"])
        self.build(state["paths"], tuple(state["sizes"]), int(state["depth"]))
        self.fitted().load_state_dict(state["net"])
        self.info_ = info
