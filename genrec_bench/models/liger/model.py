"""LIGER (Yang et al., "Unifying Generative and Dense Retrieval for Sequential Recommendation", 2024):
TIGER's encoder-decoder with a dense head, so one model both generates semantic IDs and scores items
by similarity.

Why: in the paper's controlled comparison, dense retrieval (a user vector against every item's
vector) ranks better than semantic-ID generation, which in turn needs no pass over the catalogue.
LIGER trains both on one network: beam search proposes a few candidates and the dense score orders
them, which narrows the gap to dense retrieval as the candidates grow.

Training: TIGER's next-semantic-ID cross-entropy (`Seq2SeqNet.token_loss`) plus `dense_weight` x
mean(1 - cosine(projection, target item's feature vector)). The projection is a linear map (no bias,
so the T5's output scaling does not matter) of the decoder state at the first generation step, the
state that predicts the first code; the feature vectors are the `sid_features` item vectors
(`items.features`), stored as a buffer so a saved model ranks without the data. `dense_weight = 0`
is TIGER's loss exactly (`tests/test_liger.py`).

Ranking (`ranking`, a decode key, so one checkpoint serves all three):
- "hybrid": beam search of width max(candidates, k, beam_width) proposes candidates; they are
  returned in order of dense score (the returned scores). The beam yields min(width, catalogue)
  distinct items, so lists are full whenever the catalogue holds k items.
- "dense": cosine against the whole catalogue (one matmul), top-k.
- "generative": TIGER's beam list and scores, unchanged.
Ties rank the lower item index first in every mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from genrec_bench.api import Ranked
from genrec_bench.config import check_key
from genrec_bench.data.split import SplitData
from genrec_bench.decoding.beam_search import constrained_beam_search
from genrec_bench.decoding.trie import PrefixTrie
from genrec_bench.errors import GenrecError
from genrec_bench.items.features import item_features, resolve_spec
from genrec_bench.nn.seq2seq import FastDecoder, Seq2SeqBackend, Seq2SeqConfig, Seq2SeqNet
from genrec_bench.ranking import topk_stable

RANKINGS = ("hybrid", "dense", "generative")


@dataclass(frozen=True)
class LigerConfig(Seq2SeqConfig):
    """`[model]` keys of LIGER: TIGER's, plus the dense loss weight and the ranking switches."""

    dense_weight: float = 1.0  # weight of the cosine loss; 0 = TIGER's training
    ranking: str = "hybrid"  # hybrid (beam candidates ordered by dense score) | dense | generative
    candidates: int = 20  # beam candidates re-ranked in hybrid mode: max(candidates, k, beam_width)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_key(self.dense_weight >= 0, "model.dense_weight", "a number >= 0 (0 = TIGER's loss)", self.dense_weight)
        check_key(self.ranking in RANKINGS, "model.ranking", f"one of {', '.join(RANKINGS)}", self.ranking)
        check_key(self.candidates >= 1, "model.candidates", "an integer >= 1", self.candidates)
        check_key(self.dense_weight > 0 or self.ranking == "generative", "model.ranking",
               "generative when model.dense_weight = 0 (the dense head is then untrained)", self.ranking)


class LigerNet(Seq2SeqNet):
    """The semantic-ID encoder-decoder plus the dense head and the catalogue's feature vectors (a persistent buffer)."""

    def __init__(self, cfg: LigerConfig, codes: torch.Tensor, sizes: tuple[int, ...], features: torch.Tensor,
                 trie: PrefixTrie | None = None):
        super().__init__(cfg, codes, sizes, trie)
        if features.shape[0] != codes.shape[0]:
            raise GenrecError(f"{features.shape[0]} item feature vectors for {codes.shape[0]} items")
        self.dense_weight = cfg.dense_weight
        # Unit rows (a '+'-joined spec concatenates unit blocks); an item without features stays zero.
        self.register_buffer("item_features", F.normalize(features.float(), dim=1))  # [N, D]
        self.dense = nn.Linear(self.t5.config.d_model, features.shape[1], bias=False)

    def dense_query(self, hidden_nd: torch.Tensor) -> torch.Tensor:
        """Unit-length dense representation [n, D] of first-step decoder states [n, d]."""
        return F.normalize(self.dense(hidden_nd).float(), dim=-1)

    def dense_scores(self, hidden_nd: torch.Tensor) -> torch.Tensor:
        """Cosine [n, N] of each first-step state's projection with every item: one matmul, in float32
        even under autocast (bf16 rounding would tie most of the catalogue)."""
        query_nd = self.dense_query(hidden_nd)
        with torch.autocast(query_nd.device.type, enabled=False):
            return query_nd @ self.item_features.T

    def forward(self, hist_bh: torch.Tensor, target_b: torch.Tensor) -> torch.Tensor:
        """TIGER's cross-entropy + dense_weight * mean cosine distance to the target items' features."""
        loss, hidden_bld = self.token_loss(hist_bh, target_b)
        return loss + self.dense_weight * self.dense_loss(hidden_bld[:, 0], target_b)

    def dense_loss(self, hidden_bd: torch.Tensor, target_b: torch.Tensor) -> torch.Tensor:
        """mean(1 - cosine(projection of first-step states [B, d], target features))."""
        cos_b = (self.dense_query(hidden_bd) * self.item_features[target_b]).sum(dim=-1)
        return (1.0 - cos_b).mean()


