"""The cheap stage of the code compressor: every unit ranked from the definition graph, no model.

Each unit is worth what it defines (the use probability of each name it binds, counted once per
name) plus, for statements inside functions, a share of the function's relevance as example code
(near the gap, used by the query's code, sharing its words). Units are ordered greedily by value per
token, a unit's cost including the headers it cannot stand without, so the order is also a valid
fill order: a header always comes before what depends on it.
"""

from __future__ import annotations

import heapq
import math
import time
from dataclasses import dataclass, field

import numpy as np

from ctxzip.code_analysis.chunk_scorers import LexicalScorer
from ctxzip.code_analysis.chunking import BODY, HEADER, LINES, MEMBER, STATEMENT, CodeUnits
from ctxzip.code_analysis.gap import Gap, locate_gap
from ctxzip.code_analysis.graph import CLASS, FUNCTION, METHOD, CodeGraph, build_graph
from ctxzip.code_analysis.query import QueryInfo, analyse_query
from ctxzip.code_analysis.relevance import definition_features, nearest_definitions, use_probability
from ctxzip.document import Document

PLACEHOLDER_TOKENS = 3  # what eliding a kept header's body adds ("\n    ...")
_HEAD_CHARS = 1200  # a re-scoring model reads this much of each function (about 256 tokens)


@dataclass
class RankWeights:
    """How example code is valued next to definitions (value per token of a body statement is
    `body * relevance of its function`; a definition is worth its use probability)."""

    body: float = 0.01
    near: float = 1.0  # relevance of the k-th nearest function to the gap: near * 0.6**k
    used: float = 1.0  # relevance of a function the query's code probably calls: used * p
    lexical: float = 0.5  # relevance from shared words with the query (BM25, scaled to [0, 1])
    docstring: float = 0.15  # docstrings are prose: worth this share of their function's statements
    other: float = 0.05  # module-level statements that define nothing
    rerank: float = 1.0  # relevance a causal LM's re-score adds (rank-normalised among the re-scored)


@dataclass
class RankedUnits:
    order: np.ndarray  # unit indices, best first; ancestors always precede their descendants
    priority: np.ndarray  # per unit, higher = earlier in `order`
    gap: Gap | None
    details: dict = field(default_factory=dict)


def rank_units(documents: list[Document], units: CodeUnits, costs: np.ndarray, query: str | None,
               weights: RankWeights = RankWeights(), rerank=None, rerank_top: int = 0) -> RankedUnits:
    """Every unit in fill order. `rerank` (a `ChunkScorer`, e.g. the causal LM's perplexity drop)
    re-scores the `rerank_top` most relevant functions in one call."""
    began = time.perf_counter()
    languages = [None if language == LINES else language for language in units.languages]
    graph = build_graph(documents, languages)
    info = analyse_query(query)
    gap = locate_gap(documents, graph, info) if len(documents) else None
    built = time.perf_counter()
    probability = use_probability(definition_features(graph, gap, info, [d.text for d in documents])) \
        if gap is not None else np.zeros(len(graph))
    defined = _definitions_by_unit(units, graph)
    relevance = _function_relevance(documents, units, graph, gap, info, probability, weights)
    forward = 0.0
    if rerank is not None and rerank_top > 0 and units.n_chunks:
        forward = _rerank(documents, units, relevance, info, rerank, rerank_top, weights.rerank)
    body_density = _body_density(documents, units, costs, relevance, weights)
    order = _greedy_order(units, costs, defined, probability, body_density, graph)
    priority = np.empty(len(units))
    priority[order] = np.arange(len(order), 0, -1, dtype=np.float64)
    details = {"definitions": len(graph), "graph_seconds": built - began,
               "rank_seconds": time.perf_counter() - built - forward, "forward_seconds": forward}
    return RankedUnits(order, priority, gap, details)


def _unit_holding(units: CodeUnits, graph: CodeGraph, indices: list[int], mask: np.ndarray | None = None) -> np.ndarray:
    """For each definition in `indices`, the unit (among `mask`) holding its name; -1 if none."""
    found = np.full(len(indices), -1, dtype=np.int64)
    if not len(indices) or not len(units):
        return found
    docs = np.array([graph.definitions[d].doc for d in indices])
    anchors = np.array([graph.definitions[d].anchor for d in indices])
    for doc in np.unique(docs).tolist():
        rows = np.flatnonzero((units.doc == doc) if mask is None else (units.doc == doc) & mask)
        if not len(rows):
            continue
        mine = np.flatnonzero(docs == doc)
        i = np.searchsorted(units.start[rows], anchors[mine], side="right") - 1
        found[mine[i >= 0]] = rows[i[i >= 0]]
    return found


def _definitions_by_unit(units: CodeUnits, graph: CodeGraph) -> list[list[int]]:
    """The definitions each unit binds (the unit holding a definition's name)."""
    defined: list[list[int]] = [[] for _ in range(len(units))]
    for d, unit in enumerate(_unit_holding(units, graph, list(range(len(graph)))).tolist()):
        if unit >= 0:
            defined[unit].append(d)
    return defined


