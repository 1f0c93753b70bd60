"""Cold-start and in-set slices: which users they hold, and how a report shows them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from genrec_bench.config import DataConfig
from genrec_bench.data.loaders import Interactions, ItemMeta
from genrec_bench.data.split import make_split
from genrec_bench.errors import GenrecError
from genrec_bench.metrics import summarise
from genrec_bench.report import leaderboard
from genrec_bench.results import RunRecord
from genrec_bench.slices import ColdStartLookup, cold_start_users, slice_record, with_slices
from tests.test_report import GOOD, record


def split_with_new_items(tmp_path: Path):
    """Users walk the warm items 0..9; every third user's last (test) item is an item of its own, and
    user 4's validation item is one nobody trains on."""
    rows = []
    for u in range(12):
        seq = [f"w{(u + j) % 10}" for j in range(5)]
        if u % 3 == 0:
            seq[-1] = f"new{u}"
        if u == 4:
            seq[-2] = "fresh"
        rows += [(f"u{u}", item, float(t)) for t, item in enumerate(seq)]
    frame = pl.DataFrame(rows, schema={"user_id": pl.String, "item_id": pl.String, "timestamp": pl.Float64},
                         orient="row").with_row_index("row")
    (tmp_path / "tiny.txt").write_text("tiny\n")
    inter = Interactions(frame=frame.select("user_id", "item_id", "timestamp", "row"), meta=ItemMeta(),
                         source=tmp_path / "tiny.txt")
    return make_split(inter, DataConfig(kcore=0), "tiny")


def test_cold_start_users_are_those_whose_target_is_never_trained_on(tmp_path):
    data = split_with_new_items(tmp_path)
    users = np.arange(data.n_users)
    trained = {int(i) for u in users for i in data.sequence(u)[:-2]}
    for split, offset in (("test", 1), ("valid", 2)):
        expected = [u for u in users if int(data.sequence(u)[-offset]) not in trained]
        assert cold_start_users(data, split, users).tolist() == expected
    raw = {u: data.user_ids[u] for u in cold_start_users(data, "test", users)}
    assert sorted(raw.values()) == ["u0", "u3", "u6", "u9"]
    assert [data.user_ids[u] for u in cold_start_users(data, "valid", users)] == ["u4"]


def test_slices_partition_the_users_and_recompute_metrics():
    rec = record("sasrec", GOOD)
    cold = np.array([1, 6, 9])
    warm, new = slice_record(rec, cold, "in-set"), slice_record(rec, cold, "cold-start")
    assert sorted(warm.users + new.users) == rec.users and new.users == [1, 6, 9]
    assert new.ranks == [GOOD[1], GOOD[6], GOOD[9]]
    assert new.metrics == summarise(np.array(new.ranks), tuple(rec.ks))
    assert new.dataset == "beauty · cold-start" and warm.dataset == "beauty · in-set"
    try:
        slice_record(rec, cold, "cold")
        raise AssertionError("an unknown slice name must fail")
    except GenrecError as exc:
        assert "in-set, cold-start" in str(exc)


def test_report_boards_per_slice_with_their_user_counts():
    recs = [record("sasrec", GOOD), record("tiger", GOOD)]
    for rec in recs:
        rec.cold_users = [0, 5]  # recorded, so nothing is rebuilt
    boards = {b.dataset: b for b in leaderboard(with_slices(recs, ColdStartLookup()), n_boot=50)}
    assert list(boards) == ["beauty", "beauty · cold-start", "beauty · in-set"]  # each slice beside its board
    assert [r.n_users for r in boards["beauty · cold-start"].rows] == [2, 2]
    assert [r.n_users for r in boards["beauty · in-set"].rows] == [10, 10]


def test_records_without_recorded_users_are_rebuilt_or_refused(tmp_path):
    rec = record("sasrec", GOOD)  # no cold_users, and a dataset/fingerprint that cannot be rebuilt here
    rec.fingerprint = "0" * 16
    try:
        ColdStartLookup(tmp_path)(rec)
        raise AssertionError("an unrebuildable record must fail")
    except GenrecError as exc:
        assert "evaluate the run again" in str(exc)


def test_eval_records_carry_their_cold_start_users(seq_file, tmp_path, capsys, monkeypatch):
    from tests.test_cli import run_cli

    run = tmp_path / "run"
    assert run_cli(["train", "-m", "popularity", "--data", str(seq_file), "-o", str(run)], capsys, monkeypatch)[0] == 0
    code, out, err = run_cli(["eval", "--run", str(run), "--json", "--k", "1,5"], capsys, monkeypatch)
    assert code == 0, err
    stored = RunRecord.from_dict(json.loads(Path(json.loads(out)["record"]).read_text()))
    assert stored.cold_users is not None and set(stored.cold_users) <= set(stored.users)
    code, out, err = run_cli(["report", "--slices", "-f", "markdown"], capsys, monkeypatch)
    assert code == 0, err
    assert "in-set" in out


def test_backfill_rebuilds_the_split_of_an_older_record(tmp_path):
    from genrec_bench.config import RunConfig
    from genrec_bench.pipeline import DataSource, load_split
    from genrec_bench.results import write_record
    from genrec_bench.slices import backfill

    cfg = RunConfig()
    data = load_split(DataSource(dataset="beauty"), cfg)  # embedded: present on every machine
    users = np.arange(0, data.n_users, 7)
    rec = RunRecord(run_id="old", model="popularity", dataset="beauty", split="test", fingerprint=data.fingerprint,
                    seed=0, ks=[10], metrics={}, users=users.tolist(), ranks=[0] * len(users),
                    config={"data": {"kcore": cfg.data.kcore}})
    path = write_record(rec, tmp_path)
    assert backfill(tmp_path, "beauty") == 1 and backfill(tmp_path, "beauty") == 0  # once, then nothing to do
    stored = RunRecord.from_dict(json.loads(path.read_text()))
    assert stored.cold_users == cold_start_users(data, "test", users).tolist()
    assert stored.cold_users and set(stored.cold_users) <= set(users.tolist())
