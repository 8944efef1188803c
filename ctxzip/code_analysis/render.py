"""How a selection of code units reads: kept units are slices of the original, and every run of
elided statements or members inside a kept definition becomes one language-correct placeholder
(`...` in Python, `/* ... */` elsewhere), so the skeleton still parses.

`as_units` turns chunked code into the shared solver's `Units`: a closing brace is grouped with its
header, a statement depends on its header, and `placeholders` is the solver's render hook.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from ctxzip.code_analysis.chunking import CLOSE, IMPORT, STATEMENT, CodeUnits
from ctxzip.code_analysis.languages import get_parser
from ctxzip.document import Document
from ctxzip.select import Units

_FINAL_NEWLINE = frozenset({"go"})  # Go needs a line break after a top-level declaration, even the last one


def as_units(documents: list[Document], units: CodeUnits, priority: np.ndarray, info: dict | None = None) -> Units:
    """Solver units: required units (a Go package clause) protected, braces grouped with headers."""
    group = np.full(len(units), -1, dtype=np.int64)
    closes = np.flatnonzero(units.kind == CLOSE)
    group[closes] = units.parent[closes]
    group[units.parent[closes]] = units.parent[closes]
    return Units.build(units.doc, units.start, units.end, priority, units.required, group=group,
                       parent=units.parent, placeholders=partial(placeholders, documents, units), info=info)


def placeholder_for(unit_text: str, marker: str) -> str:
    """The marker on the line (and at the indentation) where the elided unit started."""
    stripped = unit_text.lstrip()
    leading = unit_text[: len(unit_text) - len(stripped)]
    if "\n" in leading:
        leading = "\n" + leading.rsplit("\n", 1)[1]
    elif not leading:
        leading = " "
    return leading + marker


def placeholders(documents: list[Document], units: CodeUnits, mask: np.ndarray) -> list[tuple[int, int, str]]:
    """(document, offset, text) of each placeholder for the kept units in `mask` (the solver's render hook)."""
    inserted = []
    elidable = (units.kind != CLOSE) & (units.kind != STATEMENT) & (units.kind != IMPORT) & (units.parent >= 0)
    open_run = -1  # the parent whose elided run already has its placeholder
    keep = mask.tolist()
    last_kept: dict[int, int] = {}
    for i, (d, s, e, p, can_elide) in enumerate(
        zip(units.doc.tolist(), units.start.tolist(), units.end.tolist(), units.parent.tolist(), elidable.tolist())
    ):
        if keep[i]:
            open_run = -1
            last_kept[d] = e
        elif can_elide and keep[p] and open_run != p and not _is_comment(documents[d].text[s:e]):
            inserted.append((d, s, placeholder_for(documents[d].text[s:e], units.markers[d])))
            open_run = p
    for d, end in last_kept.items():
        text = documents[d].text
        if units.languages[d] in _FINAL_NEWLINE and not text[:end].endswith("\n"):
            inserted.append((d, len(text), "\n"))
    return inserted


def _is_comment(unit_text: str) -> bool:
    """A dropped comment needs no placeholder (and one after code on its line would not parse)."""
    return unit_text.lstrip().startswith(("#", "//", "/*"))


def parses(text: str, language: str) -> bool:
    """Whether tree-sitter parses `text` in `language` without an error node."""
    parser = get_parser(language)
    return parser is not None and not parser.parse(text.encode("utf-8", "surrogatepass")).root_node.has_error
