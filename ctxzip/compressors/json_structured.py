"""`json`: structured content (tool results, API answers, logs, tables) shortened without changing a value.

A document that is a JSON array or object is cut at array items and long string values
(`ctxzip.structured.json_units`); logs, tables and listings into lines (`ctxzip.structured.lines`);
prose, which this method is not for, into sentences scored by the query's words.
Skeletons (brackets, keys, short values of one record) are kept or dropped whole, an item is only kept
with the container it sits in, and every elided run is replaced in place by a marker that says how
many items were left out and where. So the output of a JSON input parses, keeps its keys, and each
value in it is byte-identical to the original; the shared solver keeps it within the budget.

Scores: BM25 of each item against the query, the head and tail of each array, earlier items before
later ones, repeated items last; for lines, the first line of each template, error and traceback
lines, the ends, the query's words.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctxzip.compressors.base import Request, ScoringCompressor
from ctxzip.protect import Protection
from ctxzip.select import Units
from ctxzip.structured.json_scoring import HEAD, TAIL, score_json_units
from ctxzip.structured.json_units import MAX_DEPTH, is_json, parse_json_units
from ctxzip.segment import sentence_spans
from ctxzip.structured.lines import looks_like_lines, parse_line_units, score_line_units
from ctxzip.structured.relevance import bm25_relevance


class _Sentences:
    """Prose: sentence units, the query's words first, then earlier sentences; no markers."""

    def __init__(self, text: str) -> None:
        starts, ends = sentence_spans(text)
        self.start, self.end = np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)
        self.texts = [text[s:e] for s, e in zip(starts, ends)]
        self.protected = np.zeros(len(self.texts), dtype=bool)

    def __len__(self) -> int:
        return len(self.texts)

    def scores(self, query: str | None) -> np.ndarray:
        n = len(self)
        return 2.0 * bm25_relevance(self.texts, query) + 0.25 * (1.0 - np.arange(n) / max(n, 1))

    def placeholders(self, mask: np.ndarray) -> list[tuple[int, str]]:
        return []


@dataclass
class JsonCompressor(ScoringCompressor):
    """head/tail: items of every array kept first at each end; max_depth: deeper containers are one unit."""

    head: int = HEAD
    tail: int = TAIL
    max_depth: int = MAX_DEPTH
    protection: Protection = Protection()
    method = "json"

    def score_units(self, request: Request) -> Units:
        columns: dict[str, list[np.ndarray]] = {k: [] for k in ("doc", "start", "end", "score", "protected", "group", "parent")}
        hooks = []  # (document index, first unit, number of units, the document's placeholder hook)
        offset = groups = 0
        kinds = {"json": 0, "lines": 0, "text": 0}
        for d, document in enumerate(request.documents):
            if not document.text:
                continue
            if is_json(document.text):
                cut = parse_json_units(document.text, self.max_depth)
                score = score_json_units(cut, request.query, self.head, self.tail)
                group = np.where(cut.group >= 0, cut.group + groups, -1)
                groups += int(cut.group.max()) + 1
                parent = np.where(cut.parent >= 0, cut.parent + offset, -1)
                kinds["json"] += 1
            elif looks_like_lines(document.text):
                cut = parse_line_units(document.text)
                score = score_line_units(cut, request.query)
                group = np.full(len(cut), -1, dtype=np.int64)
                parent = np.full(len(cut), -1, dtype=np.int64)
                kinds["lines"] += 1
            else:
                cut = _Sentences(document.text)
                score = cut.scores(request.query)
                group = np.full(len(cut), -1, dtype=np.int64)
                parent = np.full(len(cut), -1, dtype=np.int64)
                kinds["text"] += 1
            n = len(cut)
            columns["doc"].append(np.full(n, d, dtype=np.int64))
            columns["start"].append(cut.start)
            columns["end"].append(cut.end)
            columns["score"].append(score)
            columns["protected"].append(cut.protected)
            columns["group"].append(group)
            columns["parent"].append(parent)
            hooks.append((d, offset, n, cut.placeholders))
            offset += n
        if not offset:
            return Units.empty()

        def placeholders(mask: np.ndarray) -> list[tuple[int, int, str]]:
            out = []
            for d, first, n, hook in hooks:
                out += [(d, at, text) for at, text in hook(mask[first:first + n])]
            return out

        joined = {k: np.concatenate(v) for k, v in columns.items()}
        return Units.build(joined["doc"], joined["start"], joined["end"], joined["score"], joined["protected"],
                           group=joined["group"], parent=joined["parent"], placeholders=placeholders,
                           info={"content": kinds})
