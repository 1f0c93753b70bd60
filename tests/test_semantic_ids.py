"""Semantic IDs end to end on a hand-made split, plus hand-computed de-dup and health cases."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from genrec_bench.config import DataConfig
from genrec_bench.data.loaders import Interactions, ItemMeta
from genrec_bench.data.split import SplitData, make_split
from genrec_bench.errors import GenrecError
from genrec_bench.items.semantic_ids import (
    SemanticIds,
    TokenizerConfig,
    build_semantic_ids,
    dedup_level,
    format_health,
    health_report,
)

N_ITEMS = 24


def tiny_split(tmp_path: Path, meta: ItemMeta) -> SplitData:
    """24 items, 30 users walking the catalogue with different strides; u0 sees items in index order."""
    seqs = {"u0": list(range(N_ITEMS)) + [0, 1]}
    for u in range(1, 30):
        seqs[f"u{u}"] = [(u * 7 + j * (1 + u % 4)) % N_ITEMS for j in range(6)]
    rows = [(u, f"i{i}", float(t)) for u, seq in seqs.items() for t, i in enumerate(seq)]
    frame = pl.DataFrame({"user_id": [r[0] for r in rows], "item_id": [r[1] for r in rows],
                          "timestamp": [r[2] for r in rows]}).with_row_index("row")
    frame = frame.select("user_id", "item_id", "timestamp", pl.col("row").cast(pl.UInt32))
    source = tmp_path / "tiny.txt"
    source.write_text(repr(seqs))
    return make_split(Interactions(frame, meta, source), DataConfig(kcore=0), "tiny")


def meta() -> ItemMeta:
    letters = "abc"
    return ItemMeta(
        attributes={f"i{i}": [i % 4, 4 + i % 3] for i in range(N_ITEMS)},
        semantic_ids={f"i{i}": [f"<{letters[lv]}_{(i // (lv + 2)) % 5}>" for lv in range(3)] for i in range(N_ITEMS)},
    )


def test_dedup_level_hand_computed() -> None:
    codes = torch.tensor([[1, 2], [1, 2], [0, 0], [1, 2], [0, 0], [3, 3]])
    out, size = dedup_level(codes)
    assert size == 3
    assert out.dtype == torch.int64
    assert torch.equal(out[:, :2], codes)
    assert out[:, 2].tolist() == [0, 1, 0, 2, 1, 0]  # numbered in item-index order within each tuple
    unique, size = dedup_level(torch.tensor([[0], [1], [2]]))
    assert size == 1 and unique[:, 1].tolist() == [0, 0, 0]
    empty, size = dedup_level(torch.zeros((0, 2), dtype=torch.int64))
    assert empty.shape == (0, 3) and size == 1


def test_health_hand_computed() -> None:
    codes = np.array([[0, 1], [0, 1], [1, 0], [1, 1]])
    h = health_report(codes, (2, 4))
    assert h["codes_used"] == [2, 2]
    assert h["entropy_bits"] == [1.0, pytest.approx(0.811, abs=1e-3)]
    assert h["max_entropy_bits"] == [1.0, 2.0]
    assert h["collision_rate"] == 0.5  # items 0 and 1 share (0, 1)
    assert h["max_items_per_tuple"] == 2 and h["unique_tuples"] == 3


@pytest.mark.parametrize("cfg", [
    TokenizerConfig(method="rkmeans", features="attributes+collab", levels=2, codebook_size=4),
    TokenizerConfig(method="rkmeans", features="collab", levels=3, codebook_size=256),
    TokenizerConfig(method="rqvae", features="attributes", levels=2, codebook_size=4, rqvae_epochs=5,
                    rqvae_hidden_dim=16, rqvae_latent_dim=4, rqvae_batch_size=8),
    TokenizerConfig(method="rkmeans", features="collab", levels=2, codebook_size=4, kmeans_balanced=True,
                    spread_last_level=True),
    TokenizerConfig(method="letter"),
], ids=["rkmeans", "rkmeans-clamped", "rqvae", "rkmeans-balanced-spread", "letter"])
def test_build_gives_unique_in_range_deterministic_ids(tmp_path: Path, cfg: TokenizerConfig) -> None:
    data = tiny_split(tmp_path, meta())
    ids = build_semantic_ids(data, cfg, cache=False)
    levels = 3 if cfg.method == "letter" else cfg.levels
    assert ids.codes.shape == (N_ITEMS, levels + 1) and ids.codes.dtype == torch.int64
    assert len(ids.sizes) == levels + 1
    assert bool((ids.codes >= 0).all()) and bool((ids.codes < torch.tensor(ids.sizes)).all())
    assert len(torch.unique(ids.codes, dim=0)) == N_ITEMS
    assert all(s <= cfg.codebook_size for s in ids.sizes[:-1]) or cfg.method == "letter"
    assert ids.health["items"] == N_ITEMS
    assert ids.source.startswith(cfg.method)
    assert ("balanced" in ids.source) == cfg.kmeans_balanced
    again = build_semantic_ids(data, cfg, cache=False)
    assert torch.equal(ids.codes, again.codes) and ids.sizes == again.sizes


def test_letter_codes_are_parsed_and_aligned(tmp_path: Path) -> None:
    data = tiny_split(tmp_path, meta())
    ids = build_semantic_ids(data, TokenizerConfig(method="letter"), cache=False)
    raw = np.array([[(int(r[1:]) // (lv + 2)) % 5 for lv in range(3)] for r in data.item_ids])
    np.testing.assert_array_equal(ids.codes[:, :3].numpy(), raw)
    assert ids.sizes[:3] == (5, 5, 5) and ids.source == "letter"


def test_letter_errors_name_the_problem(tmp_path: Path) -> None:
    m = meta()
    del m.semantic_ids["i3"]
    with pytest.raises(GenrecError, match=r"miss 1 of 24 items \(first: i3\)"):
        build_semantic_ids(tiny_split(tmp_path, m), TokenizerConfig(method="letter"), cache=False)
    m = meta()
    m.semantic_ids["i2"] = ["<a_1>", "b7", "<c_2>"]
    with pytest.raises(GenrecError, match="'b7' of item 'i2'"):
        build_semantic_ids(tiny_split(tmp_path, m), TokenizerConfig(method="letter"), cache=False)
    with pytest.raises(GenrecError, match="ships none"):
        build_semantic_ids(tiny_split(tmp_path, ItemMeta()), TokenizerConfig(method="letter"), cache=False)


def test_config_validation_names_the_key() -> None:
    with pytest.raises(GenrecError, match="'tokenizer.method' must be one of"):
        TokenizerConfig(method="vq")
    with pytest.raises(GenrecError, match="'tokenizer.levels' must be an integer >= 1, got 0"):
        TokenizerConfig(levels=0)
    with pytest.raises(GenrecError, match="'tokenizer.rqvae_lr'"):
        TokenizerConfig(rqvae_lr=0.0)


def test_cache_round_trip_and_format(tmp_path: Path) -> None:
    data = tiny_split(tmp_path, meta())
    cfg = TokenizerConfig(features="attributes", levels=2, codebook_size=4)
    built = build_semantic_ids(data, cfg)
    assert len(list((tmp_path / "cache" / "semantic_ids").glob("*.npy"))) == 1
    loaded = build_semantic_ids(data, cfg)
    assert torch.equal(built.codes, loaded.codes)
    assert (built.sizes, built.health, built.source) == (loaded.sizes, loaded.health, loaded.source)
    build_semantic_ids(data, TokenizerConfig(features="attributes", levels=2, codebook_size=4, seed=1))
    assert len(list((tmp_path / "cache" / "semantic_ids").glob("*.npy"))) == 2
    # Machine-independent properties only: which clusters k-means finds depends on the BLAS kernel.
    assert built.codes.shape == (24, 3) and len(set(map(tuple, built.codes.tolist()))) == 24
    assert all(1 <= s <= 4 for s in built.sizes[:2])
    assert all(int(built.codes[:, i].max()) < s for i, s in enumerate(built.sizes))
    line = format_health(built)
    assert re.fullmatch(rf"semantic ids rkmeans\(attributes\): 24 items, [1-4]x[1-4]\+dedup {built.sizes[-1]}, "
                        rf".*collide.*digest {built.digest}", line)


def test_digest_follows_the_codes_only() -> None:
    codes = torch.tensor([[0, 1, 0], [1, 0, 0]])
    ids = SemanticIds(codes, (2, 2, 1), {}, "a")
    assert len(ids.digest) == 12
    assert SemanticIds(codes.clone().to(torch.int32), (2, 2, 1), {}, "b").digest == ids.digest
    assert SemanticIds(codes.flip(0), (2, 2, 1), {}, "a").digest != ids.digest


def test_real_ids_do_not_depend_on_the_blas_thread_count() -> None:
    """The embedded Beauty features and ids with 1 and 2 BLAS/OpenMP threads: a float32 SVD gave
    features 1e-4 apart, and k-means turned that into other ids (12.2% vs 11.7% colliding items)."""
    from threadpoolctl import threadpool_limits

    from genrec_bench.data.registry import load_dataset
    from genrec_bench.items.features import item_features

    data = make_split(load_dataset("beauty"), DataConfig(), "beauty")
    cfg = TokenizerConfig(features="attributes+collab")  # TIGER's Beauty default, 3 x 256
    with threadpool_limits(2):
        two = build_semantic_ids(data, cfg, cache=False), item_features(data, cfg.features, cache=False)
    with threadpool_limits(1):
        one = build_semantic_ids(data, cfg, cache=False), item_features(data, cfg.features, cache=False)
    np.testing.assert_allclose(one[1], two[1], rtol=0, atol=1e-6)
    assert one[0].digest == two[0].digest


def test_format_health_reports_collisions() -> None:
    codes, size = dedup_level(torch.tensor([[0, 0], [0, 0], [1, 2]]))
    ids = SemanticIds(codes, (2, 3, size), health_report(np.array([[0, 0], [0, 0], [1, 2]]), (2, 3)), "x")
    assert "66.7% items collide (max 2 per tuple)" in format_health(ids)


def test_spread_last_level_separates_identical_items(tmp_path: Path) -> None:
    data = tiny_split(tmp_path, meta())  # 12 distinct attribute sets over 24 items: pairs are identical
    plain = build_semantic_ids(data, TokenizerConfig(features="attributes", levels=2, codebook_size=8), cache=False)
    spread = build_semantic_ids(data, TokenizerConfig(features="attributes", levels=2, codebook_size=8,
                                                      spread_last_level=True), cache=False)
    assert plain.health["collision_rate"] == 1.0 and plain.sizes[-1] == 2
    assert spread.health["collision_rate"] == 0.0 and spread.sizes[-1] == 1
    assert spread.source == "rkmeans(attributes,spread)"
    assert torch.equal(plain.codes[:, 0], spread.codes[:, 0])
