"""Readers for interaction files and item metadata, all into one polars shape.

Every loader returns `Interactions`: a frame with columns `user_id` (str), `item_id` (str),
`timestamp` (float64) and `row` (file order, for stable tie-breaking), plus an `ItemMeta`
keyed by raw item id. Malformed input raises `GenrecError` naming the file, the line and what was
expected; a first fast polars pass does the work and a slow line scan runs only to explain a failure.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from genrec_bench.errors import GenrecError

FORMATS = ("seq", "csv", "tsv", "parquet", "atomic", "unisrec")
REQUIRED = ("user_id", "item_id", "timestamp")
PREFIX_REQUIRED = ("user_id", "item_id_list", "item_id")  # UniSRec rows: (user, history, target)


@dataclass
class ItemMeta:
    """Item side information keyed by raw item id; any field may be empty for a dataset."""

    text: dict[str, str] = field(default_factory=dict)
    categories: dict[str, list[str]] = field(default_factory=dict)
    attributes: dict[str, list[int]] = field(default_factory=dict)
    semantic_ids: dict[str, list[str]] = field(default_factory=dict)  # precomputed (LETTER) code tuples


@dataclass
class Interactions:
    frame: pl.DataFrame  # user_id: str, item_id: str, timestamp: f64, row: u32
    meta: ItemMeta
    source: Path


def infer_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".txt"):
        return "seq"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(".tsv"):
        return "tsv"
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".inter"):
        return "atomic"
    raise GenrecError(
        f"cannot infer the format from the file name; pass --data-format one of {', '.join(FORMATS)}", path=path
    )


def load_interactions(path: Path, fmt: str | None = None) -> Interactions:
    """Read interactions in `fmt` (inferred from the extension when None)."""
    path = Path(path)
    if not path.exists():
        raise GenrecError("file not found", path=path)
    if path.is_dir():
        raise GenrecError("expected a file, got a directory", path=path)
    fmt = fmt or infer_format(path)
    if fmt not in FORMATS:
        raise GenrecError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}", path=path)
    if path.stat().st_size == 0:
        raise GenrecError("file is empty; expected interactions", path=path)
    reader = {
        "seq": _read_seq,
        "csv": lambda p: _read_table(p, ","),
        "tsv": lambda p: _read_table(p, "\t"),
        "parquet": _read_parquet,
        "atomic": _read_atomic,
        "unisrec": _read_unisrec,
    }[fmt]
    frame = reader(path)
    if frame.height == 0:
        raise GenrecError("file has a header but no interactions", path=path)
    return Interactions(frame=frame, meta=ItemMeta(), source=path)


# --- sequence files: `user item1 item2 ...` -------------------------------------------------------

def _read_seq(path: Path) -> pl.DataFrame:
    _check_utf8(path)
    try:
        lines = pl.read_csv(
            path, has_header=False, separator="\x1f", quote_char=None, new_columns=["line"],
            schema_overrides={"line": pl.String},
        )
    except pl.exceptions.PolarsError as exc:
        raise GenrecError(f"cannot read as a sequence file ({exc.__class__.__name__})", path=path) from None
    tokens = (
        lines.with_row_index("lineno", offset=1)
        .with_columns(pl.col("line").str.strip_chars().str.split(by=" ").list.eval(pl.element().filter(
            pl.element() != "")).alias("tok"))
        .select("lineno", "tok")
    )
    short = tokens.filter(pl.col("tok").list.len() < 2)
    if short.height:
        lineno = int(short["lineno"][0])
        raise GenrecError("expected 'user item1 item2 ...' (a user id and at least one item)", path=path,
                          line=lineno)
    frame = (
        tokens.with_columns(pl.col("tok").list.first().alias("user_id"), pl.col("tok").list.slice(1).alias("item_id"))
        .drop("tok")
        .explode("item_id")
        .with_row_index("row")
        .with_columns(pl.col("row").cast(pl.Float64).alias("timestamp"))
        .select("user_id", "item_id", "timestamp", "row")
    )
    return frame


# --- tables: CSV / TSV / Parquet / RecBole atomic ------------------------------------------------

def _read_table(path: Path, sep: str) -> pl.DataFrame:
    _check_utf8(path)
    header = _first_line(path).split(sep)
    _check_header(path, header)
    try:
        raw = pl.read_csv(path, separator=sep, infer_schema=False, quote_char='"')
    except pl.exceptions.PolarsError:
        _explain_bad_rows(path, sep, len(header))
        raise GenrecError("cannot parse the file as a table", path=path) from None
    _check_short_rows(raw, path, sep, len(header))
    return _normalise(raw, path, line_offset=2)


def _read_atomic(path: Path) -> pl.DataFrame:
    """RecBole atomic `.inter`: tab-separated, header fields typed as `name:type`."""
    _check_utf8(path)
    header = _first_line(path).split("\t")
    names = [h.split(":", 1)[0] for h in header]
    _check_header(path, names, PREFIX_REQUIRED if "item_id_list" in names else REQUIRED)
    try:
        raw = pl.read_csv(path, separator="\t", infer_schema=False, quote_char=None, new_columns=names,
                          has_header=True)
    except pl.exceptions.PolarsError:
        _explain_bad_rows(path, "\t", len(header))
        raise GenrecError("cannot parse the file as a RecBole atomic file", path=path) from None
    _check_short_rows(raw, path, "\t", len(header))
    if "item_id_list" in raw.columns:
        return _sequences_from_prefix_rows(raw, path)
    return _normalise(raw, path, line_offset=2)


def _read_unisrec(path: Path) -> pl.DataFrame:
    return _read_atomic(path)


def _sequences_from_prefix_rows(raw: pl.DataFrame, path: Path) -> pl.DataFrame:
    """UniSRec rows `(user, history, target)`: keep each user's longest row as the full sequence."""
    seqs = (
        raw.with_row_index("lineno", offset=2)
        .with_columns(pl.concat_list(pl.col("item_id_list").str.split(" "), pl.col("item_id")).alias("seq"))
        .with_columns(pl.col("seq").list.len().alias("n"))
        .sort(["n", "lineno"], descending=[True, False])
        .unique("user_id", keep="first", maintain_order=True)
        .sort("lineno")
        .select("user_id", pl.col("seq").alias("item_id"))
        .explode("item_id")
        .with_row_index("row")
    )
    return seqs.with_columns(pl.col("row").cast(pl.Float64).alias("timestamp")).select(
        "user_id", "item_id", "timestamp", "row")


