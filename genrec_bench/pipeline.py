"""Train, evaluate and query runs: the library behind the CLI's `train`, `eval` and `recommend`.

A run directory holds `run.json` (what was trained on what, with which config and fingerprint),
`model/` (the backend's saved state) and `train/` (the resumable checkpoint). Evaluation rebuilds
the split from the recorded data source and refuses to go on if its fingerprint changed.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from genrec_bench.api import Backend, FitReport
from genrec_bench.config import RunConfig, run_config_from_dict, with_legacy_values
from genrec_bench.data.loaders import Interactions, load_interactions
from genrec_bench.data.registry import load_dataset
from genrec_bench.data.split import Split, SplitData, make_split
from genrec_bench.decode_options import apply_decoding, check_decode_keys
from genrec_bench.errors import GenrecError
from genrec_bench.evaluate import eval_users, rank_lists, short_list_counts
from genrec_bench.metrics import summarise
from genrec_bench.models.registry import backend_class, create_backend
from genrec_bench.results import collect_env
from genrec_bench.runtime import (
    atomic_write_json,
    is_main_process,
    resolve_device,
    seed_everything,
    set_threads,
)
from genrec_bench.slices import cold_start_users

RUN_SCHEMA = 1
RUN_FILE = "run.json"


@dataclass(frozen=True)
class DataSource:
    """Where interactions come from: a registered dataset name or a file path."""

    dataset: str | None = None
    path: str | None = None
    fmt: str | None = None
    data_dir: str | None = None

    def __post_init__(self) -> None:
        if (self.dataset is None) == (self.path is None):
            raise GenrecError("give exactly one of --dataset NAME or --data PATH")

    @property
    def name(self) -> str:
        return self.dataset if self.dataset else Path(self.path or "").stem

    def load(self) -> Interactions:
        if self.dataset:
            return load_dataset(self.dataset, Path(self.data_dir) if self.data_dir else None)
        return load_interactions(Path(self.path or ""), self.fmt)


def load_split(source: DataSource, cfg: RunConfig) -> SplitData:
    return make_split(source.load(), cfg.data, source.name)


def train_run(model: str, source: DataSource, cfg: RunConfig, out: Path, resume: bool = False) -> dict[str, Any]:
    """Fit `model` on the split of `source` and save the run directory `out`."""
    out = Path(out)
    info_path = out / RUN_FILE
    if info_path.exists() and not resume:
        previous = _read_run_info(out)
        if previous.get("status") == "complete":
            raise GenrecError("run directory already holds a finished run; choose another --out", path=out)
        raise GenrecError("run directory holds an unfinished run; continue it with --resume", path=out)
    if resume:
        previous = _read_run_info(out)
    backend = create_backend(model, cfg.model)
    set_threads(cfg.train.num_threads)
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    data = load_split(source, cfg)
    device = resolve_device(cfg.train.device)
    info: dict[str, Any] = {
        "schema": RUN_SCHEMA, "run_id": uuid.uuid4().hex[:12], "model": model, "source": asdict(source),
        "dataset": source.name, "config": cfg.to_dict(), "seed": cfg.train.seed, "fingerprint": data.fingerprint,
        "split": data.summary(), "status": "training", "created": _now(), "env": collect_env(str(device)),
    }
    if resume:
        info.update({k: previous[k] for k in ("run_id", "created")})
    if is_main_process():
        atomic_write_json(info_path, info)
    report: FitReport = backend.fit(data, cfg.train, out / "train")
    if is_main_process():
        backend.save(out / "model")
        info.update(status="complete", fit=asdict(report), finished=_now())
        atomic_write_json(info_path, info)
    return info


def train_run_resume(out: Path) -> dict[str, Any]:
    """Continue the run in `out` with its recorded model, data and config, from its last checkpoint."""
    info = _read_run_info(out)
    if info.get("status") == "complete":
        raise GenrecError("run already finished; nothing to resume", path=out)
    cfg = run_config_from_dict(info["config"], str(Path(out) / RUN_FILE))
    return train_run(info["model"], DataSource(**info["source"]), cfg, out, resume=True)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _read_run_info(run: Path) -> dict[str, Any]:
    path = Path(run) / RUN_FILE
    if not path.exists():
        raise GenrecError("not a run directory (no run.json); create one with `genrec-bench train`", path=run)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GenrecError(f"run.json is corrupt ({exc.__class__.__name__})", path=path) from None
    if not isinstance(info, dict) or info.get("schema") != RUN_SCHEMA:
        found = info.get("schema") if isinstance(info, dict) else None
        raise GenrecError(f"run.json has schema {found!r}, this genrec-bench reads schema {RUN_SCHEMA}; "
                          "retrain the run with this version", path=path)
    if "config" in info:  # every reader (resume, eval, recommend, the records eval writes) sees what it ran with
        info["config"] = with_legacy_values(info["config"])
    return info


def open_run(run: Path, device: str = "auto", decode: dict[str, Any] | None = None
             ) -> tuple[dict[str, Any], Backend, SplitData]:
    """Load a finished run: its info, the backend (with `decode` overrides applied) and the
    (re-built, fingerprint-checked) split. With overrides, the returned info's `[model]` config
    shows them, so a record of the run says which decoder produced it."""
    info = _read_run_info(run)
    if info.get("status") != "complete":
        raise GenrecError("run has not finished training; continue it with `genrec-bench train --resume`",
                          path=run)
    cfg = run_config_from_dict(info["config"], str(Path(run) / RUN_FILE))
    cls = backend_class(info["model"])
    check_decode_keys(cls, decode or {})  # before the split is rebuilt, not after
    data = load_split(DataSource(**info["source"]), cfg)
    if data.fingerprint != info["fingerprint"]:
        raise GenrecError(f"the data changed since training: split fingerprint {data.fingerprint} != "
                          f"{info['fingerprint']} recorded in run.json", path=run)
    try:
        backend = cls.load(Path(run) / "model", resolve_device(device))
    except GenrecError:
        raise
    except Exception as exc:  # a truncated or foreign checkpoint surfaces as many exception types
        raise GenrecError(f"cannot load the saved model ({exc.__class__.__name__}: {exc}); the checkpoint is "
                          "corrupt or from another version", path=Path(run) / "model") from None
    if decode:
        apply_decoding(backend, decode)
        info = info | {"config": info["config"] | {"model": info["config"].get("model", {}) | decode},
                       "decode": decode}
    return info, backend, data


def evaluate_run(run: Path, split: Split = "test", ks: tuple[int, ...] | None = None, max_users: int | None = None,
                 device: str = "auto", label: str = "", suite: str = "", decode: dict[str, Any] | None = None
                 ) -> dict[str, Any]:
    """Rank every evaluated user's target and return a run record (a plain dict, see results.py).

    Decode overrides name the default label (`mindrec[order=left_to_right]`), so a decoder ablation
    gets its own leaderboard row next to the run's default decoding.
    """
    info, backend, data = open_run(run, device, decode)
    if not label and info.get("decode"):
        label = f"{info['model']}[{','.join(f'{k}={v}' for k, v in info['decode'].items())}]"
    cfg = run_config_from_dict(info["config"])
    ks = tuple(sorted(set(ks or cfg.eval.ks)))
    users = eval_users(data, cfg.eval.max_users if max_users is None else max_users)
    start = time.perf_counter()
    users, ranks, lengths = rank_lists(backend, data, split, max(ks), users=users, batch_size=cfg.eval.batch_size)
    seconds = time.perf_counter() - start
    cold = cold_start_users(data, split, users)
    return {
        "run_id": info["run_id"], "model": info["model"], "dataset": info["dataset"], "split": split,
        "fingerprint": info["fingerprint"], "seed": info["seed"], "ks": list(ks), "metrics": summarise(ranks, ks),
        "users": users.tolist(), "ranks": ranks.tolist(), "short_lists": short_list_counts(lengths, ks),
        "config": info["config"], "label": label or info["model"],
        "fit": info.get("fit", {}), "eval_seconds": seconds, "users_per_second": len(users) / max(seconds, 1e-9),
        "env": collect_env(str(resolve_device(device))) | {"train_env": info.get("env", {})}, "suite": suite,
        "created": _now(), "cold_users": cold.tolist(),
    }


def recommend_raw(run: Path, history: list[str], k: int = 10, device: str = "auto",
                  decode: dict[str, Any] | None = None, skip_unknown: bool = False) -> list[dict[str, Any]]:
    """Raw item ids in, raw ids and scores out. Unknown ids are an error, unless `skip_unknown`: then
    they are dropped with a warning naming them (a serving history often holds items newer than the run)."""
    info, backend, data = open_run(run, device, decode)
    if k < 1 or k > data.n_items:
        raise GenrecError(f"--k must be between 1 and the catalogue size {data.n_items}, got {k}")
    index = {raw: i for i, raw in enumerate(data.item_ids.tolist())}
    unknown = [h for h in history if h not in index]
    if unknown and not skip_unknown:
        raise GenrecError(f"unknown item id(s) in --history: {', '.join(unknown[:5])}; ids must be raw item ids "
                          f"of dataset '{info['dataset']}' (e.g. {', '.join(data.item_ids[:3].tolist())}), "
                          "or pass --skip-unknown to drop them")
    if unknown:
        shown = ", ".join(unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
        print(f"warning: dropped {len(unknown)} item id(s) the run does not know: {shown}", file=sys.stderr)
        history = [h for h in history if h in index]
    if not history:
        raise GenrecError("--history is empty; give at least one item id the run knows")
    length = data.config.max_history
    hist = [index[h] for h in history][-length:]
    row = torch.full((1, length), -1, dtype=torch.int64)
    row[0, length - len(hist):] = torch.tensor(hist)
    with torch.inference_mode():
        ranked = backend.recommend(row, k)
    return [{"item": str(data.item_ids[i]), "score": float(s)}
            for i, s in zip(ranked.items[0].tolist(), ranked.scores[0].tolist(), strict=True) if i >= 0]
