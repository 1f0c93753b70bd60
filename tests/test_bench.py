"""Suites: parsing and validation, skip of recorded work, resume, concurrent writers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_seq_file
from genrec_bench.bench import expand, load_suite, run_suite, suite_from_dict
from genrec_bench.errors import GenrecError
from genrec_bench.results import load_records, record_key


def _suite_head(name: str, data: Path, seeds: str) -> str:
    """The shared top of the tiny test suites: k-core 2, one CPU epoch, cut-offs 1 and 5."""
    return f"""
name = "{name}"
datasets = ["{data}"]
seeds = {seeds}
[data]
kcore = 2
[eval]
ks = [1, 5]
[train]
epochs = 1
batch_size = 16
num_threads = 1
device = "cpu"
"""


def _suite_file(tmp_path: Path, data: Path, seeds: str = "[0, 1]") -> Path:
    path = tmp_path / "suite.toml"
    path.write_text(_suite_head("tiny", data, seeds) + """[[runs]]
model = "popularity"
[[runs]]
model = "sasrec"
label = "sasrec-small"
[runs.config]
hidden = 8
layers = 1
""")
    return path


def test_suite_parsing_and_expansion(seq_file, tmp_path):
    suite = load_suite(_suite_file(tmp_path, seq_file))
    assert suite.name == "tiny" and suite.seeds == (0, 1)
    assert [r.label for r in suite.runs] == ["popularity", "sasrec-small"]
    assert suite.runs[1].overrides["model"] == {"hidden": 8, "layers": 1}


@pytest.mark.parametrize(
    ("raw", "pattern"),
    [
        ({"runz": []}, "unknown suite key 'runz' (did you mean: runs?)"),
        ({"runs": [{"model": "sasrek"}]}, "unknown model 'sasrek' (did you mean: sasrec?)"),
        ({"runs": [{"model": "popularity"}, {"model": "popularity"}]}, "share a label"),
        ({"runs": [{"model": "popularity", "train": {"epoch": 1}}]}, "did you mean: epochs?"),
        ({"runs": [{"model": "popularity", "hidden": 3}]}, "model hyper-parameters go in [runs.config]"),
        ({"runs": []}, "at least one [[runs]]"),
        ({"seeds": ["a"], "runs": [{"model": "popularity"}]}, "'seeds' must be a list of integers"),
        ({"runs": [{"model": "sasrec", "on": {"beauty": {"conf": {}}}}]}, "did you mean: config?"),
        ({"runs": [{"model": "sasrec", "on": {"beuaty": {"config": {}}}}]}, "names a dataset the suite does not run"),
        ({"runs": [{"model": "sasrec", "on": {"beauty": {"train": {"epoch": 8}}}}]}, "did you mean: epochs?"),
    ],
)
def test_suite_errors(raw, pattern):
    with pytest.raises(GenrecError) as info:
        suite_from_dict(raw, "s.toml")
    assert pattern in str(info.value)


def test_per_dataset_tables_apply_only_on_their_dataset():
    on = {"sports": {"config": {"layers": 1}, "train": {"epochs": 3}}}
    suite = suite_from_dict({"datasets": ["beauty", "sports"], "runs": [{"model": "sasrec", "config": {"hidden": 8},
                                                                          "on": on}]})
    configs = {job.dataset: job.config for job in expand(suite)}
    assert configs["beauty"]["model"] == {"hidden": 8} and "epochs" not in configs["beauty"].get("train", {})
    assert configs["sports"]["model"] == {"hidden": 8, "layers": 1} and configs["sports"]["train"]["epochs"] == 3


def test_default_suite_is_valid():
    suite = load_suite(None)
    assert suite.name == "default" and suite.datasets == ("beauty",)
    assert {"popularity", "sasrec"} <= {r.model for r in suite.runs}


def test_run_skips_what_is_recorded(seq_file, tmp_path):
    suite = load_suite(_suite_file(tmp_path, seq_file))
    root = tmp_path / "res"
    first = run_suite(suite, root)
    assert first == {"done": 4, "skipped": 0, "busy": 0}
    second = run_suite(suite, root)
    assert second == {"done": 0, "skipped": 4, "busy": 0}
    records, warnings = load_records(root)
    assert warnings == [] and len(records) == 4
    assert {r.label for r in records} == {"popularity", "sasrec-small"}


def test_concurrent_bench_processes_lose_and_duplicate_nothing(tmp_path):
    data = write_seq_file(tmp_path / "d.txt", n_users=40, n_items=15, length=8)
    suite = _suite_file(tmp_path, data, seeds="[0, 1, 2]")
    root = tmp_path / "shared-results"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "genrec_bench.cli", "bench", str(suite), "--results", str(root)]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
    records, warnings = load_records(root)
    assert warnings == []
    keys = [record_key(r) for r in records]
    assert len(keys) == len(set(keys))  # no job ran twice
    # a job the other process held is left to it; a final pass completes anything left
    run_suite(load_suite(suite), root)
    assert len(load_records(root)[0]) == 6


def test_interrupted_suite_resumes_without_retraining(seq_file, tmp_path, monkeypatch):
    import genrec_bench.bench as bench

    suite = load_suite(_suite_file(tmp_path, seq_file, seeds="[0]"))
    root = tmp_path / "res"
    real_eval = bench.evaluate_run
    calls = {"n": 0}

    def crash_on_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the user pressed Ctrl-C after the second job trained
        return real_eval(*args, **kwargs)

    monkeypatch.setattr(bench, "evaluate_run", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, root)
    assert len(load_records(root)[0]) == 1
    monkeypatch.setattr(bench, "evaluate_run", real_eval)
    trained = []
    monkeypatch.setattr(bench, "train_run", lambda *a, **k: trained.append(a))
    assert run_suite(suite, root) == {"done": 1, "skipped": 1, "busy": 0}
    assert trained == []  # the finished training was reused, only its evaluation ran again
    assert len(load_records(root)[0]) == 2


def test_parallel_jobs(seq_file, tmp_path):
    suite = load_suite(_suite_file(tmp_path, seq_file, seeds="[0]"))
    assert run_suite(suite, tmp_path / "res", jobs=2) == {"done": 2, "skipped": 0, "busy": 0}
    assert len(load_records(tmp_path / "res")[0]) == 2


TINY_MINDREC = """[runs.config]
d_model = 16
layers = 1
heads = 2
d_ff = 32
sid_codebook = 4
sid_levels = 2
tree_source = "kmeans"
tree_branching = 2
"""


def test_decode_variants_share_one_training(seq_file, tmp_path, monkeypatch):
    import genrec_bench.bench as bench

    path = tmp_path / "decode.toml"
    path.write_text(_suite_head("decode", seq_file, "[0]") + f"""[[runs]]
