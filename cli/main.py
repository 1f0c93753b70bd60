"""The `genrec-bench` command line: parses arguments, calls the library, renders with rich.

Results (tables, listings, `--json` objects) go to stdout, messages, progress and warnings to
stderr, as shell tools do: `genrec-bench report > board.txt` and `genrec-bench models | grep tiger`
work. Every user-facing problem is a `GenrecError` printed as one line with exit code 2.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from genrec_bench.errors import GenrecError, Interrupted

app = typer.Typer(
    name="genrec-bench",
    help="Benchmark generative recommenders (TIGER, MindRec) against classic baselines on identical, "
         "deterministic splits.\n\nQuick start: `genrec-bench bench` runs the default suite on the embedded "
         "Amazon Beauty data and prints the leaderboard.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)  # messages, progress, warnings
PIPE_WIDTH = 100_000  # into a pipe or a file a table prints whole: a row folded at 80 columns is lost to grep


def results_out() -> Console:
    """The console for results, on stdout: tables fold to a terminal's width, but into a pipe or a file
    (unless COLUMNS says otherwise) they print at full width. Decided per call, since stdout may be
    redirected after import."""
    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(width=PIPE_WIDTH if piped else None)


DatasetOpt = Annotated[str | None, typer.Option("--dataset", "-d", help="Registered dataset name (see `datasets`).")]
DataOpt = Annotated[Path | None, typer.Option("--data", help="Any interaction file (.txt/.csv/.tsv/.parquet/.inter).")]
DataFormatOpt = Annotated[str | None, typer.Option(
    "--data-format", help="Input file format: seq|csv|tsv|parquet|atomic|unisrec (default: from the extension).")]
OldDataFormatOpt = Annotated[str | None, typer.Option("--format", hidden=True,
                                                      help="Deprecated spelling of --data-format.")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Folder of the registered datasets "
                                                                    "(default: $GENREC_BENCH_DATA or ../shared/data).")]
ResultsOpt = Annotated[Path | None, typer.Option("--results", help="Results store (default: $GENREC_BENCH_RESULTS "
                                                                   "or ./results).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout instead of a table.")]
DecodeOpt = Annotated[list[str] | None, typer.Option(
    "--decode", help="Decode-time \\[model] key=value applied to the saved model, repeatable, e.g. beam_width=20 "
                     "or order=left_to_right; a key the backend does not have lists the ones it does.")]


def _emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def _warn(warnings: list[str]) -> None:
    for w in warnings:
        err.print(f"[yellow]warning:[/yellow] {escape(w)}")


def _parse_ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(sorted({int(x) for x in text.split(",") if x.strip()}))
    except ValueError:
        raise GenrecError(f"--k expects comma-separated integers such as 1,5,10,20, got {text!r}") from None
    if not ks or ks[0] < 1:
        raise GenrecError(f"--k values must be integers >= 1, got {text!r}")
    return ks


@app.command()
def datasets(data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """List the registered datasets and whether their files are available.

    Example: genrec-bench datasets --data-dir ../shared/data
    """
    from genrec_bench.data.registry import dataset_rows

    rows = dataset_rows(data_dir)
    if as_json:
        _emit_json({"datasets": rows})
        return
    table = Table("name", "format", "available", "description", "path", title="datasets")
    for r in rows:
        table.add_row(escape(str(r["name"])), escape(str(r["format"])), "yes" if r["available"] else "no",
                      escape(str(r["description"])), escape(str(r["path"])))
    results_out().print(table)


@app.command()
def models(
    extra: Annotated[list[str] | None, typer.Argument(help="Also describe these package.module:ClassName backends.",
                                                      show_default=False)] = None,
    as_json: JsonOpt = False,
) -> None:
    """List every backend (built-ins, installed plugins, the module paths given) with its \\[model] keys.

    A plugin that fails to import, or whose name clashes, shows its one-line error; the rest stay usable.

    Examples: genrec-bench models;  genrec-bench models --json;  genrec-bench models mymod:MyBackend
    """
    from genrec_bench.models.registry import list_backends

    rows, problems = list_backends(extra or [])
    if as_json:
        _emit_json({"models": [dataclasses.asdict(r) for r in rows], "problems": problems})
        return
    table = Table("name", "origin", "target", "\\[model] keys (default)", title="models")
    table.columns[2].overflow = "fold"  # a module path is worth more than its share of a narrow terminal
    for r in rows:
        origin = f"{r.origin} ({r.package})" if r.package else r.origin
        keys = ", ".join(f"{k}={v!r}" for k, v in r.keys.items()) or "(none)"
        if r.decode_keys:
            keys += f"; decoding: {', '.join(r.decode_keys)}"
        table.add_row(escape(r.name), escape(origin), escape(r.target),
                      f"[red]{escape(r.error)}[/red]" if r.error else escape(keys))
    results_out().print(table)
    for problem in problems:
        err.print(f"[red]error:[/red] {escape(problem)}", highlight=False, soft_wrap=True)


@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to create (or to resume).")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="Backend: a built-in (popularity, sasrec, hstu, "
                                                                    "bert4rec, rpg, tiger, liger, mindrec), an "
                                                                    "installed "
                                                                    "plugin's "
                                                                    "name or "
                                                                    "package.module:ClassName (see `models`; not "
                                                                    "needed with --resume).")] = None,
    dataset: DatasetOpt = None,
    data: DataOpt = None,
    fmt: DataFormatOpt = None,
    old_fmt: OldDataFormatOpt = None,
    data_dir: DataDirOpt = None,
    config: Annotated[Path | None, typer.Option("--config", "-c",
                                                help="TOML with \\[data] \\[train] \\[eval] \\[model].")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override one key, e.g. train.epochs=5 "
                                                                 "(repeatable).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (overrides train.seed).")] = None,
    device: Annotated[str | None, typer.Option(help="auto|cpu|cuda (overrides train.device).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run in --out from its last "
                                                          "checkpoint.")] = False,
) -> None:
    """Fit a model on the training part of a split and save a run directory.

    Examples:

      genrec-bench train --model sasrec --dataset beauty --out runs/sasrec

      genrec-bench train -m tiger -d beauty -c benchmarks/configs/tiger-small.toml --set train.epochs=3 -o runs/t

      genrec-bench train --model popularity --data my.csv --out runs/pop

      genrec-bench train --resume --out runs/sasrec   (after a crash or Ctrl-C)
    """
    from genrec_bench.config import load_run_config
    from genrec_bench.pipeline import DataSource, train_run, train_run_resume

    overrides = list(set_ or [])
    if seed is not None:
        overrides.append(f"train.seed={seed}")
    if device is not None:
        overrides.append(f'train.device="{device}"')
    fmt = _deprecated(fmt, old_fmt, "--format", "--data-format")
    cfg = load_run_config(config, overrides)
    if resume:
        info = train_run_resume(out)
    else:
        if model is None:
            raise GenrecError("--model is required (see `genrec-bench models`) unless --resume is given")
        source = DataSource(dataset, str(data) if data else None, fmt, str(data_dir) if data_dir else None)
        info = train_run(model, source, cfg, out)
    fit = info.get("fit", {})
    err.print(f"[green]trained[/green] {info['model']} on {info['dataset']} "
              f"({info['split']['users']} users, {info['split']['items']} items) in {fit.get('seconds', 0):.1f} s "
              f"-> {out}")


@app.command()
def tokenize(
    out: Annotated[Path, typer.Option("--out", "-o", help="Semantic-ID table to write (JSON, LETTER layout).")],
    model: Annotated[str, typer.Option("--model", "-m", help="Backend whose tokenisation to build: tiger, "
                                                             "mindrec or rpg.")] = "tiger",
    dataset: DatasetOpt = None,
    data: DataOpt = None,
    fmt: DataFormatOpt = None,
    data_dir: DataDirOpt = None,
    config: Annotated[Path | None, typer.Option("--config", "-c",
                                                help="TOML with \\[data] and \\[model], as given to train.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override one key, e.g. model.sid_levels=4 "
                                                                 "(repeatable).")] = None,
    tree_out: Annotated[Path | None, typer.Option("--tree-out", help="Also write every item's category path "
                                                                     "(MindRec) to this JSON file.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the item -> semantic-ID table a run would build, so every machine can train on the same ids.

    k-means outcomes depend on the processor, so ids built on two machines can differ.

    Train with `--set model.sid_file=FILE` (and `model.tree_file=FILE` for MindRec) to use a written table.

    Each run record carries the digest of its table. Tables named `beauty-rkmeans-e5b6cd0b8018.json`,
    `instruments-tree-*.json` ship with the package and are found by name.

    Examples:

      genrec-bench tokenize -d beauty --out beauty-ids.json

      genrec-bench tokenize -m mindrec -d instruments --out ids.json --tree-out tree.json

      genrec-bench tokenize -m rpg -d beauty --out codes.json   (then --set model.code_file=codes.json)
    """
    from genrec_bench.config import load_run_config
    from genrec_bench.export_tokens import tokenize as write_tables
    from genrec_bench.pipeline import DataSource

    cfg = load_run_config(config, list(set_ or []))
    source = DataSource(dataset, str(data) if data else None, fmt, str(data_dir) if data_dir else None)
    info = write_tables(model, source, cfg, out, tree_out)
    if as_json:
        _emit_json(info)
        return
    err.print(escape(info["summary"]))
    if "tree_summary" in info:
        err.print(escape(info["tree_summary"]))
    err.print(f"[green]wrote[/green] {info['items']} items -> {out} (digest {info['sid_digest']})"
              + (f" and {tree_out} (tree digest {info['tree_digest']})" if tree_out else ""))


