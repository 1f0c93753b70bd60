"""Top-k from dense scores with the contract's tie-break: equal scores rank the lower item index first."""

from __future__ import annotations

import torch

from genrec_bench.api import Ranked


def topk_stable(scores_bn: torch.Tensor, k: int) -> Ranked:
    """Exact top-k of scores [B, N]; `torch.topk` does not order ties, a stable sort does."""
    k = min(k, scores_bn.shape[1])
    values, index = torch.sort(scores_bn.float(), dim=1, descending=True, stable=True)
    return Ranked(items=index[:, :k].contiguous(), scores=values[:, :k].contiguous())
