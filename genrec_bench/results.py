"""Run records: one JSON file per finished run, written atomically, read back leniently.

A record holds everything a report needs without re-running anything: the split fingerprint
(so incomparable runs never share a table), the per-user target ranks (so any two runs on the
same users can be compared with a paired test), the full config and the environment. Writers
never share a file: every record gets a fresh name, so parallel `bench` workers cannot clobber
each other, and a reader sees either a whole file or none. A damaged file costs one warning,
not the whole report.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import platform
import re
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from genrec_bench.config import RunConfig, current_names, with_legacy_values
from genrec_bench.errors import GenrecError, did_you_mean
from genrec_bench.models.registry import backend_class
from genrec_bench.runtime import atomic_write_bytes, json_default

SCHEMA_VERSION = 1
RESULTS_ENV = "GENREC_BENCH_RESULTS"
WORK_DIRS = ("runs", "locks")  # bench's run directories and job locks inside a results store


@dataclass
class RunRecord:
    run_id: str
    model: str
    dataset: str
    split: str
    fingerprint: str
    seed: int
    ks: list[int]
    metrics: dict[str, float]  # "hit@k", "ndcg@k", "mrr@K" (K = max(ks)); older records' "mrr" reads as mrr@K
    users: list[int]  # user indices, in evaluation order
    ranks: list[int]  # per user: 1-based rank of the target, 0 = not in the top max(ks)
    config: dict  # {"data": ..., "train": ..., "eval": ..., "model": ...}
    label: str = ""  # display name, e.g. "tiger[letter]"; empty means the model name
    fit: dict = field(default_factory=dict)  # seconds, steps, epochs, history [{epoch, loss, valid_ndcg@10}]
    eval_seconds: float = 0.0
    users_per_second: float = 0.0
    env: dict = field(default_factory=dict)
    suite: str = ""
    short_lists: dict = field(default_factory=dict)  # {"k": users whose list had fewer than k items}; {} = unknown
    created: str = ""  # ISO 8601, UTC
    schema: int = SCHEMA_VERSION
    cold_users: list[int] | None = None  # users whose target never occurs in training; None = not recorded

    def __post_init__(self) -> None:
        if not self.label:
            self.label = self.model

    @property
    def id_table(self) -> str:
        """Which tokenisation the model ranked with: "" for a model without semantic ids.

        A recorded digest names its table exactly. Records made before digests were recorded say
        `letter` (LETTER's file, the same on any machine) or `unshipped` (built by k-means on the
        machine that trained it, and not reproducible on another processor); a MindRec row adds its
        category tree the same way (`named`/`subsumption` trees involve no floating point). RPG's
        OPQ codes are a tokenisation too, named by their digest.
        """
        extra = self.fit.get("extra", {})
        if not isinstance(extra, dict):
            return ""
        if "codes_digest" in extra:
            return str(extra["codes_digest"])
        if "semantic_ids" not in extra:
            return ""
        ids = str(extra.get("sid_digest") or ("letter" if extra["semantic_ids"] == "letter" else "unshipped"))
        if "tree_source" not in extra or extra["tree_source"] == "none":
            return ids
        tree = str(extra.get("tree_digest") or (extra["tree_source"] if extra["tree_source"] in ("named", "subsumption")
                                                else "unshipped"))
        return f"{ids}+tree {tree}"

    @property
    def versions(self) -> dict[str, str]:
        """The library versions and commit a record was evaluated with (`env`), as strings."""
        keys = ("genrec_bench", "git_commit", "python", "torch", "numpy", *NUMERIC_PACKAGES)
        return {k: str(self.env[k]) for k in keys if k in self.env}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only: numpy scalars/arrays and tuples from the caller become ints/floats/lists."""
        return json.loads(json.dumps(dataclasses.asdict(self), default=json_default))

    @classmethod
    def from_dict(cls, obj: Any) -> RunRecord:
        """Strict: a missing, unknown or mistyped field is a ValueError naming the field."""
        if not isinstance(obj, dict):
            raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
        schema = obj.get("schema")
        if schema != SCHEMA_VERSION:
            raise ValueError(f"schema {schema!r} is not supported (this version reads {SCHEMA_VERSION})")
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(obj) - set(names))
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}")
        missing = sorted(n for n, f in names.items() if n not in obj and _required(f))
        if missing:
            raise ValueError(f"missing field(s) {', '.join(missing)}")
        for name, value in obj.items():
            if not _FIELD_CHECKS[name](value):
                raise ValueError(f"field '{name}' has the wrong type ({type(value).__name__})")
        if len(obj["users"]) != len(obj["ranks"]):
            raise ValueError(f"'users' has {len(obj['users'])} entries but 'ranks' has {len(obj['ranks'])}")
        if "mrr" in obj["metrics"] and obj["ks"]:  # records before MRR was named by its cut-off
            metrics = dict(obj["metrics"])
            metrics[f"mrr@{max(obj['ks'])}"] = metrics.pop("mrr")
            obj = {**obj, "metrics": metrics}
        return cls(**obj)


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _int_list(v: Any) -> bool:
    return isinstance(v, list) and all(map(_is_int, v))


