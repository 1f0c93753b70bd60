"""The training schedule and the shared sequence block's shape options."""

from __future__ import annotations

import math

import pytest
from torch import nn

from genrec_bench.config import TrainConfig
from genrec_bench.errors import GenrecError
from genrec_bench.nn.sequence import Block, SequenceConfig, SequenceModule
from genrec_bench.training import lr_lambda


def test_cosine_warms_up_linearly_then_decays_to_zero() -> None:
    f = lr_lambda(warmup=10, total=110, schedule="cosine")
    assert [f(s) for s in (0, 4, 9)] == [0.1, 0.5, 1.0]
    assert f(10) == 1.0 and math.isclose(f(60), 0.5) and math.isclose(f(110), 0.0, abs_tol=1e-12)
    assert all(f(s) >= f(s + 1) for s in range(10, 110))
    assert lr_lambda(10, 110)(110) == 0.05  # linear keeps its floor
    with pytest.raises(GenrecError, match="train.schedule"):
        TrainConfig(schedule="step")


def test_block_takes_its_inner_width_activation_and_dropouts_from_the_config() -> None:
    cfg = SequenceConfig(hidden=8, heads=2, ffn=24, activation="gelu", dropout=0.0, attention_dropout=0.5,
                         embedding_dropout=0.3)
    block = Block(cfg)
    assert block.ffn[0].out_features == 24 and isinstance(block.ffn[1], nn.GELU)
    assert block.attn.dropout == 0.5 and block.drop.p == 0.0
    assert SequenceModule(5, 4, cfg).drop.p == 0.3
    plain = SequenceConfig(hidden=8, dropout=0.2)
    assert Block(plain).ffn[0].out_features == 8 and isinstance(Block(plain).ffn[1], nn.ReLU)
    assert (plain.dropout_of("attention"), plain.dropout_of("embedding")) == (0.2, 0.2)
    for bad in ({"ffn": -1}, {"activation": "tanh"}, {"attention_dropout": 1.0}):
        with pytest.raises(GenrecError):
            SequenceConfig(**bad)  # type: ignore[arg-type]
