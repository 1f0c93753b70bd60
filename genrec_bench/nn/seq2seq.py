"""The semantic-ID encoder-decoder TIGER introduced and LIGER builds on: a T5 that reads the
semantic IDs of a user's history and generates the next item's semantic ID, decoded by
trie-constrained beam search; and `Seq2SeqBackend`, the backend plumbing around it.

Vocabulary: token 0 is padding (and the decoder start token); level l's codes occupy their own
token range `offsets[l] : offsets[l] + sizes[l]`, so the same code at two levels is two tokens.
Training is teacher forcing with cross-entropy, on every prefix of every training sequence
(history window -> next item).

Switches (each recorded in `FitReport.extra`; the paper setting stays one flag away):
- `history_encoding = "tokens"` is the paper's encoder input (L tokens per history item);
  `"item_sum"` gives each history item one encoder position, the sum of its level-token
  embeddings (an encoder ~L times shorter); `"item_sum_id"` adds a learned per-item embedding, so
  the encoder can tell apart items whose codes it shares, at the cost of N x d parameters.
- `constrained_softmax`: each level's softmax runs over the codes that continue the prefix to a
  real item (the trie's children), in the loss and in decoding alike, instead of the whole
  vocabulary, so the model spends no capacity on which codes exist below a prefix.
- `repeat_bias`: one learned offset per level on the codes that keep the target on the path of an
  item already in the history (`decoding.repeats`), in training and in decoding alike.
- `item_head`: the last `item_head_levels` levels (default 1, the de-dup level) are also scored by
  the items each code leads to: decoder state . (mean embedding of the items below the code) +
  log-sum-exp of their biases. A de-dup code is an arbitrary index within the items sharing a
  tuple, so its code embedding means nothing across tuples; the item's own embedding does.

Decoding does not call `generate`: the cross-attention keys/values are computed once per user (not
once per beam), the beams of a user attend to them as one longer query block, and the search
itself is the batched gather + mask of `decoding.beam_search`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import T5Config, T5ForConditionalGeneration

from genrec_bench.api import FitReport, Ranked
from genrec_bench.config import TrainConfig, check_key
from genrec_bench.data.examples import NextItemWindows
from genrec_bench.data.split import SplitData
from genrec_bench.decoding.beam_search import constrained_beam_search
from genrec_bench.decoding.repeats import REPEAT_SCALE, repeat_codes
from genrec_bench.decoding.trie import PrefixTrie, build_trie
from genrec_bench.errors import GenrecError
from genrec_bench.items.semantic_ids import format_health
from genrec_bench.items.tokenizer import ItemTokens, SemanticIdKeys
from genrec_bench.nn.backend import NeuralBackend

PAD_TOKEN = 0  # encoder padding and decoder start token
HISTORY_ENCODINGS = ("item_sum", "item_sum_id", "tokens")
# The paper's model (4+4 layers, d_model 128, 6 heads of 64, MLP 1024, dropout 0.1) and a smaller
# CPU default; any explicit size key overrides the preset's value.
PRESETS: dict[str, dict[str, Any]] = {
    "small": {"d_model": 128, "encoder_layers": 2, "decoder_layers": 2, "heads": 4, "d_kv": 32, "d_ff": 512,
              "dropout": 0.1},
    "paper": {"d_model": 128, "encoder_layers": 4, "decoder_layers": 4, "heads": 6, "d_kv": 64, "d_ff": 1024,
              "dropout": 0.1},
}


@dataclass(frozen=True)
class Seq2SeqConfig(SemanticIdKeys):
    """`[model]` keys of the semantic-ID encoder-decoder; size keys at 0 (dropout < 0) take the preset's value."""

    preset: str = "small"  # small | paper
    d_model: int = 0
    encoder_layers: int = 0
    decoder_layers: int = 0
    heads: int = 0
    d_kv: int = 0
    d_ff: int = 0
    dropout: float = -1.0
    history_encoding: str = "item_sum"  # item_sum (one position per item) | item_sum_id (+ item-id embedding)
    #                                     | tokens (paper: L per item)
    max_history: int = 0  # history items fed to the encoder; 0 = data.max_history
    beam_width: int = 20  # decoding beam = max(k, beam_width)
    repeat_bias: bool = True  # learned per-level offset for codes leading back to a history item
    constrained_softmax: bool = True  # softmax over the trie's valid children (paper: whole vocabulary)
    item_head: bool = False  # score the last levels by item embeddings (needs constrained_softmax)
    item_head_levels: int = 1  # how many final levels item_head scores: 1 = the de-dup level only

    def __post_init__(self) -> None:
        super().__post_init__()
        check_key(self.preset in PRESETS, "model.preset", f"one of {', '.join(PRESETS)}", self.preset)
        for key in ("d_model", "encoder_layers", "decoder_layers", "heads", "d_kv", "d_ff", "max_history"):
            check_key(getattr(self, key) >= 0, f"model.{key}", "an integer >= 0 (0 = preset/default)",
                      getattr(self, key))
        check_key(self.dropout < 1, "model.dropout", "a number in [0, 1) (negative = preset)", self.dropout)
        check_key(self.history_encoding in HISTORY_ENCODINGS, "model.history_encoding",
                  f"one of {', '.join(HISTORY_ENCODINGS)}", self.history_encoding)
        check_key(self.beam_width >= 1, "model.beam_width", "an integer >= 1", self.beam_width)
        check_key(isinstance(self.repeat_bias, bool), "model.repeat_bias", "true or false", self.repeat_bias)
        check_key(isinstance(self.constrained_softmax, bool), "model.constrained_softmax", "true or false",
                  self.constrained_softmax)
        check_key(isinstance(self.item_head, bool), "model.item_head", "true or false", self.item_head)
        check_key(self.constrained_softmax or not self.item_head, "model.item_head",
                  "false when model.constrained_softmax is false (it scores the trie's children)", self.item_head)
        check_key(self.item_head_levels >= 1, "model.item_head_levels", "an integer >= 1", self.item_head_levels)

    def size(self, key: str) -> Any:
        """The explicit value of a size key, else the preset's."""
        value = getattr(self, key)
        unset = value < 0 if key == "dropout" else value == 0
        return PRESETS[self.preset][key] if unset else value

    def t5_config(self, vocab_size: int) -> T5Config:
        return T5Config(
            vocab_size=vocab_size, d_model=self.size("d_model"), d_kv=self.size("d_kv"), d_ff=self.size("d_ff"),
            num_layers=self.size("encoder_layers"), num_decoder_layers=self.size("decoder_layers"),
            num_heads=self.size("heads"), dropout_rate=self.size("dropout"), feed_forward_proj="relu",
            pad_token_id=PAD_TOKEN, decoder_start_token_id=PAD_TOKEN, eos_token_id=None, use_cache=False,
        )


