"""Extractive compression: keep the sentences (and documents) that answer the query, under one budget.

Steps: cut documents into sentence units (`ctxzip.segment`) -> score them against the query with
a scorer (bi-encoder, BM25, the learned context-aware classifier, or a fusion) -> optionally score
again with the query expanded by what ranked best (multi-hop: the second hop's sentence names the
bridge entity, not the question's words). Repeated sentences, document filters, the relevance floor
and output order are options of the shared solver (`selection`).

`compress_many` scores many (documents, query) pairs in shared batched forwards (`score_many`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctxzip.compressors.base import Request, ScoringCompressor
from ctxzip.document import Document
from ctxzip.errors import InvalidInputError
from ctxzip.protect import Protection
from ctxzip.redundancy import mmr_order
from ctxzip.relevance import SentenceScorer, create_scorer
from ctxzip.relevance.base import ScoringTask
from ctxzip.segment import split_documents
from ctxzip.select import ORDERS, SelectionOptions, Units, unit_costs


@dataclass
class ExtractiveCompressor(ScoringCompressor):
    """Query-aware sentence selection.

    scorer: "context" (default: the shipped head over MiniLM embeddings, rank and paragraph features,
        trained on a mix of retrieved, chunked and transcript data; see ctxzip/weights/sentence-context-head-v2),
        "bi_encoder" (MiniLM cosine), "bm25", "classifier" (fine-tuned cross-encoder), "fusion",
        or any SentenceScorer instance. `model` is the scorer's model (a head file for "context").
    rounds: scoring rounds (default 1: a second round kept fewer answers on every development set,
        docs/quality.md); round r>1 appends the `hop_sentences` best sentences so far to the query
        and mixes the new scores in with weight `hop_weight` (multi-hop questions). hop_mode "mix"
        averages old and new scores, "gain" adds only what the expansion raised; with
        hop_other_documents only sentences outside the hop sentences' documents are rescored.
    document_weight: adds this times the best sentence score of a sentence's document (documents
        that answer the question bring their neighbouring sentences along).
    top_documents: coarse filter; only sentences of the best N documents can be kept.
    deduplicate / duplicate_threshold: exact and near-duplicate sentences are kept once (the best-scored copy).
    mmr / mmr_lambda: reorder by Maximal Marginal Relevance instead of plain score.
    order: "original" document order in the output, or "relevance" (best document first).
    min_score: selective augmentation; sentences whose score is below it are dropped,
        and when none passes the context comes back empty with `info["empty_context"] = True`.
    ordered: the documents come ranked, best first (a retriever's output), so their order is evidence
        the scorer may use; False when the order carries no information (shuffled, chronological).
    """

    scorer: str | SentenceScorer = "context"
    model: str | None = None
    device: str = "auto"
    rounds: int = 1
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
    ordered: bool = True
    protection: Protection = Protection()
    method = "extractive"

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise InvalidInputError(f"order must be one of {ORDERS}, got {self.order!r}")
        if not 0.0 < self.duplicate_threshold <= 1.0:
            raise InvalidInputError(f"duplicate_threshold must be in (0, 1], got {self.duplicate_threshold}")
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

    def selection(self, request: Request) -> SelectionOptions:
        return SelectionOptions(
            deduplicate=self.duplicate_threshold if self.deduplicate else None,
            min_score=self.min_score, top_documents=self.top_documents, order=self.order,
        )

    def score_units(self, request: Request) -> Units:
        return self.score_many([request])[0]

    def score_many(self, requests: list[Request]) -> list[Units]:
        """All requests' sentences go through the scorer together (shared batched forwards)."""
        tasks = [sentence_task(r.documents, r.query or "", self.ordered) for r in requests]
        scores, vectors = self._score(tasks)
        return [self._units(r, t, s, v) for r, t, s, v in zip(requests, tasks, scores, vectors)]

    def _units(self, request: Request, task: ScoringTask, score: np.ndarray, vectors) -> Units:
        documents = request.documents
        doc_score = np.full(len(documents), -np.inf)
        if len(task):
            np.maximum.at(doc_score, task.sentence_doc, score)
            if self.document_weight:
                score = score + self.document_weight * doc_score[task.sentence_doc]
        info = {"scorer": self._scorer.name, "rounds": self.rounds, "sentences": len(task), "ordered": task.ordered,
                "document_scores": {d.id: float(v) for d, v in zip(documents, doc_score.tolist())}}
        units = Units.build(task.sentence_doc, task.sentence_start, task.sentence_end, score, info=info)
        if self.mmr and len(task):
            units.score = self._mmr_scores(request, units, task, vectors)
        return units

    def _mmr_scores(self, request: Request, units: Units, task: ScoringTask, vectors) -> np.ndarray:
        """Scores that follow Maximal Marginal Relevance order for about as many sentences as the budget holds."""
        costs = unit_costs(request.documents, units, request.counter)
        by_score = np.lexsort((np.arange(len(units)), -units.score))
        limit = int(np.searchsorted(np.cumsum(costs[by_score]), request.target, side="right")) + 8
        ranked = mmr_order(units.score, vectors, task.sentences, self.mmr_lambda, limit)
        scores = np.empty(len(units))
        scores[ranked] = -np.arange(len(units), dtype=np.float64)
        return scores

    def _score(self, tasks: list[ScoringTask]):
        """(final scores, sentence vectors for MMR) per task, all tasks batched together."""
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
        return scores, vectors


def sentence_task(documents: list[Document], query: str, ordered: bool = True) -> ScoringTask:
    """Sentence units of all documents; scorers see each sentence without its surrounding whitespace."""
    doc, start, end = split_documents(documents, "sentence")
    texts = [documents[d].text[s:e].strip() for d, s, e in zip(doc.tolist(), start.tolist(), end.tolist())]
    titles = [str(d.metadata.get("title", "")) for d in documents]
    return ScoringTask(query, texts, doc, start, end, [d.text for d in documents], titles, ordered)
