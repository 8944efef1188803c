"""The two tiers every compressor belongs to.

- `Compressor` implements `compress(inputs, query, budget) -> CompressionResult`. Only methods with a
  stated reason not to score units use it directly (the cascade composes two other compressors).
- `ScoringCompressor` implements `score_units(request) -> Units` and nothing else: input checks, the
  budget, protection, the solver (`ctxzip.select`) and the result are here. It may also override
  `score_many` (several requests in shared batched forwards) and `selection` (solver options).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import numpy as np

from ctxzip.budget import Budget, TokenCounter, as_budget
from ctxzip.document import CompressionResult, Document, DocumentsLike, Span, as_documents, check_unicode
from ctxzip.errors import BudgetTooSmallError, InvalidInputError
from ctxzip.protect import Protection, overlaps_protected
from ctxzip.select import DOCUMENT_SEPARATOR, Selection, SelectionOptions, Units, select_under_budget

BudgetLike = Budget | int | float | None


@dataclass
class Request:
    """A validated call: the documents, the query, and the budget resolved to tokens."""

    documents: list[Document]
    query: str | None
    budget: Budget
    counter: TokenCounter
    original_tokens: int
    target: int  # the budget in tokens
    started: float


class Compressor(ABC):
    """Anything that compresses documents under a budget. Subclasses set `method`."""

    method: ClassVar[str] = "base"
    model_name: str | None = None

    @abstractmethod
    def compress(self, inputs: DocumentsLike, query: str | None = None, budget: BudgetLike = None) -> CompressionResult:
        """Compress `inputs` (text, Documents or dicts) for `query` so the output fits `budget`."""

    def compress_many(self, items: Sequence[tuple[DocumentsLike, str | None]],
                      budget: BudgetLike | Sequence[BudgetLike] = None) -> list[CompressionResult]:
        """Compress many (documents, query) pairs; `budget` is one for all or one per item."""
        return [self.compress(inputs, query, b) for (inputs, query), b in zip(items, _budgets(items, budget))]


class ScoringCompressor(Compressor):
    """Cut into units and score them (`score_units`); the shared solver chooses under the budget."""

    protection: Protection = Protection()
    # Whether `score_units` uses `request.target` (then `compress_budgets` scores once per budget).
    scores_depend_on_budget: ClassVar[bool] = False

    @abstractmethod
    def score_units(self, request: Request) -> Units:
        """Cut the documents into units and give each a score (higher = keep first)."""

    def score_many(self, requests: list[Request]) -> list[Units]:
        """Units for several requests; methods with model forwards batch them here."""
        return [self.score_units(request) for request in requests]

    def selection(self, request: Request) -> SelectionOptions:
        """Solver options for this request (de-dup, relevance floor, document filter, order)."""
        return SelectionOptions()

    def compress(self, inputs: DocumentsLike, query: str | None = None, budget: BudgetLike = None) -> CompressionResult:
        return self._compress_items([(inputs, query)], budget)[0]

    def compress_many(self, items, budget=None) -> list[CompressionResult]:
        return self._compress_items(list(items), budget)

    def _compress_items(self, items: list, budget) -> list[CompressionResult]:
        results: list[CompressionResult | None] = [None] * len(items)
        pending: list[tuple[int, Request]] = []
        for position, (item, item_budget) in enumerate(zip(items, _budgets(items, budget))):
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise InvalidInputError("compress_many takes a list of (documents, query) pairs")
            request, answered = begin(self, item[0], item[1], item_budget)
            if answered is not None:
                results[position] = answered
            else:
                pending.append((position, request))
        if pending:
            scoring_started = time.perf_counter()
            scored = self.score_many([request for _, request in pending])
            share = (time.perf_counter() - scoring_started) / len(pending)
            for (position, request), units in zip(pending, scored):
                results[position] = self.finish(request, units, share)
        return results  # type: ignore[return-value]

    def compress_budgets(self, inputs: DocumentsLike, query: str | None,
                         budgets: Sequence[BudgetLike]) -> list[CompressionResult]:
        """One input at several budgets, scored once (unless scores depend on the budget): quality curves."""
        results, scored = [], None
        for budget in budgets:
            request, answered = begin(self, inputs, query, budget)
            if answered is not None:
                results.append(answered)
                continue
            if scored is None or self.scores_depend_on_budget:
                started = time.perf_counter()
                scored = (self.score_units(request), time.perf_counter() - started)
            results.append(self.finish(request, _copy_units(scored[0]), scored[1]))
        return results

    def finish(self, request: Request, units: Units, score_seconds: float) -> CompressionResult:
        """Protection, the solver and the result, for units scored for `request`."""
        started = time.perf_counter()
        units.protected = units.protected | protected_units(request.documents, units, self.protection)
        selection = select_under_budget(request.documents, units, request.target, request.counter,
                                        self.selection(request))
        info = dict(units.info)
        timings = {"score": score_seconds, **info.pop("timings", {}), "select": time.perf_counter() - started}
        return build_result(request, selection, self, timings, {**info, **selection.info})


def shares_forwards(compressor: Compressor) -> bool:
    """Whether `compress_many` does better than one call per item (batched model forwards), so that
    grouping concurrent requests pays off."""
    cls = type(compressor)
    return (getattr(cls, "score_many", None) not in (None, ScoringCompressor.score_many)
            or cls.compress_many not in (Compressor.compress_many, ScoringCompressor.compress_many))


def _budgets(items, budget) -> list:
    if isinstance(budget, (list, tuple)):
        if len(budget) != len(items):
            raise InvalidInputError(f"got {len(budget)} budgets for {len(items)} items")
        return list(budget)
    return [budget] * len(items)


def _copy_units(units: Units) -> Units:
    """Units whose protected mask the solver may change without touching the original."""
    return Units(units.doc, units.start, units.end, units.score, units.protected.copy(), units.selectable,
                 units.group, units.parent, units.placeholders, dict(units.info))


def make_request(inputs: DocumentsLike, query: str | None = None, budget: BudgetLike = 1.0) -> Request:
    """Check the inputs and resolve the budget. Also what to hand `score_units` to look at a method's
    scores directly (the default budget keeps everything)."""
    started = time.perf_counter()
    budget = as_budget(budget)
    documents = as_documents(inputs)
    if query is not None and not isinstance(query, str):
        raise InvalidInputError(f"query must be a string, got {type(query).__name__}")
    if query:
        check_unicode(query, "the query")
    counter = budget.counter
    original_tokens = counter.count(joined_text(documents))
    return Request(documents, query, budget, counter, original_tokens, budget.resolve(original_tokens), started)


def joined_text(documents: list[Document]) -> str:
    return DOCUMENT_SEPARATOR.join(d.text for d in documents if d.text)


def begin(compressor: Compressor, inputs, query, budget) -> tuple[Request, CompressionResult | None]:
    """The request, and the answer when there is nothing to do: an input already under budget comes
    back unchanged; a budget that resolves to nothing raises BudgetTooSmallError."""
    request = make_request(inputs, query, budget)
    if request.original_tokens <= request.target:
        return request, unchanged_result(request, compressor)
    if request.target < 1:
        raise BudgetTooSmallError(
            f"the budget resolves to {request.target} tokens for a {request.original_tokens}-token input"
        )
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


def build_result(request: Request, selection: Selection, compressor: Compressor, timings: dict[str, float],
                 info: dict[str, Any] | None = None) -> CompressionResult:
    documents = request.documents
    output_docs = [
        Document(text, documents[d].id, dict(documents[d].metadata))
        for d, text in zip(selection.order, selection.doc_texts) if text
    ]
    return CompressionResult(
        text=selection.text,
        documents=output_docs,
        kept=selection.kept,
        inserted=selection.inserted,
        original_tokens=request.original_tokens,
        compressed_tokens=selection.tokens,
        method=compressor.method,
        model=compressor.model_name,
        budget_tokens=request.target,
        tokenizer=request.budget.tokenizer,
        timings={**timings, "total": time.perf_counter() - request.started},
        info=dict(info or {}),
    )


def unchanged_result(request: Request, compressor: Compressor) -> CompressionResult:
    """An input already under budget comes back as it was."""
    documents = request.documents
    texts = [d.text for d in documents]
    kept = [Span(d.id, 0, len(d.text)) for d in documents if d.text]
    everything = Selection(np.ones(len(documents), bool), list(range(len(documents))), texts, joined_text(documents),
                           request.original_tokens, kept, [])
    return build_result(request, everything, compressor, {}, {"unchanged": True})
