"""Train RecBole 1.2.1's SASRec or BERT4Rec on genrec-bench's split and score it both ways.

    PYTHONPATH=/work/recbole-pkgs .venv/bin/python benchmarks/peers/recbole_run.py \\
        --data /tmp/recbole-data --dataset beauty --model SASRec --threads 1 \\
        --out benchmarks/peers/results/recbole-sasrec-beauty.json \\
        [--record benchmarks/peers/results/records/] [--epochs N]

`--data`/`--dataset` name what `recbole_export.py` wrote. Before training, RecBole's train,
validation and test rows are compared with genrec-bench's rebuilt split (same fingerprint), user
by user, and the run stops if any target or history differs. Training uses RecBole's own defaults
for the model (its `properties/model/*.yaml`) plus `RECBOLE_SETTINGS` below, RecBole's early
stopping on validation NDCG@10 and its best-validation checkpoint. The result JSON holds per
epoch the cumulative wall seconds (training + validation) and validation metrics, RecBole's test
metrics, and the same model re-scored under genrec-bench's protocol (whole catalogue, last 20
items before the target, history not masked, ties to the lower item index, genrec-bench's metric
functions), also with the history window masked, and the per-user ranks in test-user order.
`--record DIR` also writes a genrec-bench run record that `genrec-bench compare` reads.

RecBole is installed outside the project's environment (benchmarks/peers/README.md):

    .venv/bin/pip install --target /work/recbole-pkgs --no-deps recbole==1.2.1 \\
        colorlog==4.7.2 colorama==0.4.4 texttable==1.7.3 pandas==2.3.3 pytz

(`recbole.quick_start` imports ray and is not used; tensorboard, thop, psutil, plotly and ray are
not needed for training and evaluation.)

Compatibility shims, applied by this script only (the installed RecBole is not edited):
numpy 2 aliases `np.float_`, `np.complex_`, `np.unicode_` (RecBole's Config re-creates `np.float`
etc. from them); a no-op `torch.utils.tensorboard.SummaryWriter` when tensorboard is absent, and no
tensorboard/log folders in the working directory in any case; the best checkpoint is loaded with
`torch.load(weights_only=False)` (torch >= 2.6 refuses RecBole's pickled Config otherwise).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import sys
import tempfile
import time
import types
import uuid
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genrec_bench.config import EvalConfig
from genrec_bench.data.examples import NextItemWindows
from genrec_bench.data.split import PAD, SplitData
from genrec_bench.metrics import summarise
from genrec_bench.results import RunRecord, collect_env, write_record
from genrec_bench.slices import cold_start_users

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recbole_export import build_split  # noqa: E402

MODELS = ("SASRec", "BERT4Rec")
HISTORY = 20  # genrec-bench's data.max_history
KS = tuple(EvalConfig().ks)  # genrec-bench's default cut-offs (1, 5, 10, 20), so records pair with its own

# Every setting this script gives RecBole; the rest are RecBole's defaults (overall.yaml and the
# model's yaml: SASRec 2 layers, 2 heads, 64 hidden, dropout 0.5, CE; BERT4Rec the same at dropout
# 0.2, mask_ratio 0.2; Adam lr 1e-3, train_batch_size 2048, 300 epochs, eval every epoch).
RECBOLE_SETTINGS: dict[str, Any] = {
    # the exported atomic files: tokens, position timestamps, the whole catalogue in NAME.item
    "USER_ID_FIELD": "user_id",
    "ITEM_ID_FIELD": "item_id",
    "TIME_FIELD": "timestamp",
    "load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id"]},
    # no filtering: the data are genrec-bench's k-cored split already
    "rm_dup_inter": None,
    "val_interval": None,
    "filter_inter_by_user_or_item": False,
    "user_inter_num_interval": "[0,inf)",
    "item_inter_num_interval": "[0,inf)",
    # genrec-bench's history window
    "MAX_ITEM_LIST_LENGTH": HISTORY,
    # chronological leave-one-out per user, full ranking
    "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
    # full-softmax cross-entropy, as RecBole's docs recommend for full ranking
    "loss_type": "CE",
    "train_neg_sample_args": None,
    "metrics": ["Hit", "NDCG"],
    "topk": [10, 20],
    "valid_metric": "NDCG@10",
    "eval_batch_size": 4096,
    "stopping_step": 10,  # RecBole's default early stopping
    "show_progress": False,
    "save_dataset": False,
    "save_dataloaders": False,
    "log_wandb": False,
}


# --- compatibility shims (before RecBole is imported) -------------------------------------------

def apply_compat_shims() -> None:
    """Make RecBole 1.2.1 import and run on numpy 2 / torch 2.x without editing it (see docstring)."""
    for name, value in (("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_)):
        if name not in np.__dict__:
            setattr(np, name, value)
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        stub = types.ModuleType("torch.utils.tensorboard")
        stub.SummaryWriter = NullWriter  # type: ignore[attr-defined]
        sys.modules["torch.utils.tensorboard"] = stub


class NullWriter:
    """Stands in for tensorboard's SummaryWriter: accepts every call, writes nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