def _function_relevance(documents, units: CodeUnits, graph: CodeGraph, gap: Gap | None, info: QueryInfo,
                        probability: np.ndarray, weights: RankWeights) -> np.ndarray:
    """Per chunk: how much its code helps as an example for the query's code (0..~2)."""
    relevance = np.zeros(units.n_chunks)
    if not units.n_chunks:
        return relevance
    chunk_definition = np.full(units.n_chunks, -1)
    code = [d for d, definition in enumerate(graph.definitions) if definition.kind in (FUNCTION, METHOD, CLASS)]
    for d, unit in zip(code, _unit_holding(units, graph, code, units.kind == HEADER).tolist()):
        if unit >= 0 and units.chunk[unit] >= 0:
            chunk_definition[units.chunk[unit]] = d
    if gap is not None:
        chunk_of = {d: c for c, d in enumerate(chunk_definition.tolist()) if d >= 0}
        for k, d in enumerate(nearest_definitions(graph, gap)):
            if d in chunk_of:
                relevance[chunk_of[d]] += weights.near * 0.6 ** k
    has_definition = chunk_definition >= 0
    relevance[has_definition] += weights.used * probability[chunk_definition[has_definition]]
    if info.words and weights.lexical:
        texts = _chunk_texts(documents, units)
        lexical = LexicalScorer().score(texts, info.text)
        if lexical.max() > 0:
            relevance += weights.lexical * lexical / lexical.max()
    return relevance


def _rerank(documents, units: CodeUnits, relevance: np.ndarray, info: QueryInfo, scorer, top: int,
            weight: float) -> float:
    """Add the scorer's opinion of the `top` most relevant functions to their relevance; returns the
    seconds spent in its forwards."""
    candidates = np.flatnonzero(units.chunk_is_function)
    candidates = candidates[np.lexsort((candidates, -relevance[candidates]))][:top]
    if len(candidates) < 2:
        return 0.0
    texts = _chunk_texts(documents, units)
    before = scorer.forward_seconds
    heads = [texts[c].strip()[:_HEAD_CHARS] for c in candidates.tolist()]  # signature, docstring, first lines
    scores = np.asarray(scorer.score(heads, info.text), dtype=np.float64)
    order = np.argsort(np.argsort(scores, kind="stable"), kind="stable")
    relevance[candidates] += weight * order / (len(candidates) - 1)
    return scorer.forward_seconds - before


def _chunk_texts(documents, units: CodeUnits) -> list[str]:
    pieces: list[list[str]] = [[] for _ in range(units.n_chunks)]
    for d, s, e, chunk in zip(units.doc.tolist(), units.start.tolist(), units.end.tolist(), units.chunk.tolist()):
        if chunk >= 0:
            pieces[chunk].append(documents[d].text[s:e])
    return ["".join(p) for p in pieces]


def _body_density(documents, units: CodeUnits, costs: np.ndarray, relevance: np.ndarray,
                  weights: RankWeights) -> np.ndarray:
    """Value per token of each unit as example code (headers and imports get theirs from definitions)."""
    density = np.zeros(len(units))
    chunk = units.chunk
    in_chunk = chunk >= 0
    density[in_chunk] = weights.body * relevance[chunk[in_chunk]]
    statements = units.kind == STATEMENT
    density[statements] *= weights.other
    first_in_body = np.zeros(len(units), dtype=bool)
    previous_parent = -2
    for i, (kind, parent) in enumerate(zip(units.kind.tolist(), units.parent.tolist())):
        if kind in (BODY, MEMBER) and parent != previous_parent:
            first_in_body[i] = True
        previous_parent = parent if kind in (BODY, MEMBER) else -2
    for i in np.flatnonzero(first_in_body):
        text = documents[units.doc[i]].text[units.start[i]:units.end[i]].lstrip()
        if text[:3] in ('"""', "'''") or text[:1] in ('"', "'") or text[:4].lower() in ('r"""', "r'''"):
            density[i] *= weights.docstring
    return density


def _greedy_order(units: CodeUnits, costs: np.ndarray, defined: list[list[int]], probability: np.ndarray,
                  body_density: np.ndarray, graph: CodeGraph) -> np.ndarray:
    """Units by value per token, lazily re-evaluated: a name counts once, and a unit's price includes
    its ancestors not yet taken (and the placeholder their elided bodies need)."""
    n = len(units)
    parent = units.parent.tolist()
    kind = units.kind.tolist()
    cost = np.maximum(costs, 0).astype(np.float64)
    unit_cost = [c + (PLACEHOLDER_TOKENS if k == HEADER else 0) for c, k in zip(cost.tolist(), kind)]
    names = [[(graph.definitions[d].name, float(probability[d])) for d in ds] for ds in defined]
    covered: set[str] = set()
    taken = np.zeros(n, dtype=bool)
    taken_list = taken.tolist()
    body_value = (body_density * cost).tolist()
    children: list[list[int]] = [[] for _ in range(n)]
    for i, p in enumerate(parent):
        if p >= 0:
            children[p].append(i)

    def own_value(i: int) -> float:
        return body_value[i] + sum(p for name, p in names[i] if name not in covered)

    def density(i: int) -> float:
        value, price, j = 0.0, 0.0, i
        while j >= 0 and not taken_list[j]:
            value += own_value(j)
            price += unit_cost[j]
            j = parent[j]
        return value / max(price, 1.0)

    heap = [(-density(i), i) for i in range(n)]
    heapq.heapify(heap)
    order: list[int] = []
    while heap:
        negative, i = heapq.heappop(heap)
        if taken_list[i]:
            continue
        current = density(i)
        if heap and current < -heap[0][0] - 1e-12 and not math.isclose(current, -negative):
            heapq.heappush(heap, (-current, i))
            continue
        chain, j = [], i
        while j >= 0 and not taken_list[j]:
            chain.append(j)
            j = parent[j]
        for j in reversed(chain):  # ancestors first
            taken_list[j] = True
            order.append(j)
            covered.update(name for name, _ in names[j])
            for child in children[j]:
                if not taken_list[child]:
                    heapq.heappush(heap, (-density(child), child))
    return np.asarray(order, dtype=np.int64)
