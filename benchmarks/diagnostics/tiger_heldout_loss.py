"""Is a trained TIGER overfitting? Its teacher-forced cross-entropy on training windows vs validation targets.

Both with dropout off (eval mode), in nats per semantic-ID token (the training loss: the mean over
the target item's levels). A validation loss that
rises between two checkpoints of one run while the training loss falls is overfitting in
likelihood, even when the ranking metrics still improve.

    .venv/bin/python benchmarks/diagnostics/tiger_heldout_loss.py --run RUN --examples 8192
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from tiger_run import open_tiger_run

from genrec_bench.nn.seq2seq import TrainingPrefixes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=8192,
                        help="random training windows and validation users (seed 0)")
    args, model, data = open_tiger_run(parser)
    net = model.module_
    windows = TrainingPrefixes(net, data, model.max_history_)
    picked = torch.randperm(windows.num_examples(), generator=torch.Generator().manual_seed(0))[: args.examples]
    users = np.random.default_rng(0).permutation(data.n_users)[: args.examples]
    cpu = torch.device("cpu")
    with torch.no_grad():
        train = _mean(lambda idx: net(*windows.batch(idx, cpu)), picked)
        valid = _mean(lambda idx: net(*data.to_tensors("valid", None, idx)), users)
    print(f"{args.run}: training windows {train:.4f} nats/token ({len(picked)}), "
          f"validation targets {valid:.4f} ({len(users)} users)")


def _mean(loss: Callable[[Any], torch.Tensor], index: Any, batch: int = 512) -> float:
    """Mean of per-batch mean losses weighted by batch size (the last batch may be short)."""
    total = sum(float(loss(index[s : s + batch])) * len(index[s : s + batch]) for s in range(0, len(index), batch))
    return total / len(index)


if __name__ == "__main__":
    main()
