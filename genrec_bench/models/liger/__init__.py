"""LIGER: see `model.py` and the model card README.md beside it."""

from genrec_bench.models.liger.model import RANKINGS, ItemTower, Liger, LigerConfig, LigerNet, dense_topk

__all__ = ["RANKINGS", "ItemTower", "Liger", "LigerConfig", "LigerNet", "dense_topk"]
