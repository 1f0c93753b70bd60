"""Semantic IDs: every item becomes a unique tuple of level-local codes, coarse to fine.

`build_semantic_ids` = item features -> residual quantiser (k-means or RQ-VAE) -> de-dup level, or
LETTER's precomputed tuples -> de-dup level. The de-dup level numbers items that share a tuple, so
every item has exactly one tuple and every tuple exactly one item: decoding a tuple is a lookup.
A health report (codes used, collisions, entropy) comes with every build because a collapsed
codebook silently caps what any generative backend can reach.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from genrec_bench.config import check_key
from genrec_bench.data.split import SplitData
from genrec_bench.errors import GenrecError
from genrec_bench.items import quantize
from genrec_bench.items.features import VERSION as FEATURES_VERSION
from genrec_bench.items.features import feature_key, item_features, resolve_spec
from genrec_bench.runtime import atomic_write_bytes, atomic_write_json, cache_dir

VERSION = "semantic-ids-v1"  # bump when quantisation changes, so cached ids are not reused
METHODS = ("rkmeans", "rqvae", "letter")
_LETTER_TOKEN = re.compile(r"^<([a-z])_(\d+)>$")


@dataclass(frozen=True)
class TokenizerConfig:
    """How items become code tuples; keys are flat primitives so they can sit in `[model]` TOML."""

    method: str = "rkmeans"  # rkmeans | rqvae | letter (precomputed ids from data.meta.semantic_ids)
    features: str = "auto"  # auto | text | tfidf | attributes | collab, or '+'-joined
    levels: int = 3  # quantisation levels before the de-dup level (ignored by letter)
    codebook_size: int = 256  # ignored by letter
    seed: int = 0
    # Not in TIGER: give items that would share a tuple distinct nearest free last-level codes (LC-Rec)
    # instead of leaving them to the meaningless de-dup token alone.
    spread_last_level: bool = False
    kmeans_balanced: bool = False  # Sinkhorn-balanced clusters (OneRec's RQ-Kmeans); for small catalogues
    kmeans_n_init: int = 1
    kmeans_max_iter: int = 100
    rqvae_latent_dim: int = 32
    rqvae_hidden_dim: int = 256
    rqvae_epochs: int = 60
    rqvae_batch_size: int = 256
    rqvae_lr: float = 1e-3
    rqvae_beta: float = 0.25  # commitment weight

    def __post_init__(self) -> None:
        check_key(self.method in METHODS, "tokenizer.method", f"one of {', '.join(METHODS)}", self.method)
        check_key(isinstance(self.features, str) and bool(self.features), "tokenizer.features",
               "'auto' or '+'-joined names from text, tfidf, attributes, collab", self.features)
        for key in ("levels", "kmeans_n_init", "kmeans_max_iter", "rqvae_latent_dim", "rqvae_epochs",
                    "rqvae_batch_size"):
            check_key(getattr(self, key) >= 1, f"tokenizer.{key}", "an integer >= 1", getattr(self, key))
        check_key(self.codebook_size >= 2, "tokenizer.codebook_size", "an integer >= 2", self.codebook_size)
        check_key(self.rqvae_hidden_dim >= 2, "tokenizer.rqvae_hidden_dim", "an integer >= 2",
               self.rqvae_hidden_dim)
        check_key(self.rqvae_lr > 0, "tokenizer.rqvae_lr", "a number > 0", self.rqvae_lr)
        check_key(self.rqvae_beta >= 0, "tokenizer.rqvae_beta", "a number >= 0", self.rqvae_beta)


@dataclass(frozen=True)
class SemanticIds:
    codes: torch.Tensor  # [N, L] int64 level-local codes; every row unique; last level = de-dup level
    sizes: tuple[int, ...]  # codebook size per level, including the final de-dup level
    health: dict[str, object]  # see `health_report`
    source: str  # e.g. "rkmeans(attributes+collab)", "letter"

    @property
    def n_levels(self) -> int:
        return len(self.sizes)

    @property
    def digest(self) -> str:
        """Content hash of the code table: two runs compare the same tokenisation only if theirs match."""
        return hashlib.sha256(self.codes.to(torch.int64).numpy().tobytes()).hexdigest()[:12]


def dedup_level(codes: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Append a level numbering items that share a tuple 0, 1, 2, ... in item-index order.

    Returns codes [N, L+1] and the size of the new level (the largest group; 1 if all unique).
    """
    arr = codes.cpu().numpy()
    n = len(arr)
    if n == 0:
        return torch.zeros((0, arr.shape[1] + 1), dtype=torch.int64), 1
    _, group = np.unique(arr, axis=0, return_inverse=True)
    group = group.reshape(-1)
    order = np.argsort(group, kind="stable")  # stable: item-index order within each group
    sorted_group = group[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_group)) + 1]
    first = np.repeat(starts, np.diff(np.r_[starts, n]))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - first
    out = np.concatenate([arr.astype(np.int64), rank[:, None]], axis=1)
    return torch.from_numpy(out), int(rank.max()) + 1


