"""Cornac next-item models run on a genrec-bench split and scored by genrec-bench metrics.

The adapter only converts data: our training sequences become a Cornac `SequentialDataset` whose
item index i is our item index i, our item feature vectors become its `item_feature`
(`FeatureModality`), and, for DiffGRM, our semantic-ID table can replace Cornac's own tokeniser
(`item_sids`). Training, tokenising and scoring are Cornac's code, so a `cornac:NAME` row measures
Cornac's implementation on exactly the split and metrics of the built-ins. Cornac is imported
inside the methods, because it is an optional extra.
"""

from __future__ import annotations

import copy
import importlib
import pickle
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from genrec_bench.api import FitReport, Ranked
from genrec_bench.config import TrainConfig, check_key
from genrec_bench.data.split import SplitData
from genrec_bench.errors import GenrecError
from genrec_bench.items.features import item_features
from genrec_bench.items.product_quantize import whitened
from genrec_bench.items.semantic_ids import METHODS, TokenizerConfig, build_semantic_ids
from genrec_bench.models.cornac import PREFIX
from genrec_bench.ranking import topk_stable
from genrec_bench.runtime import atomic_write_bytes, resolve_device
from genrec_bench.saving import load_backend, save_backend, stored_config

MODEL_FILE = "cornac.pkl"  # the fitted Cornac model, pickled as Cornac's own Recommender.save does
# Cornac's beam and graph decoders give the items they did not produce this score; they are not
# recommended (the contract pads with -1 instead of inventing items).
UNSCORED = -1e10
# Constructor arguments the adapter sets from typed keys and the run, never from `params`.
OWNED = ("name", "n_epochs", "batch_size", "learning_rate", "seed", "device", "verbose", "trainable",
         "item_sids")
FEATURE_MODELS = ("TIGER", "RPG", "DiffGRM")  # those that read train_set.item_feature


@dataclass(frozen=True)
class CornacConfig:
    """The `[model]` keys of every `cornac:NAME`; the model's own arguments go in `params`."""

    epochs: int = 0  # Cornac's n_epochs; 0 = [train].epochs
    batch_size: int = 0  # 0 = [train].batch_size
    lr: float = 0.0  # Cornac's learning_rate; 0 = the Cornac model's default (its optimiser differs per model)
    features: str = "auto"  # item feature spec (genrec_bench.items.features) for TIGER, RPG and DiffGRM
    # PCA-whiten the feature vectors to this many directions before Cornac reads them (0 = as they
    # are). Cornac's RPG whitens only when its pca_dim is below the feature width, genrec-bench's
    # `rpg` at any width (model.whiten): the same number gives both the same input to quantise.
    whiten: int = 0
    # DiffGRM only: "" lets Cornac tokenise the feature vectors; rkmeans, rqvae or letter passes our
    # semantic-ID table (built from `features`) as item_sids, so both tokenisations can be compared.
    semantic_ids: str = ""
    params: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the Cornac constructor

    def __post_init__(self) -> None:
        check_key(self.epochs >= 0, "model.epochs", "an integer >= 0 (0 = [train].epochs)", self.epochs)
        check_key(self.batch_size >= 0, "model.batch_size", "an integer >= 0 (0 = [train].batch_size)",
                  self.batch_size)
        check_key(self.whiten >= 0, "model.whiten", "an integer >= 0 (0 = off)", self.whiten)
        check_key(self.lr >= 0, "model.lr", "a number >= 0 (0 = the Cornac default)", self.lr)
        check_key(self.semantic_ids in ("", *METHODS), "model.semantic_ids",
                  f"'' or one of {', '.join(METHODS)}", self.semantic_ids)
        owned = sorted(set(self.params) & set(OWNED))
        check_key(not owned, "model.params", "free of the arguments the adapter sets (use model.epochs, "
                  "model.batch_size, model.lr, train.seed, train.device)", owned)


