"""Diffusion Beam Search: exactly constrained, batched decoding for masked-diffusion recommenders.

A target path is D category tokens (coarse -> fine) followed by L identifier tokens; position p
has its own vocabulary of `sizes[p]` tokens. Decoding starts from a fully masked path. One
*sub-step* commits one (position, token) pair per beam; the model is queried once per *step* of
`tokens_per_step` sub-steps (log-probabilities from the step's start are reused inside it, the
usual masked-diffusion speed trade-off). Category positions are filled first, coarse -> fine;
identifier positions in a chosen order (confidence = "key tokens first", left_to_right, random).

Why an item index rather than a per-beam trie walk: items are sorted by path, so every category
prefix is a contiguous range of sorted items. The category phase follows a dense
prefix -> child table (the tree, restricted to nodes that hold items); once the leaf category is
chosen, a beam's items are its leaf's range, and the tokens allowed at the first identifier step
come from per-leaf tables. After the first identifier commit each beam lists the sorted items still
consistent with its committed tokens, packed: one flat list grouped by beam, no padding (a child's
first list is a slice of a per-(leaf, identifier, token) index; later ones filter the parent's).
The tokens allowed at a masked position are those some listed item has there (one scatter). Every
completed path is therefore a real item, and a sub-step costs the number of listed items, which
shrinks fast as codes are committed. Scores are float32 sums of log-probabilities.

Renormalisation (`renormalise`, for models trained with a catalogue-constrained softmax): each
committed token's log-probability is taken relative to the tokens its position may still hold
(those of the items consistent with the beam), as `mindrec.consistent_tokens` does in training.
A forced token (a masked identifier position where every consistent item has the same token)
then costs nothing whenever it is committed, so it is committed at once: a beam's path is a
function of its consistent item set, a beam left with one item is complete, and complete beams
need no model call. With one fixed order the item scores sum to one.

Full lists (`merge_determined`, default on): in the identifier phase a candidate child is kept
only if it is the best candidate (first, on ties) holding one of its consistent items; a child
whose items are all held by better candidates is dropped. Each kept beam therefore holds an item
no better beam holds, and because the children of the kept beams hold every item the beams held,
the beams together always hold at least min(beam, N) items: the search ends with that many
distinct items (`test_every_beam_width_at_least_k_fills_the_list`). Off (the paper), beams are
keyed by their partial path only (duplicates reached through different orders keep the best
score); then, with a candidate pool (beam x P) holding every candidate of every sub-step, the
search is an exact dynamic programme: each item gets its best score over all commit orders
(forced tokens committed at once under `renormalise`), but several beams can end on one item
and lists can be shorter than the beam.

Category beam (`category_beam`, an approximate speed switch, off by default): fewer beams through
the category levels, so the identifier phase starts from fewer leaves: fewer model rows and items
to list, at the risk of missing items under the leaves dropped (and of lists shorter than k when
the kept leaves hold fewer than k items).

Diversity (the paper intended one; its reference code's never fired): with `diversity` > 0 a
candidate child loses `diversity` for every (position, code) it shares with each better-scoring
candidate of the same user, so the kept beams spread over codes. It only changes which children
survive; reported scores stay true log-probabilities.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

ORDERS = ("confidence", "left_to_right", "random")
NEG = float("-inf")

# (user index [M], partial paths [M, P] with -1 = masked, positions read [M, P] bool) -> log-probs
# [M, P, Vmax] float32, -inf where a token is outside position p's vocabulary. Only the read
# positions are used: a model may leave the others at any value.
LogProbFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class PathIndex:
    """Dense tensors describing the catalogue of target paths, built once per model."""

    order: torch.Tensor  # [N] item index of the i-th item in path-sorted order
    sorted_paths: torch.Tensor  # [N, P] paths in sorted order
    sizes: tuple[int, ...]  # vocabulary size of each position
    depth: int  # number of leading category positions D
    child_allowed: tuple[torch.Tensor, ...]  # [d]: [n_prefix(d-1), sizes[d]] bool, tokens with items below
    child_next: tuple[torch.Tensor, ...]  # [d]: [n_prefix(d-1), sizes[d]] int64 prefix id after commit, -1 none
    leaf_lo: torch.Tensor  # [n_leaf] first sorted index of each leaf prefix (the root when D = 0)
    leaf_size: torch.Tensor  # [n_leaf] number of items under it
    leaf_count: torch.Tensor  # [n_leaf, L, Vmax] int64: items under each leaf with token v at identifier l
    leaf_forced: torch.Tensor  # [n_leaf, L] the token every item under the leaf has at identifier l, -1 none
    id_tokens: torch.Tensor  # [N, L] identifier tokens of sorted items, offset by l * Vmax (scatter targets)
    by_token: torch.Tensor  # [L, N] sorted indices grouped by (leaf, token at identifier l), ascending inside
    by_start: torch.Tensor  # [n_leaf, L, Vmax] where each (leaf, l, token) group starts in by_token[l]
    width: int  # largest leaf size W

    @property
    def n_positions(self) -> int:
        return len(self.sizes)

    @property
    def vmax(self) -> int:
        return max(self.sizes)


def build_path_index(paths: torch.Tensor, sizes: tuple[int, ...], depth: int) -> PathIndex:
    """Sort items by path and derive the prefix tables; paths must be unique rows."""
    paths = paths.long().cpu()
    n, p_len = paths.shape
    if len(sizes) != p_len or not 0 <= depth <= p_len:
        raise ValueError(f"sizes {sizes} / depth {depth} do not match paths of width {p_len}")
    if n and ((paths < 0).any() or (paths >= torch.tensor(sizes)).any()):
        raise ValueError("path tokens must lie in [0, sizes[p])")
    order = torch.arange(n)
    for p in reversed(range(p_len)):  # stable sorts from last key to first = lexicographic order
        order = order[torch.sort(paths[order, p], stable=True).indices]
    sorted_paths = paths[order]
    if n > 1 and (sorted_paths[1:] == sorted_paths[:-1]).all(dim=1).any():
        raise ValueError("target paths must be unique per item")
    prefix = torch.zeros(n, dtype=torch.long)  # prefix id at the current depth (root = 0)
    n_prefix = 1
    allowed, nxt = [], []
    for d in range(depth):
        tok = sorted_paths[:, d]
        new = torch.ones(n, dtype=torch.bool)
        if n > 1:
            new[1:] = (prefix[1:] != prefix[:-1]) | (tok[1:] != tok[:-1])
        child = torch.cumsum(new.long(), 0) - 1
        table = torch.full((n_prefix, sizes[d]), -1, dtype=torch.long)
        table[prefix, tok] = child
        allowed.append(table >= 0)
        nxt.append(table)
        prefix, n_prefix = child, int(new.sum())
    starts = torch.ones(n, dtype=torch.bool)
    if n > 1:
        starts[1:] = prefix[1:] != prefix[:-1]
    leaf_lo = torch.nonzero(starts).flatten()
    leaf_size = torch.diff(torch.cat([leaf_lo, torch.tensor([n])]))
    vmax, n_ids = max(sizes), p_len - depth
    id_tokens = sorted_paths[:, depth:] + torch.arange(n_ids) * vmax
    cell = (prefix[:, None] * (n_ids * vmax) + id_tokens).flatten()  # (leaf, identifier, token) of each item
    leaf_count = torch.zeros(n_prefix * n_ids * vmax, dtype=torch.long).index_add_(0, cell, torch.ones_like(cell))
    leaf_count = leaf_count.view(n_prefix, n_ids, vmax)
    top = leaf_count.max(dim=2)
    forced = torch.where(top.values == leaf_size[:, None], top.indices, -1)
    # Items of one leaf holding token v at identifier l, listed contiguously: a child's item set after
    # its first identifier commit is a slice, never a scan of the leaf.
    group = prefix[None, :] * vmax + (id_tokens.T - torch.arange(n_ids)[:, None] * vmax)  # [L, N]
    by_token = torch.sort(group, dim=1, stable=True).indices
    counts = leaf_count.transpose(0, 1).reshape(n_ids, -1)  # [L, n_leaf * Vmax] in group order
    by_start = (torch.cumsum(counts, dim=1) - counts).view(n_ids, n_prefix, vmax).transpose(0, 1).contiguous()
    return PathIndex(order=order, sorted_paths=sorted_paths, sizes=tuple(sizes), depth=depth,
                     child_allowed=tuple(allowed), child_next=tuple(nxt), leaf_lo=leaf_lo,
                     leaf_size=leaf_size, leaf_count=leaf_count, leaf_forced=forced,
                     id_tokens=id_tokens, by_token=by_token, by_start=by_start,
                     width=int(leaf_size.max()) if n else 0)


@dataclass(frozen=True)
class SearchConfig:
    beam_width: int = 10
    category_beam: int = 0  # beams kept through the category levels (0 = beam_width); fewer: faster, approximate
    order: str = "confidence"
    tokens_per_step: int = 1
    diversity: float = 0.0
    merge_determined: bool = True  # keep a child only where it is the best candidate holding one of its items
    renormalise: bool = False  # log-probs relative to the tokens each position may still hold; forced tokens free
    seed: int = 0


@dataclass
class SearchResult:
    items: torch.Tensor  # [B, k] item indices, -1 = no valid item
    scores: torch.Tensor  # [B, k] float32 cumulative log-probabilities, -inf for padding
    model_calls: int


def _take(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x[b, idx[b, t], ...] for x [B, K, ...] and idx [B, T]."""
    shape = idx.shape + x.shape[2:]
    return torch.gather(x, 1, idx.view(idx.shape + (1,) * (x.dim() - 2)).expand(shape))


