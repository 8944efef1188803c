"""Learned context-aware scorer over frozen MiniLM embeddings (cheap to train and to run on a CPU).

For each sentence it builds features from the query, the sentence and its document: the
element-wise product of query and sentence embeddings (a learned similarity), the cosine, the
document's best and mean cosine, the cosines of the neighbouring sentences, the sentence's position
in its document, its rank in the example, and BM25 scores of the sentence and its document. A small
MLP trained on HotpotQA supporting-sentence labels (train split) turns them into a probability.
Sentence embeddings come from the bi-encoder (and its cache), so rounds only re-embed the query.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ctxzip.errors import ModelNotAvailableError
from ctxzip.models import shipped_weights
from ctxzip.relevance.base import ScoringTask, SentenceScorer
from ctxzip.relevance.bi_encoder import BiEncoderScorer
from ctxzip.relevance.bm25 import BM25Scorer
from ctxzip.relevance.context_features import N_EXTRA_FEATURES, extra_features, title_links, window_mean
from ctxzip.scores import minmax, ranks

SHIPPED_HEAD = shipped_weights("sentence-context-head-v2") / "head.npz"
N_SCALAR_FEATURES = 14


def _group_reduce(values: np.ndarray, groups: np.ndarray, n_groups: int):
    """(max, mean) of values per group."""
    best = np.full(n_groups, -np.inf)
    np.maximum.at(best, groups, values)
    total = np.bincount(groups, weights=values, minlength=n_groups)
    count = np.maximum(np.bincount(groups, minlength=n_groups), 1)
    return best, total / count


def _ranks(values: np.ndarray) -> np.ndarray:
    """0 for the best value, 1 for the worst, evenly spaced."""
    return ranks(values) / max(1, len(values) - 1)


def sentence_features(task: ScoringTask, vectors: np.ndarray, query_vector: np.ndarray,
                      bm25: np.ndarray, version: int = 1) -> np.ndarray:
    """(n_sentences, dim + N_SCALAR_FEATURES [+ N_EXTRA_FEATURES for version 2]) features of one task."""
    n = len(task)
    doc = task.sentence_doc
    n_docs = len(task.doc_texts)
    cosine = vectors @ query_vector
    doc_max, doc_mean = _group_reduce(cosine, doc, n_docs)
    same_prev = np.r_[False, doc[1:] == doc[:-1]]
    same_next = np.r_[doc[1:] == doc[:-1], False]
    prev = np.where(same_prev, np.r_[0.0, cosine[:-1]], 0.0)
    nxt = np.where(same_next, np.r_[cosine[1:], 0.0], 0.0)
    first_of_doc = np.r_[0, np.flatnonzero(doc[1:] != doc[:-1]) + 1]
    position = np.arange(n) - np.repeat(first_of_doc, np.diff(np.r_[first_of_doc, n]))
    bm25_scaled = minmax(bm25)
    bm25_doc_max, _ = _group_reduce(bm25_scaled, doc, n_docs)
    doc_rank = _ranks(doc_max)[doc] if n_docs > 1 else np.zeros(n)
    scalars = np.stack([
        cosine, doc_max[doc], doc_mean[doc], cosine - doc_max[doc], prev, nxt,
        position == 0, position == 1, np.minimum(position, 6) / 6, _ranks(cosine), doc_rank,
        bm25_scaled, bm25_doc_max[doc], cosine - cosine.max(),
    ], axis=1).astype(np.float32)
    parts = [vectors * query_vector[None, :], scalars]
    if version >= 2:
        parts.append(extra_features(task, cosine, bm25_scaled))
    return np.concatenate(parts, axis=1)


def feature_count(version: int, dim: int = 384) -> int:
    return dim + N_SCALAR_FEATURES + (N_EXTRA_FEATURES if version >= 2 else 0)


@functools.lru_cache(maxsize=4)
def load_head(path: str | None) -> dict[str, np.ndarray]:
    path = Path(path) if path else SHIPPED_HEAD
    if not path.exists():
        raise ModelNotAvailableError(f"no context head at {path}; train one with `python -m ctxzip.train context`")
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def head_version(head: dict[str, np.ndarray]) -> int:
    """Feature version a head was trained on (heads without the key are version 1)."""
    return int(head["version"]) if "version" in head else 1


def rank_prior(task: ScoringTask) -> np.ndarray:
    """1 for sentences of the first passage falling to 0 for the last; 0 everywhere for unranked input."""
    n_docs = len(task.doc_texts)
    if not task.ordered or n_docs < 2:
        return np.zeros(len(task))
    return 1.0 - task.sentence_doc / (n_docs - 1)


def with_rank_fallback(task: ScoringTask, probabilities: np.ndarray, weight: float) -> np.ndarray:
    """Lean on the retriever's order as far as the head is unsure: the head's best probability is its
    confidence that the input holds what the query needs, and the rank prior is added in proportion to
    what is missing (`weight` is chosen on the dev parts when the head is trained)."""
    if not weight or not len(probabilities):
        return probabilities
    return probabilities + weight * (1.0 - float(probabilities.max())) * rank_prior(task)


# A document with at least this many sentences is long (a transcript, a report): relevance there comes
# in stretches, so its scores are smoothed over neighbouring sentences.
LONG_DOCUMENT_SENTENCES = 40


def smooth_long_documents(task: ScoringTask, scores: np.ndarray, radius: int, weight: float) -> np.ndarray:
    """(1 - weight) x the score + weight x its mean over `radius` sentences either side, in long documents."""
    if not radius or not weight or not len(scores):
        return scores
    long = np.bincount(task.sentence_doc, minlength=len(task.doc_texts))[task.sentence_doc] >= LONG_DOCUMENT_SENTENCES
    if not long.any():
        return scores
    smoothed = (1 - weight) * scores + weight * window_mean(scores, task.sentence_doc, radius)
    return np.where(long, smoothed, scores)


def postprocess(task: ScoringTask, probabilities: np.ndarray, head: dict[str, np.ndarray]) -> np.ndarray:
    """The head's probabilities, smoothed in long documents, raised in passages a relevant sentence names,
    and leaning on the rank where unsure, with
    the settings chosen on the dev parts when the head was trained (stored in the head file)."""
    def setting(key: str) -> float:
        return float(head[key]) if key in head else 0.0

    scores = smooth_long_documents(task, probabilities, int(setting("smooth_radius")), setting("smooth_weight"))
    if setting("link_weight"):  # passages that a relevant sentence elsewhere names come along (multi-hop bridges)
        scores = scores + setting("link_weight") * title_links(task, scores)
    return with_rank_fallback(task, scores, setting("prior_weight"))


def mlp_probabilities(head: dict[str, np.ndarray], features: np.ndarray) -> np.ndarray:
    x = (features - head["mean"]) / head["std"]
    hidden = np.maximum(x @ head["w1"] + head["b1"], 0.0)
    logits = hidden @ head["w2"] + head["b2"]
    return 1.0 / (1.0 + np.exp(-logits.ravel()))


@dataclass
class ContextHeadScorer(SentenceScorer):
    """head: path of a trained head (.npz); default the shipped sentence-context-head-v1."""

    head: str | None = None
    device: str = "auto"
    encoder: BiEncoderScorer = field(default_factory=BiEncoderScorer)
    lexical: BM25Scorer = field(default_factory=BM25Scorer)
    name = "context"
    probabilistic = True

    @property
    def model_name(self) -> str:
        return "minilm+ctxzip/sentence-context-head-v2" if self.head is None else f"minilm+{self.head}"

    def prepare(self, tasks: list[ScoringTask]):
        return list(zip(self.encoder.prepare(tasks), self.lexical.prepare(tasks))) if tasks else []

    def features(self, tasks, queries, prepared, version: int | None = None) -> list[np.ndarray]:
        version = head_version(load_head(self.head)) if version is None else version
        query_vectors = self.encoder.embed(list(queries))
        bm25 = self.lexical.score(tasks, queries, [p[1] for p in prepared])
        return [
            sentence_features(task, p[0], q, b, version) if len(task)
            else np.zeros((0, feature_count(version)), np.float32)
            for task, p, q, b in zip(tasks, prepared, query_vectors, bm25)
        ]

    def score(self, tasks, queries, prepared) -> list[np.ndarray]:
        head = load_head(self.head)
        return [postprocess(task, mlp_probabilities(head, f), head) if len(f) else np.zeros(0)
                for task, f in zip(tasks, self.features(tasks, queries, prepared, head_version(head)))]

    def sentence_vectors(self, prepared):
        return [p[0] for p in prepared]
