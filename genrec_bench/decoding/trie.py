"""A prefix trie over item code tuples, stored as dense tensors.

Constrained decoding must never walk a Python tree per beam: with the trie as a table
`children[node, token] -> child node (or -1)`, one step of every beam of every user is a single
gather, and the allowed-token mask is `children[nodes] >= 0`. Building it is vectorised too (one
`torch.unique` per level), so a 12k-item catalogue builds in milliseconds.

Nodes are numbered level by level: the root is 0, then the depth-1 nodes, and so on, so the
leaves (one per item, at depth L) are the last `n_items` ids and `children` only needs rows for
the internal nodes. Codes are level-local (0 <= code < sizes[level]); the table is as wide as the
largest level vocabulary, and any code a level does not use simply has no child.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from genrec_bench.errors import GenrecError

NO_NODE = -1


@dataclass(frozen=True)
class PrefixTrie:
    children: torch.Tensor  # [num_internal, V] int64: child node id, NO_NODE where the prefix is invalid
    leaf_item: torch.Tensor  # [num_nodes] int64: item index at depth-L nodes, -1 elsewhere
    sizes: tuple[int, ...]  # per-level vocabulary sizes (level-local codes)

    @property
    def depth(self) -> int:
        return len(self.sizes)

    @property
    def vocab(self) -> int:
        return self.children.shape[1]

    @property
    def num_nodes(self) -> int:
        return self.leaf_item.shape[0]

    @property
    def n_items(self) -> int:
        return int((self.leaf_item >= 0).sum())

    def to(self, device: torch.device | str) -> PrefixTrie:
        return PrefixTrie(self.children.to(device), self.leaf_item.to(device), self.sizes)

    def step(self, nodes: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Child of each node for each token (same shape); NO_NODE for dead nodes or invalid tokens."""
        alive = nodes >= 0
        child = self.children[nodes.clamp(min=0), tokens.clamp(min=0, max=self.vocab - 1)]
        ok = alive & (tokens >= 0) & (tokens < self.vocab)
        return torch.where(ok, child, torch.full_like(child, NO_NODE))

    def next_nodes(self, nodes: torch.Tensor) -> torch.Tensor:
        """Children table rows [..., V] of internal `nodes` (NO_NODE rows for dead nodes)."""
        rows = self.children[nodes.clamp(min=0)]
        return torch.where((nodes >= 0)[..., None], rows, torch.full_like(rows, NO_NODE))

    def allowed(self, nodes: torch.Tensor) -> torch.Tensor:
        """Boolean mask [..., V] of the tokens that extend each prefix towards a real item."""
        return self.next_nodes(nodes) >= 0

    def items_of(self, nodes: torch.Tensor) -> torch.Tensor:
        """Item index of each leaf node, -1 for dead or non-leaf nodes."""
        items = self.leaf_item[nodes.clamp(min=0)]
        return torch.where(nodes >= 0, items, torch.full_like(items, -1))

    def walk(self, codes: torch.Tensor) -> torch.Tensor:
        """Nodes [..., t+1] reached by code prefixes [..., t]: the root, then one per code (-1 once off the trie)."""
        nodes = [torch.zeros(codes.shape[:-1], dtype=torch.long, device=codes.device)]
        for level in range(codes.shape[-1]):
            nodes.append(self.step(nodes[-1], codes[..., level]))
        return torch.stack(nodes, dim=-1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Item index of each code tuple [B, L] (-1 when the tuple is not in the catalogue)."""
        return self.items_of(self.walk(codes)[:, -1])


def build_trie(codes: torch.Tensor, sizes: Sequence[int] | None = None) -> PrefixTrie:
    """Trie over the rows of `codes` [N, L] (row i = item i); rows must be unique and within `sizes`."""
    if codes.dim() != 2 or codes.shape[0] == 0 or codes.shape[1] == 0:
        raise GenrecError(f"semantic-ID codes must be a non-empty [items, levels] tensor, got shape "
                          f"{tuple(codes.shape)}")
    codes = codes.long().cpu()
    n, depth = codes.shape
    if sizes is None:
        sizes = tuple(int(s) for s in (codes.max(dim=0).values + 1).tolist())
    sizes = tuple(int(s) for s in sizes)
    if len(sizes) != depth:
        raise GenrecError(f"got {len(sizes)} level sizes for codes with {depth} levels")
    bad = (codes < 0) | (codes >= torch.tensor(sizes)[None, :])
    if bad.any():
        row, level = (int(v) for v in bad.nonzero()[0])
        raise GenrecError(f"item {row} has code {int(codes[row, level])} at level {level}, outside "
                          f"[0, {sizes[level]})")
    vocab = max(sizes)
    parent = torch.zeros(n, dtype=torch.long)  # node id of each item's current prefix
    first_id = 1  # ids of the nodes at the next depth start here
    edges: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    for level in range(depth):
        # A depth-(level+1) node is a distinct (parent, code) pair; number them in sorted order.
        key = parent * vocab + codes[:, level]
        uniq, inverse = torch.unique(key, return_inverse=True)
        child = first_id + inverse
        edges.append((uniq // vocab, uniq % vocab, first_id + torch.arange(len(uniq))))
        parent, first_id = child, first_id + len(uniq)
    num_nodes, num_leaves = first_id, len(edges[-1][2])
    if num_leaves != n:
        raise GenrecError(f"semantic-ID codes must be unique per item: {n} items share only "
                          f"{num_leaves} distinct tuples")
    num_internal = num_nodes - num_leaves
    children = torch.full((num_internal, vocab), NO_NODE, dtype=torch.long)
    for src, tok, dst in edges:
        children[src, tok] = dst
    leaf_item = torch.full((num_nodes,), -1, dtype=torch.long)
    leaf_item[parent] = torch.arange(n)
    return PrefixTrie(children=children, leaf_item=leaf_item, sizes=sizes)
