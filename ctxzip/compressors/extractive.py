"""Extractive compression: keep the sentences (and documents) that answer the query, under one budget.

Steps: cut documents into sentence units (`ctxzip.segment`) -> score them against the query with
a scorer (bi-encoder, BM25, the learned context-aware classifier, or a fusion) -> optionally score
again with the query expanded by what ranked best (multi-hop: the second hop's sentence names the
bridge entity, not the question's words) -> drop repeated sentences, filter documents, apply the
relevance threshold (selective augmentation) -> the shared solver keeps the best that fit.

`compress_many` scores many (documents, query) pairs in shared batched forwards.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ctxzip.budget import Budget
from ctxzip.compressors.base import Compressor, begin, build_result, protected_units
from ctxzip.document import CompressionResult, Document, DocumentsLike, as_documents
from ctxzip.errors import InvalidInputError
from ctxzip.protect import Protection
from ctxzip.relevance import SentenceScorer, create_scorer
from ctxzip.relevance.base import ScoringTask
from ctxzip.redundancy import duplicate_mask, mmr_order
from ctxzip.select import Units, select_under_budget
from ctxzip.segment import sentence_spans

ORDERS = ("original", "relevance")


@dataclass
class _Pending:
    """One example between scoring and selection."""

    position: int
    documents: list[Document]
    budget: Budget
    target: int
    original_tokens: int
    task: ScoringTask
    started: float


@dataclass
class ExtractiveCompressor(Compressor):
    """Query-aware sentence selection.

    scorer: "context" (default: the shipped head over MiniLM embeddings and paragraph features,
        trained on HotpotQA supporting sentences; see ctxzip/weights/sentence-context-head-v1),
        "bi_encoder" (MiniLM cosine), "bm25", "classifier" (fine-tuned cross-encoder), "fusion",
        or any SentenceScorer instance. `model` is the scorer's model (a head file for "context").
    rounds: scoring rounds; round r>1 appends the `hop_sentences` best sentences so far to the query
        and mixes the new scores in with weight `hop_weight` (multi-hop questions). hop_mode "mix"
        averages old and new scores, "gain" adds only what the expansion raised; with
        hop_other_documents only sentences outside the hop sentences' documents are rescored.
    document_weight: adds this times the best sentence score of a sentence's document (documents
        that answer the question bring their neighbouring sentences along).
    top_documents: coarse filter; only sentences of the best N documents can be kept.
    deduplicate / duplicate_threshold: exact and near-duplicate sentences are kept once (the best-scored copy).
    mmr / mmr_lambda: reorder by Maximal Marginal Relevance instead of plain score.
    order: "original" document order in the output, or "relevance" (best document first).
    min_score: selective augmentation; sentences whose first-round score is below it are dropped,
        and when none passes the context comes back empty with `info["empty_context"] = True`.
    """

    scorer: str | SentenceScorer = "context"
    model: str | None = None
    device: str = "auto"
    rounds: int = 2
    hop_sentences: int = 1
    hop_weight: float = 0.5
    hop_mode: str = "mix"
    hop_other_documents: bool = False
    document_weight: float = 0.0
    top_documents: int | None = None
    deduplicate: bool = True
    duplicate_threshold: float = 0.9
    mmr: bool = False
    mmr_lambda: float = 0.7
    order: str = "original"
    min_score: float | None = None
    protection: Protection = Protection()
    method = "extractive"

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise InvalidInputError(f"order must be one of {ORDERS}, got {self.order!r}")
        if not isinstance(self.rounds, int) or self.rounds < 1:
            raise InvalidInputError(f"rounds must be an int >= 1, got {self.rounds!r}")
        if not 0.0 <= self.hop_weight <= 1.0 or not 0.0 <= self.mmr_lambda <= 1.0:
            raise InvalidInputError("hop_weight and mmr_lambda must be in [0, 1]")
        if self.top_documents is not None and self.top_documents < 1:
            raise InvalidInputError(f"top_documents must be >= 1, got {self.top_documents}")
        self._scorer = self.scorer if isinstance(self.scorer, SentenceScorer) else create_scorer(
            self.scorer, self.model, self.device
        )

    @property
    def model_name(self) -> str | None:  # type: ignore[override]
        return self._scorer.model_name

    def score_units(self, documents, query, counter) -> Units:
        """Scores after all rounds (the base-class hook; `compress` does more than this)."""
        task = _task(documents, query or "")
        scores, _, _ = self._score([task])
        return Units.build(task.sentence_doc, task.sentence_start, task.sentence_end, scores[0])

    def compress(self, inputs: DocumentsLike, query: str | None = None,
                 budget: Budget | int | float | None = None) -> CompressionResult:
        return self.compress_many([(inputs, query)], budget)[0]

    def compress_many(self, items: Sequence[tuple[DocumentsLike, str | None]],
                      budget: Budget | int | float | None | Sequence = None) -> list[CompressionResult]:
        """Compress many (documents, query) pairs; the scorer sees all of them in one batch.

        `budget` is one budget for all, or a sequence with one per item.
        """
        items = list(items)
        budgets = list(budget) if isinstance(budget, (list, tuple)) else [budget] * len(items)
        if len(budgets) != len(items):
            raise InvalidInputError(f"got {len(budgets)} budgets for {len(items)} items")
        results: list[CompressionResult | None] = [None] * len(items)
        pending: list[_Pending] = []
        for position, (item, item_budget) in enumerate(zip(items, budgets)):
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise InvalidInputError("compress_many takes a list of (documents, query) pairs")
            inputs, query = item
            request, answered = begin(self, inputs, query, item_budget)
            if answered is not None:
                results[position] = answered
                continue
            pending.append(_Pending(position, request.documents, request.budget, request.target,
                                    request.original_tokens, _task(request.documents, query or ""), request.started))
        if pending:
            scoring_started = time.perf_counter()
            scores, first_round, vectors = self._score([p.task for p in pending])
            share = (time.perf_counter() - scoring_started) / len(pending)
            for p, score, first, vector in zip(pending, scores, first_round, vectors):
                results[p.position] = self._select(p, score, first, vector, share)
        return results  # type: ignore[return-value]

    def compress_budgets(self, inputs: DocumentsLike, query: str | None,
                         budgets: Sequence[Budget | int | float]) -> list[CompressionResult]:
        """One input at several budgets: scored once, selected once per budget (quality-vs-size curves)."""
        documents = as_documents(inputs)
        if query is not None and not isinstance(query, str):
            raise InvalidInputError(f"query must be a string, got {type(query).__name__}")
        task = _task(documents, query or "")
        scored: tuple | None = None
        results = []
        for budget in budgets:
            request, answered = begin(self, documents, query, budget)
            if answered is not None:
                results.append(answered)
                continue
            budget, target, started = request.budget, request.target, request.started
            original_tokens = request.original_tokens
            if scored is None:
                scored = self._score([task]) + (time.perf_counter() - started,)
            scores, first, vectors, seconds = scored
            pending = _Pending(0, documents, budget, target, original_tokens, task, started)
            results.append(self._select(pending, scores[0], first[0], vectors[0], seconds))
        return results

    # --- scoring -------------------------------------------------------------------------------

    def _score(self, tasks: list[ScoringTask]):
        """(final scores, first-round scores, sentence vectors for MMR) per task, all tasks batched together."""
        prepared = self._scorer.prepare(tasks)
        first = self._scorer.score(tasks, [t.query for t in tasks], prepared)
        vectors = self._scorer.sentence_vectors(prepared) if self.mmr else [None] * len(tasks)
        scores = [s.copy() for s in first]
        for _ in range(self.rounds - 1):
            expanded, hops = [], []
            for task, score in zip(tasks, scores):
                best = np.lexsort((np.arange(len(score)), -score))[: self.hop_sentences]
                hops.append(best)
                expanded.append(" ".join([task.query, *(task.sentences[i] for i in best)]).strip())
            again = self._scorer.score(tasks, expanded, prepared)
            for k, (score, new, best) in enumerate(zip(scores, again, hops)):
                if self.hop_mode == "gain":  # only what the expansion adds counts
                    mixed = score + self.hop_weight * np.maximum(0.0, new - score)
                else:
                    mixed = (1 - self.hop_weight) * score + self.hop_weight * new
                # The hop's own documents keep their scores: the next hop sits in another document,
                # and a sibling sentence matching the expansion is not new evidence.
                same = np.isin(tasks[k].sentence_doc, tasks[k].sentence_doc[best])
                if self.hop_other_documents:
                    mixed[same] = score[same]
                mixed[best] = np.maximum(mixed[best], score[best])  # the hop sentences stay on top
                scores[k] = mixed
        return scores, first, vectors

    # --- selection -----------------------------------------------------------------------------

    def _select(self, p: _Pending, score: np.ndarray, first: np.ndarray, vectors, score_seconds: float):
        started_select = time.perf_counter()
        task, documents = p.task, p.documents
        n_docs = len(documents)
        info: dict[str, Any] = {"scorer": self._scorer.name, "rounds": self.rounds, "sentences": len(task)}

        doc_score = np.full(n_docs, -np.inf)
        if len(task):
            np.maximum.at(doc_score, task.sentence_doc, score)
        if self.document_weight and len(task):
            score = score + self.document_weight * doc_score[task.sentence_doc]

        units = Units.build(task.sentence_doc, task.sentence_start, task.sentence_end, score)
        protected = protected_units(documents, units, self.protection)
        has_text = np.array([bool(s) for s in task.sentences], dtype=bool)
        selectable = has_text.copy()

        if self.deduplicate and len(task):
            duplicate = duplicate_mask(task.sentences, score, self.duplicate_threshold) & has_text
            info["duplicates_removed"] = int((duplicate & ~protected).sum())
            selectable &= ~duplicate
        if self.top_documents is not None and n_docs > self.top_documents:
            best_docs = np.lexsort((np.arange(n_docs), -doc_score))[: self.top_documents]
            selectable &= np.isin(task.sentence_doc, best_docs)
            info["documents_kept"] = [documents[d].id for d in sorted(best_docs.tolist())]
        if self.min_score is not None:
            passing = first >= self.min_score
            info["max_score"] = float(first.max()) if len(first) else None
            info["empty_context"] = not bool(np.any(selectable & passing))
            selectable &= passing
        selectable |= protected

        rows = np.flatnonzero(selectable)
        final = score[rows]
        texts = [task.sentences[i] for i in rows.tolist()]
        costs = np.asarray(p.budget.counter.count_many(units.texts(documents)), dtype=np.int64)[rows]
        if self.mmr and len(rows):
            by_score = np.lexsort((rows, -final))
            limit = int(np.searchsorted(np.cumsum(costs[by_score]), p.target, side="right")) + 8
            ranked = mmr_order(final, None if vectors is None else vectors[rows], texts, self.mmr_lambda, limit)
            final = np.empty(len(rows))
            final[ranked] = -np.arange(len(rows), dtype=np.float64)

        doc_index = task.sentence_doc[rows]
        if self.order == "relevance":
            permutation = np.lexsort((np.arange(n_docs), -doc_score))  # new position -> old index
            documents = [documents[i] for i in permutation.tolist()]
            new_index = np.empty(n_docs, dtype=np.int64)
            new_index[permutation] = np.arange(n_docs)
            doc_index = new_index[doc_index]
        sort = np.lexsort((task.sentence_start[rows], doc_index))
        chosen = Units.build(doc_index[sort], task.sentence_start[rows][sort], task.sentence_end[rows][sort],
                             final[sort], protected[rows][sort])
        selection = select_under_budget(documents, chosen, p.target, p.budget.counter, costs=costs[sort])
        timings = {"score": score_seconds, "select": time.perf_counter() - started_select}
        if self.min_score is not None and info["empty_context"]:
            info["reason"] = f"no sentence scored at least min_score={self.min_score}"
        info["document_scores"] = {d.id: float(s) for d, s in zip(p.documents, doc_score.tolist())}
        return build_result(documents, chosen, selection, p.original_tokens, p.budget, p.target, self, timings,
                            p.started, info)


def _task(documents: list[Document], query: str) -> ScoringTask:
    """Sentence units of all documents; scorers see each sentence without its surrounding whitespace."""
    docs, starts, ends = [], [], []
    for index, doc in enumerate(documents):
        s, e = sentence_spans(doc.text) if doc.text else (np.zeros(0, np.int64), np.zeros(0, np.int64))
        docs.append(np.full(len(s), index, dtype=np.int64))
        starts.append(np.asarray(s, dtype=np.int64))
        ends.append(np.asarray(e, dtype=np.int64))
    doc = np.concatenate(docs) if docs else np.zeros(0, np.int64)
    start = np.concatenate(starts) if starts else np.zeros(0, np.int64)
    end = np.concatenate(ends) if ends else np.zeros(0, np.int64)
    texts = [documents[d].text[s:e].strip() for d, s, e in zip(doc.tolist(), start.tolist(), end.tolist())]
    titles = [str(d.metadata.get("title", "")) for d in documents]
    return ScoringTask(query, texts, doc, start, end, [d.text for d in documents], titles)
