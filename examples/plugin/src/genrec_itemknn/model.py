"""Item-KNN (Sarwar et al., 2001) as a genrec-bench backend, from a package genrec-bench does not know.

Two items are similar when they follow each other closely in training sequences: the count of
such co-occurrences, normalised like a cosine (with a shrinkage term that damps pairs seen only a
few times), kept for each item's `neighbours` most similar items. A user's recent history items
vote for their neighbours, the most recent one loudest; items no neighbour votes for are ranked
by popularity. No training loop, no randomness: it fits in a second on Amazon Beauty.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from genrec_bench.api import FitReport, Ranked
from genrec_bench.config import TrainConfig
from genrec_bench.data.split import SplitData
from genrec_bench.errors import GenrecError
from genrec_bench.ranking import topk_stable
from genrec_bench.saving import load_backend, save_backend

POPULARITY_TIE_BREAK = 1e-6  # far below any vote, so popularity orders only the items without one


@dataclass(frozen=True)
class ItemKNNConfig:
    """The `[model]` keys of itemknn; genrec-bench rejects any other key before fitting."""

    neighbours: int = 100  # similar items kept per item (0 = all)
    window: int = 3  # items at most this many steps apart in a training sequence co-occur
    shrink: float = 10.0  # added to the cosine denominator: pairs seen a few times count less
    history: int = 5  # most recent history items that vote
    decay: float = 0.8  # vote weight of an item one step older than the next

    def __post_init__(self) -> None:
        for key, ok, expected in (
            ("neighbours", self.neighbours >= 0, "an integer >= 0"),  # types are checked by genrec-bench
            ("window", self.window >= 1, "an integer >= 1"),
            ("shrink", self.shrink >= 0, "a number >= 0"),
            ("history", self.history >= 1, "an integer >= 1"),
            ("decay", 0 < self.decay <= 1, "a number in (0, 1]"),
        ):
            if not ok:
                raise GenrecError(f"config key 'model.{key}' must be {expected}, got {getattr(self, key)!r}")


class ItemKNN:
    """The Backend contract (`genrec_bench.backends.base.Backend`): name, Config, cls(cfg), decode_keys,
    fit, recommend, save and load."""

    name: ClassVar[str] = "itemknn"
    decode_keys: ClassVar[tuple[str, ...]] = ("history", "decay")  # they change the voting, not the fit
    Config = ItemKNNConfig

    def __init__(self, cfg: ItemKNNConfig | None = None):
        self.cfg = cfg or ItemKNNConfig()
        self.similarity_: sp.csr_matrix | None = None  # [N, N] pruned item-item similarity
        self.popularity_: np.ndarray | None = None  # [N] training counts / max count

    def fit(self, data: SplitData, cfg: TrainConfig, workdir: Path | None = None) -> FitReport:
        start = time.perf_counter()
        flat, offsets = data.train_sequences()  # never the validation or test targets
        n = data.n_items
        lengths = np.diff(offsets)
        position = np.arange(len(flat)) - np.repeat(offsets[:-1], lengths)  # index within its sequence
        length = np.repeat(lengths, lengths)
        pairs = []
        for gap in range(1, self.cfg.window + 1):
            first = np.flatnonzero(position + gap < length)
            pairs.append((flat[first], flat[first + gap]))
        a = np.concatenate([p[0] for p in pairs] + [p[1] for p in pairs])
        b = np.concatenate([p[1] for p in pairs] + [p[0] for p in pairs])
        co = sp.csr_matrix((np.ones(len(a)), (a, b)), shape=(n, n))  # duplicates are summed
        co.setdiag(0)
        co.eliminate_zeros()
        counts = np.bincount(flat, minlength=n).astype(np.float64)
        co = co.tocoo()
        cosine = co.data / (np.sqrt(counts[co.row] * counts[co.col]) + self.cfg.shrink)
        self.similarity_ = self._prune(co.row, co.col, cosine, n)
        self.popularity_ = counts / max(counts.max(), 1.0)
        return FitReport(seconds=time.perf_counter() - start, extra={"similarities": int(self.similarity_.nnz)})

    def _prune(self, rows: np.ndarray, cols: np.ndarray, values: np.ndarray, n: int) -> sp.csr_matrix:
        """Keep each row's `neighbours` largest values; ties keep the lower item index."""
        order = np.lexsort((cols, -values, rows))  # by row, then similarity descending, then column
        rows, cols, values = rows[order], cols[order], values[order]
        if self.cfg.neighbours:
            starts = np.searchsorted(rows, rows, side="left")
            keep = np.arange(len(rows)) - starts < self.cfg.neighbours
            rows, cols, values = rows[keep], cols[keep], values[keep]
        return sp.csr_matrix((values, (rows, cols)), shape=(n, n))

    def recommend(self, histories: torch.Tensor, k: int) -> Ranked:
        if self.similarity_ is None or self.popularity_ is None:
            raise GenrecError("itemknn model is not fitted; call fit() or load() first")
        recent = histories[:, -self.cfg.history :].cpu().numpy()  # [B, h], most recent last, -1 = padding
        weight = self.cfg.decay ** np.arange(recent.shape[1] - 1, -1, -1, dtype=np.float64)  # [h]
        user, slot = np.nonzero(recent >= 0)
        votes = sp.csr_matrix((weight[slot], (user, recent[user, slot])),
                              shape=(len(recent), self.similarity_.shape[0]))  # [B, N], repeats add up
        scores_bn = (votes @ self.similarity_).toarray() + POPULARITY_TIE_BREAK * self.popularity_[None, :]
        return topk_stable(torch.from_numpy(scores_bn), k)

    def save(self, path: Path) -> None:
        if self.similarity_ is None or self.popularity_ is None:
            raise GenrecError("itemknn model is not fitted; nothing to save")
        s = self.similarity_
        save_backend(path, self.name, self.cfg, {
            "indptr": torch.from_numpy(s.indptr.astype(np.int64)), "values": torch.from_numpy(s.data),
            "indices": torch.from_numpy(s.indices.astype(np.int64)), "popularity": torch.from_numpy(self.popularity_)})

    @classmethod
    def load(cls, path: Path, device: torch.device | None = None) -> ItemKNN:
        meta, state = load_backend(path)
        model = cls(ItemKNNConfig(**meta["config"]))
        n = len(state["popularity"])
        model.similarity_ = sp.csr_matrix((state["values"].numpy(), state["indices"].numpy(), state["indptr"].numpy()),
                                          shape=(n, n))
        model.popularity_ = state["popularity"].numpy()
        return model
