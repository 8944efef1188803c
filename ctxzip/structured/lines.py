"""Logs and tables as line units: repeated lines collapse into counted markers, signal lines stay.

A line's *template* is the line with its numbers, hex ids and timestamps masked, so "GET /a 200 12ms"
and "GET /a 200 31ms" repeat each other. Scores favour the first line of each template, lines that
carry an error, warning or traceback, the first and last lines, and lines that match the query; a
table's header row is protected. Every elided run is replaced in place by one marker line:

    [... 37 more lines like the one above (lines 12-48) ...]
    [... 5 lines omitted (lines 60-64) ...]
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from ctxzip.structured.relevance import bm25_relevance

_VARIABLE = re.compile(r"0x[0-9a-fA-F]+|\b[0-9a-fA-F]{8,}\b|\d+(?:[.:,]\d+)*")
_ERROR = re.compile(r"(?i)\b(error|exception|traceback|fail(?:ed|ure|s)?|fatal|panic|critical|assert(?:ion)?\w*|denied|refused|timed? ?out)\b|^E\s")
_WARNING = re.compile(r"(?i)\bwarn(?:ing)?\b")
_TRACE_LINE = re.compile(r"^\s+(File \"|at |\S)|^\w+(\.\w+)*(Error|Exception|Exit|Interrupt)\b")

SIGNAL, WARNING_SIGNAL, TRACE, HEAD_TAIL, FIRST_OF_TEMPLATE, RELEVANCE_WEIGHT = 1.0, 0.5, 0.9, 0.6, 0.4, 1.5


LINE_LIKE_MIN_LINES, LINE_LIKE_MAX_CHARS = 8, 160


def looks_like_lines(text: str) -> bool:
    """Logs, tables, listings: many lines, short on average (prose runs in long paragraphs)."""
    lines = text.count("\n") + 1
    return lines >= LINE_LIKE_MIN_LINES and len(text) / lines < LINE_LIKE_MAX_CHARS


def template(line: str) -> str:
    return _VARIABLE.sub("#", line.strip())


@dataclass
class LineUnits:
    text: str
    start: np.ndarray  # a line's span starts at the newline before it (the first line at 0)
    end: np.ndarray
    templates: list[str]
    protected: np.ndarray  # a table's header row

    def __len__(self) -> int:
        return len(self.start)

    def line(self, i: int) -> str:
        s, e = int(self.start[i]), int(self.end[i])
        return self.text[s + (1 if i else 0):e]

    def placeholders(self, mask: np.ndarray) -> list[tuple[int, str]]:
        """A marker per elided run; none when nothing of the text is kept (the document is gone as a whole)."""
        inserts, n, i = [], len(self), 0
        if not np.any(mask):
            return inserts
        while i < n:
            if mask[i]:
                i += 1
                continue
            j = i
            while j + 1 < n and not mask[j + 1]:
                j += 1
            count = j - i + 1
            where = f"line {i + 1}" if count == 1 else f"lines {i + 1}-{j + 1}"
            if i > 0 and mask[i - 1] and all(self.templates[k] == self.templates[i - 1] for k in range(i, j + 1)):
                noun = "line" if count == 1 else "lines"
                marker = f"[... {count} more {noun} like the one above ({where}) ...]"
            else:
                marker = f"[... {count} {'line' if count == 1 else 'lines'} omitted ({where}) ...]"
            inserts.append((int(self.start[i]), ("\n" if i else "") + marker))
            i = j + 1
        return inserts

    def render(self, mask: np.ndarray) -> str:
        mask = np.asarray(mask, dtype=bool)
        inserts = dict(self.placeholders(mask))
        pieces = []
        for i in range(len(self)):
            s = int(self.start[i])
            if s in inserts and not mask[i]:
                pieces.append(inserts[s])
            if mask[i]:
                pieces.append(self.text[s:int(self.end[i])])
        return "".join(pieces)


def _is_table(lines: list[str]) -> bool:
    for sep in (",", "\t", "|"):
        counts = [line.count(sep) for line in lines[:50] if line.strip()]
        if len(counts) >= 3 and counts[0] >= 1 and sum(c == counts[0] for c in counts) >= 0.9 * len(counts):
            return True
    return False


def parse_line_units(text: str) -> LineUnits:
    lines = text.split("\n")
    start, end, at = [], [], 0
    for i, line in enumerate(lines):
        start.append(at - 1 if i else 0)  # the newline before a line belongs to it
        at += len(line) + 1
        end.append(at - 1)
    protected = np.zeros(len(lines), dtype=bool)
    if len(lines) > 2 and _is_table(lines):
        protected[0] = True
    return LineUnits(text, np.asarray(start, dtype=np.int64), np.asarray(end, dtype=np.int64),
                     [template(line) for line in lines], protected)


def score_line_units(units: LineUnits, query: str | None) -> np.ndarray:
    n = len(units)
    lines = [units.line(i) for i in range(n)]
    score = np.zeros(n, dtype=np.float64)
    seen: Counter[str] = Counter()
    totals = Counter(units.templates)
    in_trace = False
    for i, line in enumerate(lines):
        t = units.templates[i]
        seen[t] += 1
        value = FIRST_OF_TEMPLATE / (1.0 + math.log(seen[t])) if t else 0.0
        if totals[t] == 1 and t:
            value += 0.3  # a line with no twin is news
        if _ERROR.search(line):
            value += SIGNAL
        elif _WARNING.search(line):
            value += WARNING_SIGNAL
        if line.startswith("Traceback"):
            in_trace = True
        elif in_trace and _TRACE_LINE.match(line):
            value += TRACE
        else:
            in_trace = False
        if i < 2 or i >= n - 2:
            value += HEAD_TAIL
        score[i] = value
    score += RELEVANCE_WEIGHT * bm25_relevance(lines, query)
    return score
