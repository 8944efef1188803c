"""Sentence units for extractive selection, robust to Markdown structure.

`ctxzip.segment.sentence_spans` (blingfire within lines, line breaks as hard boundaries) already
handles prose, headings, list items and table rows. On top of it this module:

- keeps a fenced code block (```/~~~) whole, as one unit: half a code block is worse than none;
- glues lines without any letter or digit (table rules like `|---|---|`, `***`) to the unit before,
  so no unit is pure decoration.

Units still own the whitespace before them and cover the whole text, like `segment`'s.
"""

from __future__ import annotations

import numpy as np
import regex

from ctxzip.segment import cover, sentence_spans

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


def sentence_units(text: str) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of sentence units covering `text`; a fenced code block is one unit."""
    starts, ends = _refine(text, *sentence_spans(text))
    if len(starts) <= 1:
        return starts, ends
    keep = np.ones(len(starts), dtype=bool)  # False: this unit is merged into the one before it
    fences = list(_FENCE.finditer(text))
    content_starts = starts + _leading_space(text, starts, ends) if fences else starts
    for fence in fences:
        # Units whose content starts inside the fence join the unit where the fence begins.
        inside = (content_starts > fence.start()) & (content_starts < fence.end())
        keep[inside] = False
    for i in range(1, len(starts)):
        if keep[i] and not _CONTENT.search(text, int(starts[i]), int(ends[i])):
            keep[i] = False
    first = np.flatnonzero(keep)
    if not len(first) or first[0] != 0:
        first = np.concatenate([[0], first])
    new_starts = starts[first]
    new_ends = np.concatenate([starts[first[1:]], [ends[-1]]])
    return new_starts, new_ends


def _refine(text: str, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Add the boundaries blingfire missed (see _MISSED_END)."""
    extra = [m.start() for m in _MISSED_END.finditer(text) if m.captures(1)[-1].casefold() not in _ABBREVIATIONS]
    if not extra:
        return starts, ends
    return cover(text, sorted(set(ends.tolist()) | set(extra)))


def _leading_space(text: str, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    return np.array(
        [len(text[s:e]) - len(text[s:e].lstrip()) for s, e in zip(starts.tolist(), ends.tolist())], dtype=np.int64
    )
