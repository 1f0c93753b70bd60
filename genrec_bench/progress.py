"""Progress bars on stderr (rich), silent when disabled so library code can always call them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

_console = Console(stderr=True)


class _Bar:
    def __init__(self, progress: Progress | None, task: int | None):
        self._progress, self._task = progress, task

    def advance(self, n: int = 1, status: str | None = None) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=n, **({"status": status} if status else {}))


@contextmanager
def progress_bar(total: int, label: str, disable: bool = False) -> Iterator[_Bar]:
    if disable:
        yield _Bar(None, None)
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), TextColumn("{task.fields[status]}"), console=_console, transient=False,
    )
    with progress:
        task = progress.add_task(label, total=total, status="")
        yield _Bar(progress, task)
