"""Popularity: see `model.py` and the model card README.md beside it."""

from genrec_bench.baselines.popularity.model import Popularity, PopularityConfig

__all__ = ["Popularity", "PopularityConfig"]
