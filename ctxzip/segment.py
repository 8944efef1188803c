"""Cutting text into units: words, entities, phrases and sentences, as character spans.

Every unit owns the whitespace before it and the units of a text cover it without gaps, so any
selection of units rendered by concatenation is a sequence of original slices with natural spacing.
`split_documents(documents, unit)` cuts a list of documents at once; the other functions cut one text.
"""

from __future__ import annotations

import numpy as np
import regex

from ctxzip.document import Document
from ctxzip.errors import InvalidInputError

# A CJK character, a run of other non-space characters, each with the whitespace before it;
# whitespace at the end of the text goes to the last unit.
_WORD = regex.compile(
    r"\s*(?:[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]|[^\s\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]+)(?:\s+$)?"
)
_PHRASE_END = regex.compile(r"[,;:.!?)\]](?=\s)|\n")

# blingfire sometimes misses a boundary ("... from the Sun. Mars has ..."): also end a sentence at
# [.!?] after a word of 2+ letters that is not a common abbreviation, when whitespace and an
# upper-case letter (or opening quote) follow. Initials ("J. K.") and "U.S." are left alone.
_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "ft", "vs", "etc", "inc", "ltd", "co", "corp",
    "no", "vol", "fig", "gen", "gov", "sen", "rep", "col", "capt", "lt", "sgt", "rev", "jan", "feb", "mar", "apr",
    "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "approx", "dept", "est", "al", "cf", "ca",
}
_MISSED_END = regex.compile(r"(?<=\b(\p{L}{2,})[.!?][\"')\]]*)(?=[ \t]+[\"'(\[]?\p{Lu})")
_FENCE = regex.compile(r"(?ms)^[ \t]*(```|~~~)[^\n]*\n.*?^[ \t]*\1[^\n]*$")
_CONTENT = regex.compile(r"[\p{L}\p{N}]")
# A "sentence" longer than this (run-on text, minified data, no capitals after full stops) is cut at
# clause ends, and a clause still longer at word starts, so no unit is too big for a budget.
MAX_SENTENCE_CHARS = 600
MAX_WORD_CHARS = 100
_DECORATION_CHARS = 120

Spans = tuple[np.ndarray, np.ndarray]


def _none() -> Spans:
    return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)


def word_spans(text: str) -> Spans:
    """(starts, ends) of word units covering `text`; whitespace-only text is one unit."""
    if not text:
        return _none()
    matches = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    if not matches:
        return np.array([0]), np.array([len(text)])
    spans = np.array(matches, dtype=np.int64)
    long = np.flatnonzero(spans[:, 1] - spans[:, 0] > MAX_WORD_CHARS)
    if len(long):  # a base64 blob or minified line is not one word: cut it so a budget can hold a piece
        ends = spans[:, 1].tolist()
        for i in long.tolist():
            ends.extend(range(int(spans[i, 0]) + MAX_WORD_CHARS, int(spans[i, 1]), MAX_WORD_CHARS))
        return cover(text, ends)
    return spans[:, 0], spans[:, 1]


_MONTH = (r"(?:January|February|March|April|May|June|July|August|September|October|November|December"
          r"|Jan\.|Feb\.|Mar\.|Apr\.|Jun\.|Jul\.|Aug\.|Sept?\.|Oct\.|Nov\.|Dec\.)")
_NAME_WORD = r"\p{Lu}(?:\.|[\p{L}\p{M}\p{N}'’&-]*)"  # "Obama", "O'Neil", or an initial "J."
_ENTITY = regex.compile(
    # dates: "12 March 1990", "March 12, 1990", "March 1990"
    rf"(?:\d{{1,2}}(?:st|nd|rd|th)?\s+)?{_MONTH}(?:\s+\d{{1,2}}(?:st|nd|rd|th)?)?(?:,?\s+\d{{3,4}})?(?=\W|$)"
    # amounts: "$1,200", "3.5 million", "12 %", "40 km"
    r"|[$€£¥]?\d[\d,.]*\d?(?:\s?(?:%|percent|per cent|thousand|million|billion|trillion|km|kg|mph|m|ft))?(?=\W|$)"
    # names: capitalised words, with lower-case joiners between them ("University of California")
    rf"|{_NAME_WORD}(?:\s+(?:(?:of|the|de|del|da|di|du|van|von|der|den|la|le|al|y|and|&)\s+)*{_NAME_WORD})+"
)
MAX_ENTITY_WORDS = 8


