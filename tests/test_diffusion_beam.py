"""Diffusion Beam Search: validity, tree constraints, exactness against exhaustive search, knobs."""

from __future__ import annotations

import itertools

import pytest
import torch

from genrec_bench.decoding.diffusion_beam import ORDERS, SearchConfig, build_path_index, diffusion_beam_search

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

    def __call__(self, users: torch.Tensor, tokens: torch.Tensor, read: torch.Tensor | None = None) -> torch.Tensor:
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


def wide_catalogue() -> tuple[torch.Tensor, tuple[int, ...]]:
    """40 items under 2 leaves (depth 1) with 3 identifier codes of 3 values: many shared codes and nested sets."""
    g = torch.Generator().manual_seed(5)
    combos = torch.tensor(list(itertools.product(range(2), range(3), range(3), range(3))))
    return combos[torch.randperm(len(combos), generator=g)[:40]], (2, 3, 3, 3)


def assert_full_valid_lists(res, paths: torch.Tensor, k: int) -> None:
    assert res.items.shape[1] == k
    for row in res.items:
        assert (row >= 0).all() and len(set(row.tolist())) == k and (row < len(paths)).all()
    assert torch.isfinite(res.scores).all() and (res.scores[:, 1:] <= res.scores[:, :-1]).all()


@pytest.mark.parametrize("catalogue", ["toy", "toy_no_tree", "wide"])
@pytest.mark.parametrize("order,per_step,renormalise,diversity", [
    ("confidence", 1, True, 0.0), ("confidence", 1, False, 0.0), ("left_to_right", 1, True, 0.0),
    ("random", 1, True, 0.0), ("confidence", 2, True, 0.0), ("confidence", 1, True, 2.0)])
