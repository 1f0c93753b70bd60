"""Outside backends: `--model package.module:Class`, entry points, and the errors of broken plugins.

Plugins are simulated by writing a module and a `*.dist-info` folder (what `pip install` leaves)
into a directory put on `sys.path`, which is where `importlib.metadata` finds entry points.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli import run_cli

from genrec_bench.bench import suite_from_dict
from genrec_bench.errors import GenrecError
from genrec_bench.models.registry import ENTRY_POINT_GROUP, backend_class, list_backends

MODULE = '''
from typing import ClassVar

from genrec_bench.baselines.popularity import Popularity


class LeastPopular(Popularity):
    """A subclass of a built-in: ranks the rarest training items first."""

    name: ClassVar[str] = "least_popular"

    def fit(self, data, cfg, workdir=None):
        report = super().fit(data, cfg, workdir)
        self.counts_ = -self.counts_
        return report


class NotABackend:
    pass
'''


def _plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dists: dict[str, dict[str, str]]) -> Path:
    """`sys.path` entry holding module `plug_models` (plus `plug_broken`, which fails on import) and one
    installed distribution per `dists` item, each with its `genrec_bench.backends` entry points."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "plug_models.py").write_text(MODULE)
    (root / "plug_broken.py").write_text("raise RuntimeError('plugin import exploded')\n")
    for dist, entries in dists.items():
        info = root / f"{dist}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        lines = "".join(f"{name} = {target}\n" for name, target in entries.items())
        (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}")
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    return root


@pytest.fixture(autouse=True)
def _forget_plugin_modules() -> Iterator[None]:
    """Each test writes its own `plug_*` modules; an import cached by an earlier test must not leak in."""
    yield
    for name in [n for n in sys.modules if n.startswith("plug_")]:
        del sys.modules[name]


def test_module_path_subclass_trains_evaluates_and_is_described(seq_file, tmp_path, capsys, monkeypatch):
    _plugin_dir(tmp_path, monkeypatch, {})
    run = tmp_path / "run"
    code, _, err = run_cli(["train", "--model", "plug_models:LeastPopular", "--data", str(seq_file),
                            "--out", str(run)], capsys, monkeypatch)
    assert code == 0, err
    code, out, err = run_cli(["eval", "--run", str(run), "--json", "--k", "1,5"], capsys, monkeypatch)
    assert code == 0, err
    assert json.loads(out)["model"] == "plug_models:LeastPopular"

    code, out, err = run_cli(["models", "--json", "plug_models:LeastPopular"], capsys, monkeypatch)
    assert code == 0, err
    row = {r["name"]: r for r in json.loads(out)["models"]}["plug_models:LeastPopular"]
    assert row["origin"] == "module path" and row["error"] == "" and row["keys"] == {}


@pytest.mark.parametrize(("model", "message"), [
    ("plug_missing:Model", "model 'plug_missing:Model' cannot be imported: ModuleNotFoundError"),
    ("plug_models:Missing", "module plug_models has no attribute 'Missing'"),
    ("plug_models:NotABackend", "does not fit the Backend contract"),
    ("plug_broken:Model", "failed while importing plug_broken: RuntimeError: plugin import exploded"),
    ("plug_models:", "a module path has the form package.module:ClassName"),
])
def test_a_bad_module_path_is_a_one_line_error(model, message, seq_file, tmp_path, capsys, monkeypatch):
    _plugin_dir(tmp_path, monkeypatch, {})
    code, _, err = run_cli(["train", "--model", model, "--data", str(seq_file), "--out", str(tmp_path / "r")],
                           capsys, monkeypatch)
    assert code == 2
    assert message in " ".join(err.split()) and "Traceback" not in err


def test_entry_points_are_found_listed_and_broken_ones_stay_contained(seq_file, tmp_path, capsys, monkeypatch):
    _plugin_dir(tmp_path, monkeypatch, {
        "good_plugin": {"least": "plug_models:LeastPopular"},
        "bad_plugin": {"exploding": "plug_broken:Model", "popularity": "plug_models:LeastPopular"},
    })
    assert backend_class("least").__name__ == "LeastPopular"

    code, out, err = run_cli(["models", "--json"], capsys, monkeypatch)
    assert code == 0, err
    listing = json.loads(out)
    rows = {r["name"]: r for r in listing["models"]}
    assert rows["least"]["origin"] == "entry point" and rows["least"]["package"] == "good_plugin 0.1"
    assert "entry point 'exploding' (plug_broken:Model, package bad_plugin 0.1)" in rows["exploding"]["error"]
    assert rows["popularity"]["origin"] == "built-in" and not rows["popularity"]["error"]
    assert [p for p in listing["problems"] if "'popularity'" in p and "bad_plugin" in p and "clashes" in p]

    code, _, err = run_cli(["train", "--model", "exploding", "--data", str(seq_file), "--out", str(tmp_path / "x")],
                           capsys, monkeypatch)
    assert code == 2 and "bad_plugin" in err and "RuntimeError" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1

    # The clashing entry point never replaces the built-in it is named after.
    code, _, err = run_cli(["train", "--model", "popularity", "--data", str(seq_file), "--out", str(tmp_path / "p")],
                           capsys, monkeypatch)
    assert code == 0, err
    assert json.loads((tmp_path / "p" / "run.json").read_text())["model"] == "popularity"
    assert backend_class("popularity").__module__ == "genrec_bench.baselines.popularity.model"

    code, out, _ = run_cli(["--help"], capsys, monkeypatch)
    assert code == 0 and "models" in out


def test_two_packages_claiming_one_name_is_an_error_naming_both(tmp_path, monkeypatch):
    _plugin_dir(tmp_path, monkeypatch, {"first_plugin": {"twin": "plug_models:LeastPopular"},
                                        "second_plugin": {"twin": "plug_models:LeastPopular"}})
    with pytest.raises(GenrecError, match="first_plugin 0.1.*second_plugin 0.1|second_plugin 0.1.*first_plugin 0.1"):
        backend_class("twin")
    rows, problems = list_backends()
    assert "twin" not in {r.name for r in rows}
    assert [p for p in problems if "'twin' is claimed by several packages" in p]


def test_suites_accept_plugins_and_reject_broken_ones_before_training(tmp_path, monkeypatch):
    _plugin_dir(tmp_path, monkeypatch, {"good_plugin": {"least": "plug_models:LeastPopular"}})
    suite = suite_from_dict({"runs": [{"model": "least"}, {"model": "plug_models:LeastPopular", "label": "path"}]})
    assert [r.model for r in suite.runs] == ["least", "plug_models:LeastPopular"]
    with pytest.raises(GenrecError, match=r"runs\[0\]: model 'plug_broken:Model' failed while importing"):
        suite_from_dict({"runs": [{"model": "plug_broken:Model"}]})
