"""TIGER (Rajput et al., "Recommender Systems with Generative Retrieval", NeurIPS 2023): a T5
encoder-decoder that reads the semantic IDs of a user's history and generates the next item's
semantic ID, decoded by trie-constrained beam search.

The architecture, its switches and its decoder are `genrec_bench.nn.seq2seq`'s; this module names
the backend and its `[model]` keys. The model card (README.md beside this file) lists where a run
departs from the paper and what each departure was measured to cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from genrec_bench.nn.seq2seq import Seq2SeqBackend, Seq2SeqConfig


@dataclass(frozen=True)
class TigerConfig(Seq2SeqConfig):
    """`[model]` keys of TIGER: the semantic-ID encoder-decoder's."""


class Tiger(Seq2SeqBackend):
    name: ClassVar[str] = "tiger"
    Config = TigerConfig
