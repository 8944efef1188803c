"""Hybrid scorer: a weighted sum of other scorers' scores, each min-max scaled per example.

Raw scales differ (cosine in [-1, 1], BM25 unbounded, probabilities), so each scorer's scores are
scaled to [0, 1] within the example before mixing.
"""

from __future__ import annotations

from dataclasses import dataclass, field


from ctxzip.errors import InvalidInputError
from ctxzip.relevance.base import SentenceScorer
from ctxzip.scores import minmax


@dataclass
class FusionScorer(SentenceScorer):
    scorers: list[SentenceScorer] = field(default_factory=list)
    weights: list[float] | None = None
    name = "fusion"

    def __post_init__(self) -> None:
        if not self.scorers:
            raise InvalidInputError("FusionScorer needs at least one scorer")
        if self.weights is None:
            self.weights = [1.0] * len(self.scorers)
        if len(self.weights) != len(self.scorers):
            raise InvalidInputError("FusionScorer needs one weight per scorer")

    def prepare(self, tasks):
        return list(zip(*[scorer.prepare(tasks) for scorer in self.scorers])) if tasks else []

    def score(self, tasks, queries, prepared):
        per_scorer = [
            scorer.score(tasks, queries, [p[k] for p in prepared]) for k, scorer in enumerate(self.scorers)
        ]
        total = sum(self.weights)
        return [
            sum(w * minmax(scores[i]) for w, scores in zip(self.weights, per_scorer)) / total
            for i in range(len(tasks))
        ]

    def sentence_vectors(self, prepared):
        for k, scorer in enumerate(self.scorers):
            vectors = scorer.sentence_vectors([p[k] for p in prepared])
            if any(v is not None for v in vectors):
                return vectors
        return [None] * len(prepared)

    @property
    def model_name(self) -> str:
        return "+".join(s.model_name or s.name for s in self.scorers)
