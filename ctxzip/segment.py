"""Cutting text into units. Every unit owns the whitespace before it, so a selection of units
rendered by concatenation is always a sequence of original slices with natural spacing."""

from __future__ import annotations

import numpy as np
import regex

# A CJK character, a run of other non-space characters, each with the whitespace before it;
# whitespace at the end of the text goes to the last unit.
_WORD = regex.compile(
    r"\s*(?:[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]|[^\s\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]+)(?:\s+$)?"
)


def word_spans(text: str) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of word units covering `text`; whitespace-only text is one unit."""
    if not text:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    matches = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    if not matches:
        return np.array([0]), np.array([len(text)])
    spans = np.array(matches, dtype=np.int64)
    return spans[:, 0], spans[:, 1]


def sentence_spans(text: str) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of sentence units covering `text`, from blingfire's sentence breaker.

    Line breaks are hard boundaries too, so list items and headings become their own units.
    """
    import blingfire

    if not text.strip():
        return word_spans(text)
    boundaries: list[int] = []
    for line in regex.finditer(r"[^\n]+", text):
        _, offsets = blingfire.text_to_sentences_and_offsets(line.group())
        boundaries.extend(line.start() + end for _, end in offsets)
    return cover(text, boundaries)


def cover(text: str, content_ends: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Turn content end offsets into contiguous units covering the whole text.

    Each unit runs from the previous unit's end (so it owns the leading whitespace) to its
    content end; the last unit also takes any trailing whitespace.
    """
    ends = sorted({e for e in content_ends if 0 < e <= len(text)})
    if not ends:
        return np.array([0]), np.array([len(text)])
    ends[-1] = len(text)
    ends = np.array(ends, dtype=np.int64)
    starts = np.concatenate([[0], ends[:-1]])
    return starts, ends
