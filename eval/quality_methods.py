"""The methods `eval.quality` compares, each as a `Method`: a label and a way to compress one example
at several budgets.

Baselines are built from the library's own parts where they can be, so that only the scoring differs:
sentence units (`ctxzip.segment.sentence_spans`), exact de-dup (`duplicate_mask` at threshold 1.0:
case and punctuation ignored) and the shared budget solver.

- truncation after de-dup: sentences in input order (retrieval rank), repeats dropped, the first that fit.
- LangChain EmbeddingsFilter after de-dup: LangChain's `EmbeddingsFilter` over the same MiniLM ranks
  the de-duplicated sentences; the best that fit are kept.
- BM25 sentences after de-dup: bm25s over the sentences, no titles, one round.
- random sentences: `RandomCompressor(unit="sentence", seed=0)`.
"""

from __future__ import annotations

import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ctxzip.budget import Budget
from ctxzip.document import CompressionResult, Document, Span
from ctxzip.errors import BudgetTooSmallError
from ctxzip.relevance.base import SentenceScorer

EXACT = 1.0  # duplicate_threshold: exact repeats only (after case folding and dropping punctuation)


@dataclass
class Output:
    text: str
    kept: list[Span]
    info: dict = field(default_factory=dict)


def from_result(result: CompressionResult) -> Output:
    return Output(result.text, list(result.kept), dict(result.info))


@dataclass
class Method:
    """`run(documents, query, budgets) -> [Output]`; `build` makes the compressor once, lazily."""

    label: str
    build: Callable[[], object]
    budgeted: bool = True  # False: ignores the budget (the full context)
    _compressor: object = None

    @property
    def compressor(self):
        if self._compressor is None:
            self._compressor = self.build()
        return self._compressor

    def run(self, documents: list[Document], query: str, budgets: list[Budget]) -> tuple[list[Output], float]:
        """Outputs per budget and the seconds of the first (largest) budget's call, which includes scoring
        (later budgets reuse the scores through `compress_budgets`)."""
        compressor = self.compressor
        if not self.budgeted:
            text = "\n\n".join(d.text for d in documents if d.text)
            return [Output(text, [Span(d.id, 0, len(d.text)) for d in documents if d.text])] * len(budgets), 0.0
        if hasattr(compressor, "compress_budgets"):  # scored once for all budgets (unless they depend on it)
            try:
                results = compressor.compress_budgets(documents, query, budgets)
                return [from_result(r) for r in results], float(results[0].timings.get("total", 0.0))
            except BudgetTooSmallError:
                pass  # one budget too small: go budget by budget below
        outputs, seconds = [], 0.0
        for k, budget in enumerate(budgets):
            started = time.perf_counter()
            try:
                outputs.append(from_result(compressor.compress(documents, query=query, budget=budget)))
            except BudgetTooSmallError as error:  # counted as an empty output (recall 0)
                outputs.append(Output("", [], {"error": str(error)}))
            if k == 0:
                seconds = time.perf_counter() - started
        return outputs, seconds


_CACHE_CLEARERS: list[Callable[[], None]] = []


def clear_caches() -> None:
    """Forget every embedding cache (ctxzip's and the LangChain baseline's)."""
    from ctxzip.relevance.bi_encoder import clear_embedding_cache

    clear_embedding_cache()
    for clear in _CACHE_CLEARERS:
        clear()


class LangChainEmbeddingsFilterScorer(SentenceScorer):
    """Ranks sentences with LangChain's EmbeddingsFilter over MiniLM (the recipe of LangChain's
    contextual-compression docs); the score is the rank (best = highest). Embeddings go through
    LangChain's `CacheBackedEmbeddings`, as a LangChain user would cache them, so the baseline gets
    the same reuse across queries of one document as ctxzip's own embedding cache."""

    name = "langchain_embeddings_filter"

    def __init__(self) -> None:
        from langchain_classic.embeddings import CacheBackedEmbeddings
        from langchain_classic.retrievers.document_compressors import EmbeddingsFilter
        from langchain_core.embeddings import Embeddings
        from langchain_core.stores import InMemoryByteStore

        from ctxzip.models import load_sentence_encoder

        class MiniLM(Embeddings):
            def embed_documents(self, texts):
                return load_sentence_encoder("minilm").encode(texts, normalize_embeddings=True, batch_size=128).tolist()

            def embed_query(self, text):
                return self.embed_documents([text])[0]

        self.filter_class = EmbeddingsFilter
        self.store = InMemoryByteStore()
        self.embeddings = CacheBackedEmbeddings.from_bytes_store(MiniLM(), self.store, namespace="minilm",
                                                                 key_encoder="sha256")
        _CACHE_CLEARERS.append(lambda: self.store.mdelete(list(self.store.yield_keys())))

    def score(self, tasks, queries, prepared):
        from langchain_core.documents import Document as LCDocument

        out = []
        for task, query in zip(tasks, queries):
            scores = np.full(len(task), -1.0)
            rows = [i for i, s in enumerate(task.sentences) if s]
            if rows:
                ranker = self.filter_class(embeddings=self.embeddings, k=len(rows), similarity_threshold=None)
                docs = [LCDocument(page_content=task.sentences[i], metadata={"row": i}) for i in rows]
                ranked = ranker.compress_documents(docs, query or "")
                for rank, doc in enumerate(ranked):
                    scores[doc.metadata["row"]] = float(len(ranked) - rank)
            out.append(scores)
        return out


