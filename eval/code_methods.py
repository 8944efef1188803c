"""The methods `python -m eval.code` compares: baselines that need no model, LongCodeZip's coarse
ranking, and the graph-ranked code compressor."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import numpy as np

from ctxzip.compressors.base import Compressor, begin, build_result
from ctxzip.errors import CtxzipError
from ctxzip.select import Selection, Units, unit_costs


def _line_units(text: str) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) of every line, each owning its newline."""
    ends = np.array([m.end() for m in re.finditer(r"\n", text)] + [len(text)])
    ends = np.unique(ends[ends > 0])
    return np.concatenate([[0], ends[:-1]]), ends


@dataclass
class NearestCodeCompressor(Compressor):
    """Lines nearest a point: the end of the file (`at_gap=False`), or where the function was cut
    out (metadata "cut"; a window centred on the gap)."""

    at_gap: bool = True
    method = "nearest"

    def score_units(self, documents, query, counter) -> Units:
        docs, starts, ends, scores = [], [], [], []
        for index, doc in enumerate(documents):
            begin_, end_ = _line_units(doc.text)
            point = doc.metadata.get("cut", len(doc.text)) if self.at_gap else len(doc.text)
            distance = np.where(begin_ >= point, begin_ - point, point - end_)
            docs.append(np.full(len(begin_), index)), starts.append(begin_), ends.append(end_)
            scores.append(-distance.astype(np.float64))
        return Units.build(np.concatenate(docs), np.concatenate(starts), np.concatenate(ends), np.concatenate(scores))


@dataclass
class RandomFunctionsCompressor(Compressor):
    """Whole syntax chunks (functions, classes' own lines, statement groups) in random order."""

    seed: int = 0
    method = "random-functions"

    def score_units(self, documents, query, counter) -> Units:
        from ctxzip.code_analysis.chunking import chunk_documents

        units = chunk_documents(documents)
        rng = np.random.default_rng(self.seed)
        per_chunk = rng.random(max(units.n_chunks, 1))
        score = np.where(units.chunk >= 0, per_chunk[np.maximum(units.chunk, 0)], rng.random(len(units)))
        return Units.build(units.doc, units.start, units.end, score)


@dataclass
class LongCodeZipCoarse(Compressor):
    """LongCodeZip's coarse stage as `CodeCompressor(scorer="perplexity")` computes it: each chunk
    (function, class lines, statement group; imports as one more) scored by how much it lowers the
    instruction's NLL under SmolLM2 (the head of each chunk, 256 tokens), whole chunks kept best first."""

    max_chunk_tokens: int = 256
    max_query_tokens: int = 128
    method = "longcodezip-coarse"
    _scorer: object = field(default=None, init=False, repr=False)

    def compress(self, inputs, query=None, budget=None):
        from ctxzip.code_analysis.chunk_scorers import PerplexityDropScorer
        from ctxzip.code_analysis.chunking import chunk_documents
        from ctxzip.select import select_under_budget

        request, answered = begin(self, inputs, query, budget)
        if answered is not None:
            return answered
        documents, counter = request.documents, request.counter
        if self._scorer is None:
            self._scorer = PerplexityDropScorer(max_chunk_tokens=self.max_chunk_tokens,
                                                max_query_tokens=self.max_query_tokens)
        units = chunk_documents(documents)
        chunk = np.where(units.chunk >= 0, units.chunk, units.n_chunks)  # imports: one more chunk
        pieces = [[] for _ in range(units.n_chunks + 1)]
        for c, text in zip(chunk.tolist(), units.texts(documents)):
            pieces[c].append(text)
        before = self._scorer.forward_seconds
        scores = self._scorer.score(["".join(p).strip() for p in pieces], query or "")
        forward = self._scorer.forward_seconds - before
        plain = Units.build(units.doc, units.start, units.end, scores[chunk])
        scored = time.perf_counter()
        selection = select_under_budget(documents, plain, request.target, counter)
        timings = {"score": scored - request.started, "forward": forward, "select": time.perf_counter() - scored}
        return build_result(documents, plain, selection, request.original_tokens, request.budget, request.target,
                            self, timings, request.started)

    def score_units(self, documents, query, counter) -> Units:  # pragma: no cover - compress is overridden
        raise NotImplementedError


@dataclass
class GraphCodeCompressor(Compressor):
    """Phase-1 form of the new code compressor: tree-sitter units ranked from the definition graph
    (`ctxzip.code_analysis.rank`), chosen by the code solver. `hint=False` hides the gap's offset."""

    hint: bool = True
    weights: object = None
    method = "code-graph"

    def compress(self, inputs, query=None, budget=None):
        from ctxzip.code_analysis.chunking import chunk_documents
        from ctxzip.code_analysis.rank import RankWeights, rank_units
        from ctxzip.code_analysis.solver import select_code
        from ctxzip.document import Document, as_documents

        documents = as_documents(inputs)
        if not self.hint:
            documents = [Document(d.text, d.id, {k: v for k, v in d.metadata.items() if k not in ("cut", "gap")})
                         for d in documents]
        request, answered = begin(self, documents, query, budget)
        if answered is not None:
            return answered
        documents, counter = request.documents, request.counter
        units = chunk_documents(documents)
        costs = unit_costs(documents, units, counter)
        parsed = time.perf_counter()
        ranked = rank_units(documents, units, costs, query, self.weights or RankWeights())
        ranked_at = time.perf_counter()
        selection = select_code(documents, units, ranked.priority, request.target, counter, costs)
        timings = {"parse": parsed - request.started, "score": ranked_at - parsed, "forward": 0.0,
                   "select": time.perf_counter() - ranked_at}
        plain = Units.build(units.doc, units.start, units.end, ranked.priority)
        result = build_result(documents, plain, Selection(selection.mask, selection.doc_texts, selection.text,
                                                          selection.tokens),
                              request.original_tokens, request.budget, request.target, self, timings,
                              request.started, {**ranked.details, "placeholders": selection.placeholders})
        return result

    def score_units(self, documents, query, counter) -> Units:  # pragma: no cover - compress is overridden
        raise NotImplementedError


def make_methods(names: list[str]) -> dict[str, Compressor]:
    from ctxzip.compressors.code import CodeCompressor

    makers = {
        "nearest-end": lambda: NearestCodeCompressor(at_gap=False),
        "window": lambda: NearestCodeCompressor(at_gap=True),
        "random-functions": RandomFunctionsCompressor,
        "default": CodeCompressor,
        "longcodezip-coarse": LongCodeZipCoarse,
        "graph": GraphCodeCompressor,
        "graph-nohint": lambda: GraphCodeCompressor(hint=False),
        "code-similarity": lambda: CodeCompressor(scorer="similarity"),
        "code-lexical": lambda: CodeCompressor(scorer="lexical"),
    }
    methods = {}
    for name in names:
        if name not in makers:
            raise SystemExit(f"unknown method {name!r}; choose from {', '.join(makers)}")
        try:
            methods[name] = makers[name]()
        except (CtxzipError, ImportError, TypeError) as exc:
            print(f"skipping {name}: {exc}")
    return methods
