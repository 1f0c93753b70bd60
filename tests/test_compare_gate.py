"""`compare --fail-if-worse`: the CI regression gate fails only on a significant drop on one split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli import run_cli

from genrec_bench.errors import GenrecError
from genrec_bench.gate import gate_verdict
from genrec_bench.metrics import PairedResult
from genrec_bench.results import RunRecord, write_record

USERS = 300


def saved(root: Path, run_id: str, ranks: list[int], fingerprint: str = "fpA") -> str:
    rec = RunRecord(run_id=run_id, model="sasrec", dataset="beauty", split="test", fingerprint=fingerprint, seed=0,
                    ks=[1, 5, 10], metrics={}, users=list(range(len(ranks))), ranks=ranks, config={},
                    created="2026-01-01T00:00:00+00:00")
    return str(write_record(rec, root))


# The baseline finds every third target at rank 1..10; the regressed run loses most of them.
BASE = [(u % 10) + 1 if u % 3 == 0 else 0 for u in range(USERS)]
WORSE = [r if u % 30 == 0 else 0 for u, r in enumerate(BASE)]
BETTER = [r if r else (1 if u % 3 == 1 else 0) for u, r in enumerate(BASE)]
NOISE = [0 if u == 0 else r for u, r in enumerate(BASE)]  # one user fewer: worse, but not significantly


@pytest.mark.parametrize(("new", "code", "verdict"), [
    (WORSE, 1, "FAIL: ndcg@10"),
    (BASE, 0, "ok: ndcg@10 A - B = +0.0000"),
    (BETTER, 0, "not significantly worse"),
    (NOISE, 0, "not significantly worse"),
])
def test_gate_fails_only_on_a_significant_drop(tmp_path, capsys, monkeypatch, new, code, verdict) -> None:
    base, cand = saved(tmp_path, "base", BASE), saved(tmp_path, "new", new)
    got, _, err = run_cli(["compare", cand, base, "--fail-if-worse", "ndcg@10", "--results", str(tmp_path)],
                          capsys, monkeypatch)
    assert got == code, err
    assert verdict in err


def test_gate_verdict_in_json_and_alpha_is_honoured(tmp_path, capsys, monkeypatch) -> None:
    base, cand = saved(tmp_path, "base", BASE), saved(tmp_path, "new", WORSE)
    code, out, _ = run_cli(["compare", cand, base, "--fail-if-worse", "Hit@10", "--json"], capsys, monkeypatch)
    gate = json.loads(out)["gate"]
    assert code == 1 and gate["worse"] and gate["metric"] == "hit@10" and gate["diff"] < 0
    code, out, _ = run_cli(["compare", cand, base, "--fail-if-worse", "hit@10", "--alpha", str(gate["p_value"] / 2),
                            "--json"], capsys, monkeypatch)
    assert code == 0 and not json.loads(out)["gate"]["worse"]


def test_gate_refuses_runs_on_different_splits(tmp_path, capsys, monkeypatch) -> None:
    base, cand = saved(tmp_path, "base", BASE), saved(tmp_path, "new", WORSE, fingerprint="fpB")
    code, _, err = run_cli(["compare", cand, base, "--fail-if-worse", "ndcg@10"], capsys, monkeypatch)
    assert code == 2 and "different splits" in err and "fingerprint" in err


def test_gate_names_the_metrics_it_knows(tmp_path, capsys, monkeypatch) -> None:
    base, cand = saved(tmp_path, "base", BASE), saved(tmp_path, "new", WORSE)
    code, _, err = run_cli(["compare", cand, base, "--fail-if-worse", "ndcg@20"], capsys, monkeypatch)
    assert code == 2 and "ndcg@10" in err and "mrr@10" in err


def test_help_names_the_exit_codes(capsys, monkeypatch) -> None:
    code, out, _ = run_cli(["compare", "--help"], capsys, monkeypatch)
    assert code == 0 and "--fail-if-worse" in out and "1 = A is significantly worse" in out and "2 = refused" in out


def test_the_gate_verdict_is_a_pure_function_of_the_paired_rows() -> None:
    def row(diff: float, p: float) -> PairedResult:
        return PairedResult(metric="ndcg@10", mean_a=0.1 + diff, mean_b=0.1, diff=diff, ci_low=diff - 0.01,
                            ci_high=diff + 0.01, p_value=p)

    assert gate_verdict([row(-0.02, 0.001)], "NDCG@10", 0.05)["worse"] is True
    assert gate_verdict([row(-0.02, 0.2)], "ndcg@10", 0.05)["worse"] is False  # a drop within noise
    assert gate_verdict([row(+0.02, 0.001)], "ndcg@10", 0.05)["verdict"].startswith("ok:")
    with pytest.raises(GenrecError, match="not a metric of these runs"):
        gate_verdict([row(-0.02, 0.001)], "hit@3", 0.05)
