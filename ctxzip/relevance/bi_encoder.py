"""Bi-encoder scorer: cosine between the query's and each sentence's MiniLM embedding."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ctxzip.progress import report
from ctxzip.relevance.base import ScoringTask, SentenceScorer


# Embeddings by model name, then by text (least recently added dropped first).
_CACHE: dict[str, OrderedDict] = {}


def clear_embedding_cache() -> None:
    _CACHE.clear()


@dataclass
class BiEncoderScorer(SentenceScorer):
    """Embeds every sentence of every task in one batched `encode`; the query costs one more row."""

    model: str = "minilm"
    device: str = "auto"
    batch_size: int = 128
    # Embed "title: sentence" when a document has a title in its metadata: a sentence that says
    # "He was born in ..." is about the title's subject, and the embedding should know it.
    with_title: bool = True
    cache_size: int = 50_000
    name = "bi_encoder"

    def _encoder(self):
        from ctxzip.models import load_sentence_encoder

        return load_sentence_encoder(self.model, self.device)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors; texts seen recently come from a bounded cache (retrieved chunks repeat)."""
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        cache = _CACHE.setdefault(self.model, OrderedDict())
        missing = list(dict.fromkeys(t for t in texts if t not in cache))
        if missing:
            vectors = self._encode(missing)
            if len(missing) > self.cache_size:  # too many to keep: answer without caching
                fresh = dict(zip(missing, vectors))
                return np.stack([fresh[t] if t in fresh else cache[t] for t in texts])
            cache.update(zip(missing, vectors))
        result = np.stack([cache[t] for t in texts])
        for text in missing:
            cache.move_to_end(text)
        while len(cache) > self.cache_size:
            cache.popitem(last=False)
        return result

    def _encode(self, texts: list[str], step: int = 4096) -> np.ndarray:
        """Unit vectors of `texts`, a step at a time so long inputs report their progress."""
        encoder, parts = self._encoder(), []
        for begin in range(0, len(texts), step):
            report("sentence embeddings", begin, len(texts))
            parts.append(np.asarray(encoder.encode(
                texts[begin : begin + step], batch_size=self.batch_size, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=False,
            ), dtype=np.float32))
        report("sentence embeddings", len(texts), len(texts))
        return np.concatenate(parts)

    def prepare(self, tasks: list[ScoringTask]) -> list[np.ndarray]:
        sizes = [len(t) for t in tasks]
        texts = []
        for task in tasks:
            titles = task.doc_titles if self.with_title else [""] * len(task.doc_texts)
            texts += [f"{titles[d]}: {s}" if titles[d] else s for d, s in zip(task.sentence_doc.tolist(), task.sentences)]
        vectors = self.embed(texts)
        return np.split(vectors, np.cumsum(sizes)[:-1]) if tasks else []

    def score(self, tasks, queries, prepared) -> list[np.ndarray]:
        query_vectors = self.embed(list(queries))
        scores = []
        for query, vectors, q in zip(queries, prepared, query_vectors):
            if not query.strip() and len(vectors):
                # No question: rank by closeness to the documents' centroid (what they are mostly about).
                q = vectors.mean(axis=0)
                q = q / (np.linalg.norm(q) or 1.0)
            scores.append((vectors @ q).astype(np.float64))
        return scores

    def sentence_vectors(self, prepared):
        return list(prepared)

    @property
    def model_name(self) -> str:
        return self.model
