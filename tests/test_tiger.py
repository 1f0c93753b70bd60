"""TIGER backend: fast decoder == T5 forward, fit -> recommend -> save -> load, config errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from transformers.modeling_outputs import BaseModelOutput

from conftest import random_unique_codes, walk_split
from genrec_bench.config import TrainConfig
from genrec_bench.decoding.beam_search import exhaustive_search
from genrec_bench.decoding.trie import build_trie
from genrec_bench.errors import GenrecError
from genrec_bench.models.registry import create_backend
from genrec_bench.models.tiger import Tiger, TigerConfig
from genrec_bench.nn.seq2seq import FastDecoder, Seq2SeqNet, TrainingPrefixes

TINY = dict(d_model=32, encoder_layers=1, decoder_layers=1, heads=2, d_kv=16, d_ff=64, sid_levels=2,
            sid_codebook=4, beam_width=6)
# The T5 as it is: softmax over the whole vocabulary, for tests that compare with T5 / `generate` themselves.
FULL_VOCAB = {**TINY, "constrained_softmax": False}


def test_item_sum_id_tells_apart_items_with_the_same_codes():
    """`item_sum_id` adds a per-item embedding: two items sharing every code encode differently."""
    torch.manual_seed(0)
    sizes = (3, 3)
    codes = torch.tensor([[0, 1], [0, 1], [2, 2]])  # items 0 and 1 share their whole tuple
    plain = Seq2SeqNet(TigerConfig(**{**FULL_VOCAB, "history_encoding": "item_sum"}), codes, sizes).eval()
    with_id = Seq2SeqNet(TigerConfig(**{**FULL_VOCAB, "history_encoding": "item_sum_id"}), codes, sizes).eval()
    hist = torch.tensor([[-1, 0], [-1, 1]])
    same = plain.encoder_inputs(hist)["inputs_embeds"]
    assert torch.equal(same[0], same[1])
    embeds = with_id.encoder_inputs(hist)["inputs_embeds"]
    assert not torch.allclose(embeds[0, 1], embeds[1, 1])
    assert torch.equal(embeds[:, 0], torch.zeros_like(embeds[:, 0]))  # padding stays zero
    with_id.train()
    with_id(hist, torch.tensor([2, 2])).backward()
    assert with_id.item_embed.weight.grad[[0, 1]].abs().sum() > 0 and with_id.item_embed.weight.grad[2].eq(0).all()


@torch.no_grad()
@pytest.mark.parametrize("encoding", ["item_sum", "item_sum_id", "tokens"])
def test_fast_decoder_matches_t5_forward(encoding):
    """Cached incremental steps with reordered beams give the T5 forward's log-probabilities."""
    torch.manual_seed(0)
    sizes = (5, 4, 3)
    codes = random_unique_codes(30, sizes)
    net = Seq2SeqNet(TigerConfig(**{**FULL_VOCAB, "history_encoding": encoding}), codes, sizes).eval()
    hist = torch.randint(0, 30, (3, 5))
    hist[0, :3] = -1
    enc, mask = net.encode(hist)
    cached, fresh = FastDecoder(net, enc, mask), FastDecoder(net, enc, mask)
    beams = 4
    tokens = net.item_tokens[torch.randint(0, 30, (3, beams))]  # [B, W, L]
    prefix = tokens[:, :1, :0]
    parent = None
    for t in range(3):
        if t:  # each beam extends a random beam of the previous step by a new token
            parent = torch.randint(0, prefix.shape[1], (3, beams))
            prefix = torch.cat([prefix.gather(1, parent[:, :, None].expand(-1, -1, t - 1)),
                                tokens[:, :, t - 1 : t]], dim=2)
        ours = cached.logprobs(prefix, parent)
        w = prefix.shape[1]
        ids = torch.cat([torch.zeros(3 * w, 1, dtype=torch.long), prefix.reshape(3 * w, t)], dim=1)
        out = net.t5(encoder_outputs=BaseModelOutput(last_hidden_state=enc.repeat_interleave(w, 0)),
                     attention_mask=mask.repeat_interleave(w, 0), decoder_input_ids=ids)
        ref = torch.log_softmax(out.logits[:, -1], dim=-1).view(3, w, -1)
        assert torch.allclose(ours, ref, atol=1e-4)
        assert torch.allclose(fresh.logprobs(prefix, None), ref, atol=1e-4)


def test_training_prefixes_are_every_prefix(tmp_path):
    data = walk_split(tmp_path)
    sizes = (4, 4)
    net = Seq2SeqNet(TigerConfig(**TINY), random_unique_codes(data.n_items, sizes), sizes)
    prefixes = TrainingPrefixes(net, data, max_history=3)
    flat, offsets = data.train_sequences()
    assert prefixes.num_examples() == int(sum(n - 1 for n in (offsets[1:] - offsets[:-1])))
    hist, target = prefixes.batch(torch.arange(prefixes.num_examples()), torch.device("cpu"))
    seq0 = flat[offsets[0] : offsets[1]].tolist()  # first user's training part: 5 items
    assert hist[:4].tolist() == [[-1, -1, seq0[0]], [-1, *seq0[:2]], seq0[:3], seq0[1:4]]
    assert target[:4].tolist() == seq0[1:5]