@app.command("eval")
def eval_(
    run: Annotated[Path, typer.Option("--run", "-r", help="Run directory made by `train`.")],
    split: Annotated[str, typer.Option(help="test or valid.")] = "test",
    k: Annotated[str, typer.Option("--k", help="Cut-offs, comma-separated (default: the run's \\[eval] ks, "
                                   "1,5,10,20 unless configured). Generative backends widen the beam to max(k).")] = "",
    max_users: Annotated[int | None, typer.Option(
        help="Evaluate the first N users in file order only (MindRec's protocol; file order is not random, "
             "so compare runs on the same N) (0 = all).")] = None,
    results: ResultsOpt = None,
    label: Annotated[str, typer.Option(help="Display name in reports (default: the model name).")] = "",
    device: Annotated[str, typer.Option(help="auto|cpu|cuda.")] = "auto",
    decode: DecodeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Full-ranking Hit@k, NDCG@k and MRR of a trained run; writes a run record to the results store.

    Examples: genrec-bench eval --run runs/sasrec --k 5,10 --json;
    genrec-bench eval --run runs/mindrec --decode order=left_to_right   (a decoder ablation on the same
    checkpoint: its own row, labelled mindrec[order=left_to_right], pairable with the default)
    """
    from genrec_bench.decode_options import parse_decode
    from genrec_bench.evaluate import short_list_warning
    from genrec_bench.pipeline import evaluate_run
    from genrec_bench.results import results_dir, store_record
    from genrec_bench.runtime import is_main_process

    if split not in ("test", "valid"):
        raise GenrecError(f"--split must be test or valid, got {split!r}")

    record = evaluate_run(run, split, _parse_ks(k) if k else None, max_users, device, label,  # type: ignore[arg-type]
                          decode=parse_decode(decode or []))
    if not is_main_process():  # under torchrun every rank evaluated a shard; rank 0 writes and prints
        return
    path = store_record(record, results_dir(results))
    if warning := short_list_warning(record["short_lists"], len(record["users"])):
        print(warning, file=sys.stderr)
    if as_json:
        _emit_json({k2: record[k2] for k2 in ("run_id", "model", "dataset", "split", "fingerprint", "seed", "metrics",
                                              "eval_seconds", "users_per_second")} | {"record": str(path)})
        return
    table = Table("metric", "value", title=escape(f"{record['label']} on {record['dataset']} ({split}, "
                                                  f"{len(record['users'])} users)"))
    for name, value in record["metrics"].items():
        table.add_row(name, f"{value:.4f}")
    results_out().print(table)
    err.print(f"record: {path}")


@app.command()
def recommend(
    run: Annotated[Path, typer.Option("--run", "-r", help="Run directory made by `train`.")],
    history: Annotated[str, typer.Option(help="Raw item ids, oldest first, space-separated.")],
    k: Annotated[int, typer.Option("--k", help="How many items.")] = 10,
    device: Annotated[str, typer.Option(help="auto|cpu|cuda.")] = "auto",
    decode: DecodeOpt = None,
    skip_unknown: Annotated[bool, typer.Option(
        "--skip-unknown", help="Drop history ids the run does not know (a warning names them) instead of failing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Top-k next items for one history of raw item ids, as a table (rank, item, score) on stdout.

    Examples: genrec-bench recommend --run runs/sasrec --history "12 7 33" --k 5;
    genrec-bench recommend --run runs/sasrec --history "12 7 new-item" --skip-unknown --json
    """
    from genrec_bench.decode_options import parse_decode
    from genrec_bench.pipeline import recommend_raw

    items = recommend_raw(run, history.split(), k, device, parse_decode(decode or []), skip_unknown)
    if as_json:
        _emit_json({"items": items})
        return
    table = Table("rank", "item", "score")
    for i, row in enumerate(items, 1):
        table.add_row(str(i), escape(row["item"]), f"{row['score']:.4f}")
    results_out().print(table)


@app.command()
def report(
    results: ResultsOpt = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table|markdown|html|json.")] = "table",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file instead of stdout.")] = None,
    references: Annotated[bool, typer.Option(help="Show published reference rows.")] = True,
    slices: Annotated[bool, typer.Option(
        "--slices", help="After each board, its in-set and cold-start boards: users whose test target does / "
                         "does not occur in training. Records made before the slice was recorded are rebuilt "
                         "from their registered dataset.")] = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Leaderboard of every run record, per dataset and split fingerprint.

    Examples: genrec-bench report;  genrec-bench report -f markdown >> "$GITHUB_STEP_SUMMARY";
    genrec-bench report -f html -o reports/leaderboard.html;  genrec-bench report --slices
    """
    from genrec_bench.report import leaderboard, load_references, render
    from genrec_bench.results import load_records, results_dir

    if fmt not in ("table", "markdown", "html", "json"):
        raise GenrecError(f"--format must be table, markdown, html or json, got {fmt!r}")
    records, warnings = load_records(results_dir(results))
    _warn(warnings)
    if slices:
        from genrec_bench.slices import ColdStartLookup, with_slices

        records = with_slices(records, ColdStartLookup(data_dir))
    boards = leaderboard(records, load_references() if references else None)
    text = render(boards, fmt)
    if out is not None:
        from genrec_bench.runtime import atomic_write_bytes

        if not isinstance(text, str):  # a rich renderable: render it as plain text at a fixed width
            plain = Console(width=160, no_color=True, record=True, file=io.StringIO())
            plain.print(text)
            text = plain.export_text()
        atomic_write_bytes(out, text.encode())
        err.print(f"wrote {escape(str(out))}")
    elif fmt == "table":
        results_out().print(text)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


@app.command()
def compare(
    run_a: Annotated[str, typer.Argument(help="Run id or record file of model A (in a CI gate: the new run).")],
    run_b: Annotated[str, typer.Argument(help="Run id or record file of model B (in a CI gate: the baseline).")],
    results: ResultsOpt = None,
    fail_if_worse: Annotated[str | None, typer.Option(
        "--fail-if-worse", metavar="METRIC",
        help="CI gate: exit 1 when A is significantly worse than B on METRIC (e.g. ndcg@10): A - B < 0 "
             "with paired t-test p < --alpha.")] = None,
    alpha: Annotated[float, typer.Option(help="Significance level of --fail-if-worse.", min=0.0, max=1.0)] = 0.05,
    as_json: JsonOpt = False,
) -> None:
    """Per-metric difference A - B with a paired bootstrap CI and a paired t-test p-value.

    Exit codes:

      0 = compared (with --fail-if-worse: A is not significantly worse)

      1 = A is significantly worse on the --fail-if-worse metric

      2 = refused: different splits (fingerprints differ) or users, a missing record, an unknown metric

    Examples:

      genrec-bench compare 3f2a9c1b0d4e 77c0e1a2b3f4

      genrec-bench compare reports/ci-results/NEW.json benchmarks/ci-baseline.json --fail-if-worse ndcg@10
    """
    from genrec_bench.gate import gate_verdict
    from genrec_bench.report import compare_runs, different_id_tables
    from genrec_bench.results import find_record, results_dir

    root = results_dir(results)
    a, b = find_record(run_a, root), find_record(run_b, root)
    rows = compare_runs(a, b, tuple(a.ks))
    gate = gate_verdict(rows, fail_if_worse, alpha) if fail_if_worse else None
    mixed = different_id_tables(a.id_table, b.id_table)
    if as_json:
        _emit_json({"a": a.label, "b": b.label, "id_tables": [a.id_table, b.id_table],
                    "different_id_tables": mixed, "comparisons": [vars(r) for r in rows]}
                   | ({"gate": gate} if gate else {}))
    else:
        if mixed:
            _warn([f"A and B rank with different semantic-ID tables ({a.id_table} vs {b.id_table}): the "
                   "difference mixes the model with its tokenisation"])
        la, lb = escape(a.label), escape(b.label)  # labels like "liger[ranking=dense]" are not markup
        table = Table("metric", la, lb, "A - B", "95% CI", "p-value", title=f"{la} vs {lb}")
        for r in rows:
            table.add_row(r.metric, f"{r.mean_a:.4f}", f"{r.mean_b:.4f}", f"{r.diff:+.4f}",
                          f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}]", f"{r.p_value:.3g}")
        results_out().print(table)
        if gate:
            colour = "red" if gate["worse"] else "green"
            err.print(f"[{colour}]{escape(gate['verdict'])}[/{colour}]", highlight=False)
    if gate and gate["worse"]:
        raise typer.Exit(1)


@app.command()
def bench(
    suite: Annotated[Path | None, typer.Argument(help="Suite TOML (default: the built-in default suite).")] = None,
    results: ResultsOpt = None,
    jobs: Annotated[int, typer.Option(help="Jobs run in parallel (processes).")] = 1,
    data_dir: DataDirOpt = None,
    report_fmt: Annotated[str, typer.Option("--format", "-f", help="Leaderboard format printed at the end: "
                                                                   "table|markdown|html|json.")] = "table",
    old_report: Annotated[str | None, typer.Option("--report", hidden=True,
                                                   help="Deprecated spelling of --format.")] = None,
    only: Annotated[list[str] | None, typer.Option("--dataset", "-d", help="Run only these of the suite's datasets "
                                                                           "(repeatable).")] = None,
    only_runs: Annotated[list[str] | None, typer.Option("--run", "-r", help="Run only these of the suite's runs, "
                                                                            "by label (repeatable).")] = None,
) -> None:
    """Run a suite (datasets x models x seeds), skipping what is recorded, then print the leaderboard.

    A run's label is its `label` key, or its model name. Jobs run in the suite's order.

    Examples: genrec-bench bench;  genrec-bench bench benchmarks/suites/tiger-paper.toml --jobs 2;
    genrec-bench bench benchmarks/suites/mindrec-paper.toml --dataset instruments;
    genrec-bench bench benchmarks/suites/tiger-paper.toml -d sports -r sasrec -r tiger
    """
    from genrec_bench.bench import load_suite, run_suite
    from genrec_bench.report import leaderboard, load_references, render
    from genrec_bench.results import load_records, results_dir

    report_fmt = _deprecated(report_fmt, old_report, "--report", "--format")
    spec = load_suite(suite)
    if only:
        _check_subset("--dataset", only, spec.datasets, spec.name)
        spec = dataclasses.replace(spec, datasets=tuple(d for d in spec.datasets if d in only))
    if only_runs:
        _check_subset("--run", only_runs, [r.label for r in spec.runs], spec.name)
        spec = dataclasses.replace(spec, runs=tuple(r for r in spec.runs if r.label in only_runs))
    root = results_dir(results)
    run_suite(spec, root, jobs=jobs, data_dir=data_dir)
    records, warnings = load_records(root)
    _warn(warnings)
    records = [r for r in records if r.suite == spec.name]
    text = render(leaderboard(records, load_references()), report_fmt)
    if report_fmt == "table":
        results_out().print(text)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _check_subset(option: str, wanted: list[str], have: Sequence[str], suite: str) -> None:
    """A `bench` filter may name only what the suite has; the error lists what it has."""
    if missing := [w for w in wanted if w not in have]:
        raise GenrecError(f"{option} {', '.join(missing)} is not in suite '{suite}' (it has: {', '.join(have)})")


def _deprecated(value: str | None, old_value: str | None, old: str, new: str) -> str | None:
    """The value given under an option's old spelling wins, with a note naming the new spelling."""
    if old_value is None:
        return value
    err.print(f"[yellow]note:[/yellow] {old} is deprecated here; use {new}", highlight=False)
    return old_value


def main() -> None:
    """Console-script entry: one-line errors instead of tracebacks for user mistakes."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _maybe_init_distributed()
    try:
        app()
    except Interrupted as exc:
        err.print(f"[yellow]interrupted:[/yellow] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(130)
    except GenrecError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/yellow]")
        sys.exit(130)


def _maybe_init_distributed() -> None:
    """Under torchrun (WORLD_SIZE > 1) join the process group: gloo on CPU, nccl on CUDA."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch

        if not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


if __name__ == "__main__":
    main()
