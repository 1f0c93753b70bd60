"""Benchmark suites: datasets x model variants x seeds, run resumably into one results store.

A suite is a TOML file. Suite-level `[data]`, `[train]`, `[eval]` tables apply to every run; each
`[[runs]]` entry names a `model`, an optional `label`, its own `train`/`model`/`eval` tables and
an optional `decode` table of decode-time model keys (beam width, unmasking order, ...), and
optional `[runs.on.DATASET]` tables that apply only on that dataset (same sections; for example
the shipped id table of one dataset: `[runs.on.beauty.config] sid_file = "..."`).
A job whose record already exists (same model, label, dataset, split fingerprint, config and seed)
is skipped; an interrupted job resumes from its checkpoint; a job another `bench` process is
running (it holds the job's lock) is left to that process. Jobs that differ only in label or
`decode` share one trained run: a decoder ablation costs an evaluation, not a training, and is
paired with the default on the same checkpoint.
"""

from __future__ import annotations

import copy
import fcntl
import multiprocessing
import os
import sys
import tomllib
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from genrec_bench.config import run_config_from_dict
from genrec_bench.data.registry import DATASETS
from genrec_bench.decode_options import check_decode_keys
from genrec_bench.errors import GenrecError, did_you_mean
from genrec_bench.evaluate import short_list_warning
from genrec_bench.models.registry import backend_class
from genrec_bench.pipeline import RUN_FILE, DataSource, evaluate_run, load_split, train_run
from genrec_bench.progress import progress_bar
from genrec_bench.results import load_records, record_key, run_key, store_record

SUITE_KEYS = {"name", "description", "datasets", "seeds", "split", "data", "train", "eval", "runs"}
RUN_KEYS = {"model", "label", "data", "train", "eval", "config", "decode", "on"}
SECTIONS = {"data": "data", "train": "train", "eval": "eval", "config": "model"}  # suite table -> config section


@dataclass(frozen=True)
class RunSpec:
    model: str
    label: str
    overrides: dict[str, dict[str, Any]]  # section -> key -> value
    decode: dict[str, Any] = field(default_factory=dict)  # decode-time [model] keys applied at evaluation
    on: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # dataset -> section -> key -> value


@dataclass(frozen=True)
class Suite:
    name: str
    datasets: tuple[str, ...]
    seeds: tuple[int, ...]
    split: str
    base: dict[str, dict[str, Any]]
    runs: tuple[RunSpec, ...]
    source: str = "suite"
    description: str = ""


@dataclass
class Job:
    suite: str
    dataset: str
    spec: RunSpec
    seed: int
    split: str
    config: dict[str, Any]
    fingerprint: str = ""
    key: str = ""  # identity of the record (what a rerun skips)
    train_key: str = ""  # identity of the training (what jobs differing only in decoding share)
    extra: dict[str, Any] = field(default_factory=dict)


def default_suite_path() -> Path:
    return Path(str(resources.files("genrec_bench") / "suites" / "default.toml"))


