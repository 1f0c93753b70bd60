"""The one interface every recommender honours, generative or classic, and the registry of them.

A backend returns ranked item indices, so metrics, significance tests and reports never know
which model produced a list. Generative backends pad with -1 (a miss) when their beams yield
fewer than k distinct valid items; they never invent items.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch

from genrec_bench.config import TrainConfig
from genrec_bench.data.split import SplitData
from genrec_bench.errors import GenrecError, did_you_mean


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
    """`fit` on a split, `recommend` from left-padded histories, `save`/`load` a run directory."""

    name: ClassVar[str]
    decode_keys: ClassVar[tuple[str, ...]]  # `[model]` keys that only change decoding (`eval --decode`)
    cfg: Any

    def fit(self, data: SplitData, cfg: TrainConfig, workdir: Path | None = None) -> FitReport: ...

    def recommend(self, histories: torch.Tensor, k: int) -> Ranked: ...

    def save(self, path: Path) -> None: ...

    @classmethod
    def load(cls, path: Path, device: torch.device | None = None) -> Backend: ...


# name -> "module:Class"; imported lazily so `genrec-bench datasets` does not import transformers.
REGISTRY: dict[str, str] = {
    "popularity": "genrec_bench.baselines.popularity:Popularity",
    "sasrec": "genrec_bench.baselines.sasrec:SASRec",
    "tiger": "genrec_bench.backends.tiger:Tiger",
    "mindrec": "genrec_bench.backends.mindrec:MindRec",
}


def backend_class(name: str) -> type:
    if name not in REGISTRY:
        raise GenrecError(f"unknown model '{name}'{did_you_mean(name, list(REGISTRY))}; "
                          f"available: {', '.join(REGISTRY)}")
    module, cls = REGISTRY[name].split(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as exc:
        raise GenrecError(f"model '{name}' is not available in this build ({exc})") from None


def available_backends() -> list[str]:
    out = []
    for name in REGISTRY:
        try:
            backend_class(name)
        except GenrecError:
            continue
        out.append(name)
    return out


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
    from genrec_bench.config import from_dict

    cls = backend_class(name)
    cfg = from_dict(cls.Config, model_cfg, "model", source)
    return cls(cfg)
