"""Run records: atomic unique writes, concurrent writers, lenient loading, identity keys."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pytest

from genrec_bench import runtime
from genrec_bench.config import RunConfig
from genrec_bench.errors import GenrecError
from genrec_bench.results import (
    SCHEMA_VERSION,
    RunRecord,
    collect_env,
    find_record,
    load_records,
    record_key,
    results_dir,
    write_record,
)


def make_record(run_id: str = "run", seed: int = 0, **overrides) -> RunRecord:
    fields = dict(run_id=run_id, model="sasrec", dataset="beauty", split="test", fingerprint="fp0", seed=seed,
                  ks=[1, 5, 10], metrics={"hit@1": 0.25, "ndcg@10": 0.4, "mrr@10": 0.3}, users=[3, 1, 2, 0],
                  ranks=[1, 0, 7, 2], config={"data": {"kcore": 5}, "train": {"lr": 0.001}, "eval": {"ks": [1, 5, 10]},
                                                "model": {"d": 8}},
                  fit={"seconds": 1.5, "history": [{"epoch": 1, "loss": 2.0, "valid_ndcg@10": 0.1}]},
                  eval_seconds=0.2, users_per_second=20.0, env={"torch": "x"}, created="2026-01-01T00:00:00+00:00")
    fields.update(overrides)
    return RunRecord(**fields)


def test_label_defaults_to_model() -> None:
    assert make_record().label == "sasrec"
    assert make_record(label="sasrec[big]").label == "sasrec[big]"


def test_write_load_round_trip_with_unique_names(tmp_path: Path) -> None:
    rec = make_record("sasrec/beauty s0")
    first, second = write_record(rec, tmp_path), write_record(rec, tmp_path)
    assert first != second and first.parent == second.parent == tmp_path
    assert first.name.startswith("sasrec_beauty_s0-") and first.suffix == ".json"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, second.name])  # no temp left over
    records, warnings = load_records(tmp_path)
    assert warnings == []
    assert records == [rec, rec]


def test_write_fills_created_and_accepts_numpy(tmp_path: Path) -> None:
    import numpy as np

    rec = make_record(created="", users=np.arange(4), ranks=np.array([1, 0, 2, 3]), seed=np.int64(3))
    write_record(rec, tmp_path)
    (loaded,), warnings = load_records(tmp_path)
    assert not warnings and loaded.created.startswith("20") and loaded.users == [0, 1, 2, 3] and loaded.seed == 3


def test_failed_write_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(runtime.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        write_record(make_record(), tmp_path)
    assert list(tmp_path.iterdir()) == []


def _writer(args: tuple[str, int]) -> int:
    root, worker = args
    for i in range(20):
        write_record(make_record(f"w{worker}-{i}", seed=i, users=list(range(300)), ranks=[i % 11] * 300), Path(root))
    return worker


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    with mp.get_context("fork").Pool(3) as pool:
        assert sorted(pool.map(_writer, [(str(tmp_path), w) for w in range(3)])) == [0, 1, 2]
    records, warnings = load_records(tmp_path)
    assert warnings == []
    assert sorted(r.run_id for r in records) == sorted(f"w{w}-{i}" for w in range(3) for i in range(20))
    assert all(r.ranks == [r.seed % 11] * 300 for r in records)


def test_damaged_files_become_warnings(tmp_path: Path) -> None:
    good = write_record(make_record("good"), tmp_path)
    text = good.read_text()
    (tmp_path / "truncated.json").write_text(text[: len(text) // 2])
    (tmp_path / "garbage.json").write_bytes(b"\xff\xfe\x00not json")
    (tmp_path / "schema.json").write_text(text.replace(f'"schema": {SCHEMA_VERSION}', '"schema": 99'))
    obj = json.loads(text)
    del obj["fingerprint"]
    (tmp_path / "missing.json").write_text(json.dumps(obj))
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "mismatch.json").write_text(text.replace('"users": [3,1,2,0]', '"users": [3,1]'))
    (tmp_path / ".in-flight.json.tmp").write_text("{")
    records, warnings = load_records(tmp_path)
    assert [r.run_id for r in records] == ["good"]
    assert len(warnings) == 6
    for name, reason in [("truncated", "not readable as JSON"), ("garbage", "not readable as JSON"),
                         ("schema", "schema 99"), ("missing", "missing field(s) fingerprint"),
                         ("list", "expected a JSON object"), ("mismatch", "'users' has 2 entries")]:
        (hit,) = [w for w in warnings if str(tmp_path / f"{name}.json") in w]
        assert reason in hit


def test_load_from_missing_dir_is_empty(tmp_path: Path) -> None:
    assert load_records(tmp_path / "nope") == ([], [])


def test_results_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENREC_BENCH_RESULTS", str(tmp_path / "env"))
    assert results_dir(tmp_path / "cli") == tmp_path / "cli"
    assert results_dir() == tmp_path / "env"
    monkeypatch.delenv("GENREC_BENCH_RESULTS")
    assert results_dir() == Path("results")


def test_record_key_identifies_the_work_not_the_outcome() -> None:
    base = make_record()
    assert record_key(base) == record_key(make_record(run_id="other", ranks=[0, 0, 0, 0], created="later"))
    reordered = make_record(config={"model": {"d": 8}, "eval": {"ks": [1, 5, 10]}, "train": {"lr": 0.001},
                                    "data": {"kcore": 5}})
    assert record_key(base) == record_key(reordered)
    assert record_key(base) == record_key(make_record(label="sasrec"))
    for change in ({"seed": 1}, {"label": "sasrec[big]"}, {"fingerprint": "fp1"}, {"split": "valid"},
                   {"config": {"data": {"kcore": 10}}}, {"dataset": "toys"}):
        assert record_key(make_record(**change)) != record_key(base), change


def test_find_record_by_id_or_file(tmp_path: Path) -> None:
    write_record(make_record("abc", created="2026-01-01T00:00:00+00:00", ranks=[0, 0, 0, 0]), tmp_path)
    newer = write_record(make_record("abc", created="2026-01-02T00:00:00+00:00"), tmp_path)
    write_record(make_record("xyz"), tmp_path)
    assert find_record("abc", tmp_path).ranks == [1, 0, 7, 2]  # evaluated twice: the newest
    assert find_record(str(newer), tmp_path).run_id == "abc"
    with pytest.raises(GenrecError, match="no run record with run id 'abd'.*did you mean: abc"):
        find_record("abd", tmp_path)
    write_record(make_record("abc", split="valid"), tmp_path)
    with pytest.raises(GenrecError, match="several splits or labels; pass one file"):
        find_record("abc", tmp_path)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(GenrecError, match="broken.json: skipped, not readable"):
        find_record(str(broken), tmp_path)


def test_env_records_the_versions_that_change_numbers() -> None:
    env = collect_env("cpu")
    for name in ("python", "torch", "numpy", "scikit-learn", "scipy", "polars", "transformers", "git_commit"):
        assert name in env
    assert env["scikit-learn"] and env["polars"] and env["device"] == "cpu"


def test_record_key_ignores_config_fields_at_their_default() -> None:
    # A record written before a config field existed must still match a job whose config has it
    # at its default (otherwise adding any field makes `bench` redo every finished job).
    defaults = RunConfig().to_dict()
    old = make_record(config={"data": {"kcore": 10}, "train": {"lr": 0.003}, "model": {"d": 8}})
    new = make_record(config={"data": defaults["data"] | {"kcore": 10},
                              "train": defaults["train"] | {"lr": 0.003, "valid_sample": "first"},
                              "eval": defaults["eval"], "model": {"d": 8}})
    assert record_key(old) == record_key(new)
    # ... but not a job where a field whose default changed behaviour (LEGACY_VALUES) is at its new default.
    assert record_key(old) != record_key(make_record(config=defaults | {"data": new.config["data"],
                                                                        "train": defaults["train"] | {"lr": 0.003},
                                                                        "model": {"d": 8}}))
    changed = make_record(config={"data": {"kcore": 10}, "train": {"lr": 0.003, "keep": "last"}, "model": {"d": 8}})
    assert record_key(changed) != record_key(old)
    # `model` belongs to the backend: an explicit key there is part of the identity even at a default.
    assert record_key(make_record(config={"data": {"kcore": 10}, "train": {"lr": 0.003}, "model": {"d": 8, "x": 0}})) \
        != record_key(old)


def test_old_records_mrr_reads_as_mrr_at_the_largest_cutoff(tmp_path: Path) -> None:
    """Records written before MRR was named by its cut-off keep their value under `mrr@K`."""
    old = make_record().to_dict()
    old["metrics"] = {"hit@1": 0.25, "ndcg@10": 0.4, "mrr": 0.3}
    rec = RunRecord.from_dict(old)
    assert rec.metrics == {"hit@1": 0.25, "ndcg@10": 0.4, "mrr@10": 0.3}
