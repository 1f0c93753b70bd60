"""SASRec: see `model.py` and the model card README.md beside it."""

from genrec_bench.baselines.sasrec.model import SASRec, SASRecConfig

__all__ = ["SASRec", "SASRecConfig"]
