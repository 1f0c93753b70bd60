"""`check_backend` passes every built-in backend and rejects broken ones, naming the broken rule."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import ClassVar

import pytest
import torch

from genrec_bench.api import FitReport, Ranked
from genrec_bench.baselines.popularity import Popularity
from genrec_bench.config import TrainConfig
from genrec_bench.data.split import SplitData
from genrec_bench.models.registry import REGISTRY, backend_class
from genrec_bench.testing import ContractViolation, check_backend


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_built_in_backend_honours_the_contract(name):
    cls = backend_class(name)
    assert callable(getattr(cls, "test_params", None)), f"give built-in backend '{name}' a test_params() classmethod"
    report = check_backend(name)  # with the model's own test_params()
    assert report.backend == name
    assert set(report.short_lists) == {1, 10, report.items}
    assert all(0 <= n <= report.users for n in report.short_lists.values())


def test_check_backend_takes_the_backends_test_params_when_given_no_table(monkeypatch):
    """Without a [model] table the check builds the backend from its own `test_params()`."""
    seen = []
    monkeypatch.setattr(Popularity, "test_params", classmethod(lambda cls: seen.append(cls) or {}), raising=False)
    check_backend(Popularity)
    assert seen == [Popularity]


class Duplicates(Popularity):
    """Repeats its top item in the last slot."""

    name: ClassVar[str] = "duplicates"

    def recommend(self, histories: torch.Tensor, k: int) -> Ranked:
        ranked = super().recommend(histories, k)
        items = ranked.items.clone()
        items[:, -1] = items[:, 0]
        return Ranked(items, ranked.scores)


class Unsorted(Popularity):
    """Lists its items best first but reports the scores backwards."""

    name: ClassVar[str] = "unsorted"

    def recommend(self, histories: torch.Tensor, k: int) -> Ranked:
        ranked = super().recommend(histories, k)
        return Ranked(ranked.items, ranked.scores.flip(1))


class ForgetsOnLoad(Popularity):
    """Loads the counts back in reverse item order, as a mis-indexed checkpoint would."""

    name: ClassVar[str] = "forgets"

    @classmethod
    def load(cls, path: Path, device: torch.device | None = None) -> ForgetsOnLoad:
        model = super().load(path, device)
        model.counts_ = model.counts_.flip(0)
        return model


class Unseeded(Popularity):
    """Breaks ties with entropy from the OS instead of the seeded generators."""

    name: ClassVar[str] = "unseeded"

    def fit(self, data: SplitData, cfg: TrainConfig, workdir: Path | None = None) -> FitReport:
        report = super().fit(data, cfg, workdir)
        noise = random.Random(os.urandom(16)).random
        self.counts_ = torch.tensor([noise() for _ in range(len(self.counts_))])
        return report


class OutOfRange(Popularity):
    """Numbers items from 1, so its best item is one past the catalogue."""

    name: ClassVar[str] = "out_of_range"

    def recommend(self, histories: torch.Tensor, k: int) -> Ranked:
        ranked = super().recommend(histories, k)
        return Ranked(ranked.items + 1, ranked.scores)


class ShortK(Popularity):
    """Returns one item fewer than asked instead of padding with -1."""

    name: ClassVar[str] = "short_k"

    def recommend(self, histories: torch.Tensor, k: int) -> Ranked:
        ranked = super().recommend(histories, k)
        return Ranked(ranked.items[:, : k - 1], ranked.scores[:, : k - 1])


class NoConfig:
    name: ClassVar[str] = "no_config"
    decode_keys: ClassVar[tuple[str, ...]] = ()


@pytest.mark.parametrize(("cls", "rule"), [
    (Duplicates, "no duplicates"),
    (Unsorted, "sorted scores"),
    (ForgetsOnLoad, "save/load"),
    (Unseeded, "same seed"),
    (OutOfRange, "item range"),
    (ShortK, "shape"),
    (NoConfig, "contract shape"),
])
def test_a_broken_backend_fails_naming_the_rule(cls, rule):
    with pytest.raises(ContractViolation, match=f"^rule '{rule}' broken by ") as caught:
        check_backend(cls)
    assert caught.value.rule == rule


def test_padding_with_minus_one_is_a_short_list_not_a_failure():
    class PadsTail(Popularity):
        name: ClassVar[str] = "pads_tail"

        def recommend(self, histories: torch.Tensor, k: int) -> Ranked:
            ranked = super().recommend(histories, k)
            items, scores = ranked.items.clone(), ranked.scores.clone()
            items[:, 5:], scores[:, 5:] = -1, float("-inf")
            return Ranked(items, scores)

    report = check_backend(PadsTail)
    assert report.short_lists == {1: 0, 10: report.users, report.items: report.users}
    assert f"{report.users} at k=10" in str(report)
