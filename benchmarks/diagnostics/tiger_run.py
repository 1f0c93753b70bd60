"""Shared parts of the TIGER diagnostics: opening trained tiger runs, and beam search on re-combined log-probs."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from genrec_bench.api import Ranked
from genrec_bench.data.split import SplitData
from genrec_bench.decoding.beam_search import constrained_beam_search
from genrec_bench.models.tiger import Tiger
from genrec_bench.pipeline import open_run


def load_tiger(run: Path) -> tuple[dict[str, Any], Tiger, SplitData]:
    """`open_run` on CPU, refusing a run of another backend."""
    info, model, data = open_run(run, "cpu")
    if not isinstance(model, Tiger):
        raise SystemExit(f"{run}: not a tiger run")
    return info, model, data


def open_tiger_run(parser: argparse.ArgumentParser) -> tuple[argparse.Namespace, Tiger, SplitData]:
    """Add `--run` and `--threads` to the script's own options, parse them, load the run's model and split."""
    parser.add_argument("--run", type=Path, required=True, help="a trained tiger run directory")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    _, model, data = load_tiger(args.run)
    return args, model, data


@dataclass(frozen=True)
class Combined:
    """`Tiger.recommend` on `combine(per-model level log-probs, level)` instead of one model's,
    so the beam also prunes on the combined score; every model must share `models[0]`'s trie."""

    models: list[Tiger]
    combine: Callable[[list[torch.Tensor], int], torch.Tensor]

    def recommend(self, histories: torch.Tensor, k: int) -> Ranked:
        first = self.models[0]
        with torch.inference_mode():
            decoders = [m.decoder_for(histories) for m in self.models]

            def step(prefix_bwt: torch.Tensor, parent_bw: torch.Tensor | None) -> torch.Tensor:
                return self.combine([d.level_step(prefix_bwt, parent_bw) for d in decoders], prefix_bwt.shape[2])

            out = constrained_beam_search(step, first.trie_, len(histories), beam=max(k, first.cfg.beam_width), k=k)
        return Ranked(items=out.items, scores=out.scores)
