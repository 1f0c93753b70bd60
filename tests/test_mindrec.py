"""MindRec backend: fit -> recommend -> save -> load on tiny data, the network's vocabularies, configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import walk_split
from genrec_bench.config import TrainConfig, from_dict, load_run_config
from genrec_bench.errors import GenrecError
from genrec_bench.evaluate import rank_targets
from genrec_bench.metrics import summarise
from genrec_bench.models.mindrec.model import MindRec, MindRecConfig, MindRecNet
from genrec_bench.models.registry import create_backend
from genrec_bench.runtime import seed_everything

TINY = dict(tree_branching=2, sid_levels=2, sid_codebook=4, d_model=32, layers=1, heads=2, d_ff=64, beam_width=5)
TRAIN = TrainConfig(epochs=20, batch_size=32, lr=5e-3, warmup_steps=5, patience=0, eval_every=10, valid_users=24,
                    device="cpu")
CONFIGS = Path(__file__).resolve().parents[1] / "benchmarks" / "configs"




@pytest.mark.parametrize("tree_source,order,cache", [("auto", "confidence", True), ("none", "random", False)])
def test_fit_recommend_save_load_round_trip(tmp_path: Path, tree_source: str, order: str, cache: bool) -> None:
    seed_everything(0)
    data = walk_split(tmp_path)
    model = MindRec(MindRecConfig(**TINY, tree_source=tree_source, order=order, cache_history=cache))
    report = model.fit(data, TRAIN)
    assert report.extra["tree_depth"] == (0 if tree_source == "none" else 2)
    assert report.extra["tree_source"] == ("none" if tree_source == "none" else "kmeans")
    assert report.extra["history_encoding"] == "item_sum" and report.best_valid is not None
    assert report.extra["repeat_bias"][-1] < 0  # walks never revisit an item: the last token learns to avoid it
    hist, _ = data.to_tensors("test")
    out = model.recommend(hist, 7)
    assert out.items.shape == (data.n_users, 7)
    for row in out.items:
        real = row[row >= 0]
        assert len(real) >= 1 and len(set(real.tolist())) == len(real) and (real < data.n_items).all()
        assert (row[len(real):] == -1).all()  # -1 only as trailing padding
    _, ranks = rank_targets(model, data, "test", 5, show_progress=False)
    assert summarise(ranks, (5,))["hit@5"] > 0.6  # chance is 1/3 with 5 of 15 items
    model.save(tmp_path / "run")
    again = MindRec.load(tmp_path / "run")
    back = again.recommend(hist, 7)
    assert torch.equal(back.items, out.items) and torch.allclose(back.scores, out.scores)


def test_greedy_returns_one_item_and_beam_covers_k_fills_lists(tmp_path: Path) -> None:
    seed_everything(0)
    data = walk_split(tmp_path)
    model = MindRec(MindRecConfig(**{**TINY, "beam_width": 1, "beam_covers_k": False}))
    model.fit(data, TrainConfig(**{**TRAIN.__dict__, "epochs": 3, "eval_every": 3}))
    hist, _ = data.to_tensors("test")
    greedy = model.recommend(hist[:4], 5)
    assert (greedy.items[:, 0] >= 0).all() and (greedy.items[:, 1:] == -1).all()
    assert model.search_config(5).beam_width == 1
    model.cfg = MindRecConfig(**{**TINY, "beam_width": 1, "tree_source": "auto"})
    assert model.search_config(5).beam_width == 5


def test_network_scores_only_each_positions_vocabulary() -> None:
    torch.manual_seed(0)
    sizes = (2, 3, 5)
    paths = torch.tensor([[0, 1, 4], [1, 2, 0], [1, 0, 3], [0, 0, 1]])
    for repr_ in ("item_sum", "item_sum_id"):
        net = MindRecNet(MindRecConfig(**{**TINY, "history_encoding": repr_}), paths, sizes, max_history=4).eval()
        hist = torch.tensor([[-1, -1, 0, 1], [3, 2, 1, 0]])
        logits = net(hist, torch.tensor([[-1, -1, -1], [1, -1, 2]]))
        assert logits.shape == (2, 3, 5)
        assert torch.isinf(logits[:, 0, 2:]).all() and torch.isinf(logits[:, 1, 3:]).all()
        assert torch.isfinite(logits[:, 2]).all() and torch.isfinite(logits[:, 0, :2]).all()
        # a shorter history window is aligned to the most recent slot, and padding changes nothing
        short = net(hist[:1, 2:], torch.tensor([[-1, -1, -1]]))
        torch.testing.assert_close(short, logits[:1], rtol=1e-4, atol=1e-4)
    assert (net.item is not None) and sum(p.numel() for p in net.item.parameters()) == 4 * 32


def test_cached_history_decoding_equals_the_full_forward() -> None:
    torch.manual_seed(0)
    sizes = (3, 4, 4)
    paths = torch.tensor([[i % 3, i % 4, i // 4] for i in range(12)])
    net = MindRecNet(MindRecConfig(**{**TINY, "layers": 2}), paths, sizes, max_history=5).eval()
    hist = torch.tensor([[-1, -1, -1, 0, 1], [3, 2, 1, 0, 7], [-1, 9, 8, 1, 2]])
    users = torch.tensor([0, 2, 2, 1, 0])
    state = torch.tensor([[-1, -1, -1], [1, -1, 2], [0, 3, -1], [-1, -1, 0], [2, 1, 1]])
    read = state < 0
    read[0, 2] = False  # a masked position the search will not commit: not computed
    pairs, cached = net.decode(net.encode_prefix(hist), users, state, read)  # prefix computed once per user
    assert pairs.tolist() == read.nonzero().tolist()
    full = net(hist[users], state)
    torch.testing.assert_close(cached, full[pairs[:, 0], pairs[:, 1]], rtol=1e-4, atol=1e-4)
    net.cache_history = False  # paper setting: the history also attends to the target
    assert not torch.allclose(net(hist[users], state)[pairs[:, 0], pairs[:, 1]], cached, atol=1e-3)


def test_cached_decoding_runs_under_bf16_autocast() -> None:
    """The CUDA path decodes under bf16 autocast; CPU autocast casts the same products, so a dtype
    mismatch in the decoding layout shows here without a GPU."""
    torch.manual_seed(0)
    sizes = (3, 4, 4)
    paths = torch.tensor([[i % 3, i % 4, i // 4] for i in range(12)])
    net = MindRecNet(MindRecConfig(**{**TINY, "layers": 2}), paths, sizes, max_history=5).eval()
    hist = torch.tensor([[-1, -1, -1, 0, 1], [3, 2, 1, 0, 7]])
    state = torch.tensor([[-1, -1, -1], [1, -1, 2], [0, 3, -1]])
    users = torch.tensor([0, 1, 1])
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        pairs, logits = net.decode(net.encode_prefix(hist), users, state, state < 0)
    assert logits.dtype == torch.float32 and len(pairs) == int((state < 0).sum())
    assert torch.isfinite(logits.logsumexp(dim=1)).all()


def test_repeat_offsets_shift_exactly_the_tokens_on_a_reachable_history_path() -> None:
    torch.manual_seed(0)
    sizes = (2, 3, 3)
    paths = torch.tensor([[0, 1, 2], [1, 2, 0], [1, 0, 1], [0, 0, 1]])
    net = MindRecNet(MindRecConfig(**TINY), paths, sizes, max_history=3).eval()
    hist = torch.tensor([[-1, 0, 1], [-1, -1, -1]])
    state = torch.tensor([[-1, 2, -1], [-1, -1, -1]])  # user 0 committed token 2 at position 1: only item 1 fits
    with torch.no_grad():
        base = net(hist, state)
        net.repeat.copy_(torch.tensor([0.1, -0.2, -0.5]))
        shifted = net(hist, state)
    want = torch.zeros_like(base).nan_to_num(0.0)
    want[0, 0, 1] = 10 * 0.1  # item 1's token 1 at position 0 ...
    want[0, 2, 0] = 10 * -0.5  # ... and token 0 at position 2; position 1 is committed, item 0 no longer fits
    finite = torch.isfinite(base)
    torch.testing.assert_close((shifted - base)[finite], want[finite])  # user 1 has no history: no shift


def test_config_validation_names_the_key() -> None:
    for bad, key in [({"beam_width": 0}, "model.beam_width"), ({"order": "sideways"}, "model.order"),
                     ({"eps": 0.0}, "model.eps"), ({"heads": 3}, "model.heads"),
                     ({"tree_source": "magic"}, "model.tree_source"), ({"tokens_per_step": 0}, "model.tokens_per_step"),
                     ({"diversity": -1.0}, "model.diversity"), ({"history_encoding": "text"}, "model.history_encoding"),
                     ({"repeat_bias": 1}, "model.repeat_bias")]:
        with pytest.raises(GenrecError, match=key.replace(".", r"\.")):
            create_backend("mindrec", bad)
    with pytest.raises(GenrecError, match="beam_widht"):
        create_backend("mindrec", {"beam_widht": 3})
    with pytest.raises(GenrecError, match="not fitted"):
        MindRec().recommend(torch.zeros(1, 3, dtype=torch.long), 5)


@pytest.mark.parametrize("name", ["default", "no-tree", "left-to-right", "greedy"])
def test_shipped_configs_are_valid(name: str) -> None:
    run = load_run_config(CONFIGS / f"mindrec-{name}.toml")
    cfg = from_dict(MindRecConfig, run.model, "model")
    expected = {"no-tree": ("tree_source", "none"), "left-to-right": ("order", "left_to_right"),
                "greedy": ("beam_width", 1), "default": ("order", "confidence")}[name]
    assert getattr(cfg, expected[0]) == expected[1]
