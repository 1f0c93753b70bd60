"""Where the contract lived before it had a home of its own; kept so plugins written against it run.

Importing it warns once and names the new homes: `genrec_bench.api` (Backend, Ranked, FitReport),
`genrec_bench.models.registry` (REGISTRY, create_backend, backend_class, ...),
`genrec_bench.saving` (save_backend, load_backend) and `genrec_bench.decode_options`.
"""

from __future__ import annotations

import warnings

from genrec_bench.api import CONTRACT, Backend, FitReport, Ranked
from genrec_bench.decode_options import apply_decoding, check_decode_keys, parse_decode
from genrec_bench.models.registry import (
    ENTRY_POINT_GROUP,
    REGISTRY,
    BackendInfo,
    BackendSpec,
    backend_class,
    backend_spec,
    build_backend,
    contract_problem,
    create_backend,
    describe_backend,
    list_backends,
    plugin_specs,
)
from genrec_bench.saving import load_backend, save_backend

MOVED = ("genrec_bench.backends.base has moved: import Backend, Ranked and FitReport from genrec_bench.api, "
         "save_backend and load_backend from genrec_bench.saving, and the registry functions from "
         "genrec_bench.models.registry")
warnings.warn(MOVED, DeprecationWarning, stacklevel=2)

__all__ = ["CONTRACT", "ENTRY_POINT_GROUP", "REGISTRY", "Backend", "BackendInfo", "BackendSpec", "FitReport",
           "Ranked", "apply_decoding", "backend_class", "backend_spec", "build_backend", "check_decode_keys",
           "contract_problem", "create_backend", "describe_backend", "list_backends", "load_backend",
           "parse_decode", "plugin_specs", "save_backend"]
