"""Cascade: one compressor, then another on what it kept, splitting one budget between them.

The default is extractive sentence selection followed by the token classifier (documents ->
sentences -> words), which LLMLingua users ask for. Any two compressors work. The first stage keeps
`target / second_keep` tokens, the second cuts that to the target, so the final output obeys the
budget through the second stage's own solver. Provenance of the second stage points into the first
stage's output; `compose_provenance` maps it back to the originals.

It is a plain `Compressor`, not a `ScoringCompressor`, for a stated reason: it scores nothing itself,
it runs two compressors that each score and select under the shared solver.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from ctxzip.budget import Budget
from ctxzip.compressors.base import BudgetLike, Compressor, begin
from ctxzip.document import CompressionResult, Document, DocumentsLike, Inserted, Span
from ctxzip.errors import InvalidInputError
from ctxzip.protect import Protection


@dataclass
class CascadeCompressor(Compressor):
    """first/second: registry names or Compressor instances; second_keep: share of the first
    stage's output that the second stage keeps (so the first stage keeps target / second_keep);
    protection: passed to stages built by name (instances keep their own)."""

    first: Any = "extractive"
    second: Any = "token"
    first_options: dict = field(default_factory=dict)
    second_options: dict = field(default_factory=dict)
    second_keep: float = 0.5
    protection: Protection = Protection()
    method = "cascade"

    def __post_init__(self) -> None:
        from ctxzip.registry import create_compressor

        if not 0.0 < self.second_keep <= 1.0:
            raise InvalidInputError(f"second_keep must be in (0, 1], got {self.second_keep}")
        self._stages = [
            stage if isinstance(stage, Compressor) else create_compressor(stage, **{"protection": self.protection, **options})
            for stage, options in ((self.first, self.first_options), (self.second, self.second_options))
        ]

    @property
    def model_name(self) -> str | None:  # type: ignore[override]
        names = [s.model_name for s in self._stages if s.model_name]
        return "+".join(names) or None

    def compress(self, inputs: DocumentsLike, query: str | None = None, budget: BudgetLike = None) -> CompressionResult:
        request, answered = begin(self, inputs, query, budget)
        if answered is not None:
            return answered
        documents, target, tokenizer = request.documents, request.target, request.budget.tokenizer

        first_target = min(request.original_tokens, max(target, math.floor(target / self.second_keep)))
        first = self._stages[0].compress(documents, query, Budget(tokens=first_target, tokenizer=tokenizer))
        second = self._stages[1].compress(first.documents, query, Budget(tokens=target, tokenizer=tokenizer))
        kept, inserted = compose_provenance(first, second)
        originals = {d.id: d for d in documents}
        return CompressionResult(
            text=second.text,
            documents=[Document(d.text, d.id, dict(originals[d.id].metadata)) for d in second.documents],
            kept=kept,
            inserted=inserted,
            original_tokens=request.original_tokens,
            compressed_tokens=second.compressed_tokens,
            method=self.method,
            model=self.model_name,
            budget_tokens=target,
            tokenizer=tokenizer,
            timings={"first": first.timings.get("total", 0.0), "second": second.timings.get("total", 0.0),
                     "total": time.perf_counter() - request.started},
            info={"stages": [
                {"method": r.method, "model": r.model, "budget_tokens": r.budget_tokens,
                 "compressed_tokens": r.compressed_tokens, "info": r.info}
                for r in (first, second)
            ]},
        )


@dataclass
class _Piece:
    """A stretch of a first-stage output document: a slice of the original or inserted text."""

    out_start: int
    out_end: int
    origin: int  # where the slice starts in the original, or where the inserted text stands
    inserted: str | None = None


def _pieces(first: CompressionResult) -> dict[str, list[_Piece]]:
    """Each first-stage output document as pieces in output order (the order `rebuild` uses)."""
    items: dict[str, list[tuple[int, int, Span | Inserted]]] = {}
    for span in first.kept:
        items.setdefault(span.doc_id, []).append((span.start, 1, span))
    for insert in first.inserted:
        items.setdefault(insert.doc_id, []).append((insert.at, 0, insert))
    pieces: dict[str, list[_Piece]] = {}
    for doc_id, parts in items.items():
        position, out = 0, []
        for _, _, part in sorted(parts, key=lambda p: p[:2]):
            if isinstance(part, Span):
                length = part.end - part.start
                out.append(_Piece(position, position + length, part.start))
            else:
                length = len(part.text)
                out.append(_Piece(position, position + length, part.at, part.text))
            position += length
        pieces[doc_id] = out
    return pieces


def compose_provenance(first: CompressionResult, second: CompressionResult) -> tuple[list[Span], list[Inserted]]:
    """The second stage's kept spans and inserted texts, which point into the first stage's output,
    as spans and inserted texts of the original documents. A span crossing several first-stage
    pieces becomes one span (or inserted text) per piece."""
    pieces = _pieces(first)
    kept: list[Span] = []
    inserted: list[Inserted] = []
    for span in second.kept:
        for piece in pieces.get(span.doc_id, []):
            start, end = max(span.start, piece.out_start), min(span.end, piece.out_end)
            if start >= end:
                continue
            if piece.inserted is not None:
                text = piece.inserted[start - piece.out_start : end - piece.out_start]
                inserted.append(Inserted(span.doc_id, piece.origin, text))
                continue
            begin_at = piece.origin + start - piece.out_start
            end_at = piece.origin + end - piece.out_start
            if kept and kept[-1].doc_id == span.doc_id and kept[-1].end == begin_at:
                kept[-1] = Span(span.doc_id, kept[-1].start, end_at)
            else:
                kept.append(Span(span.doc_id, begin_at, end_at))
    for insert in second.inserted:
        inserted.append(Inserted(insert.doc_id, _origin_of(pieces.get(insert.doc_id, []), insert.at), insert.text))
    return kept, inserted


def _origin_of(pieces: list[_Piece], at: int) -> int:
    """The original offset of first-stage output offset `at`."""
    for piece in pieces:
        if piece.out_start <= at < piece.out_end:
            return piece.origin if piece.inserted is not None else piece.origin + at - piece.out_start
    if pieces:
        last = pieces[-1]
        return last.origin if last.inserted is not None else last.origin + last.out_end - last.out_start
    return 0
