from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genrec_bench.metrics import mean_ci, paired_compare, per_user, summarise, target_ranks
from genrec_bench.ranking import topk_stable


def test_target_ranks_and_misses():
    ranked = torch.tensor([[5, 3, 9], [1, 2, 3], [-1, -1, -1]])
    assert target_ranks(ranked, torch.tensor([9, 7, 0])).tolist() == [3, 0, 0]


def test_hand_computed_metrics():
    ranks = np.array([1, 2, 0, 5])
    m = summarise(ranks, (1, 5))
    assert m["hit@1"] == pytest.approx(0.25)
    assert m["hit@5"] == pytest.approx(0.75)
    assert m["ndcg@1"] == pytest.approx(0.25)
    assert m["ndcg@5"] == pytest.approx((1 + 1 / math.log2(3) + 0 + 1 / math.log2(6)) / 4)
    assert m["mrr@5"] == pytest.approx((1 + 0.5 + 0 + 0.2) / 4)
    assert summarise(ranks, (1,))["mrr@1"] == pytest.approx(0.25)  # truncated at the largest cut-off
    pu = per_user(ranks, (1,))
    assert pu["hit@1"].tolist() == [1.0, 0.0, 0.0, 0.0]


def test_topk_breaks_ties_by_index():
    scores = torch.tensor([[0.5, 0.9, 0.5, 0.9, 0.1]])
    top = topk_stable(scores, 4)
    assert top.items.tolist() == [[1, 3, 0, 2]]


def test_paired_compare_detects_a_real_difference():
    rng = np.random.default_rng(0)
    b = rng.random(400)
    a = b + 0.05 + rng.normal(0, 0.01, 400)
    res = paired_compare(a, b, "x", seed=1)
    assert res.diff == pytest.approx(0.05, abs=0.005)
    assert res.ci_low < res.diff < res.ci_high and res.ci_low > 0
    assert res.p_value < 1e-6


def test_paired_compare_no_difference():
    rng = np.random.default_rng(0)
    a = rng.random(300)
    res = paired_compare(a, a.copy(), "x")
    assert res.diff == 0 and res.p_value == 1.0
    b = a + rng.normal(0, 0.1, 300)
    res = paired_compare(a, b, "x")
    assert res.ci_low < 0 < res.ci_high or res.p_value > 0.01


def test_paired_compare_length_mismatch():
    with pytest.raises(ValueError, match="differ in length"):
        paired_compare(np.zeros(3), np.zeros(4), "x")


def test_mean_ci_brackets_mean():
    values = np.array([0.0, 1.0] * 50)
    mean, low, high = mean_ci(values)
    assert mean == 0.5 and low < 0.5 < high
