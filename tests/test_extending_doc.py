"""docs/extending.md runs as written: its examples execute in order in an empty folder.

`python` blocks are executed in one namespace, `python file=NAME` blocks are written to NAME,
`toml from=PATH` blocks must appear verbatim in that repository file, and every line of a `bash`
block is a `genrec-bench` command run through the CLI (an optional `PYTHONPATH=.` prefix puts the
folder on `sys.path`) or the plugin's `pip install`, which `make install` has done already. Any
other block kind fails, so the page cannot hold an example that no test runs.
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from test_cli import run_cli

from genrec_bench.data import registry
from genrec_bench.models.registry import ENTRY_POINT_GROUP

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "extending.md"
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```$", re.S | re.M)


def blocks() -> list[tuple[int, str, str]]:
    """(line, info string, body) of every fenced block of the page."""
    text = DOC.read_text(encoding="utf-8")
    return [(text[: m.start()].count("\n") + 1, m.group(1).strip(), m.group(2)) for m in FENCE.finditer(text)]


@pytest.fixture
def _doc_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An empty working folder on sys.path; the dataset the page registers and the module it
    writes are forgotten afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "DATASETS", dict(registry.DATASETS))
    yield
    sys.modules.pop("my_backends", None)


def test_the_page_has_every_kind_of_example():
    kinds = {info.split()[0] for _, info, _ in blocks()}
    assert kinds == {"python", "bash", "toml"}


@pytest.mark.usefixtures("_doc_sandbox")
def test_every_example_runs(capsys, monkeypatch):
    namespace: dict[str, object] = {"__name__": "extending_doc"}
    for line, info, body in blocks():
        where = f"{DOC.name}:{line}"
        kind, *options = info.split()
        attrs = dict(option.split("=", 1) for option in options)
        if kind == "python" and "file" in attrs:
            Path(attrs["file"]).write_text(body, encoding="utf-8")
        elif kind == "python":
            exec(compile(body, where, "exec"), namespace)  # noqa: S102 - the page's own example
        elif kind == "toml":
            assert body in (REPO / attrs["from"]).read_text(encoding="utf-8"), f"{where} differs from {attrs['from']}"
        elif kind == "bash":
            for command in body.splitlines():
                _run_command(command, where, capsys, monkeypatch)
        else:
            pytest.fail(f"{where}: no test runs a ```{info} block; use python, bash or toml")
    assert Path("runs/itemknn/run.json").exists() and Path("clicks-ids.json").exists()


def _run_command(command: str, where: str, capsys, monkeypatch) -> None:
    if not command.strip():
        return
    if command == "pip install -e examples/plugin":
        names = {ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
        assert "itemknn" in names, "the example plugin is not installed; `make install` installs it"
        return
    args = shlex.split(command)
    if args[0] == "PYTHONPATH=.":  # the sandbox folder is on sys.path already
        args = args[1:]
    assert args[0] == "genrec-bench", f"{where}: only genrec-bench commands can be run, got {command!r}"
    code, _, err = run_cli(args[1:], capsys, monkeypatch)
    assert code == 0, f"{where}: `{command}` failed:\n{err}"
