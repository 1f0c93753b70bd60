from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import walk_split
from genrec_bench.config import DataConfig, TrainConfig
from genrec_bench.data.loaders import Interactions, ItemMeta, load_interactions
from genrec_bench.data.split import PAD, kcore, make_split
from genrec_bench.errors import GenrecError
from genrec_bench.evaluate import validation_users


def _inter(rows: list[tuple[str, str, float]], source: Path = Path("mem.csv")) -> Interactions:
    frame = pl.DataFrame(
        {"user_id": [r[0] for r in rows], "item_id": [r[1] for r in rows], "timestamp": [float(r[2]) for r in rows]}
    ).with_row_index("row")
    return Interactions(frame=frame.select("user_id", "item_id", "timestamp", "row"), meta=ItemMeta(), source=source)


def test_kcore_reaches_fixed_point():
    # d has 1 interaction -> dropped; u4 falls to 1 -> dropped; c falls to 1 -> dropped; u3 falls to 1 -> dropped.
    rows = [("1", "a", 0), ("1", "b", 1), ("2", "a", 0), ("2", "b", 1), ("3", "a", 0), ("3", "c", 1), ("4", "c", 0),
            ("4", "d", 1)]
    out = kcore(_inter(rows).frame, k_user=2, k_item=2)
    assert sorted(set(out["item_id"].to_list())) == ["a", "b"]
    assert sorted(set(out["user_id"].to_list())) == ["1", "2"]


def test_leave_one_out_order_ties_and_indices(tmp_path):
    rows = [
        ("u1", "x", 5), ("u1", "y", 1), ("u1", "z", 1), ("u1", "w", 9),  # y and z tie: file order kept
        ("u2", "z", 1), ("u2", "x", 2), ("u2", "w", 3),
    ]
    src = tmp_path / "d.csv"
    src.write_text("placeholder")
    split = make_split(_inter(rows, src), DataConfig(kcore=0, max_history=2), "d")
    assert split.item_ids.tolist() == ["x", "y", "z", "w"]  # first appearance in the file
    assert split.user_ids.tolist() == ["u1", "u2"]
    assert split.sequence(0).tolist() == [1, 2, 0, 3]  # y, z, x, w
    hist, tgt = split.eval_arrays("test")
    assert tgt.tolist() == [3, 3]
    assert hist.tolist() == [[2, 0], [2, 0]]  # last 2 items before the target (validation item included)
    hist, tgt = split.eval_arrays("valid")
    assert tgt.tolist() == [0, 0]
    assert hist.tolist() == [[1, 2], [PAD, 2]]
    flat, offsets = split.train_sequences()
    assert flat.tolist() == [1, 2, 2] and offsets.tolist() == [0, 2, 3]


def test_fingerprint_depends_on_bytes_and_split_config(tmp_path):
    a = tmp_path / "a.txt"
    a.write_text("1 1 2 3\n2 2 3 1\n")
    s1 = make_split(load_interactions(a), DataConfig(kcore=0), "a")
    s2 = make_split(load_interactions(a), DataConfig(kcore=0, max_history=5), "a")
    s3 = make_split(load_interactions(a), DataConfig(kcore=2), "a")
    assert s1.fingerprint == s2.fingerprint  # history length changes inputs, not the split
    assert s1.fingerprint != s3.fingerprint
    assert make_split(load_interactions(a), DataConfig(kcore=0, exclude_seen=True), "a").fingerprint != s1.fingerprint
    a.write_text("1 1 2 3\n2 2 3 3\n")
    assert make_split(load_interactions(a), DataConfig(kcore=0), "a").fingerprint != s1.fingerprint


def test_no_user_left_is_a_clear_error(tmp_path):
    src = tmp_path / "few.csv"
    src.write_text("x")
    with pytest.raises(GenrecError, match="few.csv: no user is left after the 5-core filter"):
        make_split(_inter([("u", "a", 1), ("u", "b", 2), ("u", "c", 3)], src), DataConfig(), "few")


def test_users_with_fewer_than_three_interactions_are_dropped(tmp_path):
    rows = [("a", "1", 0), ("a", "2", 1), ("b", "1", 0), ("b", "2", 1), ("b", "3", 2)]
    split = make_split(_inter(rows), DataConfig(kcore=0), "m")
    assert split.user_ids.tolist() == ["b"]


