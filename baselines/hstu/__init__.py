"""HSTU: see `model.py` and the model card README.md beside it."""

from genrec_bench.baselines.hstu.model import HSTU, HSTUConfig

__all__ = ["HSTU", "HSTUConfig"]
