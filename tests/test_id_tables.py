"""Semantic-ID tables and category paths as files: exact round trips, shipped tables, clear errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from test_category_tree import NAMED, make_data, s3rec_table
from test_cli import run_cli
from test_semantic_ids import meta, tiny_split

from genrec_bench.data.loaders import ItemMeta, read_semantic_ids
from genrec_bench.errors import GenrecError
from genrec_bench.items.category_tree import NONE_NAME, TreeConfig, build_category_tree
from genrec_bench.items.id_tables import (
    TABLES_DIR,
    read_sid_table,
    read_tree_table,
    resolve_table,
    tree_digest,
    write_sid_table,
    write_tree_table,
)
from genrec_bench.items.semantic_ids import TokenizerConfig, build_semantic_ids

TOKEN = re.compile(r"^<[a-z]_\d+>$")


def test_sid_table_round_trip_is_exact(tmp_path: Path) -> None:
    data = tiny_split(tmp_path, meta())
    ids = build_semantic_ids(data, TokenizerConfig(features="attributes", levels=2, codebook_size=4))
    out = tmp_path / "ids.json"
    write_sid_table(out, data, ids)
    table = json.loads(out.read_text())
    assert list(table) == [str(r) for r in data.item_ids]  # keyed by raw item id, in item order
    assert all(len(row) == ids.n_levels and all(TOKEN.match(t) for t in row) for row in table.values())
    back = read_sid_table(str(out), data)
    assert torch.equal(back.codes, ids.codes)
    assert back.digest == ids.digest
    assert back.health == ids.health  # the last level is read as the de-dup level
    assert back.source == "file(ids.json)"


def test_letter_table_with_shared_rows_gets_a_dedup_level(tmp_path: Path) -> None:
    """A table with shared rows (LETTER's) is read as `sid_method = "letter"` reads the dataset's ids."""
    data = tiny_split(tmp_path, meta())
    letter = build_semantic_ids(data, TokenizerConfig(method="letter"))
    path = tmp_path / "letter.json"
    path.write_text(json.dumps(data.meta.semantic_ids))
    back = read_sid_table(str(path), data)
    assert torch.equal(back.codes, letter.codes) and back.sizes == letter.sizes
    assert back.health == letter.health


def test_sid_table_errors_name_the_file_and_item(tmp_path: Path) -> None:
    data = tiny_split(tmp_path, meta())
    path = tmp_path / "ids.json"
    path.write_text(json.dumps({"i0": ["<a_1>", "<b_2>"]}))
    with pytest.raises(GenrecError, match=r"ids\.json.*miss 23 of the split's 24 items \(first: i1"):
        read_sid_table(str(path), data)
    path.write_text(json.dumps({f"i{i}": ["<a_1>", "<c_2>" if i == 3 else f"<b_{i}>"] for i in range(24)}))
    with pytest.raises(GenrecError, match=r"token '<c_2>' of item 'i3' is not of the form '<b_123>'"):
        read_sid_table(str(path), data)
    with pytest.raises(GenrecError, match=r"'nowhere\.json' not found.*shipped: .*beauty-rkmeans"):
        read_sid_table("nowhere.json", data)


@pytest.mark.parametrize("meta_, cfg", [
    (ItemMeta(categories=NAMED), TreeConfig(depth=3)),  # <none> pads
    (ItemMeta(attributes=s3rec_table()), TreeConfig(depth=2)),  # subsumption: names reused under parents
])
def test_tree_round_trip_is_the_same_tree(tmp_path: Path, meta_: ItemMeta, cfg: TreeConfig) -> None:
    data = make_data(35 if meta_.attributes else 6, meta_)
    tree = build_category_tree(data, cfg)
    path = tmp_path / "tree.json"
    write_tree_table(path, data, tree)
    back = read_tree_table(str(path), data)
    assert torch.equal(back.paths, tree.paths)
    assert back.sizes == tree.sizes and back.names == tree.names
    assert all(torch.equal(a, b) for a, b in zip(back.parents, tree.parents, strict=True))
    assert tree_digest(back) == tree_digest(tree) is not None


def test_tree_numbering_depends_on_names_only() -> None:
    """Listing the same names in another vocabulary order gives the same node ids."""
    from genrec_bench.items.category_tree import assemble

    labels = np.array([[0, 1], [0, 2], [3, -1]])
    a = assemble(labels, ["x", "b", "a", "m"], "named")
    b = assemble(np.array([[3, 2], [3, 0], [1, -1]]), ["a", "m", "b", "x"], "named")
    assert torch.equal(a.paths, b.paths) and a.names == b.names


def test_tree_file_errors(tmp_path: Path) -> None:
    data = make_data(3)
    path = tmp_path / "tree.json"
    path.write_text(json.dumps({"1": ["A", "B"], "2": [NONE_NAME, "C"], "3": ["A", NONE_NAME]}))
    with pytest.raises(GenrecError, match=r"item '2': '<none>' may only pad the end of a path"):
        read_tree_table(str(path), data)
    path.write_text(json.dumps({"1": ["A", "B"], "2": ["A"], "3": ["A", "C"]}))
    with pytest.raises(GenrecError, match=r"item '2' has 1 category names; expected 2"):
        read_tree_table(str(path), data)
    path.write_text(json.dumps({"1": "A"}))
    with pytest.raises(GenrecError, match=r"expected a JSON object"):
        read_tree_table(str(path), data)


def test_shipped_beauty_table_has_its_digest_on_any_machine() -> None:
    """Parsing and hashing integers involves no floating point, so the digest cannot depend on the CPU."""
    from genrec_bench.items.semantic_ids import parse_letter

    path = resolve_table("beauty-rkmeans-e5b6cd0b8018.json")
    assert path.parent == TABLES_DIR
    table = read_semantic_ids(path)
    assert len(table) == 12101
    # Beauty's item ids are 1..12101 in split order, which is the order the file lists them in.
    codes = parse_letter(list(table.values()), list(table), path.name)
    import hashlib
    assert hashlib.sha256(codes.astype(np.int64).tobytes()).hexdigest()[:12] == "e5b6cd0b8018"


def test_tokenize_then_train_on_the_table(seq_file: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    """`tokenize` writes what a run would build; a run given `model.sid_file` records that digest."""
    table = tmp_path / "ids.json"
    sets = ["--set", "model.sid_features=\"collab\"", "--set", "model.sid_levels=2", "--set", "model.sid_codebook=3"]
    code, out, err = run_cli(["tokenize", "--data", str(seq_file), "--out", str(table), "--json", *sets],
                             capsys, monkeypatch)
    assert code == 0, err
    info = json.loads(out)
    run = tmp_path / "run"
    code, _, err = run_cli(["train", "-m", "tiger", "--data", str(seq_file), "-o", str(run),
                            "--set", f"model.sid_file=\"{table}\"", "--set", "train.max_steps=2",
                            "--set", "train.valid_users=5"], capsys, monkeypatch)
    assert code == 0, err
    extra = json.loads((run / "run.json").read_text())["fit"]["extra"]
    assert extra["sid_digest"] == info["sid_digest"]
    assert extra["semantic_ids"] == "file(ids.json)"
    code, _, err = run_cli(["tokenize", "-m", "sasrec", "--data", str(seq_file), "--out", str(table)],
                           capsys, monkeypatch)
    assert code == 2 and "has no semantic ids" in err


def test_mindrec_trains_on_written_ids_and_tree(seq_file: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    ids, tree = tmp_path / "ids.json", tmp_path / "tree.json"
    sets = ["--set", "model.sid_features=\"collab\"", "--set", "model.sid_levels=1", "--set", "model.sid_codebook=3",
            "--set", "model.tree_source=\"kmeans\"", "--set", "model.tree_branching=2", "--set", "model.tree_depth=1"]
    code, out, err = run_cli(["tokenize", "-m", "mindrec", "--data", str(seq_file), "--out", str(ids),
                              "--tree-out", str(tree), "--json", *sets], capsys, monkeypatch)
    assert code == 0, err
    info = json.loads(out)
    run = tmp_path / "run"
    code, _, err = run_cli(["train", "-m", "mindrec", "--data", str(seq_file), "-o", str(run),
                            "--set", f"model.sid_file=\"{ids}\"", "--set", f"model.tree_file=\"{tree}\"",
                            "--set", "train.max_steps=2", "--set", "train.valid_users=5"], capsys, monkeypatch)
    assert code == 0, err
    extra = json.loads((run / "run.json").read_text())["fit"]["extra"]
    assert (extra["sid_digest"], extra["tree_digest"]) == (info["sid_digest"], info["tree_digest"])
    assert extra["tree_source"] == "file(tree.json)"


def test_compare_flags_runs_on_different_id_tables(tmp_path: Path, capsys, monkeypatch) -> None:
    from genrec_bench.results import RunRecord, write_record

    def rec(run_id: str, extra: dict) -> RunRecord:
        return RunRecord(run_id=run_id, model="tiger", dataset="d", split="test", fingerprint="fp", seed=0,
                         ks=[1, 10], metrics={}, users=[0, 1, 2], ranks=[1, 0, 3], config={}, fit={"extra": extra})

    root = tmp_path / "results"
    for r in (rec("aaa", {"semantic_ids": "file(x)", "sid_digest": "d1"}),
              rec("bbb", {"semantic_ids": "file(y)", "sid_digest": "d2"}),
              rec("ccc", {"semantic_ids": "file(x)", "sid_digest": "d1"})):
        write_record(r, root)
    code, out, err = run_cli(["compare", "aaa", "bbb", "--results", str(root), "--json"], capsys, monkeypatch)
    assert code == 0, err
    assert json.loads(out)["different_id_tables"] is True
    code, _, err = run_cli(["compare", "aaa", "bbb", "--results", str(root)], capsys, monkeypatch)
    assert "different semantic-ID tables (d1 vs d2)" in " ".join(err.split())
    code, out, _ = run_cli(["compare", "aaa", "ccc", "--results", str(root), "--json"], capsys, monkeypatch)
    assert json.loads(out)["different_id_tables"] is False


@pytest.mark.parametrize("path", sorted(TABLES_DIR.glob("*-rpg-*.json")), ids=lambda p: p.name)
def test_shipped_rpg_code_tables_have_the_digest_in_their_name(path: Path) -> None:
    """RPG's OPQ codes come from k-means, so they are shipped; the file name's digest is its content."""
    from genrec_bench.items.product_quantize import codes_digest

    table = json.loads(path.read_text())
    codes = np.asarray(list(table.values()), dtype=np.int64)
    assert codes.shape[1] in (16, 32) and 0 <= codes.min() and codes.max() < 256  # official: 16 or 32 per dataset
    assert codes_digest(codes) == path.stem.rsplit("-", 1)[1]
