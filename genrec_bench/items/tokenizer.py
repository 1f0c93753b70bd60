"""Item tokenisation as a declared stage: the `ItemTokenizer` protocol and the one set of
semantic-ID keys every semantic-ID model uses.

A backend that turns items into tokens before training (semantic IDs, parallel codes, category
paths) implements `ItemTokenizer`, so `genrec-bench tokenize` can write exactly the tokens a fit
would build, and a run given that file (`sid_file`, `code_file`, `tree_file`) uses them on any
machine whatever its floating-point kernels would have built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from genrec_bench.config import check_key, is_int
from genrec_bench.data.split import SplitData
from genrec_bench.items.category_tree import CategoryTree
from genrec_bench.items.id_tables import read_sid_table
from genrec_bench.items.semantic_ids import METHODS, SemanticIds, TokenizerConfig, build_semantic_ids


@dataclass(frozen=True)
class ItemTokens:
    """A model's tokenisation of a split's catalogue: semantic IDs (tuples refined level by level)
    or parallel codes (`codes`, with where they came from), and a category tree where it has one."""

    ids: SemanticIds | None = None
    codes: np.ndarray | None = None  # [N, M] unordered codes (RPG)
    codes_source: str = ""
    tree: CategoryTree | None = None


@runtime_checkable
class ItemTokenizer(Protocol):
    """A backend whose items are token tuples built from the data before training."""

    def item_tokens(self, data: SplitData) -> ItemTokens: ...


@dataclass(frozen=True)
class SemanticIdKeys:
    """The `[model]` keys that say how a semantic-ID model's ids are made: built by a quantiser
    from item features (`sid_method` ... `sid_seed`) or read from a table (`sid_file`).

    A config dataclass of a semantic-ID model inherits these, so TIGER, LIGER and MindRec share
    one definition, one set of checks and one way to obtain the ids.
    """

    sid_method: str = "rkmeans"  # rkmeans | rqvae | letter
    sid_features: str = "auto"
    sid_levels: int = 3
    sid_codebook: int = 256
    sid_seed: int = 0
    sid_file: str = ""  # semantic-ID table (`genrec-bench tokenize`); the keys above are then unused

    def __post_init__(self) -> None:
        check_key(self.sid_method in METHODS, "model.sid_method", f"one of {', '.join(METHODS)}", self.sid_method)
        check_key(is_int(self.sid_levels) and self.sid_levels >= 1, "model.sid_levels", "an integer >= 1",
                  self.sid_levels)
        check_key(is_int(self.sid_codebook) and self.sid_codebook >= 2, "model.sid_codebook", "an integer >= 2",
                  self.sid_codebook)
        check_key(is_int(self.sid_seed), "model.sid_seed", "an integer", self.sid_seed)
        check_key(isinstance(self.sid_file, str), "model.sid_file", "a path or a shipped table name", self.sid_file)

    def tokenizer(self) -> TokenizerConfig:
        return TokenizerConfig(method=self.sid_method, features=self.sid_features, levels=self.sid_levels,
                               codebook_size=self.sid_codebook, seed=self.sid_seed)

    def semantic_ids(self, data: SplitData) -> SemanticIds:
        """The ids a fit on `data` uses: read from `sid_file`, else built from the other keys."""
        if self.sid_file:
            return read_sid_table(self.sid_file, data)
        return build_semantic_ids(data, self.tokenizer())
