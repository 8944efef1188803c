"""Cascade: one compressor, then another on what it kept, splitting one budget between them.

The default is extractive sentence selection followed by the token classifier (documents ->
sentences -> words), which LLMLingua users ask for. Any two compressors with the base-class
contract work. The first stage keeps `target / second_keep` tokens, the second cuts that to the
target, so the final output obeys the budget through the second stage's own solver. Kept spans
of the second stage point into the first stage's output; they are mapped back to the originals.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ctxzip.budget import Budget
from ctxzip.compressors.base import Compressor, begin
from ctxzip.document import CompressionResult, Document, DocumentsLike, Span
from ctxzip.errors import InvalidInputError
from ctxzip.select import Units


@dataclass
class CascadeCompressor(Compressor):
    """first/second: registry names or Compressor instances; second_keep: share of the first
    stage's output that the second stage keeps (so the first stage keeps target / second_keep)."""

    first: Any = "extractive"
    second: Any = "token"
    first_options: dict = field(default_factory=dict)
    second_options: dict = field(default_factory=dict)
    second_keep: float = 0.5
    method = "cascade"

    def __post_init__(self) -> None:
        from ctxzip.registry import create_compressor

        if not 0.0 < self.second_keep <= 1.0:
            raise InvalidInputError(f"second_keep must be in (0, 1], got {self.second_keep}")
        self._stages = [
            stage if isinstance(stage, Compressor) else create_compressor(stage, **options)
            for stage, options in ((self.first, self.first_options), (self.second, self.second_options))
        ]

    @property
    def model_name(self) -> str | None:  # type: ignore[override]
        names = [s.model_name for s in self._stages if s.model_name]
        return "+".join(names) or None

    def score_units(self, documents, query, counter) -> Units:
        raise NotImplementedError("CascadeCompressor composes two compressors; call compress()")

    def compress(self, inputs: DocumentsLike, query: str | None = None,
                 budget: Budget | int | float | None = None) -> CompressionResult:
        request, answered = begin(self, inputs, query, budget)
        if answered is not None:
            return answered
        documents, target, budget = request.documents, request.target, request.budget
        original_tokens, started = request.original_tokens, request.started

        first_target = min(original_tokens, max(target, math.floor(target / self.second_keep)))
        first = self._stages[0].compress(documents, query, Budget(tokens=first_target, tokenizer=budget.tokenizer))
        second = self._stages[1].compress(first.documents, query, Budget(tokens=target, tokenizer=budget.tokenizer))
        originals = {d.id: d for d in documents}
        kept = map_spans_back(second.kept, first, originals)
        info = {
            "stages": [
                {"method": r.method, "model": r.model, "budget_tokens": r.budget_tokens,
                 "compressed_tokens": r.compressed_tokens, "info": r.info}
                for r in (first, second)
            ]
        }
        return CompressionResult(
            text=second.text,
            documents=[Document(d.text, d.id, dict(originals[d.id].metadata)) for d in second.documents],
            kept=kept,
            original_tokens=original_tokens,
            compressed_tokens=second.compressed_tokens,
            method=self.method,
            model=self.model_name,
            budget_tokens=target,
            tokenizer=budget.tokenizer,
            timings={"first": first.timings.get("total", 0.0), "second": second.timings.get("total", 0.0),
                     "total": time.perf_counter() - started},
            info=info,
        )


def map_spans_back(spans: list[Span], first: CompressionResult, originals: dict[str, Document]) -> list[Span]:
    """Spans into the first stage's output documents -> spans into the original documents.

    A first-stage output document is the concatenation of its kept slices, so an offset in it
    falls in one slice; a span crossing slices becomes one span per slice.
    """
    slices: dict[str, list[Span]] = {}
    for span in first.kept:
        slices.setdefault(span.doc_id, []).append(span)
    out: list[Span] = []
    for span in spans:
        pieces = slices.get(span.doc_id, [])
        if not pieces:
            continue
        lengths = np.array([p.end - p.start for p in pieces], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)])  # where each slice starts in the output
        for k in np.flatnonzero((offsets[:-1] < span.end) & (offsets[1:] > span.start)).tolist():
            begin = pieces[k].start + max(0, span.start - int(offsets[k]))
            end = pieces[k].start + min(int(lengths[k]), span.end - int(offsets[k]))
            if out and out[-1].doc_id == span.doc_id and out[-1].end == begin:
                out[-1] = Span(span.doc_id, out[-1].start, end)
            elif end > begin:
                out.append(Span(span.doc_id, begin, end))
    return out
