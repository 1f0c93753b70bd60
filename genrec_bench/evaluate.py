"""Full-ranking evaluation of any backend on a split: ranks of targets per user.

Users are processed in batches (sharded across ranks under torchrun, then gathered), so memory is
bounded and every backend is measured by exactly the same code.
"""

from __future__ import annotations

import numpy as np
import torch

from genrec_bench.api import Backend
from genrec_bench.config import TrainConfig
from genrec_bench.data.split import PAD, Split, SplitData
from genrec_bench.errors import GenrecError
from genrec_bench.metrics import per_user, target_ranks
from genrec_bench.progress import progress_bar
from genrec_bench.runtime import is_main_process, rank_and_world


def eval_users(data: SplitData, max_users: int = 0) -> np.ndarray:
    """The first `max_users` users in file order (MindRec's protocol), or all of them."""
    n = data.n_users if max_users <= 0 else min(max_users, data.n_users)
    return np.arange(n, dtype=np.int64)


def drop_seen(ranked: torch.Tensor, histories: torch.Tensor, k: int) -> torch.Tensor:
    """Remove history items from ranked lists [B, K] and keep the first k, padding with -1."""
    seen = (ranked[:, :, None] == histories[:, None, :]).any(dim=2) | (ranked < 0)
    order = torch.sort(seen.int(), dim=1, stable=True).indices
    kept = torch.gather(ranked, 1, order)
    kept = torch.where(torch.gather(seen, 1, order), torch.full_like(kept, PAD), kept)
    return kept[:, :k]


def short_list_counts(lengths: np.ndarray, ks: tuple[int, ...]) -> dict[str, int]:
    """{"k": number of users whose list holds fewer than k valid items} for every cut-off k."""
    return {str(k): int((lengths < k).sum()) for k in ks}


def short_list_warning(counts: dict[str, int], n_users: int) -> str:
    """One line naming every cut-off at which some users got fewer items than k ("" when none did)."""
    short = ", ".join(f"{n} at k={k}" for k, n in counts.items() if n)
    return (f"warning: {short} of {n_users} users got lists shorter than k (empty slots count as misses)"
            if short else "")


def rank_targets(backend: Backend, data: SplitData, split: Split, k: int, *, users: np.ndarray | None = None,
                 batch_size: int = 256, exclude_seen: bool | None = None, max_history: int | None = None,
                 show_progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(users, ranks): 1-based rank of each user's target in the backend's top-k, 0 = miss."""
    users, ranks, _ = rank_lists(backend, data, split, k, users=users, batch_size=batch_size,
                                 exclude_seen=exclude_seen, max_history=max_history, show_progress=show_progress)
    return users, ranks


@torch.inference_mode()
def rank_lists(backend: Backend, data: SplitData, split: Split, k: int, *, users: np.ndarray | None = None,
               batch_size: int = 256, exclude_seen: bool | None = None, max_history: int | None = None,
               show_progress: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users, ranks, lengths): `rank_targets` plus how many valid items (>= 0) each user's top-k held,
    after seen items were dropped, so lists shorter than a cut-off are counted instead of silently
    scored as misses."""
    if k > data.n_items:
        raise GenrecError(f"k={k} is larger than the catalogue ({data.n_items} items)")
    users = eval_users(data) if users is None else users
    exclude = data.config.exclude_seen if exclude_seen is None else exclude_seen
    rank, world = rank_and_world()
    mine = users[rank::world]
    ranks = np.zeros(len(mine), dtype=np.int64)
    lengths = np.zeros(len(mine), dtype=np.int64)
    ask = min(data.n_items, k + (max_history or data.config.max_history)) if exclude else k
    n_batches = (len(mine) + batch_size - 1) // batch_size
    with progress_bar(n_batches, f"eval {split}", disable=not (show_progress and is_main_process())) as bar:
        for start in range(0, len(mine), batch_size):
            hist, tgt = data.to_tensors(split, max_history, mine[start : start + batch_size])
            ranked = backend.recommend(hist, ask).items.cpu()
            if exclude:
                ranked = drop_seen(ranked, hist, k)
            ranks[start : start + len(tgt)] = target_ranks(ranked[:, :k], tgt).numpy()
            lengths[start : start + len(tgt)] = (ranked[:, :k] >= 0).sum(dim=1).numpy()
            bar.advance(1)
    if world > 1:
        ranks, lengths = _gather(users, mine, np.stack([ranks, lengths], axis=1)).T
    return users, ranks, lengths


def _gather(users: np.ndarray, mine: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Every rank gets the full per-user rows of `values` [n, c] in the order of `users`."""
    _, world = rank_and_world()
    parts: list[object] = [None] * world
    torch.distributed.all_gather_object(parts, (mine, values))
    lookup = {}
    for part_users, part_values in parts:  # type: ignore[misc]
        lookup.update(zip(part_users.tolist(), part_values.tolist(), strict=True))
    return np.array([lookup[u] for u in users.tolist()], dtype=np.int64)


def validation_users(data: SplitData, cfg: TrainConfig) -> np.ndarray:
    """The users whose validation targets steer training: all (`valid_users = 0`), the first
    `valid_users` in file order, or a sorted sample of them drawn with a fixed seed, so every model
    and training seed is validated on the same users (see `TrainConfig.valid_sample`)."""
    n = cfg.valid_users
    if cfg.valid_sample == "first" or n <= 0 or n >= data.n_users:
        return eval_users(data, n)
    return np.sort(np.random.default_rng(0).choice(data.n_users, n, replace=False)).astype(np.int64)


def validation_ndcg(backend: Backend, data: SplitData, cfg: TrainConfig, k: int = 10) -> float:
    """Mean NDCG@k on the validation targets of `validation_users` (the early-stopping signal)."""
    _, ranks = rank_targets(backend, data, "valid", k, users=validation_users(data, cfg), show_progress=False)
    return float(per_user(ranks, (k,))[f"ndcg@{k}"].mean())
