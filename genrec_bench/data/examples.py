"""Next-item training examples: every (history window, next item) pair of the training sequences.

Generative backends (TIGER, MindRec) train on every prefix of every training sequence; the pairs
are addressed by index so the shared training loop can shuffle, shard and resume them, and a batch
is cut from the flat item array with one gather, never a Python loop over users.
"""

from __future__ import annotations

import numpy as np
import torch

from genrec_bench.data.split import PAD, SplitData


class NextItemWindows:
    """Example i = (the last `max_history` items before target i, left-padded with PAD; target i)."""

    def __init__(self, data: SplitData, max_history: int):
        flat, offsets = data.train_sequences()
        lengths = np.diff(offsets)
        starts = np.repeat(offsets[:-1], lengths)
        keep = np.arange(len(flat)) - starts >= 1  # a target needs at least one history item
        self.flat = torch.from_numpy(flat.astype(np.int64))
        self.target = torch.from_numpy(np.flatnonzero(keep).astype(np.int64))
        self.start = torch.from_numpy(starts[keep].astype(np.int64))
        self.window = torch.arange(max_history) - max_history

    def num_examples(self) -> int:
        return len(self.target)

    def batch(self, index: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(histories [B, max_history], next items [B]) on `device`."""
        t, s = self.target[index], self.start[index]
        idx = t[:, None] + self.window[None, :]
        hist = torch.where(idx >= s[:, None], self.flat[idx.clamp(min=0)], PAD)
        return hist.to(device), self.flat[t].to(device)
