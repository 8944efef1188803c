"""Position scorer: earlier sentences score higher (the input's own order as the only evidence).

It is the rank prior of retrieved passages (a retriever puts its best first), truncation expressed as
a scorer, and the fallback of scorers that find nothing to score in a text (stop words, punctuation,
emoji only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctxzip.relevance.base import ScoringTask, SentenceScorer


def position_scores(n: int) -> np.ndarray:
    """1.0 for the first unit falling evenly to 0.0 for the last (one unit: 1.0)."""
    return 1.0 - np.arange(n, dtype=np.float64) / max(1, n - 1)


@dataclass
class PositionScorer(SentenceScorer):
    name = "position"

    def score(self, tasks: list[ScoringTask], queries: list[str], prepared) -> list[np.ndarray]:
        return [position_scores(len(task)) for task in tasks]
