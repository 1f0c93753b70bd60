"""Process-level concerns: device choice, seeding, thread count, distributed rank, atomic writes."""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genrec_bench.errors import GenrecError


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA when present, else CPU; asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise GenrecError(f"device '{name}' requested but no CUDA device is available; use --device cpu")
    return torch.device(name)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def set_threads(n: int) -> None:
    """Set torch's intra-op threads (0 = torch's default)."""
    if n > 0:
        torch.set_num_threads(n)


def warn_oversubscribed() -> None:
    """Warn on stderr when torch's threads would oversubscribe the cores; called where torch trains, so a
    model without torch work (popularity) never shows it."""
    busy = busy_threads()
    warning = None if busy is None else oversubscription(torch.get_num_threads(), busy, os.cpu_count() or 1)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)


def busy_threads() -> int | None:
    """Threads runnable on the machine right now besides this one (Linux `/proc/loadavg`), or None.

    Instantaneous, not the 1-minute load average, which would still count a training this process
    just finished (a suite runs its jobs one after another in one process)."""
    try:
        running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return None
    return max(0, running - 1)


def oversubscription(threads: int, busy: int, cores: int) -> str | None:
    """Why `threads` intra-op threads are too many next to `busy` runnable ones on `cores`, or None.

    Each parallel region waits for its slowest thread, so one thread descheduled by another process
    stalls them all (docs/performance.md, "Measurements behind implementation choices").
    """
    free = cores - busy
    if threads <= 1 or threads <= free:
        return None
    return (f"{threads} torch threads on {cores} cores with {busy} other threads already running: threads "
            f"waiting on each other on busy cores can make training many times slower; set "
            f"train.num_threads = {max(1, free)}")


def rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    return rank_and_world()[0] == 0


def _atomic_write(path: Path, write) -> None:
    """Write to a temp file in the same folder, fsync, then rename: readers see old or new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    _atomic_write(path, lambda fh: fh.write(data))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=json_default) + "\n").encode())


def atomic_torch_save(obj: Any, path: Path) -> None:
    _atomic_write(path, lambda fh: torch.save(obj, fh))


def json_default(obj: Any) -> Any:
    """`json.dumps(default=...)` for the numpy scalars/arrays and paths that records and run files carry."""
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def cache_dir() -> Path:
    """Where derived artefacts (item vectors, semantic IDs, trees) are cached, keyed by content hash."""
    root = Path(os.environ.get("GENREC_BENCH_CACHE", Path.home() / ".cache" / "genrec-bench"))
    root.mkdir(parents=True, exist_ok=True)
    return root
