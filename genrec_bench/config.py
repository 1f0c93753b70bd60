"""Typed configuration, loaded from TOML and `key=value` overrides, validated with clear errors.

One tree: `[data]` (the split contract), `[train]` (the shared training loop), `[eval]`, and
`[model]` whose keys belong to the chosen backend's own dataclass. Unknown keys are errors with
the closest valid key suggested, because a silently ignored typo invalidates a benchmark.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from genrec_bench.errors import GenrecError, did_you_mean

T = TypeVar("T")


@dataclass(frozen=True)
class DataConfig:
    """The evaluation contract: every number in a table depends on these values."""

    kcore: int = 5
    max_history: int = 20
    min_interactions: int = 3
    exclude_seen: bool = False
    # Keep only the first `max_users` users (file order) after filtering, with the whole catalogue:
    # the MindRec reference code's population (limit_user_num = 5000). 0 = every user.
    max_users: int = 0

    def __post_init__(self) -> None:
        check_key(self.kcore >= 0, "data.kcore", "an integer >= 0", self.kcore)
        check_key(self.max_users >= 0, "data.max_users", "an integer >= 0 (0 = every user)", self.max_users)
        check_key(self.max_history >= 1, "data.max_history", "an integer >= 1", self.max_history)
        check_key(self.min_interactions >= 3, "data.min_interactions", "an integer >= 3", self.min_interactions)


VALID_SAMPLES = ("random", "first")
SCHEDULES = ("linear", "cosine")
# Stored configs (run.json, records) written before a field existed ran with these values (some no
# longer the defaults); `with_legacy_values` fills them in before such a config is read.
LEGACY_VALUES: dict[str, dict[str, Any]] = {"train": {"valid_sample": "first", "stop_after": 0}}


@dataclass(frozen=True)
class TrainConfig:
    """Knobs of the one training loop shared by every neural backend."""

    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 100
    # After warm-up: "linear" decay to 5% of lr at the last step, or "cosine" to zero (the
    # transformers schedule RPG's official code uses).
    schedule: str = "linear"
    patience: int = 3
    eval_every: int = 1
    valid_users: int = 5000
    # Which `valid_users` users steer early stopping and `keep = "best"`: a fixed-seed "random"
    # sample (the same users for every model and seed) or the "first" in file order, which is not
    # random on the Amazon sets (docs/protocol.md, "Validation sampling, measured on Beauty").
    valid_sample: str = "random"
    max_steps: int = 0
    # End training after this epoch (0 = never) without changing the learning-rate schedule, which
    # `epochs` and `max_steps` define: a compute budget that leaves the run reproducible as recorded.
    stop_after: int = 0
    checkpoint_every: int = 200
    seed: int = 0
    device: str = "auto"
    num_threads: int = 0
    deterministic: bool = False
    # Which weights the run keeps: "best" validated, or "last" (a fixed schedule, patience 0, for
    # when a small validation sample would pick noise; docs/protocol.md measures a case).
    keep: str = "best"

    def __post_init__(self) -> None:
        check_key(self.epochs >= 1, "train.epochs", "an integer >= 1", self.epochs)
        check_key(self.stop_after >= 0, "train.stop_after", "an integer >= 0 (0 = run every epoch)", self.stop_after)
        check_key(self.keep in ("best", "last"), "train.keep", "best or last", self.keep)
        check_key(self.batch_size >= 1, "train.batch_size", "an integer >= 1", self.batch_size)
        check_key(self.lr > 0, "train.lr", "a number > 0", self.lr)
        check_key(self.weight_decay >= 0, "train.weight_decay", "a number >= 0", self.weight_decay)
        check_key(self.warmup_steps >= 0, "train.warmup_steps", "an integer >= 0", self.warmup_steps)
        check_key(self.schedule in SCHEDULES, "train.schedule", " or ".join(SCHEDULES), self.schedule)
        check_key(self.patience >= 0, "train.patience", "an integer >= 0 (0 = no early stopping)", self.patience)
        check_key(self.eval_every >= 1, "train.eval_every", "an integer >= 1", self.eval_every)
        check_key(self.valid_users >= 0, "train.valid_users", "an integer >= 0 (0 = all)", self.valid_users)
        check_key(self.valid_sample in VALID_SAMPLES, "train.valid_sample", " or ".join(VALID_SAMPLES),
               self.valid_sample)
        check_key(self.max_steps >= 0, "train.max_steps", "an integer >= 0 (0 = no limit)", self.max_steps)
        check_key(self.checkpoint_every >= 0, "train.checkpoint_every", "an integer >= 0", self.checkpoint_every)
        check_key(self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"), "train.device",
               "auto, cpu or cuda", self.device)


@dataclass(frozen=True)
class EvalConfig:
    """What is measured: cut-offs and how many users (0 = all, the default full evaluation)."""

    ks: tuple[int, ...] = (1, 5, 10, 20)
    max_users: int = 0
    batch_size: int = 256

    def __post_init__(self) -> None:
        check_key(len(self.ks) > 0 and all(k >= 1 for k in self.ks), "eval.ks", "a list of integers >= 1",
               list(self.ks))
        check_key(self.max_users >= 0, "eval.max_users", "an integer >= 0 (0 = all users)", self.max_users)
        check_key(self.batch_size >= 1, "eval.batch_size", "an integer >= 1", self.batch_size)


@dataclass(frozen=True)
class RunConfig:
    """Everything a `train` needs besides the data source; `model` is validated by the backend."""

    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    model: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check_key(ok: bool, key: str, expected: str, got: object) -> None:
    """Raise the one-line error every config check gives: which key, what it must be, what it was."""
    if not ok:
        raise GenrecError(f"config key '{key}' must be {expected}, got {got!r}")


def is_int(value: object) -> bool:
    """An integer that is not a bool (TOML's `true` would otherwise pass as 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def current_names(cls: type, values: dict[str, Any], section: str = "model", source: str = "config"
                  ) -> dict[str, Any]:
    """`values` with a config's earlier key names and values replaced by today's.

    A config class may declare `renamed_keys` (old key -> new key) and `renamed_values` ({key: {old
    value: new value}}), so configs, suites and records written with an earlier name keep working
    while the code and docs use one name per idea. Giving both names of one key is an error.
    """
    keys: dict[str, str] = getattr(cls, "renamed_keys", {})
    out: dict[str, Any] = {}
    for key, value in values.items():
        new = keys.get(key, key)
        if new in out or (new != key and new in values):
            raise GenrecError(f"config keys '{section}.{key}' and '{section}.{new}' name the same setting "
                              f"('{key}' is its earlier name); keep '{new}'", path=source)
        out[new] = value
    for key, mapping in getattr(cls, "renamed_values", {}).items():
        if isinstance(out.get(key), str):
            out[key] = mapping.get(out[key], out[key])
    return out


