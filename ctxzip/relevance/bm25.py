"""BM25 scorer: each task's sentences form a small corpus; the query is scored against it (bm25s).

Text with no indexable word (stop words, punctuation or emoji only) and queries with none give BM25
nothing to go on; those tasks fall back to position scores (earlier first) instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctxzip.relevance.base import ScoringTask, SentenceScorer
from ctxzip.relevance.position import position_scores


@dataclass
class BM25Scorer(SentenceScorer):
    """Okapi BM25 over the sentences of one example; English stop words are ignored."""

    k1: float = 1.5
    b: float = 0.75
    stopwords: str | None = "english"
    # Index "title: sentence" when documents have a title in their metadata (the sentence's subject).
    with_title: bool = True
    name = "bm25"

    def _tokenize(self, texts: list[str], return_ids: bool):
        import bm25s

        return bm25s.tokenize(texts, stopwords=self.stopwords, show_progress=False, return_ids=return_ids)

    def prepare(self, tasks: list[ScoringTask]):
        import bm25s

        indexes = []
        for task in tasks:
            if not len(task):
                indexes.append(None)
                continue
            titles = task.doc_titles if self.with_title else [""] * len(task.doc_texts)
            texts = [f"{titles[d]}: {s}" if titles[d] else s for d, s in zip(task.sentence_doc.tolist(), task.sentences)]
            tokenized = self._tokenize(texts, True)
            if not tokenized.vocab or not any(len(ids) for ids in tokenized.ids):  # bm25s cannot index no words
                indexes.append(None)
                continue
            index = bm25s.BM25(k1=self.k1, b=self.b)
            index.index(tokenized, show_progress=False)
            indexes.append(index)
        return indexes

    def score(self, tasks, queries, prepared) -> list[np.ndarray]:
        query_tokens = self._tokenize(list(queries), False) if queries else []
        scores = []
        for task, index, tokens in zip(tasks, prepared, query_tokens):
            # bm25s skips query words missing from the corpus vocabulary.
            if index is None or not tokens:
                scores.append(position_scores(len(task)))
            else:
                scores.append(np.asarray(index.get_scores(tokens), dtype=np.float64))
        return scores