def level_offsets(sizes: tuple[int, ...]) -> torch.Tensor:
    """First token id of each level's range (token 0 is PAD)."""
    return torch.tensor([1, *np.cumsum(sizes)[:-1] + 1], dtype=torch.long)


class Seq2SeqNet(nn.Module):
    """The T5 plus the item -> token table, so one state_dict holds everything `load` needs."""

    def __init__(self, cfg: Seq2SeqConfig, codes: torch.Tensor, sizes: tuple[int, ...], trie: PrefixTrie | None = None):
        super().__init__()
        self.sizes = tuple(int(s) for s in sizes)
        self.history_encoding = cfg.history_encoding
        self.t5 = T5ForConditionalGeneration(cfg.t5_config(1 + sum(self.sizes)))
        scaled = getattr(self.t5.config, "scale_decoder_outputs", True)
        self.scale_out = self.t5.config.d_model**-0.5 if scaled else 1.0  # applied before the T5's lm_head
        self.register_buffer("offsets", level_offsets(self.sizes), persistent=False)
        self.register_buffer("item_tokens", codes.long() + self.offsets[None, :])  # [N, L] global token ids
        self.repeat = nn.Parameter(torch.zeros(len(self.sizes))) if cfg.repeat_bias else None
        self.item_embed = None
        if cfg.history_encoding == "item_sum_id":
            # T5 initialises token embeddings with std 1 (`initializer_factor`); match that scale.
            self.item_embed = nn.Embedding(codes.shape[0], self.t5.config.d_model)
            nn.init.normal_(self.item_embed.weight, std=self.t5.config.initializer_factor)
        self.constrained = cfg.constrained_softmax
        if self.constrained:  # derived from `codes`, so rebuilt on load rather than saved
            trie = trie or build_trie(codes, self.sizes)
            self.register_buffer("child_ok", trie.children >= 0, persistent=False)  # [internal nodes, Vmax]
            walk_nl = trie.walk(codes.long())  # [N, L+1]: root, then each item's node after each level
            self.register_buffer("item_prefix_nodes", walk_nl[:, :-1], persistent=False)  # [N, L]
        self.item_out: nn.Embedding | None = None
        if cfg.item_head:
            self.item_out = self.item_embed
            if self.item_out is None:
                self.item_out = nn.Embedding(codes.shape[0], self.t5.config.d_model)
                nn.init.normal_(self.item_out.weight, std=self.t5.config.initializer_factor)
            self.item_bias = nn.Parameter(torch.zeros(codes.shape[0]))
            depth = len(self.sizes)
            if cfg.item_head_levels > depth:
                raise GenrecError(f"model.item_head_levels = {cfg.item_head_levels} but the semantic ids have "
                                  f"{depth} levels (with the de-dup level)")
            self.item_levels = list(range(depth - cfg.item_head_levels, depth))
            item_nodes = walk_nl[:, 1:]  # item_head implies constrained_softmax, so the trie was walked above
            self.node_bounds = [(int(item_nodes[:, t].min()), int(item_nodes[:, t].max()) + 1) for t in range(depth)]
            scored = item_nodes[:, self.item_levels].flatten()  # item-major, as repeat_interleave
            self.register_buffer("scored_nodes", scored, persistent=False)
            self.register_buffer("node_items", torch.bincount(scored, minlength=trie.num_nodes).clamp(min=1),
                                 persistent=False)
            self.register_buffer("child_node", trie.children, persistent=False)

    def level_logits(self, logits_blv: torch.Tensor) -> torch.Tensor:
        """Each level's slice of full-vocabulary logits [B, L, V] -> level-local logits [B, L, Vmax]."""
        width = max(self.sizes)
        return torch.stack([F.pad(logits_blv[:, t, int(lo) : int(lo) + size], (0, width - size), value=float("-inf"))
                            for t, (lo, size) in enumerate(zip(self.offsets, self.sizes, strict=True))], dim=1)

    def node_tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Embedding [nodes, d] (mean over the items below) and bias [nodes] (log-sum-exp of theirs) of
        the trie nodes the item head scores; recomputed from the item tables so gradients reach them."""
        k = len(self.item_levels)
        weight, bias = self.item_out.weight.repeat_interleave(k, 0), self.item_bias.repeat_interleave(k)
        idx = self.scored_nodes
        emb = weight.new_zeros(len(self.node_items), weight.shape[1]).index_add(0, idx, weight)
        top = bias.new_full((len(self.node_items),), float("-inf")).scatter_reduce(0, idx, bias.detach(), "amax")
        mass = bias.new_zeros(len(self.node_items)).index_add(0, idx, torch.exp(bias - top[idx]))
        return emb / self.node_items[:, None], top + torch.log(mass.clamp(min=1e-30))

    def item_scores(self, hidden_nd: torch.Tensor, nodes_n: torch.Tensor, level: int,
                    tables: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Item-head logit offsets [n, sizes[level]] of the codes below prefix nodes `nodes_n` (one of
        `item_levels`), from `node_tables()`; 0 where a code leads nowhere."""
        emb, bias = tables
        lo, hi = self.node_bounds[level]
        children = self.child_node[nodes_n.clamp(min=0), : self.sizes[level]]
        hidden_nd = hidden_nd.to(emb.dtype)
        if level == len(self.sizes) - 1:  # at most the largest tuple group per prefix: score just those
            safe = children.clamp(min=0)
            scores = torch.bmm(emb[safe], hidden_nd[:, :, None])[:, :, 0] + bias[safe]
        else:  # up to a whole codebook per prefix: one matmul over the level's nodes, then pick
            scores = (hidden_nd @ emb[lo:hi].T + bias[lo:hi]).gather(1, (children - lo).clamp(0, hi - lo - 1))
        return scores.masked_fill(children < 0, 0.0)

    def history_codes(self, hist_bh: torch.Tensor) -> torch.Tensor:
        """Level-local codes [B, H, L] of left-padded histories, -1 for padding."""
        codes_bhl = self.item_tokens[hist_bh.clamp(min=0)] - self.offsets
        return codes_bhl.masked_fill((hist_bh < 0)[:, :, None], -1)

    def repeat_offset(self, hist_codes_bhl: torch.Tensor, prefix_bwt: torch.Tensor) -> torch.Tensor:
        """Logit offsets [B, W, sizes[t]] for level t = prefix length (needs `repeat_bias`)."""
        t = prefix_bwt.shape[2]
        return repeat_codes(hist_codes_bhl, prefix_bwt, self.sizes[t]) * (REPEAT_SCALE * self.repeat[t])

    def encoder_inputs(self, hist_bh: torch.Tensor) -> dict[str, torch.Tensor]:
        """Keyword inputs of the T5 encoder for left-padded item histories [B, H] (PAD = -1)."""
        valid_bh = hist_bh >= 0
        tokens_bhl = self.item_tokens[hist_bh.clamp(min=0)]
        if self.history_encoding == "tokens":
            ids_bhl = tokens_bhl.masked_fill(~valid_bh[:, :, None], PAD_TOKEN)
            return {"input_ids": ids_bhl.flatten(1),
                    "attention_mask": valid_bh.repeat_interleave(len(self.sizes), dim=1).long()}
        embeds_bhd = self.t5.shared(tokens_bhl).sum(dim=2)
        if self.item_embed is not None:
            embeds_bhd = embeds_bhd + self.item_embed(hist_bh.clamp(min=0))
        embeds_bhd = embeds_bhd * valid_bh[:, :, None]
        return {"inputs_embeds": embeds_bhd, "attention_mask": valid_bh.long()}

    def encode(self, hist_bh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder states [B, S, d] and their attention mask [B, S]."""
        inputs = self.encoder_inputs(hist_bh)
        return self.t5.encoder(**inputs).last_hidden_state, inputs["attention_mask"]

    def forward(self, hist_bh: torch.Tensor, target_b: torch.Tensor) -> torch.Tensor:
        """Teacher-forced cross-entropy of the target items' token sequences."""
        return self.token_loss(hist_bh, target_b)[0]

    def token_loss(self, hist_bh: torch.Tensor, target_b: torch.Tensor,
                   encoded: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(`forward`'s cross-entropy, the decoder states [B, L, d] that predict each level's code), so a
        subclass can add a loss on the states without running the decoder twice; `encoded` is
        `encode(hist_bh)` when the caller already ran the encoder."""
        enc_bsd, mask_bs = encoded if encoded is not None else self.encode(hist_bh)
        labels_bl = self.item_tokens[target_b]
        hidden_bld = self.t5.decoder(input_ids=self.t5._shift_right(labels_bl), encoder_hidden_states=enc_bsd,
                                     encoder_attention_mask=mask_bs).last_hidden_state * self.scale_out
        logits_blv = self.t5.lm_head(hidden_bld).float()
        if self.repeat is not None:
            hist_codes_bhl, target_codes_bl = self.history_codes(hist_bh), labels_bl - self.offsets
            for t, size in enumerate(self.sizes):  # levels, not items: a handful of iterations
                lo = int(self.offsets[t])
                offset_bc = self.repeat_offset(hist_codes_bhl, target_codes_bl[:, None, :t])[:, 0]
                logits_blv[:, t, lo : lo + size] += offset_bc
        if not self.constrained:
            return F.cross_entropy(logits_blv.flatten(0, 1), labels_bl.flatten()), hidden_bld
        allowed_blv = self.child_ok[self.item_prefix_nodes[target_b]]
        level_blv = self.level_logits(logits_blv)
        if self.item_out is not None:
            tables, prefix_nodes_bl = self.node_tables(), self.item_prefix_nodes[target_b]
            for t in self.item_levels:  # levels, not items: a handful of iterations
                extra = self.item_scores(hidden_bld[:, t], prefix_nodes_bl[:, t], t, tables)
                level_blv[:, t, : extra.shape[1]] += extra.float()
        level_blv = level_blv.masked_fill(~allowed_blv, float("-inf"))
        return F.cross_entropy(level_blv.flatten(0, 1), (labels_bl - self.offsets).flatten()), hidden_bld


class FastDecoder:
    """T5 decoder log-probabilities for [B, W] beams that share each user's encoder output.

    Reuses the trained T5 weights, and differs from `generate` in two ways that matter on a CPU:
    each layer's cross-attention keys/values are computed once per user (not once per beam), the
    W beams of a user querying them as one block of W*n positions; and the self-attention
    key/value cache is reordered by the beam search's parent indices, so each step runs only the
    new token. `tests/test_tiger.py` checks it against the T5 forward and against `generate`.
    """

    def __init__(self, net: Seq2SeqNet, enc_bsd: torch.Tensor, mask_bs: torch.Tensor,
                 hist_codes_bhl: torch.Tensor | None = None, trie: PrefixTrie | None = None):
        if net.constrained and trie is None:
            raise ValueError("a constrained_softmax model decodes with its trie")
        self.net = net
        self.hist_codes_bhl = hist_codes_bhl  # enables the learned repeat offsets in `level_step`
        self.trie = trie
        self.t5 = net.t5
        cfg = self.t5.config
        self.heads, self.d_kv = cfg.num_heads, cfg.d_kv
        self.scale_out = net.scale_out
        self.last_hidden: torch.Tensor | None = None  # [B*W, d] decoder state of the latest step (`item_head`)
        self.enc_last = enc_bsd[:, -1]  # [B, d] encoder state at the last (left-padded) history position
        self.tables = net.node_tables() if net.item_out is not None else None
        b, s, _ = enc_bsd.shape
        neg = torch.finfo(enc_bsd.dtype).min
        self.cross_mask = torch.zeros(b, 1, 1, s, dtype=enc_bsd.dtype, device=enc_bsd.device).masked_fill(
            (mask_bs == 0)[:, None, None, :], neg)
        self.cross_kv = []
        for block in self.t5.decoder.block:
            attn = block.layer[1].EncDecAttention
            k = attn.k(enc_bsd).view(b, s, self.heads, self.d_kv).transpose(1, 2)
            v = attn.v(enc_bsd).view(b, s, self.heads, self.d_kv).transpose(1, 2)
            self.cross_kv.append((k, v))
        # The first layer's self-attention q/k/v of a token depend on the token alone: one table
        # lookup per beam instead of three projections.
        sa0 = self.t5.decoder.block[0].layer[0]
        h = sa0.layer_norm(self.t5.decoder.embed_tokens.weight)
        self.qkv0 = torch.stack([sa0.SelfAttention.q(h), sa0.SelfAttention.k(h), sa0.SelfAttention.v(h)])
        self.cache: list[tuple[torch.Tensor, torch.Tensor]] = []  # per layer [B*W, H, T, d_kv]

    def logits(self, prefix_bwt: torch.Tensor, parent_bw: torch.Tensor | None = None) -> torch.Tensor:
        """Next-token logits [B, W, vocab] (float32); see `logprobs`."""
        b, w, t = prefix_bwt.shape
        if parent_bw is None or not self.cache:
            start = prefix_bwt.new_full((b, w, 1), PAD_TOKEN)
            ids_nq = torch.cat([start, prefix_bwt], dim=2).view(b * w, t + 1)
            self.cache = []
        else:
            rows = (parent_bw + torch.arange(b, device=parent_bw.device)[:, None] * (self.cache[0][0].shape[0] // b))
            self.cache = [(k[rows.view(-1)], v[rows.view(-1)]) for k, v in self.cache]
            ids_nq = prefix_bwt[:, :, -1].reshape(b * w, 1)
        x = self.t5.decoder.embed_tokens(ids_nq)  # [B*W, q new positions, d]
        q_len, total = ids_nq.shape[1], t + 1
        bias = self.t5.decoder.block[0].layer[0].SelfAttention.compute_bias(total, total, device=x.device)
        causal = torch.ones(total, total, dtype=torch.bool, device=x.device).tril()
        bias_1hqt = bias.masked_fill(~causal, torch.finfo(bias.dtype).min)[:, :, total - q_len :]
        new_cache = []
        for i, (block, (ck, cv)) in enumerate(zip(self.t5.decoder.block, self.cross_kv, strict=True)):
            sa, ca, ff = block.layer
            if i == 0:
                q, k, v = (self._heads(table[ids_nq]) for table in self.qkv0)
            else:
                h = sa.layer_norm(x)
                q, k, v = (self._heads(proj(h)) for proj in (sa.SelfAttention.q, sa.SelfAttention.k,
                                                             sa.SelfAttention.v))
            if self.cache:
                k, v = torch.cat([self.cache[i][0], k], dim=2), torch.cat([self.cache[i][1], v], dim=2)
            new_cache.append((k, v))
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=bias_1hqt.to(q.dtype), scale=1.0)
            x = x + sa.SelfAttention.o(att.transpose(1, 2).reshape(b * w, q_len, -1))
            h = ca.layer_norm(x).view(b, w * q_len, -1)  # all beams of a user query the user's encoder states
            q = self._heads(ca.EncDecAttention.q(h))
            att = F.scaled_dot_product_attention(q, ck, cv, attn_mask=self.cross_mask.to(q.dtype), scale=1.0)
            x = x + ca.EncDecAttention.o(att.transpose(1, 2).reshape(b, w * q_len, -1)).view(b * w, q_len, -1)
            x = x + ff.DenseReluDense(ff.layer_norm(x))
        self.cache = new_cache
        self.last_hidden = self.t5.decoder.final_layer_norm(x[:, -1]) * self.scale_out
        return self.t5.lm_head(self.last_hidden).float().view(b, w, -1)

    def logprobs(self, prefix_bwt: torch.Tensor, parent_bw: torch.Tensor | None = None) -> torch.Tensor:
        """Log-softmax over the full vocabulary [B, W, vocab] of the next token after global-token prefixes.

        With `parent_bw` (beam of the previous call each beam extends) only the newest token is run
        through the decoder; without it the whole prefix is, and the cache is rebuilt.
        """
        return torch.log_softmax(self.logits(prefix_bwt, parent_bw), dim=-1)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        n, t, _ = x.shape
        return x.view(n, t, self.heads, self.d_kv).transpose(1, 2)

    def level_step(self, prefix_bwt: torch.Tensor, parent_bw: torch.Tensor | None) -> torch.Tensor:
        """Step function for `constrained_beam_search`: level-local prefixes -> level-local log-probs.

        A `constrained_softmax` model normalises over the prefix's valid children, as it was trained.
        """
        t = prefix_bwt.shape[2]
        sizes, offsets = self.net.sizes, self.net.offsets
        logits = self.logits(prefix_bwt + offsets[:t], parent_bw)
        lo = int(offsets[t])
        if self.hist_codes_bhl is not None and self.net.repeat is not None:
            logits[:, :, lo : lo + sizes[t]] += self.net.repeat_offset(self.hist_codes_bhl, prefix_bwt)
        level = logits[:, :, lo : lo + sizes[t]]
        nodes_bw = self.trie.walk(prefix_bwt)[..., -1] if self.net.constrained else None
        if self.tables is not None and t in self.net.item_levels:  # item_head implies constrained
            b, w = nodes_bw.shape
            extra = self.net.item_scores(self.last_hidden, nodes_bw.flatten(), t, self.tables)
            level = level + extra.view(b, w, -1).float()
        level = F.pad(level, (0, max(sizes) - sizes[t]), value=float("-inf"))
        if not self.net.constrained:
            return level - torch.logsumexp(logits, dim=-1, keepdim=True)
        allowed = self.trie.allowed(nodes_bw)
        allowed |= ~allowed.any(dim=-1, keepdim=True)  # dead beams: any finite row, the search drops them
        return torch.log_softmax(level.masked_fill(~allowed, float("-inf")), dim=-1)


class TrainingPrefixes(NextItemWindows):
    """The `training.Trainable` view of TIGER: next-item windows, teacher-forced cross-entropy."""

    def __init__(self, net: Seq2SeqNet, data: SplitData, max_history: int):
        super().__init__(data, max_history)
        self.module = net

    def loss(self, module: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return module(*batch)


class Seq2SeqBackend(NeuralBackend):
    """Fit, decode, save and load of a `Seq2SeqNet`: TIGER's architecture, which LIGER builds on.

    A model sets `name` and `Config` and may override `make_net` (its network), `rank_decoder`
    (how the decoder's beams become a list), `fit_facts` and `departures`.
    """

    decode_keys: ClassVar[tuple[str, ...]] = ("beam_width",)
    # Runs saved before `repeat_bias` / `constrained_softmax` existed were trained without them.
    legacy_config: ClassVar[dict[str, Any]] = {"repeat_bias": False, "constrained_softmax": False}

    def __init__(self, cfg: Seq2SeqConfig | None = None):
        super().__init__(cfg)
        self.trie_: PrefixTrie | None = None
        self.codes_: torch.Tensor | None = None
        self.max_history_: int = self.cfg.max_history
        self.source_ = ""

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {"d_model": 32, "encoder_layers": 1, "decoder_layers": 1, "heads": 2, "d_kv": 16, "d_ff": 64,
                "sid_codebook": 4, "sid_levels": 2, "history_encoding": "item_sum_id"}

    def item_tokens(self, data: SplitData) -> ItemTokens:
        return ItemTokens(ids=self.cfg.semantic_ids(data))

    def build(self, codes: torch.Tensor, sizes: tuple[int, ...], saved: dict[str, torch.Tensor] | None = None) -> None:
        """The network and trie for item codes [N, L] with level sizes `sizes`, on `device_`."""
        self.codes_ = codes.long().cpu()
        trie = build_trie(self.codes_, sizes)
        self.module_ = self.make_net(self.codes_, sizes, trie, saved).to(self.device_)
        self.trie_ = trie.to(self.device_)

    def make_net(self, codes: torch.Tensor, sizes: tuple[int, ...], trie: PrefixTrie,
                 saved: dict[str, torch.Tensor] | None) -> Seq2SeqNet:
        """The network `build` wraps. `saved` is the state dict `load` restores next (None in `fit`), for
        a model whose buffers are sized by data that `load` does not have."""
        return Seq2SeqNet(self.cfg, codes, sizes, trie)

    def fit(self, data: SplitData, cfg: TrainConfig, workdir: Path | None = None) -> FitReport:
        start = time.perf_counter()
        self.prepare(data)
        ids = self.cfg.semantic_ids(data)
        print(format_health(ids), file=sys.stderr)
        if ids.codes.shape[0] != data.n_items:
            raise GenrecError(f"semantic ids cover {ids.codes.shape[0]} items but the split has {data.n_items}")
        self.source_ = ids.source
        self.max_history_ = self.cfg.max_history or data.config.max_history
        self.use_device(cfg.device)
        self.build(ids.codes, ids.sizes)
        net = self.fitted()
        trainable = TrainingPrefixes(net, data, self.max_history_)
        sid_seconds = time.perf_counter() - start
        report = self.train_module(trainable, data, cfg, workdir)
        report.extra.update({
            "history_encoding": self.cfg.history_encoding,
            "departures_from_paper": self.departures(),
            "preset": self.cfg.preset,
            "model_sizes": {k: self.cfg.size(k) for k in PRESETS["paper"]},
            "parameters": sum(p.numel() for p in net.parameters()),
            "semantic_ids": ids.source,
            "sid_sizes": list(ids.sizes),
            "sid_health": ids.health,
            "sid_digest": ids.digest,
            "sid_seconds": round(sid_seconds, 2),
            "train_examples": trainable.num_examples(),
            "max_history": self.max_history_,
            "beam_width": self.cfg.beam_width,
            **self.fit_facts(data),
        })
        if net.repeat is not None:
            report.extra["repeat_bias"] = [round(REPEAT_SCALE * v, 3) for v in net.repeat.tolist()]
        return report

    def prepare(self, data: SplitData) -> None:
        """What a model reads from the data before its network is built (nothing here)."""

    def fit_facts(self, data: SplitData) -> dict[str, Any]:
        """What a model adds to its run record's `extra`."""
        return {}

    def departures(self) -> list[str]:
        """Every way this run differs from TIGER's published setting, for the run record."""
        out = []
        if self.cfg.history_encoding != "tokens":
            out.append(f"history_encoding={self.cfg.history_encoding} (paper: tokens, L positions per item"
                       + ("; no item-id embedding)" if self.cfg.history_encoding == "item_sum_id" else ")"))
        paper = {k: v for k, v in PRESETS["paper"].items() if self.cfg.size(k) != v}
        if paper:
            out.append("model size " + ", ".join(f"{k}={self.cfg.size(k)} (paper: {v})" for k, v in paper.items()))
        if self.cfg.sid_file:
            out.append(f"sid_file={self.cfg.sid_file}: ids from a table file (paper: rqvae over Sentence-T5 text "
                       "embeddings)")
        elif self.cfg.sid_method != "rqvae":
            out.append(f"sid_method={self.cfg.sid_method} (paper: rqvae over Sentence-T5 text embeddings)")
        out.append("no user-id token (paper: hashed user id)")
        if self.cfg.constrained_softmax:
            out.append("constrained_softmax: each level's softmax over the trie's valid children (paper: whole "
                       "vocabulary)")
        if self.cfg.repeat_bias:
            out.append("repeat_bias: learned per-level offset for codes leading back to a history item (paper: none)")
        if self.cfg.item_head:
            out.append(f"item_head: last {self.cfg.item_head_levels} level(s) also scored by the embeddings of the "
                       "items below each code (paper: the code token alone)")
        out.append("optimiser: shared AdamW loop with linear schedule (paper: lr 0.01, inverse-sqrt decay)")
        return out

    def recommend(self, histories: torch.Tensor, k: int) -> Ranked:
        with self.inference():
            return self.rank_decoder(self.decoder_for(histories), len(histories), k)

    def rank_decoder(self, decoder: FastDecoder, b: int, k: int) -> Ranked:
        """The top-k of `b` users from their decoder (called in inference mode): trie-constrained beams."""
        out = constrained_beam_search(decoder.level_step, self.trie_, b, beam=max(k, self.cfg.beam_width), k=k)
        return Ranked(items=out.items, scores=out.scores)

    def decoder_for(self, histories: torch.Tensor) -> FastDecoder:
        """The beam-search step for `histories` (encoder run once), so a caller can reshape the
        per-level log-probs (diagnostics: level weights, ensembles) and still search the same trie."""
        net = self.fitted()
        hist = self.history(histories, self.max_history_)
        enc_bsd, mask_bs = net.encode(hist)
        return FastDecoder(net, enc_bsd, mask_bs, net.history_codes(hist), self.trie_)

    def state(self) -> dict[str, Any]:
        net = self.fitted()
        return {"net": net.state_dict(), "codes": self.codes_, "sizes": list(net.sizes),
                "max_history": self.max_history_, "source": self.source_}

    def restore(self, state: dict[str, Any], info: dict[str, Any]) -> None:
        self.build(state["codes"], tuple(state["sizes"]), state["net"])
        self.fitted().load_state_dict(state["net"])
        self.max_history_ = int(state["max_history"])
        self.source_ = state["source"]
