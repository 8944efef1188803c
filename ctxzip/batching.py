"""Grouping model inputs into batches of similar length, so padding wastes little (every model forward uses it)."""

from __future__ import annotations

import numpy as np


def batch_by_length(lengths, max_batch_tokens: float = float("inf"), max_batch_size: int = 64) -> list[np.ndarray]:
    """Indices grouped into batches, longest first: a batch's padded width is its first item's length,
    and width x rows stays within `max_batch_tokens` (a single longer item gets a batch of its own)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable").tolist()
    batches, current = [], []
    for index in order:
        if current and (int(lengths[current[0]]) * (len(current) + 1) > max_batch_tokens or len(current) >= max_batch_size):
            batches.append(np.array(current))
            current = []
        current.append(index)
    if current:
        batches.append(np.array(current))
    return batches
