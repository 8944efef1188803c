"""How likely the query's code is to use each definition: graph and file features, one logistic model.

Features come from the graph (hops from the query's names and from the code around the gap, the
enclosing class, what the nearest definitions use, how many definitions use it), from the file
(distance to the gap), from the query (the name or its sub-words in the signature and docstring)
and from the definition's kind. The weights in `name_model.json` were fitted by
`python -m eval.code_train` on functions cut from the **train** split of the standard library, so
no development or evaluation task informed them; they are priors about code, not about one set.
"""

from __future__ import annotations

import functools
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import regex

from ctxzip.code_analysis.chunk_scorers import identifiers
from ctxzip.code_analysis.gap import Gap
from ctxzip.code_analysis.graph import FUNCTION, KINDS, METHOD, CodeGraph
from ctxzip.code_analysis.query import QueryInfo

FEATURES = (
    "in_query", "query_words", "query_hops", "local_hops", "near_uses", "near_uses_log", "class_member",
    "class_uses", "popularity", "use_share", "file_distance", "before_gap", "same_document", "module_read",
    "private", "dunder", "constant", "mentions", "mentions_near_gap", "name_length",
) + tuple(f"kind_{kind}" for kind in KINDS)
NEAREST = 8  # definitions around the gap that count as "the code around it"
NEAR_GAP_CHARS = 1500  # the text either side of the gap whose words count as "mentioned near it"
_WORD = regex.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MODEL = Path(__file__).with_name("name_model.json")


def nearest_definitions(graph: CodeGraph, gap: Gap, limit: int = NEAREST) -> list[int]:
    """Functions and methods of the gap's document, nearest the gap first (by characters)."""
    found = []
    for index, definition in enumerate(graph.definitions):
        if definition.doc != gap.doc or definition.kind not in (FUNCTION, METHOD):
            continue
        distance = max(definition.start - gap.offset, gap.offset - definition.end, 0)
        found.append((distance, index))
    found.sort()
    return [index for _, index in found[:limit]]


def query_seeds(graph: CodeGraph, gap: Gap, query: QueryInfo) -> dict[int, float]:
    """Definitions the query names: its bare names in the gap's document, its `self.` members."""
    seeds: dict[int, float] = {}
    for name in query.names:
        for d in graph.resolve(gap.doc, name):
            seeds[d] = 0.0
    if gap.cls >= 0:
        for name in query.members:
            for d in graph.member_definitions(gap.cls, name):
                seeds[d] = 0.0
        seeds.setdefault(gap.cls, 0.0)
    return seeds


def definition_features(graph: CodeGraph, gap: Gap, query: QueryInfo, texts: list[str]) -> np.ndarray:
    """One row of FEATURES per definition (`texts`: the documents' texts)."""
    n = len(graph)
    rows = np.zeros((n, len(FEATURES)))
    if not n:
        return rows
    column = {name: i for i, name in enumerate(FEATURES)}
    near = nearest_definitions(graph, gap)
    weights = {d: 0.6 ** k for k, d in enumerate(near)}
    near_uses = np.zeros(n)
    for d, weight in weights.items():
        for target in graph.edges[d]:
            near_uses[target] += weight
    query_hops = graph.distances(query_seeds(graph, gap, query))
    local_hops = graph.distances({d: 0.0 for d in near[:2]} | ({gap.cls: 0.0} if gap.cls >= 0 else {}))
    lineage = _class_lineage(graph, gap.cls)
    class_methods = [d for d, definition in enumerate(graph.definitions)
                     if definition.kind == METHOD and definition.owner in lineage]
    class_uses = np.zeros(n)
    for d in class_methods:
        for target in graph.edges[d]:
            class_uses[target] += 1
    class_uses /= max(len(class_methods), 1)
    popularity = np.zeros(n)
    for d, count in graph.read_counts.items():
        popularity[d] = count
    functions = sum(1 for d in graph.definitions if d.kind in (FUNCTION, METHOD)) or 1
    query_words = {w.lower() for w in query.words}
    module_reads = graph.module_reads
    gap_text = texts[gap.doc] if gap.doc < len(texts) else ""
    gap_length = max(len(gap_text), 1)
    mentions = [Counter(_WORD.findall(text)) for text in texts]  # names as words: locals and `obj.x` too
    near_gap = Counter(_WORD.findall(gap_text[max(0, gap.offset - NEAR_GAP_CHARS):gap.offset + NEAR_GAP_CHARS]))
    for d, definition in enumerate(graph.definitions):
        row = rows[d]
        name = definition.name
        member = definition.owner >= 0
        row[column["in_query"]] = float(name in query.names or (member and name in query.members))
        row[column["query_words"]] = _word_overlap(name, query_words)
        row[column["query_hops"]] = _closeness(query_hops[d])
        row[column["local_hops"]] = _closeness(local_hops[d])
        row[column["near_uses"]] = near_uses[d]
        row[column["near_uses_log"]] = math.log1p(near_uses[d] * 4)
        row[column["class_member"]] = float(definition.owner in lineage)
        row[column["class_uses"]] = class_uses[d]
        row[column["popularity"]] = math.log1p(popularity[d])
        row[column["use_share"]] = popularity[d] / functions
        same = definition.doc == gap.doc
        row[column["same_document"]] = float(same)
        row[column["file_distance"]] = abs(definition.anchor - gap.offset) / gap_length if same else 1.0
        row[column["before_gap"]] = float(same and definition.anchor < gap.offset)
        reads_here = module_reads[definition.doc] if definition.doc < len(module_reads) else {}
        row[column["module_read"]] = float(not member and name in reads_here)
        row[column["private"]] = float(name.startswith("_") and not name.endswith("__"))
        row[column["dunder"]] = float(name.startswith("__") and name.endswith("__"))
        row[column["constant"]] = float(name.isupper())
        row[column["mentions"]] = math.log1p(mentions[definition.doc][name]) if definition.doc < len(mentions) else 0.0
        row[column["mentions_near_gap"]] = math.log1p(near_gap[name])
        row[column["name_length"]] = math.log(max(len(name), 1))
        row[column[f"kind_{definition.kind}"]] = 1.0
    return rows


def _class_lineage(graph: CodeGraph, cls: int) -> set[int]:
    if cls < 0:
        return set()
    seen, stack = {cls}, [cls]
    while stack:
        for base in graph.bases.get(stack.pop(), []):
            if base not in seen:
                seen.add(base)
                stack.append(base)
    return seen


def _closeness(hops: float) -> float:
    return 0.0 if not np.isfinite(hops) else 1.0 / (1.0 + hops)


def _word_overlap(name: str, query_words: set[str]) -> float:
    parts = {w.lower() for w in identifiers(name)}
    return len(parts & query_words) / len(parts) if parts else 0.0


@functools.lru_cache(maxsize=1)
def _weights() -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    model = json.loads(_MODEL.read_text())
    if tuple(model["features"]) != FEATURES:
        raise RuntimeError(f"{_MODEL.name} was fitted on other features; rerun python -m eval.code_train")
    return (np.asarray(model["mean"]), np.asarray(model["scale"]), np.asarray(model["coef"]),
            float(model["intercept"]))


def use_probability(features: np.ndarray) -> np.ndarray:
    """P(the query's code uses the definition) per row, from the shipped logistic model."""
    if not len(features):
        return np.zeros(0)
    mean, scale, coef, intercept = _weights()
    logits = ((features - mean) / scale) @ coef + intercept
    return 1.0 / (1.0 + np.exp(-logits))

