"""Batched constrained beam search: valid, distinct, padded, and exact when the beam is wide."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import random_unique_codes
from genrec_bench.decoding.beam_search import constrained_beam_search, exhaustive_search
from genrec_bench.decoding.trie import build_trie


class ToyModel(nn.Module):
    """A tiny random autoregressive model: per-user vector + summed embeddings of the prefix."""

    def __init__(self, batch: int, depth: int, vocab: int, dim: int = 16, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.user = nn.Parameter(torch.randn(batch, dim, generator=g))
        self.emb = nn.Parameter(torch.randn(depth, vocab, dim, generator=g))
        self.out = nn.Parameter(torch.randn(depth, dim, vocab, generator=g) * 2)

    def forward(self, prefix_bwt: torch.Tensor, parent_bw: torch.Tensor | None = None) -> torch.Tensor:
        b, w, t = prefix_bwt.shape
        h = self.user[:, None, :].expand(b, w, -1)
        for level in range(t):
            h = torch.tanh(h + self.emb[level][prefix_bwt[:, :, level]])
        return torch.log_softmax(h @ self.out[t], dim=-1)


def setup(n: int, sizes: tuple[int, ...], batch: int = 5, seed: int = 0):
    codes = random_unique_codes(n, sizes, seed=seed)
    trie = build_trie(codes, sizes)
    model = ToyModel(batch, len(sizes), trie.vocab, seed=seed)
    return codes, trie, model


@torch.no_grad()
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wide_beam_matches_exhaustive(seed):
    codes, trie, model = setup(30, (3, 4, 5), seed=seed)
    beam = constrained_beam_search(model, trie, batch_size=5, beam=30, k=10)
    exact = exhaustive_search(model, codes, batch_size=5, k=10)
    assert torch.equal(beam.items, exact.items)
    assert torch.allclose(beam.scores, exact.scores, atol=1e-5)
    assert torch.equal(beam.codes, exact.codes)


@torch.no_grad()
def test_narrow_beam_returns_valid_distinct_items_scored_correctly():
    codes, trie, model = setup(60, (4, 4, 6), batch=7, seed=3)
    out = constrained_beam_search(model, trie, batch_size=7, beam=5, k=5)
    exact = exhaustive_search(model, codes, batch_size=7, k=60)
    assert out.items.shape == (7, 5) and (out.items >= 0).all()
    for row in range(7):
        assert len(set(out.items[row].tolist())) == 5
        assert torch.equal(codes[out.items[row]], out.codes[row])
        # every returned score is that item's true sequence log-probability
        true = dict(zip(exact.items[row].tolist(), exact.scores[row].tolist(), strict=True))
        assert out.scores[row].tolist() == pytest.approx([true[i] for i in out.items[row].tolist()], abs=1e-5)
    assert (out.scores[:, :-1] >= out.scores[:, 1:]).all()  # best first
    # the top-1 of a greedy-ish beam cannot beat the exact best
    assert (out.scores[:, 0] <= exact.scores[:, 0] + 1e-5).all()


@torch.no_grad()
def test_pads_with_minus_one_when_catalogue_is_smaller_than_k():
    codes, trie, model = setup(4, (2, 3), batch=3)
    out = constrained_beam_search(model, trie, batch_size=3, beam=10, k=8)
    assert out.items.shape == (3, 8)
    assert (out.items[:, :4] >= 0).all() and (out.items[:, 4:] == -1).all()
    assert torch.isneginf(out.scores[:, 4:]).all() and (out.codes[:, 4:] == -1).all()
    assert sorted(out.items[0, :4].tolist()) == [0, 1, 2, 3]


@torch.no_grad()
def test_masks_invalid_tokens_even_when_model_prefers_them():
    codes = torch.tensor([[0, 0], [1, 2]])
    trie = build_trie(codes, (3, 3))

    def step(prefix_bwt: torch.Tensor, parent_bw: torch.Tensor | None) -> torch.Tensor:
        """Loves code 2 at level 0 and code 1 at level 1, both invalid continuations."""
        b, w, t = prefix_bwt.shape
        logits = torch.tensor([0.0, 0.0, 10.0]) if t == 0 else torch.tensor([0.0, 10.0, 0.0])
        return torch.log_softmax(logits, 0).expand(b, w, 3)

    out = constrained_beam_search(step, trie, batch_size=2, beam=3, k=3)
    assert out.items[0].tolist()[:2] in ([0, 1], [1, 0]) and out.items[0, 2] == -1


@torch.no_grad()
def test_parent_indices_describe_the_prefixes():
    """Each beam's prefix minus its last code is the prefix of the beam `parent_bw` names."""
    codes, trie, model = setup(50, (4, 5, 6), batch=3, seed=4)
    seen: list[torch.Tensor] = []

    def step(prefix_bwt: torch.Tensor, parent_bw: torch.Tensor | None) -> torch.Tensor:
        if parent_bw is None:
            assert prefix_bwt.shape[2] == 0
        else:
            before = seen[-1].gather(1, parent_bw[:, :, None].expand(-1, -1, prefix_bwt.shape[2] - 1))
            assert torch.equal(before, prefix_bwt[:, :, :-1])
        seen.append(prefix_bwt)
        return model(prefix_bwt)

    constrained_beam_search(step, trie, batch_size=3, beam=7, k=7)
    assert len(seen) == 3


def test_beam_narrower_than_k_is_an_error():
    codes, trie, model = setup(10, (3, 4))
    with pytest.raises(ValueError, match="beam"):
        constrained_beam_search(model, trie, batch_size=5, beam=3, k=5)
