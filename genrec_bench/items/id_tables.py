"""Semantic-ID tables and category paths as files, so a tokenisation is an artifact, not a rebuild.

k-means and SVD outcomes depend on the processor's floating-point kernels, so the same data and
seed give different ids on an AVX-512 Intel and an AVX2 AMD machine. A table written once by
`genrec-bench tokenize` and read back with `model.sid_file` (and `model.tree_file` for MindRec)
gives every machine the same ids; its digest in each run record says which table a row used.

Both files are JSON objects keyed by the raw item id. A semantic-ID table uses the layout of
LETTER's shipped files, one `<level-letter>_<code>` token per level:
`{"1": ["<a_183>", "<b_70>", "<c_232>", "<d_6>"], ...}`. A category-path file lists node names
coarse to fine, `<none>` padding a short path: `{"1": ["Makeup", "Face"], ...}`. A code table
(RPG's unordered codes, one integer per position) lists the codes: `{"1": [12, 255, 3, ...], ...}`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from genrec_bench.data.loaders import read_semantic_ids
from genrec_bench.data.split import SplitData
from genrec_bench.errors import GenrecError
from genrec_bench.items.category_tree import NONE_NAME, CategoryTree, assemble
from genrec_bench.items.semantic_ids import SemanticIds, dedup_level, health_report, letter_tokens, parse_letter
from genrec_bench.runtime import atomic_write_bytes

TABLES_DIR = Path(__file__).resolve().parent.parent / "data" / "tables"


def resolve_table(name: str) -> Path:
    """`name` as a path if it exists, else a table shipped in the package (`genrec-bench tokenize` output)."""
    path = Path(name).expanduser()
    if path.exists():
        return path
    shipped = TABLES_DIR / name
    if shipped.exists():
        return shipped
    have = ", ".join(sorted(p.name for p in TABLES_DIR.glob("*.json"))) or "none"
    raise GenrecError(f"table file {name!r} not found (neither a path nor a shipped table; shipped: {have})")


def tree_digest(tree: CategoryTree) -> str | None:
    """Content hash of every item's node path; None when there is no tree."""
    if tree.depth == 0:
        return None
    return hashlib.sha256(tree.paths.to(torch.int64).numpy().tobytes()).hexdigest()[:12]


def _read_json(path: Path, what: str) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise GenrecError(f"cannot read {what}: {exc}", path=path) from None


def _write(path: Path, table: dict[str, list[str]]) -> None:
    # One item per line: diffs of a regenerated table stay readable, and the file stays small.
    body = ",\n".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in table.items())
    atomic_write_bytes(path, ("{\n" + body + "\n}\n").encode())


def write_sid_table(path: Path, data: SplitData, ids: SemanticIds) -> None:
    """Write `ids` (de-dup level included) keyed by `data`'s raw item ids, in LETTER's layout."""
    tokens = letter_tokens(ids.codes.numpy())
    _write(path, {str(raw): row for raw, row in zip(data.item_ids.tolist(), tokens, strict=True)})


def _aligned(table: dict[str, list[str]], data: SplitData, path: Path, what: str) -> list[list[str]]:
    raw_ids = [str(r) for r in data.item_ids.tolist()]
    missing = [r for r in raw_ids if r not in table]
    if missing:
        raise GenrecError(f"{what} miss {len(missing)} of the split's {len(raw_ids)} items "
                          f"(first: {', '.join(missing[:5])}); was it written for another dataset or split?",
                          path=path)
    return [table[r] for r in raw_ids]