def health_report(codes: np.ndarray, sizes: tuple[int, ...]) -> dict[str, object]:
    """Quality of the tuples BEFORE de-dup: how much of each codebook is used and how evenly.

    Keys: items, codes_used [L], entropy_bits [L] (of each level's code distribution), max_entropy_bits
    [L], unique_tuples, collision_rate (fraction of items whose tuple another item shares) and
    max_items_per_tuple (= the de-dup level's size).
    """
    n, levels = codes.shape
    used, entropy = [], []
    for level in range(levels):
        counts = np.bincount(codes[:, level], minlength=sizes[level])
        p = counts[counts > 0] / max(n, 1)
        used.append(int((counts > 0).sum()))
        entropy.append(round(float(-(p * np.log2(p)).sum()), 3))
    _, group, group_size = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    shared = group_size[group.reshape(-1)] > 1
    return {
        "items": int(n),
        "codes_used": used,
        "entropy_bits": entropy,
        "max_entropy_bits": [round(float(np.log2(max(s, 1))), 3) for s in sizes],
        "unique_tuples": int(len(group_size)),
        "collision_rate": round(float(shared.mean()) if n else 0.0, 4),
        "max_items_per_tuple": int(group_size.max()) if n else 0,
    }


def format_health(ids: SemanticIds) -> str:
    """One line for logs: sizes, codebook use and entropy per level, collisions before de-dup."""
    h = ids.health
    used = "/".join(str(u) for u in h["codes_used"])  # type: ignore[union-attr]
    ent = "/".join(f"{e:.1f}" for e in h["entropy_bits"])  # type: ignore[union-attr]
    sizes = "x".join(str(s) for s in ids.sizes[:-1])
    return (f"semantic ids {ids.source}: {h['items']} items, {sizes}+dedup {ids.sizes[-1]}, "
            f"codes used {used}, "
            f"entropy {ent} bits, {100 * h['collision_rate']:.1f}% items collide "  # type: ignore[operator]
            f"(max {h['max_items_per_tuple']} per tuple), digest {ids.digest}")


def letter_codes(data: SplitData) -> tuple[np.ndarray, tuple[int, ...]]:
    """Parse LETTER tokens ('<a_183>' = code 183 at the level of its position) aligned to item_ids."""
    table = data.meta.semantic_ids
    if not table:
        raise GenrecError(f"tokenizer method 'letter' needs precomputed semantic ids, but dataset "
                          f"'{data.name}' ships none; use method rkmeans or rqvae")
    raw_ids = [str(r) for r in data.item_ids]
    missing = [r for r in raw_ids if r not in table]
    if missing:
        raise GenrecError(f"precomputed semantic ids of dataset '{data.name}' miss {len(missing)} of "
                          f"{len(raw_ids)} items (first: {', '.join(missing[:5])})")
    codes = parse_letter([table[r] for r in raw_ids], raw_ids, f"precomputed semantic ids of '{data.name}'")
    return codes, tuple(int(c) + 1 for c in codes.max(axis=0))


