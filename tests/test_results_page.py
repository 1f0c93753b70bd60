"""docs/results.md, the README summary and docs/reproduce.md's commands are rebuilt from the records."""

from __future__ import annotations

from pathlib import Path

import pytest

from genrec_bench.errors import GenrecError
from genrec_bench.results import RunRecord
from genrec_bench.results_page import RECORDS, build, main, outputs, splice

ROOT = Path(__file__).resolve().parents[1]


def test_committed_pages_match_a_rebuild() -> None:
    for path, text in outputs(ROOT, ROOT / RECORDS).items():
        assert path.read_text(encoding="utf-8") == text, f"{path.relative_to(ROOT)} is stale: run `make results`"


def test_check_mode_reports_a_stale_page(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    readme = "x\n<!-- generated:beauty-summary -->\nold\n<!-- /generated:beauty-summary -->\n"
    (tmp_path / "README.md").write_text(readme)
    (tmp_path / "docs" / "reproduce.md").write_text("<!-- generated:commands -->\n<!-- /generated:commands -->\n")
    records = tmp_path / "records"
    assert main(["--root", str(tmp_path), "--results", str(records), "--check"]) == 1
    assert not (tmp_path / "docs" / "results.md").exists()
    assert main(["--root", str(tmp_path), "--results", str(records)]) == 0
    assert main(["--root", str(tmp_path), "--results", str(records), "--check"]) == 0
    assert "old" not in (tmp_path / "README.md").read_text() and "_No beauty records._" in (tmp_path / "README.md"
                                                                                          ).read_text()


def test_splice_needs_its_markers() -> None:
    assert splice("a\n<!-- generated:x -->\nold\n<!-- /generated:x -->\nb", "x", "new\n", "f") == (
        "a\n<!-- generated:x -->\nnew\n<!-- /generated:x -->\nb")
    with pytest.raises(GenrecError, match="generated:x"):
        splice("no markers", "x", "new\n", "f")


def rec(label: str, seed: int, run_id: str, model: str = "mindrec", **model_keys: object) -> RunRecord:
    train = {"epochs": 14, "seed": seed, "valid_sample": "random"}
    return RunRecord(run_id=run_id, model=model, label=label, dataset="beauty", split="test", fingerprint="fp",
                     seed=seed, ks=[1, 5, 10], metrics={}, users=[0, 1, 2], ranks=[1, 0, 3 + seed],
                     config={"data": {}, "train": train, "eval": {"ks": [1, 5, 10, 20]}, "model": model_keys},
                     created="2026-01-01T00:00:00+00:00")


def test_commands_loop_over_seeds_and_share_a_training_with_decode_rows() -> None:
    base = [rec("mindrec (tree)", s, f"m{s}", order="confidence", layers=2) for s in (0, 1)]
    ablation = rec("mindrec[order=left_to_right]", 0, "m0", order="left_to_right", layers=2)
    legacy = rec("sasrec", 0, "s0", model="sasrec")
    del legacy.config["train"]["valid_sample"]  # recorded before the key existed: it ran with "first"
    text = build([*base, ablation, legacy]).commands
    assert "for seed in 0 1; do" in text and '--seed "$seed"' in text
    assert "--set train.epochs=14" in text and "--set model.layers=2" in text and "train.seed" not in text
    assert "--set train.valid_sample=first" in text.split("**sasrec**")[1]
    decode = text.split("**mindrec[order=left_to_right]**")[1].split("\n**", 1)[0]
    assert "genrec-bench train" not in decode and "--decode order=left_to_right" in decode
    assert "trained under **mindrec (tree)**" in decode and "runs/beauty-mindrec-tree-s0" in decode
    assert "--k 1,5,10" in decode  # the record's cut-offs differ from its [eval] ks


def test_summary_keeps_the_best_row_of_each_backend() -> None:
    records = [rec("tiger (a)", 0, "t1", model="tiger"), rec("tiger (b)", 0, "t2", model="tiger"),
               rec("mindrec", 0, "m1")]
    records[1].ranks = [1, 1, 0]
    summary = build(records).summary
    rows = [line.split(" | ")[0].strip("| *") for line in summary.splitlines() if line.startswith("| ")]
    assert rows[1:3] == ["tiger (b)", "mindrec"] and "tiger (a)" not in summary


def test_matrix_puts_each_backends_best_row_beside_its_papers_number() -> None:
    records = [rec("tiger (a)", 0, "t1", model="tiger"), rec("tiger (b)", 0, "t2", model="tiger"),
               rec("sasrec", 0, "s1", model="sasrec")]
    records[1].ranks = [1, 1, 0]  # NDCG@10 (1 + 1 + 0) / 3
    page = build(records).results
    matrix = page.split("## Summary: NDCG@10")[1].split("\n## ")[0]
    header, _, row = [line for line in matrix.splitlines() if line.startswith("|")]
    assert header == "| dataset | tiger | sasrec |"
    # The references name TIGER's and SASRec's published Beauty NDCG@10: 0.0384 and 0.0318.
    assert row == "| beauty | 0.6667 (0.0384) | 0.5000 (0.0318) |"
