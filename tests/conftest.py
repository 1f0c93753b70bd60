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


def walk_split(tmp_path: Path, n_users: int = 24, n_items: int = 15, length: int = 7):
    """An in-memory split where user u walks items u, u+1, ... (mod n_items): a pattern a model can learn."""
    import polars as pl

    from genrec_bench.config import DataConfig
    from genrec_bench.data.loaders import Interactions, ItemMeta
    from genrec_bench.data.split import make_split

    rows = [(f"u{u}", f"i{(u + j) % n_items}", float(j)) for u in range(n_users) for j in range(length)]
    frame = pl.DataFrame(rows, schema={"user_id": pl.String, "item_id": pl.String, "timestamp": pl.Float64},
                         orient="row").with_row_index("row")
    source = tmp_path / "tiny.txt"
    source.write_text("tiny\n")
    inter = Interactions(frame=frame.select("user_id", "item_id", "timestamp", "row"), meta=ItemMeta(),
                         source=source)
    return make_split(inter, DataConfig(kcore=0), "tiny")


def random_unique_codes(n: int, sizes: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """n distinct random tuples with level-local codes below `sizes`."""
    g = torch.Generator().manual_seed(seed)
    flat = torch.randperm(int(torch.tensor(sizes).prod()), generator=g)[:n]
    digits = []
    for size in reversed(sizes):
        digits.append(flat % size)
        flat = flat // size
    return torch.stack(digits[::-1], dim=1)
