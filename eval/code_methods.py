"""The methods `python -m eval.code` compares: baselines that need no model, LongCodeZip's coarse
ranking, the code compressor's earlier default, and the code compressor."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ctxzip.compressors.base import ScoringCompressor
from ctxzip.errors import CtxzipError
from ctxzip.select import Units


def _line_units(text: str) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) of every line, each owning its newline and the blank lines after it (a blank
    line alone would cost no token, and the solver's repair cannot shrink the text by dropping it)."""
    ends = np.array([m.end() for m in re.finditer(r"\n(?:[ \t]*\n)*", text)] + [len(text)])
    ends = np.unique(ends[ends > 0])
    return np.concatenate([[0], ends[:-1]]), ends


@dataclass
class NearestCodeCompressor(ScoringCompressor):
    """Lines nearest a point: the end of each file (`at_gap=False`), or where the function was cut
    out (metadata "cut": a window centred on the gap)."""

    at_gap: bool = True
    method = "nearest"

    def score_units(self, request) -> Units:
        docs, starts, ends, scores = [], [], [], []
        for index, doc in enumerate(request.documents):
            begin, end = _line_units(doc.text)
            point = doc.metadata.get("cut", len(doc.text)) if self.at_gap else len(doc.text)
            distance = np.where(begin >= point, begin - point, point - end)
            docs.append(np.full(len(begin), index)), starts.append(begin), ends.append(end)
            scores.append(-distance.astype(np.float64))
        return Units.build(np.concatenate(docs), np.concatenate(starts), np.concatenate(ends), np.concatenate(scores))


@dataclass
class RandomFunctionsCompressor(ScoringCompressor):
    """Whole syntax chunks (functions, classes' own lines, statement groups) in random order."""

    seed: int = 0
    method = "random-functions"

    def score_units(self, request) -> Units:
        from ctxzip.code_analysis.chunking import chunk_documents

        units = chunk_documents(request.documents)
        rng = np.random.default_rng(self.seed)
        per_chunk = rng.random(max(units.n_chunks, 1))
        score = np.where(units.chunk >= 0, per_chunk[np.maximum(units.chunk, 0)], rng.random(len(units)))
        return Units.build(units.doc, units.start, units.end, score)


@dataclass
class LongCodeZipCoarse(ScoringCompressor):
    """LongCodeZip's coarse stage as `CodeCompressor(scorer="perplexity")` computes it: each chunk
    (function, class lines, statement group; imports as one more) scored by how much it lowers the
    query's NLL under SmolLM2 (the head of each chunk, 256 tokens), whole chunks kept best first."""

    max_chunk_tokens: int = 256
    max_query_tokens: int = 128
    method = "longcodezip-coarse"
    model_name = "smollm2"
    _scorer: object = field(default=None, init=False, repr=False)

    def score_units(self, request) -> Units:
        from ctxzip.code_analysis.chunk_scorers import PerplexityDropScorer
        from ctxzip.code_analysis.chunking import chunk_documents

        if self._scorer is None:
            self._scorer = PerplexityDropScorer(max_chunk_tokens=self.max_chunk_tokens,
                                                max_query_tokens=self.max_query_tokens)
        documents = request.documents
        units = chunk_documents(documents)
        chunk = np.where(units.chunk >= 0, units.chunk, units.n_chunks)  # imports: one more chunk
        pieces = [[] for _ in range(units.n_chunks + 1)]
        for c, text in zip(chunk.tolist(), units.texts(documents)):
            pieces[c].append(text)
        before = self._scorer.forward_seconds
        scores = self._scorer.score(["".join(p).strip() for p in pieces], request.query or "")
        forward = self._scorer.forward_seconds - before
        # Units of one chunk form a group: a function is kept whole or not at all.
        return Units.build(units.doc, units.start, units.end, scores[chunk], group=chunk,
                           info={"timings": {"forward": forward}})


@dataclass
class WithoutGapHint(ScoringCompressor):
    """Another compressor, with the gap's offset removed from every document's metadata."""

    inner: ScoringCompressor = None
    method = "no-hint"

    def score_units(self, request) -> Units:
        from ctxzip.document import Document

        documents = [Document(d.text, d.id, {k: v for k, v in d.metadata.items() if k not in ("cut", "gap")})
                     for d in request.documents]
        return self.inner.score_units(type(request)(**{**request.__dict__, "documents": documents}))


def _value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return None if text == "None" else text


def make_methods(names: list[str]) -> dict[str, ScoringCompressor]:
    from ctxzip.compressors.code import CodeCompressor

    makers = {
        "nearest-end": lambda: NearestCodeCompressor(at_gap=False),
        "window": lambda: NearestCodeCompressor(at_gap=True),
        "random-functions": RandomFunctionsCompressor,
        "previous-default": lambda: CodeCompressor(scorer="perplexity"),
        "longcodezip-coarse": LongCodeZipCoarse,
        "code": CodeCompressor,
        "code-nohint": lambda: WithoutGapHint(inner=CodeCompressor()),
        "code-rerank": lambda: CodeCompressor(rerank="perplexity", rerank_top=12),
        "code-minilm": lambda: CodeCompressor(rerank="similarity", rerank_top=10_000),
        "code-similarity": lambda: CodeCompressor(scorer="similarity"),
        "code-lexical": lambda: CodeCompressor(scorer="lexical"),
    }
    methods = {}
    for name in names:
        if ":" in name:  # "code:option=value+option=value": the code compressor with options (sweeps)
            base, _, options = name.partition(":")
            values = dict(item.split("=", 1) for item in options.split("+"))
            methods[name] = CodeCompressor(**{k: _value(v) for k, v in values.items()}) if base == "code" else None
            continue
        if name not in makers:
            raise SystemExit(f"unknown method {name!r}; choose from {', '.join(makers)}")
        try:
            methods[name] = makers[name]()
        except (CtxzipError, ImportError, TypeError) as exc:
            print(f"skipping {name}: {exc}")
    return methods