def from_dict(cls: type[T], values: dict[str, Any], section: str, source: str = "config") -> T:
    """Build dataclass `cls` from a plain dict, rejecting unknown keys and wrong types (earlier key
    names are read as today's, see `current_names`)."""
    values = current_names(cls, values, section, source)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            raise GenrecError(
                f"unknown config key '{section}.{key}'{did_you_mean(key, list(fields))}", path=source
            )
        kwargs[key] = _coerce(value, hints[key], f"{section}.{key}", source)
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, key: str, source: str) -> Any:
    """Accept TOML values of the declared type (ints for floats, lists for tuples)."""
    origin = typing.get_origin(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:
        (inner, *_) = typing.get_args(hint)
        if isinstance(value, list | tuple):
            return tuple(_coerce(v, inner, key, source) for v in value)
    elif origin is dict or hint is Any:
        return value
    elif origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            if option is type(None) and value is None:
                return None
            try:
                return _coerce(value, option, key, source)
            except GenrecError:
                continue
    raise GenrecError(f"config key '{key}' expects {_type_name(hint)}, got {value!r}", path=source)


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))


def parse_override(text: str, flag: str = "--set", example: str = "train.lr=0.001") -> tuple[list[str], Any]:
    """Parse `section.key=value` where value is read as a TOML value (bare words become strings)."""
    if "=" not in text:
        raise GenrecError(f"{flag} expects key=value (for example {example}), got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip().split("."), value


def load_run_config(path: Path | None, overrides: list[str] = ()) -> RunConfig:  # type: ignore[assignment]
    """Read a TOML file (optional) and apply `--set` overrides on top."""
    raw: dict[str, Any] = {}
    source = str(path) if path else "--set"
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise GenrecError("config file not found", path=path) from None
        except tomllib.TOMLDecodeError as exc:
            raise GenrecError(f"invalid TOML: {exc}", path=path) from None
        except UnicodeDecodeError:
            raise GenrecError("config file is not UTF-8 text", path=path) from None
    for text in overrides:
        keys, value = parse_override(text)
        node = raw
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise GenrecError(f"--set {text}: '{k}' is not a section")
        node[keys[-1]] = value
    return run_config_from_dict(raw, source)


def with_legacy_values(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored config with the value every field it lacks had in effect when it was written."""
    out = dict(stored)
    for section, values in LEGACY_VALUES.items():
        out[section] = values | dict(stored.get(section, {}))
    return out


def run_config_from_dict(raw: dict[str, Any], source: str = "config") -> RunConfig:
    sections = {"data", "train", "eval", "model"}
    for key, value in raw.items():
        if key not in sections:
            raise GenrecError(f"unknown config section '{key}'{did_you_mean(key, sections)}", path=source)
        if not isinstance(value, dict):
            raise GenrecError(f"config section '{key}' must be a table", path=source)
    return RunConfig(
        data=from_dict(DataConfig, raw.get("data", {}), "data", source),
        train=from_dict(TrainConfig, raw.get("train", {}), "train", source),
        eval=from_dict(EvalConfig, raw.get("eval", {}), "eval", source),
        model=dict(raw.get("model", {})),
    )
