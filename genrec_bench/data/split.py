"""The evaluation contract: k-core filter, chronological leave-one-out split, history windows.

Every backend sees the same `SplitData`; nothing here can be changed by a model. Users and items
are indexed by first appearance in the input file, so a ranking tie is broken by that order.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
import torch

from genrec_bench.config import DataConfig
from genrec_bench.data.loaders import Interactions, ItemMeta
from genrec_bench.errors import GenrecError

PAD = -1  # history padding value: histories are left-padded, most recent item last
Split = Literal["valid", "test"]


@dataclass(frozen=True)
class SplitData:
    """Filtered, indexed interactions and the leave-one-out views of them.

    `items[offsets[u]:offsets[u+1]]` is user u's chronological sequence of item indices; the last
    item is the test target, the second-to-last the validation target, the rest is training.
    """

    name: str
    user_ids: np.ndarray  # [U] raw ids (str)
    item_ids: np.ndarray  # [N] raw ids (str)
    items: np.ndarray  # [I] int64, all sequences concatenated
    offsets: np.ndarray  # [U+1] int64
    config: DataConfig
    fingerprint: str
    meta: ItemMeta

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def sequence(self, user: int) -> np.ndarray:
        return self.items[self.offsets[user] : self.offsets[user + 1]]

    def train_sequences(self) -> tuple[np.ndarray, np.ndarray]:
        """Flat items and offsets of each user's training part (sequence minus its last two items)."""
        lengths = np.diff(self.offsets) - 2
        starts = self.offsets[:-1]
        keep = np.repeat(starts, lengths) + concat_ranges(lengths)
        return self.items[keep], np.concatenate([[0], np.cumsum(lengths)])

    def train_counts(self) -> np.ndarray:
        """Interactions per item in the training part only (never validation or test)."""
        flat, _ = self.train_sequences()
        return np.bincount(flat, minlength=self.n_items)

    def eval_arrays(self, split: Split, max_history: int | None = None,
                    users: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Left-padded histories [U, L] (PAD = -1) and targets [U] for `split`.

        Test histories include the validation item; validation histories end before it.
        """
        length = max_history or self.config.max_history
        users = np.arange(self.n_users) if users is None else users
        end = self.offsets[users + 1] - (1 if split == "test" else 2)  # index of the target
        start = self.offsets[users]
        idx = end[:, None] - length + np.arange(length)[None, :]
        valid = idx >= start[:, None]
        hist = np.where(valid, self.items[np.clip(idx, 0, None)], PAD)
        return hist.astype(np.int64), self.items[end].astype(np.int64)

    def to_tensors(self, split: Split, max_history: int | None = None,
                   users: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        hist, tgt = self.eval_arrays(split, max_history, users)
        return torch.from_numpy(hist), torch.from_numpy(tgt)

    def summary(self) -> dict[str, object]:
        return {"dataset": self.name, "users": self.n_users, "items": self.n_items,
                "interactions": int(len(self.items)), "fingerprint": self.fingerprint}


def concat_ranges(lengths: np.ndarray) -> np.ndarray:
    """Concatenated aranges: [0..l0), [0..l1), ... without a Python loop."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.arange(total, dtype=np.int64) - starts


def kcore(frame: pl.DataFrame, k_user: int, k_item: int) -> pl.DataFrame:
    """Drop users with < k_user and items with < k_item interactions, repeated to a fixed point."""
    while True:
        before = frame.height
        frame = frame.filter(pl.len().over("item_id") >= k_item)
        frame = frame.filter(pl.len().over("user_id") >= k_user)
        if frame.height == before:
            return frame


def fingerprint(inter: Interactions, cfg: DataConfig) -> str:
    """Hash of the input bytes and the split settings: equal fingerprints mean identical splits.

    Frames built in memory (no file behind them) hash their rows instead.
    """
    if Path(inter.source).is_file():
        with Path(inter.source).open("rb") as fh:
            digest = hashlib.file_digest(fh, "sha256")
    else:
        rows = inter.frame.select("user_id", "item_id", "timestamp").hash_rows(seed=0)
        digest = hashlib.sha256(rows.to_numpy().tobytes())
    split_keys = {k: v for k, v in asdict(cfg).items() if k in ("kcore", "min_interactions")}
    if cfg.exclude_seen:  # another ranking protocol: its numbers must never share a table with the default's
        split_keys["exclude_seen"] = True
    if cfg.max_users:  # another population: likewise its own tables
        split_keys["max_users"] = cfg.max_users
    digest.update(json.dumps(split_keys, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def make_split(inter: Interactions, cfg: DataConfig, name: str) -> SplitData:
    """Filter, index and order the interactions; see the module docstring for the contract."""
    frame = inter.frame
    k_user = max(cfg.kcore, cfg.min_interactions)
    frame = kcore(frame, k_user, max(cfg.kcore, 1))
    if frame.height == 0:
        raise GenrecError(
            f"no user is left after the {cfg.kcore}-core filter and the minimum of {cfg.min_interactions} "
            "interactions per user; lower data.kcore or use a larger file", path=inter.source)
    # First appearance in the file decides indices; ties in time keep file order.
    users = frame.select("user_id").unique(maintain_order=True).with_row_index("uidx")
    items = frame.select("item_id").unique(maintain_order=True).with_row_index("iidx")
    if cfg.max_users:  # the first users only; the items (indexed above) stay the whole catalogue
        users = users.head(cfg.max_users)
    ordered = (
        frame.join(users, on="user_id").join(items, on="item_id")
        .sort(["uidx", "timestamp", "row"])
        .select("uidx", "iidx")
    )
    uidx = ordered["uidx"].to_numpy()
    counts = np.bincount(uidx, minlength=users.height)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return SplitData(
        name=name,
        user_ids=users["user_id"].to_numpy(),
        item_ids=items["item_id"].to_numpy(),
        items=ordered["iidx"].to_numpy().astype(np.int64),
        offsets=offsets,
        config=cfg,
        fingerprint=fingerprint(inter, cfg),
        meta=inter.meta,
    )
