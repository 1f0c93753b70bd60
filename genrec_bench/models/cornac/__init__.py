"""Cornac next-item models as genrec-bench backends: `--model cornac:NAME` (see `model.py`).

This module holds only the names and the install check, so the registry can resolve and reject
`cornac:NAME` without importing torch models or Cornac itself; Cornac is an optional extra.
"""

from __future__ import annotations

import importlib

from genrec_bench.errors import GenrecError

PREFIX = "cornac"
INSTALL = "pip install -e .[cornac] (or pip install 'genrec-bench[cornac]')"
# Cornac class names whose constructor, fit(train_set) and score(user_idx, history_items) the
# adapter drives; each has a backend class named Cornac<NAME> in `model.py`.
SUPPORTED = ("SASRec", "BERT4Rec", "GRU4Rec", "TIGER", "RPG", "DiffGRM")


def is_cornac(name: str) -> bool:
    """`cornac:NAME` goes to the adapter; any other `module:Class` stays a module path."""
    return name.partition(":")[0] == PREFIX


def cornac_target(name: str) -> str:
    """The "module:Class" of `cornac:NAME`; an unknown NAME is an error listing the supported ones."""
    model = name.partition(":")[2]
    if model not in SUPPORTED:
        raise GenrecError(f"--model {name!r}: unknown Cornac model {model!r}; supported: "
                          f"{', '.join(f'{PREFIX}:{n}' for n in SUPPORTED)}")
    return f"genrec_bench.models.cornac.model:Cornac{model}"


def require_cornac(name: str) -> None:
    """Fail before any data is loaded, in one line that says how to install the extra."""
    try:
        importlib.import_module("cornac")
    except ImportError as exc:
        raise GenrecError(f"model {name!r} needs the optional package cornac, which cannot be imported "
                          f"({exc}); install it with {INSTALL}") from None
