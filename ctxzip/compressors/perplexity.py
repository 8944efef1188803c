"""Perplexity-based compression (Selective Context / LLMLingua; LongLLMLingua with a query).

A small causal LM (SmolLM2-135M-Instruct by default) reads each document once, window by window
with its KV cache carried over. A unit's score is the mean surprisal of its tokens: what the model
could not predict carries information. With a query, LongLLMLingua's signals are added: the
contrastive score (how much more likely a token becomes when the question precedes the text) and
the document's relevance (how likely the question is after the document).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctxzip.compressors.base import Request, ScoringCompressor
from ctxzip.errors import InvalidInputError
from ctxzip.protect import Protection
from ctxzip.scores import standardize
from ctxzip.segment import SPLITTERS
from ctxzip.select import Units
from ctxzip.token_scoring.aggregate import token_units, unit_mean
from ctxzip.token_scoring.causal import token_surprisal

UNITS = ("word", "phrase", "sentence")
QUERY_MODES = ("contrastive", "relevance", "none")


@dataclass
class PerplexityCompressor(ScoringCompressor):
    """Keep the units a causal LM finds most informative, under the budget.

    query_mode (used only when a query is given): "contrastive" adds LongLLMLingua's
    question-conditioned contrastive score (a second pass) and document relevance; "relevance"
    adds only document relevance (cheap); "none" ignores the query.
    """

    model: str = "smollm2"
    unit: str = "word"
    query_mode: str = "contrastive"
    document_weight: float = 1.0
    window: int = 512
    max_context: int = 4096
    overlap: int = 256
    device: str = "auto"
    protection: Protection = Protection()
    method = "perplexity"

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise InvalidInputError(f"unit must be one of {UNITS}, got {self.unit!r}")
        if self.query_mode not in QUERY_MODES:
            raise InvalidInputError(f"query_mode must be one of {QUERY_MODES}, got {self.query_mode!r}")
        if self.window < 1 or self.max_context < self.window + 1 or not (0 <= self.overlap < self.max_context - self.window):
            raise InvalidInputError("need window >= 1, max_context > window and 0 <= overlap < max_context - window")
        self.model_name = str(self.model)

    def score_units(self, request: Request) -> Units:
        from ctxzip.models import load_causal_lm

        documents, query = request.documents, request.query
        model, tokenizer = load_causal_lm(self.model, self.device)
        start_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        prefix = np.array([start_id if start_id is not None else 0], dtype=np.int64)
        use_query = bool(query and query.strip()) and self.query_mode != "none"
        query_ids = _encode(tokenizer, query)[0] if use_query else None
        conditioned_prefix = np.concatenate([prefix, query_ids, _encode(tokenizer, "\n\n")[0]]) if use_query else None
        question_suffix = _encode(tokenizer, f"\n\nQuestion: {query}")[0] if use_query else None
        options = dict(window=self.window, max_context=self.max_context, overlap=self.overlap)

        docs, starts, ends, information, contrast = [], [], [], [], []
        relevance = np.zeros(len(documents))
        for index, document in enumerate(documents):
            unit_starts, unit_ends = SPLITTERS[self.unit](document.text)
            if not len(unit_starts):
                continue
            ids, token_starts = _encode(tokenizer, document.text)
            plain, question_loss = token_surprisal(model, ids, prefix, suffix=question_suffix, **options)
            unit_of_token = token_units(token_starts, unit_starts, unit_ends)
            information.append(unit_mean(plain, unit_of_token, len(unit_starts)))
            if use_query and self.query_mode == "contrastive":
                conditioned, _ = token_surprisal(model, ids, conditioned_prefix, **options)
                contrast.append(unit_mean(plain - conditioned, unit_of_token, len(unit_starts)))
            if question_loss is not None:
                relevance[index] = -question_loss
            docs.append(np.full(len(unit_starts), index))
            starts.append(unit_starts)
            ends.append(unit_ends)
        if not docs:
            return Units.empty()
        doc = np.concatenate(docs)
        score = standardize(np.concatenate(information))
        if contrast:
            score += standardize(np.concatenate(contrast))
        if use_query and len(documents) > 1:
            score += self.document_weight * standardize(relevance)[doc]
        return Units.build(doc, np.concatenate(starts), np.concatenate(ends), score)


def _encode(tokenizer, text: str) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and character starts of `text`, without special tokens."""
    encoding = tokenizer.backend_tokenizer.encode(text, add_special_tokens=False)
    offsets = np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2)
    return np.asarray(encoding.ids, dtype=np.int64), offsets[:, 0]