def test_fit_recommend_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    data = walk_split(tmp_path)
    model = Tiger(TigerConfig(**TINY))
    report = model.fit(data, TrainConfig(epochs=3, batch_size=32, lr=3e-3, warmup_steps=0, patience=0,
                                         device="cpu"), workdir=tmp_path / "work")
    assert report.steps > 0 and report.best_valid is not None
    assert report.extra["history_encoding"] == "item_sum" and report.extra["train_examples"] > 0
    assert any(d.startswith("history_encoding=item_sum") for d in report.extra["departures_from_paper"])
    assert report.extra["repeat_bias"][-1] < 0  # walks never revisit an item: the last level learns to avoid it
    hist, _ = data.to_tensors("test")
    k = 5
    ranked = model.recommend(hist, k)
    assert ranked.items.shape == (data.n_users, k) and ranked.scores.shape == (data.n_users, k)
    assert ((ranked.items >= 0) & (ranked.items < data.n_items)).all()
    assert all(len(set(row)) == k for row in ranked.items.tolist())
    assert (ranked.scores[:, :-1] >= ranked.scores[:, 1:]).all()
    # more than the catalogue: the list is padded with -1, never with invented items
    padded = model.recommend(hist[:2], data.n_items + 3)
    assert (padded.items[:, data.n_items :] == -1).all()
    assert sorted(padded.items[0, : data.n_items].tolist()) == list(range(data.n_items))
    model.save(tmp_path / "run")
    loaded = Tiger.load(tmp_path / "run")
    again = loaded.recommend(hist, k)
    assert torch.equal(again.items, ranked.items)
    assert torch.allclose(again.scores, ranked.scores)


def test_tokens_encoding_trains(tmp_path):
    torch.manual_seed(0)
    data = walk_split(tmp_path)
    model = Tiger(TigerConfig(**{**TINY, "history_encoding": "tokens"}))
    report = model.fit(data, TrainConfig(epochs=1, batch_size=64, device="cpu", warmup_steps=0))
    assert report.extra["history_encoding"] == "tokens"
    assert model.recommend(data.to_tensors("valid")[0][:4], 3).items.shape == (4, 3)


@pytest.mark.parametrize("key, value, message", [
    ("beam_width", 0, "model.beam_width"),
    ("history_encoding", "bag", "model.history_encoding"),
    ("preset", "huge", "model.preset"),
    ("d_model", -1, "model.d_model"),
    ("sid_method", "kmeans", "model.sid_method"),
    ("sid_codebook", 1, "model.sid_codebook"),
    ("item_head", "yes", "model.item_head"),
    ("item_head_levels", 0, "model.item_head_levels"),
])
def test_config_validation(key, value, message):
    with pytest.raises(GenrecError, match=message):
        TigerConfig(**{key: value})


def test_item_head_needs_the_constrained_softmax():
    with pytest.raises(GenrecError, match="constrained_softmax is false"):
        TigerConfig(item_head=True, constrained_softmax=False)


def test_config_from_model_table_and_presets():
    with pytest.raises(GenrecError, match="beam_widht"):
        create_backend("tiger", {"beam_widht": 3})
    backend = create_backend("tiger", {"preset": "paper", "d_ff": 256})
    assert isinstance(backend, Tiger)
    assert backend.cfg.size("encoder_layers") == 4 and backend.cfg.size("heads") == 6
    assert backend.cfg.size("d_ff") == 256 and backend.cfg.size("dropout") == 0.1
    t5 = backend.cfg.t5_config(100)
    assert (t5.num_layers, t5.num_decoder_layers, t5.d_kv) == (4, 4, 64)


