"""TIGER: see `model.py` and the model card README.md beside it."""

from genrec_bench.models.tiger.model import Tiger, TigerConfig

__all__ = ["Tiger", "TigerConfig"]
