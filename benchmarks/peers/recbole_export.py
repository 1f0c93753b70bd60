"""Export genrec-bench's leave-one-out split of a dataset as RecBole atomic files.

    .venv/bin/python benchmarks/peers/recbole_export.py beauty /tmp/recbole-data [--max-users 300]

Writes `OUT_DIR/NAME/NAME.inter` (`user_id:token item_id:token timestamp:float`), `NAME.item`
(`item_id:token`, the whole catalogue) and `NAME.split.json` (fingerprint and counts). Tokens are
genrec-bench's user and item indices, and each user's rows follow genrec-bench's order with
timestamp = position in the sequence (0, 1, ...), so no tie can reorder them. Under RecBole's
`eval_args = {split: {LS: valid_and_test}, order: TO, group_by: user, mode: full}` with no
filtering this is genrec-bench's split: last item = test target, second-to-last = validation
target, the rest training. `recbole_run.py` checks that against the rebuilt split before training.

`--max-users N` keeps genrec-bench's first N users (its `data.max_users`, which is part of the
fingerprint) with the whole catalogue: a small population for smoke tests. RecBole itself is not
needed here; the file is plain genrec-bench.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from genrec_bench.bench import source_for
from genrec_bench.config import DataConfig, RunConfig
from genrec_bench.data.split import SplitData, concat_ranges
from genrec_bench.pipeline import load_split

INTER_HEADER = ("user_id:token", "item_id:token", "timestamp:float")
ITEM_HEADER = ("item_id:token",)


def build_split(dataset: str, data_dir: str | None = None, max_users: int = 0) -> SplitData:
    """genrec-bench's split of `dataset` under the default `[data]` contract (plus `max_users`)."""
    cfg = RunConfig(data=DataConfig(max_users=max_users))
    return load_split(source_for(dataset, data_dir), cfg)


def default_name(dataset: str, max_users: int) -> str:
    """The RecBole dataset name: the genrec-bench name, suffixed with the population when cut."""
    return f"{dataset}-u{max_users}" if max_users else dataset


def positions(data: SplitData) -> tuple[np.ndarray, np.ndarray]:
    """(user index, position in the user's sequence) of every interaction, in `data.items` order."""
    lengths = np.diff(data.offsets)
    return np.repeat(np.arange(data.n_users, dtype=np.int64), lengths), concat_ranges(lengths)


def write_atomic(path: Path, header: tuple[str, ...], columns: list[np.ndarray]) -> None:
    """A tab-separated RecBole atomic file with integer-valued columns."""
    body = np.stack(columns, axis=1) if columns[0].size else np.zeros((0, len(columns)), dtype=np.int64)
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write("\t".join(header) + "\n")
        np.savetxt(fh, body, fmt="%d", delimiter="\t")


def read_inter(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users, items, timestamps) of an exported `.inter` file, as int64 columns."""
    with path.open(encoding="utf-8") as fh:
        header = tuple(fh.readline().rstrip("\n").split("\t"))
    if header != INTER_HEADER:
        raise SystemExit(f"{path}: unexpected header {header}, expected {INTER_HEADER}")
    table = np.loadtxt(path, dtype=np.int64, delimiter="\t", skiprows=1, ndmin=2)
    users, items, stamps = (table[:, i] for i in range(3))
    return users, items, stamps


def check_export(path: Path, data: SplitData) -> None:
    """Read the `.inter` file back and fail unless it holds exactly the split's sequences."""
    users, items, stamps = read_inter(path)
    want_users, want_pos = positions(data)
    ok = (len(users) == len(data.items) and np.array_equal(users, want_users)
          and np.array_equal(items, data.items) and np.array_equal(stamps, want_pos))
    if not ok:
        raise SystemExit(f"{path}: the written interactions differ from genrec-bench's split; not exported")


def sha256_of(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def export(data: SplitData, out_dir: Path, name: str, dataset: str, data_dir: str | None) -> dict[str, Any]:
    """Write `out_dir/name/` (`.inter`, `.item`, `.split.json`) and return the JSON it wrote."""
    folder = Path(out_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    users, pos = positions(data)
    inter = folder / f"{name}.inter"
    write_atomic(inter, INTER_HEADER, [users, data.items, pos])
    write_atomic(folder / f"{name}.item", ITEM_HEADER, [np.arange(data.n_items, dtype=np.int64)])
    check_export(inter, data)
    summary: dict[str, Any] = {
        "name": name, "dataset": dataset, "data_dir": data_dir, "fingerprint": data.fingerprint,
        "users": data.n_users, "items": data.n_items, "interactions": int(len(data.items)),
        "data_config": asdict(data.config),
        "tokens": "user_id / item_id tokens are genrec-bench's user / item indices (SplitData.user_ids / "
                  "item_ids give the raw ids); timestamp = position in the user's sequence",
        "inter_sha256": sha256_of(inter),
    }
    (folder / f"{name}.split.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help="a registered genrec-bench dataset (e.g. beauty) or an interaction file")
    parser.add_argument("out_dir", type=Path, help="RecBole data_path: files go to OUT_DIR/NAME/")
    parser.add_argument("--data-dir", default=None, help="genrec-bench data directory (as --data-dir)")
    parser.add_argument("--max-users", type=int, default=0, help="keep the first N users (0 = all)")
    parser.add_argument("--name", default=None, help="RecBole dataset name (default: DATASET[-uN])")
    args = parser.parse_args()
    if args.max_users < 0:
        parser.error("--max-users must be >= 0")
    data = build_split(args.dataset, args.data_dir, args.max_users)
    name = args.name or default_name(Path(args.dataset).stem if Path(args.dataset).is_file() else args.dataset,
                                     args.max_users)
    summary = export(data, args.out_dir, name, args.dataset, args.data_dir)
    print(f"split {summary['fingerprint']}: {summary['users']} users, {summary['items']} items, "
          f"{summary['interactions']} interactions -> {args.out_dir / name}", file=sys.stderr)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
