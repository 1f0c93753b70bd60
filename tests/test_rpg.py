"""RPG's parts: OPQ codes, the parallel code heads and their loss, the item graph, graph decoding
against exact scoring, and the backend through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_cli import run_cli
from test_sasrec import alternating_split

from genrec_bench.config import TrainConfig
from genrec_bench.decoding.repeats import REPEAT_SCALE
from genrec_bench.errors import GenrecError
from genrec_bench.items.product_quantize import code_collisions, opq_codes, whitened
from genrec_bench.models.rpg import RPG, CodeWindows, RPGConfig, RPGModule, graph_search, item_graph
from genrec_bench.models.rpg.model import OFFICIAL
from genrec_bench.runtime import seed_everything


def test_opq_codes_have_one_code_per_position_and_equal_rows_share_them() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(150, 8)), np.repeat(rng.normal(size=(1, 8)), 10, axis=0)]).astype(np.float32)
    codes = opq_codes(x, n_codes=2, bits=2, iters=3)
    assert codes.shape == (160, 2) and codes.dtype == np.int64
    assert codes.min() >= 0 and codes.max() < 4
    assert len({tuple(c) for c in codes[150:]}) == 1  # equal rows, equal codes (which ones: k-means decides)
    assert code_collisions(codes) >= 10


def test_opq_codes_work_on_catalogues_smaller_than_the_feature_width() -> None:
    x = np.random.default_rng(1).normal(size=(20, 64)).astype(np.float32)  # faiss's OPQ needs rows >= dims
    codes = opq_codes(x, n_codes=4, bits=2, iters=2)
    assert codes.shape == (20, 4) and codes.max() < 4


def test_opq_codes_name_the_key_to_lower_when_the_catalogue_is_too_small() -> None:
    with pytest.raises(GenrecError, match="model.code_bits"):
        opq_codes(np.zeros((10, 4), dtype=np.float32), n_codes=2, bits=8)


def test_whitening_decorrelates_to_unit_variance_and_drops_empty_directions() -> None:
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(3, 5))
    x = (rng.normal(size=(400, 3)) * [5.0, 1.0, 0.1]) @ mix  # rank 3 in 5 dimensions
    w = whitened(x.astype(np.float32), 512)
    assert w.shape == (400, 3)  # at most the rank, whatever was asked
    np.testing.assert_allclose(np.cov(w, rowvar=False), np.eye(3), atol=1e-4)
    assert whitened(x.astype(np.float32), 2).shape == (400, 2)


def tiny_module(n_items: int = 9, codes: int = 3, bits: int = 2, seed: int = 0, **keys: object) -> RPGModule:
    torch.manual_seed(seed)
    cfg = RPGConfig(hidden=8, layers=1, heads=1, dropout=0.0, max_history=4, codes=codes, code_bits=bits,
                    **keys)  # type: ignore[arg-type]
    module = RPGModule(n_items, 4, cfg).eval()
    module.set_codes(torch.randint(0, 1 << bits, (n_items, codes), generator=torch.Generator().manual_seed(seed)))
    return module


def test_code_heads_give_a_distribution_per_position_and_items_the_mean_of_their_codes() -> None:
    module = tiny_module()
    logp = module.code_logprobs(torch.randn(5, 8))
    assert logp.shape == (5, 3, 4)
    torch.testing.assert_close(logp.exp().sum(dim=2), torch.ones(5, 3))
    items = torch.tensor([[0, 4, 8], [2, 2, 1], [7, 3, 5], [1, 0, 6], [8, 8, 8]])
    codes = module.tokens[:9] - torch.arange(3) * 4
    want = torch.stack([torch.stack([logp[b, torch.arange(3), codes[i]].mean() for i in row])
                        for b, row in enumerate(items.tolist())])
    torch.testing.assert_close(module.item_scores(logp, items), want)
    torch.testing.assert_close(module.all_scores(logp), module.item_scores(logp, torch.arange(9).expand(5, 9)))


def test_an_items_input_is_the_scaled_mean_of_its_code_embeddings() -> None:
    module = tiny_module()
    tokens = module.tokens[4]
    want = module.item.weight[tokens].mean(dim=0) * (8 * 3) ** 0.5  # sqrt(D * M)
    torch.testing.assert_close(module.embed(torch.tensor([[4]]))[0, 0], want)


def test_the_official_input_is_the_plain_mean_of_the_code_embeddings() -> None:
    module = tiny_module(code_mean_scale=False)
    tokens = module.tokens[4]
    torch.testing.assert_close(module.embed(torch.tensor([[4]]))[0, 0], module.item.weight[tokens].mean(dim=0))


def test_the_run_record_lists_each_departure_from_the_official_settings() -> None:
    data = alternating_split()  # 12 items: 2-bit codes, so code_bits departs too
    official = {**OFFICIAL, "hidden": 16, "ffn": 32, "heads": 4, "max_history": 0, "codes": 4, "code_bits": 2}
    model = RPG(RPGConfig(**official))  # type: ignore[arg-type]
    report = model.fit(data, TrainConfig(epochs=1, batch_size=64, patience=0, device="cpu"))
    assert report.extra["departures"] == [
        "features=auto (official: text-embedding-3-large of the item text, PCA-512 whitened)",
        "hidden=16 (official: 448)", "ffn=32 (official: 1024)", "code_bits=2 (official: 8)",
        "max_history=8 (official: 50)"]


def test_the_loss_is_the_cross_entropy_of_every_code_of_every_next_item() -> None:
    module = tiny_module()
    pad = module.n_items
    batch = torch.tensor([[pad, 1, 2, 3, 4], [0, 6, 5, 8, 7]])
    loss = CodeWindows(module, batch).loss(module, batch)
    inputs, targets = batch[:, :-1], batch[:, 1:]
    real = inputs != pad
    logp = module.code_logprobs(module(inputs)[real])
    codes = module.tokens[targets[real]] - torch.arange(3) * 4
    want = -torch.stack([logp[t, m, codes[t, m]] for t in range(len(codes)) for m in range(3)]).mean()
    torch.testing.assert_close(loss, want)


def test_repeat_offsets_shift_exactly_the_codes_of_history_items() -> None:
    torch.manual_seed(0)
    cfg = RPGConfig(hidden=8, layers=1, heads=1, dropout=0.0, max_history=4, codes=3, code_bits=2, repeat_bias=True)
    module = RPGModule(9, 4, cfg).eval()
    module.set_codes(torch.randint(0, 4, (9, 3), generator=torch.Generator().manual_seed(0)))
    pad = module.n_items
    seen = torch.tensor([[1, 4, pad, pad], [pad, pad, pad, 0]])
    codes = module.tokens[:9] - torch.arange(3) * 4
    want = torch.zeros(2, 3, 4)
    for t, row in enumerate(seen.tolist()):
        for item in (i for i in row if i != pad):
            want[t, torch.arange(3), codes[item]] = 1.0
    torch.testing.assert_close(module.seen_codes(seen), want)
    hidden = torch.randn(2, 8)
    plain = module.code_logprobs(hidden, seen)  # offsets start at zero
    with torch.no_grad():
        module.repeat.copy_(torch.tensor([-0.3, 0.1, 0.2]))
    shifted = (plain + REPEAT_SCALE * module.repeat[:, None] * want).log_softmax(dim=2)
    torch.testing.assert_close(module.code_logprobs(hidden, seen), shifted)
    torch.testing.assert_close(module.code_logprobs(hidden), plain)  # no history: no offset


def test_repeat_offsets_learn_that_users_repeat() -> None:
    """Users alternate two items, so every target after the second is already in the input."""
    torch.set_num_threads(1)
    seed_everything(0)
    model = RPG(RPGConfig(hidden=16, layers=1, heads=1, max_history=8, codes=4, code_bits=2, repeat_bias=True))
    report = model.fit(alternating_split(), TrainConfig(epochs=3, batch_size=16, lr=5e-3, warmup_steps=2,
                                                        patience=0, eval_every=3, valid_users=10, device="cpu"))
    offsets = report.extra["repeat_bias"]
    assert len(offsets) == 4 and sum(offsets) > 0, offsets
    assert any("repeat_bias" in d for d in report.extra["departures"])


def test_the_item_graph_links_each_item_to_its_most_similar_others() -> None:
    vectors = F.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [1.0, 0.0]]), dim=1)
    graph = item_graph(vectors, edges=2, chunk=2)  # chunks of 2 rows: the self mask must follow the offset
    assert graph.tolist() == [[4, 1], [0, 4], [3, 1], [2, 1], [0, 1]]
    assert (graph != torch.arange(5)[:, None]).all()


def test_graph_search_on_a_complete_graph_finds_the_exact_top_w() -> None:
    torch.manual_seed(0)
    n, w = 30, 5
    table = torch.randn(4, n)
    table[:, 7] = table[:, 3]  # a tie: item 3 must come first
    complete = torch.stack([torch.cat([torch.arange(i), torch.arange(i + 1, n)]) for i in range(n)])
    items, scores = graph_search(lambda c: table.gather(1, c), 4, complete, torch.arange(w), steps=1)
    exact = torch.sort(table, dim=1, descending=True, stable=True)
    assert items.tolist() == exact.indices[:, :w].tolist()
    torch.testing.assert_close(scores, exact.values[:, :w])


def test_graph_search_keeps_distinct_items_and_climbs_a_chain() -> None:
    n = 12
    chain = torch.tensor([[min(i + 1, n - 1), max(i - 1, 0)] for i in range(n)])  # i -> i+1, i-1
    score = torch.arange(n, dtype=torch.float)[None].repeat(2, 1)  # higher index is better
    items, _ = graph_search(lambda c: score.gather(1, c), 2, chain, torch.tensor([0, 1, 2]), steps=4)
    assert items.tolist() == [[6, 5, 4]] * 2  # three items climb one step of the chain per step
    for steps in range(1, 6):
        items, _ = graph_search(lambda c: score.gather(1, c), 2, chain, torch.tensor([0, 1, 2]), steps=steps)
        assert all(len(set(row)) == 3 for row in items.tolist())


def test_the_paper_defaults_and_bad_values() -> None:
    cfg = RPGConfig()
    assert (cfg.codes, cfg.code_bits, cfg.temperature, cfg.beam_width, cfg.graph_edges, cfg.graph_steps) == (
        32, 8, 0.07, 50, 50, 3)
    assert cfg.repeat_bias is False  # the paper has no repeat offset
    for bad in ({"decode": "beam"}, {"codes": 0}, {"temperature": 0}, {"repeat_bias": 1}):
        with pytest.raises(GenrecError):
            RPGConfig(**bad)


def test_trains_and_evaluates_through_the_cli_with_both_decoders(seq_file, tmp_path: Path, capsys,
                                                                 monkeypatch) -> None:
    run = tmp_path / "run"
    code, _, err = run_cli(["train", "-m", "rpg", "--data", str(seq_file), "-o", str(run), "--set", "train.epochs=1",
                            "--set", "model.hidden=8", "--set", "model.layers=1", "--set", "model.codes=4",
                            "--set", "model.code_bits=2", "--set", "model.beam_width=4",
                            "--set", "model.graph_edges=3"], capsys, monkeypatch)
    assert code == 0, err
    ranks = {}
    for decode in ("graph", "exact"):
        code, out, err = run_cli(["eval", "--run", str(run), "--json", "--k", "1,3", "--decode", f"decode={decode}",
                                  "--results", str(tmp_path / decode)], capsys, monkeypatch)
        assert code == 0, err
        record = json.loads(Path(json.loads(out)["record"]).read_text())
        assert record["model"] == "rpg" and record["short_lists"] == {"1": 0, "3": 0}
        assert record["fit"]["extra"]["validation_decode"] == "exact"
        ranks[decode] = record["ranks"]
    assert len(ranks["graph"]) == len(ranks["exact"])


def test_graph_decoding_with_a_complete_graph_equals_exact_decoding() -> None:
    model = RPG(RPGConfig(hidden=8, layers=1, max_history=4, codes=4, code_bits=2, beam_width=3, graph_edges=100))
    model.module_ = tiny_module(n_items=12, codes=4)
    hist = torch.tensor([[-1, 3, 5, 7], [1, 2, 3, 4], [-1, -1, -1, 9]])
    graph = model.recommend(hist, 3)
    model.cfg = RPGConfig(hidden=8, layers=1, max_history=4, codes=4, code_bits=2, decode="exact")
    exact = model.recommend(hist, 3)
    assert graph.items.tolist() == exact.items.tolist()
    torch.testing.assert_close(graph.scores, exact.scores)


def test_a_tokenized_code_table_trains_the_same_codes(seq_file, tmp_path: Path, capsys, monkeypatch) -> None:
    tiny = ["--set", "model.hidden=8", "--set", "model.layers=1", "--set", "model.codes=4",
            "--set", "model.code_bits=2", "--set", "model.beam_width=4", "--set", "model.graph_edges=3"]
    table = tmp_path / "codes.json"
    code, out, err = run_cli(["tokenize", "-m", "rpg", "--data", str(seq_file), "--out", str(table), "--json", *tiny],
                             capsys, monkeypatch)
    assert code == 0, err
    digest = json.loads(out)["sid_digest"]
    rows = json.loads(table.read_text())
    assert all(len(r) == 4 and all(0 <= c < 4 for c in r) for r in rows.values())
    run = tmp_path / "run"
    code, _, err = run_cli(["train", "-m", "rpg", "--data", str(seq_file), "-o", str(run), "--set", "train.epochs=1",
                            "--set", f"model.code_file={json.dumps(str(table))}", *tiny], capsys, monkeypatch)
    assert code == 0, err
    extra = json.loads((run / "run.json").read_text())["fit"]["extra"]
    assert extra["codes_digest"] == digest and extra["codes_source"] == f"file({table})"
    first = next(iter(rows))
    rows[first] = [0, 1, 2]
    table.write_text(json.dumps(rows))
    code, _, err = run_cli(["train", "-m", "rpg", "--data", str(seq_file), "-o", str(tmp_path / "bad"),
                            "--set", f"model.code_file={json.dumps(str(table))}", *tiny], capsys, monkeypatch)
    assert code != 0 and "expected 4 integer codes" in err and str(table) in err


@pytest.mark.parametrize("dataset", ["beauty", "sports", "toys"])
def test_the_shipped_configs_load_with_their_shipped_code_tables(dataset: str) -> None:
    from genrec_bench.config import load_run_config

    root = Path(__file__).resolve().parents[1]
    cfg = load_run_config(root / "benchmarks" / "configs" / f"rpg-{dataset}.toml")
    model = RPGConfig(**cfg.model)
    assert (cfg.train.schedule, model.temperature, model.code_mean_scale) == ("cosine", 0.03, False)
    assert (root / "genrec_bench" / "data" / "tables" / model.code_file).is_file()
