"""`--model cornac:NAME`: one-line errors without Cornac and for an unknown name, and, where Cornac
is installed, its models trained on our split pass the conformance check and our evaluation."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from test_cli import run_cli

from conftest import walk_split
from genrec_bench.config import TrainConfig
from genrec_bench.errors import GenrecError
from genrec_bench.models.cornac import INSTALL, SUPPORTED, model
from genrec_bench.models.registry import backend_class, backend_spec, build_backend, contract_problem
from genrec_bench.testing import check_backend

NEEDS_CORNAC = "Cornac is an optional extra: pip install -e .[cornac]"


@pytest.fixture
def no_cornac(monkeypatch: pytest.MonkeyPatch) -> None:
    """`import cornac` raises ImportError, as where the extra is not installed."""
    monkeypatch.setitem(sys.modules, "cornac", None)


@pytest.mark.usefixtures("no_cornac")
def test_without_cornac_the_error_is_one_line_naming_the_install_command():
    with pytest.raises(GenrecError) as err:
        backend_class("cornac:RPG")
    assert "\n" not in str(err.value)
    assert "pip install -e .[cornac]" in str(err.value) and INSTALL in str(err.value)


@pytest.mark.usefixtures("no_cornac")
def test_without_cornac_train_stops_with_the_install_command(seq_file, tmp_path, capsys, monkeypatch):
    code, _, err = run_cli(["train", "--model", "cornac:RPG", "--data", str(seq_file), "--out", str(tmp_path / "r")],
                           capsys, monkeypatch)
    assert code == 2
    assert "pip install -e .[cornac]" in " ".join(err.split())
    assert "Traceback" not in err


def test_an_unknown_cornac_model_lists_the_supported_ones():
    with pytest.raises(GenrecError) as err:
        backend_spec("cornac:NoSuchModel")
    assert all(f"cornac:{name}" in str(err.value) for name in SUPPORTED)


def test_only_the_exact_prefix_goes_to_the_adapter():
    assert backend_spec("cornacish.module:Class").origin == "module path"
    assert backend_spec("cornac:SASRec").target == "genrec_bench.models.cornac.model:CornacSASRec"


@pytest.mark.parametrize("name", SUPPORTED)
def test_every_supported_name_has_a_backend_class(name):
    cls = getattr(model, f"Cornac{name}")
    assert cls.cornac_model == name
    assert contract_problem(cls) == ""


@pytest.mark.parametrize("name", ["cornac:SASRec", "cornac:TIGER"])
def test_cornac_models_honour_the_contract(name):
    pytest.importorskip("cornac", reason=NEEDS_CORNAC)
    report = check_backend(name)
    assert report.users > 0


def test_diffgrm_takes_our_semantic_id_table():
    pytest.importorskip("cornac", reason=NEEDS_CORNAC)
    check_backend("cornac:DiffGRM", **model.CornacDiffGRM.test_params(), semantic_ids="rkmeans")


def test_rpg_quantises_our_features_and_ranks_after_a_reload(tmp_path):
    """faiss OPQ needs at least 256 items (one per code), more than check_backend's tiny split has."""
    pytest.importorskip("cornac", reason=NEEDS_CORNAC)
    data = walk_split(tmp_path, n_users=260, n_items=260, length=5)
    cls = backend_class("cornac:RPG")
    backend = build_backend(cls, cls.test_params())
    backend.fit(data, TrainConfig(epochs=1, batch_size=64, device="cpu"))
    histories, _ = data.to_tensors("test")
    ranked = backend.recommend(histories[:8], 10)
    assert ((ranked.items >= 0) & (ranked.items < data.n_items)).all()
    backend.save(tmp_path / "saved")
    assert torch.equal(cls.load(tmp_path / "saved").recommend(histories[:8], 10).items, ranked.items)


def test_a_misspelt_cornac_argument_stops_before_training():
    pytest.importorskip("cornac", reason=NEEDS_CORNAC)
    with pytest.raises(GenrecError, match="embeding_dim"):
        build_backend(backend_class("cornac:SASRec"), {"params": {"embeding_dim": 8}})
    with pytest.raises(GenrecError, match="model.params"):
        build_backend(backend_class("cornac:SASRec"), {"params": {"n_epochs": 8}})


def test_a_cornac_run_is_trained_and_scored_by_our_evaluation(seq_file, tmp_path, capsys, monkeypatch):
    pytest.importorskip("cornac", reason=NEEDS_CORNAC)
    run = tmp_path / "run"
    params = "{" + ", ".join(f"{k} = {v}" for k, v in model.TEST_PARAMS["SASRec"].items()) + "}"  # a TOML table
    sets = ["model.epochs=1", f"model.params={params}", "train.device=cpu", "eval.ks=[1, 5]"]
    code, _, err = run_cli(["train", "--model", "cornac:SASRec", "--data", str(seq_file), "--out", str(run),
                            *(arg for s in sets for arg in ("--set", s))], capsys, monkeypatch)
    assert code == 0, err
    code, out, err = run_cli(["eval", "--run", str(run), "--json"], capsys, monkeypatch)
    assert code == 0, err
    assert {"hit@5", "ndcg@5"} <= set(json.loads(out)["metrics"])


def test_whiten_gives_cornac_unit_variance_directions(tmp_path):
    """`model.whiten` hands Cornac the vectors genrec-bench's rpg quantises (`model.whiten`), not the raw ones."""
    pytest.importorskip("cornac", reason=NEEDS_CORNAC)
    data = walk_split(tmp_path, n_users=60, n_items=40, length=5)
    cls = backend_class("cornac:RPG")
    raw = build_backend(cls, {}).train_set(data, 0).item_feature.features
    feats = build_backend(cls, {"whiten": 4}).train_set(data, 0).item_feature.features
    assert feats.shape == (data.n_items, 4) and raw.shape[1] > 4
    assert abs(feats.mean(axis=0)).max() < 1e-4
    assert abs(feats.std(axis=0, ddof=1) - 1).max() < 1e-3


def test_whiten_rejects_a_negative_width():
    with pytest.raises(GenrecError, match="model.whiten"):
        model.CornacConfig(whiten=-1)
