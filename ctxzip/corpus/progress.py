"""The progress bar of a corpus job (rich, on stderr): records, records/s, ETA and tokens saved."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ctxzip.corpus.records import Compressed, Outcome


class JobProgress:
    """Counts what this run does; starts from what earlier (resumed) runs already finished."""

    def __init__(self, enabled: bool, total: int | None, before) -> None:
        self.enabled = enabled
        self.records = 0
        self.saved = before.original_tokens - before.compressed_tokens
        self.started = time.perf_counter()
        self._progress = None
        if enabled:
            self._progress = Progress(
                TextColumn("[bold]compressing"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]} records/s"), TextColumn("ETA"), TimeRemainingColumn(),
                TextColumn("{task.fields[saved]} tokens saved"),
                console=Console(stderr=True), transient=False,
            )
            self._task = self._progress.add_task("corpus", total=total, completed=before.records,
                                                 rate="-", saved=f"{self.saved:,}")

    def __enter__(self) -> "JobProgress":
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance_outcomes(self, outcomes: list[Outcome]) -> None:
        self.records += len(outcomes)
        self.saved += sum(o.original_tokens - o.compressed_tokens for o in outcomes if isinstance(o, Compressed))
        if self._progress is not None:
            rate = self.records / max(time.perf_counter() - self.started, 1e-9)
            self._progress.update(self._task, advance=len(outcomes), rate=f"{rate:,.0f}", saved=f"{self.saved:,}")
