"""`--decode key=value`: decoding switches applied to a loaded backend.

A decoder ablation (beam width, unmasking order, ...) then reuses one checkpoint, so its paired
test against the default isolates the decoder instead of adding a second training's noise.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from genrec_bench.api import Backend
from genrec_bench.config import from_dict, parse_override
from genrec_bench.errors import GenrecError, did_you_mean


def parse_decode(texts: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """`--decode key=value` arguments as a dict (`model.key=value` accepted too)."""
    values: dict[str, Any] = {}
    for text in texts:
        keys, value = parse_override(text, "--decode", "beam_width=20")
        values[".".join(keys[1:] if keys[0] == "model" and len(keys) == 2 else keys)] = value
    return values


def check_decode_keys(cls: type, keys: Any, where: str = "", path: str | None = None) -> None:
    """Every key must be one of backend class `cls`'s `decode_keys`; checked before any data is loaded."""
    renamed = getattr(getattr(cls, "Config", None), "renamed_keys", {})
    for key in keys:
        if renamed.get(key, key) not in cls.decode_keys:
            options = ", ".join(cls.decode_keys)
            raise GenrecError(f"{where}'{key}' is not a decoding option of {cls.name}"
                              + (did_you_mean(key, cls.decode_keys) + f"; its options: {options}" if options
                                 else "; it has none (its ranking is a single forward pass)"), path=path)


def apply_decoding(backend: Backend, values: dict[str, Any]) -> None:
    """Replace decode-time `[model]` keys of a loaded backend (`--decode`, a suite run's `decode`).

    The keys have passed `check_decode_keys` (`open_run` checks them before loading anything);
    values are validated by the backend's config dataclass, as in `train --set`.
    """
    if values:
        backend.cfg = from_dict(type(backend.cfg), asdict(backend.cfg) | values, "model", "decode")