def test_recommend_agrees_with_transformers_generate(tmp_path):
    """Same model, same users: our decoder and HF beam search with prefix constraints agree."""
    torch.manual_seed(1)
    data = walk_split(tmp_path, n_users=30, n_items=30)
    # No repeat offsets: `generate` knows nothing of the user's history beyond the encoder.
    model = Tiger(TigerConfig(**{**FULL_VOCAB, "sid_codebook": 3, "sid_levels": 3, "repeat_bias": False}))
    model.fit(data, TrainConfig(epochs=2, batch_size=32, device="cpu", warmup_steps=0))
    net, depth, k, beam = model.module_, len(model.module_.sizes), 4, 6
    table: dict[tuple[int, ...], set[int]] = {}
    for row in net.item_tokens.tolist():
        for t in range(depth):
            table.setdefault(tuple(row[:t]), set()).add(row[t])
    hist, _ = data.to_tensors("test")
    with torch.inference_mode():
        out = net.t5.generate(**net.encoder_inputs(hist), num_beams=beam, num_return_sequences=k,
                              max_new_tokens=depth, do_sample=False, length_penalty=0.0, use_cache=True,
                              prefix_allowed_tokens_fn=lambda _b, ids: sorted(table[tuple(ids[1:].tolist())]),
                              return_dict_in_generate=True, output_scores=True)
    items = model.trie_.lookup(out.sequences[:, 1:] - net.offsets).view(-1, k)
    ours = model.recommend(hist, k)
    assert torch.equal(ours.items, items)
    assert torch.allclose(ours.scores, out.sequences_scores.view(-1, k), atol=1e-4)


def test_loss_without_repeat_offsets_is_t5s_own_loss(tmp_path):
    torch.manual_seed(0)
    data = walk_split(tmp_path)
    sizes = (4, 4)
    net = Seq2SeqNet(TigerConfig(**{**FULL_VOCAB, "repeat_bias": False}), random_unique_codes(data.n_items, sizes),
                   sizes)
    net.eval()  # no dropout: both losses see the same activations
    hist, target = TrainingPrefixes(net, data, 3).batch(torch.arange(20), torch.device("cpu"))
    enc, mask = net.encode(hist)
    ref = net.t5(encoder_outputs=BaseModelOutput(last_hidden_state=enc), attention_mask=mask,
                 labels=net.item_tokens[target]).loss
    torch.testing.assert_close(net(hist, target), ref)


