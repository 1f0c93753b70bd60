"""Residual quantisers on synthetic blobs: shapes, code ranges, clamping, determinism, structure."""

from __future__ import annotations

import numpy as np
import torch

from genrec_bench.items import quantize as Q


def blobs(n_per: int = 30, centres: int = 4, dim: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated Gaussian blobs and their labels: level 0 should recover the blobs."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(centres, dim)) * 10
    labels = np.repeat(np.arange(centres), n_per)
    return (means[labels] + rng.normal(size=(len(labels), dim))).astype(np.float32), labels


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when the two labelings group items identically (up to renaming of the labels)."""
    pairs = np.unique(np.stack([a, b], 1), axis=0)
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


def test_residual_kmeans_shapes_structure_and_determinism() -> None:
    x, labels = blobs()
    codes, sizes = Q.residual_kmeans(x, levels=3, codebook_size=4, seed=0)
    assert codes.shape == (len(x), 3) and codes.dtype == np.int64
    assert sizes == (4, 4, 4)
    assert np.all((codes >= 0) & (codes < np.array(sizes)))
    assert same_partition(codes[:, 0], labels)
    again, _ = Q.residual_kmeans(x, levels=3, codebook_size=4, seed=0)
    np.testing.assert_array_equal(codes, again)


def test_residual_kmeans_refines_the_residual() -> None:
    x, _ = blobs()
    codes, centres = Q.fit_residual_kmeans(x, levels=2, codebook_size=4, seed=0)
    one = x - centres[0][codes[:, 0]]
    two = one - centres[1][codes[:, 1]]
    assert np.linalg.norm(two) < np.linalg.norm(one) < np.linalg.norm(x)


def test_clusters_are_clamped_on_small_catalogues() -> None:
    x = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [5.0, 5.0], [0.0, 1.0]])
    assert Q.n_clusters(x, 256) == 3  # three distinct rows
    codes, sizes = Q.residual_kmeans(x, levels=2, codebook_size=256)
    assert sizes == (3, 1)  # after level 0 every residual is zero
    assert codes[1, 0] == codes[2, 0] and codes[0, 0] != codes[1, 0]
    assert np.all(codes[:, 1] == 0)


def test_rqvae_shapes_determinism_and_structure() -> None:
    x, labels = blobs(n_per=40)
    kwargs = dict(levels=2, codebook_size=4, latent_dim=4, hidden_dim=16, epochs=30, batch_size=32)
    codes, sizes = Q.rqvae(x, seed=0, **kwargs)
    assert codes.shape == (len(x), 2) and codes.dtype == np.int64
    assert sizes == (4, 4)
    assert np.all((codes >= 0) & (codes < np.array(sizes)))
    np.testing.assert_array_equal(codes, Q.rqvae(x, seed=0, **kwargs)[0])
    # Level 0 is coarse: each blob is (almost) one code, so items of a blob share their first code.
    purity = sum(np.bincount(codes[labels == b, 0]).max() for b in range(4)) / len(x)
    assert purity >= 0.9


def test_rqvae_does_not_touch_the_global_rng() -> None:
    x, _ = blobs(n_per=10)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    Q.rqvae(x, levels=1, codebook_size=2, epochs=1, hidden_dim=8, latent_dim=2)
    assert torch.equal(torch.rand(3), expected)


def test_dead_codes_move_onto_residuals() -> None:
    x, _ = blobs(n_per=5)
    encoder, decoder = Q._mlp([8, 4, 2]), Q._mlp([2, 4, 8])
    centres = [np.zeros((3, 2)), np.zeros((2, 2))]
    model = Q.RQVAE(encoder, decoder, centres)
    residuals = torch.arange(12, dtype=torch.float32).reshape(3, 2, 2) + 1  # [B=3, L=2, D=2]
    used = [torch.tensor([True, False, True]), torch.tensor([True, True])]
    Q._reset_dead_codes(model, used, residuals, torch.Generator().manual_seed(0))
    book0, book1 = model.codebooks[0].detach(), model.codebooks[1].detach()
    assert torch.equal(book0[[0, 2]], torch.zeros(2, 2))  # used codes stay
    assert any(torch.equal(book0[1], residuals[b, 0]) for b in range(3))  # dead code = a level-0 residual
    assert torch.equal(book1, torch.zeros(2, 2))


def test_spread_last_level_hand_computed() -> None:
    codes = np.array([[0, 1], [0, 1], [0, 2], [1, 1]])
    dist = np.array([[9.0, 0, 1, 2], [9, 0, 9, 9], [9, 9, 0, 9], [0, 9, 9, 9]])
    out = Q.spread_last_level(codes, dist)
    # Items 0 and 1 collide on (0, 1); the cheapest distinct assignment in prefix 0 moves item 0 to 3
    # (cost 2) rather than to 2, which would push item 2 off its own code (cost 1 + 9).
    assert out[:, 1].tolist() == [3, 1, 2, 1]
    assert np.array_equal(out[:, 0], codes[:, 0])
    assert np.array_equal(Q.spread_last_level(out, dist), out)  # nothing collides: unchanged


def test_spread_removes_collisions_of_residual_kmeans() -> None:
    x, _ = blobs(n_per=3)
    x[1] = x[0]  # exact duplicates can only be separated by spreading
    plain, _ = Q.residual_kmeans(x, levels=2, codebook_size=4, seed=0)
    spread, _ = Q.residual_kmeans(x, levels=2, codebook_size=4, seed=0, spread=True)
    assert len(np.unique(plain, axis=0)) < len(x)
    assert len(np.unique(spread, axis=0)) == len(x)  # each blob (3 items) fits in the 4 last codes
    assert np.array_equal(plain[:, 0], spread[:, 0])


def test_balanced_kmeans_spreads_a_skewed_cloud() -> None:
    """One dense cloud plus far outliers: plain k-means spends codes on outliers, balanced does not."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(200, 4)), rng.normal(size=(8, 4)) * 50])
    plain, _ = Q.residual_kmeans(x, levels=1, codebook_size=8, seed=0)
    labels, centres = Q.balanced_kmeans(x, 8, seed=0)
    assert centres.shape == (8, 4) and labels.shape == (208,)
    assert np.bincount(plain[:, 0]).max() > 100
    assert np.bincount(labels, minlength=8).max() <= 2 * 208 / 8
    np.testing.assert_array_equal(labels, Q.balanced_kmeans(x, 8, seed=0)[0])
    codes, sizes = Q.residual_kmeans(x, levels=2, codebook_size=8, seed=0, balanced=True)
    assert codes.shape == (208, 2) and sizes == (8, 8)


def test_sinkhorn_labels_balance_even_when_one_code_is_nearest() -> None:
    dist = torch.tensor([[0.0, 1.0]] * 4)  # every row prefers code 0
    dist[:2, 1] = 0.5  # rows 0-1 mind code 1 least
    assert Q.sinkhorn_labels(dist, iters=50).tolist() == [1, 1, 0, 0]