def parse_letter(rows: list[list[str]], raw_ids: list[str], where: str) -> np.ndarray:
    """[N, depth] int64 codes of LETTER token rows; every row must have the first row's depth."""
    depth = len(rows[0])
    bad = next((r for r, row in zip(raw_ids, rows, strict=True) if len(row) != depth), None)
    if bad is not None:
        raise GenrecError(f"{where}: item {bad!r} has {len(rows[raw_ids.index(bad)])} tokens; "
                          f"expected {depth} like the first item")
    tokens = pl.Series([t for row in rows for t in row])  # [N * depth], row-major
    parts = tokens.str.extract_groups(_LETTER_TOKEN.pattern).struct.unnest()
    expected = np.tile([chr(ord("a") + lv) for lv in range(depth)], len(rows))
    bad = parts["1"].is_null().to_numpy() | (parts["1"].fill_null("").to_numpy() != expected)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise GenrecError(f"{where}: token {tokens[i]!r} of item {raw_ids[i // depth]!r} is not "
                          f"of the form '<{expected[i]}_123>' (level {i % depth})")
    return parts["2"].cast(pl.Int64).to_numpy(writable=True).reshape(len(rows), depth)


def letter_tokens(codes: np.ndarray) -> list[list[str]]:
    """LETTER tokens of a code table: level l's code c is '<{letter l}_{c}>' (the inverse of `parse_letter`)."""
    if codes.shape[1] > 26:
        raise GenrecError(f"LETTER tokens name at most 26 levels; this table has {codes.shape[1]}")
    letters = [chr(ord("a") + lv) for lv in range(codes.shape[1])]
    return [[f"<{letters[lv]}_{c}>" for lv, c in enumerate(row)] for row in codes.tolist()]


def build_semantic_ids(data: SplitData, cfg: TokenizerConfig, cache: bool = True) -> SemanticIds:
    """Unique code tuples for every item of `data` (cached on disk by content when `cache`)."""
    if cfg.method == "letter":
        source, key = "letter", f"{VERSION}|letter|{_letter_digest(data)}"
    else:
        parts = resolve_spec(data, cfg.features)
        flags = [f for f, on in (("balanced", cfg.kmeans_balanced and cfg.method == "rkmeans"),
                                 ("spread", cfg.spread_last_level)) if on]
        source = f"{cfg.method}({'+'.join(parts)}{''.join(',' + f for f in flags)})"
        key = f"{VERSION}|{FEATURES_VERSION}|{feature_key(data, parts, cfg.seed)}|{dataclasses.asdict(cfg)}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    folder = cache_dir() / "semantic_ids"
    stem = f"{data.name}-{cfg.method}-{digest}"
    npy, meta = folder / f"{stem}.npy", folder / f"{stem}.json"
    if cache and npy.exists() and meta.exists():
        info = json.loads(meta.read_text())
        codes = torch.from_numpy(np.load(npy))
        return SemanticIds(codes, tuple(info["sizes"]), info["health"], info["source"])
    if cfg.method == "letter":
        raw, sizes = letter_codes(data)
    else:
        feats = item_features(data, cfg.features, cfg.seed, cache=cache)
        raw, sizes = _quantise(feats, cfg)
    codes, dedup_size = dedup_level(torch.from_numpy(raw))
    ids = SemanticIds(codes, (*sizes, dedup_size), health_report(raw, sizes), source)
    if cache:
        buf = io.BytesIO()
        np.save(buf, codes.numpy())
        atomic_write_bytes(npy, buf.getvalue())
        atomic_write_json(meta, {"sizes": list(ids.sizes), "health": ids.health, "source": source})
    return ids


def _quantise(feats: np.ndarray, cfg: TokenizerConfig) -> tuple[np.ndarray, tuple[int, ...]]:
    if cfg.method == "rkmeans":
        return quantize.residual_kmeans(feats, cfg.levels, cfg.codebook_size, cfg.seed, cfg.kmeans_n_init,
                                        cfg.kmeans_max_iter, cfg.spread_last_level, cfg.kmeans_balanced)
    return quantize.rqvae(feats, cfg.levels, cfg.codebook_size, cfg.seed, latent_dim=cfg.rqvae_latent_dim,
                          hidden_dim=cfg.rqvae_hidden_dim, epochs=cfg.rqvae_epochs,
                          batch_size=cfg.rqvae_batch_size, lr=cfg.rqvae_lr, beta=cfg.rqvae_beta,
                          spread=cfg.spread_last_level)


def _letter_digest(data: SplitData) -> str:
    table = data.meta.semantic_ids
    body = "\n".join(f"{r}:{','.join(table.get(r, []))}" for r in data.item_ids.astype(str))
    return hashlib.sha256(body.encode()).hexdigest()
