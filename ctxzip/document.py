"""Plain data types shared by every compressor: inputs (`Document`), provenance (`Span`), output."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from ctxzip.errors import InvalidInputError


@dataclass
class Document:
    """A piece of input text with an id and free-form metadata that ctxzip carries through."""

    text: str
    id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Span:
    """Characters [start, end) of the original document `doc_id` that survived compression."""

    doc_id: str
    start: int
    end: int


@dataclass(frozen=True)
class Inserted:
    """Text that is not from the original: it stands at character `at` of document `doc_id` in place
    of what was elided there (a code placeholder `...`, a JSON elision marker)."""

    doc_id: str
    at: int
    text: str


@dataclass
class CompressionResult:
    """What every compressor returns. Numbers are numbers: `ratio` is compressed / original.

    Each output document is its `kept` slices of the original and its `inserted` texts, in order of
    their place in the original (see `rebuild`); `text` joins the output documents with a blank line.
    """

    text: str
    documents: list[Document]
    kept: list[Span]
    original_tokens: int
    compressed_tokens: int
    method: str
    model: str | None = None
    budget_tokens: int | None = None
    tokenizer: str | None = None
    inserted: list[Inserted] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        if self.original_tokens == 0:
            return 1.0
        return self.compressed_tokens / self.original_tokens

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = self.ratio
        return data


def rebuild(originals: list[Document], kept: list[Span], inserted: list[Inserted] = ()) -> dict[str, str]:
    """Each output document's text from the originals, its kept spans and its inserted texts.

    An inserted text goes before a kept span that starts at the same place. This is how any result can
    be checked: `rebuild(docs, r.kept, r.inserted)[d.id] == d.text` for every `d` in `r.documents`.
    """
    texts = {d.id: d.text for d in originals}
    pieces: dict[str, list[tuple[int, int, str]]] = {}
    for span in kept:
        pieces.setdefault(span.doc_id, []).append((span.start, 1, texts[span.doc_id][span.start:span.end]))
    for insert in inserted:
        pieces.setdefault(insert.doc_id, []).append((insert.at, 0, insert.text))
    return {doc_id: "".join(text for _, _, text in sorted(items, key=lambda p: p[:2])) for doc_id, items in pieces.items()}


_SURROGATE = re.compile("[\ud800-\udfff]")


def check_unicode(text: str, what: str) -> None:
    """Refuse text with a lone surrogate (half of a UTF-16 pair): it cannot be encoded, tokenized or sent on."""
    bad = _SURROGATE.search(text)
    if bad is not None:
        raise InvalidInputError(
            f"{what} is not valid Unicode: a lone surrogate U+{ord(bad.group()):04X} at character {bad.start()}"
        )


DocumentsLike = str | Document | Iterable[str | Document | dict]


def as_documents(inputs: DocumentsLike) -> list[Document]:
    """Normalise a string, a Document, or a list of strings/Documents/dicts into Documents.

    Missing ids become their position ("0", "1", ...); ids must be unique so spans stay traceable.
    """
    if isinstance(inputs, (str, Document, dict)):
        inputs = [inputs]
    if isinstance(inputs, (bytes, bytearray)) or inputs is None:
        raise InvalidInputError(f"expected text or documents, got {type(inputs).__name__}")
    try:
        items = list(inputs)
    except TypeError:
        raise InvalidInputError(f"expected text or documents, got {type(inputs).__name__}") from None
    documents = []
    for position, item in enumerate(items):
        if isinstance(item, str):
            doc = Document(item)
        elif isinstance(item, Document):
            doc = Document(item.text, item.id, dict(item.metadata))
        elif isinstance(item, dict) and "text" in item:
            doc = Document(item["text"], item.get("id"), dict(item.get("metadata") or {}))
        else:
            raise InvalidInputError(
                f"document {position} is a {type(item).__name__}; expected str, Document or dict with 'text'"
            )
        if not isinstance(doc.text, str):
            raise InvalidInputError(f"document {position} text is {type(doc.text).__name__}, not str")
        check_unicode(doc.text, f"document {position}")
        if doc.id is None:
            doc.id = str(position)
        doc.id = str(doc.id)
        documents.append(doc)
    ids = [d.id for d in documents]
    if len(set(ids)) != len(ids):
        raise InvalidInputError("document ids must be unique")
    return documents
