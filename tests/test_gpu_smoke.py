"""The GPU smoke (benchmarks/gpu/) without a GPU: its comparison logic, its syntax, its refusals."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu" / "smoke.sh"
_spec = importlib.util.spec_from_file_location("compare_devices", ROOT / "benchmarks" / "gpu" / "compare_devices.py")
cd = importlib.util.module_from_spec(_spec)
sys.modules["compare_devices"] = cd  # dataclasses look their module up by name
_spec.loader.exec_module(cd)

needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")


def _eval(hit: float, ndcg: float, record: str = "", run_id: str = "r1", ups: float = 100.0) -> dict:
    return {"run_id": run_id, "model": "tiger", "dataset": "beauty", "split": "test", "fingerprint": "f",
            "seed": 0, "metrics": {"hit@10": hit, "ndcg@10": ndcg, "mrr@10": ndcg}, "eval_seconds": 1.0,
            "users_per_second": ups, "record": record}


def test_agreement_within_tolerance_passes() -> None:
    table, problems, _, _ = cd.compare_evals(_eval(0.030, 0.0150), _eval(0.025, 0.0140), tolerance=0.01)
    assert problems == []
    assert table["hit@10"]["diff"] == pytest.approx(0.005)


def test_disagreement_beyond_tolerance_fails_naming_the_metric() -> None:
    _, problems, _, _ = cd.compare_evals(_eval(0.002, 0.001), _eval(0.030, 0.015), tolerance=0.01)
    assert len(problems) == 2 and problems[0].startswith("hit@10") and "> tolerance 0.01" in problems[0]


def test_zero_on_both_devices_is_not_a_pass() -> None:
    _, problems, _, _ = cd.compare_evals(_eval(0.0, 0.0), _eval(0.0, 0.0))
    assert problems and "proves nothing" in problems[0]


def test_evaluations_of_different_checkpoints_fail() -> None:
    _, problems, _, _ = cd.compare_evals(_eval(0.03, 0.01, run_id="a"), _eval(0.03, 0.01, run_id="b"))
    assert any("run_id" in p for p in problems)


def test_per_user_changes_from_records() -> None:
    users = [0, 1, 2, 3]
    cuda = {"users": users, "ranks": [1, 10, 0, 4]}
    cpu = {"users": users, "ranks": [1, 11, 0, 5]}  # user 1 drops out of the top 10, user 3 moves a rank
    _, problems, hit_changed, rank_changed = cd.compare_evals(_eval(0.5, 0.3), _eval(0.25, 0.3), tolerance=0.3,
                                                              cuda_record=cuda, cpu_record=cpu)
    assert (problems, hit_changed, rank_changed) == ([], 1, 2)
    _, problems, _, _ = cd.compare_evals(_eval(0.5, 0.3), _eval(0.5, 0.3), cuda_record=cuda,
                                         cpu_record={"users": [3, 2, 1, 0], "ranks": [1, 10, 0, 4]})
    assert problems == ["the two evaluations ranked different users"]


def test_train_throughput_counts_the_short_last_batch() -> None:
    # 1000 examples in batches of 256: 4 steps per epoch, the last of 232; 6 steps = 1000 + 512.
    info = {"config": {"train": {"batch_size": 256}},
            "fit": {"steps": 6, "seconds": 2.0, "extra": {"train_examples": 1000}}}
    assert cd.train_throughput(info) == (1512, 756.0)
    info["fit"]["extra"] = {}
    assert cd.train_throughput(info) == (1536, 768.0)


def _write_run(run: Path, cuda_hit: float, cpu_hit: float) -> None:
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({
        "run_id": "r1", "model": run.name, "config": {"train": {"batch_size": 256}},
        "fit": {"steps": 10, "seconds": 0.5, "extra": {"train_examples": 100000}}, "env": {"device": "cuda"}}))
    for device, hit in (("cuda", cuda_hit), ("cpu", cpu_hit)):
        ranks = [1] * round(hit * 200) + [0] * (200 - round(hit * 200))
        record = run / f"record-{device}.json"
        record.write_text(json.dumps({"users": list(range(200)), "ranks": ranks}))
        (run / f"eval-{device}.json").write_text(json.dumps(_eval(hit, hit, str(record), ups=50.0)))


def test_main_reports_speeds_and_exits_by_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_run(tmp_path / "tiger", 0.050, 0.045)
    _write_run(tmp_path / "mindrec", 0.040, 0.005)
    out = tmp_path / "summary.json"
    assert cd.main([str(tmp_path / "tiger"), "--json-out", str(out)]) == 0
    report = capsys.readouterr().out
    assert re.search(r"tiger\s+5120\s+50\.0\s+50\.0\s+0\.0500/0\.0450\s+0\.0500/0\.0450\s+1/200\s+ok", report)
    assert "bf16 autocast" in report
    assert json.loads(out.read_text())[0]["ok"] is True
    assert cd.main([str(tmp_path / "tiger"), str(tmp_path / "mindrec")]) == 1
    assert "FAIL mindrec: hit@10: cuda 0.0400 vs cpu 0.0050" in capsys.readouterr().out


def test_missing_evaluation_is_a_clear_error(tmp_path: Path) -> None:
    _write_run(tmp_path / "tiger", 0.05, 0.05)
    (tmp_path / "tiger" / "eval-cpu.json").unlink()
    with pytest.raises(SystemExit, match="eval-cpu.json: not found"):
        cd.main([str(tmp_path / "tiger")])


@needs_bash
@pytest.mark.parametrize("script", [SCRIPT, SCRIPT.with_name("rpg_official.sh")])
def test_script_syntax(script: Path) -> None:
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_the_official_rpg_script_trains_with_the_shipped_configs() -> None:
    text = SCRIPT.with_name("rpg_official.sh").read_text()
    assert 'benchmarks/configs/rpg-$d.toml' in text
    for dataset in ("beauty", "sports", "toys"):
        assert (ROOT / "benchmarks" / "configs" / f"rpg-{dataset}.toml").is_file()


def test_script_names_files_that_exist() -> None:
    text = SCRIPT.read_text()
    for config in re.findall(r"benchmarks/configs/[\w.-]+\.toml", text):
        assert (ROOT / config).is_file(), config
    for table in re.findall(r"beauty-[\w-]+\.json", text):
        assert (ROOT / "genrec_bench" / "data" / "tables" / table).is_file(), table


def _run_script(tmp_path: Path, fake_nvidia_smi: str) -> subprocess.CompletedProcess[str]:
    """The script with a stand-in nvidia-smi first on PATH, this interpreter's venv, nothing installed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "nvidia-smi"
    tool.write_text(f"#!/bin/sh\n{fake_nvidia_smi}\n")
    tool.chmod(0o755)
    env = os.environ | {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "GPU_SMOKE_SKIP_INSTALL": "1",
                        "GPU_SMOKE_VENV": str(Path(sys.executable).parent.parent),
                        "GPU_SMOKE_WORK": str(tmp_path / "work")}
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)


no_gpu = pytest.mark.skipif(torch.cuda.is_available() or any(Path("/dev").glob("nvidia[0-9]*")),
                            reason="a GPU is present: the script would run for real")


@needs_bash
@no_gpu
def test_script_refuses_without_a_gpu_before_installing(tmp_path: Path) -> None:
    result = _run_script(tmp_path, "exit 9")
    assert result.returncode == 2
    assert "no NVIDIA GPU found" in result.stderr
    assert "installing" not in result.stderr and not (tmp_path / "work").exists()


@needs_bash
@no_gpu
@pytest.mark.skipif(not (Path(sys.executable).parent / "genrec-bench").exists(),
                    reason="no genrec-bench next to python")
def test_script_refuses_a_torch_that_cannot_use_cuda(tmp_path: Path) -> None:
    result = _run_script(tmp_path, 'echo "GPU 0: Stand-in (UUID: GPU-0)"')
    assert result.returncode == 2
    assert "cannot use a GPU" in result.stderr and torch.__version__ in result.stderr
    assert not (tmp_path / "work").exists()
