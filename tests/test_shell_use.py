"""The CLI as a shell tool: results on stdout at full width into pipes, messages on stderr.

These run `genrec-bench` as a subprocess with stdout piped, as `genrec-bench report > board.txt`
and `genrec-bench models | grep tiger` do, since an in-process runner cannot see a non-terminal stdout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_cli import run_cli

ROOT = Path(__file__).resolve().parents[1]


def shell(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env.update(GENREC_BENCH_CACHE=str(tmp_path / "cache"), GENREC_BENCH_RESULTS=str(tmp_path / "results"))
    return subprocess.run([sys.executable, "-m", "genrec_bench.cli", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)


@pytest.fixture
def popularity_run(seq_file: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    out = shell(["train", "-m", "popularity", "--data", str(seq_file), "-o", str(run)], tmp_path)
    assert out.returncode == 0, out.stderr
    out = shell(["eval", "--run", str(run), "--k", "1,2,3,5,8,10"], tmp_path)
    assert out.returncode == 0, out.stderr
    return run


def test_report_into_a_pipe_is_one_unfolded_table(popularity_run: Path, tmp_path: Path) -> None:
    out = shell(["report"], tmp_path)
    assert out.returncode == 0, out.stderr
    header = [line for line in out.stdout.splitlines() if "model" in line and "Hit@1" in line]
    assert header, out.stdout  # the board is on stdout, not stderr
    assert "NDCG@10" in header[0]  # every metric column on one line: no fold at 80 columns
    assert max(len(line) for line in out.stdout.splitlines()) > 80


def test_models_piped_to_grep_keep_each_row_on_one_line(tmp_path: Path) -> None:
    out = shell(["models"], tmp_path)
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if " tiger " in line]
    assert rows and "genrec_bench.models.tiger" in rows[0] and "beam_width" in rows[0]


def test_recommend_prints_its_table_on_stdout(popularity_run: Path, tmp_path: Path) -> None:
    out = shell(["recommend", "--run", str(popularity_run), "--history", "1 2", "--k", "3"], tmp_path)
    assert out.returncode == 0, out.stderr
    rows = [line.strip("│ ").split() for line in out.stdout.splitlines()]
    assert [row[0] for row in rows if row and row[0].isdigit()] == ["1", "2", "3"], out.stdout


def test_skip_unknown_drops_and_names_unknown_history_ids(seq_file, tmp_path, capsys, monkeypatch) -> None:
    run = tmp_path / "run"
    assert run_cli(["train", "-m", "popularity", "--data", str(seq_file), "-o", str(run)], capsys, monkeypatch)[0] == 0
    code, out, err = run_cli(["recommend", "--run", str(run), "--history", "1 nope 2 gone", "--k", "3", "--json",
                              "--skip-unknown"], capsys, monkeypatch)
    assert code == 0, err
    assert "dropped 2 item id(s)" in err and "nope, gone" in err
    assert len(json.loads(out)["items"]) == 3
    code, _, err = run_cli(["recommend", "--run", str(run), "--history", "nope", "--skip-unknown"], capsys,
                           monkeypatch)
    assert code == 2 and "--history is empty" in err


def test_thread_warning_only_where_torch_trains(seq_file, tmp_path, capsys, monkeypatch) -> None:
    import torch

    from genrec_bench import runtime

    monkeypatch.setattr(runtime, "busy_threads", lambda: 64)  # a machine whose cores are all taken
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        code, _, err = run_cli(["train", "-m", "popularity", "--data", str(seq_file), "-o", str(tmp_path / "p")],
                               capsys, monkeypatch)
        assert code == 0 and "torch threads" not in err
        code, _, err = run_cli(["train", "-m", "sasrec", "--data", str(seq_file), "-o", str(tmp_path / "s"),
                                "--set", "train.epochs=1", "--set", "model.hidden=8", "--set", "model.heads=1"],
                               capsys, monkeypatch)
        assert code == 0, err
        assert "torch threads" in " ".join(err.split())
    finally:
        torch.set_num_threads(threads)
