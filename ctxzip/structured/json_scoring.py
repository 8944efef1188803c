"""Scores for JSON units: query relevance (BM25 over each item's JSON text) plus the structure's priors.

- The head and the tail of an array are kept first (the shape of a result and where it ends);
- between them, earlier items rank higher (tool results usually arrive ranked);
- an item identical to an earlier one in the same array is worth almost nothing (repeated rows);
- a frame (brackets, keys, short values) scores as the best thing it holds, so a record is kept
  before the items inside it compete for room.
"""

from __future__ import annotations

import numpy as np

from ctxzip.structured.json_units import JsonUnits
from ctxzip.structured.relevance import bm25_relevance

HEAD, TAIL = 2, 1
HEAD_TAIL_BONUS = 1.0
RANK_PRIOR = 0.25
RELEVANCE_WEIGHT = 2.0
LONG_VALUE_PRIOR = 0.3


def score_json_units(units: JsonUnits, query: str | None, head: int = HEAD, tail: int = TAIL) -> np.ndarray:
    score = np.zeros(len(units), dtype=np.float64)
    pieces = [(child, container.kind, i, len(container.children))
              for container in units.containers for i, child in enumerate(container.children) if child.droppable]
    if not pieces:
        return score
    texts = [units.subtree_text(child) for child, _, _, _ in pieces]
    relevance = bm25_relevance(texts, query)
    seen: set[tuple[int, str]] = set()
    for (child, kind, i, n), text, rel in zip(pieces, texts, relevance):
        if kind == "array":
            prior = RANK_PRIOR * (1.0 - i / n) + (HEAD_TAIL_BONUS if i < head or i >= n - tail else 0.0)
            key = (units.parent[child.unit], text)
            if key in seen:
                score[child.unit] = 0.01 * prior
                continue
            seen.add(key)
        else:
            prior = LONG_VALUE_PRIOR
        score[child.unit] = RELEVANCE_WEIGHT * rel + prior
    return _lift_frames(units, score)


def _lift_frames(units: JsonUnits, score: np.ndarray) -> np.ndarray:
    """Each frame takes the best score beneath it; all units of a skeleton share its best score."""
    has_parent = np.flatnonzero(units.parent >= 0)
    grouped = units.group >= 0
    for _ in range(len(units.containers) + 1):
        before = score.copy()
        np.maximum.at(score, units.parent[has_parent], score[has_parent])
        if grouped.any():
            best = np.zeros(int(units.group.max()) + 1)
            np.maximum.at(best, units.group[grouped], score[grouped])
            score[grouped] = best[units.group[grouped]]
        if np.array_equal(before, score):
            break
    return score
