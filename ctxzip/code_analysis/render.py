"""Rendering a selection of code units: kept units are sliced from the original, and every run of
elided statements or members inside a kept definition becomes one language-correct placeholder
(`...` in Python, `/* ... */` elsewhere), so the skeleton still parses."""

from __future__ import annotations

import numpy as np

from ctxzip.code_analysis.chunking import CLOSE, STATEMENT, IMPORT, CodeUnits
from ctxzip.code_analysis.languages import get_parser
from ctxzip.document import Document

_FINAL_NEWLINE = frozenset({"go"})


def placeholder_for(unit_text: str, marker: str) -> str:
    """The marker on the line (and at the indentation) where the elided unit started."""
    stripped = unit_text.lstrip()
    leading = unit_text[: len(unit_text) - len(stripped)]
    if "\n" in leading:
        leading = "\n" + leading.rsplit("\n", 1)[1]
    elif not leading:
        leading = " "
    return leading + marker


def render_code(documents: list[Document], units: CodeUnits, mask: np.ndarray) -> tuple[list[str], str, int]:
    """(text per document, joined text, number of placeholders) for the kept units in `mask`."""
    from ctxzip.select import DOCUMENT_SEPARATOR

    pieces: list[list[str]] = [[] for _ in documents]
    placeholders = 0
    elidable = (units.kind != CLOSE) & (units.kind != STATEMENT) & (units.kind != IMPORT) & (units.parent >= 0)
    open_run = -1  # the parent whose elided run already has its placeholder
    keep = mask.tolist()
    for i, (d, s, e, p, can_elide) in enumerate(
        zip(units.doc.tolist(), units.start.tolist(), units.end.tolist(), units.parent.tolist(), elidable.tolist())
    ):
        if keep[i]:
            pieces[d].append(documents[d].text[s:e])
            open_run = -1
        elif can_elide and keep[p] and open_run != p and not _is_comment(documents[d].text[s:e]):
            pieces[d].append(placeholder_for(documents[d].text[s:e], units.markers[d]))
            open_run = p
            placeholders += 1
    doc_texts = ["".join(p).lstrip() for p in pieces]
    for d, language in enumerate(units.languages):
        # Go needs a line break after a top-level declaration, even the last one.
        if language in _FINAL_NEWLINE and doc_texts[d] and not doc_texts[d].endswith("\n"):
            doc_texts[d] += "\n"
    return doc_texts, DOCUMENT_SEPARATOR.join(t for t in doc_texts if t), placeholders


def _is_comment(unit_text: str) -> bool:
    """A dropped comment needs no placeholder (and one after code on its line would not parse)."""
    return unit_text.lstrip().startswith(("#", "//", "/*"))


def parses(text: str, language: str) -> bool:
    """Whether tree-sitter parses `text` in `language` without an error node."""
    parser = get_parser(language)
    return parser is not None and not parser.parse(text.encode("utf-8", "surrogatepass")).root_node.has_error
