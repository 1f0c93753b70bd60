"""LIGER backend: combined loss, the three rankings against hand computations, contract and save/load."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from conftest import random_unique_codes, walk_split
from genrec_bench.config import TrainConfig
from genrec_bench.decode_options import apply_decoding
from genrec_bench.decoding.beam_search import constrained_beam_search
from genrec_bench.errors import GenrecError
from genrec_bench.models.liger import RANKINGS, ItemTower, Liger, LigerConfig, LigerNet, dense_topk
from genrec_bench.models.registry import create_backend
from genrec_bench.models.tiger import Tiger
from genrec_bench.nn.seq2seq import FastDecoder, Seq2SeqNet
from genrec_bench.testing import check_backend

TARGET = "genrec_bench.models.liger:Liger"
TINY = dict(d_model=32, encoder_layers=1, decoder_layers=1, heads=2, d_kv=16, d_ff=64, sid_levels=2,
            sid_codebook=4, beam_width=6)
SIZES = (3, 3, 3)
N_ITEMS = 20
TOL = 1e-5  # two computations of one cosine (decoder paths, matmul vs by hand) agree to this


def features(n: int = N_ITEMS, dim: int = 6, seed: int = 0) -> torch.Tensor:
    """Random item vectors, deliberately not unit length: the tower must not assume they are."""
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)) * 3


COLD = (4, 9)  # items "unseen in training" in the hand-built models


def trained(n: int = N_ITEMS) -> torch.Tensor:
    flags = torch.ones(n, dtype=torch.bool)
    flags[list(COLD)] = False
    return flags


def histories() -> torch.Tensor:
    hist = torch.randint(0, N_ITEMS, (5, 4), generator=torch.Generator().manual_seed(1))
    hist[0, :2] = -1
    hist[1, :3] = -1
    return hist


def net(**keys: object) -> LigerNet:
    torch.manual_seed(0)
    return LigerNet(LigerConfig(**{**TINY, **keys}), random_unique_codes(N_ITEMS, SIZES), SIZES, features(),
                    trained()).eval()


def built(**keys: object) -> Liger:
    """An untrained Liger over random codes and features: decoding needs weights, not good ones."""
    torch.manual_seed(0)
    model = Liger(LigerConfig(**{**TINY, **keys}))
    model.features_, model.trained_ = features(), trained()
    model.build(random_unique_codes(N_ITEMS, SIZES), SIZES)
    model.max_history_ = 4
    model.module_.eval()
    return model


def with_ranking(model: Liger, ranking: str, **keys: object) -> Liger:
    apply_decoding(model, {"ranking": ranking, **keys})
    return model


@torch.no_grad()
def hand_dense(model: Liger, hist: torch.Tensor) -> torch.Tensor:
    """Cosine / temperature [B, N], written out: encoder state at the last history position against
    the tower embedding of every item."""
    net = model.module_
    enc, _ = net.encode(hist)
    query, items = enc[:, -1], net.tower(features())
    cos = (query @ items.T) / (query.norm(dim=1, keepdim=True) * items.norm(dim=1)[None, :])
    return cos / model.cfg.temperature


def assert_ranked_by(items: torch.Tensor, scores: torch.Tensor, reference: torch.Tensor) -> None:
    """Rows of `items` are in non-increasing `reference` order (up to TOL) and `scores` are those values."""
    ref = reference.gather(1, items)
    torch.testing.assert_close(scores, ref, atol=TOL * 20, rtol=0)  # logits are cosines / 0.07
    assert (ref[:, :-1] >= ref[:, 1:] - TOL * 20).all()


# (a) the network and the combined loss


def test_item_tower_by_hand():
    torch.manual_seed(0)
    tower = ItemTower(6, (5, 3), 4, dropout=0.2, eps=1e-6).eval()
    x = features()[:7]
    h = x
    for block, skip in zip(tower.blocks, tower.skips, strict=True):
        lin, norm = block[0], block[1]
        h = torch.relu(F.layer_norm(h @ lin.weight.T + lin.bias, (lin.out_features,), norm.weight, norm.bias, 1e-6)) \
            + h @ skip.weight.T
    torch.testing.assert_close(tower(x), h @ tower.out.weight.T + tower.out.bias, atol=TOL, rtol=0)
    tower.train()
    assert not torch.equal(tower(x), tower(x))  # dropout on in training


def test_zero_dense_weight_is_tigers_loss_on_the_tower_fed_encoder():
    """With dense_weight 0 the loss is exactly the semantic-ID cross-entropy of the same network."""
    liger = net(dense_weight=0.0, ranking="generative", select_on="ranking")
    hist, target = histories(), torch.tensor([3, 0, 7, 19, 11])
    assert torch.equal(liger(hist, target), liger.token_loss(hist, target)[0])


def test_tower_embeddings_reach_the_encoder_input():
    liger = net()
    hist = histories()
    base = Seq2SeqNet.encoder_inputs(liger, hist)["inputs_embeds"]
    proj = liger.tower(liger.item_features[hist.clamp(min=0)]) * (hist >= 0)[:, :, None]
    expected = liger.input_norm(base + proj) * (hist >= 0)[:, :, None]
    torch.testing.assert_close(liger.encoder_inputs(hist)["inputs_embeds"], expected, atol=TOL, rtol=0)
    tokens = net(history_encoding="tokens").encoder_inputs(hist)
    assert "input_ids" not in tokens and tokens["inputs_embeds"].shape[1] == hist.shape[1] * len(SIZES)


def test_dense_softmax_loss_by_hand_leaves_unseen_items_out():
    liger = net(dense_weight=0.5)
    hist, target = histories(), torch.tensor([3, 0, 7, 19, 3])
    enc, mask = liger.encode(hist)
    ce = liger.token_loss(hist, target, (enc, mask))[0].detach()
    query, items = enc[:, -1].detach(), liger.tower(features()).detach()
    logits = (query @ items.T) / (query.norm(dim=1, keepdim=True) * items.norm(dim=1)[None, :]) / 0.07
    keep = [i for i in range(N_ITEMS) if i not in COLD]
    dense = sum(float(torch.logsumexp(logits[b, keep], 0) - logits[b, t]) for b, t in enumerate(target.tolist()))
    torch.testing.assert_close(liger(hist, target), ce + 0.5 * dense / len(target), atol=TOL * 10, rtol=0)
    liger.train()
    liger(hist, target).backward()
    assert liger.tower.out.weight.grad.abs().sum() > 0


# (b) the rankings


def test_hybrid_orders_the_beam_and_the_cold_start_items_by_dense_score():
    model, hist = built(candidates=8), histories()
    dense = hand_dense(model, hist)
    beam = with_ranking(model, "generative").recommend(hist, 10)  # width max(8, k, beam_width 6) = 10
    with_ranking(model, "hybrid")
    everything = model.recommend(hist, 10)  # 10 beam items + 2 cold: the cut shows the dense order
    for row, items in enumerate(everything.items.tolist()):
        expected = set(beam.items[row].tolist()) | set(COLD)
        assert set(items) <= expected and len(set(items)) == 10  # candidates only, each once
        left_out = expected - set(items)
        assert all(hand_dense(model, hist)[row, i] <= everything.scores[row, -1] + TOL * 20 for i in left_out)
    assert_ranked_by(everything.items, everything.scores, dense)
    top3 = model.recommend(hist, 3)  # width max(8, 3, 6) = 8, as for k = 8
    assert torch.equal(top3.items, model.recommend(hist, 8).items[:, :3])
    beam8 = with_ranking(model, "generative").recommend(hist, 8)
    without = with_ranking(model, "hybrid", cold_start=False).recommend(hist, 8)
    assert torch.equal(without.items.sort(dim=1).values, beam8.items.sort(dim=1).values)
    assert_ranked_by(without.items, without.scores, dense)


def test_hybrid_with_a_beam_over_the_whole_catalogue_is_the_dense_ranking():
    model, hist = built(candidates=N_ITEMS), histories()
    hybrid = model.recommend(hist, 5)
    dense = with_ranking(model, "dense").recommend(hist, 5)
    assert torch.equal(hybrid.items, dense.items) and torch.equal(hybrid.scores, dense.scores)


def test_dense_ranks_the_whole_catalogue_by_cosine():
    model, hist = with_ranking(built(), "dense"), histories()
    full = model.recommend(hist, N_ITEMS)
    assert (full.items.sort(dim=1).values == torch.arange(N_ITEMS)).all()
    assert_ranked_by(full.items, full.scores, hand_dense(model, hist))
    top4 = model.recommend(hist, 4)
    assert torch.equal(top4.items, full.items[:, :4]) and torch.equal(top4.scores, full.scores[:, :4])
    padded = model.recommend(hist, N_ITEMS + 2)
    assert torch.equal(padded.items[:, :N_ITEMS], full.items)
    assert (padded.items[:, N_ITEMS:] == -1).all() and torch.isinf(padded.scores[:, N_ITEMS:]).all()


def test_dense_topk_marks_non_candidates():
    scores = torch.tensor([[0.5, float("-inf"), 0.5, 0.9], [float("-inf")] * 4])
    top = dense_topk(scores, 3)
    assert top.items.tolist() == [[3, 0, 2], [-1, -1, -1]]  # equal scores: lower item index first


@torch.no_grad()
def test_generative_is_tigers_list_on_the_same_network():
    model, hist = with_ranking(built(), "generative"), histories()
    for k in (3, 8):
        ours = model.recommend(hist, k)
        net_ = model.fitted()
        hist_ = model.history(hist, model.max_history_)
        enc, mask = net_.encode(hist_)
        decoder = FastDecoder(net_, enc, mask, net_.history_codes(hist_), model.trie_)
        theirs = constrained_beam_search(decoder.level_step, model.trie_, len(hist), beam=max(k, 6), k=k)
        assert torch.equal(ours.items, theirs.items) and torch.equal(ours.scores, theirs.scores)


# (c) contract, fit report, save/load


# The tiny TIGER table of tests/test_check_backend.py, with a beam narrower than `candidates`.
CHECK_TINY = {"d_model": 32, "encoder_layers": 1, "decoder_layers": 1, "heads": 2, "d_kv": 16, "d_ff": 64,
              "sid_codebook": 4, "sid_levels": 2, "history_encoding": "item_sum_id", "beam_width": 6, "candidates": 8}


def test_liger_honours_the_backend_contract_with_full_lists():
    report = check_backend(TARGET, **CHECK_TINY)
    assert report.backend == "liger"
    assert report.short_lists == {1: 0, 10: 0, report.items: 0}  # k up to the catalogue: no list short


def test_fit_report_and_save_load_give_identical_lists(tmp_path):
    torch.manual_seed(0)
    data = walk_split(tmp_path)
    model = Liger(LigerConfig(**TINY, candidates=8))
    report = model.fit(data, TrainConfig(epochs=1, batch_size=32, warmup_steps=0, patience=0, device="cpu",
                                         valid_users=0))
    assert {report.extra[k] for k in ("ranking", "candidates", "dense_weight")} == {"hybrid", 8, 1.0}
    assert report.extra["dense_dim"] == model.module_.item_features.shape[1]
    assert report.extra["dense_features"] == "collab"  # `auto` on a split without item metadata
    assert any(d.startswith("item tower input") for d in report.extra["departures_from_paper"])
    assert report.extra["cold_items"] == int((data.train_counts() == 0).sum())
    assert report.extra["select_on"] == "dense"
    assert model.features_ is None and model.trained_ is None  # the net's buffers hold them
    model.save(tmp_path / "run")
    loaded = Liger.load(tmp_path / "run")  # no data: the features come back from the state dict
    assert isinstance(loaded.cfg, LigerConfig) and loaded.cfg == model.cfg
    assert torch.equal(loaded.module_.item_features, model.module_.item_features)
    assert torch.equal(loaded.module_.trained_items, model.module_.trained_items)
    hist, _ = data.to_tensors("test")
    for ranking in RANKINGS:
        a, b = with_ranking(model, ranking).recommend(hist, 5), with_ranking(loaded, ranking).recommend(hist, 5)
        assert torch.equal(a.items, b.items) and torch.equal(a.scores, b.scores), ranking


def test_decode_keys_switch_the_ranking_only():
    assert Liger.decode_keys == (*Tiger.decode_keys, "ranking", "candidates", "cold_start")
    backend = create_backend(TARGET, {"ranking": "dense", "candidates": 4})
    assert isinstance(backend, Liger) and backend.cfg.ranking == "dense"
    with pytest.raises(GenrecError, match="candiates"):
        create_backend(TARGET, {"candiates": 4})
    model = built()
    apply_decoding(model, {"ranking": "generative", "candidates": 30})
    assert dataclasses.replace(model.cfg, ranking="hybrid", candidates=20) == built().cfg


@pytest.mark.parametrize("keys, message", [
    ({"dense_weight": -0.5}, "model.dense_weight"),
    ({"ranking": "sparse"}, "model.ranking"),
    ({"candidates": 0}, "model.candidates"),
    ({"dense_weight": 0.0}, "dense head is then untrained"),
    ({"dense_weight": 0.0, "ranking": "generative"}, "model.select_on"),
    ({"temperature": 0.0}, "model.temperature"),
    ({"tower": []}, "model.tower"),
    ({"input_dropout": 1.0}, "model.input_dropout"),
    ({"select_on": "valid"}, "model.select_on"),
    ({"beam_width": 0}, "model.beam_width"),  # TIGER's own checks still run
])
def test_config_validation(keys, message):
    with pytest.raises(GenrecError, match=message):
        LigerConfig(**keys)


def test_trains_and_evaluates_through_the_cli_in_every_ranking(seq_file, tmp_path, capsys, monkeypatch):
    import json
    from pathlib import Path

    from test_cli import run_cli

    run = tmp_path / "run"
    tiny = ["--set", "model.d_model=16", "--set", "model.encoder_layers=1", "--set", "model.decoder_layers=1",
            "--set", "model.heads=2", "--set", "model.d_kv=8", "--set", "model.d_ff=32",
            "--set", "model.sid_codebook=4", "--set", "model.sid_levels=2", "--set", "model.beam_width=4"]
    code, _, err = run_cli(["train", "-m", "liger", "--data", str(seq_file), "-o", str(run), "--set", "train.epochs=1",
                            *tiny], capsys, monkeypatch)
    assert code == 0, err
    for ranking in ("hybrid", "dense", "generative"):
        code, out, err = run_cli(["eval", "--run", str(run), "--json", "--k", "1,3", "--decode", f"ranking={ranking}",
                                  "--results", str(tmp_path / ranking)], capsys, monkeypatch)
        assert code == 0, err
        record = json.loads(Path(json.loads(out)["record"]).read_text())
        assert record["model"] == "liger" and record["short_lists"] == {"1": 0, "3": 0}
        assert record["config"]["model"]["ranking"] == ranking


def test_item_embeddings_are_cached_only_while_the_weights_stay():
    liger = net()
    with torch.no_grad():
        first = liger.item_vectors()
        assert liger.item_vectors() is first  # eval mode: one tower pass
        liger.train()
        liger.tower.out.bias.add_(1.0)  # a training step changes the weights
        liger.eval()
        assert not torch.equal(liger.item_vectors(), first)
