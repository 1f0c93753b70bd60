"""Shared fixtures: tiny real-format files written on the fly, so tests never depend on big data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)


def write_seq_file(path: Path, n_users: int = 30, n_items: int = 12, length: int = 7) -> Path:
    """A sequence file where user u walks items u, u+1, ... (mod n_items): a learnable pattern."""
    lines = []
    for u in range(n_users):
        items = [str((u + j) % n_items + 1) for j in range(length)]
        lines.append(f"u{u} " + " ".join(items))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def seq_file(tmp_path: Path) -> Path:
    return write_seq_file(tmp_path / "tiny.txt")


@pytest.fixture(autouse=True)
def _isolated_stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep caches and results of every test inside its own tmp dir."""
    monkeypatch.setenv("GENREC_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GENREC_BENCH_RESULTS", str(tmp_path / "results"))
