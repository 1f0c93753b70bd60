"""Which next codes would lead back to an item the user already has: the input of a repeat offset.

A generative recommender emits an item code by code, so "this item is in the history" is only
known at the last level; but whether a beam is still heading towards a history item is known at
every level. `repeat_codes` marks, for each beam and the level being chosen, the codes that keep
the beam's prefix equal to the prefix of some history item. A backend adds one learned offset per
level to those codes' logits (in training on the teacher-forced target prefix, in decoding on
each beam's prefix), so the model learns from the training targets how much to favour or avoid
staying on a history item's path (RepeatNet's repeat-or-explore choice, one level at a time).
"""

from __future__ import annotations

import torch

# Offsets are stored divided by this, so Adam moves them ~REPEAT_SCALE * lr a step: they must travel
# several logits within one short CPU training run.
REPEAT_SCALE = 10.0


def repeat_codes(hist_codes_bhl: torch.Tensor, prefix_bwt: torch.Tensor, width: int) -> torch.Tensor:
    """Bool [B, W, width]: level-t codes that extend each beam's prefix [B, W, t] to a history prefix.

    `hist_codes_bhl` holds the level-local codes of each user's history items, -1 for padding.
    """
    b, w, t = prefix_bwt.shape
    real_bh = hist_codes_bhl[:, :, 0] >= 0
    match_bwh = (hist_codes_bhl[:, None, :, :t] == prefix_bwt[:, :, None, :]).all(dim=3) & real_bh[:, None, :]
    next_bwh = hist_codes_bhl[:, None, :, t].expand(b, w, -1)
    next_bwh = torch.where(match_bwh, next_bwh, width)  # `width` is a spill column, dropped below
    marks = torch.zeros(b, w, width + 1, dtype=torch.bool, device=prefix_bwt.device)
    return marks.scatter_(2, next_bwh, True)[:, :, :width]
