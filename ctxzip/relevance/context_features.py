"""Features the context head (v2) adds to v1's: what transfers across data sets, not one set's fit.

- rank: where the sentence's passage sits in the input, when the caller says the order means
  something (`ScoringTask.ordered`) and there are several passages; all zero otherwise, so one head
  serves ranked and unranked inputs and learns how far to trust the rank.
- repeats: how often the sentence occurs in the input (retrievers return overlapping chunks; a
  sentence that comes back in several passages is what the retriever kept finding).
- neighbourhood: query similarity averaged over nearby sentences of the same document (the relevant
  part of a long transcript is a stretch, not one line).
- surface: digits, years, capitalised words, length; the question's type (who, when, how many, ...),
  so the head can match answer types with the sentences that carry them.
- title: whether the question names the passage's title.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import regex

from ctxzip.relevance.base import ScoringTask

QUESTION_TYPES = ("who", "when", "where", "how many", "how much", "which", "what", "how", "why")
_YEAR = regex.compile(r"\b(1[5-9]\d\d|20\d\d)s?\b")
_DIGIT = regex.compile(r"\d")
_CAPITALISED = regex.compile(r"(?<!^)(?<![.!?]\s)\b\p{Lu}\p{Ll}+")
_WORD = regex.compile(r"\w+")
_NORMALISE = regex.compile(r"[\p{P}\p{S}\s]+")
N_EXTRA_FEATURES = 21 + len(QUESTION_TYPES) + 1


def question_type(query: str) -> np.ndarray:
    """One-hot over QUESTION_TYPES (+ other), by the first type word the question uses."""
    text = f" {query.casefold()} "
    out = np.zeros(len(QUESTION_TYPES) + 1, dtype=np.float32)
    best, found = len(text) + 1, len(QUESTION_TYPES)
    for index, word in enumerate(QUESTION_TYPES):
        at = text.find(f" {word} ")
        if 0 <= at < best or (at == best and len(word) > len(QUESTION_TYPES[found])):
            best, found = at, index
    out[found] = 1.0
    return out


def window_mean(values: np.ndarray, doc: np.ndarray, radius: int) -> np.ndarray:
    """Mean of `values` over the sentences within `radius` positions in the same document."""
    n = len(values)
    if not n:
        return values.astype(np.float64)
    total = np.zeros(n)
    count = np.zeros(n)
    for shift in range(-radius, radius + 1):
        lo, hi = max(0, -shift), min(n, n - shift)
        if hi <= lo:
            continue
        same = doc[lo:hi] == doc[lo + shift : hi + shift]
        total[lo:hi] += np.where(same, values[lo + shift : hi + shift], 0.0)
        count[lo:hi] += same
    return total / np.maximum(count, 1)


def repeat_features(sentences: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(log copies in the input, 1 for the first copy) per sentence, after case folding and punctuation."""
    keys = [_NORMALISE.sub(" ", s.casefold()).strip() for s in sentences]
    counts: dict[str, int] = {}
    first = np.zeros(len(keys), dtype=np.float32)
    for i, key in enumerate(keys):
        first[i] = key not in counts
        counts[key] = counts.get(key, 0) + 1
    copies = np.array([counts[k] if k else 1 for k in keys], dtype=np.float32)
    return np.log(copies), first


def rank_features(task: ScoringTask) -> np.ndarray:
    """(n, 4): ranked-input flag, passage rank share, first passage, log(1 + passage index)."""
    n, n_docs = len(task), len(task.doc_texts)
    out = np.zeros((n, 4), dtype=np.float32)
    if not task.ordered or n_docs < 2:
        return out
    index = task.sentence_doc.astype(np.float32)
    out[:, 0] = 1.0
    out[:, 1] = index / (n_docs - 1)
    out[:, 2] = index == 0
    out[:, 3] = np.log1p(index)
    return out


