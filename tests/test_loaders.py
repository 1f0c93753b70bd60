from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from genrec_bench.data.loaders import load_interactions, read_item2attributes, read_semantic_ids
from genrec_bench.data.registry import load_dataset, resolve
from genrec_bench.errors import GenrecError


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_sequence_file_keeps_order(tmp_path):
    path = _write(tmp_path, "a.txt", "1 5 3 9\n2 3 5\n")
    frame = load_interactions(path).frame
    assert frame["user_id"].to_list() == ["1", "1", "1", "2", "2"]
    assert frame["item_id"].to_list() == ["5", "3", "9", "3", "5"]
    assert frame["timestamp"].to_list() == sorted(frame["timestamp"].to_list())


def test_csv_extra_columns_and_optional_rating(tmp_path):
    path = _write(tmp_path, "a.csv", "user_id,item_id,timestamp,rating,x\nu1,i1,10,5,a\nu1,i2,5,3,b\n")
    frame = load_interactions(path).frame
    assert frame.columns == ["user_id", "item_id", "timestamp", "row"]
    assert frame["timestamp"].to_list() == [10.0, 5.0]


def test_tsv_and_atomic_and_parquet(tmp_path):
    tsv = _write(tmp_path, "a.tsv", "user_id\titem_id\ttimestamp\nu\ti\t1\n")
    assert load_interactions(tsv).frame.height == 1
    atomic = _write(tmp_path, "a.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t2\t3\t4\n")
    assert load_interactions(atomic).frame["item_id"].to_list() == ["2"]
    pq = tmp_path / "a.parquet"
    pl.DataFrame({"user_id": [1, 2], "item_id": [3, 4], "timestamp": [1.0, 2.0]}).write_parquet(pq)
    assert load_interactions(pq).frame["user_id"].to_list() == ["1", "2"]


def test_unisrec_prefix_rows_become_each_users_longest_sequence(tmp_path):
    path = _write(tmp_path, "x.train.inter", "user_id:token\titem_id_list:token_seq\titem_id:token\n"
                                             "0\t0 1\t2\n0\t0\t1\n1\t3\t0\n")
    frame = load_interactions(path, "unisrec").frame
    assert frame["user_id"].to_list() == ["0", "0", "0", "1", "1"]
    assert frame["item_id"].to_list() == ["0", "1", "2", "3", "0"]
    bad = _write(tmp_path, "y.train.inter", "user_id:token\titem_id_list:token_seq\n0\t0 1\n")
    with pytest.raises(GenrecError, match="missing column.*item_id"):
        load_interactions(bad, "unisrec")


def test_format_override(tmp_path):
    path = _write(tmp_path, "data.log", "user_id,item_id,timestamp\na,b,1\n")
    with pytest.raises(GenrecError, match="--data-format"):
        load_interactions(path)
    assert load_interactions(path, "csv").frame.height == 1


@pytest.mark.parametrize(
    ("name", "content", "pattern"),
    [
        ("empty.csv", "", r"empty.csv: file is empty"),
        ("hdr.csv", "user_id,item_id,timestamp\n", "no interactions"),
        ("miss.csv", "user_id,item,timestamp\nu,i,1\n", r"miss.csv:1: missing column\(s\) item_id"),
        ("dup.csv", "user_id,item_id,timestamp,item_id\nu,i,1,j\n", r"dup.csv:1: duplicated column 'item_id'"),
        ("ts.csv", "user_id,item_id,timestamp\nu,i,1\nu,j,yesterday\n",
         r"ts.csv:3: timestamp 'yesterday' is not a number"),
        ("neg.csv", "user_id,item_id,timestamp\nu,i,1\nu,j,-5\n", r"neg.csv:3: timestamp -5 is negative"),
        ("rows.csv", "user_id,item_id,timestamp\nu,i,1\nu,j,2,7,8\n", r"rows.csv:3: expected 3 fields, found 5"),
        ("noid.csv", "user_id,item_id,timestamp\nu,,1\n", r"noid.csv:2: empty item_id"),
        ("short.tsv", "user_id\titem_id\ttimestamp\nu\ti\t1\nu\tj\n", r"short.tsv:3: expected 3 fields, found 2"),
        ("ts.inter", "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n1\t3\tnoon\n",
         r"ts.inter:3: timestamp 'noon' is not a number"),
        ("short.inter", "user_id:token\titem_id:token\ttimestamp:float\n1\t2\n", r"short.inter:2: expected 3 fields"),
        ("short.txt", "1 2 3\n7\n", r"short.txt:2: expected 'user item1 item2"),
    ],
)
def test_malformed_files_name_file_line_and_expectation(tmp_path, name, content, pattern):
    path = _write(tmp_path, name, content)
    with pytest.raises(GenrecError, match=pattern):
        load_interactions(path)


def test_non_utf8_bytes_are_located(tmp_path):
    path = _write(tmp_path, "bad.txt", b"1 2 3\n2 3 4\n3 \xff\xfe 4\n")
    with pytest.raises(GenrecError, match=r"bad.txt:3: invalid UTF-8 byte 0xff"):
        load_interactions(path)


def test_parquet_float_ids_rejected(tmp_path):
    pq = tmp_path / "f.parquet"
    pl.DataFrame({"user_id": [1.5], "item_id": [2], "timestamp": [1.0]}).write_parquet(pq)
    with pytest.raises(GenrecError, match="'user_id' must hold strings or integers"):
        load_interactions(pq)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(GenrecError, match="file not found"):
        load_interactions(tmp_path / "nope.csv")
    with pytest.raises(GenrecError, match="directory"):
        load_interactions(tmp_path)


def test_metadata_readers(tmp_path):
    attrs = _write(tmp_path, "a.json", '{"1": [1, 2], "2": [3]}')
    assert read_item2attributes(attrs) == {"1": [1, 2], "2": [3]}
    bad = _write(tmp_path, "b.json", '{"1": [1, "x"]}')
    with pytest.raises(GenrecError, match="integer attribute ids"):
        read_item2attributes(bad)
    broken = _write(tmp_path, "c.json", '{"1": [1,\n')
    with pytest.raises(GenrecError, match=r"c.json:2: invalid JSON"):
        read_item2attributes(broken)
    sids = _write(tmp_path, "s.json", '{"0": ["<a_1>", "<b_2>"]}')
    assert read_semantic_ids(sids, id_offset=1) == {"1": ["<a_1>", "<b_2>"]}


def test_unknown_dataset_suggests_close_names():
    with pytest.raises(GenrecError, match="did you mean: beauty"):
        resolve("beautty")


def test_embedded_beauty_matches_published_counts():
    inter = load_dataset("beauty")
    assert inter.frame.height == 198_502
    assert inter.frame["user_id"].n_unique() == 22_363
    assert inter.frame["item_id"].n_unique() == 12_101
    assert len(inter.meta.attributes) == 12_101
    assert inter.meta.semantic_ids["1"][0].startswith("<a_")
