"""Redundancy: exact and near-duplicate sentences (kept once), and MMR ordering.

Retrieved chunks overlap, so the same sentence often arrives several times. Near duplicates are
found with hashed word uni/bigram vectors (no model needed) compared block by block, so memory
stays bounded on long inputs.
"""

from __future__ import annotations

import numpy as np
import regex

from ctxzip.scores import minmax

_BLOCK = 512
_MAX_NEIGHBOURS = 16
_NORMALIZE = regex.compile(r"[\p{P}\p{S}\s]+")


def _normalized(text: str) -> str:
    return _NORMALIZE.sub(" ", text.casefold()).strip()


def _hashed_vectors(texts: list[str]):
    from sklearn.feature_extraction.text import HashingVectorizer

    vectorizer = HashingVectorizer(
        n_features=2**20, ngram_range=(1, 2), binary=True, norm="l2", alternate_sign=False,
        token_pattern=r"(?u)\b\w+\b",
    )
    return vectorizer.transform(texts).tocsr()


def duplicate_mask(texts: list[str], priority: np.ndarray, threshold: float = 0.9) -> np.ndarray:
    """True for sentences that repeat a sentence with higher priority (ties: the earlier one wins).

    Exact duplicates compare after case folding and dropping punctuation; near duplicates have a
    cosine of at least `threshold` between their word uni/bigram sets.
    """
    n = len(texts)
    duplicate = np.zeros(n, dtype=bool)
    if n < 2:
        return duplicate
    rank = np.empty(n, dtype=np.int64)
    rank[np.lexsort((np.arange(n), -np.asarray(priority, dtype=np.float64)))] = np.arange(n)
    keys = [_normalized(t) for t in texts]

    # Exact: everything but the best-ranked copy of each key.
    best: dict[str, int] = {}
    for i in np.argsort(rank).tolist():
        if keys[i] in best:
            duplicate[i] = True
        else:
            best[keys[i]] = i
    if threshold >= 1.0:
        return duplicate

    # Near: among the distinct sentences, pairs above the threshold from a blocked sparse product.
    # Each sentence remembers only a few better-ranked neighbours, so memory stays linear even
    # when many sentences look alike.
    distinct = np.array(sorted(best.values()), dtype=np.int64)
    if len(distinct) < 2:
        return duplicate
    vectors = _hashed_vectors([keys[i] for i in distinct.tolist()])
    distinct_rank = rank[distinct]
    better: dict[int, np.ndarray] = {}
    for begin in range(0, len(distinct), _BLOCK):
        block = (vectors[begin : begin + _BLOCK] @ vectors.T).tocoo()
        rows, cols = block.row + begin, block.col
        close = (block.data >= threshold) & (distinct_rank[cols] < distinct_rank[rows])
        rows, cols = rows[close], cols[close]
        if not len(rows):
            continue
        order = np.lexsort((distinct_rank[cols], rows))
        rows, cols = rows[order], cols[order]
        for row, group in zip(*_group_heads(rows, cols)):
            better[int(distinct[row])] = distinct[group[:_MAX_NEIGHBOURS]]
    # Greedy in rank order: a sentence goes if a better-ranked neighbour stays.
    for i in sorted(better, key=lambda k: rank[k]):
        if not np.all(duplicate[better[i]]):
            duplicate[i] = True
    return duplicate


def _group_heads(rows: np.ndarray, cols: np.ndarray):
    """(row values, column groups) for sorted `rows`."""
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    return rows[starts], np.split(cols, starts[1:])


def mmr_order(scores: np.ndarray, vectors: np.ndarray | None, texts: list[str], lam: float = 0.7,
              limit: int | None = None) -> np.ndarray:
    """Indices in Maximal Marginal Relevance order: lam * relevance - (1 - lam) * max similarity to picked.

    Relevance is min-max scaled so lam means the same for every scorer. Only the first `limit`
    picks are computed; the rest follow in score order.
    """
    n = len(scores)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if vectors is None:
        vectors = _hashed_vectors([_normalized(t) for t in texts])
        similarity_to = lambda i: np.asarray((vectors @ vectors[i].T).todense()).ravel()  # noqa: E731
    else:
        similarity_to = lambda i: vectors @ vectors[i]  # noqa: E731
    relevance = minmax(scores)
    limit = n if limit is None else min(n, limit)
    max_similarity = np.zeros(n)
    available = np.ones(n, dtype=bool)
    picked = []
    for _ in range(limit):
        gain = np.where(available, lam * relevance - (1 - lam) * max_similarity, -np.inf)
        i = int(np.argmax(gain))
        picked.append(i)
        available[i] = False
        max_similarity = np.maximum(max_similarity, similarity_to(i))
    rest = np.flatnonzero(available)
    rest = rest[np.lexsort((rest, -scores[rest]))]
    return np.concatenate([np.array(picked, dtype=np.int64), rest])
