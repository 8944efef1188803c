"""Query relevance of structured pieces (array items, log lines): BM25 over the pieces themselves."""

from __future__ import annotations

import numpy as np


def bm25_relevance(texts: list[str], query: str | None) -> np.ndarray:
    """BM25 score of each text against `query`, scaled to [0, 1] by the best one.

    Zeros when there is no query, no text, or no word to index (punctuation, emoji, stop words only):
    position and structure then decide, instead of a crash inside the index.
    """
    scores = np.zeros(len(texts), dtype=np.float64)
    if not query or not query.strip() or not texts:
        return scores
    import bm25s

    corpus = bm25s.tokenize(texts, stopwords="english", show_progress=False, return_ids=True)
    if not getattr(corpus, "vocab", None):
        return scores
    query_tokens = bm25s.tokenize([query], stopwords="english", show_progress=False, return_ids=False)
    if not query_tokens or not query_tokens[0]:
        return scores
    index = bm25s.BM25()
    try:
        index.index(corpus, show_progress=False)
        raw = np.asarray(index.get_scores(query_tokens[0]), dtype=np.float64)
    except (ValueError, IndexError, KeyError):  # degenerate corpora bm25s cannot index
        return scores
    top = raw.max() if len(raw) else 0.0
    return raw / top if top > 0 else scores
