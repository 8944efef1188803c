"""Metrics shared by the evaluation runners."""

from __future__ import annotations

import re
import string
from typing import Iterable, Sequence

import numpy as np

from ctxzip.document import Span

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def answer_recall(answers: str | Sequence[str], context: str) -> float:
    """1.0 if any gold answer survives in the context (normalised, on word boundaries), else 0.0."""
    if isinstance(answers, str):
        answers = [answers]
    haystack = f" {normalize_answer(context)} "
    return float(any(f" {normalize_answer(a)} " in haystack for a in answers if normalize_answer(a)))


def covered_fraction(start: int, end: int, spans: Iterable[Span]) -> float:
    """Share of characters [start, end) that lie inside the kept spans of the same document."""
    if end <= start:
        return 1.0
    covered = sum(max(0, min(end, s.end) - max(start, s.start)) for s in spans)
    return min(1.0, covered / (end - start))


def supporting_recall(gold: Sequence[tuple[str, int, int]], kept: Sequence[Span], threshold: float = 0.8) -> float:
    """Share of gold sentences (doc_id, start, end) of which at least `threshold` of the characters were kept."""
    if not gold:
        return float("nan")
    by_doc: dict[str, list[Span]] = {}
    for span in kept:
        by_doc.setdefault(span.doc_id, []).append(span)
    hits = [covered_fraction(s, e, by_doc.get(doc, [])) >= threshold for doc, s, e in gold]
    return float(np.mean(hits))


def text_supporting_recall(gold_sentences: Sequence[str], text: str, threshold: float = 0.8) -> float:
    """For methods that return only text (llmlingua rewrites and reorders): share of gold sentences of
    which at least `threshold` of the words (with multiplicity) occur in `text`. More lenient than
    `supporting_recall`: word order and adjacency are not checked."""
    import collections
    import re

    if not gold_sentences:
        return float("nan")
    have = collections.Counter(re.findall(r"\w+", text.lower()))
    hits = []
    for sentence in gold_sentences:
        need = collections.Counter(re.findall(r"\w+", sentence.lower()))
        total = sum(need.values())
        found = sum(min(n, have[w]) for w, n in need.items())
        hits.append(total > 0 and found >= threshold * total)
    return float(np.mean(hits))


def bootstrap_ci(values: Sequence[float], resamples: int = 1000, alpha: float = 0.05, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the mean and a percentile bootstrap confidence interval."""
    data = np.asarray([v for v in values if not np.isnan(v)], dtype=np.float64)
    if not len(data):
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(resamples, len(data)))].mean(axis=1)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(data.mean()), float(low), float(high)