@torch.no_grad()
def test_repeat_offsets_shift_only_codes_on_a_history_path():
    sizes = (3, 4)
    codes = torch.tensor([[0, 0], [0, 1], [1, 2], [2, 3]])
    net = Seq2SeqNet(TigerConfig(**FULL_VOCAB), codes, sizes).eval()
    net.repeat.copy_(torch.tensor([0.1, -0.5]))
    hist = torch.tensor([[-1, 1, 2]])  # items (0, 1) and (1, 2)
    hist_codes = net.history_codes(hist)
    assert hist_codes.tolist() == [[[-1, -1], [0, 1], [1, 2]]]
    assert net.repeat_offset(hist_codes, torch.zeros(1, 1, 0, dtype=torch.long)).tolist() == [[[1.0, 1.0, 0.0]]]
    second = net.repeat_offset(hist_codes, torch.tensor([[[0], [2]]]))
    assert second.tolist() == [[[0.0, -5.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]]
    enc, mask = net.encode(hist)
    plain, aware = FastDecoder(net, enc, mask), FastDecoder(net, enc, mask, hist_codes)
    prefix = torch.tensor([[[0], [2]]])
    diff = aware.level_step(prefix, None) - plain.level_step(prefix, None)
    # Offsets change the masked logits, then the shared normaliser moves every code of a beam equally.
    torch.testing.assert_close(diff[0, 0] - diff[0, 0, 0], torch.tensor([0.0, -5.0, 0.0, 0.0]))
    torch.testing.assert_close(diff[0, 1], torch.zeros(4))


def test_constrained_loss_is_cross_entropy_over_valid_children(tmp_path):
    torch.manual_seed(0)
    sizes = (3, 4)
    codes = torch.tensor([[0, 0], [0, 1], [1, 2], [2, 3], [2, 0]])
    net = Seq2SeqNet(TigerConfig(**{**TINY, "repeat_bias": False}), codes, sizes).eval()
    hist, target = torch.tensor([[-1, 1], [3, 4], [0, 2]]), torch.tensor([1, 2, 4])
    enc, mask = net.encode(hist)
    labels = net.item_tokens[target]
    logits = net.t5(encoder_outputs=BaseModelOutput(last_hidden_state=enc), attention_mask=mask,
                    decoder_input_ids=net.t5._shift_right(labels)).logits
    children = {(): [0, 1, 2], (0,): [0, 1], (1,): [2], (2,): [0, 3]}  # written out by hand from `codes`
    ce = []
    for b, item in enumerate(target.tolist()):
        for t in range(2):
            valid = children[tuple(codes[item, :t].tolist())]
            row = logits[b, t, [int(net.offsets[t]) + c for c in valid]]
            ce.append(-torch.log_softmax(row, 0)[valid.index(int(codes[item, t]))])
    torch.testing.assert_close(net(hist, target), torch.stack(ce).mean())


@pytest.mark.parametrize("item_head, levels", [(False, 1), (True, 1), (True, 4)])
def test_constrained_decoding_scores_are_a_distribution_over_the_catalogue(tmp_path, item_head, levels):
    """Renormalised over valid children, the exhaustive item scores sum to one for every user, and a
    beam as wide as the catalogue (so it prunes nothing) returns the exhaustive top-k exactly."""
    torch.manual_seed(0)
    data = walk_split(tmp_path, n_users=12, n_items=30)
    model = Tiger(TigerConfig(**{**TINY, "sid_codebook": 3, "sid_levels": 3, "item_head": item_head,
                                 "item_head_levels": levels, "beam_width": data.n_items}))
    model.fit(data, TrainConfig(epochs=1, batch_size=32, device="cpu", warmup_steps=0))
    hist, _ = data.to_tensors("test")
    with torch.inference_mode():
        enc, mask = model.module_.encode(hist)
        decoder = FastDecoder(model.module_, enc, mask, model.module_.history_codes(hist), model.trie_)
        codes = model.module_.item_tokens - model.module_.offsets
        full = exhaustive_search(decoder.level_step, codes, len(hist), k=data.n_items)
    torch.testing.assert_close(torch.logsumexp(full.scores, dim=1), torch.zeros(len(hist)), atol=1e-4, rtol=0)
    ours = model.recommend(hist, 5)
    assert torch.equal(ours.items, full.items[:, :5])
    with pytest.raises(ValueError, match="trie"):
        FastDecoder(model.module_, enc, mask)


@pytest.mark.parametrize("encoding, levels", [("item_sum", 1), ("item_sum_id", 1), ("item_sum_id", 2)])
def test_item_head_scores_codes_by_the_items_below_them(encoding, levels):
    """Scored levels move by decoder state . mean embedding of the items below each code + log-sum-exp
    of their biases (on the de-dup level: the item's own); other levels do not move; the training
    loss scores targets as decoding does; `item_sum_id` ties the table to the encoder's item ids."""
    torch.manual_seed(0)
    sizes = (2, 3)
    codes = torch.tensor([[0, 0], [0, 1], [0, 2], [1, 0]])  # items 0-2 share level 0; item 3 is alone
    cfg = TigerConfig(**{**TINY, "repeat_bias": False, "history_encoding": encoding})
    plain = Seq2SeqNet(cfg, codes, sizes).eval()
    net = Seq2SeqNet(dataclasses.replace(cfg, item_head=True, item_head_levels=levels), codes, sizes).eval()
    net.load_state_dict(plain.state_dict(), strict=False)  # same T5: only the item head differs
    assert (net.item_out is net.item_embed) == (encoding == "item_sum_id")
    with torch.no_grad():
        net.item_bias.copy_(torch.tensor([0.0, 3.0, -2.0, 5.0]))
    hist, target = torch.tensor([[-1, 3], [0, 1]]), torch.tensor([1, 3])
    enc, mask = net.encode(hist)
    trie = build_trie(codes, sizes)
    ours, ref = FastDecoder(net, enc, mask, trie=trie), FastDecoder(plain, enc, mask, trie=trie)
    emb, bias = net.item_out.weight, net.item_bias
    root = torch.zeros(2, 1, 0, dtype=torch.long)
    first, plain_first = ours.level_step(root, None)[:, 0], ref.level_step(root, None)[:, 0]
    if levels == 2:  # code 0 leads to items 0-2, code 1 to item 3
        below = torch.stack([emb[:3].mean(0), emb[3]])
        extra = ours.last_hidden @ below.T + torch.stack([bias[:3].logsumexp(0), bias[3]])
        torch.testing.assert_close(first[:, :2], torch.log_softmax(plain_first[:, :2] + extra, 1))
    else:
        torch.testing.assert_close(first, plain_first)
    prefix = codes[target][:, None, :1]  # each user's own target prefix: (0,) and (1,)
    last, plain_last = ours.level_step(prefix, None)[:, 0], ref.level_step(prefix, None)[:, 0]
    extra = ours.last_hidden[0] @ emb[:3].T + bias[:3]  # user 0 below code 0: items 0, 1, 2
    torch.testing.assert_close(last[0, :3], torch.log_softmax(plain_last[0, :3] + extra, 0))
    torch.testing.assert_close(last[1, 0], torch.tensor(0.0))  # a single child keeps probability one
    assert torch.isinf(last[0, 3:]).all() and torch.isinf(last[1, 1:]).all()
    nll = -(first[torch.arange(2), codes[target, 0]] + last[torch.arange(2), codes[target, 1]])
    torch.testing.assert_close(net(hist, target), nll.sum() / 4)  # mean over 2 users x 2 levels
    net.train()
    net(hist, target).backward()
    assert net.item_bias.grad[:3].abs().sum() > 0
    assert (net.item_bias.grad[3] != 0) == (levels == 2)  # item 3 has a rival only at level 0
    with pytest.raises(GenrecError, match="item_head_levels = 3"):
        Seq2SeqNet(dataclasses.replace(cfg, item_head=True, item_head_levels=3), codes, sizes)
