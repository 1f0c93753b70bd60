"""Optimised product quantisation (faiss OPQ): many unordered codes per item, as RPG uses.

OPQ learns a rotation of the feature space, then splits the rotated vector into `n_codes`
sub-vectors and quantises each against its own codebook of 2^bits centroids. Unlike residual
quantisation no code refines another, so a model may predict all of an item's codes at once.

faiss trains the rotation and the codebooks (k-means, whose outcome depends on the BLAS kernel
and thread count, like every k-means here); the assignment of each sub-vector to its nearest
centroid is done in torch from faiss's centroids, which works for any `bits` (faiss packs codes
of fewer than 8 bits).
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from genrec_bench.errors import GenrecError


def opq_codes(x: np.ndarray, n_codes: int, bits: int, seed: int = 0, threads: int = 1, iters: int = 50) -> np.ndarray:
    """Codes [N, n_codes] int64 in [0, 2^bits) of the rows of `x` [N, d], after `iters` OPQ rounds.

    Features are zero-padded to a multiple of `n_codes` dimensions, so every sub-vector has the
    same width; faiss needs at least 2^bits rows per codebook and (its OPQ crashes otherwise) at
    least as many rows as dimensions, so a catalogue smaller than that keeps its top principal
    directions only.
    """
    import faiss

    n, d = x.shape
    ksub = 1 << bits
    if n < ksub:
        raise GenrecError(f"product quantisation with {bits}-bit codes needs at least {ksub} items, the catalogue "
                          f"has {n}; lower model.code_bits to at most {max(1, int(np.log2(max(n, 2))))}")
    if n_codes * -(-d // n_codes) > n:
        if n < n_codes:
            raise GenrecError(f"product quantisation into {n_codes} codes needs at least {n_codes} items, the "
                              f"catalogue has {n}; lower model.codes")
        x = principal_directions(x, n_codes * (n // n_codes))
        d = x.shape[1]
    width = n_codes * -(-d // n_codes)
    xp = np.zeros((n, width), dtype=np.float32)
    xp[:, :d] = x
    faiss.omp_set_num_threads(threads)
    pq = faiss.ProductQuantizer(width, n_codes, bits)
    pq.cp.seed = seed
    opq = faiss.OPQMatrix(width, n_codes)
    opq.pq = pq
    opq.verbose = False
    opq.niter = iters
    opq.train(xp)
    rotated = opq.apply(xp)
    pq.train(rotated)
    centroids = torch.from_numpy(faiss.vector_to_array(pq.centroids).reshape(n_codes, ksub, width // n_codes))
    sub = torch.from_numpy(rotated).view(n, n_codes, -1).transpose(0, 1)  # [M, N, dsub]
    return torch.cdist(sub, centroids).argmin(dim=2).T.contiguous().numpy().astype(np.int64)


def principal_directions(x: np.ndarray, dim: int) -> np.ndarray:
    """`x` centred and projected onto its top `dim` principal directions."""
    centred = torch.from_numpy(np.asarray(x, dtype=np.float32))
    centred = centred - centred.mean(dim=0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    return (centred @ v[:dim].T).numpy()


def whitened(x: np.ndarray, dim: int) -> np.ndarray:
    """`x` on its top `dim` principal directions (at most its rank), each scaled to unit variance.

    RPG's official tokeniser whitens its text embeddings (PCA to 512, `whiten=True`) before OPQ,
    so every direction gets the same share of the codebooks whatever its variance; directions with
    no variance are dropped rather than blown up.
    """
    centred = torch.from_numpy(np.asarray(x, dtype=np.float64))
    centred = centred - centred.mean(dim=0)
    _, s, v = torch.linalg.svd(centred, full_matrices=False)
    keep = int(min(dim, (s > s[0] * 1e-6).sum())) if len(s) else 0
    scale = s[:keep] / max(1, len(centred) - 1) ** 0.5
    return ((centred @ v[:keep].T) / scale).float().numpy()


def code_collisions(codes: np.ndarray) -> int:
    """Items whose full code tuple another item also has (they differ only in the history model's view)."""
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    return int((counts[inverse] > 1).sum())


def codes_digest(codes: np.ndarray) -> str:
    """12 hex digits identifying a code table, for the run record."""
    return hashlib.sha256(np.ascontiguousarray(codes, dtype=np.int64).tobytes()).hexdigest()[:12]
