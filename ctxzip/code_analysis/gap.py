"""Where the query's code would stand: the *gap*.

A document may say it: metadata "cut" (a character offset, as `eval.code` sets it) or "gap". Else
the gap is inferred from where the names the query uses are defined and used: it sits right after
the definition that shares most with the query (a method of the class whose members the query
mentions, the function that calls the query's function, ...). Without any signal it is the end of
the last document, which is where code being written usually is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ctxzip.code_analysis.graph import CLASS, FUNCTION, METHOD, MEMBER_PREFIX, CodeGraph
from ctxzip.code_analysis.query import QueryInfo
from ctxzip.document import Document

GAP_KEYS = ("cut", "gap")


@dataclass
class Gap:
    doc: int
    offset: int  # character offset in documents[doc]
    cls: int = -1  # the class definition the query's code belongs to, -1 if none
    inferred: bool = False


def hinted_offset(document: Document) -> int | None:
    for key in GAP_KEYS:
        value = document.metadata.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= len(document.text):
            return value
    return None


def locate_gap(documents: list[Document], graph: CodeGraph, query: QueryInfo) -> Gap:
    for index, document in enumerate(documents):
        offset = hinted_offset(document)
        if offset is not None:
            return Gap(index, offset, _enclosing_class(graph, index, offset, query, documents[index].text))
    return _inferred_gap(documents, graph, query)


def _enclosing_class(graph: CodeGraph, doc: int, offset: int, query: QueryInfo, text: str) -> int:
    """The innermost class around `offset`; a class ending just before it counts when the query is
    indented like a method (the cut function was the class's last member)."""
    best, best_start = -1, -1
    wants_member = query.is_method or query.indent > 0
    for index, definition in enumerate(graph.definitions):
        if definition.doc != doc or definition.kind != CLASS:
            continue
        inside = definition.start < offset < definition.end
        ends_here = wants_member and definition.end <= offset and not text[definition.end:offset].strip()
        if (inside or ends_here) and definition.start > best_start:
            best, best_start = index, definition.start
    return best


def _inferred_gap(documents: list[Document], graph: CodeGraph, query: QueryInfo) -> Gap:
    last = max((i for i, d in enumerate(documents) if d.text), default=0)
    fallback = Gap(last, len(documents[last].text) if documents else 0, -1, True)
    if query.empty or not len(graph):
        return fallback
    wanted = {n for n in query.names if n != query.function}
    members = {MEMBER_PREFIX + m for m in query.members}
    class_score: dict[int, float] = {}
    best, best_score = -1, 0.0
    for index, definition in enumerate(graph.definitions):
        if definition.kind not in (FUNCTION, METHOD, CLASS):
            continue
        reads = graph.reads[index]
        score = sum(1.0 for name in wanted if name in reads) + 2.0 * sum(1.0 for m in members if m in reads)
        if query.function and (query.function in reads or MEMBER_PREFIX + query.function in reads):
            score += 3.0  # it calls the query's function: helpers sit next to their callers
        if definition.owner >= 0 and query.is_method:
            score += 1.0
            owner_members = graph.members.get(definition.owner, {})
            class_score[definition.owner] = class_score.get(definition.owner, 0.0) + sum(
                1.0 for m in query.members if m in owner_members)
        elif query.is_method:
            score -= 1.0
        score /= math.log(2 + sum(reads.values()))  # long definitions mention everything
        if score > best_score:
            best, best_score = index, score
    if best < 0:
        return fallback
    definition = graph.definitions[best]
    cls = definition.owner if query.is_method or query.indent > 0 else -1
    if query.is_method and class_score:
        top = max(class_score, key=class_score.get)
        if class_score[top] > class_score.get(cls, 0.0):
            cls = top
            definition = graph.definitions[max(m for names in graph.members[top].values() for m in names)]
    return Gap(definition.doc, definition.end, cls, True)
