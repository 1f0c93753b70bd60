"""LIGER backend: combined loss, the three rankings against hand computations, contract and save/load."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from conftest import random_unique_codes, walk_split
from genrec_bench.config import TrainConfig
from genrec_bench.decode_options import apply_decoding
from genrec_bench.decoding.trie import build_trie
from genrec_bench.errors import GenrecError
from genrec_bench.models.liger import RANKINGS, Liger, LigerConfig, LigerNet, rerank
from genrec_bench.models.registry import create_backend
from genrec_bench.models.tiger import Tiger, TigerConfig
from genrec_bench.nn.seq2seq import FastDecoder, Seq2SeqNet
from genrec_bench.testing import check_backend

TARGET = "genrec_bench.models.liger:Liger"
TINY = dict(d_model=32, encoder_layers=1, decoder_layers=1, heads=2, d_kv=16, d_ff=64, sid_levels=2,
            sid_codebook=4, beam_width=6)
SIZES = (3, 3, 3)
N_ITEMS = 20
TOL = 1e-5  # two computations of one cosine (decoder paths, matmul vs by hand) agree to this


def features(n: int = N_ITEMS, dim: int = 6, seed: int = 0) -> torch.Tensor:
    """Random item vectors, deliberately not unit length: the model must compare directions."""
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)) * 3


def histories() -> torch.Tensor:
    hist = torch.randint(0, N_ITEMS, (5, 4), generator=torch.Generator().manual_seed(1))
    hist[0, :2] = -1
    hist[1, :3] = -1
    return hist


def built(**keys: object) -> Liger:
    """An untrained Liger over random codes and features: decoding needs weights, not good ones."""
    torch.manual_seed(0)
    model = Liger(LigerConfig(**{**TINY, **keys}))
    model.features_ = features()
    model.build(random_unique_codes(N_ITEMS, SIZES), SIZES)
    model.max_history_ = 4
    model.module_.eval()
    return model


def with_ranking(model: Liger, ranking: str, **keys: object) -> Liger:
    apply_decoding(model, {"ranking": ranking, **keys})
    return model


@torch.no_grad()
def hand_dense(model: Liger, hist: torch.Tensor) -> torch.Tensor:
    """Cosine [B, N] written out: T5 decoder state at the start token, bias-free projection, raw features."""
    net = model.module_
    enc, mask = net.encode(hist)
    start = torch.zeros(len(hist), 1, dtype=torch.long)
    state = net.t5.decoder(input_ids=start, encoder_hidden_states=enc, encoder_attention_mask=mask).last_hidden_state
    query = state[:, 0] @ net.dense.weight.T  # the T5's output scaling cancels in a cosine
    feats = features()
    return (query @ feats.T) / (query.norm(dim=1, keepdim=True) * feats.norm(dim=1)[None, :])


def assert_ranked_by(items: torch.Tensor, scores: torch.Tensor, reference: torch.Tensor) -> None:
    """Rows of `items` are in non-increasing `reference` order (up to TOL) and `scores` are those values."""
    ref = reference.gather(1, items)
    torch.testing.assert_close(scores, ref, atol=TOL, rtol=0)
    assert (ref[:, :-1] >= ref[:, 1:] - TOL).all()


# (a) the combined loss


def test_zero_dense_weight_is_tigers_loss():
    torch.manual_seed(0)
    codes = random_unique_codes(N_ITEMS, SIZES)
    tiger = Seq2SeqNet(TigerConfig(**TINY), codes, SIZES).eval()
    liger = LigerNet(LigerConfig(**TINY, dense_weight=0.0, ranking="generative"), codes, SIZES, features()).eval()
    missing = liger.load_state_dict(tiger.state_dict(), strict=False).missing_keys
    assert sorted(missing) == ["dense.weight", "item_features"]  # same T5: only the dense head differs
    hist, target = histories(), torch.tensor([3, 0, 7, 19, 11])
    assert torch.equal(liger(hist, target), tiger(hist, target))


def test_cosine_term_by_hand():
    torch.manual_seed(0)
    codes = random_unique_codes(N_ITEMS, SIZES)
    feats = features()
    feats[7] = 0.0  # an item without features: cosine 0, distance 1
    net = LigerNet(LigerConfig(**TINY, dense_weight=0.5), codes, SIZES, feats).eval()
    hist, target = histories(), torch.tensor([3, 0, 7, 19, 3])
    ce, hidden_bld = net.token_loss(hist, target)
    query = hidden_bld[:, 0] @ net.dense.weight.T
    distances = []
    for b, item in enumerate(target.tolist()):
        f, q = feats[item], query[b].detach()
        cos = 0.0 if item == 7 else float(q @ f) / float(q.norm() * f.norm())
        distances.append(1.0 - cos)
    expected = ce + 0.5 * sum(distances) / len(distances)
    torch.testing.assert_close(net(hist, target), expected, atol=TOL, rtol=0)
    net.train()
    net(hist, target).backward()
    assert net.dense.weight.grad.abs().sum() > 0


@torch.no_grad()
def test_dense_head_reads_the_same_state_in_training_and_decoding():
    """The teacher-forced state at position 0 is the beam search's root state."""
    torch.manual_seed(0)
    codes = random_unique_codes(N_ITEMS, SIZES)
    net = LigerNet(LigerConfig(**TINY), codes, SIZES, features()).eval()
    hist = histories()
    _, hidden_bld = net.token_loss(hist, torch.zeros(len(hist), dtype=torch.long))
    enc, mask = net.encode(hist)
    decoder = FastDecoder(net, enc, mask, trie=build_trie(codes, SIZES))
    decoder.logits(torch.zeros(len(hist), 1, 0, dtype=torch.long))
    torch.testing.assert_close(decoder.last_hidden, hidden_bld[:, 0], atol=TOL, rtol=0)


