"""MindRec's masked-diffusion objective: what is masked, what is scored, and how it is weighted."""

from __future__ import annotations

import math

import torch

from genrec_bench.models.mindrec.model import (
    DiffusionExamples,
    consistent_tokens,
    corrupt_targets,
    diffusion_loss,
    path_incidence,
)


def test_corruption_masks_only_target_tokens_with_the_llada_schedule() -> None:
    g = torch.Generator().manual_seed(0)
    targets = torch.randint(0, 5, (4000, 6), generator=g)
    state, masked, p_mask = corrupt_targets(targets, eps=0.5, generator=g)
    assert torch.equal(state[~masked], targets[~masked]) and (state[masked] == -1).all()
    assert (p_mask >= 0.5).all() and (p_mask <= 1).all()
    assert abs(float(p_mask.mean()) - 0.75) < 0.02  # (1 - eps) E[t] + eps
    # each token masked independently with its example's probability
    assert abs(float(masked.float().mean(1).sub(p_mask).mean())) < 0.01
    high = p_mask > 0.9
    assert float(masked[high].float().mean()) > 0.9
    eps1 = corrupt_targets(targets, eps=1.0, generator=g)[1]
    assert eps1.all()


def test_loss_matches_a_hand_computation() -> None:
    logits = torch.tensor([[[2.0, 0.0, -1.0], [0.5, 0.5, float("-inf")]],
                           [[0.0, 1.0, 3.0], [1.0, -2.0, float("-inf")]]])  # [B=2, P=2, V=3]
    targets = torch.tensor([[0, 1], [2, 0]])
    masked = torch.tensor([[True, True], [False, True]])
    p_mask = torch.tensor([0.8, 0.5])

    def ce(row: list[float], t: int) -> float:
        finite = [math.exp(x) for x in row if x != float("-inf")]
        return -(row[t] - math.log(sum(finite)))

    ex0 = (ce([2.0, 0.0, -1.0], 0) + ce([0.5, 0.5, float("-inf")], 1)) / 0.8 / 2  # sum / p_mask / P
    ex1 = ce([1.0, -2.0, float("-inf")], 0) / 0.5 / 2  # the unmasked first token does not count
    got = diffusion_loss(logits, targets, masked, p_mask)
    assert math.isclose(float(got), (ex0 + ex1) / 2, rel_tol=1e-6)


def test_only_masked_target_tokens_receive_gradient_and_weights_are_inverse_p_mask() -> None:
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 4, 5, generator=g, requires_grad=True)
    targets = torch.randint(0, 5, (3, 4), generator=g)
    masked = torch.tensor([[True, False, False, True], [False] * 4, [True] * 4])
    p_mask = torch.tensor([0.6, 0.7, 1.0])
    loss = diffusion_loss(logits, targets, masked, p_mask)
    loss.backward()
    touched = logits.grad.abs().sum(dim=2) > 0
    assert torch.equal(touched, masked)
    # halving p_mask of every example doubles the loss
    assert torch.isclose(diffusion_loss(logits, targets, masked, p_mask / 2), 2 * loss)


class _Recorder(torch.nn.Module):
    """Stands in for the network: records its inputs and returns uniform logits."""

    def __init__(self, paths: torch.Tensor):
        super().__init__()
        self.register_buffer("item_tokens", paths + torch.tensor([0, 10, 20]))
        self.register_buffer("offsets", torch.tensor([0, 10, 20]))
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.constrained = False

    def forward(self, hist: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        self.seen.append((hist.clone(), state.clone()))
        return torch.zeros(*state.shape, 10) + self.w


def test_history_is_passed_through_unmasked_and_targets_are_item_paths() -> None:
    paths = torch.tensor([[i % 10, (3 * i) % 10, i] for i in range(10)])
    rec = _Recorder(paths)
    examples = DiffusionExamples.__new__(DiffusionExamples)  # only `loss` is exercised, no split needed
    examples.module, examples.eps = rec, 0.5
    hist = torch.tensor([[-1, 2, 3], [4, 5, 6]])
    items = torch.tensor([7, 1])
    torch.manual_seed(0)
    for _ in range(20):
        examples.loss(rec, (hist, items))
    for seen_hist, state in rec.seen:
        assert torch.equal(seen_hist, hist)  # the history is never masked
        keep = state >= 0
        assert torch.equal(state[keep], paths[items][keep])  # unmasked target tokens are the item's path
    masks = torch.stack([s < 0 for _, s in rec.seen])
    assert masks.any() and not masks.all()


def test_consistent_tokens_match_a_brute_force_walk() -> None:
    g = torch.Generator().manual_seed(0)
    paths = torch.unique(torch.randint(0, 4, (40, 3), generator=g), dim=0)
    state = paths[torch.randint(0, len(paths), (25,), generator=g)].clone()
    state[torch.rand(state.shape, generator=g) < 0.6] = -1
    state[0] = -1  # fully masked: every token any item has
    got = consistent_tokens(path_incidence(paths, 4), state)
    for b, row in enumerate(state.tolist()):
        agree = [path for path in paths.tolist() if all(s < 0 or s == t for s, t in zip(row, path, strict=True))]
        want = torch.zeros(3, 4, dtype=torch.bool)
        for path in agree:
            want[torch.arange(3), torch.tensor(path)] = True
        assert torch.equal(got[b], want)


def test_constrained_loss_only_normalises_over_consistent_tokens() -> None:
    """Logits of tokens no consistent item has cannot change the constrained loss."""
    paths = torch.tensor([[0, 0, 1], [0, 1, 2], [1, 2, 0], [1, 2, 3]])
    targets, state = paths[[0, 3]], torch.tensor([[0, -1, -1], [-1, 2, -1]])
    masked = state < 0
    allowed = consistent_tokens(path_incidence(paths, 4), state)
    assert allowed[0, 1].tolist() == [True, True, False, False]
    assert allowed[1, 0].tolist() == [False, True, False, False]
    logits = torch.randn(2, 3, 4)
    noisy = logits + torch.where(allowed, 0.0, 100 * torch.randn(2, 3, 4))
    p_mask = torch.tensor([0.6, 0.8])
    a = diffusion_loss(logits.masked_fill(~allowed, float("-inf")), targets, masked, p_mask)
    b = diffusion_loss(noisy.masked_fill(~allowed, float("-inf")), targets, masked, p_mask)
    torch.testing.assert_close(a, b)
    # item 3's first token is forced by its second (2 -> item 2 or 3, both under category 1): zero loss there
    forced = diffusion_loss(logits.masked_fill(~allowed, float("-inf"))[1:], targets[1:],
                            torch.tensor([[True, False, False]]), p_mask[1:])
    assert float(forced) == 0.0