def read_sid_table(name: str, data: SplitData) -> SemanticIds:
    """The semantic ids of `data`'s items from a table file.

    A table whose rows are all distinct is used exactly as written (its last level is read as the
    de-dup level), so a table exported by `tokenize` reproduces the ids and digest it was built
    with. A table with shared rows (LETTER's) gets a de-dup level, as `sid_method = "letter"` does.
    """
    path = resolve_table(name)
    rows = _aligned(read_semantic_ids(path), data, path, "semantic-id table")
    codes = parse_letter(rows, [str(r) for r in data.item_ids.tolist()], f"table {path.name}")
    sizes = tuple(int(c) + 1 for c in codes.max(axis=0))
    if len(np.unique(codes, axis=0)) == len(codes):
        health = health_report(codes[:, :-1], sizes[:-1]) if codes.shape[1] > 1 else health_report(codes, sizes)
        return SemanticIds(torch.from_numpy(codes), sizes, health, f"file({path.name})")
    full, dedup_size = dedup_level(torch.from_numpy(codes))
    return SemanticIds(full, (*sizes, dedup_size), health_report(codes, sizes), f"file({path.name})")


def write_code_table(path: Path, data: SplitData, codes: np.ndarray) -> None:
    """Write every item's codes [N, M] (one integer per position) keyed by `data`'s raw item ids."""
    _write(path, {str(raw): row for raw, row in zip(data.item_ids.tolist(), codes.tolist(), strict=True)})


def read_code_table(name: str, data: SplitData, n_codes: int, n_sub: int) -> np.ndarray:
    """`data`'s item codes [N, n_codes] int64 from a code table; each code must lie in [0, n_sub)."""
    path = resolve_table(name)
    table = _read_json(path, "the code table")
    if not isinstance(table, dict):
        raise GenrecError("a code table is a JSON object: raw item id -> list of integer codes", path=path)
    rows = _aligned(table, data, path, "code table")
    bad = next((i for i, row in enumerate(rows) if not (isinstance(row, list) and len(row) == n_codes and all(
        isinstance(c, int) and not isinstance(c, bool) and 0 <= c < n_sub for c in row))), None)
    if bad is not None:
        raise GenrecError(f"item {data.item_ids[bad]!r}: expected {n_codes} integer codes in [0, {n_sub}) "
                          f"(model.codes, model.code_bits), got {rows[bad]!r}", path=path)
    return np.asarray(rows, dtype=np.int64).reshape(len(rows), n_codes)


def write_tree_table(path: Path, data: SplitData, tree: CategoryTree) -> None:
    """Write every item's category path as node names, coarse to fine."""
    if tree.depth == 0:
        raise GenrecError("the category tree is empty (tree source 'none'); there are no paths to write")
    names = np.stack([np.array(tree.names[d], dtype=object)[tree.paths[:, d].numpy()] for d in range(tree.depth)],
                     axis=1)
    _write(path, {str(raw): list(row) for raw, row in zip(data.item_ids.tolist(), names.tolist(), strict=True)})


def read_tree_table(name: str, data: SplitData) -> CategoryTree:
    """The category tree given by a path file; node numbering is a function of the names alone
    (`assemble`), so a file written from a built tree reads back as that same tree."""
    path = resolve_table(name)
    table = _read_json(path, "category paths")
    if not isinstance(table, dict) or not all(isinstance(v, list) and v and all(isinstance(n, str) for n in v)
                                              for v in table.values()):
        raise GenrecError('expected a JSON object {item: ["coarse name", ..., "fine name"]}', path=path)
    rows = _aligned(table, data, path, "category-path file")
    depth = len(rows[0])
    bad = next((i for i, row in enumerate(rows) if len(row) != depth), None)
    if bad is not None:
        raise GenrecError(f"item {str(data.item_ids[bad])!r} has {len(rows[bad])} category names; expected {depth} "
                          f"like the first item (pad short paths with {NONE_NAME!r})", path=path)
    vocab = sorted({n for row in rows for n in row} - {NONE_NAME})
    index = {n: i for i, n in enumerate(vocab)} | {NONE_NAME: -1}
    labels = np.array([[index[n] for n in row] for row in rows], dtype=np.int64)
    padded = labels < 0
    inner_pad = (padded[:, :-1] & ~padded[:, 1:]).any(axis=1)
    if inner_pad.any():
        i = int(np.flatnonzero(inner_pad)[0])
        raise GenrecError(f"item {str(data.item_ids[i])!r}: {NONE_NAME!r} may only pad the end of a path, "
                          f"got {rows[i]}", path=path)
    return assemble(labels, vocab, f"file({path.name})")
