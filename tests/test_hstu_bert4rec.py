"""HSTU's pointwise attention against a hand-computed case; BERT4Rec's cloze masking and inputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_cli import run_cli

from genrec_bench.baselines.bert4rec.model import BERT4Rec, BERT4RecConfig, BERT4RecModule, ClozeWindows, cloze_mask
from genrec_bench.baselines.hstu.model import HSTUBlock, pointwise_attention, relative_distance
from genrec_bench.models.registry import REGISTRY


def silu(x: float) -> float:
    return x / (1 + math.exp(-x))


def test_pointwise_attention_matches_a_hand_computed_case() -> None:
    q = torch.tensor([[[[1.0], [2.0]]]])  # [B=1, H=1, W=2, d=1]
    k = torch.tensor([[[[1.0], [-1.0]]]])
    v = torch.tensor([[[[3.0], [5.0]]]])
    bias = torch.tensor([[[0.0, 0.0], [0.5, 0.0]]])  # key 0 seen from query 1 (distance 1) gets +0.5
    causal = torch.tensor([[[True, False], [True, True]]])
    out = pointwise_attention(q, k, v, bias, causal, n=2)
    want0 = silu(1.0) / 2 * 3  # query 0 sees key 0 only
    want1 = (silu(2.0 + 0.5) * 3 + silu(-2.0) * 5) / 2  # no softmax: SiLU weights, a negative one included
    torch.testing.assert_close(out.flatten(), torch.tensor([want0, want1]))


def test_relative_distance_and_the_bias_it_indexes() -> None:
    assert relative_distance(3).tolist() == [[0, 0, 0], [1, 0, 0], [2, 1, 0]]
    torch.manual_seed(0)
    block = HSTUBlock(hidden=8, heads=2, dropout=0.0, max_len=4).eval()
    x = torch.randn(1, 3, 8)
    causal = torch.ones(3, 3, dtype=torch.bool).tril()[None]
    base = block(x, causal)
    with torch.no_grad():
        block.rab[:, 2] += 3.0  # distance 2 exists only between positions 0 and 2
    moved = block(x, causal)
    torch.testing.assert_close(moved[:, :2], base[:, :2])  # causal: earlier outputs never see distance 2
    assert not torch.allclose(moved[:, 2], base[:, 2])


def test_cloze_mask_hides_only_real_items_and_at_least_one_per_row() -> None:
    pad = 9
    items = torch.tensor([[pad, pad, 1, 2, 3, 4], [pad, pad, pad, pad, pad, 5], [0, 1, 2, 3, 4, 5]])
    gen = torch.Generator().manual_seed(0)
    rates = []
    for _ in range(200):
        hide = cloze_mask(items, pad, 0.3, gen)
        assert not (hide & (items == pad)).any()
        assert hide.any(dim=1).all()
        rates.append(hide[2].float().mean())
    assert 0.2 < float(torch.stack(rates).mean()) < 0.4
    assert cloze_mask(items, pad, 1e-9, gen)[:, -1].all()  # nothing drawn: the last item is hidden


def test_cloze_loss_is_cross_entropy_on_the_hidden_items_only() -> None:
    torch.manual_seed(0)
    cfg = BERT4RecConfig(hidden=8, layers=1, heads=1, dropout=0.0, max_history=5, mask_prob=0.5)
    module = BERT4RecModule(n_items=7, max_len=5, cfg=cfg).eval()
    batch = torch.tensor([[7, 1, 2, 3, 4], [0, 6, 5, 4, 3]])
    loss = ClozeWindows(module, batch, 0.5, seed=3).loss(module, batch)
    hide = cloze_mask(batch, 7, 0.5, torch.Generator().manual_seed(3))  # the same draw
    inputs = batch.masked_fill(hide, module.mask_id)
    rows = hide.nonzero(as_tuple=True)
    logits = module.logits(module(inputs)[rows], inputs.masked_fill(hide, 7)[rows[0]])
    torch.testing.assert_close(loss, F.cross_entropy(logits, batch[rows]))


def test_bert4rec_predicts_at_a_mask_after_the_most_recent_items() -> None:
    model = BERT4Rec(BERT4RecConfig(hidden=8, layers=1, max_history=4))
    model.module_ = BERT4RecModule(n_items=10, max_len=4, cfg=model.cfg)
    hist = torch.tensor([[-1, -1, 2, 3, 4, 5], [-1, -1, -1, -1, -1, 7]])
    assert model.inputs(hist).tolist() == [[3, 4, 5, 11], [10, 10, 7, 11]]  # pad 10, [MASK] 11


def test_train_help_names_every_built_in(capsys, monkeypatch) -> None:
    _, out, _ = run_cli(["train", "--help"], capsys, monkeypatch)
    flat = " ".join(out.replace("│", " ").split())
    assert all(name in flat for name in REGISTRY), flat


@pytest.mark.parametrize("model", ["hstu", "bert4rec"])
def test_trains_and_evaluates_through_the_cli(model: str, seq_file, tmp_path: Path, capsys, monkeypatch) -> None:
    run = tmp_path / "run"
    code, _, err = run_cli(["train", "-m", model, "--data", str(seq_file), "-o", str(run), "--set", "train.epochs=1",
                            "--set", "model.hidden=8", "--set", "model.layers=1"], capsys, monkeypatch)
    assert code == 0, err
    code, out, err = run_cli(["eval", "--run", str(run), "--json", "--k", "1,3", "--results", str(tmp_path / "r")],
                             capsys, monkeypatch)
    assert code == 0, err
    record = json.loads(Path(json.loads(out)["record"]).read_text())
    assert record["model"] == model and record["short_lists"] == {"1": 0, "3": 0}
