from __future__ import annotations

import pytest

from genrec_bench.baselines.sasrec import SASRecConfig
from genrec_bench.config import RunConfig, from_dict, load_run_config, run_config_from_dict, with_legacy_values
from genrec_bench.errors import GenrecError
from genrec_bench.models.mindrec import MindRecConfig
from genrec_bench.results import run_key


def test_defaults_and_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[train]\nepochs = 3\nlr = 1\n[model]\nhidden = 32\n")
    cfg = load_run_config(path, ["train.batch_size=8", "data.exclude_seen=true", "eval.ks=[1,3]"])
    assert cfg.train.epochs == 3 and cfg.train.lr == 1.0 and cfg.train.batch_size == 8
    assert cfg.data.exclude_seen is True and cfg.eval.ks == (1, 3)
    assert cfg.model == {"hidden": 32}


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("[train]\nepohcs = 3\n", r"unknown config key 'train.epohcs' \(did you mean: epochs\?\)"),
        ("[trian]\n", r"unknown config section 'trian' \(did you mean: train\?\)"),
        ("[train]\nepochs = 'x'\n", r"'train.epochs' expects int"),
        ("[train]\nepochs = 0\n", r"'train.epochs' must be an integer >= 1"),
        ("[eval]\nks = [0]\n", r"'eval.ks' must be a list of integers >= 1"),
        ("[train\n", "invalid TOML"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path, text, pattern):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(GenrecError, match=pattern):
        load_run_config(path)


def test_bad_override():
    with pytest.raises(GenrecError, match="key=value"):
        load_run_config(None, ["train.epochs"])


def test_stored_config_without_a_newer_field_reads_with_the_value_it_ran_with():
    stored = RunConfig().to_dict()
    del stored["train"]["valid_sample"]  # a run.json written before the field existed
    assert run_config_from_dict(with_legacy_values(stored)).train.valid_sample == "first"
    assert run_config_from_dict(with_legacy_values(RunConfig().to_dict())).train.valid_sample == "random"
    with pytest.raises(GenrecError, match="train.valid_sample"):
        run_config_from_dict({"train": {"valid_sample": "last"}})


def test_earlier_key_names_are_read_as_todays_and_both_at_once_is_an_error() -> None:
    assert from_dict(SASRecConfig, {"max_len": 7}, "model").max_history == 7
    cfg = from_dict(MindRecConfig, {"history_repr": "id_codes"}, "model")
    assert cfg.history_encoding == "item_sum_id"
    with pytest.raises(GenrecError, match="name the same setting"):
        from_dict(SASRecConfig, {"max_len": 7, "max_history": 7}, "model")


def test_a_record_written_with_an_earlier_key_name_is_the_same_work() -> None:
    def key(model_cfg: dict) -> str:
        return run_key("mindrec", "mindrec", "beauty", "test", "fp", 0, {"model": model_cfg})

    assert key({"history_repr": "id_codes"}) == key({"history_encoding": "item_sum_id"})
    assert key({"history_repr": "codes"}) != key({"history_encoding": "item_sum_id"})