def entity_spans(text: str) -> Spans:
    """Word units, with the words of one entity (a multi-word name, a date, a number with its scale
    or unit) merged into one unit, so that a selection keeps or drops the entity whole."""
    starts, ends = word_spans(text)
    if len(starts) < 2:
        return starts, ends
    content = np.array([s + len(text[s:e]) - len(text[s:e].lstrip()) for s, e in zip(starts.tolist(), ends.tolist())])
    label = np.full(len(starts), -1, dtype=np.int64)
    for index, match in enumerate(_ENTITY.finditer(text)):
        first = int(np.searchsorted(content, match.start(), side="left"))
        last = int(np.searchsorted(content, match.end(), side="left"))
        if 1 < last - first <= MAX_ENTITY_WORDS:
            label[first:last] = index
    joined = (label[1:] >= 0) & (label[1:] == label[:-1])  # word i+1 continues word i's entity
    keep = np.r_[True, ~joined]
    return starts[keep], np.r_[starts[keep][1:], ends[-1]]


def phrase_spans(text: str) -> Spans:
    """Units that end at punctuation or line ends (clauses, list items), covering the text."""
    if not text.strip():
        return word_spans(text)
    return cover(text, [m.end() for m in _PHRASE_END.finditer(text)] + [len(text)])


def sentence_spans(text: str) -> Spans:
    """(starts, ends) of sentence units covering `text`.

    blingfire's sentence breaker within lines, plus the boundaries it misses; line breaks are hard
    boundaries (headings, list items, table rows); a fenced code block (```/~~~) is one unit, since
    half a code block is worse than none; a line without letters or digits (a table rule, `***`)
    joins the unit before it, so no unit is pure decoration.
    """
    if not text.strip():
        return word_spans(text)
    starts, ends = _blingfire_sentences(text)
    if len(starts) <= 1:
        return starts, ends
    keep = np.ones(len(starts), dtype=bool)  # False: this unit is merged into the one before it
    fences = list(_FENCE.finditer(text))
    if fences:
        leading = np.array([len(text[s:e]) - len(text[s:e].lstrip()) for s, e in zip(starts.tolist(), ends.tolist())])
        content_starts = starts + leading
        for fence in fences:  # units whose content starts inside the fence join the unit where it begins
            keep[(content_starts > fence.start()) & (content_starts < fence.end())] = False
    for i in range(1, len(starts)):  # short decoration (a table rule, `***`) joins the unit before
        if keep[i] and ends[i] - starts[i] <= _DECORATION_CHARS and not _CONTENT.search(text, int(starts[i]), int(ends[i])):
            keep[i] = False
    first = np.flatnonzero(keep)
    if not len(first) or first[0] != 0:
        first = np.concatenate([[0], first])
    return starts[first], np.concatenate([starts[first[1:]], [ends[-1]]])


def _blingfire_sentences(text: str) -> Spans:
    import blingfire

    boundaries: list[int] = []
    for line in regex.finditer(r"[^\n]+", text):
        _, offsets = blingfire.text_to_sentences_and_offsets(line.group())
        boundaries.extend(line.start() + end for _, end in offsets)
    boundaries.extend(m.start() for m in _MISSED_END.finditer(text) if m.captures(1)[-1].casefold() not in _ABBREVIATIONS)
    starts, ends = cover(text, boundaries)
    long = np.flatnonzero(ends - starts > MAX_SENTENCE_CHARS)
    if not len(long):
        return starts, ends
    extra = []
    for i in long.tolist():
        extra.extend(_cut_long(text, int(starts[i]), int(ends[i])))
    return cover(text, ends.tolist() + extra)


def _cut_long(text: str, start: int, end: int) -> list[int]:
    """Cut offsets inside text[start:end]: clause ends, then word starts, about MAX_SENTENCE_CHARS apart."""
    cuts, last = [], start
    clause_ends = [start + m.end() for m in _PHRASE_END.finditer(text[start:end])]
    word_starts = [start + m.start() for m in regex.finditer(r"(?<=\s)\S", text[start:end])]
    for candidates in (clause_ends, word_starts):
        for position in candidates:
            if position - last >= MAX_SENTENCE_CHARS // 2 and end - position >= 1:
                cuts.append(position)
                last = position
        if cuts:
            break
    bounds = [start, *cuts, end]
    for a, b in zip(bounds[:-1], bounds[1:]):  # what is still too long has no spaces: fixed-size pieces
        cuts.extend(range(a + MAX_SENTENCE_CHARS, b, MAX_SENTENCE_CHARS))
    return cuts


def cover(text: str, content_ends: list[int]) -> Spans:
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


SPLITTERS = {"word": word_spans, "entity": entity_spans, "phrase": phrase_spans, "sentence": sentence_spans}


def split_documents(documents: list[Document], unit: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(doc index, start, end) arrays of all units of all documents, in order."""
    try:
        splitter = SPLITTERS[unit]
    except KeyError:
        raise InvalidInputError(f"unit must be one of {sorted(SPLITTERS)}, got {unit!r}") from None
    docs, starts, ends = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for index, doc in enumerate(documents):
        s, e = splitter(doc.text)
        docs.append(np.full(len(s), index, dtype=np.int64))
        starts.append(np.asarray(s, dtype=np.int64))
        ends.append(np.asarray(e, dtype=np.int64))
    return np.concatenate(docs), np.concatenate(starts), np.concatenate(ends)
