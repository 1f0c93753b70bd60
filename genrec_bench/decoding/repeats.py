"""Which next codes would lead back to an item the user already has: the input of a repeat offset.

A generative recommender emits an item code by code, so "this item is in the history" is only
known at the last level; but whether a beam is still heading towards a history item is known at
every level. `repeat_codes` marks, for each beam and the level being chosen, the codes that keep
the beam's prefix equal to the prefix of some history item. A backend adds one learned offset per
level to those codes' logits (in training on the teacher-forced target prefix, in decoding on
each beam's prefix), so the model learns from the training targets how much to favour or avoid
staying on a history item's path (RepeatNet's repeat-or-explore choice, one level at a time).
`repeat_tokens` is the same question for any-order (masked-diffusion) decoding, where the
committed tokens of a partial path need not be a prefix.
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


def repeat_tokens(hist_paths_bhp: torch.Tensor, state_bwp: torch.Tensor, vmax: int) -> torch.Tensor:
    """Bool [B, W, P, vmax]: tokens at each masked position that keep a partial path on a history item.

    `state_bwp` holds each beam's committed tokens (-1 = masked); a history item is still reachable
    when it agrees with every committed token, and then its token at each masked position is marked.
    `hist_paths_bhp` holds the history items' position-local paths, -1 for padding.
    """
    b, w, p = state_bwp.shape
    real_bh = hist_paths_bhp[:, :, 0] >= 0
    committed = state_bwp[:, :, None, :]
    agree_bwh = ((hist_paths_bhp[:, None] == committed) | (committed < 0)).all(dim=3) & real_bh[:, None, :]
    open_bwhp = agree_bwh[..., None] & (committed < 0)
    tok_bwph = torch.where(open_bwhp, hist_paths_bhp[:, None].expand(b, w, -1, -1), vmax).transpose(2, 3)
    marks = torch.zeros(b, w, p, vmax + 1, dtype=torch.bool, device=state_bwp.device)
    return marks.scatter_(3, tok_bwph, True)[..., :vmax]