# (b) the rankings


def test_rerank_by_hand():
    items = torch.tensor([[5, 2, 7, -1], [1, 3, 0, 4]])
    scores = torch.tensor([[0.25, 0.75, 0.25, 0.0], [0.5, 0.5, 0.5, 1.0]])
    top3 = rerank(items, scores, 3)
    assert top3.items.tolist() == [[2, 5, 7], [4, 0, 1]]  # equal scores: lower item index first
    assert top3.scores.tolist() == [[0.75, 0.25, 0.25], [1.0, 0.5, 0.5]]
    full = rerank(items, scores, 4)
    assert full.items[0].tolist() == [2, 5, 7, -1] and full.scores[0, -1] == float("-inf")
    with pytest.raises(ValueError, match="4 candidates"):
        rerank(items, scores, 5)


def test_hybrid_reorders_the_beam_candidates_by_dense_score():
    model, hist = built(candidates=8), histories()
    dense = hand_dense(model, hist)
    beam = with_ranking(model, "generative").recommend(hist, 8)  # width max(8, k, beam_width 6) = 8
    with_ranking(model, "hybrid")
    everything = model.recommend(hist, 8)
    assert torch.equal(everything.items.sort(dim=1).values, beam.items.sort(dim=1).values)
    assert_ranked_by(everything.items, everything.scores, dense)
    assert not torch.equal(everything.items, beam.items)  # the order is the dense one, not the beam's
    top3 = model.recommend(hist, 3)
    assert torch.equal(top3.items, everything.items[:, :3])
    left_out = [set(b) - set(t) for b, t in zip(beam.items.tolist(), top3.items.tolist(), strict=True)]
    for row, rest in enumerate(left_out):  # no candidate left out scores above the ones kept
        assert all(dense[row, i] <= top3.scores[row, -1] + TOL for i in rest)


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


def test_generative_is_tigers_list():
    model, hist = with_ranking(built(), "generative"), histories()
    tiger = Tiger(TigerConfig(**TINY))
    tiger.build(model.codes_, SIZES)
    tiger.module_.load_state_dict(model.module_.state_dict(), strict=False)
    tiger.max_history_ = model.max_history_
    for k in (3, 8):
        ours, theirs = model.recommend(hist, k), tiger.recommend(hist, k)
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
    assert any(d.startswith("encoder input: semantic-ID embeddings only") for d in
               report.extra["departures_from_paper"])
    assert model.features_ is None  # the net's buffer holds the features
    model.save(tmp_path / "run")
    loaded = Liger.load(tmp_path / "run")  # no data: the features come back from the state dict
    assert isinstance(loaded.cfg, LigerConfig) and loaded.cfg == model.cfg
    assert torch.equal(loaded.module_.item_features, model.module_.item_features)
    hist, _ = data.to_tensors("test")
    for ranking in RANKINGS:
        a, b = with_ranking(model, ranking).recommend(hist, 5), with_ranking(loaded, ranking).recommend(hist, 5)
        assert torch.equal(a.items, b.items) and torch.equal(a.scores, b.scores), ranking


def test_decode_keys_switch_the_ranking_only():
    assert Liger.decode_keys == (*Tiger.decode_keys, "ranking", "candidates")
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
