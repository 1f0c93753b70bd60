"""Short lists are counted in every eval record and announced by `eval`, whatever the backend."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from test_cli import run_cli

from genrec_bench.api import Ranked
from genrec_bench.baselines.popularity import Popularity
from genrec_bench.evaluate import short_list_counts, short_list_warning
from genrec_bench.results import RunRecord


def test_counts_and_warning_name_each_cut_off() -> None:
    counts = short_list_counts(np.array([5, 2, 0, 5]), (1, 3, 5))
    assert counts == {"1": 1, "3": 2, "5": 2}
    line = short_list_warning(counts, 4)
    assert "1 at k=1" in line and "2 at k=5" in line and "\n" not in line
    assert short_list_warning({"1": 0, "5": 0}, 4) == ""


def test_eval_records_and_warns_about_short_lists(seq_file, tmp_path: Path, capsys, monkeypatch) -> None:
    run = tmp_path / "run"
    assert run_cli(["train", "-m", "popularity", "--data", str(seq_file), "-o", str(run)], capsys, monkeypatch)[0] == 0
    results = tmp_path / "results"
    code, out, err = run_cli(["eval", "--run", str(run), "--json", "--k", "1,3", "--results", str(results)],
                             capsys, monkeypatch)
    assert code == 0, err
    full = json.loads(Path(json.loads(out)["record"]).read_text())
    assert full["short_lists"] == {"1": 0, "3": 0} and "shorter than k" not in err

    real = Popularity.recommend

    def two_items(self, histories: torch.Tensor, k: int) -> Ranked:  # every list holds 2 items, then -1
        ranked = real(self, histories, k)
        return Ranked(items=ranked.items.clone().index_fill_(1, torch.arange(2, k), -1), scores=ranked.scores)

    monkeypatch.setattr(Popularity, "recommend", two_items)
    code, out, err = run_cli(["eval", "--run", str(run), "--json", "--k", "1,3", "--results", str(results)],
                             capsys, monkeypatch)
    assert code == 0, err
    record = json.loads(Path(json.loads(out)["record"]).read_text())
    n_users = len(record["users"])
    assert record["short_lists"] == {"1": 0, "3": n_users}
    assert f"{n_users} at k=3 of {n_users} users" in err
    assert RunRecord.from_dict(record).short_lists == record["short_lists"]


def test_bench_announces_a_job_whose_lists_are_short(seq_file, tmp_path: Path, capsys, monkeypatch) -> None:
    from genrec_bench.bench import load_suite, run_suite

    suite = tmp_path / "suite.toml"
    suite.write_text(f'name = "s"\ndatasets = ["{seq_file}"]\nseeds = [0]\n[data]\nkcore = 2\n[eval]\nks = [1, 3]\n'
                     '[[runs]]\nmodel = "popularity"\n')
    real = Popularity.recommend

    def one_item(self, histories: torch.Tensor, k: int) -> Ranked:
        ranked = real(self, histories, k)
        return Ranked(items=ranked.items.clone().index_fill_(1, torch.arange(1, k), -1), scores=ranked.scores)

    monkeypatch.setattr(Popularity, "recommend", one_item)
    run_suite(load_suite(suite), tmp_path / "results")
    err = capsys.readouterr().err
    assert "/popularity/seed 0: warning:" in err and "at k=3" in err and "at k=1" not in err
