"""Turning documents into word or sentence units (positions only; scores come from the method)."""

from __future__ import annotations

import numpy as np

from ctxzip.document import Document
from ctxzip.errors import InvalidInputError
from ctxzip.segment import sentence_spans, word_spans

SPLITTERS = {"word": word_spans, "sentence": sentence_spans}


def split_documents(documents: list[Document], unit: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(doc index, start, end) arrays of all units of all documents, in order."""
    try:
        splitter = SPLITTERS[unit]
    except KeyError:
        raise InvalidInputError(f"unit must be one of {sorted(SPLITTERS)}, got {unit!r}") from None
    docs, starts, ends = [], [], []
    for index, doc in enumerate(documents):
        s, e = splitter(doc.text)
        docs.append(np.full(len(s), index, dtype=np.int64))
        starts.append(s)
        ends.append(e)
    if not docs:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    return np.concatenate(docs), np.concatenate(starts), np.concatenate(ends)
