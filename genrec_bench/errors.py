"""One exception type for every user-facing problem, so the CLI can print it as one line."""

from __future__ import annotations

from difflib import get_close_matches
from pathlib import Path


class GenrecError(Exception):
    """A problem the user can fix: bad input, bad config, unknown name.

    The message names where the problem is (file and line when known) and what was expected,
    so the CLI prints it verbatim instead of a traceback.
    """

    def __init__(self, message: str, *, path: Path | str | None = None, line: int | None = None):
        self.path = Path(path) if path is not None else None
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)


def did_you_mean(name: str, choices: list[str] | tuple[str, ...] | set[str]) -> str:
    """A ' (did you mean: a, b?)' suffix with the closest choices, or '' when none is close."""
    close = get_close_matches(name, sorted(choices), n=3, cutoff=0.5)
    return f" (did you mean: {', '.join(close)}?)" if close else ""


class Interrupted(GenrecError):
    """Training stopped by SIGINT/SIGTERM after its checkpoint was written; `--resume` continues it."""