def _read_parquet(path: Path) -> pl.DataFrame:
    try:
        raw = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise GenrecError(f"not a readable Parquet file ({exc.__class__.__name__})", path=path) from None
    _check_header(path, raw.columns)
    for col in ("user_id", "item_id"):
        dtype = raw.schema[col]
        if not (dtype == pl.String or dtype.is_integer()):
            raise GenrecError(f"column '{col}' must hold strings or integers, found {dtype}", path=path)
    raw = raw.with_columns(pl.col(c).cast(pl.String) for c in raw.columns)
    return _normalise(raw, path, line_offset=0)


def _normalise(raw: pl.DataFrame, path: Path, line_offset: int) -> pl.DataFrame:
    """Validate ids and timestamps of an all-string frame and convert to the common schema."""
    frame = raw.with_row_index("row").select(
        "row",
        pl.col("user_id").str.strip_chars(),
        pl.col("item_id").str.strip_chars(),
        pl.col("timestamp").str.strip_chars().alias("ts_raw"),
    )
    for col in ("user_id", "item_id"):
        bad = frame.filter(pl.col(col).is_null() | (pl.col(col) == ""))
        if bad.height:
            what = "row" if line_offset == 0 else "line"
            raise GenrecError(f"empty {col}; expected a string or integer id (first bad {what})", path=path,
                              line=int(bad["row"][0]) + line_offset)
    frame = frame.with_columns(pl.col("ts_raw").cast(pl.Float64, strict=False).alias("timestamp"))
    bad = frame.filter(pl.col("timestamp").is_null() | pl.col("timestamp").is_nan())
    if bad.height:
        raise GenrecError(f"timestamp {bad['ts_raw'][0]!r} is not a number", path=path,
                          line=int(bad["row"][0]) + line_offset)
    bad = frame.filter(pl.col("timestamp") < 0)
    if bad.height:
        raise GenrecError(f"timestamp {bad['ts_raw'][0]} is negative; expected seconds >= 0", path=path,
                          line=int(bad["row"][0]) + line_offset)
    return frame.select("user_id", "item_id", "timestamp", "row")


def _check_header(path: Path, columns: list[str], required: tuple[str, ...] = REQUIRED) -> None:
    seen: set[str] = set()
    for col in columns:
        if col in seen:
            raise GenrecError(f"duplicated column '{col}' in the header", path=path, line=1)
        seen.add(col)
    missing = [c for c in required if c not in seen]
    if missing:
        raise GenrecError(
            f"missing column(s) {', '.join(missing)}; expected a header with {', '.join(required)} "
            f"(found: {', '.join(columns) or 'nothing'})", path=path, line=1,
        )


def _first_line(path: Path) -> str:
    with path.open(encoding="utf-8", newline="") as fh:
        return fh.readline().rstrip("\r\n")


