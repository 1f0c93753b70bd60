"""Item feature blocks on a hand-made catalogue: shapes, normalisation, determinism, no leakage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from genrec_bench.config import DataConfig
from genrec_bench.data.loaders import Interactions, ItemMeta
from genrec_bench.data.split import SplitData, make_split
from genrec_bench.errors import GenrecError
from genrec_bench.items import features as F

N_ITEMS = 10


def tiny_split(tmp_path: Path, sequences: dict[str, list[int]] | None = None,
               meta: ItemMeta | None = None) -> SplitData:
    """A split from a small polars frame; u0 sees every item first, so item indices = i0..i9."""
    sequences = sequences or {
        "u0": list(range(N_ITEMS)) + [0, 1],
        "u1": [0, 1, 2, 3, 4, 5], "u2": [5, 6, 7, 8, 9, 0], "u3": [1, 3, 5, 7, 9, 2],
        "u4": [0, 2, 4, 6, 8, 1], "u5": [9, 8, 7, 6, 5, 4],
    }
    rows = [(u, f"i{i}", float(t)) for u, seq in sequences.items() for t, i in enumerate(seq)]
    frame = pl.DataFrame({"user_id": [r[0] for r in rows], "item_id": [r[1] for r in rows],
                          "timestamp": [r[2] for r in rows]}).with_row_index("row")
    frame = frame.select("user_id", "item_id", "timestamp", pl.col("row").cast(pl.UInt32))
    source = tmp_path / "tiny.txt"
    source.write_text(repr(sequences))  # the fingerprint hashes the source bytes
    return make_split(Interactions(frame, meta or ItemMeta(), source), DataConfig(kcore=0), "tiny")


def tiny_meta() -> ItemMeta:
    texts = ["red lipstick matte", "red lipstick gloss", "blue eyeshadow palette", "blue eyeliner pencil",
             "green face mask clay", "green face mask sheet", "shampoo for dry hair", "conditioner dry hair",
             "nail polish pink", ""]
    return ItemMeta(
        text={f"i{i}": t for i, t in enumerate(texts)},
        attributes={f"i{i}": [i % 3, 10 + i % 2] for i in range(N_ITEMS - 1)},  # i9 has no attributes
    )


def test_cooccurrence_counts_pairs_within_window_and_user() -> None:
    flat = np.array([0, 1, 2, 3, 1])
    offsets = np.array([0, 3, 5])  # user A: 0 1 2, user B: 3 1
    counts = F.cooccurrence(flat, offsets, 4, window=1).toarray()
    expected = np.zeros((4, 4))
    for a, b in [(0, 1), (1, 2), (3, 1)]:
        expected[a, b] += 1
        expected[b, a] += 1
    np.testing.assert_array_equal(counts, expected)
    wide = F.cooccurrence(flat, offsets, 4, window=2).toarray()
    assert wide[0, 2] == 1 and wide[2, 3] == 0  # 0..2 are two steps apart; 2 and 3 are different users


def test_collab_ignores_validation_and_test_items(tmp_path: Path) -> None:
    base = tiny_split(tmp_path)
    seqs = {f"u{u}": [int(x) for x in base.sequence(u)] for u in range(base.n_users)}
    changed = {u: s[:-2] + [(s[-2] + 3) % N_ITEMS, (s[-1] + 5) % N_ITEMS] for u, s in seqs.items()}
    other = tiny_split(tmp_path, changed)
    assert list(other.item_ids) == list(base.item_ids)
    a = F.item_features(base, "collab", cache=False)
    b = F.item_features(other, "collab", cache=False)
    np.testing.assert_allclose(a, b, atol=1e-6)
    # ... while a change in the training part does move the vectors, so the check above can fail.
    trained = dict(seqs, u1=[seqs["u1"][0], 9, *seqs["u1"][2:]])
    moved = tiny_split(tmp_path, trained)
    assert list(moved.item_ids) == list(base.item_ids)
    c = F.item_features(moved, "collab", cache=False)
    assert not np.allclose(np.abs(a), np.abs(c), atol=1e-3)


def test_blocks_shapes_normalisation_and_determinism(tmp_path: Path) -> None:
    data = tiny_split(tmp_path, meta=tiny_meta())
    for spec in ("tfidf", "attributes", "collab"):
        x = F.item_features(data, spec, seed=3, cache=False)
        assert x.dtype == np.float32 and x.shape[0] == N_ITEMS and x.shape[1] >= 2
        norms = np.linalg.norm(x, axis=1)
        has = norms > 0
        np.testing.assert_allclose(norms[has], 1.0, atol=1e-5)
        np.testing.assert_array_equal(x, F.item_features(data, spec, seed=3, cache=False))
    attrs = F.item_features(data, "attributes", cache=False)
    assert np.allclose(attrs[0], attrs[6])  # same attribute set {0, 10}
    assert not np.allclose(attrs[0], attrs[1])
    assert np.all(attrs[9] == 0)  # no attributes -> zero block
    tfidf = F.item_features(data, "tfidf", cache=False)
    assert np.all(tfidf[9] == 0)  # empty text -> zero block


def test_random_vectors_depend_on_the_seed_only(tmp_path: Path) -> None:
    data = tiny_split(tmp_path, meta=tiny_meta())
    x = F.item_features(data, "random", seed=1, cache=False)
    assert x.shape == (N_ITEMS, F.RANDOM_DIM)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(x, F.item_features(data, "random", seed=1, cache=False))
    assert not np.allclose(x, F.item_features(data, "random", seed=2, cache=False))
    other = tiny_split(tmp_path, sequences={"u0": [9, 8, 7, 6, 5, 4, 3, 2, 1, 0], "u1": [0, 1, 2]})
    np.testing.assert_array_equal(F.item_features(other, "random", seed=1, cache=False), x)  # nothing of the data


def test_concatenation_keeps_each_block_unit_length(tmp_path: Path) -> None:
    data = tiny_split(tmp_path, meta=tiny_meta())
    attrs = F.item_features(data, "attributes", cache=False)
    collab = F.item_features(data, "collab", cache=False)
    both = F.item_features(data, "attributes+collab", cache=False)
    np.testing.assert_array_equal(both, np.concatenate([attrs, collab], axis=1))


def test_auto_and_spec_errors(tmp_path: Path) -> None:
    plain = tiny_split(tmp_path)
    assert F.resolve_spec(plain, "auto") == ("collab",)
    assert F.resolve_spec(tiny_split(tmp_path, meta=ItemMeta(attributes={"i0": [1]})), "auto") == (
        "attributes", "collab")
    assert F.resolve_spec(tiny_split(tmp_path, meta=tiny_meta()), "auto") == ("text",)
    with pytest.raises(GenrecError, match="unknown item feature source 'colab'"):
        F.resolve_spec(plain, "attributes+colab")
    with pytest.raises(GenrecError, match="has none"):
        F.resolve_spec(plain, "text")
    with pytest.raises(GenrecError, match="twice"):
        F.resolve_spec(plain, "collab+collab")


def test_cache_is_written_and_reused(tmp_path: Path) -> None:
    data = tiny_split(tmp_path, meta=tiny_meta())
    first = F.item_features(data, "attributes+collab", seed=1)
    files = sorted((tmp_path / "cache" / "features").glob("*.npy"))  # conftest points the cache here
    assert len(files) == 2 and [f.name.split("-")[1] for f in files] == ["attributes", "collab"]
    np.save(files[0], np.full((N_ITEMS, 3), 7, dtype=np.float32))  # tampered: proves it is read back
    again = F.item_features(data, "attributes+collab", seed=1)
    assert again.shape == (N_ITEMS, 3 + first.shape[1] - F.item_features(data, "attributes", seed=1,
                                                                          cache=False).shape[1])
    assert np.all(again[:, :3] == 7)
    assert not np.all(F.item_features(data, "attributes", seed=2)[:, :3] == 7)  # the seed is in the key


def test_minilm_embeddings(tmp_path: Path) -> None:
    """The only test that loads MiniLM (once): shape, unit length, and similar texts closer."""
    emb = F.embed_texts(["red matte lipstick", "a glossy red lipstick", "engine oil for trucks"])
    assert emb.shape == (3, F.EMBED_DIM)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert emb[0] @ emb[1] > emb[0] @ emb[2]
    data = tiny_split(tmp_path, meta=tiny_meta())
    text = F.item_features(data, "text", cache=False)
    assert text.shape == (N_ITEMS, F.EMBED_DIM)
    assert np.all(text[9] == 0)  # empty text -> zero block
    assert text[0] @ text[1] > text[0] @ text[7]