def extractive(**options):
    from ctxzip.compressors.extractive import ExtractiveCompressor

    return lambda: ExtractiveCompressor(**options)


def _plain_bm25():
    from ctxzip.relevance.bm25 import BM25Scorer

    return BM25Scorer(with_title=False)


def _position():
    from ctxzip.relevance.position import PositionScorer

    return PositionScorer()


def token_default():
    from ctxzip.compressors.token_classifier import TokenClassifierCompressor

    return TokenClassifierCompressor()


def token_word_level():
    from ctxzip.compressors.token_classifier import TokenClassifierCompressor

    return TokenClassifierCompressor(cascade=False, unit="word")


def random_sentences():
    from ctxzip.compressors.random_select import RandomCompressor

    return RandomCompressor(unit="sentence", seed=0)


DEFAULT_EXTRACTIVE = "ExtractiveCompressor()"
DEFAULT_TOKEN = "TokenClassifierCompressor() + query"
TOKEN_WORDS = "TokenClassifierCompressor(cascade=False, unit='word') + query"
RANDOM = "random sentences"
TRUNCATION = "truncation after de-dup"
PREVIOUS_EXTRACTIVE = "previous default (context head v1, rounds=2)"
FULL = "full context"


def standard_methods() -> dict[str, Method]:
    """The methods issue 16 asks for, in report order."""
    methods = [
        Method(DEFAULT_EXTRACTIVE, extractive()),
        Method(DEFAULT_TOKEN, token_default),
        Method(TOKEN_WORDS, token_word_level),
        Method(TRUNCATION, lambda: extractive(scorer=_position(), rounds=1, duplicate_threshold=EXACT)()),
        Method("LangChain EmbeddingsFilter (MiniLM) after de-dup",
               lambda: extractive(scorer=LangChainEmbeddingsFilterScorer(), rounds=1, duplicate_threshold=EXACT)()),
        Method("BM25 sentences after de-dup", lambda: extractive(scorer=_plain_bm25(), rounds=1,
                                                                 duplicate_threshold=EXACT)()),
        Method(RANDOM, random_sentences),
        Method(FULL, lambda: None, budgeted=False),
    ]
    return {m.label: m for m in methods}


def _v1_head():
    from ctxzip.models import shipped_weights

    return shipped_weights("sentence-context-head-v1") / "head.npz"


def _head_with(**settings) -> str:
    """A copy of the shipped head with other post-processing settings (for tuning them on dev parts)."""
    from ctxzip.relevance.context_head import SHIPPED_HEAD

    head = dict(np.load(SHIPPED_HEAD))
    head.update({k: np.float32(v) for k, v in settings.items()})
    name = "_".join(f"{k}{v}" for k, v in settings.items())
    path = Path(__file__).resolve().parent / ".cache" / "heads" / f"head_{name}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **head)
    return str(path)


def analysis_methods() -> dict[str, Method]:
    """Variants for finding out why truncation wins on retriever-ordered sets (`--analysis`)."""
    methods = [
        Method("ExtractiveCompressor(rounds=2)", extractive(rounds=2)),
        Method("ExtractiveCompressor(ordered=False)", extractive(ordered=False)),
        Method(PREVIOUS_EXTRACTIVE, extractive(model=str(_v1_head()), rounds=2)),
        Method("extractive, no de-dup", extractive(deduplicate=False)),
        *[Method(f"ExtractiveCompressor(smooth radius={r}, weight={w})",
                 lambda r=r, w=w: extractive(model=_head_with(smooth_radius=r, smooth_weight=w))())
          for r, w in ((2, 0.5), (4, 0.5), (4, 0.8), (8, 0.8), (8, 0.9), (16, 0.8), (16, 0.9), (32, 0.9), (64, 0.9))],
        *[Method(f"ExtractiveCompressor(title links, weight={w})",
                 lambda w=w: extractive(model=_head_with(link_weight=w))()) for w in (0.25, 0.5, 1.0)],
        Method("bi-encoder, 1 round, after de-dup", extractive(scorer="bi_encoder", rounds=1,
                                                               duplicate_threshold=EXACT)),
        Method("truncation, no de-dup", lambda: extractive(scorer=_position(), rounds=1, deduplicate=False)()),
    ]
    return {m.label: m for m in methods}
