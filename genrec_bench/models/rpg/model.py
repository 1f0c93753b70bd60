"""RPG (Hou et al., "Generating Long Semantic IDs in Parallel for Recommendation", KDD 2025).

Tokenisation: each item becomes `codes` unordered codes (default 32) by optimised product
quantisation of its feature vector (faiss OPQ, `items.product_quantize`); no code refines another.
`genrec-bench tokenize -m rpg` writes the codes as a table and `code_file` reads one back, so every
machine trains on the same codes.

Model: the shared causal Transformer over items (`genrec_bench.nn.sequence`, also SASRec's), where
an item's input is the mean of its code embeddings. One residual head per code position maps the last hidden
state to a query; the logits of position m's codes are the cosine similarities of that query with
position m's code embeddings (the input table, shared) divided by `temperature`. Training is the
cross-entropy of every code of the next item, all positions at once. An item's score is the mean of
its codes' log-probabilities, so the catalogue is ranked without any autoregressive step.

Decoding (`decode`):
- `"graph"` (the paper's): beam propagation over an item graph in which each item links to the
  `graph_edges` items whose codes' embeddings are most similar. The beam starts from `beam_width`
  items drawn once with `graph_seed` (the same for every user, so a list never depends on its
  batch), and each of `graph_steps` steps scores the beam and its neighbours and keeps the best
  `beam_width`. Only those candidates are scored, so the cost does not grow with the catalogue.
  The graph is built from the trained embeddings on first use (a pure function of the weights).
- `"exact"`: every item scored, the exact top-k. Model selection during training always uses it
  (the graph belongs to the final weights). `benchmarks/perf/rpg_graph.py` measures the graph's
  recall of the exact top-k and both speeds.

Departures from the official code (facebookresearch/RPG_KDD2025), listed in the run record by
`fit_facts` against `OFFICIAL`: its item vectors are text-embedding-3-large embeddings of the item's
title, price, brand, categories and description, PCA-whitened to 512 dimensions; `features = "auto"`
uses text where a dataset has it and attribute + co-occurrence vectors otherwise (the offline
Amazon 2014 copy has no item text). Its backbone is GPT-2, the same pre-LN layout as the shared
block; positions here count from the right of a left-padded history.
`repeat_bias` (off by default, as in the official code) adds one learned offset per code position to the
codes of the user's history items, the parallel-code form of TIGER's per-level offset: without it
nothing tells the heads that users of a dataset never re-buy, and a history item can take rank 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genrec_bench.api import FitReport, Ranked
from genrec_bench.config import TrainConfig, check_key, is_int
from genrec_bench.data.split import SplitData
from genrec_bench.decoding.repeats import REPEAT_SCALE, repeat_tokens
from genrec_bench.items.features import item_features
from genrec_bench.items.id_tables import read_code_table
from genrec_bench.items.product_quantize import code_collisions, codes_digest, opq_codes, whitened
from genrec_bench.items.tokenizer import ItemTokens
from genrec_bench.nn.sequence import SequenceBackend, SequenceConfig, SequenceModule, Windows, prefix_items
from genrec_bench.ranking import topk_stable

DECODERS = ("graph", "exact")
# The official model settings that do not vary by dataset (genrec/models/RPG/config.yaml); the
# per-dataset ones (codes, temperature, decoding) are in benchmarks/configs/rpg-*.toml.
OFFICIAL: dict[str, Any] = {"hidden": 448, "ffn": 1024, "layers": 2, "heads": 4, "activation": "gelu",
                            "dropout": 0.0, "embedding_dropout": 0.5, "attention_dropout": 0.5,
                            "code_mean_scale": False, "repeat_bias": False, "code_bits": 8, "max_history": 50}


@dataclass(frozen=True)
class RPGConfig(SequenceConfig):
    """The sequence model's keys plus the tokeniser, head and graph search; the repeat offset is per code position."""

    hidden: int = 128
    heads: int = 2
    repeat_bias: bool = False
    codes: int = 32  # codes per item (the semantic ID's length)
    code_bits: int = 8  # 2^bits codes per position
    opq_iters: int = 20  # OPQ rotation rounds (faiss's default is 50; the codes change little after 20)
    features: str = "auto"  # item feature spec, as TIGER's sid_features
    whiten: int = 0  # PCA-whiten the features to this many directions before OPQ (0 = off; official: 512)
    # Scale the code-mean input by sqrt(D * M) (see RPGModule.embed); the official code feeds the plain mean.
    code_mean_scale: bool = True
    code_file: str = ""  # a code table (`genrec-bench tokenize -m rpg`): the same codes on any machine
    temperature: float = 0.07
    decode: str = "graph"
    beam_width: int = 50
    graph_edges: int = 50
    graph_steps: int = 3
    graph_seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_key(is_int(self.whiten) and self.whiten >= 0, "model.whiten", "an integer >= 0 (0 = off)", self.whiten)
        check_key(isinstance(self.code_mean_scale, bool), "model.code_mean_scale", "true or false",
                  self.code_mean_scale)
        for key in ("codes", "beam_width", "graph_edges", "graph_steps", "opq_iters"):
            value = getattr(self, key)
            check_key(is_int(value) and value >= 1, f"model.{key}", "an integer >= 1", value)
        check_key(is_int(self.code_bits) and 1 <= self.code_bits <= 12, "model.code_bits", "an integer in [1, 12]",
               self.code_bits)
        check_key(is_int(self.graph_seed), "model.graph_seed", "an integer", self.graph_seed)
        check_key(isinstance(self.temperature, int | float) and self.temperature > 0, "model.temperature",
               "a number > 0", self.temperature)
        check_key(self.decode in DECODERS, "model.decode", f"one of {', '.join(DECODERS)}", self.decode)
        check_key(isinstance(self.features, str) and bool(self.features), "model.features",
               "a feature spec such as auto, text, attributes+collab", self.features)
        check_key(isinstance(self.code_file, str), "model.code_file", "a path or a shipped table name",
               self.code_file)