class Items(NamedTuple):
    """The consistent items of every beam, packed: grouped by beam in [B*K] order (`count` per beam)."""

    item: torch.Tensor  # [E] sorted item indices
    cells: torch.Tensor  # [E, L] their identifier tokens, token v at identifier l as l * Vmax + v


def _beam_state(index: PathIndex, b: int, renormalise: bool, device: torch.device) -> dict[str, torch.Tensor]:
    """One live beam per user with an empty (fully masked) path; beams stay sorted best first."""
    st = {
        "tokens": torch.full((b, 1, index.n_positions), -1, dtype=torch.long, device=device),
        "score": torch.zeros(b, 1, device=device),
        "node": torch.zeros(b, 1, dtype=torch.long, device=device),  # prefix id; the leaf id once reached
        "count": torch.zeros(b, 1, dtype=torch.long, device=device),  # consistent items, from the leaf on
        "origin": torch.zeros(b, 1, dtype=torch.long, device=device),  # beam at the step's start
    }
    if index.depth == 0:  # no tree: the root is the only leaf
        st = _enter_leaf(index, st, renormalise)
    return st


class Moves(NamedTuple):
    """What each beam may commit at a sub-step."""

    valid: torch.Tensor  # [B, K, P, Vmax] bool: tokens a position may hold given the beam's commitments
    committable: torch.Tensor  # [B, K, P] bool: masked positions the order lets the beam fill now