class PlainFormatter(logging.Formatter):
    """RecBole colours its log lines with ANSI codes; stderr gets them without."""

    ANSI = re.compile(r"\x1b\[[0-9;]*m")

    def format(self, record: logging.LogRecord) -> str:
        return self.ANSI.sub("", super().format(record))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the split check -----------------------------------------------------------------------------

def token_maps(dataset: Any, n_users: int, n_items: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(genrec user of each RecBole user id, genrec item of each RecBole item id, RecBole id of each
    genrec item); RecBole id 0 is its padding token and maps to -1."""
    def genrec_of(field: str) -> np.ndarray:
        tokens = dataset.field2id_token[field]
        return np.array([-1] + [int(t) for t in tokens[1:]], dtype=np.int64)

    user_of, item_of = genrec_of(dataset.uid_field), genrec_of(dataset.iid_field)
    if sorted(user_of[1:]) != list(range(n_users)) or sorted(item_of[1:]) != list(range(n_items)):
        raise SystemExit(f"RecBole sees {len(user_of) - 1} users / {len(item_of) - 1} items, genrec-bench "
                         f"{n_users} / {n_items}: the export does not match the split")
    rb_of_item = np.empty(n_items, dtype=np.int64)
    rb_of_item[item_of[1:]] = np.arange(1, len(item_of))
    return user_of, item_of, rb_of_item


def recbole_rows(part: Any, user_of: np.ndarray, item_of: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(genrec users, left-padded genrec histories [n, HISTORY] with PAD, genrec targets, target
    positions) of one part of RecBole's split."""
    feat = part.inter_feat
    seq = feat[part.iid_field + part.config["LIST_SUFFIX"]].numpy()
    length = feat[part.config["ITEM_LIST_LENGTH_FIELD"]].numpy()
    hist = np.full((len(seq), HISTORY), PAD, dtype=np.int64)
    for n in np.unique(length):  # RecBole stores histories left-aligned; genrec-bench left-pads
        rows = np.flatnonzero(length == n)
        if n:
            hist[rows, HISTORY - n:] = item_of[seq[rows, :n]]
    users, targets = user_of[feat[part.uid_field].numpy()], item_of[feat[part.iid_field].numpy()]
    return users, hist, targets, feat[part.time_field].numpy().astype(np.int64)


def check_split(data: SplitData, train: Any, valid: Any, test: Any, user_of: np.ndarray,
                item_of: np.ndarray) -> dict[str, int]:
    """Fail loudly unless RecBole's rows are genrec-bench's split: one validation and one test row
    per user with genrec-bench's target and 20-item history, and as training rows exactly
    genrec-bench's next-item windows of the training part (same users, targets and histories)."""
    for split, part in (("valid", valid), ("test", test)):
        users, hist, targets, _ = recbole_rows(part, user_of, item_of)
        order = np.argsort(users, kind="stable")
        want_hist, want_targets = data.eval_arrays(split, HISTORY)
        if not np.array_equal(users[order], np.arange(data.n_users)):
            raise SystemExit(f"split check failed: RecBole's {split} part holds {len(users)} rows, not one per "
                             f"genrec-bench user ({data.n_users})")
        bad = np.flatnonzero((targets[order] != want_targets) | (hist[order] != want_hist).any(axis=1))
        if len(bad):
            raise SystemExit(f"split check failed: {len(bad)} {split} rows differ from genrec-bench's "
                             f"(first user {int(bad[0])})")
    users, hist, targets, stamps = recbole_rows(train, user_of, item_of)
    order = np.lexsort((stamps, users))  # user by user, chronological: NextItemWindows' order
    windows = NextItemWindows(data, HISTORY)
    want_hist, want_targets = windows.batch(torch.arange(windows.num_examples()), torch.device("cpu"))
    _, train_offsets = data.train_sequences()
    want_users = np.searchsorted(train_offsets, windows.start.numpy(), side="right") - 1
    same = (len(users) == len(want_users) and np.array_equal(users[order], want_users)
            and np.array_equal(targets[order], want_targets.numpy()) and np.array_equal(hist[order], want_hist.numpy()))
    if not same:
        raise SystemExit(f"split check failed: RecBole's {len(users)} training rows are not genrec-bench's "
                         f"{len(want_users)} next-item windows of the training part")
    return {"train_rows": len(users), "valid_rows": data.n_users, "test_rows": data.n_users}


# --- genrec-bench's protocol -----------------------------------------------------------------------

def left_aligned(hist: np.ndarray, rb_of_item: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """genrec-bench's left-padded histories as RecBole input: ids left-aligned, 0-padded, and lengths."""
    lengths = (hist != PAD).sum(axis=1)
    seq = np.zeros_like(hist)
    for n in np.unique(lengths):
        rows = np.flatnonzero(lengths == n)
        if n:
            seq[rows, :n] = rb_of_item[hist[rows, HISTORY - n:]]
    return torch.from_numpy(seq), torch.from_numpy(lengths.astype(np.int64))


@torch.no_grad()
def genrec_ranks(model: Any, data: SplitData, rb_of_item: np.ndarray, batch_size: int, device: torch.device,
                 mask_history: bool) -> np.ndarray:
    """1-based rank of each test target among all genrec-bench items (stable: ties rank the lower
    genrec item index first), scored by RecBole's `full_sort_predict` from the last 20 items."""
    from recbole.data.interaction import Interaction

    model.eval()
    hist_all, targets_all = data.eval_arrays("test", HISTORY)
    columns = torch.from_numpy(rb_of_item).to(device)
    index = torch.arange(data.n_items, device=device)
    ranks = np.zeros(data.n_users, dtype=np.int64)
    for start in range(0, data.n_users, batch_size):
        hist, targets = hist_all[start:start + batch_size], torch.from_numpy(targets_all[start:start + batch_size])
        seq, lengths = left_aligned(hist, rb_of_item)
        batch = Interaction({model.ITEM_SEQ: seq, model.ITEM_SEQ_LEN: lengths}).to(device)
        scores = model.full_sort_predict(batch).view(len(hist), -1)[:, columns].float()  # [B, items], genrec order
        if mask_history:  # genrec-bench's `exclude_seen`: the items of the 20-item window
            rows, cols = np.nonzero(hist != PAD)
            scores[torch.from_numpy(rows).to(device), torch.from_numpy(hist[rows, cols]).to(device)] = -torch.inf
        targets = targets.to(device)
        own = scores.gather(1, targets[:, None])
        ahead = (scores > own) | ((scores == own) & (index[None, :] < targets[:, None]))
        ranks[start:start + len(hist)] = ahead.sum(dim=1).cpu().numpy() + 1
    return ranks


def rounded(metrics: dict[str, Any]) -> dict[str, float]:
    """Metric names in lower case (RecBole writes `NDCG@10`), values to 6 places, for the result JSON."""
    return {str(k).lower(): round(float(v), 6) for k, v in metrics.items()}


# --- main ----------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="OUT_DIR given to recbole_export.py")
    parser.add_argument("--dataset", required=True, help="the exported name (OUT_DIR/NAME/NAME.inter)")
    parser.add_argument("--model", choices=MODELS, required=True)
    parser.add_argument("--epochs", type=int, default=None, help="cap on epochs (default: RecBole's 300)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=None, help="RecBole seed (default: RecBole's 2020)")
    parser.add_argument("--cpu", action="store_true", help="never use a GPU (RecBole uses one when present)")
    parser.add_argument("--out", type=Path, required=True, help="result JSON")
    parser.add_argument("--record", type=Path, default=None, help="also write a genrec-bench run record here")
    parser.add_argument("--keep-checkpoint", action="store_true", help="keep RecBole's saved/ folder next to --out")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    apply_compat_shims()
    # pandas' and torch's deprecation notices about RecBole's own code (chained fillna, cuda.amp)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PlainFormatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)

    import recbole
    import recbole.trainer.trainer as rb_trainer
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    rb_trainer.get_tensorboard = lambda logger: NullWriter()  # no log_tensorboard/ in the working directory

    split_info = json.loads((args.data / args.dataset / f"{args.dataset}.split.json").read_text(encoding="utf-8"))
    data = build_split(split_info["dataset"], split_info["data_dir"], split_info["data_config"]["max_users"])
    if data.fingerprint != split_info["fingerprint"]:
        raise SystemExit(f"genrec-bench's split is now {data.fingerprint}, the export was {split_info['fingerprint']}: "
                         "export again")
    log(f"split {data.fingerprint}: {data.n_users} users, {data.n_items} items, {len(data.items)} interactions")

    work = Path(tempfile.mkdtemp(prefix="recbole-", dir=args.out.parent if args.keep_checkpoint else None))
    settings = dict(RECBOLE_SETTINGS, data_path=str(args.data), checkpoint_dir=str(work / "saved"))
    if args.epochs is not None:
        settings["epochs"] = args.epochs
    if args.seed is not None:
        settings["seed"] = args.seed
    if args.cpu:
        settings["use_gpu"] = False
    started = time.perf_counter()
    argv, sys.argv = sys.argv, sys.argv[:1]  # RecBole's Config would read `--key=value` arguments as settings
    try:
        config = Config(model=args.model, dataset=args.dataset, config_dict=settings)
    finally:
        sys.argv = argv
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    user_of, item_of, rb_of_item = token_maps(dataset, data.n_users, data.n_items)
    rows = check_split(data, train_data._dataset, valid_data._dataset, test_data._dataset, user_of, item_of)
    log(f"split check passed: RecBole's rows are genrec-bench's split ({rows})")
    setup_seconds = time.perf_counter() - started

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    if get_trainer(config["MODEL_TYPE"], config["model"]) is not rb_trainer.Trainer:
        raise SystemExit(f"RecBole trains {args.model} with another trainer; this script times the plain one")
    history: list[dict[str, Any]] = []

    class TimedTrainer(rb_trainer.Trainer):
        """RecBole's Trainer, noting each epoch's loss and validation result for the curve."""

        def __init__(self, config: Any, model: Any) -> None:
            super().__init__(config, model)
            self.last_loss = float("nan")
            self.last_valid: dict[str, float] = {}

        def _train_epoch(self, train_data: Any, epoch_idx: int, loss_func: Any = None,
                         show_progress: bool = False) -> Any:
            loss = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
            self.last_loss = float(sum(loss) if isinstance(loss, tuple) else loss)
            return loss

        def _valid_epoch(self, valid_data: Any, show_progress: bool = False) -> Any:
            score, result = super()._valid_epoch(valid_data, show_progress=show_progress)
            self.last_valid = rounded(result)
            return score, result

    trainer = TimedTrainer(config, model)
    fit_start = time.perf_counter()

    def on_epoch(epoch_idx: int, valid_score: float) -> None:
        history.append({"epoch": epoch_idx + 1, "seconds": round(time.perf_counter() - fit_start, 3),
                        "loss": round(trainer.last_loss, 6), "valid_ndcg@10": round(float(valid_score), 6),
                        "valid": trainer.last_valid})
        log(f"epoch {epoch_idx + 1}: {history[-1]['seconds']:.1f}s, loss {trainer.last_loss:.4f}, "
            f"valid NDCG@10 {valid_score:.4f}")

    best_valid, best_valid_result = trainer.fit(train_data, valid_data, saved=True, show_progress=False,
                                                callback_fn=on_epoch)
    fit_seconds = time.perf_counter() - fit_start
    checkpoint = torch.load(trainer.saved_model_file, map_location=config["device"], weights_only=False)
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    best_epoch = int(checkpoint["epoch"]) + 1
    recbole_test = rounded(trainer.evaluate(test_data, load_best_model=False))

    eval_start = time.perf_counter()
    device = torch.device(config["device"])
    ranks = genrec_ranks(model, data, rb_of_item, config["eval_batch_size"], device, mask_history=False)
    eval_seconds = time.perf_counter() - eval_start
    masked = genrec_ranks(model, data, rb_of_item, config["eval_batch_size"], device, mask_history=True)
    genrec_test, genrec_masked = summarise(ranks, KS), summarise(masked, KS)
    # RecBole ranks sequential models unmasked too, so its test NDCG@10 (rounded to 4 places, ties
    # in any order) should match the re-scored one; a gap means the two scorings differ.
    gap = abs(recbole_test.get("ndcg@10", 0.0) - genrec_test["ndcg@10"])
    if gap > 1e-3:
        log(f"warning: RecBole's test NDCG@10 {recbole_test.get('ndcg@10')} and the re-scored "
            f"{genrec_test['ndcg@10']:.4f} differ by {gap:.4f}")
    if not args.keep_checkpoint:
        shutil.rmtree(work, ignore_errors=True)

    model_keys = ("n_layers", "n_heads", "hidden_size", "inner_size", "hidden_dropout_prob", "attn_dropout_prob",
                  "hidden_act", "layer_norm_eps", "initializer_range", "loss_type", "mask_ratio", "ft_ratio",
                  "transform", "learning_rate", "learner", "train_batch_size", "weight_decay", "epochs",
                  "stopping_step", "eval_step", "seed", "MAX_ITEM_LIST_LENGTH")
    resolved = {k: config[k] for k in model_keys if k in config and config[k] is not None}
    summary = {
        "peer": f"recbole {recbole.__version__}", "model": args.model, "dataset": split_info["dataset"],
        "recbole_dataset": args.dataset, "fingerprint": data.fingerprint, "users": data.n_users,
        "items": data.n_items, "interactions": int(len(data.items)), "device": str(device),
        "threads": args.threads, "setup_seconds": round(setup_seconds, 3), "fit_seconds": round(fit_seconds, 3),
        "epochs": len(history), "best_epoch": best_epoch, "best_valid_ndcg@10": round(float(best_valid), 6),
        "best_valid": rounded(best_valid_result or {}),
        "recbole_test": recbole_test,
        "genrec_test": rounded(genrec_test),
        "genrec_test_history_masked": rounded(genrec_masked),
        "genrec_eval_seconds": round(eval_seconds, 3),
    }
    result = summary | {
        "split_check": rows, "recbole_settings": RECBOLE_SETTINGS, "recbole_resolved": resolved,
        "history": history,
        "protocol": {"history": HISTORY, "exclude_seen": False, "ks": list(KS), "ties": "lower genrec item index first",
                     "ranks": "1-based rank over the whole catalogue, test users in genrec-bench order"},
        "users": list(range(data.n_users)), "ranks": ranks.tolist(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result) + "\n", encoding="utf-8")
    log(f"wrote {args.out}")
    if args.record is not None:
        path = write_record(genrec_record(args.model, split_info["dataset"], data, ranks, history, summary,
                                          resolved, str(device), eval_seconds), args.record)
        log(f"wrote genrec-bench record {path}")
    print(json.dumps(summary, indent=2))


def genrec_record(model: str, dataset: str, data: SplitData, ranks: np.ndarray, history: list[dict[str, Any]],
                  summary: dict[str, Any], resolved: dict[str, Any], device: str, eval_seconds: float) -> RunRecord:
    """A genrec-bench run record of the re-scored test ranks (genrec-bench's protocol, all users in
    order, ranks cut at the largest k as its records store them), for `genrec-bench compare`."""
    users = np.arange(data.n_users, dtype=np.int64)
    cut = np.where(ranks <= max(KS), ranks, 0)
    name = f"recbole-{model.lower()}"
    return RunRecord(
        run_id=uuid.uuid4().hex[:12], model=name, dataset=dataset, split="test", fingerprint=data.fingerprint,
        seed=int(resolved.get("seed", 0)), ks=list(KS), metrics=summarise(cut, KS), users=users.tolist(),
        ranks=cut.tolist(), label=name,
        config={"data": asdict(data.config), "eval": asdict(EvalConfig()), "train": {}, "model": {}},
        fit={"seconds": summary["fit_seconds"], "epochs": summary["epochs"], "steps": 0,
             "best_valid": summary["best_valid_ndcg@10"],
             "history": [{k: v for k, v in h.items() if k != "valid"} for h in history],
             "extra": {"peer": summary["peer"], "recbole_settings": RECBOLE_SETTINGS, "recbole_resolved": resolved,
                       "best_epoch": summary["best_epoch"], "recbole_test": summary["recbole_test"]}},
        eval_seconds=eval_seconds, users_per_second=data.n_users / max(eval_seconds, 1e-9),
        env=collect_env(device) | {"recbole": summary["peer"]}, short_lists={str(k): 0 for k in KS},
        cold_users=cold_start_users(data, "test", users).tolist(),
    )


if __name__ == "__main__":
    main()
