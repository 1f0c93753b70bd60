"""repeat_codes: which next codes keep a beam on the path of a history item."""

from __future__ import annotations

import torch

from genrec_bench.decoding.repeats import repeat_codes


def test_first_level_marks_every_history_items_first_code_and_ignores_padding():
    hist = torch.tensor([[[-1, -1], [0, 1], [2, 3]], [[1, 0], [1, 2], [-1, -1]]])
    marks = repeat_codes(hist, torch.zeros(2, 1, 0, dtype=torch.long), 4)
    assert marks.tolist() == [[[True, False, True, False]], [[False, True, False, False]]]


def test_later_levels_follow_each_beams_own_prefix():
    hist = torch.tensor([[[0, 1], [0, 3], [2, 3]]])
    marks = repeat_codes(hist, torch.tensor([[[0], [2], [1]]]), 4)
    assert marks.tolist() == [[[False, True, False, True], [False, False, False, True], [False] * 4]]


def test_a_user_without_history_marks_nothing():
    marks = repeat_codes(torch.full((1, 3, 2), -1), torch.tensor([[[0], [1]]]), 3)
    assert not marks.any()
