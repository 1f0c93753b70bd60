"""Crash safety, determinism and concurrency, exercised through the real CLI in subprocesses."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import write_seq_file

CLI = [sys.executable, "-m", "genrec_bench.cli"]
SASREC = ["--set", "model.hidden=16", "--set", "model.layers=1", "--set", "model.dropout=0.2",
          "--set", "train.batch_size=8", "--set", "train.deterministic=true", "--set", "train.num_threads=1",
          "--set", "train.warmup_steps=5"]


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(GENREC_BENCH_CACHE=str(tmp_path / "cache"), GENREC_BENCH_RESULTS=str(tmp_path / "results"),
               OMP_NUM_THREADS="1")
    return env


def _cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + args, capture_output=True, text=True, env=_env(tmp_path), timeout=300)


def _eval(run: Path, tmp_path: Path) -> dict:
    out = _cli(["eval", "--run", str(run), "--json"], tmp_path)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["metrics"]


@pytest.fixture
def medium_file(tmp_path: Path) -> Path:
    return write_seq_file(tmp_path / "medium.txt", n_users=300, n_items=60, length=12)


def test_sigkill_then_resume_matches_uninterrupted_run(medium_file, tmp_path):
    common = ["train", "-m", "sasrec", "--data", str(medium_file), *SASREC, "--set", "train.epochs=12",
              "--set", "train.checkpoint_every=3", "--seed", "7"]
    ref = _cli([*common, "--out", str(tmp_path / "ref")], tmp_path)
    assert ref.returncode == 0, ref.stderr

    run = tmp_path / "killed"
    proc = subprocess.Popen(CLI + [*common, "--out", str(run)], env=_env(tmp_path), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ckpt = run / "train" / "checkpoint.pt"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert proc.poll() is None, "training finished before it could be killed; make the test run longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads((run / "run.json").read_text())["status"] == "training"

    resumed = _cli(["train", "--resume", "--out", str(run)], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert _eval(run, tmp_path) == _eval(tmp_path / "ref", tmp_path)


def test_same_seed_same_numbers_different_seed_differs(medium_file, tmp_path):
    metrics = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        out = _cli(["train", "-m", "sasrec", "--data", str(medium_file), *SASREC, "--set", "train.epochs=2",
                    "--seed", str(seed), "--out", str(tmp_path / name)], tmp_path)
        assert out.returncode == 0, out.stderr
        metrics.append(_eval(tmp_path / name, tmp_path))
    assert metrics[0] == metrics[1]
    assert metrics[0] != metrics[2]
    records = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.json")]
    assert sorted(r["seed"] for r in records) == [3, 3, 4]
    for record in records:
        assert {"torch", "python", "device", "git_commit"} <= set(record["env"])
        assert record["fingerprint"] == records[0]["fingerprint"]


def test_sigterm_writes_checkpoint_and_says_how_to_resume(medium_file, tmp_path):
    run = tmp_path / "term"
    proc = subprocess.Popen(CLI + ["train", "-m", "sasrec", "--data", str(medium_file), *SASREC,
                                   "--set", "train.epochs=100000", "--set", "train.patience=0",
                                   "--set", "train.checkpoint_every=0", "--out", str(run)],
                            env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The epoch-end checkpoint proves the loop (and its signal handler) is running; with no early stopping
    # and 100k epochs the run cannot finish on its own before the signal, however fast the machine.
    ckpt = run / "train" / "checkpoint.pt"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "training ended before the signal"
    ckpt.unlink()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in err
    assert (run / "train" / "checkpoint.pt").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_train_and_sharded_eval_match_single_process(medium_file, tmp_path):
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
                "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), "-m", "genrec_bench.cli"]
    env = _env(tmp_path)
    run = tmp_path / "ddp"
    out = subprocess.run(torchrun + ["train", "-m", "sasrec", "--data", str(medium_file), *SASREC,
                                     "--set", "train.epochs=2", "--device", "cpu", "--out", str(run)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads((run / "run.json").read_text())["status"] == "complete"
    env["GENREC_BENCH_RESULTS"] = str(tmp_path / "ddp-results")
    torchrun[torchrun.index("--master_port") + 1] = str(_free_port())
    # `-r`, not `--run`: torchrun's own parser would claim `--run` as an abbreviation of `--run-path`.
    out = subprocess.run(torchrun + ["eval", "-r", str(run), "--json", "--device", "cpu"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    sharded = json.loads(out.stdout)["metrics"]  # only rank 0 prints
    records = list((tmp_path / "ddp-results").glob("*.json"))
    assert len(records) == 1  # only rank 0 writes
    assert sharded == _eval(run, tmp_path)


@pytest.mark.parametrize("threads, busy, cores, advice", [
    (2, 1, 2, "train.num_threads = 1"),  # the measured case: 13x slower
    (4, 0, 2, "train.num_threads = 2"),
    (8, 3, 4, "train.num_threads = 1"),
    (1, 5, 2, None),  # one thread waits on no other
    (2, 0, 2, None),
    (3, 1, 4, None),
])
def test_oversubscription_warns_only_when_threads_exceed_the_free_cores(threads, busy, cores, advice):
    from genrec_bench.runtime import oversubscription

    warning = oversubscription(threads, busy, cores)
    assert (warning is None) == (advice is None)
    if advice:
        assert advice in warning and f"{threads} torch threads on {cores} cores" in warning


def test_epoch_log_line_keeps_counts_as_integers():
    from genrec_bench.training import format_record

    line = format_record("tiger", {"epoch": 20, "step": 10280, "loss": 1.75312, "valid_ndcg@10": 0.0203711,
                                   "seconds": 5054.38})
    assert line == "tiger: epoch 20, step 10280, loss 1.753, valid_ndcg@10 0.02037, seconds 5054"


@pytest.mark.parametrize("keep, epoch", [("best", 1), ("last", 3)])
def test_keep_returns_the_best_validated_or_the_last_weights(tmp_path, keep, epoch):
    import torch
    from torch import nn

    from genrec_bench.config import TrainConfig
    from genrec_bench.training import train

    class Counter:
        """A one-weight model whose validation score falls every epoch: best = epoch 1."""

        def __init__(self) -> None:
            self.module = nn.Linear(1, 1, bias=False)
            self.weights: list[float] = []

        def num_examples(self) -> int:
            return 4

        def batch(self, index: torch.Tensor, device: torch.device) -> torch.Tensor:
            return index.float()[:, None].to(device)

        def loss(self, module: nn.Module, batch: torch.Tensor) -> torch.Tensor:
            return -module(batch).mean()  # the weight grows every step

    job = Counter()

    def validate() -> float:
        job.weights.append(job.module.weight.item())
        return -len(job.weights)

    cfg = TrainConfig(epochs=3, batch_size=4, lr=0.1, warmup_steps=0, patience=0, keep=keep, device="cpu")
    report = train(job, cfg, torch.device("cpu"), validate, tmp_path)
    assert report.best_valid == -1 and len(set(job.weights)) == 3
    assert job.module.weight.item() == job.weights[epoch - 1]


def test_resume_refuses_a_checkpoint_built_on_other_item_tokens(tmp_path):
    """A resume that rebuilds different semantic ids must not load weights trained on the old ones."""
    import torch
    from torch import nn

    from genrec_bench.config import TrainConfig
    from genrec_bench.errors import GenrecError
    from genrec_bench.training import train

    class Tokens:
        def __init__(self, tokens: list[int]) -> None:
            self.module = nn.Linear(1, 1)
            self.module.register_buffer("item_tokens", torch.tensor(tokens))

        def num_examples(self) -> int:
            return 4

        def batch(self, index: torch.Tensor, device: torch.device) -> torch.Tensor:
            return index.float()[:, None].to(device)

        def loss(self, module: nn.Module, batch: torch.Tensor) -> torch.Tensor:
            return module(batch).pow(2).mean()

    def cfg(epochs: int) -> TrainConfig:
        return TrainConfig(epochs=epochs, batch_size=4, warmup_steps=0, patience=0, device="cpu")

    train(Tokens([1, 2, 3]), cfg(1), torch.device("cpu"), None, tmp_path)
    for other in ([1, 3, 2], [1, 2, 3, 4]):
        with pytest.raises(GenrecError, match="item_tokens .*differs.*new directory"):
            train(Tokens(other), cfg(2), torch.device("cpu"), None, tmp_path)
    assert train(Tokens([1, 2, 3]), cfg(2), torch.device("cpu"), None, tmp_path).epochs == 2


def test_stop_after_ends_training_without_changing_the_schedule(tmp_path):
    import torch
    from torch import nn

    from genrec_bench.config import TrainConfig
    from genrec_bench.training import train

    class Steps:
        """One weight pushed by a constant gradient: its value after each epoch is the sum of the lrs."""

        def __init__(self) -> None:
            self.module = nn.Linear(1, 1, bias=False)
            nn.init.zeros_(self.module.weight)

        def num_examples(self) -> int:
            return 8

        def batch(self, index: torch.Tensor, device: torch.device) -> torch.Tensor:
            return torch.ones(len(index), 1, device=device)

        def loss(self, module: nn.Module, batch: torch.Tensor) -> torch.Tensor:
            return -module(batch).mean()

    def run(**keys: int) -> tuple[list[float], int]:
        job, seen = Steps(), []
        cfg = TrainConfig(batch_size=4, lr=0.1, warmup_steps=0, patience=0, keep="last", device="cpu", **keys)
        report = train(job, cfg, torch.device("cpu"), lambda: seen.append(job.module.weight.item()) or 0.0,
                       tmp_path / str(keys))
        return seen, report.epochs

    full, epochs = run(epochs=6)
    stopped, stop_afters = run(epochs=6, stop_after=2)
    assert (epochs, stop_afters) == (6, 2)
    assert stopped == full[:2]  # the same weights after each epoch: the lr decay is the 6-epoch one
    assert stopped != run(epochs=2)[0]  # a 2-epoch schedule decays faster