class CornacBackend:
    """One Cornac next-item model behind the Backend contract; subclasses name the model."""

    name: ClassVar[str] = "cornac"
    cornac_model: ClassVar[str] = ""
    decode_keys: ClassVar[tuple[str, ...]] = ()
    Config = CornacConfig

    def __init__(self, cfg: CornacConfig | None = None):
        self.cfg = cfg or CornacConfig()
        self.model_: Any = None
        if self.cfg.semantic_ids and self.cornac_model != "DiffGRM":
            raise GenrecError(f"config key 'model.semantic_ids' applies to cornac:DiffGRM only, not "
                              f"{PREFIX}:{self.cornac_model}")
        if self.cfg.semantic_ids and (taken := sorted({"n_digit", "codebook_size"} & set(self.cfg.params))):
            raise GenrecError(f"config key 'model.params' sets {', '.join(taken)}, which the semantic-ID table "
                              f"of model.semantic_ids = {self.cfg.semantic_ids!r} decides")
        known = self.cornac_class()._get_init_params()
        if unknown := sorted(set(self.cfg.params) - set(known)):
            takes = ", ".join(sorted(set(known) - set(OWNED)))
            raise GenrecError(f"config key 'model.params' names {', '.join(unknown)}, which Cornac's "
                              f"{self.cornac_model} does not take; it takes {takes}")

    @classmethod
    def cornac_class(cls) -> type:
        """The Cornac recommender class, imported only when a `cornac:NAME` model is built."""
        return getattr(importlib.import_module("cornac.models"), cls.cornac_model)

    @classmethod
    def test_params(cls) -> dict[str, object]:
        """One epoch of a tiny network: the conformance check runs in seconds."""
        return {"epochs": 1, "params": dict(TEST_PARAMS.get(cls.cornac_model, {}))}

    def fit(self, data: SplitData, cfg: TrainConfig, workdir: Path | None = None) -> FitReport:
        start = time.perf_counter()
        epochs = self.cfg.epochs or cfg.epochs
        kwargs: dict[str, Any] = {"n_epochs": epochs, "batch_size": self.cfg.batch_size or cfg.batch_size,
                                  "seed": cfg.seed, "device": str(resolve_device(cfg.device)), "verbose": False}
        if self.cfg.lr:
            kwargs["learning_rate"] = self.cfg.lr
        info: dict[str, Any] = {}
        if self.cfg.semantic_ids:
            ids = build_semantic_ids(data, TokenizerConfig(method=self.cfg.semantic_ids, features=self.cfg.features,
                                                           seed=cfg.seed))
            kwargs |= {"item_sids": ids.codes.numpy(), "n_digit": ids.n_levels, "codebook_size": max(ids.sizes)}
            info["semantic_ids"] = ids.source
        try:
            self.model_ = self.cornac_class()(**(self.cfg.params | kwargs))
        except (TypeError, ValueError) as exc:
            raise GenrecError(f"Cornac's {self.cornac_model} rejected its arguments: {exc}") from None
        train = self.train_set(data, cfg.seed)
        try:
            self.model_.fit(train)
        except (RuntimeError, ValueError) as exc:  # Cornac's checks and faiss's (too few items to quantise)
            raise GenrecError(f"Cornac's {self.cornac_model} failed to fit: {exc.__class__.__name__}: "
                              f"{' '.join(str(exc).split())}") from None
        return FitReport(seconds=time.perf_counter() - start, epochs=epochs, extra=info | self.info())

    def train_set(self, data: SplitData, seed: int) -> Any:
        """Our training sequences as a Cornac `SequentialDataset` (USIT rows): a sequence's number
        is both its user and its sequence id, positions are timestamps, and the item map is fixed to
        the identity over the whole catalogue so Cornac's item index is ours (items seen only in
        validation or test included)."""
        dataset = importlib.import_module("cornac.data").SequentialDataset
        flat, offsets = data.train_sequences()
        rows = [(u, u, int(item), j) for u in range(len(offsets) - 1)
                for j, item in enumerate(flat[offsets[u]:offsets[u + 1]])]
        train = dataset.build(rows, fmt="USIT", global_iid_map=OrderedDict((i, i) for i in range(data.n_items)),
                              seed=seed)
        if self.cornac_model in FEATURE_MODELS and not self.cfg.semantic_ids:
            modality = importlib.import_module("cornac.data").FeatureModality
            feats = item_features(data, self.cfg.features, seed)
            if self.cfg.whiten:
                feats = whitened(feats, self.cfg.whiten)
            train.add_modalities(item_feature=modality(features=feats))
        return train

    def recommend(self, histories: torch.Tensor, k: int) -> Ranked:
        if self.model_ is None:
            raise GenrecError(f"model '{PREFIX}:{self.cornac_model}' is not fitted")
        # Cornac's next-item models score one history per call (score(user_idx, history_items));
        # none has a batch API, so the batch is a loop. No supported model reads user_idx.
        rows = [self.model_.score(None, [i for i in row if i >= 0]) for row in histories.tolist()]
        scores = torch.as_tensor(np.stack(rows), dtype=torch.float32) if rows else torch.empty(0, 0)
        scores = scores.masked_fill(scores <= UNSCORED, float("-inf"))
        top = topk_stable(scores, k)
        items = top.items.masked_fill(torch.isneginf(top.scores), -1)
        pad = k - items.shape[1]
        return Ranked(items=torch.nn.functional.pad(items, (0, pad), value=-1),
                      scores=torch.nn.functional.pad(top.scores, (0, pad), value=float("-inf")))

    def info(self) -> dict[str, Any]:
        """Which Cornac ran, for the run record."""
        return {"cornac_model": self.cornac_model, "cornac_version": importlib.import_module("cornac").__version__}

    def save(self, path: Path) -> None:
        """backend.json as every backend writes it, and the Cornac model pickled beside it (a deep
        copy drops the training set, as Cornac's own save does)."""
        save_backend(path, self.name, self.cfg, {}, self.info())
        blob = pickle.dumps(copy.deepcopy(self.model_), protocol=pickle.HIGHEST_PROTOCOL)
        atomic_write_bytes(path / MODEL_FILE, blob)

    @classmethod
    def load(cls, path: Path, device: torch.device | None = None) -> CornacBackend:
        """The pickled model as fitted; Cornac moves it to its training device when it scores."""
        meta, _ = load_backend(path)
        backend = cls(stored_config(cls.Config, meta["config"], {}))
        backend.model_ = importlib.import_module("cornac.models").Recommender.load(str(path / MODEL_FILE))
        return backend


