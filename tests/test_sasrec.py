"""SASRec: windows, masking, a learnable pattern, save/load and config errors, all on tiny data."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from genrec_bench.baselines.sasrec import SASRec, SASRecConfig
from genrec_bench.config import DataConfig, TrainConfig
from genrec_bench.data.loaders import Interactions, ItemMeta
from genrec_bench.data.split import PAD, SplitData, make_split
from genrec_bench.errors import GenrecError
from genrec_bench.evaluate import rank_targets
from genrec_bench.metrics import summarise
from genrec_bench.models.registry import create_backend
from genrec_bench.nn.sequence import SequenceModule, prefix_items, training_windows, trim_left
from genrec_bench.runtime import seed_everything

N_ITEMS = 20
TINY = SASRecConfig(hidden=32, layers=1, heads=2, dropout=0.1, max_history=8)


def successor_split(n_users: int = 240, seed: int = 0) -> SplitData:
    """Every user walks the ring of items: item i is always followed by item (i + 1) mod N_ITEMS."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(n_users):
        start, length = rng.integers(N_ITEMS), rng.integers(5, 12)
        users += [f"u{u}"] * length
        items += [f"i{(start + t) % N_ITEMS}" for t in range(length)]
    frame = pl.DataFrame({"user_id": users, "item_id": items,
                          "timestamp": np.arange(len(users), dtype=np.float64),
                          "row": np.arange(len(users), dtype=np.uint32)})
    return make_split(Interactions(frame=frame, meta=ItemMeta(), source=__file__), DataConfig(max_history=8), "ring")


@pytest.fixture(scope="module")
def fitted() -> tuple[SASRec, SplitData, object]:
    torch.set_num_threads(1)
    seed_everything(0)
    data = successor_split()
    model = SASRec(TINY)
    report = model.fit(data, TrainConfig(epochs=12, batch_size=32, lr=5e-3, warmup_steps=10, patience=0,
                                         eval_every=4, valid_users=100, device="cpu"))
    return model, data, report


def test_learns_the_successor_pattern(fitted) -> None:
    model, data, report = fitted
    _, ranks = rank_targets(model, data, "test", 10, show_progress=False)
    metrics = summarise(ranks, (1, 10))
    assert metrics["hit@1"] > 0.9, metrics  # chance is 1/20; popularity cannot exceed ~0.1 on a ring
    assert report.best_valid is not None and report.best_valid > 0.9
    assert report.extra["max_len"] == 8 and report.extra["loss"] == "full_softmax_ce"
    assert report.extra["repeat_bias"] < 0  # no user ever repeats an item on the ring


def alternating_split() -> SplitData:
    """Every user alternates two items, so every target after the second is already in the input."""
    users = [f"u{u}" for u in range(60) for _ in range(8)]
    items = [f"i{(u * 2 + t % 2) % N_ITEMS}" for u in range(60) for t in range(8)]
    frame = pl.DataFrame({"user_id": users, "item_id": items, "timestamp": np.arange(len(users), dtype=np.float64),
                          "row": np.arange(len(users), dtype=np.uint32)})
    return make_split(Interactions(frame=frame, meta=ItemMeta(), source=__file__),
                      DataConfig(max_history=8, kcore=0), "alternating")


def test_repeat_bias_learns_to_favour_repeats_when_users_repeat() -> None:
    torch.set_num_threads(1)
    seed_everything(0)
    data = alternating_split()
    report = SASRec(TINY).fit(data, TrainConfig(epochs=3, batch_size=16, lr=5e-3, warmup_steps=2, patience=0,
                                                eval_every=3, valid_users=10, device="cpu"))
    assert report.extra["repeat_bias"] > 0


def test_prefix_items_hides_the_future() -> None:
    items = torch.tensor([[9, 9, 3, 4, 5]])  # 9 = pad
    assert prefix_items(items, 9)[0].tolist() == [[9, 9, 9, 9, 9], [9, 9, 9, 9, 9], [9, 9, 3, 9, 9],
                                                 [9, 9, 3, 4, 9], [9, 9, 3, 4, 5]]


def test_repeat_bias_shifts_exactly_the_seen_items() -> None:
    torch.manual_seed(0)
    module = SequenceModule(6, 4, SASRecConfig(hidden=8, heads=1, max_history=4))
    with torch.no_grad():
        module.repeat.fill_(-0.3)
    hidden, seen = torch.randn(2, 8), torch.tensor([[1, 4, 6, 6], [6, 6, 6, 0]])  # 6 = pad
    base = module.logits(hidden, seen) - module.logits(hidden, torch.full_like(seen, 6))
    expected = torch.zeros(2, 6)
    expected[0, [1, 4]] = expected[1, 0] = -3.0
    torch.testing.assert_close(base, expected)


