"""A fitted backend on disk: `state.pt` (tensors) and `backend.json` (name, config, info).

Each file is written atomically, so a crash mid-save never leaves a run directory that loads half
a model. Configs written before a key existed are read with the value that key had in effect then
(`stored_config`), so an old run loads as it was trained.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from genrec_bench.config import current_names, from_dict
from genrec_bench.runtime import atomic_torch_save, atomic_write_json


def save_backend(path: Path, name: str, cfg: Any, state: dict[str, Any], info: dict[str, Any] | None = None) -> None:
    """Write `state` and `{"name", "config", "info"}` into the directory `path`."""
    path.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(state, path / "state.pt")
    atomic_write_json(path / "backend.json", {"name": name, "config": asdict(cfg), "info": info or {}})


def load_backend(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(backend.json, state.pt) of a saved backend; tensors are loaded on the CPU."""
    meta = json.loads((path / "backend.json").read_text())
    return meta, torch.load(path / "state.pt", map_location="cpu", weights_only=True)


def stored_config(config_cls: type, stored: dict[str, Any], legacy: dict[str, Any]) -> Any:
    """`config_cls` from a saved config: keys it lacks take their `legacy` values (what runs saved
    before those keys existed were trained with), and earlier key names are read as today's; JSON
    lists become the tuples the config declares, as in a TOML config."""
    return from_dict(config_cls, legacy | current_names(config_cls, stored, "model", "backend.json"), "model",
                     "backend.json")
