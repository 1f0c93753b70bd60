"""The one interface every recommender honours, generative or classic, and the registry of them.

A backend returns ranked item indices, so metrics, significance tests and reports never know
which model produced a list. Generative backends pad with -1 (a miss) when their beams yield
fewer than k distinct valid items; they never invent items.

A backend is found by name in three places, in this order: a module path `package.module:Class`
(anything containing ':'), the built-in `REGISTRY`, and the entry-point group
`genrec_bench.backends` of installed plugins. Plugins are imported only when named (or listed by
`genrec-bench models`), so a broken one cannot break the built-ins or `--help`.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import torch

from genrec_bench.config import TrainConfig
from genrec_bench.data.split import SplitData
from genrec_bench.errors import GenrecError, did_you_mean

ENTRY_POINT_GROUP = "genrec_bench.backends"
CONTRACT = "genrec_bench.backends.base.Backend"

@dataclass
class Ranked:
    items: torch.Tensor  # [B, k] int64 item indices, -1 = no item (a miss)
    scores: torch.Tensor  # [B, k] float32, higher is better


@dataclass
class FitReport:
    """What training did, for the run record: wall time, steps and the validation curve."""

    seconds: float = 0.0
    steps: int = 0
    epochs: int = 0
    best_valid: float | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    """The contract a recommender honours to be trained, evaluated and ranked by genrec-bench.

    Implement a class with these members (`genrec_bench.testing.check_backend(YourClass)` checks
    every rule below on a tiny split, and `baselines/popularity.py` is a complete 50-line example):

    - `name`: a short lower-case id, written into `backend.json` by `save`.
    - `Config`: a dataclass whose fields are the `[model]` keys with their defaults. genrec-bench
      builds it from the `[model]` table (`--set model.key=value`, a suite's `[runs.config]`),
      rejecting unknown keys and wrong types, so validate value ranges in `__post_init__` and
      raise `GenrecError`. A model without hyper-parameters has a dataclass without fields.
    - `__init__(self, cfg: Config)`: store `cfg` as `self.cfg`; build nothing that needs data yet.
    - `decode_keys`: the `Config` fields that change decoding only (beam width, ...); `eval
      --decode key=value` replaces them on a loaded model, so a decoder ablation reuses one
      checkpoint. `()` when the ranking is a single forward pass.
    - `fit(data, cfg, workdir)`: learn from `data.train_sequences()` (the part of each sequence
      before its validation and test targets) and return a `FitReport`. `cfg` holds the shared
      `[train]` knobs (epochs, lr, device, seed, ...); `genrec_bench.training` is the loop the
      neural built-ins share. The caller has seeded torch, numpy and `random` with `cfg.seed`,
      so the same seed must give the same model. `workdir` (or None) is where checkpoints go.
    - `recommend(histories, k)`: histories are `[B, L]` int64 item indices, left-padded with -1,
      most recent item last. Return `Ranked` with `items` `[B, k]` int64 and `scores` `[B, k]`:
      item indices in `[0, n_items)`, no item twice in a row, scores non-increasing along a row
      (ties: lower item index first, see `genrec_bench.ranking.topk_stable`). Where fewer than k
      items can be produced, pad the end with -1 (score -inf); never invent items.
    - `save(path)` writes the fitted state to the directory `path` (`save_backend` does it
      atomically), and the classmethod `load(path, device)` returns a backend whose
      `recommend` gives the same lists.

    Run it without forking genrec-bench: `--model package.module:Class` (module on PYTHONPATH),
    or an entry point `name = "package.module:Class"` in the group `genrec_bench.backends` of
    your package's pyproject.toml. `examples/plugin/` is a complete plugin package.
    """

    name: ClassVar[str]
    Config: ClassVar[type]  # a dataclass: its fields are the `[model]` keys
    decode_keys: ClassVar[tuple[str, ...]]  # `[model]` keys that only change decoding (`eval --decode`)
    cfg: Any  # the Config instance the backend was built from

    def __init__(self, cfg: Any) -> None: ...

    def fit(self, data: SplitData, cfg: TrainConfig, workdir: Path | None = None) -> FitReport: ...

    def recommend(self, histories: torch.Tensor, k: int) -> Ranked: ...

    def save(self, path: Path) -> None: ...

    @classmethod
    def load(cls, path: Path, device: torch.device | None = None) -> Backend: ...


# name -> "module:Class"; imported lazily so `genrec-bench datasets` does not import transformers.
REGISTRY: dict[str, str] = {
    "popularity": "genrec_bench.baselines.popularity:Popularity",
    "sasrec": "genrec_bench.baselines.sasrec:SASRec",
    "hstu": "genrec_bench.baselines.hstu:HSTU",
    "bert4rec": "genrec_bench.baselines.bert4rec:BERT4Rec",
    "rpg": "genrec_bench.backends.rpg:RPG",
    "liger": "genrec_bench.backends.liger:Liger",
    "tiger": "genrec_bench.backends.tiger:Tiger",
    "mindrec": "genrec_bench.backends.mindrec:MindRec",
}

Origin = Literal["built-in", "entry point", "module path"]


@dataclass(frozen=True)
class BackendSpec:
    """Where a backend name points: `target` is "module:Class"; `package` names an entry point's
    distribution, so every error about a plugin can say which installed package to fix."""

    name: str
    target: str
    origin: Origin
    package: str = ""

    @property
    def label(self) -> str:
        """How messages name it: the plugin's package and target, not just a bare name."""
        if self.origin == "entry point":
            return f"entry point '{self.name}' ({self.target}, package {self.package})"
        if self.origin == "module path":
            return f"model '{self.target}'"
        return f"model '{self.name}'"


def plugin_specs() -> tuple[list[BackendSpec], list[str]]:
    """(entry points of the group `genrec_bench.backends`, one-line problems with them).

    An entry point named like a built-in never replaces it (the built-in stays what that name
    means, so runs recorded under it keep their meaning) and two packages claiming one name make
    that name an error; both are reported here, naming the packages. Nothing is imported.
    """
    try:
        found = list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    except Exception as exc:  # a malformed entry_points.txt of any installed package
        return [], [f"cannot read the entry points of group {ENTRY_POINT_GROUP} ({exc.__class__.__name__}: {exc})"]
    specs, problems = [], []
    by_name: dict[str, list[BackendSpec]] = {}
    for ep in found:
        dist = getattr(ep, "dist", None)
        package = f"{dist.name} {dist.version}" if dist is not None else "unknown package"
        by_name.setdefault(ep.name, []).append(BackendSpec(ep.name, ep.value, "entry point", package))
    for name, claims in by_name.items():
        if name in REGISTRY:
            problems += [f"{spec.label} clashes with the built-in model '{name}', which stays in use; rename "
                         "the entry point in that package's pyproject.toml" for spec in claims]
        elif len(claims) > 1:
            problems.append(f"entry point '{name}' is claimed by several packages "
                            f"({'; '.join(f'{s.package}: {s.target}' for s in claims)}); uninstall one or "
                            f"name the backend by its module path, e.g. --model {claims[0].target}")
        else:
            specs.append(claims[0])
    return specs, problems


def backend_spec(name: str) -> BackendSpec:
    """Resolve `name` (module path, built-in or entry point) without importing anything."""
    if ":" in name:
        module, _, attr = name.partition(":")
        if not module or not attr or ":" in attr:
            raise GenrecError(f"--model {name!r}: a module path has the form package.module:ClassName")
        return BackendSpec(name, name, "module path")
    if name in REGISTRY:
        return BackendSpec(name, REGISTRY[name], "built-in")
    plugins, problems = plugin_specs()
    for spec in plugins:
        if spec.name == name:
            return spec
    for problem in problems:
        if problem.startswith(f"entry point '{name}' "):
            raise GenrecError(problem)
    names = [*REGISTRY, *(s.name for s in plugins)]
    raise GenrecError(f"unknown model '{name}'{did_you_mean(name, names)}; available: {', '.join(names)} "
                      "(or package.module:ClassName; see `genrec-bench models`)")


def backend_class(name: str) -> type:
    """The backend class `name` resolves to, checked against the contract's shape.

    Any exception a plugin raises while importing becomes a one-line `GenrecError` naming it.
    """
    spec = backend_spec(name)
    module_name, _, attr = spec.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if spec.origin == "built-in":
            raise GenrecError(f"model '{name}' is not available in this build ({exc})") from None
        hint = " (is its folder on PYTHONPATH?)" if spec.origin == "module path" else ""
        raise GenrecError(f"{spec.label} cannot be imported: {exc.__class__.__name__}: {exc}{hint}") from None
    except Exception as exc:  # a plugin's module may raise anything at import time
        raise GenrecError(f"{spec.label} failed while importing {module_name}: "
                          f"{exc.__class__.__name__}: {exc}") from None
    cls = module
    for part in attr.split("."):
        cls = getattr(cls, part, None)
        if cls is None:
            raise GenrecError(f"{spec.label}: module {module_name} has no attribute '{attr}'"
                              f"{did_you_mean(attr, [n for n in dir(module) if not n.startswith('_')])}")
    if problem := contract_problem(cls):
        raise GenrecError(f"{spec.label} does not fit the Backend contract ({CONTRACT}): {problem}")
    return cls  # type: ignore[return-value]


def contract_problem(cls: Any) -> str:
    """What is missing from `cls` for it to be a backend ('' when nothing is): checked before any
    data is loaded, so a half-written plugin fails in a second, not after a training."""
    if not isinstance(cls, type):
        return f"it is a {type(cls).__name__}, not a class"
    if not isinstance(getattr(cls, "name", None), str) or not cls.name:
        return "it needs a class attribute name = \"...\""
    config = getattr(cls, "Config", None)
    if not (isinstance(config, type) and dataclasses.is_dataclass(config)):
        return "it needs a Config dataclass (class attribute Config) whose fields are its [model] keys"
    keys = getattr(cls, "decode_keys", None)
    if not isinstance(keys, tuple) or not all(isinstance(k, str) for k in keys):
        return "it needs decode_keys = (...), a tuple of [model] key names (() when none)"
    fields = {f.name for f in dataclasses.fields(config)}
    if stray := [k for k in keys if k not in fields]:
        return f"decode_keys names {', '.join(stray)}, which Config has no field for"
    missing = [m for m in ("fit", "recommend", "save", "load") if not callable(getattr(cls, m, None))]
    if missing:
        return f"it has no {', '.join(missing)} method"
    return ""


@dataclass(frozen=True)
class BackendInfo:
    """One row of `genrec-bench models`: where a backend comes from and its `[model]` keys."""

    name: str
    origin: Origin
    target: str
    package: str = ""
    keys: dict[str, Any] = field(default_factory=dict)  # [model] key -> default (None when it has none)
    decode_keys: tuple[str, ...] = ()
    error: str = ""


def describe_backend(name: str) -> BackendInfo:
    """Resolve and import `name`; a failure is the row's `error`, never an exception."""
    try:
        spec = backend_spec(name)
    except GenrecError as exc:
        return BackendInfo(name, "module path" if ":" in name else "entry point", name, error=str(exc))
    try:
        cls = backend_class(name)
    except GenrecError as exc:
        return BackendInfo(spec.name, spec.origin, spec.target, spec.package, error=str(exc))
    keys = {}
    for f in dataclasses.fields(cls.Config):
        if f.default is not dataclasses.MISSING:
            keys[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            keys[f.name] = f.default_factory()
        else:
            keys[f.name] = None
    return BackendInfo(spec.name, spec.origin, spec.target, spec.package, keys, tuple(cls.decode_keys))


def list_backends(extra: list[str] | tuple[str, ...] = ()) -> tuple[list[BackendInfo], list[str]]:
    """Every built-in, every installed plugin and the `extra` module paths, each imported in
    isolation, plus the entry-point problems (clashes) that no row can show."""
    plugins, problems = plugin_specs()
    names = [*REGISTRY, *(s.name for s in plugins), *extra]
    return [describe_backend(n) for n in dict.fromkeys(names)], problems


def save_backend(path: Path, name: str, cfg: Any, state: dict[str, Any], info: dict[str, Any] | None = None) -> None:
    """Write a backend's `state.pt` (tensors) and `backend.json` (name, config, info), each atomically,
    so a crash mid-save never leaves a run directory that loads half a model."""
    from dataclasses import asdict

    from genrec_bench.runtime import atomic_torch_save, atomic_write_json

    path.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(state, path / "state.pt")
    atomic_write_json(path / "backend.json", {"name": name, "config": asdict(cfg), "info": info or {}})


def load_backend(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(backend.json, state.pt) of a saved backend; tensors are loaded on the CPU."""
    import json

    meta = json.loads((path / "backend.json").read_text())
    return meta, torch.load(path / "state.pt", map_location="cpu", weights_only=True)


def parse_decode(texts: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """`--decode key=value` arguments as a dict (`model.key=value` accepted too)."""
    from genrec_bench.config import parse_override

    values: dict[str, Any] = {}
    for text in texts:
        keys, value = parse_override(text, "--decode", "beam_width=20")
        values[".".join(keys[1:] if keys[0] == "model" and len(keys) == 2 else keys)] = value
    return values


def check_decode_keys(cls: type, keys: Any, where: str = "", path: str | None = None) -> None:
    """Every key must be one of backend class `cls`'s `decode_keys`; checked before any data is loaded."""
    for key in keys:
        if key not in cls.decode_keys:
            options = ", ".join(cls.decode_keys)
            raise GenrecError(f"{where}'{key}' is not a decoding option of {cls.name}"
                              + (did_you_mean(key, cls.decode_keys) + f"; its options: {options}" if options
                                 else "; it has none (its ranking is a single forward pass)"), path=path)


def apply_decoding(backend: Backend, values: dict[str, Any]) -> None:
    """Replace decode-time `[model]` keys of a loaded backend (`--decode`, a suite run's `decode`).

    A decoder ablation (beam width, unmasking order, ...) then reuses one checkpoint, so its paired
    test against the default isolates the decoder instead of adding a second training's noise.
    The keys have passed `check_decode_keys` (`open_run` checks them before loading anything);
    values are validated by the backend's config dataclass, as in `train --set`.
    """
    from dataclasses import asdict

    from genrec_bench.config import from_dict

    if values:
        backend.cfg = from_dict(type(backend.cfg), asdict(backend.cfg) | values, "model", "decode")


def create_backend(name: str, model_cfg: dict[str, Any], source: str = "config") -> Backend:
    """Instantiate backend `name` from the `[model]` table (validated by its `Config` dataclass)."""
    return build_backend(backend_class(name), model_cfg, source)


def build_backend(cls: type, model_cfg: dict[str, Any], source: str = "config") -> Backend:
    """`cls(cls.Config(**model_cfg))` with the checks every run gets: unknown keys and wrong types
    are `GenrecError`s naming the key, and whatever else a constructor raises names the backend."""
    from genrec_bench.config import from_dict

    try:
        return cls(from_dict(cls.Config, model_cfg, "model", source))
    except GenrecError:
        raise
    except Exception as exc:
        raise GenrecError(f"model '{getattr(cls, 'name', cls.__name__)}' ({cls.__module__}:{cls.__qualname__}) "
                          f"rejected its [model] config: {exc.__class__.__name__}: {exc}", path=source) from None