def load_suite(path: Path | None) -> Suite:
    """Parse and validate a suite TOML; `None` means the built-in default suite."""
    path = Path(path) if path is not None else default_suite_path()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GenrecError("suite file not found", path=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise GenrecError(f"invalid TOML: {exc}", path=path) from None
    return suite_from_dict(raw, str(path))


def suite_from_dict(raw: dict[str, Any], source: str = "suite") -> Suite:
    for key in raw:
        if key not in SUITE_KEYS:
            raise GenrecError(f"unknown suite key '{key}'{did_you_mean(key, SUITE_KEYS)}", path=source)
    datasets = raw.get("datasets") or ["beauty"]
    seeds = raw.get("seeds") or [0]
    if not all(isinstance(d, str) for d in datasets):
        raise GenrecError("suite key 'datasets' must be a list of dataset names", path=source)
    if not all(isinstance(s, int) for s in seeds):
        raise GenrecError("suite key 'seeds' must be a list of integers", path=source)
    split = raw.get("split", "test")
    if split not in ("test", "valid"):
        raise GenrecError(f"suite key 'split' must be test or valid, got {split!r}", path=source)
    runs = []
    for i, entry in enumerate(raw.get("runs", [])):
        if not isinstance(entry, dict) or "model" not in entry or not isinstance(entry["model"], str):
            raise GenrecError(f"runs[{i}] needs model = \"NAME\"", path=source)
        for key in entry:
            if key not in RUN_KEYS:
                raise GenrecError(f"unknown key '{key}' in runs[{i}]{did_you_mean(key, RUN_KEYS)}; model "
                                  "hyper-parameters go in [runs.config]", path=source)
        try:  # built-in, plugin entry point or package.module:Class, imported now, not after an hour
            cls = backend_class(entry["model"])
        except GenrecError as exc:
            raise GenrecError(f"runs[{i}]: {exc}", path=source) from None
        overrides = {section: dict(entry.get(table, {})) for table, section in SECTIONS.items()}
        on = _per_dataset(entry.get("on", {}), f"runs[{i}]", source)
        if stray := sorted(set(on) - set(datasets)):
            raise GenrecError(f"runs[{i}]: [runs.on.{stray[0]}] names a dataset the suite does not run "
                              f"(datasets = {list(datasets)})", path=source)
        decode = entry.get("decode", {})
        if not isinstance(decode, dict):
            raise GenrecError(f"runs[{i}]: decode must be a table of decode-time model keys", path=source)
        if decode:
            check_decode_keys(cls, decode, f"runs[{i}]: ", source)
        runs.append(RunSpec(entry["model"], entry.get("label", entry["model"]), overrides, dict(decode), on))
    if not runs:
        raise GenrecError("a suite needs at least one [[runs]] entry", path=source)
    labels = [r.label for r in runs]
    if len(set(labels)) != len(labels):
        raise GenrecError("two [[runs]] share a label; give each variant its own label", path=source)
    base = {s: dict(raw.get(s, {})) for s in ("data", "train", "eval")}
    suite = Suite(raw.get("name", Path(source).stem), tuple(datasets), tuple(seeds), split, base, tuple(runs),
                  source, raw.get("description", ""))
    for job in expand(suite):  # validates every merged config now, not after an hour of training
        run_config_from_dict(job.config, source)
    return suite


def _per_dataset(raw: Any, where: str, source: str) -> dict[str, dict[str, dict[str, Any]]]:
    """`[runs.on.DATASET]` tables -> {dataset: {config section: values}}."""
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise GenrecError(f"{where}: 'on' must hold one table per dataset, e.g. [runs.on.beauty.config]", path=source)
    out = {}
    for dataset, tables in raw.items():
        for table in tables:
            if table not in SECTIONS:
                raise GenrecError(f"{where}: unknown table '{table}' in [runs.on.{dataset}]"
                                  f"{did_you_mean(table, SECTIONS)}; expected one of {sorted(SECTIONS)}", path=source)
        out[dataset] = {SECTIONS[t]: dict(v) for t, v in tables.items()}
    return out


def expand(suite: Suite) -> Iterator[Job]:
    for dataset in suite.datasets:
        for spec in suite.runs:
            for seed in suite.seeds:
                cfg = copy.deepcopy(suite.base)
                for overrides in (spec.overrides, spec.on.get(dataset, {})):
                    for section, values in overrides.items():
                        cfg.setdefault(section, {}).update(values)
                cfg.setdefault("train", {})["seed"] = seed
                yield Job(suite.name, dataset, spec, seed, suite.split, cfg)


def source_for(dataset: str, data_dir: str | None) -> DataSource:
    """A suite's dataset entry: a registered name, or a path to an interaction file."""
    if dataset.lower() in DATASETS:
        return DataSource(dataset, data_dir=data_dir)
    if Path(dataset).is_file():
        return DataSource(path=dataset)
    raise GenrecError(f"suite dataset '{dataset}' is neither a registered dataset"
                      f"{did_you_mean(dataset.lower(), list(DATASETS))} nor an existing file")


@contextmanager
def job_lock(root: Path, key: str, wait: bool = False) -> Iterator[bool]:
    """Per-key lock (flock): False means another process holds it (only when not `wait`ing).

    Jobs take it without waiting (a busy job is left to its holder); the trainings that several
    jobs share take it waiting (`train-<key>`), so the second job reuses the first one's run. The
    kernel drops the lock when its holder dies, so a crashed bench never blocks a rerun.
    """
    lock_dir = root / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{key}.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run_job(job: Job, root: Path, data_dir: str | None, threads: int) -> str:
    """Train (or resume) and evaluate one job; returns 'done', 'skipped' or 'busy'."""
    if threads:
        torch.set_num_threads(threads)  # not in the config: it must not change the job's identity
    with job_lock(root, job.key) as mine:
        if not mine:
            return "busy"
        if any(record_key(r) == job.key for r in load_records(root)[0]):
            return "skipped"
        run_dir = root / "runs" / job.train_key
        cfg = run_config_from_dict(job.config)
        info_path = run_dir / RUN_FILE
        with job_lock(root, f"train-{job.train_key}", wait=True):  # a job sharing this training waits, reuses it
            resume = info_path.exists()
            if not (resume and '"status": "complete"' in info_path.read_text()):
                train_run(job.spec.model, source_for(job.dataset, data_dir), cfg, run_dir, resume=resume)
        record = evaluate_run(run_dir, job.split, label=job.spec.label, suite=job.suite,  # type: ignore[arg-type]
                              decode=job.spec.decode)
        store_record(record, root)
        if warning := short_list_warning(record.get("short_lists") or {}, len(record["users"])):
            print(f"{job.dataset}/{job.spec.label}/seed {job.seed}: {warning}", file=sys.stderr, flush=True)
        return "done"


def run_suite(suite: Suite, root: Path, jobs: int = 1, data_dir: Path | None = None) -> dict[str, int]:
    """Run every missing job of `suite`; returns counts per outcome."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    dd = str(data_dir) if data_dir else None
    pending = list(expand(suite))
    fingerprints: dict[str, str] = {}
    n_items: dict[str, int] = {}
    for job in pending:
        cfg = run_config_from_dict(job.config)
        if job.dataset not in fingerprints:
            split = load_split(source_for(job.dataset, dd), cfg)
            fingerprints[job.dataset], n_items[job.dataset] = split.fingerprint, split.n_items
        if max(cfg.eval.ks) > n_items[job.dataset]:  # fail before training, not after
            raise GenrecError(f"{job.spec.label}: eval.ks up to {max(cfg.eval.ks)} but '{job.dataset}' has only "
                              f"{n_items[job.dataset]} items", path=suite.source)
        job.fingerprint = fingerprints[job.dataset]
        name, trained = source_for(job.dataset, dd).name, cfg.to_dict()
        evaluated = trained | {"model": trained["model"] | job.spec.decode}  # what the record's config will say
        job.key = run_key(job.spec.model, job.spec.label, name, job.split, job.fingerprint, job.seed, evaluated)
        job.train_key = run_key(job.spec.model, "", name, job.split, job.fingerprint, job.seed, trained)
    done_keys = {record_key(r) for r in load_records(root)[0]}
    todo = [j for j in pending if j.key not in done_keys]
    counts = {"done": 0, "skipped": len(pending) - len(todo), "busy": 0}
    threads = max(1, (os.cpu_count() or 1) // max(1, jobs)) if jobs > 1 else 0
    with progress_bar(len(todo), f"suite {suite.name}") as bar:
        if jobs <= 1:
            for job in todo:
                counts[run_job(job, root, dd, threads)] += 1
                bar.advance(1, f"{job.dataset}/{job.spec.label}/seed {job.seed}")
        else:
            # spawn, not fork: a forked child inherits polars' and OpenMP's thread pools mid-flight and can hang.
            with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = {pool.submit(run_job, job, root, dd, threads): job for job in todo}
                for fut in as_completed(futures):
                    job = futures[fut]
                    counts[fut.result()] += 1
                    bar.advance(1, f"{job.dataset}/{job.spec.label}/seed {job.seed}")
    return counts
