"""What a sentence scorer sees and returns.

A `ScoringTask` is one (documents, query) pair cut into sentences. Scorers work on lists of tasks
so that many queries share one batched forward. Scoring is split in two steps because multi-hop
selection scores the same sentences again with expanded queries: `prepare` computes what depends
on the sentences only (embeddings, a BM25 index) once, `score` computes relevance to given queries.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np


@dataclass
class ScoringTask:
    """Sentences of one example. `sentence_doc[i]` indexes `doc_texts`; offsets are into that text.
    `ordered`: the documents come ranked (a retriever's best first), so their order is evidence."""

    query: str
    sentences: list[str]
    sentence_doc: np.ndarray
    sentence_start: np.ndarray
    sentence_end: np.ndarray
    doc_texts: list[str]
    doc_titles: list[str]
    ordered: bool = True

    def __len__(self) -> int:
        return len(self.sentences)


class SentenceScorer(ABC):
    """Higher score = more useful to answer the query. Scores of different scorers are not comparable."""

    name: ClassVar[str] = "scorer"
    # Whether scores are calibrated probabilities (a threshold like 0.5 means something).
    probabilistic: ClassVar[bool] = False

    def prepare(self, tasks: list[ScoringTask]) -> list[Any]:
        """Per-task features that do not depend on the query (None when there are none)."""
        return [None] * len(tasks)

    @abstractmethod
    def score(self, tasks: list[ScoringTask], queries: list[str], prepared: list[Any]) -> list[np.ndarray]:
        """One float array per task: each sentence's relevance to `queries[i]`."""

    def sentence_vectors(self, prepared: list[Any]) -> list[np.ndarray | None]:
        """Unit-norm sentence vectors per task if this scorer has them (used by MMR), else None."""
        return [None] * len(prepared)

    @property
    def model_name(self) -> str | None:
        return None
