"""RPG: see `model.py` and the model card README.md beside it."""

from genrec_bench.models.rpg.model import RPG, CodeWindows, RPGConfig, RPGModule, graph_search, item_graph

__all__ = ["RPG", "CodeWindows", "RPGConfig", "RPGModule", "graph_search", "item_graph"]
