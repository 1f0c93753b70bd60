"""The dense trie: every path is a real item, every item is a path, invalid input is refused."""

from __future__ import annotations

import pytest
import torch

from genrec_bench.decoding.trie import NO_NODE, build_trie
from genrec_bench.errors import GenrecError


def random_codes(n: int, sizes: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """n distinct random tuples with level-local codes below `sizes`."""
    g = torch.Generator().manual_seed(seed)
    space = torch.tensor(sizes).prod().item()
    flat = torch.randperm(int(space), generator=g)[:n]
    digits = []
    for size in reversed(sizes):
        digits.append(flat % size)
        flat = flat // size
    return torch.stack(digits[::-1], dim=1)


def enumerate_paths(trie) -> list[tuple[tuple[int, ...], int]]:
    """Slow reference walk over the table: (code tuple, item) for every leaf."""
    frontier = [((), 0)]
    for _ in range(trie.depth):
        nxt = []
        for prefix, node in frontier:
            for tok in range(trie.vocab):
                child = int(trie.children[node, tok])
                if child != NO_NODE:
                    nxt.append((prefix + (tok,), child))
        frontier = nxt
    return [(prefix, int(trie.leaf_item[node])) for prefix, node in frontier]


@pytest.mark.parametrize("sizes", [(4, 3, 5), (7,), (3, 2, 2, 6)])
def test_paths_are_exactly_the_items(sizes):
    n = min(40, int(torch.tensor(sizes).prod()))
    codes = random_codes(n, sizes)
    trie = build_trie(codes, sizes)
    assert trie.vocab == max(sizes) and trie.depth == len(sizes) and trie.n_items == n
    paths = enumerate_paths(trie)
    assert len(paths) == n
    for prefix, item in paths:
        assert tuple(codes[item].tolist()) == prefix
    assert sorted(item for _, item in paths) == list(range(n))
    assert torch.equal(trie.lookup(codes), torch.arange(n))


def test_level_vocab_respected_and_unknown_tuples_miss():
    sizes = (2, 5, 3)
    codes = random_codes(12, sizes, seed=1)
    trie = build_trie(codes, sizes)
    depth1 = trie.children[0]
    assert (depth1[2:] == NO_NODE).all()  # level 0 only has codes 0..1
    missing = torch.tensor([[1, 4, 2], [0, 0, 0], [9, 0, 0], [-1, 0, 0]])
    index = {tuple(r): i for i, r in enumerate(codes.tolist())}
    assert trie.lookup(missing).tolist() == [index.get(tuple(r), -1) for r in missing.tolist()]
    assert trie.lookup(missing)[2:].tolist() == [-1, -1]


def test_allowed_mask_matches_prefixes():
    sizes = (3, 4)
    codes = torch.tensor([[0, 1], [0, 3], [2, 0]])
    trie = build_trie(codes, sizes)
    assert trie.allowed(torch.tensor([0]))[0].tolist() == [True, False, True, False]
    node0 = trie.step(torch.tensor([0]), torch.tensor([0]))
    assert trie.allowed(node0)[0].tolist() == [False, True, False, True]
    assert not trie.allowed(torch.tensor([NO_NODE])).any()
    assert trie.step(torch.tensor([0]), torch.tensor([1])).item() == NO_NODE


def test_rejects_duplicates_and_out_of_range():
    with pytest.raises(GenrecError, match="unique"):
        build_trie(torch.tensor([[0, 1], [0, 1]]))
    with pytest.raises(GenrecError, match="outside"):
        build_trie(torch.tensor([[0, 5]]), (2, 3))
    with pytest.raises(GenrecError, match="levels"):
        build_trie(torch.tensor([[0, 1]]), (2,))


def test_walk_gives_the_node_of_every_prefix():
    codes = torch.tensor([[0, 1], [0, 2], [1, 0]])
    trie = build_trie(codes, (2, 3))
    nodes = trie.walk(torch.tensor([[0, 2], [1, 1]]))  # an item, then a path that leaves the trie
    assert nodes[:, 0].tolist() == [0, 0]
    assert int(trie.children[0, 0]) == nodes[0, 1] and int(trie.children[nodes[0, 1], 2]) == nodes[0, 2]
    assert nodes[1, 2] == NO_NODE and trie.items_of(nodes[:, -1]).tolist() == [1, -1]
    assert trie.walk(torch.zeros(2, 3, 0, dtype=torch.long)).shape == (2, 3, 1)  # empty prefixes: the root
