"""Named datasets: where their files live and which metadata comes with them.

`beauty` is embedded in the package so `make bench` works anywhere; the others are read from a
data directory (`--data-dir`, `GENREC_BENCH_DATA`, or `../shared/data` when it exists).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from genrec_bench.data.loaders import (
    Interactions,
    ItemMeta,
    load_interactions,
    read_item2attributes,
    read_recbole_items,
    read_semantic_ids,
    read_unisrec_text,
    read_yelp_items,
)
from genrec_bench.errors import GenrecError, did_you_mean


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    file: str  # relative to the data directory
    fmt: str
    description: str
    attributes: str | None = None  # S3-Rec item2attributes.json
    yelp_items: str | None = None
    recbole_items: str | None = None
    unisrec_text: tuple[str, str] | None = None  # (.text, .item2index)
    semantic_ids: str | None = None  # LETTER precomputed ids
    semantic_id_offset: int = 0  # raw id = LETTER key + offset
    embedded: bool = False


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("beauty", "Beauty.txt", "seq", "Amazon Beauty 2014, 5-core (TIGER benchmark); embedded",
                    attributes="Beauty_item2attributes.json", semantic_ids="Beauty_letter_semantic_ids.json",
                    semantic_id_offset=1, embedded=True),
        DatasetSpec("sports", "amazon2014/Sports_and_Outdoors.txt", "seq", "Amazon Sports & Outdoors 2014",
                    attributes="amazon2014/Sports_and_Outdoors_item2attributes.json"),
        DatasetSpec("toys", "amazon2014/Toys_and_Games.txt", "seq", "Amazon Toys & Games 2014",
                    attributes="amazon2014/Toys_and_Games_item2attributes.json"),
        DatasetSpec("instruments", "amazon2018/Instruments.txt", "seq", "Amazon Instruments 2018 (MindRec)",
                    semantic_ids="amazon2018/Instruments_letter_semantic_ids.json"),
        DatasetSpec("arts", "amazon2018/Arts.txt", "seq", "Amazon Arts 2018 (MindRec)",
                    semantic_ids="amazon2018/Arts_letter_semantic_ids.json"),
        DatasetSpec("games", "amazon2018/Games.txt", "seq", "Amazon Games 2018 (MindRec)",
                    semantic_ids="amazon2018/Games_letter_semantic_ids.json"),
        DatasetSpec("yelp", "yelp/Yelp.txt", "seq", "Yelp (S3-Rec preprocessing), business names + categories",
                    attributes="yelp/Yelp_item2attributes.json", yelp_items="yelp/Yelp.item.json",
                    semantic_ids="yelp/Yelp_letter_semantic_ids.json", semantic_id_offset=1),
        DatasetSpec("lastfm", "lastfm/LastFM.txt", "seq", "LastFM (S3-Rec preprocessing), tags",
                    attributes="lastfm/LastFM_item2attributes.json"),
        DatasetSpec("ml-100k", "ml-100k/ml-100k.inter", "atomic", "MovieLens 100K, titles + genres",
                    recbole_items="ml-100k/ml-100k.item"),
        DatasetSpec("scientific", "scientific/Scientific.test.inter", "unisrec",
                    "Amazon Industrial & Scientific (UniSRec), item text",
                    unisrec_text=("scientific/Scientific.text", "scientific/Scientific.item2index")),
    )
}


def default_data_dir() -> Path | None:
    """`GENREC_BENCH_DATA`, else `../shared/data` relative to the working directory when it exists."""
    env = os.environ.get("GENREC_BENCH_DATA")
    if env:
        return Path(env)
    for candidate in (Path.cwd().parent / "shared" / "data", Path(__file__).resolve().parents[3] / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    return None


def embedded_dir() -> Path:
    return Path(str(resources.files("genrec_bench.data.embedded")))


def resolve(name: str, data_dir: Path | None = None) -> tuple[DatasetSpec, Path]:
    """The spec and the directory its relative paths start from."""
    key = name.lower()
    if key not in DATASETS:
        raise GenrecError(f"unknown dataset '{name}'{did_you_mean(key, list(DATASETS))}; "
                          f"see `genrec-bench datasets` or pass --data PATH")
    spec = DATASETS[key]
    if spec.embedded and data_dir is None:
        return spec, embedded_dir()
    root = data_dir or default_data_dir()
    if spec.embedded and (root is None or not (root / spec.file).exists()):
        return spec, embedded_dir()
    if root is None:
        raise GenrecError(f"dataset '{name}' is not embedded; pass --data-dir or set GENREC_BENCH_DATA to the "
                          "folder that holds it (for example ../shared/data)")
    if not (root / spec.file).exists():
        raise GenrecError(f"dataset '{name}' expects {spec.file} under the data directory", path=root)
    return spec, root


def load_dataset(name: str, data_dir: Path | None = None) -> Interactions:
    """Interactions plus every piece of metadata the dataset ships."""
    spec, root = resolve(name, data_dir)
    inter = load_interactions(root / spec.file, spec.fmt)
    meta = ItemMeta()
    if spec.attributes and (root / spec.attributes).exists():
        meta.attributes = read_item2attributes(root / spec.attributes)
    if spec.yelp_items and (root / spec.yelp_items).exists():
        meta.text, meta.categories = read_yelp_items(root / spec.yelp_items)
    if spec.recbole_items and (root / spec.recbole_items).exists():
        meta.text, meta.categories = read_recbole_items(root / spec.recbole_items)
    if spec.unisrec_text:
        text, index = (root / p for p in spec.unisrec_text)
        if text.exists() and index.exists():
            meta.text = read_unisrec_text(text, index)
    if spec.semantic_ids and (root / spec.semantic_ids).exists():
        meta.semantic_ids = read_semantic_ids(root / spec.semantic_ids, spec.semantic_id_offset)
    inter.meta = meta
    return inter


def letter_ids_path(name: str, data_dir: Path | None = None) -> tuple[Path, int] | None:
    """The precomputed LETTER semantic-ID file of a named dataset and its id offset, if any."""
    spec, root = resolve(name, data_dir)
    if spec.semantic_ids and (root / spec.semantic_ids).exists():
        return root / spec.semantic_ids, spec.semantic_id_offset
    return None


def load_letter_ids(name: str, data_dir: Path | None = None) -> dict[str, list[str]] | None:
    found = letter_ids_path(name, data_dir)
    return read_semantic_ids(*found) if found else None


def dataset_rows(data_dir: Path | None = None) -> list[dict[str, object]]:
    """One row per registered dataset for `genrec-bench datasets`."""
    root = data_dir or default_data_dir()
    rows = []
    for spec in DATASETS.values():
        if spec.embedded:
            where, available = "embedded", True
        else:
            available = root is not None and (root / spec.file).exists()
            where = str(root / spec.file) if root is not None else spec.file
        rows.append({"name": spec.name, "format": spec.fmt, "available": available, "path": where,
                     "description": spec.description})
    return rows
