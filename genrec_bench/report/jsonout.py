"""JSON boards: every cell, test and reference, for tools that read the leaderboard."""

from __future__ import annotations

import dataclasses
import json

from genrec_bench.report.board import DatasetBoard


def render_json(boards: list[DatasetBoard]) -> str:
    doc = {"schema": 1, "kind": "genrec-bench leaderboard",
           "boards": [dataclasses.asdict(b) | {"title": b.title} for b in boards]}
    return json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n"