def _check_utf8(path: Path) -> None:
    """Name the first line that is not UTF-8; the fast pass decodes in blocks, the slow one runs on error."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 24), b""):
                decoder.decode(block)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        with path.open("rb") as fh:
            for lineno, line in enumerate(fh, start=1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise GenrecError(f"invalid UTF-8 byte 0x{line[exc.start]:02x}; expected UTF-8 text",
                                      path=path, line=lineno) from None


def _check_short_rows(raw: pl.DataFrame, path: Path, sep: str, width: int) -> None:
    """Polars pads a row with too few fields with nulls; name it instead of blaming a null value."""
    cols = [c for c in (*REQUIRED, "item_id_list") if c in raw.columns]
    if raw.select(pl.any_horizontal(pl.col(c).is_null() for c in cols)).to_series().any():
        _explain_bad_rows(path, sep, width)


def _explain_bad_rows(path: Path, sep: str, width: int) -> None:
    """Slow path, run only after polars failed: name the first row with the wrong field count."""
    with path.open(encoding="utf-8", newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh, delimiter=sep), start=1):
            if row and len(row) != width:
                raise GenrecError(f"expected {width} fields, found {len(row)}", path=path, line=lineno)


# --- item metadata -------------------------------------------------------------------------------

def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GenrecError("metadata file not found", path=path) from None
    except json.JSONDecodeError as exc:
        raise GenrecError(f"invalid JSON: {exc.msg}", path=path, line=exc.lineno) from None
    except UnicodeDecodeError:
        raise GenrecError("metadata file is not UTF-8 text", path=path) from None


def read_item2attributes(path: Path) -> dict[str, list[int]]:
    """S3-Rec `{"item": [attribute ids]}`: anonymous category-path elements and brand."""
    data = _read_json(path)
    if not isinstance(data, dict):
        raise GenrecError("expected a JSON object {item: [attribute ids]}", path=path)
    out: dict[str, list[int]] = {}
    for item, attrs in data.items():
        if not isinstance(attrs, list) or not all(isinstance(a, int) for a in attrs):
            raise GenrecError(f"item {item!r}: expected a list of integer attribute ids", path=path)
        out[str(item)] = attrs
    return out


def read_yelp_items(path: Path, id_offset: int = 1) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Yelp `{"0": {"title", "description"}}`; raw id = JSON key + `id_offset` (LETTER is 0-based)."""
    data = _read_json(path)
    if not isinstance(data, dict):
        raise GenrecError("expected a JSON object {item: {title, description}}", path=path)
    text, cats = {}, {}
    for key, rec in data.items():
        raw = str(int(key) + id_offset)
        title = str(rec.get("title", "")).strip()
        desc = [c.strip() for c in str(rec.get("description", "")).split(",") if c.strip()]
        text[raw] = ". ".join(x for x in (title, ", ".join(desc)) if x)
        cats[raw] = desc
    return text, cats


def read_recbole_items(path: Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    """RecBole `.item` (MovieLens): title, year and genres (`class`) per item."""
    _check_utf8(path)
    frame = pl.read_csv(path, separator="\t", infer_schema=False, quote_char=None)
    frame.columns = [c.split(":", 1)[0] for c in frame.columns]
    if "item_id" not in frame.columns:
        raise GenrecError("missing column item_id", path=path, line=1)
    text, cats = {}, {}
    for row in frame.iter_rows(named=True):
        genres = (row.get("class") or "").split()
        title = row.get("movie_title") or ""
        text[row["item_id"]] = ". ".join(x for x in (title, row.get("release_year") or "", " ".join(genres)) if x)
        cats[row["item_id"]] = genres
    return text, cats


def read_unisrec_text(text_path: Path, index_path: Path) -> dict[str, str]:
    """UniSRec `.text` (ASIN -> text) joined with `.item2index` (ASIN -> integer id)."""
    _check_utf8(text_path)
    texts = {}
    with text_path.open(encoding="utf-8") as fh:
        next(fh, None)
        for line in fh:
            asin, _, body = line.rstrip("\n").partition("\t")
            texts[asin] = body
    out = {}
    for line in io.StringIO(index_path.read_text(encoding="utf-8")):
        parts = line.split()
        if len(parts) == 2 and parts[0] in texts:
            out[parts[1]] = texts[parts[0]]
    return out


def read_semantic_ids(path: Path, id_offset: int = 0) -> dict[str, list[str]]:
    """LETTER-style `{"0": ["<a_1>", "<b_2>", ...]}`; raw id = key + `id_offset` (any key when the offset is 0)."""
    data = _read_json(path)
    if not isinstance(data, dict):
        raise GenrecError("expected a JSON object {item: [code tokens]}", path=path)
    out = {}
    for key, codes in data.items():
        if not isinstance(codes, list) or not codes or not all(isinstance(c, str) for c in codes):
            raise GenrecError(f"item {key!r}: expected a non-empty list of code strings", path=path)
        try:
            raw = str(int(key) + id_offset) if id_offset else key
        except ValueError:
            raise GenrecError(f"item key {key!r} is not an integer", path=path) from None
        out[raw] = codes
    return out