def _starts(count: torch.Tensor) -> torch.Tensor:
    """Where each segment of lengths `count` (flattened) starts in the packed list."""
    count = count.flatten()
    return torch.cumsum(count, 0) - count


def _expand(count: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For segments of lengths `count` (flattened, e.g. the items of each flat beam b * K + k):
    the segment of every packed element, and its offset inside the segment."""
    count = count.flatten()
    owner = torch.repeat_interleave(torch.arange(len(count), device=count.device), count)
    return owner, torch.arange(len(owner), device=count.device) - _starts(count)[owner]


def _allowed(index: PathIndex, st: dict[str, torch.Tensor], sub: int, order: str, gen: torch.Generator,
             beam: torch.Tensor | None, items: Items | None) -> Moves:
    """The moves of every beam at sub-step `sub` (in the category phase only the next level's row is filled);
    after the leaf step, from the packed consistent `items` of each `beam`."""
    tokens = st["tokens"]
    b, k, p_len = tokens.shape
    vmax, device = index.vmax, tokens.device
    if sub < index.depth:  # category phase: the next level, children of the committed parent only
        valid = torch.zeros(b, k, p_len, vmax, dtype=torch.bool, device=device)
        valid[:, :, sub, : index.sizes[sub]] = index.child_allowed[sub].to(device)[st["node"]]
        committable = torch.zeros(b, k, p_len, dtype=torch.bool, device=device)
        committable[:, :, sub] = True
        return Moves(valid, committable)
    n_ids = p_len - index.depth
    if items is None:  # no identifier choice made inside the leaf yet (forced ones keep its items): tables
        held = index.leaf_count.to(device)[st["node"]] > 0
    else:  # tokens of the still-consistent items: one scatter over the packed sets
        held = torch.zeros(b * k * n_ids * vmax, dtype=torch.bool, device=device)
        held[beam[:, None] * (n_ids * vmax) + items.cells] = True
        held = held.view(b, k, n_ids, vmax)
    valid = torch.cat([held.new_zeros(b, k, index.depth, vmax), held], dim=2)  # categories: nothing to commit
    masked = tokens[:, :, index.depth :] < 0  # [B, K, L]
    if order == "left_to_right":
        first = torch.argmax(masked.long(), dim=2)
        masked = F.one_hot(first, n_ids).bool() & masked
    elif order == "random":
        noise = torch.rand(masked.shape, generator=gen).to(device).masked_fill(~masked, -1.0)
        masked = F.one_hot(noise.argmax(dim=2), n_ids).bool() & masked
    committable = torch.cat([masked.new_zeros(b, k, index.depth), masked], dim=2)
    return Moves(valid, committable)


def _query(log_probs: LogProbFn, tokens: torch.Tensor, need: torch.Tensor, read: torch.Tensor,
           vmax: int) -> torch.Tensor:
    """Log-probs [B, K, P, Vmax] of the beams in `need` at the positions `read` [P] may commit; the other
    rows (dead or complete beams, which commit nothing) are 0 and never reach the model."""
    b, k, p_len = tokens.shape
    out = torch.zeros(b * k, p_len, vmax, device=tokens.device)
    rows = need.flatten().nonzero().squeeze(1)
    if len(rows):
        state = tokens.reshape(b * k, p_len)[rows]
        out[rows] = log_probs(rows // k, state, (state < 0) & read).float()
    return out.view(b, k, p_len, vmax)


def _owners(index: PathIndex, beam: torch.Tensor, items: Items, cand_bkpv: torch.Tensor, stay_bk: torch.Tensor,
            disjoint: bool) -> torch.Tensor:
    """[B, K*P*Vmax + K] bool: candidates that are the best (then the first) candidate holding some item.

    Candidate ids are (parent, position, token) moves in `cand_bkpv`'s layout, then one "stay" per
    parent (a complete beam carried over). Beam k's consistent item r is held by its child through
    every committable position p (the one with r's token there), or by its stay. An item may sit in
    several beams, so the best holder is found over all beams of the user (per distinct (user, item)
    pair), unless the beams' item sets are known to be `disjoint` (distinct leaves, before any
    identifier choice).
    """
    b, k, p_len, vmax = cand_bkpv.shape
    depth, device = index.depth, cand_bkpv.device
    n_ids = p_len - depth
    flat = cand_bkpv[:, :, depth:].reshape(b * k, n_ids * vmax)
    best, arg = flat[beam[:, None], items.cells].max(dim=1)  # [E]; ties: the first position
    stay = stay_bk.flatten()[beam]
    by_stay = stay > best  # a complete beam's stay; it holds the beam's one item through no position
    best = torch.where(by_stay, stay, best)
    parent, user = beam % k, beam // k
    cell = torch.gather(items.cells, 1, arg[:, None]).squeeze(1)
    width = k * p_len * vmax + k
    cid = torch.where(by_stay, k * p_len * vmax + parent, (parent * p_len + depth) * vmax + cell)
    win = best > NEG
    if not disjoint:
        _, pair = torch.unique(user * len(index.order) + items.item, return_inverse=True)
        n_pairs = int(pair.max()) + 1 if len(pair) else 0
        top = torch.full((n_pairs,), NEG, device=device).scatter_reduce_(0, pair, best, "amax")
        win &= best == top[pair]
        cid = torch.where(win, cid, width)
        first = torch.full((n_pairs,), width, dtype=torch.long, device=device).scatter_reduce_(0, pair, cid, "amin")
        win &= cid == first[pair]
    owners = torch.zeros(b * (width + 1), dtype=torch.bool, device=device)
    owners[user * (width + 1) + torch.where(win, cid, width)] = True
    return owners.view(b, width + 1)[:, :width]


def _dedupe(keys: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    """[B, T] bool: True where a candidate repeats the key of an earlier (better) one."""
    same = (keys[:, :, None, :] == keys[:, None, :, :]).all(dim=3) & ok[:, None, :]
    earlier = torch.ones(keys.shape[1], keys.shape[1], dtype=torch.bool, device=keys.device).tril(-1)
    return (same & earlier).any(dim=2)


def _shared_codes(tokens: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    """[B, T]: (position, code) pairs each candidate shares with the better candidates before it.

    The diversity penalty: a child that repeats codes already held by higher-ranked children at
    the same positions loses `diversity` per repeat, so siblings differing in one token are spread.
    """
    same = ((tokens[:, :, None, :] == tokens[:, None, :, :]) & (tokens[:, None, :, :] >= 0)).sum(dim=3)
    earlier = torch.ones(tokens.shape[1], tokens.shape[1], dtype=torch.bool, device=tokens.device).tril(-1)
    return (same * (earlier & ok[:, None, :])).sum(dim=2).float()


def diffusion_beam_search(log_probs: LogProbFn, index: PathIndex, n_users: int, k: int,
                          cfg: SearchConfig, device: torch.device | None = None) -> SearchResult:
    """Top-k items per user by Diffusion Beam Search; see the module docstring for the rules."""
    if cfg.order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {cfg.order!r}")
    device = device or torch.device("cpu")
    gen = torch.Generator().manual_seed(cfg.seed)
    st = _beam_state(index, n_users, cfg.renormalise, device)
    items: Items | None = None  # listed from the first identifier commit on; before, a beam's items are its leaf
    p_len, vmax, beam = index.n_positions, index.vmax, cfg.beam_width
    calls = 0
    logp = torch.empty(0)
    for sub in range(p_len):
        b, kc = st["score"].shape
        live = st["score"] > NEG
        done = (st["tokens"] >= 0).all(dim=2)  # complete beams carry over unchanged
        if not (live & ~done).any():
            break
        if sub % cfg.tokens_per_step == 0:  # one model call per step, reused by its sub-steps
            # Read: masked positions this step may commit (category levels in order, then any identifier).
            read = torch.arange(p_len, device=device)
            read = (read >= index.depth) | (read < sub + cfg.tokens_per_step)
            logp = _query(log_probs, st["tokens"], live & ~done, read, vmax)
            st["origin"] = torch.arange(kc, device=device).expand(b, kc)
            calls += 1
        owners = cfg.merge_determined and sub >= index.depth
        beam_of = _expand(st["count"])[0] if items is not None else None
        moves = _allowed(index, st, sub, cfg.order, gen, beam_of, items)
        allowed = moves.valid & moves.committable[..., None] & live[:, :, None, None]
        step_logp = _take(logp, st["origin"])
        if cfg.renormalise:
            norm = torch.logsumexp(step_logp.masked_fill(~moves.valid, NEG), dim=3, keepdim=True)
            step_logp = step_logp - norm.masked_fill(~moves.valid.any(dim=3, keepdim=True), 0.0)
        cand_bkpv = st["score"][:, :, None, None] + step_logp.masked_fill(~allowed, NEG)
        stay_bk = st["score"].masked_fill(~done, NEG)
        cand = torch.cat([cand_bkpv.view(b, -1), stay_bk], dim=1)
        if owners:  # each owner holds an item no better candidate holds: owners are distinct item sets
            if items is None:  # the leaf step: one beam per leaf, no identifier chosen yet
                beam_of, leaf_items = _leaf_items(index, st["node"], live)
                held = _owners(index, beam_of, leaf_items, cand_bkpv, stay_bk, disjoint=True)
            else:
                held = _owners(index, beam_of, items, cand_bkpv, stay_bk, disjoint=False)
            cand = cand.masked_fill(~held, NEG)
        # Pool: without owners a child state may repeat; the best beam*P leave room for the repeats.
        width = cfg.category_beam if sub < index.depth and cfg.category_beam else beam
        pool = width if owners and not cfg.diversity else width * p_len
        score, idx = torch.topk(cand, min(cand.shape[1], pool), dim=1)  # best first
        stay = idx >= kc * p_len * vmax
        parent = torch.where(stay, idx - kc * p_len * vmax, idx // (p_len * vmax))
        pos = torch.where(stay, 0, idx % (p_len * vmax) // vmax)  # a stay re-commits position 0: no change
        tok = torch.where(stay, torch.gather(st["tokens"][:, :, 0], 1, parent), idx % vmax)
        children, child_items = _advance(index, st, items, sub, parent, pos, tok, stay, score, cfg.renormalise)
        ok = score > NEG
        if not owners:
            # Inside a step, children of different step-start beams see different log-probs: not merged.
            last_of_step = (sub + 1) % cfg.tokens_per_step == 0 or sub + 1 == p_len
            keys = children["tokens"] if last_of_step else torch.cat(
                [children["tokens"], children["origin"][:, :, None]], dim=2)
            ok &= ~_dedupe(keys, ok)
        key = score - cfg.diversity * _shared_codes(children["tokens"], ok) if cfg.diversity else score
        key, keep = torch.topk(key.masked_fill(~ok, NEG), min(width, score.shape[1]), dim=1)
        if child_items is not None:
            items = _select(child_items, children["count"], keep)
        st = {name: _take(x, keep) for name, x in children.items()}
        st["score"] = st["score"].masked_fill(key == NEG, NEG)
        if sub + 1 == index.depth:
            st = _enter_leaf(index, st, cfg.renormalise)
    return _finish(index, st, items, k, calls)


def _advance(index: PathIndex, st: dict[str, torch.Tensor], items: Items | None, sub: int, parent: torch.Tensor,
             pos: torch.Tensor, tok: torch.Tensor, stay: torch.Tensor, score: torch.Tensor,
             close: bool) -> tuple[dict[str, torch.Tensor], Items | None]:
    """Children [B, T] inherit their parent's state plus one committed (position, token), or, where
    `stay`, nothing (a complete parent carried over); in the identifier phase, also their packed items.

    With `close`, in the identifier phase every token the commitment forces is committed too.
    """
    tokens = _take(st["tokens"], parent).clone()
    tokens.scatter_(2, pos[:, :, None], tok[:, :, None])
    new = {"tokens": tokens, "score": score, "origin": _take(st["origin"], parent), "node": _take(st["node"], parent)}
    device = tokens.device
    if sub >= index.depth:
        owner, child_items = (_leaf_child_items(index, new["node"], pos, tok, stay, score) if items is None
                              else _child_items(index, st["count"], items, parent, pos, tok, stay, score))
        new["count"] = torch.bincount(owner, minlength=score.numel()).view(score.shape)
        if close:
            new["tokens"] = _close(index, tokens, owner, child_items)
        return new, child_items
    nxt = index.child_next[sub].to(device)[new["node"], tok.clamp_max(index.sizes[sub] - 1)]
    new["node"] = torch.where(score > NEG, nxt, 0).clamp_min(0)
    new["count"] = _take(st["count"], parent)  # no items yet: a leaf's are counted once its beams are kept
    return new, None


def _enter_leaf(index: PathIndex, st: dict[str, torch.Tensor], close: bool) -> dict[str, torch.Tensor]:
    """Kept beams that just reached their leaf, and (with `close`) the leaf's forced identifier tokens
    committed.

    A leaf's items are its contiguous range of sorted items, so they are not listed: the leaf step
    reads them as packed (beam, item) pairs (`_leaf_items`) and each child's as a (leaf, token)
    slice (`_leaf_child_items`), never as a [B, K, W] block padded to the largest leaf.
    """
    device = st["node"].device
    st["count"] = torch.where(st["score"] > NEG, index.leaf_size.to(device)[st["node"]], 0)
    if close:
        st["tokens"] = _commit_forced(index, st["tokens"], index.leaf_forced.to(device)[st["node"]])
    return st


def _leaf_items(index: PathIndex, node: torch.Tensor, live: torch.Tensor) -> tuple[torch.Tensor, Items]:
    """Packed items of the live beams' leaves, and the flat beam of each."""
    device = node.device
    beam, offset = _expand(torch.where(live, index.leaf_size.to(device)[node], 0))
    item = index.leaf_lo.to(device)[node].flatten()[beam] + offset
    return beam, Items(item, index.id_tokens.to(device)[item])


def _close(index: PathIndex, tokens: torch.Tensor, owner: torch.Tensor, items: Items) -> torch.Tensor:
    """Commit every masked identifier position at which all of a beam's consistent items (packed, the
    flat beam of each in `owner`) hold the same token."""
    b, t, p_len = tokens.shape
    n_ids = p_len - index.depth
    idx = owner[:, None].expand(-1, n_ids)
    lo = torch.full((b * t, n_ids), torch.iinfo(torch.long).max, dtype=torch.long, device=tokens.device)
    lo = lo.scatter_reduce_(0, idx, items.cells, "amin")
    hi = torch.full((b * t, n_ids), -1, dtype=torch.long, device=tokens.device).scatter_reduce_(
        0, idx, items.cells, "amax")
    return _commit_forced(index, tokens, torch.where(lo == hi, lo % index.vmax, -1).view(b, t, n_ids))


def _commit_forced(index: PathIndex, tokens: torch.Tensor, forced: torch.Tensor) -> torch.Tensor:
    """`tokens` [B, T, P] with each masked identifier position set to its `forced` [B, T, L] token (-1: none)."""
    ident = tokens[:, :, index.depth :]
    return torch.cat([tokens[:, :, : index.depth], torch.where(ident < 0, forced, ident)], dim=2)


def _segments(count: torch.Tensor, sel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """New beams that each take the packed items of flat beam `sel[m]`: (new beam, source index) per item."""
    owner, offset = _expand(count.flatten()[sel])
    return owner, _starts(count)[sel][owner] + offset


def _select(items: Items, count: torch.Tensor, keep: torch.Tensor) -> Items:
    """The packed items of beams `keep` [B, T] (indices into `count`'s [B, K] beams), in keep order."""
    k = count.shape[1]
    if keep.shape[1] == k and torch.equal(keep, torch.arange(k, device=keep.device).expand_as(keep)):
        return items  # every beam kept in place (the usual case: candidates arrive sorted)
    _, src = _segments(count, (torch.arange(len(keep), device=keep.device)[:, None] * k + keep).flatten())
    return Items(items.item[src], items.cells[src])


def _child_items(index: PathIndex, count: torch.Tensor, items: Items, parent: torch.Tensor, pos: torch.Tensor,
                 tok: torch.Tensor, stay: torch.Tensor, score: torch.Tensor) -> tuple[torch.Tensor, Items]:
    """Each child's packed items: its parent's that also have `tok` at `pos` (all of them where it stays;
    none for dead children), and the flat child of each."""
    k = count.shape[1]
    sel = (torch.arange(len(parent), device=parent.device)[:, None] * k + parent).flatten()
    owner, src = _segments(count, sel)
    ident = (pos - index.depth).clamp_min(0).flatten()[owner]
    code = items.cells[src, ident] - ident * index.vmax  # one column per pair: rows are gathered once kept
    keep = (stay.flatten()[owner] | (code == tok.flatten()[owner])) & (score.flatten()[owner] > NEG)
    src = src[keep]
    return owner[keep], Items(items.item[src], items.cells[src])


def _leaf_child_items(index: PathIndex, leaf: torch.Tensor, pos: torch.Tensor, tok: torch.Tensor,
                      stay: torch.Tensor, score: torch.Tensor) -> tuple[torch.Tensor, Items]:
    """At the leaf step, each child's packed items: those of its leaf with `tok` at `pos` (a slice of
    `by_token`), or its whole (one-item) leaf where it stays; none for dead children."""
    device = leaf.device
    ident = (pos - index.depth).clamp_min(0)
    count = torch.where(stay, index.leaf_size.to(device)[leaf], index.leaf_count.to(device)[leaf, ident, tok])
    owner, offset = _expand(torch.where(score > NEG, count, 0))
    n = len(index.order)
    start = index.by_start.to(device)[leaf, ident, tok].flatten()[owner] + offset
    sliced = index.by_token.to(device)[ident.flatten()[owner], start.clamp_max(n - 1)]
    item = torch.where(stay.flatten()[owner], index.leaf_lo.to(device)[leaf].flatten()[owner] + offset, sliced)
    return owner, Items(item, index.id_tokens.to(device)[item])


def _finish(index: PathIndex, st: dict[str, torch.Tensor], items: Items | None, k: int,
            calls: int) -> SearchResult:
    """Completed beams -> item indices ranked by true cumulative log-probability, -1 padded to k."""
    score, count = st["score"], st["count"]
    b = score.shape[0]
    device = score.device
    if items is None:  # ended at the leaf step: a complete beam is a one-item leaf
        rows = torch.where(count == 1, index.leaf_lo.to(device)[st["node"]], -1)
    else:
        start = _starts(count).view(count.shape)
        rows = torch.where(count > 0, items.item[start.clamp_max(max(len(items.item) - 1, 0))]
                           if len(items.item) else -1, -1)
    item = torch.where((score > NEG) & (rows >= 0), index.order.to(device)[rows.clamp_min(0)], -1)
    score, rank = torch.sort(score, dim=1, descending=True, stable=True)
    item = torch.gather(item, 1, rank)
    if item.shape[1] < k:
        pad = k - item.shape[1]
        item = torch.cat([item, torch.full((b, pad), -1, dtype=torch.long, device=device)], dim=1)
        score = torch.cat([score, torch.full((b, pad), NEG, device=device)], dim=1)
    return SearchResult(items=item[:, :k], scores=score[:, :k], model_calls=calls)
