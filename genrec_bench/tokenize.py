"""`genrec-bench tokenize`: write the semantic-ID table (and category paths) a run would build.

A run given the written file through `model.sid_file` / `model.tree_file` uses exactly that
tokenisation on any machine, whatever its floating-point kernels would have built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genrec_bench.backends.base import create_backend
from genrec_bench.config import RunConfig
from genrec_bench.errors import GenrecError
from genrec_bench.items.id_tables import tree_digest, write_code_table, write_sid_table, write_tree_table
from genrec_bench.items.product_quantize import code_collisions, codes_digest
from genrec_bench.items.semantic_ids import format_health
from genrec_bench.pipeline import DataSource, load_split
from genrec_bench.runtime import set_threads


def tokenize(model: str, source: DataSource, cfg: RunConfig, out: Path, tree_out: Path | None = None
             ) -> dict[str, Any]:
    """Build `model`'s tokenisation of the split of `source` as a fit would, and write it to `out`."""
    backend = create_backend(model, cfg.model)
    codes_only = hasattr(backend, "item_codes")  # RPG: unordered codes, one integer per position
    if not codes_only and not hasattr(backend, "semantic_ids"):
        raise GenrecError(f"model '{model}' has no semantic ids to write; tokenize works for tiger, mindrec "
                          "and rpg")
    if tree_out is not None and not hasattr(backend, "category_tree"):
        raise GenrecError(f"model '{model}' has no category tree; --tree-out needs --model mindrec")
    set_threads(cfg.train.num_threads)
    data = load_split(source, cfg)
    if codes_only:
        codes, how = backend.item_codes(data)
        write_code_table(out, data, codes)
        shared = code_collisions(codes)
        return {"dataset": source.name, "fingerprint": data.fingerprint, "items": data.n_items, "out": str(out),
                "semantic_ids": how, "sid_digest": codes_digest(codes), "code_collisions": shared,
                "summary": f"codes ({how}): {codes.shape[1]} per item, {shared} items share their whole code "
                           "tuple with another"}
    ids = backend.semantic_ids(data)
    write_sid_table(out, data, ids)
    info: dict[str, Any] = {"dataset": source.name, "fingerprint": data.fingerprint, "items": data.n_items,
                            "out": str(out), "semantic_ids": ids.source, "sid_digest": ids.digest,
                            "sid_sizes": list(ids.sizes), "sid_health": ids.health, "summary": format_health(ids)}
    if tree_out is not None:
        tree = backend.category_tree(data)
        write_tree_table(tree_out, data, tree)
        info.update(tree_out=str(tree_out), tree_source=tree.source, tree_digest=tree_digest(tree),
                    tree_summary=tree.format_stats())
    return info