_FIELD_CHECKS = {
    "run_id": lambda v: isinstance(v, str), "model": lambda v: isinstance(v, str),
    "dataset": lambda v: isinstance(v, str), "split": lambda v: isinstance(v, str),
    "fingerprint": lambda v: isinstance(v, str), "seed": _is_int, "ks": _int_list,
    "metrics": lambda v: isinstance(v, dict) and all(map(_is_num, v.values())),
    "users": _int_list, "ranks": _int_list, "config": lambda v: isinstance(v, dict),
    "label": lambda v: isinstance(v, str), "fit": lambda v: isinstance(v, dict),
    "eval_seconds": _is_num, "users_per_second": _is_num, "env": lambda v: isinstance(v, dict),
    "suite": lambda v: isinstance(v, str),
    "short_lists": lambda v: isinstance(v, dict) and all(map(_is_int, v.values())),
    "created": lambda v: isinstance(v, str), "schema": _is_int,
    "cold_users": lambda v: v is None or _int_list(v),
}


def results_dir(explicit: Path | None = None) -> Path:
    """Where records live: the explicit path, else $GENREC_BENCH_RESULTS, else ./results."""
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get(RESULTS_ENV)
    return Path(env) if env else Path("results")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_record(rec: RunRecord, root: Path) -> Path:
    """Write `rec` as `<run_id>-<uuid>.json` under `root` and return the path.

    The random suffix makes the name unique per call, so concurrent writers (bench workers,
    DDP ranks by mistake) never replace each other's files; the temp-file + fsync + rename in
    `atomic_write_bytes` means a reader never sees half a record. `created` is filled in when empty.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if not rec.created:
        rec = dataclasses.replace(rec, created=now_iso())
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", rec.run_id).strip("._") or "run"
    while True:
        path = root / f"{stem[:80]}-{uuid.uuid4().hex[:12]}.json"
        if not path.exists():
            break
    atomic_write_bytes(path, dumps_record(rec.to_dict()).encode())
    return path


def store_record(evaluation: dict[str, Any], root: Path) -> Path:
    """Store one evaluation (the dict `pipeline.evaluate_run` returns) as a run record under `root`:
    the one way `eval` and `bench` write records, so both validate and name them alike."""
    return write_record(RunRecord(**evaluation), root)


def dumps_record(obj: dict[str, Any]) -> str:
    """Indented JSON for reading by eye, with the long per-user arrays kept on one line each."""
    arrays = {name: obj.pop(name) for name in ("ranks", "users", "cold_users") if name in obj}
    head = json.dumps(obj, indent=2, sort_keys=True)
    tail = "".join(f',\n  "{name}": {json.dumps(v, separators=(",", ":"))}' for name, v in arrays.items())
    return head[: head.rindex("}")].rstrip() + tail + "\n}\n"


def load_records(root: Path) -> tuple[list[RunRecord], list[str]]:
    """Every readable record under `root` (recursively), plus one warning per file that is not.

    Temp files of writers still in flight start with '.' and are ignored, and so are the working
    folders `bench` keeps beside the records (`runs/`, `locks/`). Records come back in
    file-name order so reports built from them are deterministic.
    """
    return _load_files(record_files(Path(root)))


def record_files(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return [p for p in sorted(root.rglob("*.json"))
            if not p.name.startswith(".") and p.relative_to(root).parts[0] not in WORK_DIRS]


def _load_files(paths: list[Path]) -> tuple[list[RunRecord], list[str]]:
    records: list[RunRecord] = []
    warnings: list[str] = []
    for path in paths:
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            warnings.append(f"{path}: skipped, not readable as JSON (truncated or corrupt?): {exc}")
            continue
        try:
            records.append(RunRecord.from_dict(obj))
        except (ValueError, TypeError) as exc:
            warnings.append(f"{path}: skipped, not a run record: {exc}")
    return records, warnings


def find_record(ref: str, root: Path) -> RunRecord:
    """The record named by a file path or by its run id (the newest when one run was evaluated twice).

    A run id evaluated on different splits or under different labels is ambiguous: the error lists
    the files so the user can pass one of them instead.
    """
    path = Path(ref)
    if path.suffix == ".json" and path.is_file():
        records, warnings = _load_files([path])
        if not records:
            raise GenrecError(warnings[0])
        return records[0]
    found: list[tuple[Path, RunRecord]] = []
    ids: set[str] = set()
    for file in record_files(Path(root)):
        for rec in _load_files([file])[0]:
            ids.add(rec.run_id)
            if rec.run_id == ref:
                found.append((file, rec))
    if not found:
        raise GenrecError(f"no run record with run id '{ref}' in {root}" + did_you_mean(ref, ids))
    if len({(r.split, r.label, r.fingerprint) for _, r in found}) > 1:
        files = ", ".join(str(f) for f, _ in found)
        raise GenrecError(f"run id '{ref}' has records for several splits or labels; pass one file: {files}")
    return max((r for _, r in found), key=lambda r: r.created)


def run_key(model: str, label: str, dataset: str, split: str, fingerprint: str, seed: int,
            config: dict) -> str:
    """Identity of a unit of work, computable before the run exists (what `bench` checks to skip it).

    Keys of the `data`/`train`/`eval` sections at their default value are left out, so adding a
    config field with a default keeps matching the records (and runs) made before it existed.
    `model` is kept as given (the backend, not `RunConfig`, owns its defaults) but under today's key
    names, so a suite and a record that use a key's earlier name are the same work.
    """
    ident = [model, label or model, dataset, split, fingerprint, int(seed),
             _without_defaults(_current_model_names(model, config))]
    canonical = json.dumps(ident, sort_keys=True, separators=(",", ":"), default=json_default)
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


def _current_model_names(model: str, config: dict[str, Any]) -> dict[str, Any]:
    """`config` with its `[model]` keys renamed as the backend's Config declares (unchanged when the
    backend cannot be resolved here, e.g. a plugin that is not installed)."""
    if not config.get("model"):
        return config
    try:
        cls = backend_class(model)
    except GenrecError:
        return config
    return config | {"model": current_names(cls.Config, config["model"])}


def _plain(obj: Any) -> Any:
    """`obj` as a record stores it, so tuples and lists compare equal."""
    return json.loads(json.dumps(obj, default=json_default))


@functools.cache
def _default_config() -> dict[str, Any]:
    """Computed once: `run_key` runs for every record each time `bench` checks a job."""
    return _plain(RunConfig().to_dict())


def _without_defaults(config: dict[str, Any]) -> dict[str, Any]:
    defaults = _default_config()
    out: dict[str, Any] = {}
    for section, values in _plain(config).items():
        base = defaults.get(section)
        if section != "model" and isinstance(values, dict) and isinstance(base, dict):
            values = {k: v for k, v in values.items() if k not in base or base[k] != v}
            if not values:
                continue  # an all-default section is the same work as an absent one
        out[section] = values
    return out


def record_key(rec: RunRecord) -> str:
    return run_key(rec.model, rec.label, rec.dataset, rec.split, rec.fingerprint, rec.seed,
                   with_legacy_values(rec.config))


def collect_env(device: str) -> dict[str, Any]:
    """Versions and machine facts that explain a number: torch/python/package versions, device, commit."""
    import torch

    return {
        "python": platform.python_version(), "torch": torch.__version__, "genrec_bench": _package_version(),
        "numpy": np.__version__, **{name: _package_version(name) for name in NUMERIC_PACKAGES},
        "device": device, "platform": platform.platform(),
        "hostname": socket.gethostname(), "git_commit": _git_commit(), "argv": sys.argv[1:],
    }


# Libraries whose version can change a number: scikit-learn's k-means builds the semantic IDs
# (docs/performance.md measures two installs apart), polars the split.
NUMERIC_PACKAGES = ("scikit-learn", "scipy", "polars", "transformers")


def _package_version(name: str = "genrec-bench") -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return ""


def _git_commit() -> str:
    """Commit of the source tree when running from a checkout; empty for an installed wheel."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""
