"""BERT4Rec: see `model.py` and the model card README.md beside it."""

from genrec_bench.baselines.bert4rec.model import BERT4Rec, BERT4RecConfig

__all__ = ["BERT4Rec", "BERT4RecConfig"]
