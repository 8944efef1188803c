"""Cutting source files into units the code compressor can keep or elide.

With a grammar, a file becomes imports, definition headers (signature, decorators, class line),
the statements of each function body, the members of each class, closing braces and other top-level
statements. Each unit knows the header it depends on (`parent`) and the coarse chunk it belongs to
(a function, a class's own lines, a run of top-level statements). Files without a grammar, or that
do not parse, fall back to lines grouped into blank-line blocks.

Units cover the text without gaps: each owns the whitespace before it and any punctuation right
after it (a `;` after a class), so kept units rendered in order reproduce the original bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ctxzip.code_analysis.languages import SPECS, LanguageSpec, declared_language, get_parser, sniff_language
from ctxzip.document import Document
from ctxzip.segment import sentence_spans

IMPORT, HEADER, BODY, MEMBER, CLOSE, STATEMENT = range(6)
KIND_NAMES = ("import", "header", "body", "member", "close", "statement")
LINES = "lines"  # the fallback's name in `CodeUnits.languages`

_STATEMENT_GROUP_CHARS = 1200  # top-level statements are scored in groups about this long
_BLOCK_LINES = 40  # fallback blocks longer than this are cut
_LINE_BYTES = 400  # fallback lines longer than this in UTF-8 are cut (minified code, data, emoji runs)
REQUIRED_NODES = frozenset({"package_clause"})  # a Go file does not parse without it


@dataclass
class CodeUnits:
    """Parallel arrays over all units of all documents, sorted by (doc, start)."""

    doc: np.ndarray
    start: np.ndarray
    end: np.ndarray
    kind: np.ndarray
    parent: np.ndarray  # index of the header unit this one depends on, -1 if none
    chunk: np.ndarray  # coarse chunk id, -1 for imports
    chunk_is_function: np.ndarray  # per chunk: a function (header + body statements) or not
    required: np.ndarray  # units the output cannot parse without (kept like protected spans)
    markers: list[str] = field(default_factory=list)  # per document: what an elided run becomes
    languages: list[str] = field(default_factory=list)  # per document: grammar name or LINES

    def __len__(self) -> int:
        return len(self.doc)

    @property
    def n_chunks(self) -> int:
        return len(self.chunk_is_function)

    def texts(self, documents: list[Document]) -> list[str]:
        return [documents[d].text[s:e] for d, s, e in zip(self.doc.tolist(), self.start.tolist(), self.end.tolist())]


class _DocumentUnits:
    """Units of one document while they are collected: content spans in bytes, in document order."""

    def __init__(self, spec: LanguageSpec, source: bytes, first_chunk: int) -> None:
        self.spec = spec
        self.source = source
        self.content: list[tuple[int, int]] = []
        self.kind: list[int] = []
        self.parent: list[int] = []
        self.chunk: list[int] = []
        self.chunk_is_function: list[bool] = []
        self.required: list[bool] = []
        self.first_chunk = first_chunk
        self._open_statement_group = -1
        self._group_bytes = 0

    def add(self, start: int, end: int, kind: int, parent: int, chunk: int) -> int:
        self.content.append((start, end))
        self.kind.append(kind)
        self.parent.append(parent)
        self.chunk.append(chunk)
        self.required.append(False)
        if kind != STATEMENT:
            self._open_statement_group = -1
        return len(self.kind) - 1

    def new_chunk(self, is_function: bool) -> int:
        self.chunk_is_function.append(is_function)
        return self.first_chunk + len(self.chunk_is_function) - 1

    def statement_chunk(self, size: int) -> int:
        """Consecutive top-level statements share a chunk until it is about _STATEMENT_GROUP_CHARS long."""
        if self._open_statement_group < 0 or self._group_bytes + size > _STATEMENT_GROUP_CHARS:
            self._open_statement_group = self.new_chunk(False)
            self._group_bytes = 0
        self._group_bytes += size
        return self._open_statement_group

    # -- walking the syntax tree -------------------------------------------------------------

    def walk(self, nodes, parent: int, container_chunk: int) -> None:
        for node in nodes:
            if not node.is_named:
                continue  # punctuation between definitions joins the unit before it
            definition = self._unwrap(node)
            body = self._body(definition) if definition is not None else None
            if body is not None and definition.type in self.spec.functions:
                self._function(node, body, parent)
            elif body is not None and definition.type in self.spec.containers:
                self._container(node, body, parent)
            elif node.type in self.spec.imports and parent < 0:
                self.add(node.start_byte, node.end_byte, IMPORT, parent, -1)
                self.required[-1] = node.type in REQUIRED_NODES
            elif parent < 0:
                size = node.end_byte - node.start_byte
                self.add(node.start_byte, node.end_byte, STATEMENT, -1, self.statement_chunk(size))
            else:
                self.add(node.start_byte, node.end_byte, MEMBER, parent, container_chunk)

    def _unwrap(self, node):
        """The function or class a wrapper (decorator, export, `const f = () => {}`) holds, or None."""
        for _ in range(4):
            if node.type in self.spec.functions or node.type in self.spec.containers:
                return node
            if node.type not in self.spec.wrappers:
                return None
            inner = [c for c in node.named_children
                     if c.type in self.spec.functions or c.type in self.spec.containers or c.type in self.spec.wrappers]
            if len(inner) != 1:
                return None
            node = inner[0]
        return None

    def _body(self, definition):
        """The body node whose children may be elided, or None if it has no block body."""
        body = definition.child_by_field_name("body")
        if body is None or body.end_byte <= body.start_byte:
            return None
        if self.spec.braces:
            if self.source[body.start_byte:body.start_byte + 1] != b"{" or self.source[body.end_byte - 1:body.end_byte] != b"}":
                return None  # an arrow function's expression body, a declaration without a block
        elif body.type != "block":
            return None
        return body

    def _header_end(self, body) -> int:
        if self.spec.braces:
            return body.start_byte + 1  # through the opening brace
        return len(self.source[:body.start_byte].rstrip())  # through the colon (and a comment after it)

    def _statements(self, body):
        children = body.named_children
        if len(children) == 1 and children[0].type == "statement_list":  # Go wraps statements once more
            children = children[0].named_children
        return children

    def _function(self, node, body, parent: int) -> None:
        chunk = self.new_chunk(True)
        header = self.add(node.start_byte, self._header_end(body), HEADER, parent, chunk)
        for statement in self._statements(body):
            if statement.start_byte >= self._header_end(body):
                self.add(statement.start_byte, statement.end_byte, BODY, header, chunk)
        if self.spec.braces:
            self.add(body.end_byte - 1, node.end_byte, CLOSE, header, chunk)

    def _container(self, node, body, parent: int) -> None:
        chunk = self.new_chunk(False)
        header = self.add(node.start_byte, self._header_end(body), HEADER, parent, chunk)
        self.walk([c for c in body.named_children if c.start_byte >= self._header_end(body)], header, chunk)
        if self.spec.braces:
            self.add(body.end_byte - 1, node.end_byte, CLOSE, header, chunk)


def _char_offsets(text: str, byte_offsets: np.ndarray) -> np.ndarray:
    """Map UTF-8 byte offsets (tree-sitter's) to character offsets (Python's)."""
    codepoints = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    widths = 1 + (codepoints >= 0x80).astype(np.int64) + (codepoints >= 0x800) + (codepoints >= 0x10000)
    char_starts = np.concatenate([[0], np.cumsum(widths)])
    return np.searchsorted(char_starts, byte_offsets, side="left")


def _cover(text: str, content_start: np.ndarray, content_end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Turn content spans into gapless units: a unit runs from the last non-space character after
    the previous content (punctuation there joins the previous unit) to the end of its own content."""
    n = len(content_start)
    starts = np.zeros(n, dtype=np.int64)
    for i in range(1, n):
        previous_end = int(content_end[i - 1])
        gap = text[previous_end:int(content_start[i])]
        starts[i] = previous_end + len(gap.rstrip())
    ends = np.append(starts[1:], len(text)) if n else starts
    return starts, ends


