"""Compressing corpus records: parse, check the fields, compress in batches, say why a record failed.

`RecordCompressor` is what every engine runs (in-process, in worker processes, in Ray actors): it is
built from a picklable `RecordSpec`, loads its compressor once, and turns raw records into outcomes.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from ctxzip.budget import Budget
from ctxzip.corpus.io import BadRecord, parse_record
from ctxzip.document import Document
from ctxzip.errors import CtxzipError, UnknownMethodError
from ctxzip.registry import get_compressor_class

RESULT_FIELD = "ctxzip"


@dataclass(frozen=True)
class RecordSpec:
    """Everything needed to compress one record, and nothing about files (so it pickles small)."""

    method: str
    budget: Budget
    method_options: dict[str, Any] = field(default_factory=dict)
    text_field: str = "text"
    id_field: str = "id"
    query_field: str | None = None
    output_field: str | None = None  # default: overwrite text_field

    @property
    def target_field(self) -> str:
        return self.output_field or self.text_field


@dataclass
class Compressed:
    record: dict[str, Any]
    original_tokens: int
    compressed_tokens: int


@dataclass
class Failed:
    id: Any
    reason: str


Outcome = Compressed | Failed


def compressor_class(method: str) -> type:
    """A registered method name, or "package.module:Class" for a compressor of your own."""
    if ":" not in method:
        return get_compressor_class(method)
    module, _, name = method.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise UnknownMethodError(f"cannot import compressor {method!r}: {exc}") from None


def build_compressor(method: str, options: dict[str, Any]):
    return compressor_class(method)(**options)


class RecordCompressor:
    def __init__(self, spec: RecordSpec) -> None:
        self.spec = spec
        try:
            self.compressor = build_compressor(spec.method, dict(spec.method_options))
        except TypeError as exc:  # an option the method does not take
            raise UnknownMethodError(f"bad option for method {spec.method!r}: {exc}") from None

    def compress_raw(self, raws: list[str | dict]) -> list[Outcome]:
        """One outcome per raw record, in order; bad records fail alone, the batch goes on."""
        outcomes: list[Outcome | None] = [None] * len(raws)
        pending: list[tuple[int, dict, Document, str | None]] = []
        for index, raw in enumerate(raws):
            checked = self._check(parse_record(raw))
            if isinstance(checked, Failed):
                outcomes[index] = checked
            else:
                pending.append((index, *checked))
        results = self._compress_batch([(doc, query) for _, _, doc, query in pending])
        for (index, record, _, _), result in zip(pending, results):
            outcomes[index] = result if isinstance(result, Failed) else self._output(record, result)
        return outcomes  # type: ignore[return-value]

    def _check(self, record: dict | BadRecord):
        spec = self.spec
        if isinstance(record, BadRecord):
            return Failed(None, record.reason)
        record_id = record.get(spec.id_field)
        if spec.text_field not in record:
            return Failed(record_id, f"missing field {spec.text_field!r}")
        text = record[spec.text_field]
        if not isinstance(text, str):
            return Failed(record_id, f"field {spec.text_field!r} is {type(text).__name__}, not text")
        query = None
        if spec.query_field is not None:
            if spec.query_field not in record:
                return Failed(record_id, f"missing field {spec.query_field!r}")
            query = record[spec.query_field]
            if query is not None and not isinstance(query, str):
                return Failed(record_id, f"field {spec.query_field!r} is {type(query).__name__}, not text")
        doc_id = None if record_id is None else str(record_id)
        return record, Document(text, doc_id), query

    def _compress_batch(self, items: list[tuple[Document, str | None]]) -> list:
        """Batched when the compressor can (one model forward for many records), else one by one."""
        if not items:
            return []
        many = getattr(self.compressor, "compress_many", None)
        if many is not None and len(items) > 1:
            try:
                return list(many([([doc], query) for doc, query in items], budget=self.spec.budget))
            except CtxzipError:
                pass  # one bad record spoils the batch: redo one by one to find it
        return [self._compress_one(doc, query) for doc, query in items]

    def _compress_one(self, doc: Document, query: str | None):
        try:
            return self.compressor.compress([doc], query=query, budget=self.spec.budget)
        except CtxzipError as exc:
            return Failed(doc.id, f"{type(exc).__name__}: {exc}")

    def _output(self, record: dict, result) -> Compressed:
        out = dict(record)
        out[self.spec.target_field] = result.text
        out[RESULT_FIELD] = {
            "method": result.method,
            "original_tokens": result.original_tokens,
            "compressed_tokens": result.compressed_tokens,
            "kept": [[span.start, span.end] for span in result.kept],
        }
        return Compressed(out, result.original_tokens, result.compressed_tokens)
