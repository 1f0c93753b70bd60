"""Progress on stderr: a rich bar in a terminal, a plain line every `LOG_EVERY` seconds otherwise.

Long trainings usually run under `nohup` or in CI, where a live bar prints nothing until the
end; the periodic plain line keeps such logs informative. Silent when disabled, so library code
can always call it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

LOG_EVERY = 30.0
_console = Console(stderr=True)


class _Bar:
    def __init__(self, label: str, total: int, progress: Progress | None = None, task: int | None = None,
                 plain: bool = False):
        self._progress, self._task, self._plain = progress, task, plain
        self._label, self._total, self._done = label, total, 0
        self._start = self._last = time.monotonic()

    def advance(self, n: int = 1, status: str | None = None) -> None:
        self._done += n
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=n, **({"status": status} if status else {}))
        elif self._plain:
            now = time.monotonic()
            if now - self._last >= LOG_EVERY or self._done == self._total:
                self._last = now
                print(f"{self._label}: {self._done}/{self._total} [{now - self._start:.0f} s] {status or ''}",
                      file=sys.stderr, flush=True)


@contextmanager
def progress_bar(total: int, label: str, disable: bool = False) -> Iterator[_Bar]:
    if disable:
        yield _Bar(label, total)
        return
    if not sys.stderr.isatty():
        yield _Bar(label, total, plain=True)
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), TextColumn("{task.fields[status]}"), console=_console, transient=False,
    )
    with progress:
        task = progress.add_task(label, total=total, status="")
        yield _Bar(label, total, progress, task)