def parse_units(text: str, language: str) -> tuple[list, list[int], list[int], list[int], list[bool]] | None:
    """Units of one document under a grammar, or None if the grammar is missing or the text does not parse."""
    parser = get_parser(language)
    if parser is None:
        return None
    source = text.encode("utf-8", "surrogatepass")
    tree = parser.parse(source)
    if tree.root_node.has_error:
        return None
    collected = _DocumentUnits(SPECS[language], source, 0)
    collected.walk(tree.root_node.children, -1, -1)
    if not collected.content:
        return None
    content = np.array(collected.content, dtype=np.int64)
    if len(source) != len(text):
        content = _char_offsets(text, content.ravel()).reshape(content.shape)
    return content, collected.kind, collected.parent, collected.chunk, collected.chunk_is_function, collected.required


def line_units(text: str) -> tuple[np.ndarray, list[int], list[int], list[int], list[bool], list[bool]]:
    """The fallback: lines as units, blank-line blocks (at most _BLOCK_LINES lines) as chunks."""
    content, chunk = [], []
    block, next_block, lines_in_block, position = -1, 0, 0, 0
    for line in text.splitlines(keepends=True):
        stripped = line.rstrip("\r\n")
        if not stripped.strip():
            block, position = -1, position + len(line)
            continue
        if block < 0 or lines_in_block >= _BLOCK_LINES:
            block, next_block, lines_in_block = next_block, next_block + 1, 0
        # A long line is cut at its sentences (prose), then into pieces of at most _LINE_BYTES, so a unit fits a budget.
        cuts = [0, *sentence_spans(stripped)[1][:-1].tolist(), len(stripped)] if len(stripped) > 80 else [0, len(stripped)]
        for a, b in zip(cuts[:-1], cuts[1:]):
            for piece_start, piece_end in _line_pieces(stripped[a:b]):
                content.append((position + a + piece_start, position + a + piece_end))
                chunk.append(block)
        lines_in_block += 1
        position += len(line)
    if not content:  # whitespace only
        content, chunk = [(0, len(text))], [0]
    n_chunks = max(chunk) + 1
    n = len(content)
    return np.array(content, dtype=np.int64), [STATEMENT] * n, [-1] * n, chunk, [False] * n_chunks, [False] * n


