"""Code-aware compression, LongCodeZip-style: syntax-aware chunks, coarse ranking of functions by
how much they help the instruction, a knapsack over statement blocks inside the kept functions,
and a skeleton (imports, class headers, signatures, placeholders) for what is elided.

    CodeCompressor().compress([Document(src, id="pkg/mod.py")], query="def parse(...): ...", budget=Budget(ratio=0.25))

Elided bodies become placeholders through the shared solver's render hook (`code_analysis.render`):
the result reports them in `inserted`, and the final string is counted in the budget's tokenizer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ctxzip.code_analysis.chunk_scorers import ChunkScorer, identifiers, make_scorer
from ctxzip.code_analysis.chunking import CLOSE, HEADER, IMPORT, CodeUnits, chunk_documents
from ctxzip.code_analysis.languages import normalise_language
from ctxzip.code_analysis.plan import unit_priorities
from ctxzip.code_analysis.render import as_units
from ctxzip.compressors.base import Request, ScoringCompressor
from ctxzip.document import Document
from ctxzip.errors import InvalidInputError
from ctxzip.protect import Protection
from ctxzip.select import Units


@dataclass
class CodeCompressor(ScoringCompressor):
    """Options:

    scorer: coarse score of functions: "perplexity" (instruction NLL drop under a causal LM,
        LongCodeZip), "similarity" (sentence embeddings) or "lexical" (shared identifiers).
    fine_scorer: score of statements inside a function, same choices; "lexical" costs no forward.
    model: the scorer's model (default SmolLM2 for perplexity, MiniLM for similarity).
    language: force one grammar for every document (else from metadata "language"/"path", the id's
        extension, or the first grammar that parses the text cleanly).
    skeleton_share: at most this share of the budget goes to signatures before bodies.
    overselect: functions covering this multiple of the body budget get a share of it.
    spread: how fast retention falls with the score gap to the best function (0 = all alike).
    max_chunk_tokens / max_query_tokens: the perplexity scorer reads the head of each chunk and of the
        instruction only (the signature and docstring carry most of the signal; forwards cost tokens).
    """

    scorer: str = "perplexity"
    fine_scorer: str = "lexical"
    model: str | None = None
    device: str = "auto"
    language: str | None = None
    skeleton_share: float = 0.2
    overselect: float = 1.3
    spread: float = 2.0
    max_chunk_tokens: int = 256
    max_query_tokens: int = 128
    batch_tokens: int = 8192
    protection: Protection = Protection()
    method = "code"
    scores_depend_on_budget = True  # the coarse-to-fine plan shares out the budget
    _scorers: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.language is not None:
            self.language = normalise_language(self.language)
        for name in (self.scorer, self.fine_scorer):
            if name not in ("perplexity", "similarity", "lexical"):
                raise InvalidInputError(f"unknown code scorer {name!r}; choose perplexity, similarity or lexical")
        if not 0.0 <= self.skeleton_share <= 1.0:
            raise InvalidInputError(f"skeleton_share must be in [0, 1], got {self.skeleton_share}")
        if self.overselect < 1.0 or self.spread < 0.0:
            raise InvalidInputError("overselect must be >= 1 and spread >= 0")
        self.model_name = self.model or {"perplexity": "smollm2", "similarity": "minilm"}.get(self.scorer)

    def get_scorer(self, name: str) -> ChunkScorer:
        """One scorer per name, kept with the compressor (its model is cached process-wide)."""
        if name not in self._scorers:
            options = {"max_chunk_tokens": self.max_chunk_tokens, "max_query_tokens": self.max_query_tokens,
                       "batch_tokens": self.batch_tokens} if name == "perplexity" else {}
            self._scorers[name] = make_scorer(name, self.model if name == self.scorer else None, self.device, **options)
        return self._scorers[name]

    # -- scoring ----------------------------------------------------------------------------

    def plan(self, documents: list[Document], query: str | None, counter, budget: int):
        """Chunk, score and prioritise: (units, costs, priority, details)."""
        began = time.perf_counter()
        units = chunk_documents(documents, self.language)
        texts = units.texts(documents)
        costs = np.asarray(counter.count_many(texts), dtype=np.int64) if texts else np.zeros(0, dtype=np.int64)
        parsed = time.perf_counter()
        chunk_texts = _chunk_texts(units, texts)
        items = (units.kind != HEADER) & (units.kind != CLOSE) & (units.kind != IMPORT) & (units.chunk >= 0)
        forward = 0.0
        if query is None or not query.strip() or not identifiers(query) and self.scorer == "lexical":
            # No instruction to measure against: keep earlier code first.
            chunk_scores = -np.arange(units.n_chunks, dtype=np.float64)
            item_scores = -np.arange(len(units), dtype=np.float64)
        else:
            coarse = self.get_scorer(self.scorer)
            before = coarse.forward_seconds
            chunk_scores = np.asarray(coarse.score(chunk_texts, query), dtype=np.float64)
            forward += coarse.forward_seconds - before
            item_scores = np.zeros(len(units))
            fine = self.get_scorer(self.fine_scorer)
            wanted = np.flatnonzero(items & _candidate_chunks(units, costs, chunk_scores, budget * self.overselect))
            if len(wanted):
                before = fine.forward_seconds
                item_scores[wanted] = fine.score([texts[i] for i in wanted.tolist()], query)
                forward += fine.forward_seconds - before
        scored = time.perf_counter()
        priority, details = unit_priorities(
            units, costs, chunk_scores, item_scores, budget,
            skeleton_share=self.skeleton_share, overselect=self.overselect, spread=self.spread,
        )
        details.update(chunks=int(units.n_chunks), units=int(len(units)), parse_seconds=parsed - began,
                       score_seconds=scored - parsed, forward_seconds=forward)
        return units, costs, priority, details

    def score_units(self, request: Request) -> Units:
        documents, query = request.documents, request.query
        units, _, priority, details = self.plan(documents, query, request.counter, request.target)
        timings = {key: details.pop(f"{key}_seconds") for key in ("parse", "score", "forward")}
        info = {
            **details,
            "timings": timings,
            "languages": {d.id: language for d, language in zip(documents, units.languages)},
            "scorer": self.scorer if query and query.strip() else "position",
        }
        return as_units(documents, units, priority, info)


def _chunk_texts(units: CodeUnits, texts: list[str]) -> list[str]:
    """Each chunk's text (header, statements, closing brace), as scorers see it."""
    pieces: list[list[str]] = [[] for _ in range(units.n_chunks)]
    for chunk, text in zip(units.chunk.tolist(), texts):
        if chunk >= 0:
            pieces[chunk].append(text)
    return ["".join(p).strip() for p in pieces]


def _candidate_chunks(units: CodeUnits, costs: np.ndarray, chunk_scores: np.ndarray, room: float) -> np.ndarray:
    """Units in the best chunks whose summed cost reaches `room`: the only ones the fine stage can keep."""
    if not units.n_chunks:
        return np.zeros(len(units), dtype=bool)
    size = np.bincount(units.chunk[units.chunk >= 0], weights=costs[units.chunk >= 0], minlength=units.n_chunks)
    order = np.lexsort((np.arange(units.n_chunks), -chunk_scores))
    reach = int(np.searchsorted(np.cumsum(size[order]), room, side="left")) + 1
    wanted = np.zeros(units.n_chunks, dtype=bool)
    wanted[order[:reach]] = True
    return (units.chunk >= 0) & wanted[np.maximum(units.chunk, 0)]
