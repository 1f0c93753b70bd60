"""LIGER (Yang et al., "Unifying Generative and Dense Retrieval for Sequential Recommendation", 2024):
TIGER's encoder-decoder with a dense head, so one model both generates semantic IDs and scores items
by similarity.

Why: in the paper's controlled comparison, dense retrieval (a user vector against every item's
vector) ranks better than semantic-ID generation, and above all reaches items the generator rarely
emits (cold-start items). LIGER trains both on one network: beam search proposes candidates, the
cold-start items join them, and the dense score orders them.

The dense side follows the public code (facebookresearch/liger, src/tiger.py, src/evaluation.py,
configs/method/setting.yaml):
- an item tower (`ItemTower`: input dropout, Linear-LayerNorm-ReLU-Dropout blocks of widths
  `tower`, each with a bias-free linear skip, then a linear map to d_model) embeds each item's
  feature vector (`sid_features`); the same embedding is added to the item's encoder input, which
  is then layer-normalised and dropped out (`input_dropout`);
- the query is the encoder's state at the last history position;
- the dense loss is softmax cross-entropy over the catalogue on cosine / `temperature`, items never
  seen in training left out (their tower output gets no gradient from the loss), added to the
  semantic-ID loss with weight `dense_weight`;
- the checkpoint is selected on the dense ranking's validation NDCG@10 (`select_on = "dense"`).

Ranking (`ranking`, a decode key, so one checkpoint serves all three):
- "hybrid": beam search of width max(candidates, k, beam_width) proposes candidates, the items
  unseen in training join them (`cold_start`), and the dense score orders them (the returned
  scores); lists are full whenever the candidates hold k items.
- "dense": the dense score over the whole catalogue, top-k.
- "generative": TIGER's beam list and scores, unchanged.
Ties rank the lower item index first in every mode.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from genrec_bench.api import FitReport, Ranked
from genrec_bench.config import TrainConfig, check_key
from genrec_bench.data.split import SplitData
from genrec_bench.decoding.beam_search import constrained_beam_search
from genrec_bench.decoding.trie import PrefixTrie
from genrec_bench.errors import GenrecError
from genrec_bench.evaluate import validation_ndcg
from genrec_bench.items.features import item_features, resolve_spec
from genrec_bench.nn.seq2seq import FastDecoder, Seq2SeqBackend, Seq2SeqConfig, Seq2SeqNet
from genrec_bench.ranking import topk_stable
from genrec_bench.training import Trainable, train

RANKINGS = ("hybrid", "dense", "generative")
SELECTIONS = ("dense", "ranking")


@dataclass(frozen=True)
class LigerConfig(Seq2SeqConfig):
    """`[model]` keys of LIGER: TIGER's, plus the dense head (defaults: the public code's setting.yaml)
    and the ranking switches."""

    dense_weight: float = 1.0  # weight of the dense softmax loss (embedding_loss_weight); 0 = TIGER's loss
    temperature: float = 0.07  # cosine logits / temperature (logits_temperature)
    tower: tuple[int, ...] = (768, 512, 256)  # item-tower widths (hidden_sizes [256, 512, 768], applied reversed)
    tower_dropout: float = 0.2  # on the tower's input and in each block (embd_proj_in_dropout_rate)
    input_dropout: float = 0.5  # on the encoder's input embeddings (embd_proj_dropout_rate)
    ranking: str = "hybrid"  # hybrid (beam + cold-start candidates ordered by dense score) | dense | generative
    candidates: int = 20  # beam candidates in hybrid mode: max(candidates, k, beam_width)
    cold_start: bool = True  # hybrid candidates include every item unseen in training
    select_on: str = "dense"  # the validation ranking that selects the checkpoint: dense | ranking

    def __post_init__(self) -> None:
        super().__post_init__()
        check_key(self.dense_weight >= 0, "model.dense_weight", "a number >= 0 (0 = TIGER's loss)", self.dense_weight)
        check_key(self.temperature > 0, "model.temperature", "a number > 0", self.temperature)
        check_key(len(self.tower) > 0 and all(w >= 1 for w in self.tower), "model.tower",
                  "a list of layer widths >= 1", list(self.tower))
        for key in ("tower_dropout", "input_dropout"):
            check_key(0 <= getattr(self, key) < 1, f"model.{key}", "a number in [0, 1)", getattr(self, key))
        check_key(self.ranking in RANKINGS, "model.ranking", f"one of {', '.join(RANKINGS)}", self.ranking)
        check_key(self.candidates >= 1, "model.candidates", "an integer >= 1", self.candidates)
        check_key(self.select_on in SELECTIONS, "model.select_on", f"one of {', '.join(SELECTIONS)}", self.select_on)
        untrained = self.dense_weight == 0
        check_key(not untrained or self.ranking == "generative", "model.ranking",
                  "generative when model.dense_weight = 0 (the dense head is then untrained)", self.ranking)
        check_key(not untrained or self.select_on == "ranking", "model.select_on",
                  "ranking when model.dense_weight = 0 (the dense head is then untrained)", self.select_on)


class ItemTower(nn.Module):
    """Item feature vectors [..., D] -> embeddings [..., d]: input dropout, then per width a
    Linear-LayerNorm-ReLU-Dropout block plus a bias-free linear skip, then a linear map (the public
    code's MLP; its Conv1d skip with kernel = stride = input width is this linear map)."""

    def __init__(self, dim_in: int, widths: tuple[int, ...], dim_out: int, dropout: float, eps: float):
        super().__init__()
        dims = [dim_in, *widths]
        self.in_dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(a, b), nn.LayerNorm(b, eps=eps), nn.ReLU(), nn.Dropout(dropout))
            for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.skips = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.out = nn.Linear(dims[-1], dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.in_dropout(x)
        for block, skip in zip(self.blocks, self.skips, strict=True):
            x = block(x) + skip(x)
        return self.out(x)


class LigerNet(Seq2SeqNet):
    """The semantic-ID encoder-decoder plus the item tower, the catalogue's feature vectors and which
    items training saw (persistent buffers, so a saved model ranks without the data)."""

    def __init__(self, cfg: LigerConfig, codes: torch.Tensor, sizes: tuple[int, ...], features: torch.Tensor,
                 trained: torch.Tensor, trie: PrefixTrie | None = None):
        super().__init__(cfg, codes, sizes, trie)
        if features.shape[0] != codes.shape[0] or trained.shape != (codes.shape[0],):
            raise GenrecError(f"{features.shape[0]} item feature vectors and {trained.shape[0]} trained flags "
                              f"for {codes.shape[0]} items")
        d_model, eps = self.t5.config.d_model, self.t5.config.layer_norm_epsilon
        self.dense_weight, self.temperature = cfg.dense_weight, cfg.temperature
        self.register_buffer("item_features", features.float())  # [N, D]
        self.register_buffer("trained_items", trained.bool())  # [N]: seen in training
        self.tower = ItemTower(features.shape[1], cfg.tower, d_model, cfg.tower_dropout, eps)
        self.input_norm = nn.LayerNorm(d_model, eps=eps)
        self.input_dropout = nn.Dropout(cfg.input_dropout)
        self._items: torch.Tensor | None = None  # unit tower embeddings [N, d], kept while in eval mode

    def train(self, mode: bool = True) -> LigerNet:
        """Entering training mode drops the cached item embeddings: the weights are about to change."""
        if mode:
            self._items = None
        return super().train(mode)

    def item_vectors(self) -> torch.Tensor:
        """Unit-length tower embeddings [N, d] of the catalogue, float32; computed once per eval phase
        (one tower pass over every item, not one per batch of users)."""
        if self.training or self._items is None:
            with torch.autocast(self.item_features.device.type, enabled=False):
                items = F.normalize(self.tower(self.item_features).float(), dim=-1)
            if self.training:
                return items
            self._items = items
        return self._items

    def encoder_inputs(self, hist_bh: torch.Tensor) -> dict[str, torch.Tensor]:
        """TIGER's input embeddings plus each history item's tower embedding (on each of its tokens
        under `tokens` encoding), layer-normalised and dropped out as the public code does."""
        inputs = super().encoder_inputs(hist_bh)
        valid_bh = hist_bh >= 0
        proj_bhd = self.tower(self.item_features[hist_bh.clamp(min=0)]) * valid_bh[:, :, None]
        if "input_ids" in inputs:
            embeds = self.t5.shared(inputs.pop("input_ids")) + proj_bhd.repeat_interleave(len(self.sizes), dim=1)
        else:
            embeds = inputs["inputs_embeds"] + proj_bhd
        mask = inputs["attention_mask"][:, :, None].to(embeds.dtype)
        inputs["inputs_embeds"] = self.input_dropout(self.input_norm(embeds)) * mask
        return inputs

    def dense_logits(self, query_bd: torch.Tensor) -> torch.Tensor:
        """Cosine [B, N] of the queries with every item's tower embedding, / temperature, in float32
        even under autocast (bf16 rounding would tie most of the catalogue)."""
        items_nd = self.item_vectors()
        with torch.autocast(query_bd.device.type, enabled=False):
            return F.normalize(query_bd.float(), dim=-1) @ items_nd.T / self.temperature

    def forward(self, hist_bh: torch.Tensor, target_b: torch.Tensor) -> torch.Tensor:
        """TIGER's cross-entropy + dense_weight * the dense softmax loss over the trained items."""
        encoded = self.encode(hist_bh)
        loss, _ = self.token_loss(hist_bh, target_b, encoded)
        if self.dense_weight == 0:
            return loss
        return loss + self.dense_weight * self.dense_loss(encoded[0][:, -1], target_b)

    def dense_loss(self, query_bd: torch.Tensor, target_b: torch.Tensor) -> torch.Tensor:
        """Softmax cross-entropy of the targets among the items seen in training."""
        logits_bn = self.dense_logits(query_bd).masked_fill(~self.trained_items, float("-inf"))
        return F.cross_entropy(logits_bn, target_b)


class Liger(Seq2SeqBackend):
    """The semantic-ID encoder-decoder's fit, decoder and save format, with `LigerNet` as the network,
    three rankings and selection on the dense ranking."""

    name: ClassVar[str] = "liger"
    decode_keys: ClassVar[tuple[str, ...]] = (*Seq2SeqBackend.decode_keys, "ranking", "candidates", "cold_start")
    Config = LigerConfig

    def __init__(self, cfg: LigerConfig | None = None):
        super().__init__(cfg)
        self.features_: torch.Tensor | None = None  # [N, D] item vectors for the next `fit`'s net
        self.trained_: torch.Tensor | None = None  # [N] items seen in training, for the next `fit`'s net

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {**super().test_params(), "beam_width": 6, "candidates": 8, "tower": [16]}

    def make_net(self, codes: torch.Tensor, sizes: tuple[int, ...], trie: PrefixTrie,
                 saved: dict[str, torch.Tensor] | None) -> LigerNet:
        if saved is not None:
            if "trained_items" not in saved:
                raise GenrecError("this liger model was saved by a version with the cosine dense head; train it "
                                  "again")
            return LigerNet(self.cfg, codes, sizes, saved["item_features"], saved["trained_items"], trie)
        if self.features_ is None or self.trained_ is None:
            raise GenrecError("liger builds its network from item features: call fit, or load a saved model")
        return LigerNet(self.cfg, codes, sizes, self.features_, self.trained_, trie)

    def prepare(self, data: SplitData) -> None:
        self.features_ = torch.from_numpy(item_features(data, self.cfg.sid_features, self.cfg.sid_seed))
        self.trained_ = torch.from_numpy(data.train_counts() > 0)

    def train_module(self, examples: Trainable, data: SplitData, cfg: TrainConfig,
                     workdir: Path | None) -> FitReport:
        """The shared loop, validated on the dense ranking (`select_on = "dense"`) as the public code
        selects its checkpoint, or on the configured ranking."""
        if self.cfg.select_on == "ranking":
            return super().train_module(examples, data, cfg, workdir)
        configured, dense = self.cfg, dataclasses.replace(self.cfg, ranking="dense")

        def validate() -> float:
            self.cfg = dense
            try:
                return validation_ndcg(self, data, cfg)
            finally:
                self.cfg = configured

        return train(examples, cfg, self.device_, validate, workdir, label=self.name)

    def fit_facts(self, data: SplitData) -> dict[str, Any]:
        net = self.fitted()
        self.features_ = self.trained_ = None  # the net holds them now
        return {
            "dense_weight": self.cfg.dense_weight,
            "temperature": self.cfg.temperature,
            "tower": list(self.cfg.tower),
            "ranking": self.cfg.ranking,
            "candidates": self.cfg.candidates,
            "cold_start": self.cfg.cold_start,
            "select_on": self.cfg.select_on,
            "dense_features": "+".join(resolve_spec(data, self.cfg.sid_features)),
            "dense_dim": int(net.item_features.shape[1]),
            "cold_items": int((~net.trained_items).sum()),
        }

    def departures(self) -> list[str]:
        """TIGER's departures, then the ways the dense side differs from the public LIGER code."""
        return [*super().departures(),
                f"item tower input: item_features({self.cfg.sid_features!r}) vectors (LIGER: 768-d text "
                "embeddings of each item)",
                "encoder input: no learned item-position or semantic-position embeddings (LIGER adds both; "
                "the T5's relative position bias remains)"]

    def rank_decoder(self, decoder: FastDecoder, b: int, k: int) -> Ranked:
        if self.cfg.ranking == "generative":
            return super().rank_decoder(decoder, b, k)
        scores_bn = self.fitted().dense_logits(decoder.enc_last)
        if self.cfg.ranking == "hybrid":
            scores_bn = scores_bn.masked_fill(~self._candidates(decoder, b, k), float("-inf"))
        return dense_topk(scores_bn, k)

    def _candidates(self, decoder: FastDecoder, b: int, k: int) -> torch.Tensor:
        """[B, N] mask of the hybrid's candidates: the beam's items, and the cold-start items."""
        width = max(self.cfg.candidates, k, self.cfg.beam_width)
        items_bw = constrained_beam_search(decoder.level_step, self.trie_, b, beam=width, k=width).items
        net = self.fitted()
        mask = torch.zeros(b, len(net.trained_items) + 1, dtype=torch.bool, device=items_bw.device)
        mask.scatter_(1, items_bw.masked_fill(items_bw < 0, mask.shape[1] - 1), True)  # -1 -> a spare column
        mask = mask[:, :-1]
        return mask | ~net.trained_items[None, :] if self.cfg.cold_start else mask


def dense_topk(scores_bn: torch.Tensor, k: int) -> Ranked:
    """`topk_stable`; a -inf score (not a candidate) is item -1, and lists are padded with -1 / -inf
    past the catalogue."""
    ranked = topk_stable(scores_bn, min(k, scores_bn.shape[1]))
    items, scores = ranked.items.masked_fill(ranked.scores == float("-inf"), -1), ranked.scores
    pad = k - items.shape[1]
    if pad > 0:
        items = torch.cat([items, items.new_full((len(items), pad), -1)], dim=1)
        scores = torch.cat([scores, scores.new_full((len(scores), pad), float("-inf"))], dim=1)
    return Ranked(items=items.contiguous(), scores=scores.contiguous())
