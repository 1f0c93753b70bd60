"""Trie-constrained beam search, batched over users and beams, as a pure function over tensors.

The model is hidden behind a step function `step(prefix_bwt, parent_bw) -> logp_bwv`: given the
level-local code prefixes of W beams for each of B users ([B, W, t], t = codes chosen so far) it
returns the log-probabilities of the next code ([B, W, V], V = the trie's vocabulary width).
`parent_bw` says which beam of the previous call each beam extends (None on the first call), so a
model can reorder a key/value cache instead of re-reading the prefix; a model without a cache
ignores it. Keeping the search ignorant of the model lets the same code decode TIGER, a toy model
in the tests, or any other autoregressive generator over a catalogue of code tuples.

Each step is one gather into the trie table, one mask and one top-k over W*V candidates, so the
cost is independent of Python-level beam bookkeeping. Scores accumulate in float32 whatever
dtype the model runs in. Because every surviving beam is a distinct path of a trie whose leaves
are distinct items, the final beams are distinct items; beams that run out of valid
continuations (a catalogue smaller than the beam) end as -1 with score -inf.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from genrec_bench.decoding.trie import NO_NODE, PrefixTrie

# (prefix [B, W, t] int64, parent [B, W] int64 | None) -> log-probs [B, W, V]
StepFn = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


@dataclass
class Decoded:
    items: torch.Tensor  # [B, k] int64, -1 = no item
    scores: torch.Tensor  # [B, k] float32 sequence log-probabilities, -inf where items == -1
    codes: torch.Tensor  # [B, k, L] int64 level-local codes of each returned item, -1 where no item


def constrained_beam_search(step: StepFn, trie: PrefixTrie, batch_size: int, beam: int, k: int) -> Decoded:
    """Top-k distinct catalogue items per user by beam search restricted to the trie's paths."""
    if beam < k:
        raise ValueError(f"beam width {beam} must be >= k={k}")
    device = trie.children.device
    b, v = batch_size, trie.vocab
    nodes_bw = torch.zeros(b, 1, dtype=torch.long, device=device)  # every user starts at the root
    scores_bw = torch.zeros(b, 1, dtype=torch.float32, device=device)
    prefix_bwt = torch.zeros(b, 1, 0, dtype=torch.long, device=device)
    parent_bw: torch.Tensor | None = None
    for _ in range(trie.depth):
        w = nodes_bw.shape[1]
        logp_bwv = step(prefix_bwt, parent_bw).float()
        child_bwv = trie.next_nodes(nodes_bw)
        cand_bwv = torch.where(child_bwv >= 0, scores_bw[:, :, None] + logp_bwv, float("-inf"))
        width = min(beam, w * v)
        scores_bw, flat_bw = cand_bwv.reshape(b, w * v).topk(width, dim=1)
        parent_bw = flat_bw // v
        token_bw = flat_bw % v
        nodes_bw = child_bwv.reshape(b, w * v).gather(1, flat_bw)
        nodes_bw = torch.where(torch.isfinite(scores_bw), nodes_bw, NO_NODE)
        prefix_bwt = prefix_bwt.gather(1, parent_bw[:, :, None].expand(-1, -1, prefix_bwt.shape[2]))
        prefix_bwt = torch.cat([prefix_bwt, token_bw[:, :, None]], dim=2)
    return _finish(trie.items_of(nodes_bw), scores_bw, prefix_bwt, k)


def exhaustive_search(step: StepFn, codes: torch.Tensor, batch_size: int, k: int) -> Decoded:
    """Reference: score every catalogue item's full code sequence and keep the top k.

    Exact but O(items) model calls per user; only for tests on tiny catalogues, where it proves
    the beam search (with a beam as wide as the catalogue) returns the true top-k.
    """
    n, depth = codes.shape
    codes_bnl = codes.long()[None].expand(batch_size, n, depth)
    total_bn = torch.zeros(batch_size, n, dtype=torch.float32, device=codes.device)
    same_bn = torch.arange(n, device=codes.device).expand(batch_size, n)  # every beam extends itself
    for level in range(depth):
        logp_bnv = step(codes_bnl[:, :, :level], same_bn if level else None).float()
        total_bn += logp_bnv.gather(2, codes_bnl[:, :, level : level + 1])[:, :, 0]
    order = torch.sort(total_bn, dim=1, descending=True, stable=True).indices
    return _finish(same_bn.gather(1, order), total_bn.gather(1, order),
                   codes_bnl.gather(1, order[:, :, None].expand(-1, -1, depth)), k)


def _finish(items_bw: torch.Tensor, scores_bw: torch.Tensor, codes_bwl: torch.Tensor, k: int) -> Decoded:
    """Keep the first k (already best-first) and pad to k with -1 / -inf when fewer exist."""
    b, w = items_bw.shape
    items, scores, codes = items_bw[:, :k], scores_bw[:, :k], codes_bwl[:, :k]
    missing = items < 0
    items = items.masked_fill(missing, -1)
    scores = scores.masked_fill(missing, float("-inf"))
    codes = codes.masked_fill(missing[:, :, None], -1)
    if w < k:
        pad = k - w
        items = torch.cat([items, items.new_full((b, pad), -1)], dim=1)
        scores = torch.cat([scores, scores.new_full((b, pad), float("-inf"))], dim=1)
        codes = torch.cat([codes, codes.new_full((b, pad, codes.shape[2]), -1)], dim=1)
    return Decoded(items=items.contiguous(), scores=scores.contiguous(), codes=codes.contiguous())
