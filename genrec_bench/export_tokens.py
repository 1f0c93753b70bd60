"""`genrec-bench tokenize`: write the semantic-ID table (and category paths) a run would build.

A run given the written file through `model.sid_file` / `model.code_file` / `model.tree_file` uses
exactly that tokenisation on any machine, whatever its floating-point kernels would have built.
Any backend that implements `genrec_bench.items.tokenizer.ItemTokenizer` can be exported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genrec_bench.config import RunConfig
from genrec_bench.errors import GenrecError
from genrec_bench.items.id_tables import tree_digest, write_code_table, write_sid_table, write_tree_table
from genrec_bench.items.product_quantize import code_collisions, codes_digest
from genrec_bench.items.semantic_ids import format_health
from genrec_bench.items.tokenizer import ItemTokenizer
from genrec_bench.models.registry import create_backend
from genrec_bench.pipeline import DataSource, load_split
from genrec_bench.runtime import set_threads, warn_oversubscribed


def tokenize(model: str, source: DataSource, cfg: RunConfig, out: Path, tree_out: Path | None = None
             ) -> dict[str, Any]:
    """Build `model`'s tokenisation of the split of `source` as a fit would, and write it to `out`."""
    backend = create_backend(model, cfg.model)
    if not isinstance(backend, ItemTokenizer):
        raise GenrecError(f"model '{model}' has no semantic ids to write; tokenize works for models that "
                          "tokenise their items (tiger, liger, mindrec, rpg)")
    set_threads(cfg.train.num_threads)
    warn_oversubscribed()  # k-means runs on torch's threads
    data = load_split(source, cfg)
    tokens = backend.item_tokens(data)
    if tree_out is not None and tokens.tree is None:
        raise GenrecError(f"model '{model}' has no category tree; --tree-out needs --model mindrec")
    if tokens.codes is not None:
        write_code_table(out, data, tokens.codes)
        shared = code_collisions(tokens.codes)
        return {"dataset": source.name, "fingerprint": data.fingerprint, "items": data.n_items, "out": str(out),
                "semantic_ids": tokens.codes_source, "sid_digest": codes_digest(tokens.codes),
                "code_collisions": shared,
                "summary": f"codes ({tokens.codes_source}): {tokens.codes.shape[1]} per item, {shared} items share "
                           "their whole code tuple with another"}
    ids = tokens.ids
    if ids is None:
        raise GenrecError(f"model '{model}' returned neither semantic ids nor codes from item_tokens()")
    write_sid_table(out, data, ids)
    info: dict[str, Any] = {"dataset": source.name, "fingerprint": data.fingerprint, "items": data.n_items,
                            "out": str(out), "semantic_ids": ids.source, "sid_digest": ids.digest,
                            "sid_sizes": list(ids.sizes), "sid_health": ids.health, "summary": format_health(ids)}
    if tree_out is not None and tokens.tree is not None:
        write_tree_table(tree_out, data, tokens.tree)
        info.update(tree_out=str(tree_out), tree_source=tokens.tree.source, tree_digest=tree_digest(tokens.tree),
                    tree_summary=tokens.tree.format_stats())
    return info
