"""SASRec (Kang & McAuley, ICDM 2018): causal self-attention over the item history, next item at
every step.

Trained with full-softmax cross-entropy over the whole catalogue at every position (not the
paper's one sampled negative with BPR), the stronger and more stable objective in reproductions;
on CPU it costs one [T, d] x [d, N] product per batch. The item embedding is shared with the
output layer. With `repeat_bias` (default) one learned scalar is added to the score of every item
already in the input: without it the shared embedding makes the last input item score high (the
residual stream still carries it), and on data where users never repeat that item wastes rank 1.
The sequence model itself is `genrec_bench.nn.sequence`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from genrec_bench.nn.sequence import SequenceBackend, SequenceConfig


@dataclass(frozen=True)
class SASRecConfig(SequenceConfig):
    """`[model]` keys of SASRec: the sequence model's, at their CPU-sized defaults."""


class SASRec(SequenceBackend):
    name: ClassVar[str] = "sasrec"
    Config = SASRecConfig
