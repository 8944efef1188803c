"""Sentence scorers for extractive compression, one small class per file; built by name here."""

from __future__ import annotations

from ctxzip.errors import InvalidInputError
from ctxzip.relevance.base import ScoringTask, SentenceScorer

SCORERS = ("bi_encoder", "bm25", "classifier", "context", "fusion", "position")


def create_scorer(name: str, model: str | None = None, device: str = "auto") -> SentenceScorer:
    """"bi_encoder" (MiniLM cosine), "bm25", "classifier" (fine-tuned MiniLM reading the paragraph),
    "context" (learned head over MiniLM embeddings and paragraph features), "fusion" or "position"
    (earlier first: the input order as the only evidence)."""
    if name == "bi_encoder":
        from ctxzip.relevance.bi_encoder import BiEncoderScorer

        return BiEncoderScorer(model=model or "minilm", device=device)
    if name == "bm25":
        from ctxzip.relevance.bm25 import BM25Scorer

        return BM25Scorer()
    if name == "classifier":
        from ctxzip.relevance.paragraph_classifier import ContextClassifierScorer

        return ContextClassifierScorer(model=model, device=device)
    if name == "context":
        from ctxzip.relevance.context_head import ContextHeadScorer

        return ContextHeadScorer(head=model, device=device)
    if name == "fusion":
        from ctxzip.relevance.fusion import FusionScorer

        return FusionScorer(
            [create_scorer("classifier", model, device), create_scorer("bi_encoder", None, device),
             create_scorer("bm25")],
            [0.6, 0.25, 0.15],
        )
    if name == "position":
        from ctxzip.relevance.position import PositionScorer

        return PositionScorer()
    raise InvalidInputError(f"scorer must be one of {SCORERS} or a SentenceScorer, got {name!r}")


__all__ = ["SCORERS", "ScoringTask", "SentenceScorer", "create_scorer"]
