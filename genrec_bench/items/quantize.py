"""Residual quantisers: item vectors [N, d] in, level-local codes [N, L] out.

Level l quantises what levels 0..l-1 left unexplained, so a code tuple reads coarse to fine and
items sharing a prefix are similar; this is what lets a generative recommender decode an item
token by token. Both quantisers are pure functions of their inputs and a seed.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans, kmeans_plusplus
from torch import nn


def n_clusters(x: np.ndarray, codebook_size: int) -> int:
    """At most `codebook_size` clusters and never more than there are distinct rows to separate."""
    distinct = len(np.unique(np.round(x, 6), axis=0)) if len(x) else 0
    return max(1, min(codebook_size, distinct))


def sinkhorn_labels(dist_nk: torch.Tensor, iters: int = 15, temperature: float = 0.05) -> torch.Tensor:
    """Labels [N] from an entropic optimal transport with equal cluster masses (Sinkhorn-Knopp).

    Rows sum to 1 and columns to N/K, so the argmax spreads items evenly over codes instead of
    leaving one crowded code and a tail of singletons. Distances are scaled by their mean so the
    temperature does not depend on the feature scale.
    """
    n, k = dist_nk.shape
    log_p = -dist_nk / (temperature * dist_nk.mean().clamp(min=1e-12))
    for _ in range(iters):
        log_p = log_p - torch.logsumexp(log_p, dim=0, keepdim=True) + np.log(n / k)
        log_p = log_p - torch.logsumexp(log_p, dim=1, keepdim=True)
    return log_p.argmax(dim=1)


def balanced_kmeans(x: np.ndarray, k: int, seed: int, max_iter: int = 15) -> tuple[np.ndarray, np.ndarray]:
    """Labels [N] and centres [k, d] of k-means with Sinkhorn-balanced assignments (RQ-Kmeans of OneRec).

    Plain k-means on residuals can collapse (one code holding most items, singletons elsewhere);
    balanced levels stay near log2(k) bits, at about three times plain k-means' cost
    (docs/performance.md). float32 is enough for assignments.
    """
    x_nd = torch.as_tensor(x, dtype=torch.float32)
    centres, _ = kmeans_plusplus(np.asarray(x, dtype=np.float64), k, random_state=seed)
    c_kd = torch.as_tensor(centres, dtype=torch.float32)
    for _ in range(max_iter):
        labels = sinkhorn_labels(torch.cdist(x_nd, c_kd) ** 2)
        counts = torch.bincount(labels, minlength=k).to(x_nd.dtype)[:, None]
        sums = torch.zeros_like(c_kd).index_add_(0, labels, x_nd)
        c_kd = torch.where(counts > 0, sums / counts.clamp(min=1), c_kd)  # an empty code keeps its centre
    labels = sinkhorn_labels(torch.cdist(x_nd, c_kd) ** 2)
    return labels.numpy().astype(np.int64), c_kd.numpy().astype(np.float64)


def fit_residual_kmeans(x: np.ndarray, levels: int, codebook_size: int, seed: int = 0, n_init: int = 1,
                        max_iter: int = 100, spread: bool = False,
                        balanced: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
    """Codes [N, levels] int64 and each level's centres [k_l, d] (k_l clamped on small data).

    `spread` applies `spread_last_level` to the last level's assignment; `balanced` uses
    `balanced_kmeans` at every level (n_init is then unused).
    """
    residual = np.asarray(x, dtype=np.float64).copy()
    codes = np.zeros((len(residual), levels), dtype=np.int64)
    centres = []
    for level in range(levels):
        k = n_clusters(residual, codebook_size)
        if balanced:
            codes[:, level], centres_kd = balanced_kmeans(residual, k, seed + level, min(max_iter, 15))
        else:
            km = KMeans(n_clusters=k, n_init=n_init, max_iter=max_iter, random_state=seed + level).fit(residual)
            codes[:, level], centres_kd = km.labels_, km.cluster_centers_
        if spread and level == levels - 1:
            codes = spread_last_level(codes, _sq_dist(residual, centres_kd))
        residual -= centres_kd[codes[:, level]]
        centres.append(centres_kd)
    return codes, centres


def _sq_dist(x_nd: np.ndarray, c_kd: np.ndarray) -> np.ndarray:
    return (x_nd**2).sum(1)[:, None] - 2 * x_nd @ c_kd.T + (c_kd**2).sum(1)[None, :]


def spread_last_level(codes: np.ndarray, dist_nk: np.ndarray) -> np.ndarray:
    """Give items that would share a whole tuple distinct last-level codes, as close as possible.

    LC-Rec's "uniform semantic mapping" idea: nearest-centre codes leave groups of similar items on
    one tuple, and the de-dup token that then separates them carries no meaning. Within each prefix
    group that has a collision, a minimum-distance assignment (Hungarian, over the group's rows of
    `dist_nk`) gives every item its own last code; a group larger than the codebook keeps the rest
    on their nearest codes, for the de-dup level. Returns new codes [N, L]; the loop runs over
    colliding groups only (a few hundred on a 12k-item catalogue).
    """
    out = codes.copy()
    _, tuple_id, tuple_size = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    colliding = tuple_size[tuple_id.reshape(-1)] > 1
    if not colliding.any():
        return out
    if codes.shape[1] == 1:
        group = np.zeros(len(codes), dtype=np.int64)  # no prefix: the whole catalogue is one group
    else:
        group = np.unique(codes[:, :-1], axis=0, return_inverse=True)[1].reshape(-1)
    for g in np.unique(group[colliding]):
        members = np.flatnonzero(group == g)
        rows, cols = linear_sum_assignment(dist_nk[members])
        out[members[rows], -1] = cols
    return out


def residual_kmeans(x: np.ndarray, levels: int, codebook_size: int, seed: int = 0, n_init: int = 1,
                    max_iter: int = 100, spread: bool = False,
                    balanced: bool = False) -> tuple[np.ndarray, tuple[int, ...]]:
    """Codes [N, levels] int64 and the number of clusters used per level."""
    codes, centres = fit_residual_kmeans(x, levels, codebook_size, seed, n_init, max_iter, spread, balanced)
    return codes, tuple(len(c) for c in centres)


def _mlp(dims: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(dims) - 2 else [])
    return nn.Sequential(*layers)


class RQVAE(nn.Module):
    """MLP autoencoder whose latent passes through `levels` residual codebooks (TIGER's tokeniser)."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, centres: list[np.ndarray]):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.codebooks = nn.ParameterList(
            [nn.Parameter(torch.as_tensor(c, dtype=torch.float32).clone()) for c in centres])

    def quantise(self, z_bd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Codes [B, L], the quantised latent [B, D] and the per-level residuals [B, L, D]."""
        residual, codes, quantised, residuals = z_bd, [], torch.zeros_like(z_bd), []
        for book_kd in self.codebooks:
            idx = torch.cdist(residual, book_kd).argmin(dim=1)
            residuals.append(residual)
            codes.append(idx)
            quantised = quantised + book_kd[idx]
            residual = residual - book_kd[idx].detach()
        return torch.stack(codes, 1), quantised, torch.stack(residuals, 1)

    def losses(self, x_bd: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Total loss, codes [B, L] and residuals [B, L, D] (for dead-code resets)."""
        z = self.encoder(x_bd)
        codes, quantised, residuals = self.quantise(z)
        # Codebook loss pulls codes to residuals; commitment (beta) keeps the encoder near its codes.
        chosen = torch.stack([book[codes[:, i]] for i, book in enumerate(self.codebooks)], 1)
        vq = ((residuals.detach() - chosen) ** 2).sum(-1).mean() + beta * (
            (residuals - chosen.detach()) ** 2).sum(-1).mean()
        z_st = z + (quantised - z).detach()  # straight-through: decoder gradient flows to the encoder
        recon = ((self.decoder(z_st) - x_bd) ** 2).sum(-1).mean()
        return recon + vq, codes, residuals.detach()


def rqvae(x: np.ndarray, levels: int, codebook_size: int, seed: int = 0, latent_dim: int = 32,
          hidden_dim: int = 256, epochs: int = 60, batch_size: int = 256, lr: float = 1e-3,
          beta: float = 0.25, spread: bool = False) -> tuple[np.ndarray, tuple[int, ...]]:
    """Train an RQ-VAE on `x` and return codes [N, levels] int64 and the codebook size per level.

    `spread` applies `spread_last_level` to the final assignment (distances in latent space).
    """
    x_nd = torch.as_tensor(np.asarray(x, dtype=np.float32))
    n = len(x_nd)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = _mlp([x_nd.shape[1], hidden_dim, hidden_dim // 2, latent_dim])
        decoder = _mlp([latent_dim, hidden_dim // 2, hidden_dim, x_nd.shape[1]])
    # Codebooks start as residual k-means of the untrained latents. k-means needs many more points
    # than centres, so this first batch holds ~10 rows per code rather than `batch_size` rows.
    first = x_nd[torch.randperm(n, generator=gen)[: max(batch_size, 10 * codebook_size)]]
    with torch.no_grad():
        z_init = encoder(first).numpy()
    _, centres = fit_residual_kmeans(z_init, levels, codebook_size, seed, n_init=1, max_iter=50)
    model = RQVAE(encoder, decoder, centres)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        used = [torch.zeros(len(book), dtype=torch.bool) for book in model.codebooks]
        residuals = torch.zeros(0)
        for batch in torch.randperm(n, generator=gen).split(batch_size):
            loss, codes, residuals = model.losses(x_nd[batch], beta)
            opt.zero_grad()
            loss.backward()
            opt.step()
            for level, mask in enumerate(used):
                mask[codes[:, level]] = True
        _reset_dead_codes(model, used, residuals, gen)
    model.eval()
    with torch.inference_mode():
        codes, _, residuals_nld = model.quantise(model.encoder(x_nd))
        codes_nl = codes.numpy().astype(np.int64)
        if spread:
            last = model.codebooks[-1]
            codes_nl = spread_last_level(codes_nl, (torch.cdist(residuals_nld[:, -1], last) ** 2).numpy())
    return codes_nl, tuple(len(book) for book in model.codebooks)


def _reset_dead_codes(model: RQVAE, used: list[torch.Tensor], residuals_bld: torch.Tensor,
                      gen: torch.Generator) -> None:
    """Move codes no item chose this epoch onto random residuals, so the codebook stays in use."""
    with torch.no_grad():
        for level, (book, mask) in enumerate(zip(model.codebooks, used, strict=True)):
            dead = (~mask).nonzero().squeeze(1)
            if len(dead) and len(residuals_bld):
                pick = torch.randint(len(residuals_bld), (len(dead),), generator=gen)
                book[dead] = residuals_bld[pick, level]
