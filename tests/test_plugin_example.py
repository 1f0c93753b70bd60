"""The example plugin in examples/plugin, installed as a user would (`make install` does it), used
through its entry point exactly like a built-in: train, eval, `models`, and `check_backend`."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pytest
from test_cli import run_cli

from genrec_bench.models.registry import ENTRY_POINT_GROUP
from genrec_bench.testing import check_backend


@pytest.fixture(scope="module")
def itemknn_entry_point() -> metadata.EntryPoint:
    """Required, not skipped: a plugin that silently stopped installing is what this test is for."""
    found = [ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == "itemknn"]
    assert found, ("the example plugin is not installed in this environment; `make install` installs it "
                   "(pip install -c constraints.txt -e examples/plugin)")
    return found[0]


def test_plugin_trains_and_evaluates_through_its_entry_point(itemknn_entry_point, seq_file, tmp_path, capsys,
                                                             monkeypatch):
    run = tmp_path / "knn"
    code, _, err = run_cli(["train", "--model", "itemknn", "--data", str(seq_file), "--set", "model.neighbours=5",
                            "--out", str(run)], capsys, monkeypatch)
    assert code == 0, err
    code, out, err = run_cli(["eval", "--run", str(run), "--json", "--k", "1,5"], capsys, monkeypatch)
    assert code == 0, err
    assert json.loads(out)["model"] == "itemknn"
    code, out, err = run_cli(["eval", "--run", str(run), "--json", "--k", "5", "--decode", "history=1"],
                             capsys, monkeypatch)
    assert code == 0, err
    assert json.loads(Path(json.loads(out)["record"]).read_text())["label"] == "itemknn[history=1]"

    code, out, err = run_cli(["models", "--json"], capsys, monkeypatch)
    assert code == 0, err
    row = {r["name"]: r for r in json.loads(out)["models"]}["itemknn"]
    assert row["origin"] == "entry point" and row["target"] == itemknn_entry_point.value
    assert row["package"].startswith("genrec-itemknn ") and not row["error"]
    assert row["keys"]["neighbours"] == 100 and row["decode_keys"] == ["history", "decay"]


def test_plugin_passes_check_backend(itemknn_entry_point):
    report = check_backend(itemknn_entry_point.load(), neighbours=10)
    assert report.backend == "itemknn"
    assert check_backend("itemknn", window=1).short_lists[1] == 0


def test_plugin_rejects_bad_config_values(itemknn_entry_point, seq_file, tmp_path, capsys, monkeypatch):
    code, _, err = run_cli(["train", "--model", "itemknn", "--data", str(seq_file), "--set", "model.decay=0",
                            "--out", str(tmp_path / "r")], capsys, monkeypatch)
    assert code == 2 and "model.decay" in err and "Traceback" not in err