def rerank(items_bc: torch.Tensor, scores_bc: torch.Tensor, k: int) -> Ranked:
    """The k best of candidate lists [B, c] by score, ties by lower item index; -1 candidates
    (score -inf) go last and stay -1."""
    if k > items_bc.shape[1]:
        raise ValueError(f"{items_bc.shape[1]} candidates cannot fill a list of {k}")
    missing = items_bc < 0
    scores_bc = scores_bc.float().masked_fill(missing, float("-inf"))
    # Order by item index first, so the stable sort by score breaks ties by the lower index.
    by_item = torch.sort(items_bc.masked_fill(missing, torch.iinfo(items_bc.dtype).max), dim=1, stable=True).indices
    items_bc, scores_bc = items_bc.gather(1, by_item), scores_bc.gather(1, by_item)
    order = torch.sort(scores_bc, dim=1, descending=True, stable=True).indices[:, :k]
    items, scores = items_bc.gather(1, order), scores_bc.gather(1, order)
    return Ranked(items=items.masked_fill(scores == float("-inf"), -1).contiguous(), scores=scores.contiguous())


class Liger(Seq2SeqBackend):
    """The semantic-ID encoder-decoder's fit, decoder and save format, with `LigerNet` as the network
    and three rankings."""

    name: ClassVar[str] = "liger"
    decode_keys: ClassVar[tuple[str, ...]] = (*Seq2SeqBackend.decode_keys, "ranking", "candidates")
    Config = LigerConfig

    def __init__(self, cfg: LigerConfig | None = None):
        super().__init__(cfg)
        self.features_: torch.Tensor | None = None  # [N, D] item vectors for the next `fit`'s net

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {**super().test_params(), "beam_width": 6, "candidates": 8}

    def make_net(self, codes: torch.Tensor, sizes: tuple[int, ...], trie: PrefixTrie,
                 saved: dict[str, torch.Tensor] | None) -> LigerNet:
        features = saved["item_features"] if saved is not None else self.features_
        if features is None:
            raise GenrecError("liger builds its network from item features: call fit, or load a saved model")
        return LigerNet(self.cfg, codes, sizes, features, trie)

    def prepare(self, data: SplitData) -> None:
        self.features_ = torch.from_numpy(item_features(data, self.cfg.sid_features, self.cfg.sid_seed))

    def fit_facts(self, data: SplitData) -> dict[str, Any]:
        self.features_ = None  # the net holds them now
        return {
            "dense_weight": self.cfg.dense_weight,
            "ranking": self.cfg.ranking,
            "candidates": self.cfg.candidates,
            "dense_features": "+".join(resolve_spec(data, self.cfg.sid_features)),
            "dense_dim": int(self.fitted().item_features.shape[1]),
        }

    def departures(self) -> list[str]:
        """TIGER's departures, then the ways the dense side differs from LIGER's setting."""
        return [*super().departures(),
                "encoder input: semantic-ID embeddings only (LIGER paper: plus each item's text representation)",
                f"dense target: item_features({self.cfg.sid_features!r}) vectors (LIGER paper: item text "
                "representations)",
                "dense head: bias-free linear projection of the decoder state that predicts the first code",
                "hybrid candidates: the beam's items only (LIGER paper: plus cold-start items, which a "
                "leave-one-out split does not have)"]

    def rank_decoder(self, decoder: FastDecoder, b: int, k: int) -> Ranked:
        if self.cfg.ranking == "generative":
            return super().rank_decoder(decoder, b, k)
        if self.cfg.ranking == "dense":
            decoder.logits(torch.zeros(b, 1, 0, dtype=torch.long, device=self.device_))  # the first-code state
            return self._dense_topk(self.fitted().dense_scores(decoder.last_hidden), k)
        return self._hybrid(decoder, b, k)
    def _hybrid(self, decoder: FastDecoder, b: int, k: int) -> Ranked:
        """Beam candidates ordered by dense score; the first step's state is kept from the search."""
        first: dict[str, torch.Tensor] = {}

        def step(prefix_bwt: torch.Tensor, parent_bw: torch.Tensor | None) -> torch.Tensor:
            logp_bwv = decoder.level_step(prefix_bwt, parent_bw)
            if prefix_bwt.shape[2] == 0:  # the root step: one beam per user, [B, d]
                first["hidden"] = decoder.last_hidden
            return logp_bwv

        width = max(self.cfg.candidates, k, self.cfg.beam_width)
        out = constrained_beam_search(step, self.trie_, b, beam=width, k=width)
        # The catalogue's scores, then the candidates': the same numbers "dense" ranks by, so a beam
        # that covers the catalogue gives exactly the dense list.
        scores_bw = self.fitted().dense_scores(first["hidden"]).gather(1, out.items.clamp(min=0))
        return rerank(out.items, scores_bw, k)

    @staticmethod
    def _dense_topk(scores_bn: torch.Tensor, k: int) -> Ranked:
        """`topk_stable`, padded with -1 / -inf past the catalogue."""
        ranked = topk_stable(scores_bn, k)
        pad = k - ranked.items.shape[1]
        if pad > 0:
            b = scores_bn.shape[0]
            ranked = Ranked(items=torch.cat([ranked.items, ranked.items.new_full((b, pad), -1)], dim=1),
                            scores=torch.cat([ranked.scores, ranked.scores.new_full((b, pad), float("-inf"))], dim=1))
        return ranked