def test_every_beam_width_at_least_k_fills_the_list(catalogue: str, order: str, per_step: int, renormalise: bool,
                                                    diversity: float) -> None:
    """k distinct real items for every user whenever the catalogue holds k items and the beam is >= k."""
    paths, sizes = {"toy": lambda: toy_catalogue(2), "toy_no_tree": lambda: toy_catalogue(0),
                    "wide": wide_catalogue}[catalogue]()
    depth = len(sizes) - 2 if catalogue != "wide" else 1
    index = build_path_index(paths, sizes, depth)
    for seed in range(3):
        model = ToyModel(sizes, seed=seed)
        for k in (1, 3, 7, len(paths)):
            for beam in {k, k + 1, k + 3}:
                cfg = SearchConfig(beam_width=beam, order=order, tokens_per_step=per_step, renormalise=renormalise,
                                   diversity=diversity, seed=seed)
                res = diffusion_beam_search(model, index, 3, k, cfg)
                assert_full_valid_lists(res, paths, k)
                if catalogue == "toy":
                    real = res.items.flatten()
                    assert (paths[real, 1] // 2 == paths[real, 0]).all()  # child belongs to its parent


def test_lists_are_padded_only_when_the_catalogue_is_smaller_than_k() -> None:
    paths, sizes = toy_catalogue()
    res = diffusion_beam_search(ToyModel(sizes), build_path_index(paths, sizes, 2), 3, len(paths) + 2,
                                SearchConfig(beam_width=len(paths) + 2, renormalise=True))
    assert (res.items[:, : len(paths)] >= 0).all() and (res.items[:, len(paths):] == -1).all()
    assert torch.isinf(res.scores[:, len(paths):]).all()


def consistent(paths: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    return ((paths == state) | (state < 0)).all(dim=1)


def close(paths: torch.Tensor, state: torch.Tensor, depth: int) -> None:
    """Commit, in place, every masked identifier position all consistent items agree on."""
    agree = paths[consistent(paths, state)]
    for pos in range(depth, paths.shape[1]):
        if state[pos] < 0 and len(agree[:, pos].unique()) == 1:
            state[pos] = agree[0, pos]


def renormalised(model: ToyModel, paths: torch.Tensor, user: int, state: torch.Tensor,
                 pos: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs at `pos` and their normaliser over the tokens consistent items hold there."""
    logp = model(torch.tensor([user]), state[None])[0, pos]
    tok = paths[consistent(paths, state)][:, pos].unique()
    return logp, torch.logsumexp(logp[tok], 0)


def exhaustive_closed(model: ToyModel, paths: torch.Tensor, depth: int, user: int, order: str) -> torch.Tensor:
    """Best renormalised score of every item over all commit orders, forced tokens committed at once."""
    p_len = paths.shape[1]
    perms = [tuple(range(depth, p_len))] if order == "left_to_right" else list(itertools.permutations(
        range(depth, p_len)))
    best = torch.full((len(paths),), NEG)
    for n, path in enumerate(paths):
        for perm in perms:
            state, total = torch.full((p_len,), -1), 0.0
            for pos in list(range(depth)) + list(perm):
                if pos >= depth:
                    close(paths, state, depth)
                if state[pos] >= 0:
                    continue
                logp, norm = renormalised(model, paths, user, state, pos)
                total += float(logp[path[pos]] - norm)
                state[pos] = path[pos]
            best[n] = max(best[n], total)
    return best


@pytest.mark.parametrize("depth", [2, 0])
@pytest.mark.parametrize("order", ["confidence", "left_to_right"])
def test_renormalised_wide_beam_equals_exhaustive_search_over_closed_orders(depth: int, order: str) -> None:
    paths, sizes = toy_catalogue(depth)
    model = ToyModel(sizes, seed=2)
    index = build_path_index(paths, sizes, depth)
    cfg = SearchConfig(beam_width=200, order=order, merge_determined=False, renormalise=True)
    res = diffusion_beam_search(model, index, n_users=3, k=len(paths), cfg=cfg)
    for u in range(3):
        want = exhaustive_closed(model, paths, depth, u, order)
        assert (res.items[u] >= 0).all()
        torch.testing.assert_close(res.scores[u], want[res.items[u]], atol=1e-5, rtol=0)
        torch.testing.assert_close(res.scores[u], torch.sort(want, descending=True).values, atol=1e-5, rtol=0)


@pytest.mark.parametrize("renormalise", [True, False])
def test_left_to_right_item_scores_do_not_depend_on_the_beam_width(renormalise: bool) -> None:
    """One order gives each item one path, so a returned item's score is its path score at any width."""
    paths, sizes = wide_catalogue()
    model = ToyModel(sizes, seed=4)
    index = build_path_index(paths, sizes, 1)
    exact = diffusion_beam_search(model, index, 3, len(paths), SearchConfig(
        beam_width=len(paths), order="left_to_right", renormalise=renormalise))
    for beam in (3, 5, 10, 20):
        res = diffusion_beam_search(model, index, 3, 3, SearchConfig(
            beam_width=beam, order="left_to_right", renormalise=renormalise))
        for u in range(3):
            ref = dict(zip(exact.items[u].tolist(), exact.scores[u].tolist(), strict=True))
            torch.testing.assert_close(res.scores[u], torch.tensor([ref[i] for i in res.items[u].tolist()]),
                                       atol=1e-5, rtol=0)


def test_renormalised_search_never_queries_the_model_for_dead_or_pinned_beams() -> None:
    """Under renormalisation a beam left with one consistent item is complete: no model row is spent on it."""
    paths, sizes = wide_catalogue()
    seen: list[torch.Tensor] = []
    model = ToyModel(sizes, seed=1)

    def recording(users: torch.Tensor, tokens: torch.Tensor, read: torch.Tensor) -> torch.Tensor:
        seen.append(tokens)
        return model(users, tokens)

    index = build_path_index(paths, sizes, 1)
    for order in ORDERS:
        diffusion_beam_search(recording, index, 3, 8, SearchConfig(beam_width=8, order=order, renormalise=True))
    states = torch.cat(seen)
    held = ((paths[None] == states[:, None]) | (states[:, None] < 0)).all(dim=2).sum(dim=1)
    assert (held >= 2).all() and (states < 0).any(dim=1).all()


def test_merging_frees_beams_that_plain_partial_path_keys_waste_on_one_item() -> None:
    paths, sizes = toy_catalogue()
    index = build_path_index(paths, sizes, 2)
    short = 0
    for seed in range(4):
        model = ToyModel(sizes, seed=seed)
        for beam in (3, 5, 8):
            plain = diffusion_beam_search(model, index, 3, beam, SearchConfig(beam_width=beam, merge_determined=False))
            merged = diffusion_beam_search(model, index, 3, beam, SearchConfig(beam_width=beam))
            assert_full_valid_lists(merged, paths, beam)
            short += int((plain.items < 0).sum())
    assert short > 0  # keyed by partial path only, several beams end on one item and lists come out short


@pytest.mark.parametrize("depth", [2, 0])
def test_renormalised_scores_are_a_distribution_over_the_catalogue(depth: int) -> None:
    """With one fixed order, renormalised item scores sum to one, and match a hand-walked product."""
    paths, sizes = toy_catalogue(depth)
    model = ToyModel(sizes)
    index = build_path_index(paths, sizes, depth)
    cfg = SearchConfig(beam_width=200, order="left_to_right", merge_determined=False, renormalise=True)
    res = diffusion_beam_search(model, index, n_users=3, k=len(paths), cfg=cfg)
    torch.testing.assert_close(torch.logsumexp(res.scores, dim=1), torch.zeros(3), atol=1e-5, rtol=0)
    want = exhaustive_closed(model, paths, depth, 1, "left_to_right")  # the hand-walked product of each item
    torch.testing.assert_close(res.scores[1], want[res.items[1]], atol=1e-5, rtol=0)


def test_leaf_tables_count_items_and_name_forced_tokens() -> None:
    paths = torch.tensor([[0, 1, 2], [0, 1, 0], [1, 2, 2], [0, 0, 2]])  # depth 1, two identifier positions
    index = build_path_index(paths, (2, 3, 3), depth=1)
    # sorted order: (0,0,2) (0,1,0) (0,1,2) (1,2,2) -> leaf 0 holds sorted 0..2, leaf 1 holds sorted 3
    assert index.leaf_count[0].tolist() == [[1, 2, 0], [1, 0, 2]]
    assert index.leaf_count[1].tolist() == [[0, 0, 1], [0, 0, 1]]
    assert index.leaf_forced.tolist() == [[-1, -1], [2, 2]]  # leaf 1 holds one item: every token is forced


@pytest.mark.parametrize("depth", [2, 0])
def test_token_index_lists_each_leaf_token_group_as_one_ascending_slice(depth: int) -> None:
    paths, sizes = toy_catalogue(depth)
    index = build_path_index(paths, sizes, depth)
    n_ids = len(sizes) - depth
    for leaf, (lo, size) in enumerate(zip(index.leaf_lo.tolist(), index.leaf_size.tolist(), strict=True)):
        for ident in range(n_ids):
            for tok in range(max(sizes)):
                start, count = int(index.by_start[leaf, ident, tok]), int(index.leaf_count[leaf, ident, tok])
                want = [r for r in range(lo, lo + size) if index.sorted_paths[r, depth + ident] == tok]
                assert index.by_token[ident, start : start + count].tolist() == want


@pytest.mark.parametrize(("depth", "per_step", "order"), [(2, 1, "confidence"), (2, 2, "left_to_right"),
                                                          (0, 3, "random"), (2, 3, "confidence")])
def test_the_search_uses_only_the_positions_it_asks_the_model_to_read(depth: int, per_step: int,
                                                                      order: str) -> None:
    """Positions outside `read` may hold anything (here NaN): the lists and scores do not change."""
    paths, sizes = toy_catalogue(depth)
    index = build_path_index(paths, sizes, depth)
    model = ToyModel(sizes, seed=3)
    reads: list[torch.Tensor] = []

    def partial(users: torch.Tensor, tokens: torch.Tensor, read: torch.Tensor) -> torch.Tensor:
        reads.append(read)
        return model(users, tokens).masked_fill(~read[..., None], float("nan"))

    for renormalise in (False, True):
        cfg = SearchConfig(beam_width=4, order=order, tokens_per_step=per_step, renormalise=renormalise)
        want = diffusion_beam_search(model, index, 3, 4, cfg)
        got = diffusion_beam_search(partial, index, 3, 4, cfg)
        assert torch.equal(got.items, want.items)
        torch.testing.assert_close(got.scores, want.scores)
    if depth:
        assert not torch.cat(reads).all()  # category levels below the next one were not read


def test_category_beam_bounds_the_leaves_searched_and_equals_the_default_at_full_width() -> None:
    paths, sizes = wide_catalogue()
    index = build_path_index(paths, sizes, 1)
    model = ToyModel(sizes, seed=2)
    seen: list[torch.Tensor] = []

    def recording(users: torch.Tensor, tokens: torch.Tensor, read: torch.Tensor) -> torch.Tensor:
        seen.append(torch.cat([users[:, None], tokens[:, :1]], dim=1))
        return model(users, tokens)

    full = diffusion_beam_search(model, index, 3, 6, SearchConfig(beam_width=6, renormalise=True))
    same = diffusion_beam_search(model, index, 3, 6, SearchConfig(beam_width=6, category_beam=6, renormalise=True))
    assert torch.equal(full.items, same.items)
    narrow = diffusion_beam_search(recording, index, 3, 6, SearchConfig(beam_width=6, category_beam=1,
                                                                           renormalise=True))
    pairs = torch.cat(seen)
    leaves = torch.unique(pairs[pairs[:, 1] >= 0], dim=0)  # (user, leaf) pairs searched
    assert torch.bincount(leaves[:, 0]).max() == 1
    leaf_of = paths[narrow.items.clamp_min(0), 0].masked_fill(narrow.items < 0, -1)
    assert ((leaf_of == leaf_of[:, :1]) | (leaf_of < 0)).all()  # every listed item under the one leaf kept
