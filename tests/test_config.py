from __future__ import annotations

import pytest

from genrec_bench.config import RunConfig, load_run_config, run_config_from_dict, with_legacy_values
from genrec_bench.errors import GenrecError


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