def surface_features(sentences: list[str]) -> np.ndarray:
    """(n, 4): has a digit, has a year, capitalised words per word, log length in characters."""
    out = np.zeros((len(sentences), 4), dtype=np.float32)
    for i, s in enumerate(sentences):
        words = max(1, len(_WORD.findall(s)))
        out[i] = (bool(_DIGIT.search(s)), bool(_YEAR.search(s)), len(_CAPITALISED.findall(s)) / words,
                  np.log1p(len(s)))
    return out


def title_in_query(task: ScoringTask) -> np.ndarray:
    query = f" {_NORMALISE.sub(' ', task.query.casefold())} "
    named = np.array([bool(t.strip()) and f" {_NORMALISE.sub(' ', t.casefold()).strip()} " in query
                      for t in task.doc_titles], dtype=np.float32)
    return named[task.sentence_doc] if len(task) else np.zeros(0, np.float32)


_TITLE_QUALIFIER = regex.compile(r"\s*\([^)]*\)\s*$")  # "Kiss and Tell (1945 film)" is named as "Kiss and Tell"


def title_links(task: ScoringTask, scores: np.ndarray) -> np.ndarray:
    """Per sentence: the best score among sentences of other passages that name its passage's title.
    A multi-hop question's first hop names the passage holding the answer ("... starring Shirley
    Temple"), which on its own shares few words with the question. Titles that several passages share
    (chunks of one article) or of under 4 characters link nothing."""
    n_docs = len(task.doc_texts)
    incoming = np.zeros(n_docs)
    titles = [_NORMALISE.sub(" ", _TITLE_QUALIFIER.sub("", t).casefold()).strip() for t in task.doc_titles]
    if n_docs < 2 or not len(task) or not any(titles):
        return incoming[task.sentence_doc] if len(task) else np.zeros(0)
    seen = Counter(titles)
    # Titles as word tuples: one pass over each sentence's word n-grams instead of one scan per title.
    doc_of = {tuple(t.split()): d for d, t in enumerate(titles) if len(t) >= 4 and seen[t] == 1}
    lengths = sorted({len(words) for words in doc_of})
    for i, sentence in enumerate(task.sentences):
        words = _NORMALISE.sub(" ", sentence.casefold()).split()
        named = {doc_of.get(tuple(words[s : s + n])) for n in lengths for s in range(len(words) - n + 1)}
        for d in named - {None, int(task.sentence_doc[i])}:
            incoming[d] = max(incoming[d], float(scores[i]))
    return incoming[task.sentence_doc]


def extra_features(task: ScoringTask, cosine: np.ndarray, bm25_scaled: np.ndarray) -> np.ndarray:
    """(n, N_EXTRA_FEATURES) of one task, for the query the cosines and BM25 scores were computed with."""
    n = len(task)
    doc = task.sentence_doc
    copies, first_copy = repeat_features(task.sentences)
    near2, near8 = window_mean(cosine, doc, 2), window_mean(cosine, doc, 8)
    lexical2, lexical8 = window_mean(bm25_scaled, doc, 2), window_mean(bm25_scaled, doc, 8)
    doc_sizes = np.bincount(doc, minlength=len(task.doc_texts))[doc]
    first_of_doc = np.r_[0, np.flatnonzero(doc[1:] != doc[:-1]) + 1] if n else np.zeros(0, np.int64)
    position = np.arange(n) - np.repeat(first_of_doc, np.diff(np.r_[first_of_doc, n])) if n else np.zeros(0)
    columns = np.column_stack([
        rank_features(task), copies, first_copy, near2, near8, near2 - near2.max(initial=0.0),
        near8 - near8.max(initial=0.0), lexical2, lexical8, surface_features(task.sentences),
        title_in_query(task), np.log1p(doc_sizes), position / np.maximum(doc_sizes - 1, 1),
        np.full(n, np.log1p(len(task.doc_texts))), np.full(n, np.log1p(n)),
    ]) if n else np.zeros((0, 21))
    kind = np.repeat(question_type(task.query)[None, :], n, axis=0)
    return np.concatenate([columns, kind], axis=1).astype(np.float32)
