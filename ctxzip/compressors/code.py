"""Code-aware compression: know the code before scoring it, cheap first, expensive last.

    CodeCompressor().compress([Document(src, id="pkg/mod.py", metadata={"cut": 1234})],
                              query="def parse(...): ...", budget=Budget(ratio=0.25))

The default (`scorer="graph"`) cuts each file into tree-sitter units (imports, signatures, the
statements of each body, class members), builds the definition/reference graph of all the files
(imports between them are edges), finds where the query's code would stand (metadata "cut" or
"gap", else inferred from the names it uses), and ranks every unit by what it defines (how likely
the query's code is to use each name: hops in the graph from the query and from the code around
the gap, the enclosing class, file distance; a small logistic model) and by how much its function
helps as example code (near the gap, used by the query's code, sharing its words). No model runs
unless asked: `rerank="perplexity"` lets a causal LM re-score the most relevant functions in one
batched pass (`rerank="similarity"`: MiniLM). The shared solver fills the budget with whole statements, keeps every statement with its
header and puts a language-correct placeholder (`...`) where a body is elided, so the output parses
where the input did; placeholders are reported in `inserted`.

`scorer="perplexity" | "similarity" | "lexical"` is the earlier LongCodeZip-style plan: functions
ranked by how much they lower the query's NLL under a causal LM (or by embeddings, or shared
identifiers), a knapsack over statements inside the kept ones, and a skeleton of signatures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ctxzip.code_analysis.chunk_scorers import ChunkScorer, identifiers, make_scorer
from ctxzip.code_analysis.chunking import CLOSE, HEADER, IMPORT, CodeUnits, chunk_documents
from ctxzip.code_analysis.languages import normalise_language
from ctxzip.code_analysis.plan import unit_priorities
from ctxzip.code_analysis.rank import RankWeights, rank_units
from ctxzip.code_analysis.render import as_units
from ctxzip.compressors.base import Request, ScoringCompressor
from ctxzip.document import Document
from ctxzip.errors import InvalidInputError
from ctxzip.protect import Protection
from ctxzip.select import Units, unit_costs

SCORERS = ("graph", "perplexity", "similarity", "lexical")


@dataclass
class CodeCompressor(ScoringCompressor):
    """Options:

    scorer: "graph" (default: the definition graph, no model) or the earlier plan's coarse score of
        functions: "perplexity" (query NLL drop under a causal LM, LongCodeZip), "similarity"
        (sentence embeddings) or "lexical" (shared identifiers).
    rerank: with "graph", a model that re-scores the `rerank_top` most relevant functions in one
        batched pass: "perplexity" (how much each lowers the query's NLL under a causal LM, SmolLM2
        unless `model` says otherwise) or "similarity" (sentence embeddings, MiniLM). None (the
        default): no model at all.
    rerank_top: how many functions the model re-scores.
    rerank_weight: how much its score (rank-normalised to 0..1) adds to a function's relevance.
    example_weight: what a token of the most relevant function's body is worth, in names the query's
        code will use: lower keeps more definitions (signatures, constants, `self.` attributes),
        higher more example code around the gap.
    fine_scorer: the earlier plan's score of statements inside a function, same choices.
    model: the LM or encoder of the scorer (default SmolLM2 for perplexity, MiniLM for similarity).
    language: force one grammar for every document (else from metadata "language"/"path", the id's
        extension, or the first grammar that parses the text cleanly into something code-like;
        text that is not code is compressed by lines).
    skeleton_share, overselect, spread: the earlier plan's budget split (see `code_analysis.plan`).
    max_chunk_tokens / max_query_tokens: the LM reads the head of each function and of the query only.
    """

    scorer: str = "graph"
    rerank: str | None = None
    rerank_top: int = 16
    rerank_weight: float = 1.0
    example_weight: float = 0.01
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
    _scorers: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.language is not None:
            self.language = normalise_language(self.language)
        if self.scorer not in SCORERS:
            raise InvalidInputError(f"unknown code scorer {self.scorer!r}; choose {', '.join(SCORERS)}")
        if self.fine_scorer not in SCORERS[1:]:
            raise InvalidInputError(f"unknown fine scorer {self.fine_scorer!r}; choose perplexity, similarity or lexical")
        if not 0.0 <= self.skeleton_share <= 1.0:
            raise InvalidInputError(f"skeleton_share must be in [0, 1], got {self.skeleton_share}")
        if self.overselect < 1.0 or self.spread < 0.0:
            raise InvalidInputError("overselect must be >= 1 and spread >= 0")
        if not self.example_weight >= 0:
            raise InvalidInputError(f"example_weight must be >= 0, got {self.example_weight!r}")
        if self.rerank not in (None, "perplexity", "similarity"):
            raise InvalidInputError(f"rerank must be None, 'perplexity' or 'similarity', got {self.rerank!r}")
        if isinstance(self.rerank_top, bool) or not isinstance(self.rerank_top, int) or self.rerank_top < 2:
            raise InvalidInputError(f"rerank_top must be an integer >= 2, got {self.rerank_top!r}")
        if self.scorer == "graph":
            default = {"perplexity": "smollm2", "similarity": "minilm"}.get(self.rerank)
            self.model_name = (self.model or default) if self.rerank else None
        else:
            self.model_name = self.model or {"perplexity": "smollm2", "similarity": "minilm"}.get(self.scorer)

    @property
    def scores_depend_on_budget(self) -> bool:  # the earlier plan shares out the budget; the graph order does not
        return self.scorer != "graph"

    def get_scorer(self, name: str) -> ChunkScorer:
        """One scorer per name, kept with the compressor (its model is cached process-wide)."""
        if name not in self._scorers:
            options = {"max_chunk_tokens": self.max_chunk_tokens, "max_query_tokens": self.max_query_tokens,
                       "batch_tokens": self.batch_tokens} if name == "perplexity" else {}
            own_model = name == (self.rerank if self.scorer == "graph" else self.scorer)
            self._scorers[name] = make_scorer(name, self.model if own_model else None, self.device, **options)
        return self._scorers[name]

    def score_units(self, request: Request) -> Units:
        if self.scorer == "graph":
            return self._graph_units(request)
        return self._plan_units(request)

    # -- the graph ranking ------------------------------------------------------------------

    def _graph_units(self, request: Request) -> Units:
        began = time.perf_counter()
        documents, query = request.documents, request.query
        units = chunk_documents(documents, self.language)
        costs = unit_costs(documents, units, request.counter)
        parsed = time.perf_counter()
        rerank = self.get_scorer(self.rerank) if self.rerank and query and query.strip() else None
        weights = RankWeights(body=self.example_weight, rerank=self.rerank_weight)
        ranked = rank_units(documents, units, costs, query, weights,
                            rerank=rerank, rerank_top=self.rerank_top)
        details = dict(ranked.details)
        timings = {"parse": parsed - began, "graph": details.pop("graph_seconds"), "rank": details.pop("rank_seconds"),
                   "forward": details.pop("forward_seconds")}
        gap = ranked.gap
        info = {
            **details,
            "timings": timings,
            "languages": {d.id: language for d, language in zip(documents, units.languages)},
            "scorer": "graph",
            "gap": None if gap is None else {"document": documents[gap.doc].id, "offset": gap.offset,
                                             "inferred": gap.inferred},
        }
        return as_units(documents, units, ranked.priority, info)

    # -- the earlier plan (LongCodeZip-style) --------------------------------------------------

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

    def _plan_units(self, request: Request) -> Units:
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
