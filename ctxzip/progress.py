"""Progress of long compressions, for whoever is watching.

Model loops report with `report(stage, done, total)`; nothing happens unless a caller opened
`progress_bar()` around the work (the CLI does on a terminal). A context variable carries the bar,
so library code never takes a progress argument and threads started by the caller see nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
from typing import Callable, Iterator

Reporter = Callable[[str, int, int], None]
_REPORTER: contextvars.ContextVar[Reporter | None] = contextvars.ContextVar("ctxzip_progress", default=None)


def report(stage: str, done: int, total: int) -> None:
    """`done` of `total` steps of `stage` are finished (cheap when nobody watches)."""
    reporter = _REPORTER.get()
    if reporter is not None:
        reporter(stage, done, total)


@contextlib.contextmanager
def progress_bar(enabled: bool | None = None) -> Iterator[None]:
    """A rich progress bar on stderr while the block runs; `enabled=None` means "when stderr is a terminal"."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    tasks: dict[str, int] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        def reporter(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        token = _REPORTER.set(reporter)
        try:
            yield
        finally:
            _REPORTER.reset(token)
