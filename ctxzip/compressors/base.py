"""The base class of every text compressor: segment -> score -> select under a budget.

A method implements `score_units` only; budgets, protection, the solver and the result are here.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ctxzip.budget import Budget, TokenCounter, as_budget
from ctxzip.document import CompressionResult, Document, DocumentsLike, Span, as_documents
from ctxzip.errors import BudgetTooSmallError, InvalidInputError
from ctxzip.protect import Protection, overlaps_protected
from ctxzip.select import DOCUMENT_SEPARATOR, Selection, Units, select_under_budget


class Compressor(ABC):
    """Subclasses set `method` and implement `score_units`."""

    method: ClassVar[str] = "base"
    model_name: str | None = None
    protection: Protection = Protection()

    @abstractmethod
    def score_units(self, documents: list[Document], query: str | None, counter: TokenCounter) -> Units:
        """Cut the documents into units and give each a score (higher = keep first)."""

    def compress(
        self,
        inputs: DocumentsLike,
        query: str | None = None,
        budget: Budget | int | float | None = None,
    ) -> CompressionResult:
        request, answered = begin(self, inputs, query, budget)
        if answered is not None:
            return answered
        documents, counter = request.documents, request.counter
        units = self.score_units(documents, query, counter)
        scored = time.perf_counter()
        units.protected = units.protected | protected_units(documents, units, self.protection)
        selection = select_under_budget(documents, units, request.target, counter)
        selected = time.perf_counter()
        timings = {"score": scored - request.started, "select": selected - scored}
        return build_result(documents, units, selection, request.original_tokens, request.budget, request.target,
                            self, timings, request.started)


@dataclass
class Request:
    """A validated call: documents, the budget resolved to tokens, and when it started."""

    documents: list[Document]
    budget: Budget
    counter: TokenCounter
    original_tokens: int
    target: int
    started: float


def begin(compressor: Compressor, inputs, query, budget) -> tuple[Request, CompressionResult | None]:
    """Check the inputs and resolve the budget. An input already under budget is answered at once
    (second value); a budget that resolves to nothing raises BudgetTooSmallError."""
    started = time.perf_counter()
    budget = as_budget(budget)
    documents = as_documents(inputs)
    if query is not None and not isinstance(query, str):
        raise InvalidInputError(f"query must be a string, got {type(query).__name__}")
    counter = budget.counter
    original = DOCUMENT_SEPARATOR.join(d.text for d in documents if d.text)
    original_tokens = counter.count(original)
    target = budget.resolve(original_tokens)
    request = Request(documents, budget, counter, original_tokens, target, started)
    if original_tokens <= target:
        return request, unchanged_result(documents, original, original_tokens, budget, target, compressor, started)
    if target < 1:
        raise BudgetTooSmallError(f"the budget resolves to {target} tokens for a {original_tokens}-token input")
    return request, None


def protected_units(documents: list[Document], units: Units, protection: Protection) -> np.ndarray:
    """Units that overlap a protected span of their document."""
    mask = np.zeros(len(units), dtype=bool)
    if not protection.enabled or not len(units):
        return mask
    for index, doc in enumerate(documents):
        rows = np.flatnonzero(units.doc == index)
        if len(rows):
            mask[rows] = overlaps_protected(units.start[rows], units.end[rows], protection.find(doc.text))
    return mask


def kept_spans(documents: list[Document], units: Units, mask: np.ndarray) -> list[Span]:
    """Kept units as spans, with touching units of the same document merged."""
    spans: list[Span] = []
    kept = np.flatnonzero(mask)
    for d, s, e in zip(units.doc[kept].tolist(), units.start[kept].tolist(), units.end[kept].tolist()):
        doc_id = documents[d].id
        if spans and spans[-1].doc_id == doc_id and spans[-1].end == s:
            spans[-1] = Span(doc_id, spans[-1].start, e)
        elif e > s:
            if not spans or spans[-1].doc_id != doc_id:  # output drops a document's leading whitespace
                text = documents[d].text
                s = len(text[:e]) - len(text[s:e].lstrip()) if text[s:e].strip() else s
            spans.append(Span(doc_id, s, e))
    return spans


def build_result(documents, units, selection: Selection, original_tokens, budget, target, compressor, timings, started, info=None):
    output_docs = [
        Document(text, doc.id, dict(doc.metadata)) for doc, text in zip(documents, selection.doc_texts) if text
    ]
    timings = {**timings, "total": time.perf_counter() - started}
    return CompressionResult(
        text=selection.text,
        documents=output_docs,
        kept=kept_spans(documents, units, selection.mask),
        original_tokens=original_tokens,
        compressed_tokens=selection.tokens,
        method=compressor.method,
        model=compressor.model_name,
        budget_tokens=target,
        tokenizer=budget.tokenizer,
        timings=timings,
        info=dict(info or {}),
    )


def unchanged_result(documents, original, original_tokens, budget, target, compressor, started):
    """An input already under budget comes back as it was."""
    return CompressionResult(
        text=original,
        documents=[Document(d.text, d.id, dict(d.metadata)) for d in documents if d.text],
        kept=[Span(d.id, 0, len(d.text)) for d in documents if d.text],
        original_tokens=original_tokens,
        compressed_tokens=original_tokens,
        method=compressor.method,
        model=compressor.model_name,
        budget_tokens=target,
        tokenizer=budget.tokenizer,
        timings={"total": time.perf_counter() - started},
        info={"unchanged": True},
    )