# Small networks for the conformance check. RPG scores exactly because its graph decoder draws
# random numbers at every call (a reloaded model would rank differently); faiss OPQ, which RPG
# and DiffGRM tokenise with, needs at least 256 items, so on a smaller catalogue DiffGRM takes
# semantic_ids and RPG does not run.
TEST_PARAMS: dict[str, dict[str, Any]] = {
    "SASRec": {"embedding_dim": 16, "num_blocks": 1, "n_sample": 16, "max_len": 10},
    "BERT4Rec": {"embedding_dim": 16, "num_blocks": 1, "n_sample": 16, "max_len": 10},
    "GRU4Rec": {"layers": [16], "n_sample": 16},
    "TIGER": {"tokenizer": "rkmeans", "rqvae_codebook_size": 4, "d_model": 16, "d_ff": 32, "num_heads": 2,
              "d_kv": 8, "num_enc_layers": 1, "num_dec_layers": 1, "max_len": 10, "n_beams": 10},
    "RPG": {"n_codebook": 4, "pca_dim": 8, "d_model": 16, "n_inner": 32, "n_head": 2, "max_len": 10,
            "scoring": "exact"},
    "DiffGRM": {"d_model": 16, "n_inner": 32, "n_head": 2, "decoder_n_layer": 1, "max_len": 10,
                "beam_size": 16, "faiss_omp_num_threads": 1, "model_selection": "last"},
}


def adapter(model: str) -> type[CornacBackend]:
    """The backend class of one Cornac model: `cornac:NAME` resolves to `Cornac<NAME>` here."""
    return type(f"Cornac{model}", (CornacBackend,), {"name": f"cornac-{model.lower()}", "cornac_model": model,
                                                      "__module__": __name__})


CornacSASRec = adapter("SASRec")
CornacBERT4Rec = adapter("BERT4Rec")
CornacGRU4Rec = adapter("GRU4Rec")
CornacTIGER = adapter("TIGER")
CornacRPG = adapter("RPG")
CornacDiffGRM = adapter("DiffGRM")
