"""Item-KNN, an example genrec-bench plugin backend (entry point `itemknn`)."""

from genrec_itemknn.model import ItemKNN, ItemKNNConfig

__all__ = ["ItemKNN", "ItemKNNConfig"]
