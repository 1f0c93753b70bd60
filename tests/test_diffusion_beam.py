"""Diffusion Beam Search: validity, tree constraints, exactness against exhaustive search, knobs."""

from __future__ import annotations

import itertools

import pytest
import torch

from genrec_bench.decoding.diffusion_beam import SearchConfig, build_path_index, diffusion_beam_search

NEG = float("-inf")


def toy_catalogue(depth: int = 2) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Items under a 2-level tree (level-1 node j has parent j // 2) with 2 identifier codes each."""
    g = torch.Generator().manual_seed(1)
    rows = set()
    while len(rows) < 14:
        leaf = int(torch.randint(0, 4, (1,), generator=g))
        rows.add((leaf // 2, leaf, *torch.randint(0, 3, (2,), generator=g).tolist()))
    paths = torch.tensor(sorted(rows, key=lambda r: hash(r) % 97))  # deliberately unsorted
    sizes = (2, 4, 3, 3)
    if depth == 0:
        return torch.unique(paths[:, 2:], dim=0).flip(0), sizes[2:]
    return paths, sizes


class ToyModel:
    """log p(v at p | user, partial path): user bias plus pairwise effects of committed tokens."""

    def __init__(self, sizes: tuple[int, ...], n_users: int = 3, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.sizes = sizes
        self.vmax = max(sizes)
        p = len(sizes)
        self.user = torch.randn(n_users, p, self.vmax, generator=g) * 2
        self.pair = torch.randn(p, self.vmax, p, self.vmax, generator=g)
        self.valid = torch.arange(self.vmax)[None, :] < torch.tensor(sizes)[:, None]  # [P, V]
        self.calls = 0

    def __call__(self, users: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        onehot = torch.nn.functional.one_hot(tokens.clamp_min(0), self.vmax).float()
        onehot = onehot * (tokens >= 0)[..., None]
        logits = self.user[users] + torch.einsum("mqw,qwpv->mpv", onehot, self.pair)
        return torch.log_softmax(logits.masked_fill(~self.valid, NEG), dim=2)


def exhaustive(model: ToyModel, paths: torch.Tensor, depth: int, user: int, order: str, per_step: int):
    """Best score of every item over all admissible commit orders, chunked `per_step` per model call."""
    p_len = paths.shape[1]
    ids = list(range(depth, p_len))
    perms = [tuple(ids)] if order == "left_to_right" else list(itertools.permutations(ids))
    best = torch.full((len(paths),), NEG)
    for n, path in enumerate(paths):
        for perm in perms:
            seq = list(range(depth)) + list(perm)
            state = torch.full((1, p_len), -1)
            total = 0.0
            for start in range(0, p_len, per_step):
                logp = model(torch.tensor([user]), state)[0]
                for pos in seq[start : start + per_step]:
                    total += float(logp[pos, path[pos]])
                    state[0, pos] = path[pos]
            best[n] = max(best[n], total)
    return best


@pytest.mark.parametrize("depth", [2, 0])
@pytest.mark.parametrize("order,per_step", [("confidence", 1), ("left_to_right", 1), ("confidence", 2)])
def test_wide_beam_equals_exhaustive_search(depth: int, order: str, per_step: int) -> None:
    paths, sizes = toy_catalogue(depth)
    model = ToyModel(sizes)
    index = build_path_index(paths, sizes, depth)
    # merging partial paths that pin down the same item is a pruning heuristic: off for exactness
    cfg = SearchConfig(beam_width=200, order=order, tokens_per_step=per_step, merge_determined=False)
    res = diffusion_beam_search(model, index, n_users=3, k=len(paths) + 3, cfg=cfg)
    assert res.model_calls == -(-len(sizes) // per_step)
    for u in range(3):
        ref = exhaustive(model, paths, depth, u, order, per_step)
        want = torch.sort(ref, descending=True, stable=True)
        got = res.items[u]
        assert torch.equal(got[: len(paths)], want.indices)
        torch.testing.assert_close(res.scores[u, : len(paths)], want.values)
        assert (got[len(paths):] == -1).all() and torch.isinf(res.scores[u, len(paths):]).all()


@pytest.mark.parametrize("order", ["confidence", "left_to_right", "random"])
def test_narrow_beam_returns_valid_unique_items_following_the_tree(order: str) -> None:
    paths, sizes = toy_catalogue()
    model = ToyModel(sizes, seed=3)
    index = build_path_index(paths, sizes, 2)
    for beam in (1, 3, 5):
        res = diffusion_beam_search(model, index, 3, k=6, cfg=SearchConfig(beam_width=beam, order=order))
        assert res.items.shape == (3, 6)
        for row in res.items:
            real = row[row >= 0]
            # partial paths reached in different orders merge, so a beam can end with fewer items
            assert 1 <= len(real) <= min(beam, 6) and len(set(real.tolist())) == len(real)
            assert (row[len(real):] == -1).all()
            assert (paths[real, 1] // 2 == paths[real, 0]).all()  # child belongs to its parent
        assert (res.scores[:, 1:] <= res.scores[:, :-1]).all()
        assert torch.isfinite(res.scores[res.items >= 0]).all() and torch.isinf(res.scores[res.items < 0]).all()


def test_merging_determined_paths_frees_beams_for_more_items() -> None:
    paths, sizes = toy_catalogue()
    index = build_path_index(paths, sizes, 2)
    gains = []
    for seed in range(4):
        model = ToyModel(sizes, seed=seed)
        for beam in (5, 8):
            plain = diffusion_beam_search(model, index, 3, 8, SearchConfig(beam_width=beam, merge_determined=False))
            merged = diffusion_beam_search(model, index, 3, 8, SearchConfig(beam_width=beam))
            assert (merged.items >= 0).sum() >= (plain.items >= 0).sum()
            gains.append(int((merged.items >= 0).sum() - (plain.items >= 0).sum()))
            for row in merged.items:
                real = row[row >= 0]
                assert len(set(real.tolist())) == len(real)
    assert max(gains) > 0


def test_category_phase_only_offers_children_of_the_chosen_parent() -> None:
    paths, sizes = toy_catalogue()
    index = build_path_index(paths, sizes, 2)
    parent_of_child = torch.full((4,), -1)
    parent_of_child[paths[:, 1]] = paths[:, 0]
    for parent in range(2):
        allowed = index.child_allowed[1][parent]
        assert (parent_of_child[allowed] == parent).all()
        assert allowed.sum() == (paths[paths[:, 0] == parent, 1].unique().numel())


def test_model_prefers_a_nonexistent_item_but_search_only_returns_real_ones() -> None:
    paths = torch.tensor([[0, 0], [1, 1]])  # (0, 1) and (1, 0) do not exist
    sizes = (2, 2)

    def fn(users: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        logp = torch.log(torch.tensor([[0.9, 0.1], [0.1, 0.9]]))  # best path (0, 1) is not an item
        return logp.expand(len(users), 2, 2)

    res = diffusion_beam_search(fn, build_path_index(paths, sizes, 0), 1, k=3,
                                cfg=SearchConfig(beam_width=2, order="left_to_right"))
    assert set(res.items[0, :2].tolist()) == {0, 1} and res.items[0, 2] == -1


def test_diversity_penalty_fires_and_changes_the_list() -> None:
    # Two codes; the model loves code 0 at position 0, so plain beams all share it.
    paths = torch.tensor([[a, b] for a in range(3) for b in range(3)])
    sizes = (3, 3)
    base = torch.log(torch.tensor([[0.8, 0.15, 0.05], [0.4, 0.35, 0.25]]))

    def fn(users: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return base.expand(len(users), 2, 3)

    index = build_path_index(paths, sizes, 0)
    plain = diffusion_beam_search(fn, index, 1, 3, SearchConfig(beam_width=3, order="left_to_right"))
    diverse = diffusion_beam_search(fn, index, 1, 3, SearchConfig(beam_width=3, order="left_to_right",
                                                                 diversity=5.0))
    first_codes = lambda items: set(paths[items[0], 0].tolist())  # noqa: E731
    assert first_codes(plain.items) == {0}
    assert len(first_codes(diverse.items)) > 1
    assert not torch.equal(plain.items, diverse.items)


def test_random_order_is_reproducible_and_tokens_per_step_cuts_model_calls() -> None:
    paths, sizes = toy_catalogue()
    index = build_path_index(paths, sizes, 2)
    model = ToyModel(sizes)
    a = diffusion_beam_search(model, index, 3, 4, SearchConfig(beam_width=4, order="random", seed=7))
    b = diffusion_beam_search(model, index, 3, 4, SearchConfig(beam_width=4, order="random", seed=7))
    assert torch.equal(a.items, b.items)
    fast = diffusion_beam_search(model, index, 3, 4, SearchConfig(beam_width=4, tokens_per_step=3))
    assert fast.model_calls == 2 and a.model_calls == 4
    assert (fast.items >= 0).all()


def test_path_index_rejects_duplicate_paths() -> None:
    with pytest.raises(ValueError, match="unique"):
        build_path_index(torch.tensor([[0, 1], [0, 1]]), (2, 2), 0)


@pytest.mark.parametrize("depth", [2, 0])
def test_renormalised_scores_are_a_distribution_over_the_catalogue(depth: int) -> None:
    """With one fixed order, renormalised item scores sum to one, and match a hand-walked product."""
    paths, sizes = toy_catalogue(depth)
    model = ToyModel(sizes)
    index = build_path_index(paths, sizes, depth)
    cfg = SearchConfig(beam_width=200, order="left_to_right", merge_determined=False, renormalise=True)
    res = diffusion_beam_search(model, index, n_users=3, k=len(paths), cfg=cfg)
    torch.testing.assert_close(torch.logsumexp(res.scores, dim=1), torch.zeros(3), atol=1e-5, rtol=0)
    user, item = 1, int(res.items[1, 0])
    state, total = torch.full((1, len(sizes)), -1), 0.0
    for pos in range(len(sizes)):  # each token relative to the tokens items agreeing so far hold there
        agree = (paths[:, :pos] == paths[item, :pos]).all(dim=1)
        logp = model(torch.tensor([user]), state)[0, pos]
        total += float(logp[paths[item, pos]] - torch.logsumexp(logp[torch.unique(paths[agree, pos])], 0))
        state[0, pos] = paths[item, pos]
    assert abs(total - float(res.scores[1, 0])) < 1e-5


def test_leaf_tables_count_items_and_name_the_last_one() -> None:
    paths = torch.tensor([[0, 1, 2], [0, 1, 0], [1, 2, 2], [0, 0, 2]])  # depth 1, two identifier positions
    index = build_path_index(paths, (2, 3, 3), depth=1)
    # sorted order: (0,0,2) (0,1,0) (0,1,2) (1,2,2) -> leaf 0 holds sorted 0..2, leaf 1 holds sorted 3
    assert index.leaf_count[0].tolist() == [[1, 2, 0], [1, 0, 2]]
    assert index.leaf_count[1].tolist() == [[0, 0, 1], [0, 0, 1]]
    assert index.leaf_last[0].tolist() == [[0, 2, -1], [1, -1, 2]] and index.leaf_last[1, 0, 2] == 3
