"""MindRec: see `model.py` and the model card README.md beside it."""

from genrec_bench.models.mindrec.model import MindRec, MindRecConfig, MindRecNet

__all__ = ["MindRec", "MindRecConfig", "MindRecNet"]
