"""docs/results.md, the README's Beauty summary and docs/reproduce.md's commands, generated from run records.

Hand-typed result tables drift from the records behind them; these pages are rebuilt from
`benchmarks/results/` by one command (`make results`, i.e. `python -m genrec_bench.results_page`)
and a test fails when a committed page differs from a rebuild. The output holds no timestamps and
follows the boards' own order, so a rebuild from the same records gives the same bytes.

The README and docs/reproduce.md are written by hand around generated blocks: only the text between
`<!-- generated:NAME -->` and `<!-- /generated:NAME -->` is replaced.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genrec_bench.config import RunConfig, with_legacy_values
from genrec_bench.errors import GenrecError
from genrec_bench.report import (
    DatasetBoard,
    best_per_model,
    leaderboard,
    load_references,
    markdown_board,
    metric_title,
)
from genrec_bench.report.cells import md_escape
from genrec_bench.results import RunRecord, load_records
from genrec_bench.slices import slice_summary

RECORDS = Path("benchmarks/results")
SUMMARY_DATASET = "beauty"
SUMMARY_METRICS = ("hit@10", "ndcg@10")
MATRIX_METRIC = "ndcg@10"
RESULTS_INTRO = """\
# Results

Every leaderboard measured in this repository, generated from the run records in
`benchmarks/results/` by `make results`; do not edit by hand. Each row is one label (a model with
its settings) averaged over its seeds; the records keep per-user ranks, so
`genrec-bench compare A B --results benchmarks/results` pairs any two rows on the same users.
[reproduce.md](reproduce.md) gives the command behind every row, [protocol.md](protocol.md) the
evaluation contract, and [experiments.md](experiments.md) what the ablations showed.

The `id table` column names the semantic-ID table a row ranked with: a digest for a table the
package ships (`genrec_bench/data/tables/`), `letter` for LETTER's published file, `unshipped`
for a table k-means built on the training machine. The Beauty rkmeans records predate the shipped
table: they used table `d7fc2eed6a4d`, which k-means no longer rebuilds on current CPUs.

