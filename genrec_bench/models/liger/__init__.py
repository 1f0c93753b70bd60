"""LIGER: see `model.py` and the model card README.md beside it."""

from genrec_bench.models.liger.model import RANKINGS, Liger, LigerConfig, LigerNet, rerank

__all__ = ["RANKINGS", "Liger", "LigerConfig", "LigerNet", "rerank"]