interaction_tables = st.lists(
    st.tuples(st.integers(0, 12), st.integers(0, 15), st.integers(0, 50)), min_size=1, max_size=250
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=interaction_tables, k=st.integers(0, 4), length=st.integers(1, 6))
def test_split_invariants(rows, k, length):
    inter = _inter([(f"u{u}", f"i{i}", t) for u, i, t in rows])
    try:
        split = make_split(inter, DataConfig(kcore=k, max_history=length), "prop")
    except GenrecError:
        longest = pl.DataFrame({"u": [r[0] for r in rows]}).group_by("u").len()["len"].max()
        assert longest < max(3, k) or k > 0  # with no k-core, only users below 3 interactions can vanish
        return
    lengths = np.diff(split.offsets)
    assert (lengths >= max(3, k)).all()
    assert lengths.sum() == len(split.items) <= len(rows)  # counts add up, nothing invented
    hist_t, tgt_t = split.eval_arrays("test")
    hist_v, tgt_v = split.eval_arrays("valid")
    flat, offsets = split.train_sequences()
    assert len(tgt_t) == split.n_users  # exactly one test target per user
    for u in range(split.n_users):
        seq = split.sequence(u)
        assert tgt_t[u] == seq[-1] and tgt_v[u] == seq[-2]
        train = flat[offsets[u] : offsets[u + 1]]
        assert train.tolist() == seq[:-2].tolist()  # no target leaks into training
        assert len(train) + 2 == len(seq)
        assert [x for x in hist_t[u] if x != PAD] == seq[:-1][-length:].tolist()
        assert [x for x in hist_v[u] if x != PAD] == seq[:-2][-length:].tolist()
    # k-core holds on the result
    if k:
        assert np.bincount(split.items, minlength=split.n_items).min() >= k


def test_validation_users_fixed_random_sample_or_file_order(tmp_path):
    data = walk_split(tmp_path, n_users=40)
    sample = validation_users(data, TrainConfig(valid_users=10))
    assert len(sample) == 10 and len(set(sample.tolist())) == 10 and (np.diff(sample) > 0).all()
    assert sample.tolist() != list(range(10))  # not the head of the file
    # The same users for every training seed and call: models are compared on one validation set.
    assert validation_users(data, TrainConfig(valid_users=10, seed=3)).tolist() == sample.tolist()
    assert validation_users(data, TrainConfig(valid_users=10, valid_sample="first")).tolist() == list(range(10))
    assert validation_users(data, TrainConfig(valid_users=0)).tolist() == list(range(40))
    assert validation_users(data, TrainConfig(valid_users=99)).tolist() == list(range(40))


def test_max_users_keeps_the_first_users_and_the_whole_catalogue(tmp_path):
    """The MindRec reference population: the first users in file order, every item still rankable."""
    import polars as pl

    from genrec_bench.config import DataConfig
    from genrec_bench.data.loaders import Interactions, ItemMeta
    from genrec_bench.data.split import make_split

    rows = [(f"u{u}", f"i{(3 * u + j) % 17}", float(j)) for u in range(8) for j in range(5)]
    frame = pl.DataFrame(rows, schema={"user_id": pl.String, "item_id": pl.String, "timestamp": pl.Float64},
                         orient="row").with_row_index("row")
    (tmp_path / "f.txt").write_text("x\n")
    inter = Interactions(frame=frame.select("user_id", "item_id", "timestamp", "row"), meta=ItemMeta(),
                         source=tmp_path / "f.txt")
    full = make_split(inter, DataConfig(kcore=0), "t")
    first = make_split(inter, DataConfig(kcore=0, max_users=3), "t")
    assert first.user_ids.tolist() == ["u0", "u1", "u2"] and first.n_items == full.n_items
    for u in range(3):
        assert full.sequence(u).tolist() == first.sequence(u).tolist()
    assert first.fingerprint != full.fingerprint
    assert make_split(inter, DataConfig(kcore=0, max_users=3), "t").fingerprint == first.fingerprint
    assert make_split(inter, DataConfig(kcore=0, max_users=0), "t").fingerprint == full.fingerprint
