"""The registry of backends: built-ins by name, installed plugins by entry point, module paths.

A backend is found by name in four places, in this order: a Cornac model `cornac:NAME` (the optional
adapter in `genrec_bench.models.cornac`), a module path `package.module:Class` (anything else
containing ':'), the built-in `REGISTRY`, and the entry-point group
`genrec_bench.backends` of installed plugins. Plugins are imported only when named (or listed by
`genrec-bench models`), so a broken one cannot break the built-ins or `--help`. A class is checked
against the shape of the contract (`genrec_bench.api.Backend`) before any data is loaded.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Literal

from genrec_bench.api import CONTRACT, Backend
from genrec_bench.config import from_dict
from genrec_bench.errors import GenrecError, did_you_mean
from genrec_bench.models.cornac import cornac_target, is_cornac, require_cornac

ENTRY_POINT_GROUP = "genrec_bench.backends"

# name -> "module:Class"; imported lazily so `genrec-bench datasets` does not import transformers.
REGISTRY: dict[str, str] = {
    "popularity": "genrec_bench.baselines.popularity:Popularity",
    "sasrec": "genrec_bench.baselines.sasrec:SASRec",
    "hstu": "genrec_bench.baselines.hstu:HSTU",
    "bert4rec": "genrec_bench.baselines.bert4rec:BERT4Rec",
    "rpg": "genrec_bench.models.rpg:RPG",
    "liger": "genrec_bench.models.liger:Liger",
    "tiger": "genrec_bench.models.tiger:Tiger",
    "mindrec": "genrec_bench.models.mindrec:MindRec",
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
    """Resolve `name` (Cornac model, module path, built-in or entry point) without importing anything."""
    if is_cornac(name):
        return BackendSpec(name, cornac_target(name), "built-in")
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
    if is_cornac(name):
        require_cornac(name)
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


def create_backend(name: str, model_cfg: dict[str, Any], source: str = "config") -> Backend:
    """Instantiate backend `name` from the `[model]` table (validated by its `Config` dataclass)."""
    return build_backend(backend_class(name), model_cfg, source)


def build_backend(cls: type, model_cfg: dict[str, Any], source: str = "config") -> Backend:
    """`cls(cls.Config(**model_cfg))` with the checks every run gets: unknown keys and wrong types
    are `GenrecError`s naming the key, and whatever else a constructor raises names the backend."""
    try:
        return cls(from_dict(cls.Config, model_cfg, "model", source))
    except GenrecError:
        raise
    except Exception as exc:
        raise GenrecError(f"model '{getattr(cls, 'name', cls.__name__)}' ({cls.__module__}:{cls.__qualname__}) "
                          f"rejected its [model] config: {exc.__class__.__name__}: {exc}", path=source) from None
