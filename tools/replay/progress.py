"""A progress bar for long operations, drawn with ``rich`` -- on a terminal only.

The engine reports progress through ``engine.Progress`` (``start(total, what)``,
``advance(n)``) and knows nothing of terminals.  ``bar(enabled)`` gives one that
draws, or nothing when ``enabled`` is false: the CLI enables it only when both
standard output and standard error are terminals, so piped output (``| jq``,
``> file``) never holds a bar.  ``rich`` is imported only when a bar is drawn.
The bar is transient (it disappears when done) and rows printed meanwhile appear
above it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from tools.replay.engine import NO_PROGRESS, Progress


class _RichProgress:
    def __init__(self, progress: Any) -> None:
        self._progress = progress
        self._task: Any = None

    def start(self, total: int, description: str) -> None:
        if self._task is not None:
            self._progress.update(self._task, visible=False)
        self._task = self._progress.add_task(description, total=max(total, 1))

    def advance(self, n: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, n)


def wanted() -> bool:
    """True when a bar may be drawn: both output streams are terminals."""
    return sys.stdout.isatty() and sys.stderr.isatty()


@contextlib.contextmanager
def bar(enabled: bool) -> Iterator[Progress]:
    """A Progress that draws a bar while the block runs (or does nothing)."""
    if not enabled:
        yield NO_PROGRESS
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("records"),
               TimeRemainingColumn())
    with Progress(*columns, transient=True) as progress:
        yield _RichProgress(progress)
