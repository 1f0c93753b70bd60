"""End-to-end CLI tests on a tiny file: train -> eval -> recommend -> report, and the error paths."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from genrec_bench.cli.main import main


def run_cli(args: list[str], capsys, monkeypatch) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["genrec-bench", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_train_eval_recommend_report(seq_file, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    code, _, err = run_cli(["train", "--model", "popularity", "--data", str(seq_file), "--out", str(run)],
                           capsys, monkeypatch)
    assert code == 0, err
    assert json.loads((run / "run.json").read_text())["status"] == "complete"

    code, out, err = run_cli(["eval", "--run", str(run), "--json", "--k", "1,5"], capsys, monkeypatch)
    assert code == 0, err
    result = json.loads(out)
    assert set(result["metrics"]) == {"hit@1", "ndcg@1", "hit@5", "ndcg@5", "mrr@5"}
    assert Path(result["record"]).exists()

    code, out, err = run_cli(["recommend", "--run", str(run), "--history", "1 2", "--k", "3", "--json"],
                             capsys, monkeypatch)
    assert code == 0, err
    items = json.loads(out)["items"]
    assert len(items) == 3 and all(set(i) == {"item", "score"} for i in items)

    code, out, err = run_cli(["report", "--format", "markdown"], capsys, monkeypatch)
    assert code == 0, err
    assert "popularity" in out and "|" in out

    code, out, err = run_cli(["report", "--format", "json"], capsys, monkeypatch)
    assert code == 0 and json.loads(out)


def test_listings_go_to_stdout_and_messages_to_stderr(capsys, monkeypatch):
    """`genrec-bench models | grep sasrec` and `datasets > file` work: results on stdout."""
    for command in (["models"], ["datasets"]):
        code, out, err = run_cli(command, capsys, monkeypatch)
        assert code == 0, err
        assert ("sasrec" if command == ["models"] else "beauty") in out


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["train", "--model", "popularity", "--dataset", "beautty", "--out", "x"], "did you mean: beauty"),
        (["train", "--model", "popularty", "--dataset", "beauty", "--out", "x"], "did you mean: popularity"),
        (["train", "--model", "popularity", "--out", "x"], "exactly one of --dataset NAME or --data PATH"),
        (["train", "--model", "popularity", "--dataset", "beauty", "--set", "train.epohcs=2", "--out", "x"],
         "did you mean: epochs"),
        (["eval", "--run", "nowhere"], "not a run directory"),
    ],
)
def test_errors_are_one_line(args, pattern, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 2
    assert pattern in " ".join(err.split())
    assert "Traceback" not in err


def test_eval_without_k_uses_the_runs_configured_cutoffs(seq_file, tmp_path, capsys, monkeypatch):
    """`[eval] ks` of the run holds unless `--k` is given (a suite's k = 10 must not become 20)."""
    run = tmp_path / "run"
    code, _, err = run_cli(["train", "--model", "popularity", "--data", str(seq_file), "--set", "eval.ks=[1, 3]",
                            "--out", str(run)], capsys, monkeypatch)
    assert code == 0, err
    code, out, err = run_cli(["eval", "--run", str(run), "--json"], capsys, monkeypatch)
    assert code == 0, err
    assert set(json.loads(out)["metrics"]) == {"hit@1", "ndcg@1", "hit@3", "ndcg@3", "mrr@3"}
    code, out, err = run_cli(["eval", "--run", str(run), "--json", "--k", "2"], capsys, monkeypatch)
    assert code == 0, err
    assert set(json.loads(out)["metrics"]) == {"hit@2", "ndcg@2", "mrr@2"}


def test_recommend_rejects_unknown_items_and_bad_k(seq_file, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    assert run_cli(["train", "-m", "popularity", "--data", str(seq_file), "-o", str(run)], capsys, monkeypatch)[0] == 0
    code, _, err = run_cli(["recommend", "--run", str(run), "--history", "1 nope"], capsys, monkeypatch)
    assert code == 2 and "unknown item id(s) in --history: nope" in err
    code, _, err = run_cli(["recommend", "--run", str(run), "--history", "1", "--k", "999"], capsys, monkeypatch)
    assert code == 2 and "--k must be between 1 and the catalogue size" in " ".join(err.split())


def test_run_from_another_version_and_corrupt_checkpoint(seq_file, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    assert run_cli(["train", "-m", "popularity", "--data", str(seq_file), "-o", str(run)], capsys, monkeypatch)[0] == 0
    (run / "model" / "state.pt").write_bytes(b"not a checkpoint")
    code, _, err = run_cli(["eval", "--run", str(run)], capsys, monkeypatch)
    assert code == 2 and "corrupt" in err
    info = json.loads((run / "run.json").read_text())
    info["schema"] = 99
    (run / "run.json").write_text(json.dumps(info))
    code, _, err = run_cli(["eval", "--run", str(run)], capsys, monkeypatch)
    assert code == 2 and "schema 99" in err


def test_datasets_json(capsys, monkeypatch):
    code, out, _ = run_cli(["datasets", "--json"], capsys, monkeypatch)
    assert code == 0
    names = {d["name"] for d in json.loads(out)["datasets"]}
    assert {"beauty", "instruments", "ml-100k"} <= names


def test_help_teaches_with_examples(capsys, monkeypatch):
    code, out, _ = run_cli(["train", "--help"], capsys, monkeypatch)
    assert code == 0 and "Examples" in out and "--resume" in out


def test_compare_two_runs_on_the_same_split(seq_file, tmp_path, capsys, monkeypatch):
    ids = []
    for name, model in (("pop", "popularity"), ("sas", "sasrec")):
        run = tmp_path / name
        extra = ["--set", "train.epochs=2", "--set", "model.hidden=8", "--set", "model.layers=1"]
        args = ["train", "-m", model, "--data", str(seq_file), "-o", str(run), *(extra if model == "sasrec" else [])]
        assert run_cli(args, capsys, monkeypatch)[0] == 0
        code, out, err = run_cli(["eval", "--run", str(run), "--json", "--k", "1,5"], capsys, monkeypatch)
        assert code == 0, err
        ids.append(json.loads(out)["run_id"])
    code, out, err = run_cli(["compare", ids[1], ids[0], "--json"], capsys, monkeypatch)
    assert code == 0, err
    rows = {r["metric"]: r for r in json.loads(out)["comparisons"]}
    assert {"hit@1", "ndcg@5", "mrr@5"} <= set(rows)
    for r in rows.values():
        assert r["ci_low"] <= r["diff"] <= r["ci_high"] and 0.0 <= r["p_value"] <= 1.0
        assert abs(r["diff"] - (r["mean_a"] - r["mean_b"])) < 1e-12
    code, _, err = run_cli(["compare", ids[0], "nope"], capsys, monkeypatch)
    assert code == 2 and "nope" in err


def test_compare_prints_decode_labels_verbatim(tmp_path, capsys, monkeypatch):
    """A decode ablation's label ("liger[ranking=dense]") has brackets that must not be read as markup."""
    from genrec_bench.results import RunRecord, write_record

    root = tmp_path / "results"
    for run_id, label, ranks in (("aaa", "liger[ranking=dense]", [1, 0, 3]), ("bbb", "liger", [2, 1, 0])):
        write_record(RunRecord(run_id=run_id, model="liger", label=label, dataset="d", split="test", fingerprint="fp",
                               seed=0, ks=[1, 10], metrics={}, users=[0, 1, 2], ranks=ranks, config={}), root)
    monkeypatch.setenv("COLUMNS", "200")
    code, out, err = run_cli(["compare", "aaa", "bbb", "--results", str(root)], capsys, monkeypatch)
    assert code == 0, err
    assert "liger[ranking=dense] vs liger" in out  # the comparison is a result: stdout


GENERATIVE = [
    ("tiger", ["model.d_model=32", "model.encoder_layers=1", "model.decoder_layers=1", "model.heads=2",
               "model.d_kv=16", "model.d_ff=64", "model.sid_codebook=4", "model.sid_levels=2",
               "model.history_encoding=item_sum_id"]),
    ("mindrec", ["model.d_model=32", "model.layers=1", "model.heads=2", "model.d_ff=64", "model.sid_codebook=4",
                 "model.sid_levels=2", "model.tree_source=kmeans", "model.tree_branching=2",
                 "model.history_encoding=item_sum_id"]),
]


def _train_tiny(model: str, sizes: list[str], seq_file: Path, tmp_path: Path, capsys, monkeypatch) -> Path:
    """One CPU epoch of a tiny generative model through `train`; returns the run directory."""
    run = tmp_path / model
    sets = [arg for s in [*sizes, "train.epochs=1", "train.batch_size=32", "train.device=cpu"] for arg in ("--set", s)]
    code, _, err = run_cli(["train", "--model", model, "--data", str(seq_file), *sets, "--out", str(run)],
                           capsys, monkeypatch)
    assert code == 0, err
    return run


@pytest.mark.parametrize("model, sizes", GENERATIVE)
def test_generative_backends_train_eval_recommend(model, sizes, seq_file, tmp_path, capsys, monkeypatch):
    run = _train_tiny(model, sizes, seq_file, tmp_path, capsys, monkeypatch)
    code, out, err = run_cli(["eval", "--run", str(run), "--json", "--k", "1,5"], capsys, monkeypatch)
    assert code == 0, err
    assert 0 <= json.loads(out)["metrics"]["ndcg@5"] <= 1
    code, out, err = run_cli(["recommend", "--run", str(run), "--history", "3 4 5", "--k", "4", "--json"],
                             capsys, monkeypatch)
    assert code == 0, err
    items = [row["item"] for row in json.loads(out)["items"]]
    assert len(items) == len(set(items)) == 4 and all(i in {str(n) for n in range(1, 13)} for i in items)


DECODE_ABLATION = {"tiger": "beam_width=1", "mindrec": "order=left_to_right"}


@pytest.mark.parametrize("model, sizes", GENERATIVE)
def test_eval_decode_overrides_make_their_own_labelled_record(model, sizes, seq_file, tmp_path, capsys, monkeypatch):
    run = _train_tiny(model, sizes, seq_file, tmp_path, capsys, monkeypatch)
    results = ["--results", str(tmp_path / "results")]
    code, out, err = run_cli(["eval", "--run", str(run), "--json", "--k", "1,5", *results,
                              "--decode", DECODE_ABLATION[model]], capsys, monkeypatch)
    assert code == 0, err
    record = json.loads(Path(json.loads(out)["record"]).read_text())
    key, value = DECODE_ABLATION[model].split("=")
    assert record["label"] == f"{model}[{key}={value}]"
    assert str(record["config"]["model"][key]) == value
    saved = json.loads((run / "run.json").read_text())["config"]["model"]
    assert str(saved.get(key)) != value  # the run itself is untouched
    monkeypatch.setenv("COLUMNS", "200")
    code, out, err = run_cli(["eval", "--run", str(run), "--k", "1,5", *results, "--decode", DECODE_ABLATION[model]],
                           capsys, monkeypatch)
    # the title wraps to the table's width; the label's brackets must survive (not read as markup)
    assert code == 0 and f"{model}[{key}={value}]on" in "".join(out.split())

    code, _, err = run_cli(["eval", "--run", str(run), "--decode", "beam_widht=3", *results], capsys, monkeypatch)
    assert code == 2 and "did you mean: beam_width" in " ".join(err.split())
    code, _, err = run_cli(["eval", "--run", str(run), "--decode", "beam_width=0", *results], capsys, monkeypatch)
    assert code == 2 and "beam_width" in err and "Traceback" not in err
    code, _, err = run_cli(["eval", "--run", str(run), "--decode", "d_model=64", *results], capsys, monkeypatch)
    assert code == 2 and "not a decoding option" in " ".join(err.split())


def test_decode_on_a_classic_backend_is_a_clear_error(seq_file, tmp_path, capsys, monkeypatch):
    run = tmp_path / "pop"
    assert run_cli(["train", "--model", "popularity", "--data", str(seq_file), "--out", str(run)],
                   capsys, monkeypatch)[0] == 0
    code, _, err = run_cli(["recommend", "--run", str(run), "--history", "1", "--decode", "beam_width=3"],
                           capsys, monkeypatch)
    assert code == 2 and "it has none" in " ".join(err.split())


@pytest.mark.parametrize(("command", "sections"), [
    ("train", ["[data]", "[train]", "[eval]", "[model]"]),
    ("eval", ["[eval]", "[model]"]),
    ("recommend", ["[model]"]),
])
def test_help_keeps_config_section_names(command, sections, capsys, monkeypatch):
    """Rich markup would read `[data]` as a style tag and drop it from the help text."""
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run_cli([command, "--help"], capsys, monkeypatch)
    assert code == 0
    for section in sections:
        assert section in out, f"{section} missing from `{command} --help`"


def test_format_options_are_named_by_direction(seq_file, tmp_path, capsys, monkeypatch):
    """`--data-format` is the input file format and `--format` an output format; the old
    spellings (`train --format`, `bench --report`) still work, with a note."""
    monkeypatch.setenv("COLUMNS", "200")
    _, train_help, _ = run_cli(["train", "--help"], capsys, monkeypatch)
    _, bench_help, _ = run_cli(["bench", "--help"], capsys, monkeypatch)
    assert "--data-format" in train_help and "--format" in bench_help and "--report" not in bench_help
    run = tmp_path / "run"
    code, _, err = run_cli(["train", "-m", "popularity", "--data", str(seq_file), "--format", "seq",
                            "--out", str(run)], capsys, monkeypatch)
    assert code == 0, err
    assert "--format is deprecated here; use --data-format" in " ".join(err.split())
    code, _, err = run_cli(["train", "-m", "popularity", "--data", str(seq_file), "--data-format", "seq",
                            "--out", str(tmp_path / "run2")], capsys, monkeypatch)
    assert code == 0 and "deprecated" not in err