class RPGModule(SequenceModule):
    """The shared sequence model with code-mean inputs and one scoring head per code position."""

    def __init__(self, n_items: int, max_len: int, cfg: RPGConfig):
        self.n_codes, self.n_sub = cfg.codes, 1 << cfg.code_bits
        super().__init__(n_items, max_len, cfg)
        self.temperature = cfg.temperature
        self.input_scale = math.sqrt(cfg.hidden * cfg.codes) if cfg.code_mean_scale else 1.0
        # Row n_items (padding) holds token 0; its input is zeroed by the padding mask anyway.
        self.register_buffer("tokens", torch.zeros(n_items + 1, self.n_codes, dtype=torch.long))
        self.head_w = nn.Parameter(torch.randn(self.n_codes, cfg.hidden, cfg.hidden) * 0.02)
        self.head_b = nn.Parameter(torch.zeros(self.n_codes, cfg.hidden))
        if cfg.repeat_bias:
            self.repeat = nn.Parameter(torch.zeros(self.n_codes))

    def make_item_table(self, n_items: int, cfg: SequenceConfig) -> nn.Embedding:
        return nn.Embedding(self.n_codes * self.n_sub, cfg.hidden)  # position m's codes: rows m * n_sub + c

    def set_codes(self, codes_nm: torch.Tensor) -> None:
        """Item codes [N, M] in [0, n_sub) -> flat token ids of the shared code table."""
        offsets = torch.arange(self.n_codes, device=codes_nm.device) * self.n_sub
        self.tokens[: self.n_items] = codes_nm.to(self.tokens) + offsets.to(self.tokens)

    def embed(self, items_bw: torch.Tensor) -> torch.Tensor:
        """The mean of the item's code embeddings, times sqrt(D * M) with `code_mean_scale`. The mean of
        M independent codes is sqrt(M) times shorter than one code, so unscaled it starts sqrt(M)
        times weaker than the position embedding and, at a small learning rate, the cosine head
        gives the table little gradient to grow: the scale makes an item's input as strong as a
        one-row item embedding times sqrt(D)."""
        return self.item(self.tokens[items_bw]).mean(dim=2) * self.input_scale

    def code_logprobs(self, hidden_td: torch.Tensor, seen_tw: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states [T, D] -> log-probabilities [T, M, n_sub] of every position's codes.

        `seen_tw` lists the items in each row's input (pad = n_items); with `repeat_bias` their codes
        get the position's offset. None means no history.
        """
        query = hidden_td[:, None] + F.silu(torch.einsum("td,mde->tme", hidden_td, self.head_w) + self.head_b)
        table = F.normalize(self.item.weight.view(self.n_codes, self.n_sub, -1), dim=2)
        logits = (torch.einsum("tme,mce->tmc", F.normalize(query, dim=2), table) / self.temperature).float()
        if self.repeat is not None and seen_tw is not None:
            logits = logits + REPEAT_SCALE * self.repeat[:, None] * self.seen_codes(seen_tw)
        return logits.log_softmax(dim=2)

    def seen_codes(self, seen_tw: torch.Tensor) -> torch.Tensor:
        """[T, M, n_sub] 1.0 where position m's code belongs to an item of the row's input (pad = n_items)."""
        offsets = torch.arange(self.n_codes, device=seen_tw.device) * self.n_sub
        local_twm = torch.where((seen_tw == self.n_items)[..., None], -1, self.tokens[seen_tw] - offsets)
        # Parallel heads choose every position at once: MindRec's any-order question with nothing committed.
        nothing_committed = torch.full((len(seen_tw), 1, self.n_codes), -1, device=seen_tw.device)
        return repeat_tokens(local_twm, nothing_committed, self.n_sub)[:, 0].float()

    def repeat_offsets(self) -> list[float] | None:
        """The learned offsets, one per code position, in logits (for the run record)."""
        return None if self.repeat is None else [round(REPEAT_SCALE * v, 3) for v in self.repeat.tolist()]

    def item_scores(self, logp_bmc: torch.Tensor, items_bc: torch.Tensor) -> torch.Tensor:
        """Scores [B, C] of candidate items [B, C]: the mean log-probability of their codes."""
        b, c = items_bc.shape
        tokens = self.tokens[items_bc].view(b, c * self.n_codes)
        return logp_bmc.reshape(b, -1).gather(1, tokens).view(b, c, self.n_codes).mean(dim=2)

    def all_scores(self, logp_bmc: torch.Tensor) -> torch.Tensor:
        """Scores [B, N] of the whole catalogue (one position's gather at a time bounds the memory)."""
        flat = logp_bmc.reshape(len(logp_bmc), -1)
        scores = torch.zeros(len(flat), self.n_items, device=flat.device)
        for m in range(self.n_codes):
            scores += flat.index_select(1, self.tokens[: self.n_items, m])
        return scores / self.n_codes

    def item_vectors(self) -> torch.Tensor:
        """[N, M * D]: each item's normalised code embeddings side by side, scaled so that the dot
        product of two items is the mean cosine similarity of their codes position by position."""
        table = F.normalize(self.item.weight, dim=1)
        return table[self.tokens[: self.n_items]].flatten(1) / self.n_codes ** 0.5


def item_graph(vectors_nd: torch.Tensor, edges: int, chunk: int = 1024) -> torch.Tensor:
    """[N, E] neighbours of every item: the `edges` most similar other items (ties: lower index first)."""
    n = len(vectors_nd)
    edges = min(edges, n - 1)
    out = torch.empty(n, edges, dtype=torch.long)
    for start in range(0, n, chunk):
        sim = vectors_nd[start : start + chunk] @ vectors_nd.T
        rows = torch.arange(len(sim))
        sim[rows, rows + start] = -float("inf")
        out[start : start + chunk] = topk_stable(sim, edges).items
    return out


def graph_search(scorer: Callable[[torch.Tensor], torch.Tensor], batch: int, graph_ne: torch.Tensor,
                 start_w: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Beam propagation for `batch` users: (items [B, W], scores [B, W]) best first, W = len(start_w).

    `scorer(items [B, C]) -> scores [B, C]`. Each step scores the beam and the graph neighbours of
    its items, drops repeated candidates and keeps the best W (ties: lower item index first). The
    start holds W distinct items and every step's candidates include the beam, so the beam always
    holds W distinct items: the list is full whenever the catalogue has W items.
    """
    w = len(start_w)
    beam = start_w[None].expand(batch, w)
    for _ in range(steps):
        cand, _ = torch.cat([beam, graph_ne[beam].flatten(1)], dim=1).sort(dim=1)
        repeat = torch.zeros_like(cand, dtype=torch.bool)
        repeat[:, 1:] = cand[:, 1:] == cand[:, :-1]
        scores = scorer(cand).masked_fill(repeat, -float("inf"))
        best = topk_stable(scores, w).items  # candidates are sorted by item, so ties keep the lower index
        beam = cand.gather(1, best)
    scores = scorer(beam)
    order = topk_stable(scores, w).items
    return beam.gather(1, order), scores.gather(1, order)


class CodeWindows(Windows):
    """The shared training windows; the loss is the cross-entropy of all the next item's codes."""

    def loss(self, module: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        m: RPGModule = self.module  # type: ignore[assignment]
        inputs_bw, targets_bw = batch[:, :-1], batch[:, 1:]
        real = inputs_bw != m.n_items
        logp_tmc = m.code_logprobs(module(inputs_bw)[real], prefix_items(inputs_bw, m.n_items)[real])
        target_tm = m.tokens[targets_bw[real]] - torch.arange(m.n_codes, device=batch.device) * m.n_sub
        return F.nll_loss(logp_tmc.flatten(0, 1), target_tm.flatten())


class RPG(SequenceBackend):
    name: ClassVar[str] = "rpg"
    decode_keys: ClassVar[tuple[str, ...]] = ("decode", "beam_width", "graph_edges", "graph_steps", "graph_seed")
    Config = RPGConfig
    Module: ClassVar[type[SequenceModule]] = RPGModule
    loss_name: ClassVar[str] = "parallel_code_ce"

    def __init__(self, cfg: RPGConfig | None = None):
        super().__init__(cfg)
        self._graph: tuple[int, torch.Tensor] | None = None  # (edges, neighbours) of the current weights
        self._exact_only = False

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {"hidden": 16, "layers": 1, "codes": 4, "code_bits": 2, "beam_width": 6, "graph_edges": 3}

    def item_codes(self, data: SplitData) -> tuple[np.ndarray, str]:
        """(codes [N, M], source) of a fit on `data`: read from `code_file`, else OPQ of the feature
        vectors (a k-means outcome, so it can differ between processors; a code table cannot)."""
        cfg: RPGConfig = self.cfg
        if cfg.code_file:
            return read_code_table(cfg.code_file, data, cfg.codes, 1 << cfg.code_bits), f"file({cfg.code_file})"
        feats = item_features(data, cfg.features)
        if cfg.whiten:
            feats = whitened(feats, cfg.whiten)
        codes = opq_codes(feats, cfg.codes, cfg.code_bits, seed=0, threads=torch.get_num_threads(),
                          iters=cfg.opq_iters)
        return codes, f"opq({cfg.features}{', whitened' if cfg.whiten else ''}, {feats.shape[1]} dims)"

    def item_tokens(self, data: SplitData) -> ItemTokens:
        codes, source = self.item_codes(data)
        return ItemTokens(codes=codes, codes_source=source)

    def build_module(self, data: SplitData, max_len: int) -> SequenceModule:
        codes, source = self.item_codes(data)
        self._codes_info = {"codes_source": source, "codes_digest": codes_digest(codes),
                            "code_collisions": code_collisions(codes)}
        module = self.Module(data.n_items, max_len, self.cfg)
        module.set_codes(torch.from_numpy(codes))  # type: ignore[operator]
        return module

    def fit(self, data: SplitData, cfg: TrainConfig, workdir: Path | None = None) -> FitReport:
        self._exact_only, self._graph = True, None  # model selection ranks exactly: the graph is the final weights'
        try:
            return super().fit(data, cfg, workdir)
        finally:
            self._exact_only = False

    def fit_facts(self) -> dict[str, Any]:
        cfg: RPGConfig = self.cfg
        module = self.fitted()
        ours = {**{key: getattr(cfg, key) for key in OFFICIAL}, "ffn": cfg.ffn_width,
                "embedding_dropout": cfg.dropout_of("embedding"), "attention_dropout": cfg.dropout_of("attention"),
                "max_history": module.max_len}
        departures = [f"features={cfg.features}{' whitened' if cfg.whiten else ''} (official: text-embedding-3-large "
                      "of the item text, PCA-512 whitened)"]
        departures += [f"{key}={ours[key]} (official: {value})"
                       for key, value in OFFICIAL.items() if ours[key] != value]
        return {"validation_decode": "exact", **self._codes_info, "departures": departures}

    def examples(self, windows: torch.Tensor, cfg: TrainConfig) -> Windows:
        return CodeWindows(self.fitted(), windows)

    def rank_hidden(self, hidden_bd: torch.Tensor, items_bw: torch.Tensor, k: int) -> Ranked:
        module: RPGModule = self.fitted()  # type: ignore[assignment]
        logp_bmc = module.code_logprobs(hidden_bd, items_bw)
        if self._exact_only or self.cfg.decode == "exact":
            return topk_stable(module.all_scores(logp_bmc), k)
        width = min(max(self.cfg.beam_width, k), module.n_items)
        start = torch.randperm(module.n_items, generator=torch.Generator().manual_seed(self.cfg.graph_seed))
        items, scores = graph_search(partial(module.item_scores, logp_bmc), len(logp_bmc),
                                     self.graph().to(logp_bmc.device), start[:width].to(logp_bmc.device),
                                     self.cfg.graph_steps)
        return Ranked(items[:, :k].contiguous(), scores[:, :k].contiguous())

    def graph(self) -> torch.Tensor:
        """The item graph of the current weights with `graph_edges` neighbours, built once."""
        if self._graph is None or self._graph[0] != self.cfg.graph_edges:
            module: RPGModule = self.fitted()  # type: ignore[assignment]
            with torch.inference_mode():
                self._graph = (self.cfg.graph_edges, item_graph(module.item_vectors().cpu(), self.cfg.graph_edges))
        return self._graph[1]

