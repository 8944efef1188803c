"""Cutting a long token sequence into model windows and grouping windows into batches.

Windows end at sentence boundaries where one falls inside the limit, so the encoder sees whole
sentences; a sentence longer than a window is cut at a word start, or at the limit if none.
"""

from __future__ import annotations

import numpy as np


def plan_windows(n_tokens: int, max_tokens: int, boundaries: np.ndarray, fallback: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Token ranges [start, end) of at most `max_tokens`, ending at a `boundaries` index when possible.

    `boundaries` and `fallback` are sorted token indices where a window may end (sentence ends,
    then word starts). The loop runs once per window, not per token.
    """
    if max_tokens < 1:
        raise ValueError("max_tokens must be at least 1")
    boundaries = np.asarray(boundaries, dtype=np.int64)
    fallback = np.zeros(0, dtype=np.int64) if fallback is None else np.asarray(fallback, dtype=np.int64)
    windows = []
    start = 0
    while start < n_tokens:
        limit = start + max_tokens
        if limit >= n_tokens:
            windows.append((start, n_tokens))
            break
        end = _last_in(boundaries, start, limit)
        if end is None:
            end = _last_in(fallback, start, limit)
        end = limit if end is None else end
        windows.append((start, end))
        start = end
    return windows


def _last_in(points: np.ndarray, low: int, high: int) -> int | None:
    """The largest point p with low < p <= high, or None."""
    index = int(np.searchsorted(points, high, side="right")) - 1
    if index >= 0 and points[index] > low:
        return int(points[index])
    return None