model = "mindrec"
{TINY_MINDREC}[[runs]]
model = "mindrec"
label = "mindrec[left-to-right]"
decode = {{ order = "left_to_right" }}
{TINY_MINDREC}""")
    suite = load_suite(path)
    root = tmp_path / "res"
    real_train = bench.train_run
    trained = []
    monkeypatch.setattr(bench, "train_run", lambda *a, **k: trained.append(a) or real_train(*a, **k))
    assert run_suite(suite, root) == {"done": 2, "skipped": 0, "busy": 0}
    assert len(trained) == 1 and len(list((root / "runs").iterdir())) == 1
    records = {r.label: r for r in load_records(root)[0]}
    assert records["mindrec[left-to-right]"].config["model"]["order"] == "left_to_right"
    assert records["mindrec"].config["model"].get("order", "confidence") == "confidence"
    assert records["mindrec"].run_id == records["mindrec[left-to-right]"].run_id  # one checkpoint, paired
    assert run_suite(suite, root) == {"done": 0, "skipped": 2, "busy": 0}


def test_decode_keys_are_checked_when_the_suite_is_read():
    with pytest.raises(GenrecError) as info:
        suite_from_dict({"runs": [{"model": "mindrec", "decode": {"ordr": "random"}}]}, "s.toml")
    assert "did you mean: order?" in str(info.value)
    with pytest.raises(GenrecError) as info:
        suite_from_dict({"runs": [{"model": "sasrec", "decode": {"beam_width": 3}}]}, "s.toml")
    assert "not a decoding option of sasrec" in str(info.value)


@pytest.mark.parametrize("path", sorted(Path(__file__).parent.parent.glob("benchmarks/suites/*.toml")),
                         ids=lambda p: p.name)
def test_every_shipped_suite_builds_each_backend_on_each_of_its_datasets(path: Path) -> None:
    """A typo in a suite's [runs.config] fails here, not hours into a benchmark."""
    from genrec_bench.items.id_tables import resolve_table
    from genrec_bench.models.registry import create_backend

    suite = load_suite(path)
    for spec in suite.runs:
        for dataset in suite.datasets:
            model = suite.base.get("model", {}) | spec.overrides.get("model", {}) | spec.on.get(dataset, {}).get(
                "model", {})
            create_backend(spec.model, model, str(path))
            for key in ("sid_file", "tree_file", "code_file"):
                if model.get(key):
                    resolve_table(model[key])  # a shipped table, found by name


def test_bench_run_filter_selects_by_label(seq_file, tmp_path, capsys, monkeypatch):
    from test_cli import run_cli

    suite = _suite_file(tmp_path, seq_file, seeds="[0]")
    suite.write_text(suite.read_text().replace('label = "sasrec-small"', 'label = "sasrec[small]"'))
    root = tmp_path / "res"
    code, _, err = run_cli(["bench", str(suite), "--results", str(root), "--run", "nope"], capsys, monkeypatch)
    assert code == 2 and "it has: popularity, sasrec[small]" in err  # labels print verbatim, not as markup
    code, _, _ = run_cli(["bench", str(suite), "--results", str(root), "-r", "popularity"], capsys, monkeypatch)
    assert code == 0
    assert [r.label for r in load_records(root)[0]] == ["popularity"]
