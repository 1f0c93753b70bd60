"""Shared start of the TIGER diagnostics: `--run` / `--threads` parsed, the trained tiger run opened on CPU."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from genrec_bench.backends.tiger import Tiger
from genrec_bench.data.split import SplitData
from genrec_bench.pipeline import open_run


def open_tiger_run(parser: argparse.ArgumentParser) -> tuple[argparse.Namespace, Tiger, SplitData]:
    """Add `--run` and `--threads` to the script's own options, parse them, load the run's model and split."""
    parser.add_argument("--run", type=Path, required=True, help="a trained tiger run directory")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    _, model, data = open_run(args.run, "cpu")
    if not isinstance(model, Tiger):
        raise SystemExit(f"{args.run}: not a tiger run")
    return args, model, data