RPG rows labelled `official recipe, CPU budget` run `benchmarks/configs/rpg-{beauty,sports,toys}.toml`:
the official code's settings except width 128 (official 448), 20-item histories (official 50),
20 or 50 epochs (official up to 150) with the warm-up at the official share of training, and OPQ
codes from attribute + co-occurrence or collaborative vectors (official: text-embedding-3-large
embeddings of item text, which the offline Amazon 2014 copy lacks). docs/experiments.md ("RPG at
its official recipe") gives the measured cost of each departure.

The second Instruments, Arts and Games boards (history 10, `data.max_users = 5000`) are the MindRec
reference code's population: trained, validated and tested on the first 5,000 users
(`benchmarks/suites/mindrec-reference.toml`). MindRec rows there and elsewhere keep three
departures from the paper. No LLM backbone: a 1.8M-parameter encoder trained from scratch instead
of LLaDA-8B with LoRA, and history items as one position each instead of a text prompt; neither is
measurable without the model. The category tree: built by k-means over item vectors (Instruments,
Arts, Games) or by subsumption of anonymous attribute ids (Beauty), not from category names;
measured against no tree at all, it moves NDCG@10 by +0.0017 on Instruments (p = 0.33) and
-0.0002 on Beauty (p = 0.80). docs/experiments.md ("MindRec on Beauty", "MindRec against TIGER
on Instruments") has the commands.
"""


@dataclass(frozen=True)
class Pages:
    """Generated texts: the whole results page and the blocks spliced into hand-written files."""

    results: str
    summary: str
    commands: str


def build(records: list[RunRecord], source: str = str(RECORDS)) -> Pages:
    boards = leaderboard(records, load_references())
    return Pages(results_page(boards, source, records), beauty_summary(boards), reproduce_commands(boards, records))


def cold_start_section(board: DatasetBoard, records: list[RunRecord]) -> list[str]:
    """Markdown lines: the board's rows on its in-set and cold-start users, for the records that
    recorded them (`python -m genrec_bench.slices benchmarks/results DATASET` fills in older ones)."""
    key = (board.dataset, board.split, board.fingerprint)
    mine = [r for r in records if (r.dataset, r.split, r.fingerprint) == key]
    rows = {label: row for label, *row in slice_summary(mine)}
    if not rows:
        return []
    order = [r.label for r in board.rows if r.label in rows]
    warm_n, cold_n = rows[order[0]][0], rows[order[0]][1]
    out = [f"### {board.dataset}: in-set and cold-start users", "",
           f"Cold-start users are those whose test target never occurs in training ({cold_n:,} of "
           f"{warm_n + cold_n:,} here); `genrec-bench report --slices` gives both slices with intervals and "
           "paired tests.", "",
           "| model | in-set Hit@10 | in-set NDCG@10 | cold-start Hit@10 | cold-start NDCG@10 |",
           "|---|---:|---:|---:|---:|"]
    for label in order:
        _, _, warm, cold = rows[label]
        out.append(f"| {md_escape(label)} | {warm['hit@10']:.4f} | {warm['ndcg@10']:.4f} | {cold['hit@10']:.4f} "
                   f"| {cold['ndcg@10']:.4f} |")
    return out + [""]


def results_page(boards: list[DatasetBoard], source: str, records: list[RunRecord] | None = None) -> str:
    out = [RESULTS_INTRO, ""]
    if not boards:
        out += [f"_No run records in `{source}`._", ""]
    else:
        out += summary_matrix(boards)
    for board in boards:
        out += [f"## {board.title}", ""]
        out += [f"> {n}" for n in board.notes] + ([""] if board.notes else [])
        out += markdown_board(board)
        out += cold_start_section(board, records or [])
    return "\n".join(out).rstrip("\n") + "\n"


def summary_matrix(boards: list[DatasetBoard], metric: str = MATRIX_METRIC) -> list[str]:
    """Markdown lines: datasets x backends, each backend's best test row on `metric`, with the number
    the backend's own paper (a reference named like the backend) published on that dataset beside it."""
    datasets = list(dict.fromkeys(b.dataset for b in boards if b.split == "test"))
    mains = {d: main_board(boards, d) for d in datasets}
    models = list(dict.fromkeys(r.model for b in mains.values() if b for r in b.rows))
    if not datasets or not models:
        return []
    out = [f"## Summary: {metric_title(metric)}", "",
           "Each backend's best test row per dataset (the tables below give every row, its interval and its paired "
           "test); in brackets, the number the backend's paper (or the paper that introduced the protocol) published "
           "on that dataset, where it did.", "",
           "| dataset | " + " | ".join(models) + " |", "|---|" + "---:|" * len(models)]
    for dataset, board in mains.items():
        best = {r.model: r for r in best_per_model(board.rows)} if board else {}
        refs = {r.model.lower(): r.metrics.get(metric) for r in (board.references if board else [])}
        cells = []
        for model in models:
            row = best.get(model)
            ours = f"{row.cells[metric].mean:.4f}" if row and metric in row.cells else "–"
            paper = refs.get(model)
            cells.append(ours + (f" ({paper:.4f})" if paper is not None else ""))
        out.append(f"| {dataset} | " + " | ".join(cells) + " |")
    return out + [""]


def main_board(boards: list[DatasetBoard], dataset: str) -> DatasetBoard | None:
    """The dataset's board with the most rows (a dataset measured on two splits has two boards)."""
    mine = [b for b in boards if b.dataset == dataset and b.split == "test"]
    return max(mine, key=lambda b: len(b.rows), default=None)


def beauty_summary(boards: list[DatasetBoard]) -> str:
    board = main_board(boards, SUMMARY_DATASET)
    if board is None:
        return f"_No {SUMMARY_DATASET} records._\n"
    rows = best_per_model(board.rows)
    metrics = [m for m in SUMMARY_METRICS if m in board.columns]
    users = max(r.n_users for r in rows)
    lines = [f"Best row of each backend on Amazon Beauty ({users:,} test users, full ranking; "
             f"{len(board.rows)} rows in all in [docs/results.md](docs/results.md)). ± is a 95% interval; "
             f"p is a paired t-test against the best row on {metric_title(board.sig_metric)}.", ""]
    return "\n".join(lines + markdown_board(board, rows=rows, metrics=metrics, brief=True)).rstrip("\n") + "\n"


# --------------------------------------------------------------------------- commands


def reproduce_commands(boards: list[DatasetBoard], records: list[RunRecord]) -> str:
    """`train` + `eval` per row, from the config and label its records store. Seeds that differ only
    in the seed become one loop. A training shared by several rows (a decoder ablation, a second
    label on one checkpoint) is trained under the first row without decode keys, and the others
    only evaluate its directory."""
    by_label: dict[tuple[str, str, str], list[RunRecord]] = {}
    for rec in records:
        by_label.setdefault((rec.dataset, rec.fingerprint, rec.label), []).append(rec)
    rows = []
    for board in boards:
        for row in board.rows:
            runs = sorted(by_label[(board.dataset, board.fingerprint, row.label)], key=lambda r: (r.seed, r.created))
            rows.append((board, row.label, list({r.seed: r for r in runs}.values())))  # a seed's newest run
    owners: dict[str, str] = {}  # run id -> label of the row that trains it
    for plain in (True, False):
        for _, label, runs in rows:
            for rec in runs:
                if plain != bool(_decode_keys(rec)):
                    owners.setdefault(rec.run_id, label)
    out: list[str] = []
    for i, (board, label, runs) in enumerate(rows):
        if i == 0 or rows[i - 1][0] is not board:
            out += [f"### {board.title}", ""]
        seeds = ", ".join(str(r.seed) for r in runs)
        out += [f"**{label}** (seed{'s' if len(runs) > 1 else ''} {seeds})", ""]
        shared = sorted({owners[r.run_id] for r in runs} - {label})
        out += [f"Evaluates the checkpoint trained under **{o}**." for o in shared] + ([""] if shared else [])
        out += ["```bash", *_row_commands(board.dataset, label, runs, owners), "```", ""]
    return "\n".join(out).rstrip("\n") + "\n"


def _run_dir(dataset: str, label: str, seed: str) -> str:
    return "runs/" + re.sub(r"[^a-z0-9.]+", "-", f"{dataset}-{label}".lower()).strip("-") + f"-s{seed}"


def _row_commands(dataset: str, label: str, runs: list[RunRecord], owners: dict[str, str]) -> list[str]:
    mine = all(owners[r.run_id] == label for r in runs)
    template = f'"{_run_dir(dataset, label, "$seed")}"'
    if len(runs) > 1 and mine and len({_train_args(r, '"$seed"', template) for r in runs}) == 1:
        return [f"for seed in {' '.join(str(r.seed) for r in runs)}; do",
                _wrap(_train_args(runs[0], '"$seed"', template), indent="  "),
                _wrap(_eval_args(runs[0], template), indent="  "), "done"]
    lines = []
    for rec in runs:
        run_dir = _run_dir(dataset, owners[rec.run_id], str(rec.seed))
        if owners[rec.run_id] == label:
            lines.append(_wrap(_train_args(rec, str(rec.seed), run_dir)))
        lines.append(_wrap(_eval_args(rec, run_dir)))
    return lines


def _decode_keys(rec: RunRecord) -> dict[str, Any]:
    """Decode-time keys named by a `model[key=value,...]` label (what `eval --decode` writes)."""
    match = re.fullmatch(re.escape(rec.model) + r"\[(.+)\]", rec.label)
    model = rec.config.get("model", {})
    if not match:
        return {}
    keys = [part.split("=", 1)[0] for part in match.group(1).split(",")]
    return {k: model[k] for k in keys if k in model}


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ",".join(map(_toml, value)) + "]"
    return str(value)


def _train_args(rec: RunRecord, seed: str, run_dir: str) -> tuple[str, ...]:
    """The stored config as `--set` overrides of the defaults (legacy values a record lacks spelled out),
    as shell words; `seed` and `run_dir` are inserted unquoted so a loop can pass `"$seed"`."""
    config = with_legacy_values(rec.config)
    defaults = RunConfig().to_dict()
    sets = []
    for section in ("data", "train", "eval"):
        for key, value in sorted(config.get(section, {}).items()):
            default = defaults[section].get(key)
            if key != "seed" and (list(default) if isinstance(default, tuple) else default) != value:
                sets.append(f"{section}.{key}={_toml(value)}")
    decode = _decode_keys(rec)
    sets += [f"model.{k}={_toml(v)}" for k, v in sorted(config.get("model", {}).items()) if k not in decode]
    words = ["genrec-bench train", f"-m {shlex.quote(rec.model)}", f"-d {shlex.quote(rec.dataset)}", f"--seed {seed}"]
    return tuple(words + [f"--set {shlex.quote(s)}" for s in sets] + [f"-o {run_dir}"])


def _eval_args(rec: RunRecord, run_dir: str) -> tuple[str, ...]:
    words = ["genrec-bench eval", f"--run {run_dir}"]
    if list(rec.ks) != list(rec.config.get("eval", {}).get("ks", rec.ks)):
        words.append("--k " + ",".join(map(str, rec.ks)))
    decode = _decode_keys(rec)
    words += [f"--decode {shlex.quote(f'{k}={_toml(v)}')}" for k, v in decode.items()]
    if rec.label != rec.model and not decode:
        words.append(f"--label {shlex.quote(rec.label)}")
    return tuple(words)


def _wrap(words: tuple[str, ...], width: int = 100, indent: str = "") -> str:
    """One shell command, continued with backslashes before it passes `width` columns; an option
    and its value stay on one line."""
    lines, line = [], indent
    for word in words:
        if line.strip() and len(line) + 1 + len(word) > width - 2:
            lines.append(line + " \\")
            line = indent + "    " + word
        else:
            line = f"{line} {word}" if line.strip() else line + word
    return "\n".join([*lines, line])


# --------------------------------------------------------------------------- files


def splice(text: str, name: str, block: str, path: str) -> str:
    """`text` with the generated block `name` replaced by `block`; the markers must already be there."""
    start, end = f"<!-- generated:{name} -->", f"<!-- /generated:{name} -->"
    pattern = re.compile(re.escape(start) + r"\n.*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise GenrecError(f"no '{start}' ... '{end}' block to fill", path=path)
    return pattern.sub(lambda _: f"{start}\n{block}{end}", text, count=1)


def outputs(root: Path, records_dir: Path) -> dict[Path, str]:
    """Each generated file's full new text, keyed by its path under the repository `root`."""
    records, warnings = load_records(records_dir)
    if warnings:
        raise GenrecError("unreadable run records: " + "; ".join(warnings))
    pages = build(records, str(records_dir.relative_to(root) if records_dir.is_relative_to(root) else records_dir))
    readme, reproduce = root / "README.md", root / "docs" / "reproduce.md"
    return {
        root / "docs" / "results.md": pages.results,
        readme: splice(readme.read_text(encoding="utf-8"), "beauty-summary", pages.summary, str(readme)),
        reproduce: splice(reproduce.read_text(encoding="utf-8"), "commands", pages.commands, str(reproduce)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genrec_bench.results_page", description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root (default: .)")
    parser.add_argument("--results", type=Path, default=None, help=f"record folder (default: ROOT/{RECORDS})")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a file is out of date")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    try:
        new = outputs(root, (args.results or root / RECORDS).resolve())
    except GenrecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stale = [p for p, text in new.items() if not p.is_file() or p.read_text(encoding="utf-8") != text]
    for path in stale:
        if args.check:
            print(f"out of date: {path.relative_to(root)} (run `make results`)", file=sys.stderr)
        else:
            path.write_text(new[path], encoding="utf-8")
            print(f"wrote {path.relative_to(root)}", file=sys.stderr)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