def _line_pieces(line: str) -> list[tuple[int, int]]:
    """A long line in pieces of at most _LINE_BYTES UTF-8 bytes, cut after a space where there is one."""
    if len(line) * 4 <= _LINE_BYTES or len(line.encode("utf-8", "surrogatepass")) <= _LINE_BYTES:
        return [(0, len(line))]
    pieces, start = [], 0
    while start < len(line):
        end, size = start, 0
        while end < len(line) and size + len(line[end].encode("utf-8", "surrogatepass")) <= _LINE_BYTES:
            size += len(line[end].encode("utf-8", "surrogatepass"))
            end += 1
        end = max(end, start + 1)
        if end < len(line):
            space = line.rfind(" ", start + 1, end)
            if space > start + (end - start) // 2:
                end = space
        pieces.append((start, end))
        start = end
    return pieces


def chunk_documents(documents: list[Document], language: str | None = None) -> CodeUnits:
    """Units of every document: parsed with its grammar when one applies, else lines."""
    arrays = {k: [] for k in ("doc", "start", "end", "kind", "parent", "chunk", "required")}
    chunk_is_function: list[bool] = []
    markers, languages = [], []
    offset = 0
    for index, document in enumerate(documents):
        text = document.text
        if not text:
            markers.append("")
            languages.append(LINES)
            continue
        candidates = _candidate_languages(document, language)
        parsed, chosen = None, LINES
        for candidate in candidates:
            parsed = parse_units(text, candidate)
            if parsed is not None:
                chosen = candidate
                break
        if parsed is None:
            parsed = line_units(text)
        content, kind, parent, chunk, is_function, required = parsed
        start, end = _cover(text, content[:, 0], content[:, 1])
        parent = np.array(parent, dtype=np.int64)
        chunk = np.array(chunk, dtype=np.int64)
        arrays["doc"].append(np.full(len(start), index, dtype=np.int64))
        arrays["start"].append(start)
        arrays["end"].append(end)
        arrays["kind"].append(np.array(kind, dtype=np.int8))
        arrays["parent"].append(np.where(parent >= 0, parent + offset, -1))
        arrays["chunk"].append(np.where(chunk >= 0, chunk + len(chunk_is_function), -1))
        arrays["required"].append(np.array(required, dtype=bool))
        chunk_is_function.extend(is_function)
        offset += len(start)
        markers.append(SPECS[chosen].marker if chosen != LINES else "")
        languages.append(chosen)
    if not arrays["doc"]:
        empty = np.zeros(0, dtype=np.int64)
        nothing = np.zeros(0, dtype=bool)
        return CodeUnits(empty, empty, empty, empty.astype(np.int8), empty, empty, nothing, nothing, markers, languages)
    return CodeUnits(
        *(np.concatenate(arrays[k]) for k in ("doc", "start", "end", "kind", "parent", "chunk")),
        np.array(chunk_is_function, dtype=bool), np.concatenate(arrays["required"]), markers, languages,
    )


def _candidate_languages(document: Document, forced: str | None) -> tuple[str, ...]:
    if forced is not None:
        return (forced,)
    declared, named = declared_language(document)
    if declared is not None:
        return (declared,)
    if named:  # a named file type without a grammar (.json, .md, ...) goes straight to lines
        return ()
    sniffed = sniff_language(document.text)
    return (sniffed,) if sniffed is not None else ()