def test_training_windows_cover_every_target_once() -> None:
    # users: 1 item (no pair), 2 items, 5 items, 7 items; max_len 3
    flat = np.array([100, 200, 201, 300, 301, 302, 303, 304, 400, 401, 402, 403, 404, 405, 406])
    offsets = np.array([0, 1, 3, 8, 15])
    got = training_windows(flat, offsets, 3)
    p = PAD
    expected = np.array([[p, p, 200, 201],
                         [301, 302, 303, 304], [p, p, 300, 301],
                         [403, 404, 405, 406], [400, 401, 402, 403]])
    np.testing.assert_array_equal(got, expected)
    targets = got[:, 1:][got[:, :-1] != PAD]
    assert sorted(targets.tolist()) == sorted([201, 301, 302, 303, 304, 401, 402, 403, 404, 405, 406])


def test_trim_left_drops_only_shared_padding() -> None:
    batch = torch.tensor([[9, 9, 9, 1, 2], [9, 9, 3, 4, 5]])
    assert trim_left(batch, 9).tolist() == [[9, 1, 2], [3, 4, 5]]
    assert trim_left(torch.full((2, 4), 9), 9).shape == (2, 1)


def test_attention_is_causal_and_ignores_padding() -> None:
    torch.manual_seed(0)
    module = SequenceModule(n_items=10, max_len=6, cfg=TINY).eval()
    pad = module.n_items
    a = torch.tensor([[pad, pad, 1, 2, 3, 4]])
    b = torch.tensor([[pad, pad, 1, 2, 7, 8]])  # same prefix, different future
    with torch.no_grad():
        ha, hb = module(a), module(b)
    torch.testing.assert_close(ha[:, 2:4], hb[:, 2:4])
    assert not torch.allclose(ha[:, -1], hb[:, -1])
    with torch.no_grad():
        short = module(torch.tensor([[1, 2, 3, 4]]))  # same items, no padding columns
    torch.testing.assert_close(short[:, -1], ha[:, -1])
    assert torch.isfinite(ha).all()


def test_recommend_shapes_padding_and_ties(fitted) -> None:
    model, data, _ = fitted
    hist = torch.tensor([[PAD] * 6 + [3, 4], [PAD] * 7 + [5]])
    ranked = model.recommend(hist, 5)
    assert ranked.items.shape == (2, 5) and ranked.items.dtype == torch.int64
    assert ranked.scores.shape == (2, 5)
    assert (ranked.scores[:, :-1] >= ranked.scores[:, 1:]).all()
    # Histories wider than max_len keep only the last max_len items; narrower ones are the same model input.
    wide = torch.cat([torch.full((2, 10), PAD), hist], dim=1)
    assert torch.equal(model.recommend(wide, 5).items, ranked.items)
    assert torch.equal(model.recommend(hist[:, -2:], 5).items, ranked.items)
    # An all-padding history still yields a full, finite list.
    empty = model.recommend(torch.full((1, 8), PAD), data.n_items)
    assert torch.isfinite(empty.scores).all() and sorted(empty.items[0].tolist()) == list(range(data.n_items))


def test_save_load_round_trip(fitted, tmp_path) -> None:
    model, data, _ = fitted
    model.save(tmp_path / "m")
    loaded = SASRec.load(tmp_path / "m")
    hist, _ = data.to_tensors("test")
    before, after = model.recommend(hist, 10), loaded.recommend(hist, 10)
    assert torch.equal(before.items, after.items)
    torch.testing.assert_close(before.scores, after.scores)
    assert loaded.cfg == model.cfg


@pytest.mark.parametrize(("values", "key"), [
    ({"hidden": 0}, "model.hidden"),
    ({"heads": 3}, "model.heads"),
    ({"dropout": 1.0}, "model.dropout"),
    ({"max_history": -1}, "model.max_history"),
    ({"layers": True}, "model.layers"),
    ({"repeat_bias": 1}, "model.repeat_bias"),
])
def test_config_errors_name_the_key(values, key) -> None:
    with pytest.raises(GenrecError, match=key.replace(".", r"\.")):
        SASRecConfig(**values)


def test_registry_builds_sasrec_and_rejects_typos() -> None:
    assert isinstance(create_backend("sasrec", {"hidden": 16, "heads": 2}), SASRec)
    with pytest.raises(GenrecError, match="hidden"):
        create_backend("sasrec", {"hiden": 16})


def test_recommend_before_fit_is_an_error() -> None:
    with pytest.raises(GenrecError, match="not fitted"):
        SASRec().recommend(torch.zeros((1, 3), dtype=torch.int64), 5)
