"""repeat_codes / repeat_tokens: which next tokens keep a beam on the path of a history item."""

from __future__ import annotations

import torch

from genrec_bench.decoding.repeats import repeat_codes, repeat_tokens


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


def test_any_order_marks_follow_the_committed_tokens_wherever_they_are():
    hist = torch.tensor([[[0, 1, 2], [0, 3, 1], [-1, -1, -1]]])  # two history items, one pad
    state = torch.tensor([[[-1, -1, -1], [-1, -1, 1], [-1, 3, -1], [2, -1, -1]]])
    marks = repeat_tokens(hist, state, 4)
    on = [[tuple(x) for x in torch.nonzero(m).tolist()] for m in marks[0]]
    assert on[0] == [(0, 0), (1, 1), (1, 3), (2, 1), (2, 2)]  # nothing committed: both items' tokens
    assert on[1] == [(0, 0), (1, 3)]  # last token 1: only the second item is still reachable
    assert on[2] == [(0, 0), (2, 1)]  # middle token 3: the second item, committed position unmarked
    assert on[3] == []  # first token 2 matches no history item


def test_any_order_marks_at_a_prefix_state_equal_the_prefix_marks():
    gen = torch.Generator().manual_seed(0)
    hist = torch.randint(0, 3, (2, 5, 3), generator=gen)
    prefix = torch.randint(0, 3, (2, 4, 1), generator=gen)
    state = torch.cat([prefix, torch.full((2, 4, 2), -1)], dim=2)
    assert torch.equal(repeat_tokens(hist, state, 3)[:, :, 1], repeat_codes(hist, prefix, 3))
